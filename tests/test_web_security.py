"""The web page's security: login, CSRF, scope, no writes on GET; each refusal writes nothing.

"Nothing written" is checked with ``tests.web_support.data_snapshot``: a full SQL dump, before
and after, of every table but the page's own sessions and failed logins.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import click
import pytest
from starlette.testclient import TestClient

import cli
from onboarding.web import create_app
from tests.web_support import (
    AARHUS,
    COORDINATOR,
    DEMO_NOW,
    PASSWORD,
    csrf_of,
    fresh_db,
    login,
)

# Sessions are rows now (issue 13): "nothing written" compares every table but the
# page's own bookkeeping (sessions, failed logins).
from tests.web_support import data_snapshot as snapshot


@pytest.fixture
def web_db(tmp_path: Path) -> Path:
    return fresh_db(tmp_path)


@pytest.fixture
def anonymous(web_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    with TestClient(create_app(web_db)) as c:
        yield c


def _track(db: Path, state: str, municipality: str | None = None, other: bool = False) -> int:
    sql = (
        "SELECT t.id FROM tracks t JOIN municipalities m ON m.code = t.municipality_code"
        " WHERE t.definition = 'connection' AND t.state = ? AND t.final = 0"
    )
    params: list[object] = [state]
    if municipality:
        sql += " AND m.name " + ("!=" if other else "=") + " ?"
        params.append(municipality)
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(sql + " ORDER BY t.id LIMIT 1", params).fetchone()
    finally:
        conn.close()
    assert row, (state, municipality)
    return int(row[0])


def test_web_security_anonymous_requests_are_refused(anonymous: TestClient, web_db: Path) -> None:
    """Every page but login redirects an anonymous visitor to it; a POST is refused outright."""
    for path in (
        "/",
        "/grid",
        "/tracks/1",
        "/municipalities/751",
        "/bulk",
        "/import",
        "/reports/rollout",
        "/reports/rollout.csv",
        "/notifications",
    ):
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path
    assert anonymous.get("/grid", follow_redirects=False).headers["location"] == (
        "/login?next=%2Fgrid"
    )
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/style.css").status_code == 200
    track = _track(web_db, "date_agreement")
    token = csrf_of(anonymous.get("/login").text)  # a valid token of an anonymous session
    before = snapshot(web_db)
    response = anonymous.post(
        f"/tracks/{track}/advance",
        data={"csrf": token, "trigger": "cancel", "role": "coordinator", "field_reason": "x"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert snapshot(web_db) == before


def test_web_security_forged_csrf_token_is_refused(anonymous: TestClient, web_db: Path) -> None:
    """A logged-in session's POST with a wrong or missing CSRF token is refused, unwritten."""
    login(anonymous)
    track = _track(web_db, "date_agreement")
    real = csrf_of(anonymous.get(f"/tracks/{track}").text)
    before = snapshot(web_db)
    form = {"trigger": "cancel", "role": "coordinator", "field_reason": "forged"}
    for token in ("forged-" + real[7:], "", None):
        data = dict(form) if token is None else {**form, "csrf": token}
        response = anonymous.post(f"/tracks/{track}/advance", data=data)
        assert response.status_code == 403
        assert "udløbet" in response.text  # "the form has expired or did not come from here"
    assert snapshot(web_db) == before
    # The same form with the real token goes through (so the refusals above were the token's).
    ok = anonymous.post(
        f"/tracks/{track}/advance", data={**form, "csrf": real}, follow_redirects=False
    )
    assert ok.status_code == 303


def test_web_security_login_needs_a_csrf_token(anonymous: TestClient) -> None:
    """The login form is protected too (no logging a victim in as someone else)."""
    response = anonymous.post("/login", data={"name": COORDINATOR, "password": PASSWORD})
    assert response.status_code == 403
    assert anonymous.get("/grid", follow_redirects=False).status_code == 303


def test_web_security_out_of_scope_actor_gets_not_found(
    anonymous: TestClient, web_db: Path
) -> None:
    """Aarhus's agreement administrator can neither read nor act on another municipality's
    track: both answer 404 as for an unknown track (need-to-know, issue 13; it used to see the
    page and get the engine's refusal), and nothing is written."""
    login(anonymous, AARHUS)
    track = _track(web_db, "service_agreements", "Aarhus", other=True)
    page = anonymous.get(f"/tracks/{track}")
    assert page.status_code == 404 and 'action="/tracks/' not in page.text
    before = snapshot(web_db)
    response = anonymous.post(
        f"/tracks/{track}/advance",
        data={
            "csrf": csrf_of(anonymous.get("/grid").text),
            "trigger": "approve_agreements",
            "role": "agreement-admin",
        },
    )
    assert response.status_code == 404
    assert f"track #{track} is" not in unescape(response.text)
    assert snapshot(web_db) == before


def test_web_security_in_scope_actor_may_act(anonymous: TestClient, web_db: Path) -> None:
    """The same actor sees and may take the step on its own municipality's track."""
    login(anonymous, AARHUS)
    track = _track(web_db, "data_processing_agreement", "Aarhus")
    page = anonymous.get(f"/tracks/{track}").text
    assert f'action="/tracks/{track}/advance"' in page
    response = anonymous.post(
        f"/tracks/{track}/advance",
        data={"csrf": csrf_of(page), "trigger": "update_dpa", "role": "bob-agreement-admin"},
        follow_redirects=False,
    )
    assert response.status_code == 303


def test_web_security_get_never_changes_state(anonymous: TestClient, web_db: Path) -> None:
    """State-changing addresses refuse GET (405); a bulk preview by GET is a dry run."""
    login(anonymous)
    track = _track(web_db, "date_agreement")
    before = snapshot(web_db)
    for path in (
        f"/tracks/{track}/advance?trigger=cancel&role=coordinator&field_reason=x",
        "/bulk/apply?definition=connection&trigger=cancel&role=coordinator&ids=1",
        "/import/apply?token=x",
        "/notifications/1/retry",
        "/logout",
        "/language?lang=en",
    ):
        assert anonymous.get(path).status_code == 405, path
    preview = anonymous.get(
        "/bulk",
        params={
            "definition": "connection",
            "state": "date_agreement",
            "trigger": "cancel",
            "role": "coordinator",
            "sets": "reason=x",
            "preview": "1",
        },
    )
    assert preview.status_code == 200 and "kan flyttes" in preview.text
    assert snapshot(web_db) == before
    assert anonymous.get("/grid").status_code == 200  # still logged in: /logout by GET did nothing


def test_web_security_login_attempts_are_throttled(anonymous: TestClient) -> None:
    """After five wrong passwords for a name from one address even the right one is refused."""
    token = csrf_of(anonymous.get("/login").text)
    for _ in range(5):
        wrong = anonymous.post(
            "/login", data={"csrf": token, "name": COORDINATOR, "password": "gæt"}
        )
        assert wrong.status_code == 401 and "Forkert brugernavn eller adgangskode" in wrong.text
    right = anonymous.post(
        "/login", data={"csrf": token, "name": COORDINATOR, "password": PASSWORD}
    )
    assert right.status_code == 429 and "For mange mislykkede forsøg" in right.text
    assert anonymous.get("/grid", follow_redirects=False).status_code == 303


def test_web_security_session_cookie_is_signed_httponly_samesite(anonymous: TestClient) -> None:
    """The session cookie is HttpOnly and SameSite=Lax, and a tampered one is not accepted."""
    token = csrf_of(anonymous.get("/login").text)
    response = anonymous.post(
        "/login",
        data={"csrf": token, "name": COORDINATOR, "password": PASSWORD},
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"]
    assert "onboarding_session=" in cookie
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    value = anonymous.cookies["onboarding_session"]
    assert anonymous.get("/grid", follow_redirects=False).status_code == 200
    anonymous.cookies.clear()
    anonymous.cookies.set(
        "onboarding_session", value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB")
    )
    assert anonymous.get("/grid", follow_redirects=False).status_code == 303


def test_web_security_wrong_password_and_unknown_name_look_alike(anonymous: TestClient) -> None:
    """A wrong password and an unknown actor get the same answer."""
    token = csrf_of(anonymous.get("/login").text)
    a = anonymous.post("/login", data={"csrf": token, "name": COORDINATOR, "password": "nej"})
    b = anonymous.post("/login", data={"csrf": token, "name": "ukendt", "password": "nej"})
    assert a.status_code == b.status_code == 401
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", a.text) == strip.sub("", b.text)


def test_web_security_cross_site_post_and_open_redirect_refused(
    anonymous: TestClient, web_db: Path
) -> None:
    """A POST whose Origin is another site is refused; login's next never leaves the site."""
    token = csrf_of(anonymous.get("/login").text)
    evil = anonymous.post(
        "/login",
        data={"csrf": token, "name": COORDINATOR, "password": PASSWORD},
        headers={"Origin": "http://evil.example"},
    )
    assert evil.status_code == 403
    response = anonymous.post(
        "/login",
        data={"csrf": token, "name": COORDINATOR, "password": PASSWORD, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_web_security_headers_forbid_framing_and_foreign_scripts(anonymous: TestClient) -> None:
    """Pages carry a strict content security policy and are never cached."""
    response = anonymous.get("/login")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "http" not in re.sub(r'(href|src|action)="/', "", response.text.split("<body")[0])


def test_web_security_serve_binds_loopback_by_default() -> None:
    """'onboarding serve' listens on 127.0.0.1 unless told otherwise."""
    command = cli.cli.get_command(click.Context(cli.cli), "serve")
    assert command is not None
    host = next(p for p in command.params if p.name == "host")
    assert host.default == "127.0.0.1"


def test_web_security_import_needs_a_coordinator_for_all(
    anonymous: TestClient, web_db: Path
) -> None:
    """An actor scoped to one municipality may not import a status file (it acts for all)."""
    login(anonymous, AARHUS)
    token = csrf_of(anonymous.get("/import").text)
    before = snapshot(web_db)
    response = anonymous.post(
        "/import",
        data={"csrf": token},
        files={"file": ("s.csv", b"municipality,system,status,date\n", "text/csv")},
    )
    assert response.status_code == 403
    assert (
        "det kræver rollen KOMBIT-koordinator eller månedlig statusimport for alle"
        in unescape(response.text)
    )
    assert snapshot(web_db) == before


def test_web_security_deactivated_actor_loses_the_session(
    anonymous: TestClient, web_db: Path
) -> None:
    """A session ends as soon as its actor is deactivated."""
    from onboarding import actors
    from onboarding.db import open_existing

    login(anonymous, AARHUS)
    assert anonymous.get("/grid", follow_redirects=False).status_code == 200
    db = open_existing(web_db)
    try:
        actors.set_active(db, AARHUS, False)
    finally:
        db.close()
    assert anonymous.get("/grid", follow_redirects=False).status_code == 303


def test_web_security_open_database_says_how_to_add_an_actor(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no actor registered nobody can log in, and the login page says what to do."""
    with TestClient(create_app(db_path)) as c:
        page = c.get("/login").text
        assert "Ingen kan logge ind endnu" in page and "onboarding actor add" in page
        token = csrf_of(page)
        response = c.post("/login", data={"csrf": token, "name": "root", "password": "x" * 10})
        assert response.status_code == 401
