"""Exactly once under races (issue 10, holes 1-4): a real aiosmtpd server, real processes.

* a step done while its batch is being sent sends nothing for that step (the server holds its
  reply to message 1 while the test records the step);
* a migration to a renamed state carries the rows: the kept notice goes once, labelled;
* a sender killed right after claiming, again and again, costs no attempt: after the lease
  every row is pending, untried, and the next run sends each once;
* a digest template that fails is recorded on its rows (failed, with the error), the run
  ends with exit code 3 and strands nothing in ``sending``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from notifications.runner import SendSummary, send_due
from onboarding import clock, definitions, engine, outbox
from onboarding.db import open_existing
from tests import reliability as rel
from tests.mailserver import Handler, MailServer
from tests.notify_support import (
    SAPA_NOTICE_AT,
    act,
    add_contacts,
    connection_to_sapa,
    make_ready,
    smtp_config,
    t,
)

pytestmark = pytest.mark.usefixtures("no_mail_env")

TOWNS = ("Køge", "Greve", "Solrød", "Roskilde", "Holbæk", "Faxe")


def _contacts(db: Database, folder: Path, towns: tuple[str, ...]) -> None:
    add_contacts(db, folder, [
        {"role": "sapa-owner", "name": f"Ejer {m}", "email": f"sapa{i}@kommune.dk",
         "municipality": m} for i, m in enumerate(towns)
    ] + [{"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"}])


def _step4(db: Database, tid: int) -> dict[str, dict[str, Any]]:
    """The track's rows of step 4 (sapa_request) by notification name."""
    return {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)
            if r["state"] == "sapa_request"}


class _Holding(Handler):
    """Holds its reply to the first message until ``release`` is set (``arrived`` says the
    message is there), so the test can act while the sender waits for the 250."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.arrived.is_set():
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def holding_server() -> Iterator[MailServer]:
    server = MailServer()
    # No connection has been made yet: the next one is served by this handler.
    server.handler = server.controller.handler = _Holding()
    yield server
    server.handler.release.set()  # type: ignore[attr-defined]
    server.stop()


def _send_in_background(db_path: Path, config: Any, at: str) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def work() -> None:
        db = open_existing(db_path)
        try:
            out.append(send_due(db, t(at), config))
        except BaseException as exc:  # surfaced by the test
            out.append(exc)
        finally:
            db.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, out


def test_exactly_once_step_done_while_its_batch_is_sent_sends_nothing_for_it(
    db: Database, db_path: Path, tmp_path: Path, holding_server: MailServer
) -> None:
    """While the server holds its reply to message 1 of a batch, Greve's step 4 is recorded
    done and Solrød's connection is cancelled: Greve's reminder and Solrød's notice (kept on
    leave, but cancel_on: [cancel]) are never sent; the rest go once."""
    make_ready(db)
    towns = ("Køge", "Greve", "Solrød")
    _contacts(db, tmp_path, towns)
    tids = {town: connection_to_sapa(db, town) for town in towns}
    config = smtp_config(holding_server, db_path)
    handler: Any = holding_server.handler
    thread, out = _send_in_background(db_path, config, SAPA_NOTICE_AT)
    assert handler.arrived.wait(30)  # message 1 (Køge's reminder) is at the server
    engine.advance(db, tids["Greve"], "request_display", act("2021-08-18T08:01", "sapa-owner"))
    engine.advance(db, tids["Solrød"], "cancel", act("2021-08-18T08:01"), {"reason": "opgivet"})
    handler.release.set()
    thread.join(60)
    assert not thread.is_alive() and isinstance(out[0], SendSummary), out
    got = sorted((int(m.message["X-Onboarding-Outbox"])) for m in holding_server.messages)
    rows = {(town, name): _step4(db, tid)[name] for town, tid in tids.items()
            for name in ("reminder", "sapa-notice")}
    sent = sorted(r["id"] for r in rows.values() if r["status"] == "sent")
    assert got == sent
    assert rows["Greve", "reminder"]["status"] == "cancelled"
    assert rows["Solrød", "sapa-notice"]["status"] == "cancelled"
    assert rows["Solrød", "reminder"]["status"] == "cancelled"
    assert {k for k, r in rows.items() if r["status"] == "sent"} == {
        ("Køge", "reminder"), ("Køge", "sapa-notice"), ("Greve", "sapa-notice")
    }
    assert len(holding_server.to("sapa@kombit.dk")) == 2
    assert holding_server.to("sapa1@kommune.dk") == []  # Greve's owner: step already done
    assert outbox.list_rows(db, ("sending",)) == []


def test_exactly_once_a_cancelled_claim_is_not_resurrected_by_its_sender(
    db: Database, db_path: Path
) -> None:
    """An advance cancels the reminders a sender has claimed but not handed over; the
    sender's later record, release or reclaim changes nothing on them."""
    make_ready(db)
    tid = connection_to_sapa(db)
    now = clock.now()
    lease = timedelta(minutes=15)
    claimed = outbox.claim(db, t(SAPA_NOTICE_AT), now, "slow", 10, lease)
    assert {r["notification"] for r in claimed} == {"reminder", "sapa-notice"}
    engine.advance(db, tid, "request_display", act("2021-08-18T09:00", "sapa-owner"))
    reminder = _step4(db, tid)["reminder"]
    assert reminder["status"] == "cancelled"
    rid = reminder["id"]
    assert not outbox.record_sent(db, rid, "slow", now, ["x@y.dk"], "<m@x>")
    assert outbox.record_failure(db, rid, "slow", now, "451", now, 5) == "lost"
    assert not outbox.release(db, rid, "slow", now)
    assert not outbox.record_cancelled(db, rid, "slow", now, "x")
    handed, cancelled = outbox.hand_over(db, claimed, "slow", now, lease)
    assert [r["notification"] for r in handed] == ["sapa-notice"] and cancelled == []
    outbox.reclaim_stale(db, now + 2 * lease, 5)
    after = _step4(db, tid)
    assert after["reminder"]["status"] == "cancelled" and after["reminder"]["attempts"] == 0
    assert after["sapa-notice"]["status"] == "pending" and after["sapa-notice"]["attempts"] == 1
    assert "may have been delivered" in after["sapa-notice"]["last_error"]


def _connection_v2(tmp_path: Path) -> Path:
    """connection v2: step 4 renamed (sapa_request -> notify_sapa), as in the migrate help."""
    source = Path("workflows/definitions/connection.yaml").read_text(encoding="utf-8")
    v2 = source.replace("version: 1", "version: 2", 1).replace("sapa_request", "notify_sapa")
    path = tmp_path / "connection-v2.yaml"
    path.write_text(v2, encoding="utf-8")
    return path


def test_exactly_once_renaming_migration_sends_the_kept_notice_once(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """workflow migrate --map sapa_request=notify_sapa (the help's example) carries step 4's
    rows to notify_sapa: one sapa@kombit.dk notice, one reminder, on their old Message-IDs."""
    make_ready(db)
    _contacts(db, tmp_path, ("Køge",))
    tid = connection_to_sapa(db)
    before = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)}
    definitions.add_file(db, _connection_v2(tmp_path))
    result = CliRunner().invoke(cli.cli, [
        "workflow", "migrate", "connection", "--map", "sapa_request=notify_sapa",
        "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    rows = outbox.list_rows(db, track_id=tid)
    step4 = [r for r in rows if r["entry_seq"] == before["sapa-notice"]["entry_seq"]]
    assert {r["state"] for r in step4} == {"notify_sapa"} and len(step4) == len(
        [r for r in before.values() if r["state"] == "sapa_request"])
    assert [r["notification"] for r in rows].count("sapa-notice") == 1
    summary = send_due(db, t("2021-08-18T12:00"), smtp_config(smtp_server, db_path))
    assert summary.sent == 2 and summary.ok
    [notice] = smtp_server.to("sapa@kombit.dk")
    assert notice.message_id.startswith(f"<t{tid}.e{before['sapa-notice']['entry_seq']}.")
    assert len(smtp_server.to("sapa0@kommune.dk")) == 1


PROBE = """
name: probe-rename
version: 1
title: Probe
subject: municipality-system
initial: open
states:
  - name: open
    label: Åben sag
    role: coordinator
    notifications:
      - {name: hello, kind: notice, when: {after_entry: 5}, to: [sapa@kombit.dk],
         template: notice}
  - name: next
    label: Næste
    role: coordinator
  - name: done
    label: Færdig
    final: true
transitions:
  - {trigger: go, source: open, dest: next, roles: [coordinator]}
  - {trigger: finish, source: next, dest: done, roles: [coordinator]}
"""


def test_exactly_once_kept_notice_of_a_renamed_state_shows_its_label(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """A notice kept after its step was done, whose state a later version renamed, is sent
    with the step's label from the version that had it, never the raw state name."""
    (tmp_path / "v1.yaml").write_text(PROBE, encoding="utf-8")
    definitions.add_file(db, tmp_path / "v1.yaml")
    tid = int(engine.start(db, "probe-rename", engine.Subject(municipality="Køge",
                           system="Momentum"), act("2021-06-01T10:00"))["id"])
    engine.advance(db, tid, "go", act("2021-06-02T10:00"))
    v2 = PROBE.replace("version: 1", "version: 2").replace("name: open", "name: opened")
    v2 = v2.replace("initial: open", "initial: opened").replace("source: open", "source: opened")
    (tmp_path / "v2.yaml").write_text(v2, encoding="utf-8")
    definitions.add_file(db, tmp_path / "v2.yaml")
    engine.migrate(db, "probe-rename", 2, {}, act("2021-06-03T10:00"))
    assert send_due(db, t("2021-06-09T12:00"), smtp_config(smtp_server, db_path)).sent == 1
    [mail] = smtp_server.to("sapa@kombit.dk")
    assert "Åben sag" in mail.subject and "Åben sag" in mail.text()
    assert "open" not in mail.subject and "open" not in mail.text()


# --- killed right after claiming ------------------------------------------------------------


class _Silent:
    """A TCP server that accepts connections and never says a word (not even the greeting)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def _sending(path: Path, pid: int) -> int:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT count(*) FROM outbox WHERE status = 'sending' AND claimed_by LIKE ?",
            [f"%:{pid}:%"],
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def test_exactly_once_five_kills_after_the_claim_cost_no_attempt(
    db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """Five real 'reminders send-due' processes SIGKILLed right after they claimed (the server
    never answers), each after the last one's lease ran out: every row is then pending with
    no attempt and no "may have been delivered", and the next run sends each exactly once."""
    setup = open_existing(db_path)
    make_ready(setup)
    _contacts(setup, tmp_path, TOWNS)
    for town in TOWNS:
        connection_to_sapa(setup, town)
    due = len(outbox.list_rows(setup, ("pending",), until=t(SAPA_NOTICE_AT)))
    setup.close()
    assert due == 2 * len(TOWNS)
    silent = _Silent()
    lease = timedelta(seconds=900)
    start = t(SAPA_NOTICE_AT)
    env = {
        "ONBOARDING_SMTP_HOST": "127.0.0.1",
        "ONBOARDING_SMTP_PORT": str(silent.port),
        "ONBOARDING_SMTP_SECURITY": "none",
        "ONBOARDING_MAIL_FROM": "onboarding@kombit.test",
    }
    try:
        for k in range(5):
            now = (start + k * (lease + timedelta(minutes=1))).astimezone(clock.LOCAL)
            proc = rel.cli_process(db_path, "reminders", "send-due", "--at", SAPA_NOTICE_AT,
                                   ONBOARDING_NOW=now.isoformat(), **env)
            deadline = time.monotonic() + 30
            while _sending(db_path, proc.pid) < due:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
    finally:
        silent.close()
    db = open_existing(db_path)
    try:
        later = start + 5 * (lease + timedelta(minutes=1))
        assert outbox.reclaim_stale(db, later, 5) == due
        rows = outbox.list_rows(db, ("pending", "sending", "failed"), until=start)
        assert len(rows) == due
        assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)
        assert not any("may have been delivered" in (r["last_error"] or "") for r in rows)
        summary = send_due(db, start, smtp_config(smtp_server, db_path), now=later)
        assert summary.sent == due and summary.ok
        ids = [int(m.message["X-Onboarding-Outbox"]) for m in smtp_server.messages]
        assert sorted(ids) == sorted(r["id"] for r in rows)
        sent = outbox.list_rows(db, ("sent",))
        assert len(sent) == due and all(r["attempts"] == 1 for r in sent)
    finally:
        db.close()


# --- a digest template that fails -----------------------------------------------------------


def test_exactly_once_broken_digest_template_fails_its_rows_and_the_run(
    db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """A user's da/_digest.txt with a runtime error: the rows of that digest are failed with
    the error, the other messages go, nothing is left in 'sending', and send-due exits 3."""
    db = open_existing(db_path)
    make_ready(db)
    add_contacts(db, tmp_path, [
        {"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"},
        {"role": "sapa-owner", "name": "Sofie", "email": "sofie@koege.dk", "municipality": "Køge"},
        {"role": "sapa-owner", "name": "Gert", "email": "gert@greve.dk", "municipality": "Greve"},
    ])
    for town in ("Køge", "Greve"):
        connection_to_sapa(db, town)
    db.close()
    folder = tmp_path / "my-templates" / "da"
    folder.mkdir(parents=True)
    (folder / "_digest.txt").write_text("{{ items | length // 0 }}\n", encoding="utf-8")
    (db_path.parent / "onboarding.toml").write_text(
        '[mail]\ntemplates = "my-templates"\ndigest = true\n', encoding="utf-8")
    result = CliRunner().invoke(
        cli.cli, ["reminders", "send-due", "--at", "2021-08-25T08:00", "--db", str(db_path)],
        env=smtp_server.env())
    assert result.exit_code == 3, (result.output, result.exception)
    assert result.stderr.startswith("send-due: not everything due was sent: 2 failed")
    db = open_existing(db_path)
    try:
        failed = outbox.list_rows(db, ("failed",))
        assert [r["notification"] for r in failed] == ["overdue-2", "overdue-2"]
        assert all("_digest" in r["last_error"] and "ZeroDivisionError" in r["last_error"]
                   and r["attempts"] == 0 for r in failed)
        assert outbox.list_rows(db, ("sending",)) == []
    finally:
        db.close()
    assert smtp_server.to("kim@kombit.dk") == []
    assert len(smtp_server.to("sapa@kombit.dk")) == 2


def test_exactly_once_renamed_step_still_withdraws_its_event_when_cancelled(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """A migration is not a new state entry for the calendar either: step 4's reminder sent,
    the step renamed by a migration, then the track cancelled before the deadline: the SAPA
    owner still gets the withdrawal of that step's event."""
    make_ready(db)
    _contacts(db, tmp_path, ("Køge",))
    tid = connection_to_sapa(db)
    config = smtp_config(smtp_server, db_path)
    send_due(db, t("2021-08-13T08:00"), config)  # step 4's reminder, with its event
    assert len(smtp_server.to("sapa0@kommune.dk")) == 1
    definitions.add_file(db, _connection_v2(tmp_path))
    result = CliRunner().invoke(cli.cli, [
        "workflow", "migrate", "connection", "--map", "sapa_request=notify_sapa",
        "--at", "2021-08-13T09:00", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    engine.advance(db, tid, "cancel", engine.Act(actor="t", role="coordinator",
                   at=t("2021-08-16T09:00")), {"reason": "opgivet"})
    withdrawals = [r for r in outbox.list_rows(db, track_id=tid)
                   if r["notification"].startswith("calendar.")]
    assert [r["recipients"] for r in withdrawals] == [["sapa0@kommune.dk"]]
