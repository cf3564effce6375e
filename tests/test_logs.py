"""Structured logs (issue 15): ``serve`` and ``scheduler run`` with ``--log-format json`` write
one JSON object per event on stderr (request, transition, claim, send, failure), never a
password or a token. Real processes, a real SMTP server with STARTTLS and login."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from sqlite_utils import Database

from onboarding import actors, engine, logs
from tests.mailserver import MailServer
from tests.notify_support import act, connection_to_sapa, make_ready

ROOT = Path(__file__).parent.parent
PASSWORD = "korrekt-hest-42-LOGTEST"
SMTP_PASSWORD = "smtp-s3cret-LOGTEST"
WRONG_SMTP_PASSWORD = "wr0ng-smtp-LOGTEST"
METRICS_TOKEN = "metrics-tok-LOGTEST"
SECRETS = (PASSWORD, SMTP_PASSWORD, WRONG_SMTP_PASSWORD, METRICS_TOKEN)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as it was (``logs.setup`` replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line must be one JSON object (anything else fails the test)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            obj = json.loads(line)
            assert isinstance(obj, dict), line
            out.append(obj)
    return out


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.usefixtures("root_logging")
def test_logs_scrub_passwords_and_tokens_in_both_formats() -> None:
    """A field named like a secret is redacted and a bearer token in any text is cut out, in
    JSON and in text lines."""
    for fmt in logs.FORMATS:
        stream = io.StringIO()
        logs.setup(fmt, stream=stream)
        log = logging.getLogger("test.logs")
        logs.event(log, "request", password=PASSWORD, smtp_password=SMTP_PASSWORD,
                   note=f"Authorization: Bearer {METRICS_TOKEN}", headers={"Cookie": "x=1"})
        log.warning("plain record with Bearer %s inside", METRICS_TOKEN)
        text = stream.getvalue()
        _no_secret(text)
        assert logs.REDACTED in text
        if fmt == "json":
            first, second = _json_lines(text)
            assert first["event"] == "request" and first["password"] == logs.REDACTED
            assert first["headers"] == {"Cookie": logs.REDACTED}
            assert second["event"] == "log" and second["level"] == "warning"


@pytest.mark.usefixtures("root_logging")
def test_logs_transition_event_once_committed(db: Database) -> None:
    """An advance logs one ``transition`` event (track, trigger, new state and version); a bulk
    advance one event with the number of tracks."""
    stream = io.StringIO()
    logs.setup("json", stream=stream)
    tid = make_ready(db)
    [*_, last] = [e for e in _json_lines(stream.getvalue()) if e["event"] == "transition"]
    assert last["track"] == tid and last["trigger"] == "pass_compliance"
    assert last["version"] == 4 and last["actor"] and last["role"] == "coordinator"
    assert isinstance(last["to"], str)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


def test_serve_json_logs_requests_and_transitions_without_secrets(
    db: Database, db_path: Path
) -> None:
    """``serve --log-format json``: a log-in, a step taken on the page, a scrape with the
    metrics token give one JSON object per line on stderr: a request event for each (path
    without its query), a transition event; no password, token or cookie anywhere."""
    make_ready(db)
    tid = int(engine.start(
        db, "connection", engine.Subject(municipality="Køge", system="Momentum"),
        act("2021-06-01T09:00"),
    )["id"])
    actors.add(db, "kim", display_name="Kim", password=PASSWORD)
    actors.grant(db, "kim", "coordinator")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--db", str(db_path), "--port", str(port),
         "--log-format", "json"],
        cwd=ROOT, env=_env(ONBOARDING_METRICS_TOKEN=METRICS_TOKEN),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
            assert csrf
            login = client.post("/login", data={
                "csrf": csrf.group(1), "name": "kim", "password": PASSWORD, "next": "/grid"})
            assert login.status_code == 303, login.text
            page = client.get(f"/tracks/{tid}")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf
            step = client.post(f"/tracks/{tid}/advance", data={
                "csrf": csrf.group(1), "trigger": "agree_date", "role": "coordinator",
                "field_connection_date": "2026-12-31", "version": "1"},
                headers={"Origin": base})
            assert step.status_code == 303, step.text
            scrape = client.get(f"/metrics?token={METRICS_TOKEN}",
                                headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert scrape.status_code == 200
            cookies = [c.value for c in client.cookies.jar]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    _no_secret(err)
    for cookie in cookies:
        assert cookie not in err
    events = _json_lines(err)
    requests = [e for e in events if e["event"] == "request"]
    assert {(e["method"], e["route"], e["status"]) for e in requests} >= {
        ("POST", "/login", 303),
        ("GET", "/tracks/{track_id:int}", 200),
        ("POST", "/tracks/{track_id:int}/advance", 303),
    }
    assert all("?" not in e["path"] for e in requests)
    assert all(isinstance(e["ms"], float) and e["level"] == "info" for e in requests)
    [transition] = [e for e in events if e["event"] == "transition"]
    assert transition["track"] == tid and transition["actor"] == "kim"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_login(ca: trustme.CA, db_path: Path) -> Iterator[MailServer]:
    """A STARTTLS server that wants a login, and the config file that points at it."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    server = MailServer(starttls=ctx, users={"onboarding": SMTP_PASSWORD})
    ca.cert_pem.write_to_path(str(db_path.parent / "ca.pem"))
    (db_path.parent / "onboarding.toml").write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "starttls"\n'
        'ca_file = "ca.pem"\ntimeout = 10\n[mail]\nfrom = "KOMBIT <onboarding@kombit.test>"\n',
        encoding="utf-8",
    )
    yield server
    server.stop()


def _scheduler_until(db_path: Path, password: str, wanted: str) -> list[dict[str, Any]]:
    """Run ``scheduler run --log-format json`` until it logs the event ``wanted``, then
    SIGTERM it; return every event it logged (each stderr line parsed as JSON)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "scheduler", "run", "--db", str(db_path),
         "--interval", "60", "--log-format", "json"],
        cwd=ROOT,
        env=_env(ONBOARDING_SMTP_USER="onboarding", ONBOARDING_SMTP_PASSWORD=password,
                 PYTHONFAULTHANDLER="1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if json.loads(line)["event"] == wanted:
                break
        proc.send_signal(signal.SIGTERM)
        try:
            _, rest = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # show where it hangs (faulthandler's dump)
            proc.send_signal(signal.SIGABRT)
            _, rest = proc.communicate(timeout=30)
            pytest.fail("scheduler did not stop:\n" + "".join(lines) + rest)
    finally:
        watchdog.cancel()
    text = "".join(lines) + rest
    assert proc.returncode == 0, text
    _no_secret(text)
    return _json_lines(text)


@pytest.mark.usefixtures("no_mail_env")
def test_scheduler_json_logs_claim_send_and_failure_without_secrets(
    db: Database, db_path: Path, smtp_login: MailServer
) -> None:
    """``scheduler run --log-format json``: a refused login gives claim and failure events, a
    good one claim and send events (row, status, Message-ID, number of recipients); neither
    SMTP password appears, and every line is a JSON object."""
    make_ready(db)
    connection_to_sapa(db)
    refused = _scheduler_until(db_path, WRONG_SMTP_PASSWORD, "sweep")
    names = [e["event"] for e in refused]
    assert names[0] == "start" and "claim" in names and names[-1] == "stop"
    login = [e for e in refused if e["event"] == "failure" and "login" in e["error"]]
    assert login and all(e["level"] == "warning" for e in login)
    assert not smtp_login.messages

    sent = _scheduler_until(db_path, SMTP_PASSWORD, "sweep")
    sends = [e for e in sent if e["event"] == "send" and e["status"] == "sent"]
    assert sends and all(e["message_id"] and e["recipients"] >= 1 for e in sends)
    assert "claim" in [e["event"] for e in sent]
    assert smtp_login.messages
