"""A sender that stops when the server misbehaves (issue 10, holes 5-8), end to end.

Real servers on loopback: aiosmtpd (tests/mailserver.py) for refusals, and small raw-socket
servers for what aiosmtpd will not do: stream ``250-`` continuation lines forever, or never
answer the end of DATA. ``reminders send-due`` runs as a real process where a hang must be
bounded (the test kills it if it is not), so a broken deadline fails the test instead of
hanging it.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from notifications.runner import send_due
from onboarding import clock, outbox
from onboarding.db import open_existing
from tests import reliability as rel
from tests.mailserver import Handler, MailServer
from tests.notify_support import (
    SAPA_NOTICE_AT,
    add_contacts,
    connection_to_sapa,
    make_ready,
    smtp_config,
    t,
)

pytestmark = pytest.mark.usefixtures("no_mail_env")

TOWNS = ("Køge", "Greve", "Solrød")
#: Per track at SAPA_NOTICE_AT: the owner's reminder and the sapa@kombit.dk notice.
DUE = 2 * len(TOWNS)


@pytest.fixture
def tracks(db: Database, tmp_path: Path) -> list[int]:
    """Three connections in step 4 with an owner each: six messages due at SAPA_NOTICE_AT."""
    make_ready(db)
    add_contacts(db, tmp_path, [
        {"role": "sapa-owner", "name": f"Ejer {m}", "email": f"sapa{i}@kommune.dk",
         "municipality": m} for i, m in enumerate(TOWNS)
    ])
    return [connection_to_sapa(db, town) for town in TOWNS]


class RawSmtp:
    """An SMTP server on a raw socket that behaves until the end of DATA, then ``mode``:

    * ``endless``: streams ``250-`` continuation lines (one each 20 ms) and never the last line;
    * ``silent``: never answers;
    * ``slow``: answers ``250`` after ``delay`` seconds.
    """

    def __init__(self, mode: str, delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.messages = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as rfile:
                conn.sendall(b"220 raw.test ESMTP\r\n")
                while not self.stopped.is_set():
                    line = rfile.readline()
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        conn.sendall(b"250-raw.test\r\n250 8BITMIME\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    elif verb == b"DATA":
                        conn.sendall(b"354 go ahead\r\n")
                        while rfile.readline() not in (b".\r\n", b""):
                            pass
                        self.messages += 1
                        self._after_data(conn)
                    else:
                        conn.sendall(b"250 ok\r\n")
        except OSError:
            return

    def _after_data(self, conn: socket.socket) -> None:
        if self.mode == "endless":
            while not self.stopped.is_set():
                conn.sendall(b"250-still thinking about it\r\n")
                time.sleep(0.02)
        elif self.mode == "silent":
            self.stopped.wait()
        else:
            time.sleep(self.delay)
            conn.sendall(b"250 2.0.0 queued\r\n")

    def env(self) -> dict[str, str]:
        return {
            "ONBOARDING_SMTP_HOST": "127.0.0.1",
            "ONBOARDING_SMTP_PORT": str(self.port),
            "ONBOARDING_SMTP_SECURITY": "none",
            "ONBOARDING_MAIL_FROM": "KOMBIT onboarding <onboarding@kombit.test>",
        }

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def raw_server(request: pytest.FixtureRequest) -> Iterator[RawSmtp]:
    server = RawSmtp(*request.param)
    yield server
    server.close()


def _run_bounded(db_path: Path, env: dict[str, str], limit: float) -> tuple[int, str, float]:
    """'reminders send-due' as a real process; killed (and the test failed) after ``limit``."""
    started = time.monotonic()
    proc = rel.cli_process(db_path, "reminders", "send-due", "--at", SAPA_NOTICE_AT,
                           ONBOARDING_NOW="2021-08-18T08:00", **env)
    try:
        out, err = proc.communicate(timeout=limit)
    except Exception:
        proc.kill()
        proc.communicate()
        pytest.fail(f"send-due still running after {limit} s")
    return proc.returncode, out.decode() + err.decode(), time.monotonic() - started


def _outbox_dump(db_path: Path) -> list[tuple[Any, ...]]:
    return rel.table_dump(db_path, "SELECT * FROM outbox ORDER BY id")


def _rows(db_path: Path) -> list[dict[str, Any]]:
    """The six rows due at SAPA_NOTICE_AT (step 4's reminders and notices)."""
    db = open_existing(db_path)
    try:
        return [r for r in outbox.list_rows(db) if r["state"] == "sapa_request"
                and r["notification"] in ("reminder", "sapa-notice")]
    finally:
        db.close()


@pytest.mark.parametrize(
    ("raw_server", "settings"),
    [
        # Each line arrives well within the per-read timeout: only the message deadline ends it.
        (("endless",), "[smtp]\ntimeout = 5\n[delivery]\nmessage_timeout = 2\n"),
        # No answer at all: the per-read timeout (1 s) ends it, once per message.
        (("silent",), "[smtp]\ntimeout = 1\n[delivery]\nmessage_timeout = 30\n"),
    ],
    indirect=["raw_server"],
    ids=["endless-250-lines", "never-answers-data"],
)
def test_sender_stops_after_two_timeouts_in_a_row(
    db_path: Path, tracks: list[int], raw_server: RawSmtp, settings: str
) -> None:
    """A server that streams 250- lines forever (only the per-message deadline ends it) or
    never answers DATA (the per-operation timeout, 1 s here, ends it): two messages time
    out, the run stops and exits 3 within the deadline; those two wait for a retry (they may
    have arrived), the other four stay pending untried."""
    (db_path.parent / "onboarding.toml").write_text(settings, encoding="utf-8")
    code, output, took = _run_bounded(db_path, raw_server.env(), limit=60)
    assert code == 3, output
    assert took < 25, took  # two deadlines and start-up; the old code never stopped
    assert "two timeouts in a row" in output and raw_server.messages == 2
    rows = _rows(db_path)
    tried = [r for r in rows if r["attempts"]]
    assert len(tried) == 2 and all(
        r["status"] == "pending" and "may have been delivered" in r["last_error"] for r in tried
    )
    untried = [r for r in rows if not r["attempts"]]
    assert len(untried) == DUE - 2 and {r["status"] for r in untried} == {"pending"}


@pytest.mark.parametrize("raw_server", [("slow", 1.0)], indirect=True)
def test_sender_run_deadline_stops_the_run_and_leaves_the_rest(
    db_path: Path, tracks: list[int], raw_server: RawSmtp
) -> None:
    """A slow but working server (1 s per message) and run_timeout = 2: a few messages go,
    then the run stops, says why, exits 3; the rest stay pending untried."""
    (db_path.parent / "onboarding.toml").write_text(
        "[delivery]\nrun_timeout = 2\n", encoding="utf-8")
    code, output, took = _run_bounded(db_path, raw_server.env(), limit=60)
    assert code == 3 and "run_timeout" in output, output
    assert took < 20
    rows = _rows(db_path)
    sent = [r for r in rows if r["status"] == "sent"]
    assert 1 <= len(sent) <= 3 and raw_server.messages == len(sent)
    rest = [r for r in rows if r["status"] != "sent"]
    assert rest and all(r["status"] == "pending" and r["attempts"] == 0 for r in rest)


class _Refusing(Handler):
    """Refuses every message's DATA with a session-level 421."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "421 4.3.2 service shutting down"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.parametrize("refusal", ["530-starttls-first", "421-to-data"])
def test_sender_session_refusal_leaves_every_row_pending(
    runner: CliRunner, db: Database, db_path: Path, tracks: list[int], ca: trustme.CA,
    refusal: str,
) -> None:
    """530 "must issue STARTTLS first" to MAIL FROM, or 421 to DATA, is the session's fault,
    not the message's: the run stops at once, exit 3 with one line on stderr; every row is
    pending with no attempt, the one in hand noting why; nothing is failed."""
    if refusal.startswith("530"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
        server = MailServer(starttls=ctx)  # requires STARTTLS; the client is set to none
    else:
        server = MailServer()
        server.handler = server.controller.handler = _Refusing()
    try:
        result = runner.invoke(
            cli.cli, ["reminders", "send-due", "--at", SAPA_NOTICE_AT, "--db", str(db_path)],
            env=server.env())
    finally:
        server.stop()
    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("send-due: not everything due was sent: stopped: ")
    assert refusal[:3] in line
    rows = _rows(db_path)
    assert len(rows) == DUE and all(r["status"] == "pending" and r["attempts"] == 0
                                    for r in rows)
    noted = [r for r in rows if r["last_error"]]
    assert len(noted) == 1 and refusal[:3] in noted[0]["last_error"]


def test_sender_backoff_runs_from_the_wall_clock_not_from_at(
    db: Database, db_path: Path, tracks: list[int], smtp_server: MailServer
) -> None:
    """send-due --at last week against a 451 server: the retry waits the backoff from now,
    not from last week (it would be due at once, i.e. no backoff at all)."""
    smtp_server.mode = "451"
    now = t("2021-08-25T12:00")
    summary = send_due(db, t(SAPA_NOTICE_AT), smtp_config(smtp_server, db_path), now=now)
    assert summary.retrying == DUE and not summary.ok
    for row in outbox.list_rows(db, ("pending",), until=t(SAPA_NOTICE_AT) + timedelta(days=7)):
        if row["attempts"]:
            wait = clock.unstamp(row["next_attempt_at"]) - now
            assert timedelta(minutes=5) <= wait < timedelta(minutes=6), row


def test_sender_exit_codes(
    runner: CliRunner, db_path: Path, tracks: list[int], smtp_server: MailServer
) -> None:
    """send-due exits 0 when every due message went, 3 when one was refused (550: that row
    fails, the others go), 2 for an --at in the future (one line naming it and the current
    time; nothing changed)."""

    def send(at: str, now: str) -> Any:
        return runner.invoke(cli.cli, ["reminders", "send-due", "--at", at, "--db", str(db_path)],
                             env={**smtp_server.env(), "ONBOARDING_NOW": now})

    before = _outbox_dump(db_path)
    future = send("2021-08-18T08:06", "2021-08-18T08:00")
    assert future.exit_code == 2 and future.stdout == ""
    [line] = future.stderr.splitlines()
    assert "--at 2021-08-18T08:06:00+0200" in line and "2021-08-18T08:00:00+0200" in line
    assert _outbox_dump(db_path) == before
    ok = send("2021-08-13T08:04", "2021-08-13T08:00")  # within the tolerance: the 3 reminders
    assert ok.exit_code == 0 and ok.stderr == "", ok.output
    assert "sent 3," in ok.stdout
    smtp_server.mode = "550"
    refused = send(SAPA_NOTICE_AT, SAPA_NOTICE_AT)
    assert refused.exit_code == 3
    assert refused.stderr == "send-due: not everything due was sent: 3 failed\n"
