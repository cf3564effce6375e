"""The HTTP JSON API (/api/v1) over HTTP (Starlette's TestClient) on a real SQLite file: the demo's
database with the web tests' actors, each acting through an API token made by the library."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openapi_spec_validator import validate
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from onboarding import reports, tokens
from onboarding.db import open_existing
from onboarding.i18n import cli_language
from onboarding.web import create_app
from tests.support import ok, run, snapshot
from tests.web_support import AARHUS, COORDINATOR, DEMO_NOW, fresh_db

API = "/api/v1"
#: Aarhus's connection track for KMD Momentum: in data_processing_agreement, version 3 (the
#: demo); its next step update_dpa is fired by bob-agreement-admin, which test-aarhus holds.
AARHUS_TRACK = 70
#: Fredericia's track in the same state: outside test-aarhus's scope.
OTHER_TRACK = 12


def _token(db_path: Path, actor: str, client: TestClient | None = None) -> dict[str, str]:
    """A bearer header for ``actor``; used once through ``client`` so that its last use (kept
    to the minute, and the clock is pinned) is recorded before a test compares dumps."""
    db = open_existing(db_path)
    try:
        token, _ = tokens.create(db, actor)
    finally:
        db.close()
    header = {"Authorization": f"Bearer {token}"}
    if client is not None:
        assert client.get(API + "/reports/rollout", headers=header).status_code == 200
    return header


@pytest.fixture
def api_db(tmp_path: Path) -> Path:
    return fresh_db(tmp_path)


@pytest.fixture
def client(api_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    with TestClient(create_app(api_db)) as c:
        yield c


@pytest.fixture
def aarhus(api_db: Path, client: TestClient) -> dict[str, str]:
    return _token(api_db, AARHUS, client)


@pytest.fixture
def kombit(api_db: Path, client: TestClient) -> dict[str, str]:
    return _token(api_db, COORDINATOR, client)


def _dump(db_path: Path) -> str:
    return snapshot(db_path)[1]


def _history(db_path: Path, track_id: int) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT seq, from_state, to_state, trigger, actor, role, note, at, fields"
            " FROM history WHERE track_id = ? ORDER BY seq",
            [track_id],
        ).fetchall()
    finally:
        conn.close()


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    assert body["status"] == status and body["message"]
    return dict(body)


def _advance(version: int = 3, **extra: Any) -> dict[str, Any]:
    return {"trigger": "update_dpa", "expect_version": version, **extra}


# --- authentication ---------------------------------------------------------------------------


ROUTES = [
    ("GET", "/tracks"),
    ("GET", f"/tracks/{AARHUS_TRACK}"),
    ("GET", f"/tracks/{AARHUS_TRACK}/history"),
    ("GET", f"/tracks/{AARHUS_TRACK}/transitions"),
    ("POST", f"/tracks/{AARHUS_TRACK}/advance"),
    ("POST", f"/tracks/{AARHUS_TRACK}/fields"),
    ("POST", "/imports/status"),
    ("GET", "/reports/rollout"),
]


def test_api_every_route_refuses_a_request_without_a_valid_token(
    client: TestClient, api_db: Path, aarhus: dict[str, str]
) -> None:
    """Every route but the OpenAPI document answers 401 with a code to no token, a wrong one and
    a revoked one, and writes nothing."""
    before = _dump(api_db)
    db = open_existing(api_db)
    try:
        revoked, record = tokens.create(db, COORDINATOR)
        tokens.revoke(db, COORDINATOR, record["id"])
    finally:
        db.close()
    before = _dump(api_db)
    for method, path in ROUTES:
        r = client.request(method, API + path, json=_advance())
        _error(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"].startswith("Bearer")
        for header in ("Bearer onb_not-a-token", f"Bearer {revoked}"):
            r = client.request(
                method, API + path, json=_advance(), headers={"Authorization": header}
            )
            _error(r, 401, "invalid_token")
    assert _dump(api_db) == before
    assert client.get(API + "/openapi.json").status_code == 200


def test_api_token_of_a_deactivated_actor_authenticates_nobody(
    client: TestClient, api_db: Path, aarhus: dict[str, str]
) -> None:
    """A deactivated actor's token is refused (401) until the actor is active again."""
    from onboarding import actors

    assert client.get(API + "/tracks", headers=aarhus).status_code == 200
    db = open_existing(api_db)
    try:
        actors.set_active(db, AARHUS, False)
        _error(client.get(API + "/tracks", headers=aarhus), 401, "invalid_token")
        actors.set_active(db, AARHUS, True)
    finally:
        db.close()
    assert client.get(API + "/tracks", headers=aarhus).status_code == 200


def test_api_unknown_route_is_a_json_404(client: TestClient) -> None:
    """A path under /api/v1 that is no route answers JSON 404 no_such_route."""
    _error(client.get(API + "/nothing/here"), 404, "no_such_route")


# --- reading ----------------------------------------------------------------------------------


def test_api_list_tracks_filters_like_the_cli_and_pages(
    client: TestClient, kombit: dict[str, str], runner: CliRunner, api_db: Path
) -> None:
    """GET /tracks with where= or one parameter per key selects what 'track list' selects, page by
    page (limit, after), in the shape of 'track list --json'."""
    where = "definition=connection state=data_processing_agreement"
    cli_rows = json.loads(
        ok(runner, api_db, "track", "list", "--definition", "connection", "--state",
           "data_processing_agreement", "--json", actor=COORDINATOR).stdout
    )
    assert len(cli_rows) > 3
    got: list[dict[str, Any]] = []
    after = 0
    while True:
        r = client.get(API + "/tracks", params={"where": where, "limit": 2, "after": after},
                       headers=kombit)
        assert r.status_code == 200, r.text
        page = r.json()
        got += page["tracks"]
        if page["next_after"] is None:
            break
        assert len(page["tracks"]) == 2
        after = page["next_after"]
    assert got == cli_rows
    by_params = client.get(
        API + "/tracks",
        params={"definition": "connection", "state": "data_processing_agreement", "limit": 1000},
        headers=kombit,
    ).json()["tracks"]
    assert by_params == cli_rows
    overdue = client.get(API + "/tracks", params={"where": where, "overdue": "true"},
                         headers=kombit).json()["tracks"]
    assert overdue and all(t["overdue"] for t in overdue) and len(overdue) < len(cli_rows)


@pytest.mark.parametrize(
    "params",
    [
        {"state": "no_such_state"},
        {"where": "colour=blue"},
        {"municipality": "Atlantis"},
        {"limit": "0"},
        {"limit": "many"},
        {"overdue": "perhaps"},
        {"where": "state=data_processing_agreement", "state": "sapa_request"},
    ],
)
def test_api_list_tracks_refuses_a_bad_filter(
    client: TestClient, kombit: dict[str, str], params: dict[str, str]
) -> None:
    """A filter value that names nothing, or a bad parameter, is a 400 with a code."""
    r = client.get(API + "/tracks", params=params, headers=kombit)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("invalid_filter", "invalid_parameter")


def test_api_read_track_history_and_transitions(
    client: TestClient, aarhus: dict[str, str], runner: CliRunner, api_db: Path
) -> None:
    """A track, its history and its transitions read as 'track show/history --json' give them;
    the transitions say which of their roles the token's actor holds on the track."""
    r = client.get(f"{API}/tracks/{AARHUS_TRACK}", headers=aarhus)
    assert r.status_code == 200
    show = json.loads(
        ok(runner, api_db, "track", "show", str(AARHUS_TRACK), "--json", actor=AARHUS).stdout
    )
    assert r.json() == show
    r = client.get(f"{API}/tracks/{AARHUS_TRACK}/history", headers=aarhus)
    history = json.loads(
        ok(runner, api_db, "track", "history", str(AARHUS_TRACK), "--json", actor=AARHUS).stdout
    )
    assert r.json() == {"track": AARHUS_TRACK, "history": history}
    r = client.get(f"{API}/tracks/{AARHUS_TRACK}/transitions", headers=aarhus)
    body = r.json()
    assert body["version"] == 3
    mine = {t["trigger"]: t["my_roles"] for t in body["transitions"]}
    assert mine == {"update_dpa": ["bob-agreement-admin"], "cancel": []}


def test_api_rollout_report_is_the_library_report(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """GET /reports/rollout gives reports.rollout (as of a date too); a bad date is a 400."""
    db = open_existing(api_db)
    try:
        from datetime import date

        expected = json.loads(json.dumps(reports.rollout(db, as_of=date(2021, 3, 31))))
    finally:
        db.close()
    r = client.get(API + "/reports/rollout", params={"as_of": "2021-03-31"}, headers=aarhus)
    assert r.status_code == 200 and r.json() == expected
    _error(client.get(API + "/reports/rollout", params={"as_of": "soon"}, headers=aarhus),
           400, "invalid_input")


# --- scope ------------------------------------------------------------------------------------


def test_api_project_lead_cannot_read_or_change_another_municipality_track(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """Aarhus's token lists only Aarhus's tracks; another municipality's track is not there for it
    (404, as an unknown id) for reading, history, transitions, advance and fields; nothing is
    written."""
    listed = client.get(API + "/tracks", params={"limit": 1000}, headers=aarhus).json()["tracks"]
    assert listed and all(t["subject"].startswith("Aarhus") for t in listed)
    assert OTHER_TRACK not in {t["id"] for t in listed}
    before = _dump(api_db)
    for method, path, body in (
        ("GET", "", None),
        ("GET", "/history", None),
        ("GET", "/transitions", None),
        ("POST", "/advance", _advance(role="bob-agreement-admin")),
        ("POST", "/fields", {"fields": {"kle_numbers": "1"}, "expect_version": 3}),
    ):
        r = client.request(method, f"{API}/tracks/{OTHER_TRACK}{path}", json=body, headers=aarhus)
        err = _error(r, 404, "not_found")
        unknown = client.request(method, f"{API}/tracks/999999{path}", json=body, headers=aarhus)
        assert unknown.json()["error"]["message"].replace("999999", "N") == err["message"].replace(
            str(OTHER_TRACK), "N"
        )
    assert _dump(api_db) == before


def test_api_refusals_are_the_cli_refusals(
    client: TestClient, aarhus: dict[str, str], api_db: Path, runner: CliRunner
) -> None:
    """A role the actor does not hold and a trigger the state does not have are refused with the
    engine's own sentence, the one the CLI prints in the same language (403 and 422), nothing
    written; the API says it in the Accept-Language (Danish by default)."""
    before = _dump(api_db)
    lang = {"Accept-Language": cli_language()}
    r = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(role="coordinator"),
                    headers={**aarhus, **lang})
    err = _error(r, 403, "forbidden")
    cli = run(runner, api_db, "track", "advance", str(AARHUS_TRACK), "update_dpa", "--role",
              "coordinator", "--expect-version", "3", actor=AARHUS)
    assert cli.exit_code == 2
    assert cli.stderr.startswith(f"Error: {err['message']}")
    body = {"trigger": "go_live", "expect_version": 3, "role": "bob-agreement-admin"}
    r = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=body, headers={**aarhus, **lang})
    err = _error(r, 422, "transition_refused")
    cli = run(runner, api_db, "track", "advance", str(AARHUS_TRACK), "go_live", "--role",
              "bob-agreement-admin", actor=AARHUS)
    assert cli.exit_code == 2 and cli.stderr.startswith(f"Error: {err['message']}")
    danish = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=body, headers=aarhus)
    english = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=body,
                          headers={**aarhus, "Accept-Language": "en"})
    assert "Databehandleraftale opdateret" in danish.json()["error"]["message"]
    assert danish.json()["error"]["message"] != english.json()["error"]["message"]
    assert _dump(api_db) == before


# --- writing ----------------------------------------------------------------------------------


def test_api_advance_records_the_history_row_the_cli_records(
    client: TestClient, aarhus: dict[str, str], api_db: Path, tmp_path: Path, runner: CliRunner
) -> None:
    """An advance through the API writes the same track and history row (actor, role, note,
    time, hash chain intact) as 'track advance' by the same actor on a copy of the database;
    the role is the one the actor holds on the track when the body names none."""
    (tmp_path / "twin").mkdir()
    twin = fresh_db(tmp_path / "twin")
    r = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(note="via API"),
                    headers=aarhus)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "sapa_request" and r.json()["version"] == 4
    ok(runner, twin, "track", "advance", str(AARHUS_TRACK), "update_dpa", "--role",
       "bob-agreement-admin", "--expect-version", "3", "--note", "via API", actor=AARHUS)
    assert _history(api_db, AARHUS_TRACK) == _history(twin, AARHUS_TRACK)
    assert _history(api_db, AARHUS_TRACK)[-1][4:6] == (AARHUS, "bob-agreement-admin")
    ok(runner, api_db, "audit", "verify")


def test_api_stale_expect_version_is_409_and_writes_nothing(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """An advance or a field change naming a version the track no longer has is 409
    stale_version; nothing is written."""
    before = _dump(api_db)
    _error(client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(version=2),
                       headers=aarhus), 409, "stale_version")
    _error(client.post(f"{API}/tracks/{AARHUS_TRACK}/fields",
                       json={"fields": {"kle_numbers": "1"}, "expect_version": 2},
                       headers=aarhus), 409, "stale_version")
    assert _dump(api_db) == before


def test_api_set_fields_records_a_set_row(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """POST /fields records the values (history '@set' by the actor) and answers the track."""
    r = client.post(f"{API}/tracks/{AARHUS_TRACK}/fields",
                    json={"fields": {"kle_numbers": "17.01"}, "expect_version": 3},
                    headers=aarhus)
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["kle_numbers"] == "17.01" and r.json()["version"] == 4
    last = _history(api_db, AARHUS_TRACK)[-1]
    assert last[3:6] == ("@set", AARHUS, "bob-agreement-admin")


def test_api_idempotency_key_replays_the_first_answer_and_writes_nothing(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """A repeated write with the same Idempotency-Key gets the first answer (marked replayed)
    and writes nothing, even though the track has moved on; the same key with another body is
    422 idempotency_key_reused; another actor's same key is its own."""
    headers = {**aarhus, "Idempotency-Key": "dpa-70-2021-06"}
    first = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(), headers=headers)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    rows = _history(api_db, AARHUS_TRACK)
    before = _dump(api_db)
    again = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(), headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert _dump(api_db) == before and _history(api_db, AARHUS_TRACK) == rows
    other = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(version=4),
                        headers=headers)
    _error(other, 422, "idempotency_key_reused")
    assert _dump(api_db) == before


def test_api_idempotency_key_of_a_refused_write_is_released(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """A refused write (stale version) stores nothing for its key, so the corrected request may
    use the same key and is applied."""
    headers = {**aarhus, "Idempotency-Key": "k-1"}
    _error(client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(version=2),
                       headers=headers), 409, "stale_version")
    conn = sqlite3.connect(api_db)
    try:
        assert conn.execute("SELECT count(*) FROM api_idempotency").fetchone()[0] == 0
    finally:
        conn.close()
    r = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(), headers=headers)
    assert r.status_code == 200


def test_api_idempotency_key_in_progress_is_409(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """A key whose first request has not finished (or whose process died after writing) is 409
    idempotency_key_in_progress: never applied twice."""
    first = client.post(f"{API}/tracks/{AARHUS_TRACK}/fields",
                        json={"fields": {"kle_numbers": "1"}, "expect_version": 3},
                        headers={**aarhus, "Idempotency-Key": "k-2"})
    assert first.status_code == 200
    conn = sqlite3.connect(api_db)
    try:
        # As a crash leaves it: the reservation of a request that never stored its answer.
        conn.execute(
            "INSERT INTO api_idempotency (actor, key, fingerprint, created_at) VALUES"
            " (?, 'k-3', (SELECT fingerprint FROM api_idempotency WHERE key = 'k-2'), ?)",
            [AARHUS, "2021-06-30T15:00:00.000000Z"],
        )
        conn.commit()
    finally:
        conn.close()
    before = _dump(api_db)
    r = client.post(f"{API}/tracks/{AARHUS_TRACK}/fields",
                    json={"fields": {"kle_numbers": "1"}, "expect_version": 3},
                    headers={**aarhus, "Idempotency-Key": "k-3"})
    _error(r, 409, "idempotency_key_in_progress")
    assert _dump(api_db) == before


MALFORMED: list[tuple[str, Any, str]] = [
    ("advance", b"{not json", "malformed_json"),
    ("advance", b"\xff\xfe", "malformed_json"),
    ("advance", [1, 2], "malformed_body"),
    ("advance", "update_dpa", "malformed_body"),
    ("advance", {"expect_version": 3}, "missing_member"),
    ("advance", {"trigger": "update_dpa"}, "missing_member"),
    ("advance", {"trigger": "update_dpa", "expected_version": 3}, "unknown_member"),
    ("advance", {"trigger": "update_dpa", "expect_version": "3"}, "invalid_member"),
    ("advance", {"trigger": "update_dpa", "expect_version": True}, "invalid_member"),
    ("advance", {"trigger": 7, "expect_version": 3}, "invalid_member"),
    ("advance", _advance(fields={"kle_numbers": {"a": 1}}), "invalid_member"),
    ("advance", _advance(fields=["kle_numbers"]), "invalid_member"),
    ("advance", _advance(note="x" * 2001), "invalid_member"),
    ("advance", _advance(at="yesterday-ish"), "invalid_input"),
    ("fields", {"expect_version": 3}, "missing_member"),
    ("fields", {"fields": {"connection_date": "31-02-2021"}, "expect_version": 3},
     "invalid_input"),
]


@pytest.mark.parametrize(("route", "body", "code"), MALFORMED)
def test_api_malformed_body_is_400_with_a_code_and_writes_nothing(
    client: TestClient, aarhus: dict[str, str], api_db: Path, route: str, body: Any, code: str
) -> None:
    """A body that is not JSON, not an object, lacks a member, has an unknown one or one of the
    wrong type or value is 400 with a stable code naming it; the database is unchanged."""
    before = _dump(api_db)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(f"{API}/tracks/{AARHUS_TRACK}/{route}", content=raw,
                    headers={**aarhus, "Content-Type": "application/json",
                             "Idempotency-Key": "m-1"})
    _error(r, 400, code)
    assert _dump(api_db) == before


def test_api_malformed_idempotency_key_and_huge_body_are_refused(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """An Idempotency-Key that is too long is 400; a body over 5 MB is 413; nothing written."""
    before = _dump(api_db)
    _error(client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=_advance(),
                       headers={**aarhus, "Idempotency-Key": "k" * 201}),
           400, "malformed_idempotency_key")
    _error(client.post(API + "/imports/status", content=b"x" * (5 * 2**20 + 1), headers=aarhus),
           413, "body_too_large")
    assert _dump(api_db) == before


def test_api_error_messages_follow_accept_language(
    client: TestClient,
) -> None:
    """The API's own messages are Danish by default and English when asked for; codes stay."""
    da = client.get(API + "/tracks").json()["error"]
    en = client.get(API + "/tracks", headers={"Accept-Language": "en-GB,en;q=0.8"}).json()["error"]
    assert da["code"] == en["code"] == "unauthenticated"
    assert da["message"] != en["message"] and "API" in en["message"]


# --- status import ----------------------------------------------------------------------------

STATUS = (
    "municipality,system,status,date\n"
    "Aarhus,Momentum,sapa_request,2021-06-15\n"
)


def test_api_import_status_moves_tracks_as_the_cli_import(
    client: TestClient, api_db: Path
) -> None:
    """POST /imports/status with the importer's token applies the file (dry_run first writes
    nothing); each step is recorded as that actor in role importer, its note naming the file
    and its sha256; the same file again changes nothing."""
    importer = _token(api_db, "import", client)
    before = _dump(api_db)
    dry = client.post(API + "/imports/status", params={"dry_run": "true", "name": "juni.csv"},
                      content=STATUS.encode(), headers=importer)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] and dry.json()["tracks_moved"] == 1
    assert _dump(api_db) == before
    r = client.post(API + "/imports/status", params={"name": "juni.csv"},
                    content=STATUS.encode(), headers=importer)
    assert r.status_code == 200, r.text
    assert r.json()["file"] == "juni.csv" and r.json()["tracks_moved"] == 1
    last = _history(api_db, AARHUS_TRACK)[-1]
    assert last[2] == "sapa_request" and last[4:6] == ("import", "importer")
    assert "juni.csv (sha256 " in last[6]
    again = client.post(API + "/imports/status", params={"name": "juni.csv"},
                        content=STATUS.encode(), headers=importer)
    assert again.json()["tracks_moved"] == 0 and again.json()["unchanged"] == 1


def test_api_import_status_refusals(
    client: TestClient, api_db: Path, aarhus: dict[str, str]
) -> None:
    """An actor without the importer role is 403; a bad file is 400 invalid_status_file naming
    the client's file name and line; an empty body is 400; nothing written."""
    importer = _token(api_db, "import", client)
    before = _dump(api_db)
    _error(client.post(API + "/imports/status", content=STATUS.encode(), headers=aarhus),
           403, "forbidden")
    bad = "municipality,system,status,date\nAarhus,Momentum,sapa_request,someday\n"
    err = _error(client.post(API + "/imports/status", params={"name": "bad.csv"},
                             content=bad.encode(), headers=importer), 400, "invalid_status_file")
    assert "bad.csv:2" in json.dumps(err, ensure_ascii=False)
    assert "onboarding-api-" not in json.dumps(err)
    _error(client.post(API + "/imports/status", content=b"", headers=importer), 400, "empty_body")
    assert _dump(api_db) == before


# --- OpenAPI ----------------------------------------------------------------------------------


def test_api_openapi_document_validates_and_lists_every_route(client: TestClient) -> None:
    """/api/v1/openapi.json is a valid OpenAPI 3 document listing every route and method of the
    API as mounted in the app (generated from the routes), each with its responses."""
    doc = client.get(API + "/openapi.json").json()
    validate(doc)
    app = client.app
    mount = next(m for m in app.routes if isinstance(m, Mount) and m.path == API)  # type: ignore[attr-defined]
    expected = {
        (API + r.path.replace(":int}", "}"), method.lower())
        for r in mount.routes
        if isinstance(r, Route) and r.include_in_schema
        for method in (r.methods or ()) if method != "HEAD"
    }
    listed = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert listed == expected
    assert len(listed) == 9
    for path, method in listed:
        assert doc["paths"][path][method]["responses"], (path, method)


# --- tokens on the command line ---------------------------------------------------------------


def test_api_token_cli_create_list_revoke(runner: CliRunner, api_db: Path,
                                          client: TestClient) -> None:
    """'actor token create NAME --json' prints {"token": ...} that works as a bearer token; only
    its digest is stored; 'list' shows its prefix, never the token; 'revoke' ends it (401);
    creating and revoking are in actor_events."""
    out = ok(runner, api_db, "actor", "token", "create", AARHUS, "--label", "feed", "--json",
             actor=COORDINATOR)
    token = json.loads(out.stdout)["token"]
    assert token.startswith("onb_")
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get(API + "/tracks", headers=bearer).status_code == 200
    dump = _dump(api_db)
    assert token not in dump and tokens.digest(token) in dump
    listed = json.loads(ok(runner, api_db, "actor", "token", "list", AARHUS, "--json").stdout)
    assert [t["label"] for t in listed] == ["feed"]
    assert token not in json.dumps(listed) and token.startswith(listed[0]["prefix"].rstrip("…"))
    ok(runner, api_db, "actor", "token", "revoke", AARHUS, "--id", str(listed[0]["id"]),
       actor=COORDINATOR)
    _error(client.get(API + "/tracks", headers=bearer), 401, "invalid_token")
    conn = sqlite3.connect(api_db)
    try:
        events = conn.execute(
            "SELECT by, action FROM actor_events WHERE actor = ? AND action LIKE 'token-%'"
            " ORDER BY rowid", [AARHUS]
        ).fetchall()
    finally:
        conn.close()
    assert events == [(COORDINATOR, "token-create"), (COORDINATOR, "token-revoke")]


def test_api_token_cli_refuses_others_tokens_and_unknown_actors(
    runner: CliRunner, api_db: Path
) -> None:
    """Only a coordinator for all, or the actor itself, makes or revokes its tokens; an unknown
    actor or token id is one line, exit 2, nothing written."""
    before = _dump(api_db)
    for args, who in (
        (("create", COORDINATOR), AARHUS),
        (("revoke", COORDINATOR), AARHUS),
        (("create", "nobody"), COORDINATOR),
        (("revoke", AARHUS, "--id", "999"), COORDINATOR),
        (("list", "nobody"), COORDINATOR),
    ):
        result = run(runner, api_db, "actor", "token", *args, actor=who)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert _dump(api_db) == before
    own = ok(runner, api_db, "actor", "token", "create", AARHUS, actor=AARHUS)
    assert own.stdout.strip().startswith("onb_")


def test_api_wrong_method_huge_id_and_odd_file_name(
    client: TestClient, aarhus: dict[str, str], api_db: Path
) -> None:
    """A route called with a method it does not take is 405 method_not_allowed; an id larger
    than SQLite stores is 404; a status file named '..' is imported under a plain name; a
    body nested too deep for the JSON parser is 400, not a crash."""
    _error(client.get(f"{API}/tracks/{AARHUS_TRACK}/advance", headers=aarhus), 405,
           "method_not_allowed")
    _error(client.delete(f"{API}/tracks/{AARHUS_TRACK}", headers=aarhus), 405,
           "method_not_allowed")
    _error(client.get(f"{API}/tracks/{2**70}", headers=aarhus), 404, "not_found")
    _error(client.post(f"{API}/tracks/{2**70}/advance", json=_advance(), headers=aarhus), 404,
           "not_found")
    importer = _token(api_db, "import", client)
    r = client.post(API + "/imports/status", params={"name": "..", "dry_run": "1"},
                    content=STATUS.encode(), headers=importer)
    assert r.status_code == 200 and r.json()["file"] == "status.csv"
    deep = b"[" * 200_000 + b"]" * 200_000
    _error(client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", content=deep, headers=aarhus),
           400, "malformed_json")


def test_api_lists_what_the_cli_lists_for_the_same_actor(
    client: TestClient, aarhus: dict[str, str], runner: CliRunner, api_db: Path
) -> None:
    """Aarhus's token lists exactly the tracks 'track list --actor test-aarhus' lists (the
    library's need-to-know rules, onboarding.visibility), and a track the CLI says is unknown to
    it is a 404 for the token."""
    cli_rows = json.loads(ok(runner, api_db, "track", "list", "--json", actor=AARHUS).stdout)
    api_rows = client.get(API + "/tracks", params={"limit": 1000}, headers=aarhus).json()
    assert api_rows["tracks"] == cli_rows and api_rows["next_after"] is None
    cli = run(runner, api_db, "track", "show", str(OTHER_TRACK), actor=AARHUS)
    assert cli.exit_code == 2 and "unknown track" in cli.stderr
    _error(client.get(f"{API}/tracks/{OTHER_TRACK}", headers=aarhus), 404, "not_found")


def test_api_full_disk_is_503_storage_fault_and_reads_go_on(
    client: TestClient, aarhus: dict[str, str], api_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database unable to grow (a full disk, PRAGMA max_page_count), a write is 503
    storage_fault in one sentence and writes nothing, an idempotent one too; reads still
    answer."""
    conn = sqlite3.connect(api_db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    monkeypatch.setenv("ONBOARDING_TEST_MAX_PAGE_COUNT", str(pages))
    before = _dump(api_db)
    big = _advance(note="x" * 2000)
    for headers in (aarhus, {**aarhus, "Idempotency-Key": "full-1"}):
        r = client.post(f"{API}/tracks/{AARHUS_TRACK}/advance", json=big, headers=headers)
        err = _error(r, 503, "storage_fault")
        assert "\n" not in err["message"] and "lines" not in err
    assert client.get(f"{API}/tracks/{AARHUS_TRACK}", headers=aarhus).status_code == 200
    monkeypatch.delenv("ONBOARDING_TEST_MAX_PAGE_COUNT")
    assert _dump(api_db) == before
