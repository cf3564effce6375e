"""Errors as pages (issue 13): a malformed id, date or version answers 400 or 404 in the
user's language with the security headers, and nothing reachable by a URL answers 500.

The walk takes the routes from the app itself (``app.routes``) and learns the parameters
each handler reads by watching ``Page.query`` / ``Page.field``, so a route or a parameter
added later is walked too.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from onboarding.web import create_app
from onboarding.web.core import Page
from tests.web_support import (
    COORDINATOR,
    DEMO_NOW,
    PASSWORD,
    csrf_of,
    data_snapshot,
    fresh_db,
    login,
)

HUGE = "99999999999999999999999"
#: Values that have broken a parser somewhere: too large for SQLite, not ASCII digits,
#: impossible or far-future dates, negative, empty, long, markup.
MALFORMED = [
    HUGE,
    "9999-12-31",
    "2021-02-30",
    "²",
    "-1",
    "",
    "abc",
    "x" * 3000,
    "<b>'\"",
    "1e400",
]
#: Path parameter values by convertor: what ``{x:int}`` and ``{x}`` can be given.
PATH_VALUES = {"int": [HUGE, "0", str(2**63)], "str": ["x" * 300, "%00", "..", "ø"]}


#: Plausible values, so that one malformed parameter at a time gets past the others' checks
#: (a bulk step needs a workflow, a step and a role before it reads its track ids).
BASELINE = {
    "definition": "connection",
    "state": "date_agreement",
    "trigger": "cancel",
    "role": "coordinator",
    "sets": "reason=walk",
    "preview": "1",
    "lang": "da",
    "next": "/grid",
}
#: The malformed values tried one parameter at a time (the walk's inner loop).
ONE_AT_A_TIME = [HUGE, "²", "9999-12-31", "-1", "x" * 3000]


@pytest.fixture
def web_db(tmp_path: Path) -> Path:
    return fresh_db(tmp_path)


@pytest.fixture
def client(web_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    with TestClient(create_app(web_db), raise_server_exceptions=False) as c:
        login(c, COORDINATOR)
        yield c


def _headers_ok(response: object) -> bool:
    headers = response.headers  # type: ignore[attr-defined]
    csp = headers.get("content-security-policy", "")
    return "default-src 'self'" in csp and headers.get("x-frame-options") == "DENY"


def _paths(route: Route) -> list[str]:
    """The route's path with each parameter replaced by each malformed value of its kind."""
    out = []
    for kind in ("int", "str"):
        for value in PATH_VALUES[kind]:
            path = route.path
            for name, convertor in route.param_convertors.items():
                is_int = type(convertor).__name__ == "IntegerConvertor"
                if is_int != (kind == "int"):
                    break
                path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", value, path)
            else:
                out.append(path)
    return sorted(set(out)) or [route.path]


# --- the defects the issue lists --------------------------------------------------------------


def test_web_errors_huge_track_id_is_a_404_page(client: TestClient) -> None:
    """/tracks/99999999999999999999999 is "not found" in Danish, with the security headers."""
    response = client.get(f"/tracks/{HUGE}")
    assert response.status_code == 404
    assert "ikke fundet" in response.text and _headers_ok(response)


def test_web_errors_retry_of_a_huge_notification_id_is_a_404(client: TestClient) -> None:
    """POST /notifications/9999…/retry is a 404 page, not a 500."""
    token = csrf_of(client.get("/notifications").text)
    response = client.post(f"/notifications/{HUGE}/retry", data={"csrf": token})
    assert response.status_code == 404 and _headers_ok(response)


def test_web_errors_future_as_of_is_refused(client: TestClient) -> None:
    """A grid or report "as of" a day after today (9999-12-31 or tomorrow) is a 400 that says
    so in Danish; so is a date that cannot be read."""
    for day in ("9999-12-31", "2021-07-01"):
        for path in ("/grid", "/reports/rollout", "/reports/rollout.csv"):
            response = client.get(path, params={"as_of": day})
            assert response.status_code == 400, (path, day)
            assert "ligger i fremtiden" in response.text and _headers_ok(response)
    today = client.get("/grid", params={"as_of": "2021-06-30"})
    assert today.status_code == 200
    bad = client.get("/grid", params={"as_of": "2021-02-30"})
    assert bad.status_code == 400 and "er ikke en dato" in bad.text


def test_web_errors_non_numeric_version_is_refused(client: TestClient, web_db: Path) -> None:
    """A version field that is not a number is a 400 (never a step without the stale-edit
    check), and nothing is written."""
    page = client.get("/grid").text
    track = re.search(r'href="/tracks/(\d+)"', page)
    assert track
    token = csrf_of(client.get(f"/tracks/{track.group(1)}").text)
    before = data_snapshot(web_db)
    for version in ("abc", "", "²", HUGE, "-1"):
        response = client.post(
            f"/tracks/{track.group(1)}/advance",
            data={
                "csrf": token,
                "trigger": "cancel",
                "role": "coordinator",
                "field_reason": "test",
                "version": version,
            },
        )
        assert response.status_code == 400, version
        assert "ikke et tal" in response.text and _headers_ok(response)
    assert data_snapshot(web_db) == before


def test_web_errors_unknown_address_and_method_are_pages_in_the_users_language(
    client: TestClient,
) -> None:
    """An address no route answers is a 404 page, a wrong method a 405 with Allow; in Danish,
    or in English for a user who chose it."""
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "ikke fundet" in missing.text
    assert _headers_ok(missing)
    wrong = client.get("/logout")
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    assert _headers_ok(wrong)
    token = csrf_of(client.get("/grid").text)
    client.post("/language", data={"csrf": token, "lang": "en", "next": "/grid"})
    english = client.get(f"/tracks/{HUGE}")
    assert english.status_code == 404 and "Nothing was found" in english.text
    assert client.get("/grid", params={"as_of": "9999-12-31"}).text.count("in the future") == 1


# --- the walk -----------------------------------------------------------------------------------


def test_web_errors_every_route_with_malformed_parameters_answers_4xx(
    client: TestClient, web_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every route of the app, with malformed path parameters, and every query or form
    parameter its handler reads set to malformed values (all at once, then one at a time
    beside plausible others), answers below 500 with the security headers.

    Which parameters a handler reads is learnt by watching it: ``Page.query`` and
    ``Page.field`` note each name asked for, and the walk repeats with newly seen names
    until it sees no more (a handler may read some only once others pass)."""
    app = client.app
    asked: set[str] = set()
    for method in ("query", "field"):
        original = getattr(Page, method)

        def noting(self: Page, name: str, default: str = "", _original: Any = original) -> Any:
            asked.add(name)
            return _original(self, name, default)

        monkeypatch.setattr(Page, method, noting)
    walked: set[str] = set()
    failures: list[str] = []
    token = csrf_of(client.get("/grid").text)

    def check(method: str, path: str, values: dict[str, str], what: str) -> set[str]:
        asked.clear()
        if method == "GET":
            response = client.get(path, params=values)
        else:
            response = client.post(path, data={**values, "csrf": token})
        if response.status_code >= 500 or not _headers_ok(response):
            failures.append(f"{method} {path[:60]} {what}: {response.status_code}")
        return asked - {"csrf"}

    for route in app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            for path in (f"{route.path}/{HUGE}", f"{route.path}/..%2f..%2fetc%2fpasswd"):
                check("GET", path, {}, "")
            walked.add(route.path)
            continue
        assert isinstance(route, Route)
        if route.path == "/logout":
            continue  # walked last: it ends the session the walk runs in
        methods = sorted((route.methods or set()) - {"HEAD"})
        for path in _paths(route):
            for method in methods:
                params: set[str] = set()
                tried: set[str] = set()
                for _round in range(4):
                    params |= check(method, path, dict(BASELINE), "baseline")
                    for value in MALFORMED:
                        params |= check(
                            method, path, {n: value for n in params}, f"all={value[:20]!r}"
                        )
                    for name in sorted(params - tried):
                        for value in ONE_AT_A_TIME:
                            base = {n: BASELINE.get(n, "") for n in params}
                            params |= check(
                                method, path, {**base, name: value}, f"{name}={value[:20]!r}"
                            )
                        tried.add(name)
                    if params <= tried:
                        break
        walked.add(route.path)
    response = client.post("/logout", data={"csrf": token, "next": HUGE})
    assert response.status_code < 500 and _headers_ok(response)
    walked.add("/logout")
    every = {r.path for r in app.routes}  # type: ignore[attr-defined]
    assert walked == every
    assert not failures, "\n".join(failures)


def test_web_errors_bulk_with_huge_ids_or_codes_is_a_4xx(client: TestClient) -> None:
    """A bulk preview for municipality "²" or 99999999999999999999, and an apply of track id
    99999999999999999999, answer 4xx pages (the library resolved "²" with int(), and SQLite's
    driver overflowed on the large numbers)."""
    base = {"definition": "connection", "trigger": "cancel", "role": "coordinator"}
    for code in ("²", HUGE):
        response = client.get("/bulk", params={**base, "municipality": code, "preview": "1"})
        assert 400 <= response.status_code < 500 and _headers_ok(response), code
    token = csrf_of(client.get("/bulk").text)
    response = client.post("/bulk/apply", data={**base, "ids": HUGE, "csrf": token})
    assert response.status_code == 400 and "for stort" in response.text


def test_web_errors_municipality_code_must_be_a_short_ascii_number(db: Database) -> None:
    """resolve_municipality reads "²" and 20-digit strings as names (not found), never int()."""
    from onboarding import registry
    from onboarding.errors import NotFound

    for text in ("²", HUGE):
        with pytest.raises(NotFound):
            registry.resolve_municipality(db, text)
    assert registry.resolve_municipality(db, "751")["name"] == "Aarhus"


def test_web_errors_a_bug_still_answers_a_page_with_the_security_headers(
    web_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a handler fail with a bug, the 500 answer is a short Danish page that carries
    the security headers (the error itself goes on to the server's log)."""
    from onboarding.web.core import endpoint

    def broken(page: Page) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    app = create_app(web_db)
    app.router.routes.append(Route("/broken", endpoint(broken), methods=["GET"]))
    with TestClient(app, raise_server_exceptions=False) as c:
        login(c, COORDINATOR)
        response = c.get("/broken")
    assert response.status_code == 500 and _headers_ok(response)
    assert "Intet blev ændret" in response.text and "a bug" not in response.text


def _fill_the_disk(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database cannot grow by a page from now on (a full disk, reproducibly)."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")  # no free pages left inside the file either
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    monkeypatch.setenv("ONBOARDING_TEST_MAX_PAGE_COUNT", str(pages))


def test_web_errors_full_disk_is_a_503_page_that_changes_nothing(
    web_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the disk full, an advance answers a 503 page in the user's language (no path, no
    traceback, the security headers), writes nothing, and pages still read."""
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    (track,) = sqlite3.connect(web_db).execute(
        "SELECT min(id) FROM tracks WHERE state = 'date_agreement'"
    ).fetchone()
    with TestClient(create_app(web_db), raise_server_exceptions=False) as c:
        login(c, COORDINATOR)
        page = c.get(f"/tracks/{track}").text
        version = re.search(r'name="version" value="(\d+)"', page)
        assert version
        _fill_the_disk(web_db, monkeypatch)
        before = data_snapshot(web_db)
        form = {
            "csrf": csrf_of(page),
            "trigger": "agree_date",
            "role": "coordinator",
            "version": version.group(1),
            "field_connection_date": "2021-09-01",
            "note": "x" * 20000,  # more than the free room inside the file's pages
        }
        answers = [c.post(f"/tracks/{track}/advance", data=form, follow_redirects=False)]
        for response in answers:
            assert response.status_code == 503 and _headers_ok(response), response.text
            assert "disk" in response.text.lower() or "plads" in response.text
            assert str(web_db) not in response.text and "Traceback" not in response.text
        assert data_snapshot(web_db) == before
        assert c.get(f"/tracks/{track}").status_code == 200


def test_web_errors_login_on_a_read_only_database_is_a_503_page(
    web_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login that cannot store its session (the file is read-only) answers the 503 page in
    the user's language, not a 500, and the session table is unchanged."""
    from tests.test_storage_faults import frozen

    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    with TestClient(create_app(web_db), raise_server_exceptions=False) as c:
        token = csrf_of(c.get("/login").text)  # an anonymous session holds the CSRF token
        conn = sqlite3.connect(web_db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = conn.execute("SELECT * FROM web_sessions").fetchall()
        conn.close()
        with frozen(web_db):
            response = c.post(
                "/login",
                data={"csrf": token, "name": COORDINATOR, "password": PASSWORD, "next": "/grid"},
                follow_redirects=False,
            )
    assert response.status_code == 503 and _headers_ok(response), response.text
    assert "Databasen kan ikke gemme" in response.text and str(web_db) not in response.text
    assert sqlite3.connect(web_db).execute("SELECT * FROM web_sessions").fetchall() == before
