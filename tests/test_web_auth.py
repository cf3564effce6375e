"""Logging in and sessions (issue 13): sessions that end, a throttle nobody can turn against
others, and the command line's unlock and revocation. HTTP level with Starlette's TestClient
against a real SQLite file (the demo database); the clock is pinned with ``ONBOARDING_NOW``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

import cli
from onboarding import clock
from onboarding.db import open_existing
from onboarding.web import create_app
from tests.web_support import AARHUS, COORDINATOR, DEMO_NOW, PASSWORD, csrf_of, fresh_db, login

#: The session cookie's name (a literal, so these tests also run against older code).
COOKIE = "onboarding_session"


@pytest.fixture
def web_db(tmp_path: Path) -> Path:
    return fresh_db(tmp_path)


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)


@pytest.fixture
def client(web_db: Path, app_env: None) -> Iterator[TestClient]:
    with TestClient(create_app(web_db)) as c:
        yield c


def _at(monkeypatch: pytest.MonkeyPatch, minutes: float) -> None:
    """Move the pinned clock to ``minutes`` after the demo's moment."""
    moment = clock.parse_time(DEMO_NOW) + timedelta(minutes=minutes)
    local = moment.astimezone(clock.LOCAL)  # $ONBOARDING_NOW is read as Copenhagen time
    monkeypatch.setenv("ONBOARDING_NOW", local.strftime("%Y-%m-%dT%H:%M:%S"))


def _try_login(client: TestClient, name: str, password: str) -> int:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"csrf": token, "name": name, "password": password, "next": "/grid"},
        follow_redirects=False,
    )
    return response.status_code


def _with_cookie(app: object, value: str) -> TestClient:
    other = TestClient(app)  # type: ignore[arg-type]
    other.cookies.set(COOKIE, value)
    return other


def _cli(db: Path, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli.cli, [*args, "--db", str(db)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


# --- sessions that end ----------------------------------------------------------------------


def test_web_auth_cookie_copied_before_logout_is_refused_after(client: TestClient) -> None:
    """A session cookie captured before logout neither loads a page nor posts a form after."""
    login(client)
    captured = client.cookies[COOKIE]
    token = csrf_of(client.get("/grid").text)
    client.post("/logout", data={"csrf": token}, follow_redirects=False)
    thief = _with_cookie(client.app, captured)
    assert thief.get("/grid", follow_redirects=False).status_code == 303
    response = thief.post(
        "/language", data={"csrf": token, "lang": "en", "next": "/grid"}, follow_redirects=False
    )
    assert response.status_code == 403  # its CSRF token died with the session


def test_web_auth_cookie_holds_only_an_opaque_id(client: TestClient, web_db: Path) -> None:
    """The cookie is a random token; the table keeps its SHA-256, never the token or a name."""
    login(client)
    value = client.cookies[COOKIE]
    assert COORDINATOR not in value and len(value) >= 40
    conn = sqlite3.connect(web_db)
    try:
        rows = conn.execute(
            "SELECT token_hash, actor, data FROM web_sessions WHERE actor = ?", [COORDINATOR]
        ).fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == [hashlib.sha256(value.encode()).hexdigest()]
    assert value not in repr(rows)


def test_web_auth_login_issues_a_new_token(client: TestClient) -> None:
    """The token seen before login (a planted one, say) is worthless after it: no fixation."""
    client.get("/login")
    before = client.cookies[COOKIE]
    login(client)
    assert client.cookies[COOKIE] != before
    assert _with_cookie(client.app, before).get("/grid", follow_redirects=False).status_code == 303


def test_web_auth_session_ends_when_idle_and_at_its_lifetime(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour without a request ends a session; in use, it still ends 12 hours after login."""
    login(client)
    _at(monkeypatch, 59)
    assert client.get("/grid", follow_redirects=False).status_code == 200
    _at(monkeypatch, 59 + 61)
    assert client.get("/grid", follow_redirects=False).status_code == 303
    login(client)
    start = 59 + 61
    for step in range(1, 15):  # a request every 55 minutes keeps it alive until 12 hours
        _at(monkeypatch, start + 55 * step)
        expected = 200 if 55 * step < 12 * 60 else 303
        assert client.get("/grid", follow_redirects=False).status_code == expected, step


def test_web_auth_revoke_sessions_ends_them(client: TestClient, web_db: Path) -> None:
    """'actor sessions' lists a logged-in actor's session; 'actor revoke-sessions' ends it."""
    login(client, AARHUS)
    listed = _cli(web_db, "actor", "sessions", AARHUS)
    assert "testclient" in listed and "(none)" not in listed
    assert "1 session ended" in _cli(
        web_db, "actor", "revoke-sessions", AARHUS, "--actor", COORDINATOR
    )
    assert client.get("/grid", follow_redirects=False).status_code == 303
    assert "(none)" in _cli(web_db, "actor", "sessions", AARHUS)


def test_web_auth_revoke_sessions_needs_a_coordinator(web_db: Path) -> None:
    """Only a coordinator for all (or the actor itself) may end someone's sessions."""
    result = CliRunner().invoke(
        cli.cli,
        ["actor", "revoke-sessions", COORDINATOR, "--actor", AARHUS, "--db", str(web_db)],
    )
    assert result.exit_code == 2 and "may not manage actors" in result.stderr


def test_web_auth_new_password_ends_the_accounts_sessions(
    client: TestClient, web_db: Path
) -> None:
    """A change of password ends every session of the account, so a stolen one dies with it."""
    login(client, AARHUS)
    other = TestClient(client.app)
    login(other, COORDINATOR)
    _cli(web_db, "actor", "set-password", AARHUS, "--actor", COORDINATOR, stdin="nyt-hemmeligt-7\n")
    assert client.get("/grid", follow_redirects=False).status_code == 303
    assert other.get("/grid", follow_redirects=False).status_code == 200  # others keep theirs
    assert _try_login(client, AARHUS, "nyt-hemmeligt-7") == 303


# --- a throttle that protects without locking out ---------------------------------------------


def test_web_auth_failures_under_other_names_never_block_a_correct_password(
    client: TestClient,
) -> None:
    """From one (shared) address, 30 failures under made-up names: the address waits, yet
    accounts that logged in from it before still get in with their correct passwords."""
    for name in (COORDINATOR, AARHUS):
        assert _try_login(client, name, PASSWORD) == 303
        client.cookies.clear()
    for i in range(30):
        assert _try_login(client, f"gæt-{i}", "forkert-kode") in (401, 429)
    assert _try_login(client, "endnu-en", "forkert-kode") == 429  # the address's ceiling
    for name in (COORDINATOR, AARHUS):
        assert _try_login(client, name, PASSWORD) == 303, name
        client.cookies.clear()


def test_web_auth_backoff_doubles_per_account_and_address(web_db: Path, app_env: None) -> None:
    """Five failures are free; then the wait doubles (30 s, 60 s, ... at most 15 minutes), for
    that name from that address only; a correct login forgets the count."""
    from onboarding import logins

    db = open_existing(web_db)
    try:
        t = clock.now()
        for _ in range(4):
            logins.failed(db, "Kim", "10.0.0.1", t)
        assert logins.wait(db, "kim", "10.0.0.1", t) is None
        waits = []
        for n in range(8):
            logins.failed(db, "kim", "10.0.0.1", t)
            found = logins.wait(db, "KIM", "10.0.0.1", t)
            assert found is not None and found.reason == "account"
            waits.append(found.seconds)
            t += timedelta(seconds=found.seconds)
            assert logins.wait(db, "kim", "10.0.0.1", t) is None, n
        assert waits == [30, 60, 120, 240, 480, 900, 900, 900]
        assert logins.wait(db, "kim", "10.0.0.2", t) is None  # another address
        assert logins.wait(db, "other", "10.0.0.1", t) is None  # another name
        logins.succeeded(db, "kim", "10.0.0.1", t)
        logins.failed(db, "kim", "10.0.0.1", t)
        assert logins.wait(db, "kim", "10.0.0.1", t) is None
    finally:
        db.close()


def test_web_auth_right_password_waits_out_the_backoff(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a name waits from an address even its right password is refused (429); after
    the wait it gets in."""
    for _ in range(5):
        assert _try_login(client, COORDINATOR, "forkert-kode") == 401
    assert _try_login(client, COORDINATOR, PASSWORD) == 429
    _at(monkeypatch, 0.5)
    assert _try_login(client, COORDINATOR, PASSWORD) == 303


def test_web_auth_unlock_lets_the_account_in_at_once(client: TestClient, web_db: Path) -> None:
    """'onboarding actor unlock NAME' lifts the wait of a name (the page reads the table)."""
    for _ in range(7):
        _try_login(client, AARHUS, "forkert-kode")
    assert _try_login(client, AARHUS, PASSWORD) == 429
    out = _cli(web_db, "actor", "unlock", AARHUS, "--actor", COORDINATOR)
    assert "unlocked (1 address waiting)" in out
    assert _try_login(client, AARHUS, PASSWORD) == 303


# --- Secure and HSTS ------------------------------------------------------------------------


def test_web_auth_secure_cookie_and_hsts(web_db: Path, app_env: None) -> None:
    """``secure_cookies`` (serve --secure-cookies) marks the cookie Secure and sends HSTS;
    without it, a page served over plain HTTP has neither, one over HTTPS both."""

    def first_cookie(c: TestClient) -> tuple[str, str | None]:
        response = c.get("/login")
        return response.headers["set-cookie"], response.headers.get("strict-transport-security")

    with TestClient(create_app(web_db, secure_cookies=True)) as c:
        cookie, hsts = first_cookie(c)
        assert "Secure" in cookie and "HttpOnly" in cookie and hsts == "max-age=31536000"
    with TestClient(create_app(web_db)) as c:
        cookie, hsts = first_cookie(c)
        assert "Secure" not in cookie and hsts is None
    with TestClient(create_app(web_db), base_url="https://testserver") as c:
        cookie, hsts = first_cookie(c)
        assert "Secure" in cookie and hsts is not None


def test_web_auth_sessions_expire_rows_are_removed(
    client: TestClient, web_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions of visitors who never came back do not pile up: a new session removes them."""
    for _ in range(5):
        TestClient(client.app).get("/login")
    _at(monkeypatch, 24 * 60)
    client.get("/login")
    conn = sqlite3.connect(web_db)
    try:
        (count,) = conn.execute("SELECT count(*) FROM web_sessions").fetchone()
    finally:
        conn.close()
    assert count == 1
