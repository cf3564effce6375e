"""Shared by the web tests: the demo database with test actors, built once per test run, and
helpers to log in and read CSRF tokens with Starlette's TestClient."""

from __future__ import annotations

import atexit
import contextlib
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from onboarding import actors, demo
from onboarding.db import open_existing
from onboarding.errors import OnboardingError

#: The demo's clock stops here; the web tests run at that moment too.
DEMO_NOW = "2021-06-30T17:00"
PASSWORD = "korrekt-hest-42"
COORDINATOR = "test-koordinator"
#: Aarhus's project lead and agreement administrators (Aarhus only).
AARHUS = "test-aarhus"

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _add(db_path: Path) -> None:
    db = open_existing(db_path)
    try:
        for name, display, grants in (
            (COORDINATOR, "Kim Koordinator", [("coordinator", None)]),
            (
                AARHUS,
                "Aase Aarhus",
                [
                    (r, "Aarhus")
                    for r in ("municipality-pl", "agreement-admin", "bob-agreement-admin")
                ],
            ),
        ):
            actors.add(db, name, display_name=display, password=PASSWORD)
            for role, municipality in grants:
                actors.grant(db, name, role, municipality=municipality)
        # The status import acts as 'import' in role importer (onboarding.status_import).
        with contextlib.suppress(OnboardingError):  # unless the demo registered it
            actors.add(db, "import", display_name="Månedlig statusimport")
        actors.grant(db, "import", "importer")
    finally:
        db.close()


@cache
def demo_template() -> Path:
    """The demo database (with its reminders) plus the test actors, built once per run."""
    folder = Path(tempfile.mkdtemp(prefix="onboarding-web-demo-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    result = demo.run(folder / "demo", echo=lambda _text: None)
    _add(result.database)
    return Path(result.database)


def fresh_db(directory: Path) -> Path:
    """A private copy of the demo database in ``directory`` (the template stays untouched)."""
    target = directory / "onboarding.db"
    src = sqlite3.connect(demo_template())
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def without_csrf(html: str) -> str:
    """The page with its CSRF tokens' values replaced (to compare two pages' text)."""
    return _CSRF.sub('name="csrf" value="csrf"', html)


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: TestClient, name: str = COORDINATOR, password: str = PASSWORD) -> None:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"csrf": token, "name": name, "password": password, "next": "/grid"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/grid"


#: The page's own bookkeeping (issue 13): sessions and failed logins. A request that changes
#: nothing still records its session (a flash message, the last use), so "nothing written"
#: means: every other table's rows are unchanged.
BOOKKEEPING = ("web_sessions", "login_attempts")


def data_snapshot(db_path: Path) -> str:
    """A SQL dump of the database without the page's bookkeeping tables (``BOOKKEEPING``)."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        lines = [
            line
            for line in conn.iterdump()
            if not any(f'"{t}"' in line.split("(")[0] for t in BOOKKEEPING)
        ]
    finally:
        conn.close()
    return "\n".join(lines)


def wait_listening(proc: subprocess.Popen[bytes], port: int, seconds: float = 30) -> None:
    """Return once ``onboarding serve`` (``proc``) accepts connections on ``port``; fail the
    test with what it printed (if it printed to a pipe) when it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                proc.kill()
                pytest.fail(f"onboarding serve did not start: {out}")
            time.sleep(0.1)
