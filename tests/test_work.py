"""Issue 13, "My work": the work list (library, CLI, page), the grid's overdue and role filters in
the URL, the overdue report's role and vendor filters, and accountability: the status import
and bulk actions on the page name the person who acted, the uploaded file and the operation.

All on a real SQLite file (a copy of the demo database with the test actors)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database
from starlette.testclient import TestClient

import cli
from onboarding import actors, bulkops, definitions, reports, worklist
from onboarding.db import open_existing
from onboarding.engine import TRACK_COLUMNS, _row_to_track
from onboarding.errors import InputError, NotFound
from onboarding.web import create_app
from tests.support import query
from tests.web_support import AARHUS, COORDINATOR, DEMO_NOW, PASSWORD, csrf_of, fresh_db
from tests.web_support import login as web_login

TODAY = date(2021, 6, 30)
#: A demo actor holding role vendor for KMD.
VENDOR = "kmd"


@pytest.fixture
def web_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    return fresh_db(tmp_path)


@pytest.fixture
def db(web_db: Path) -> Iterator[Database]:
    d = open_existing(web_db)
    yield d
    d.close()


def _client(web_db: Path, who: str = COORDINATOR) -> TestClient:
    client = TestClient(create_app(web_db))
    client.__enter__()
    web_login(client, who)
    return client


@pytest.fixture
def client(web_db: Path) -> Iterator[TestClient]:
    c = _client(web_db)
    yield c
    c.__exit__(None, None, None)



def _expected(db: Database, actor: str) -> set[int]:
    """The oracle: every open track whose state's role (``track show``'s "who must act next")
    is one the actor holds in a scope covering the track (``actors.roles_for``)."""
    out = set()
    cur = db.conn.execute(f"SELECT {TRACK_COLUMNS} FROM tracks WHERE final = 0")
    for row in cur.fetchall():
        t = _row_to_track(row)
        role = definitions.get(db, t["definition"], t["def_version"]).state(t["state"]).role
        if role and role in actors.roles_for(db, actor, t):
            out.add(int(t["id"]))
    return out


def _in_order(items: list[dict[str, Any]]) -> bool:
    keys = [(not w["overdue"], w["due"] or "9999-12-31", w["track"]) for w in items]
    return keys == sorted(keys)


# --- the work list (library) ---------------------------------------------------------------------


def test_worklist_lists_exactly_the_tracks_waiting_on_my_roles_in_my_scope(db: Database) -> None:
    """For a coordinator, a municipality's staff and a vendor: exactly the open tracks whose
    next action lies with a role they hold, in the scope they hold it."""
    for who in (COORDINATOR, AARHUS, VENDOR, "aarhus"):
        items = worklist.work_list(db, who, TODAY)
        assert {w["track"] for w in items} == _expected(db, who), who
        assert len(items) == len({w["track"] for w in items})  # each track once
    aarhus = worklist.work_list(db, AARHUS, TODAY)
    assert aarhus and all(w["subject"].startswith("Aarhus") for w in aarhus)
    kmd = worklist.work_list(db, VENDOR, TODAY)
    assert kmd and all(w["role"] == "vendor" for w in kmd)


def test_worklist_orders_overdue_first_then_by_deadline(db: Database) -> None:
    """Overdue tracks first (longest overdue first), then the rest by deadline, none last."""
    for who in (COORDINATOR, AARHUS, VENDOR, "aarhus"):
        items = worklist.work_list(db, who, TODAY)
        assert _in_order(items), who
    aarhus = worklist.work_list(db, AARHUS, TODAY)
    assert [w["overdue"] for w in aarhus][:1] == [True] and not aarhus[-1]["overdue"]
    late = aarhus[0]
    assert late["working_days_late"] > 0 and late["days_in_step"] > 0
    assert late["actions"] and all(a["label"] for a in late["actions"])
    assert late["step"] != late["state"]  # the step's label, not its key


def test_worklist_unknown_actor_is_not_found(db: Database) -> None:
    """Asking for the work list of a name nobody holds is refused, not an empty list."""
    with pytest.raises(NotFound):
        worklist.work_list(db, "nobody-at-all", TODAY)


# --- the work list (CLI) -------------------------------------------------------------------------


def test_cli_track_mine_lists_the_work_list(web_db: Path) -> None:
    """``track mine --actor NAME`` prints the same list, as JSON and as a table with labels;
    an unknown actor is one line and exit 2."""
    runner = CliRunner()
    args = ["track", "mine", "--actor", AARHUS, "--db", str(web_db)]
    got = runner.invoke(cli.cli, [*args, "--json"])
    assert got.exit_code == 0, got.output
    data = json.loads(got.stdout)
    db = open_existing(web_db)
    try:
        assert [w["track"] for w in data] == [
            w["track"] for w in worklist.work_list(db, AARHUS, TODAY)
        ]
    finally:
        db.close()
    table = runner.invoke(cli.cli, ["track", "mine", "--actor", AARHUS, "--db", str(web_db)])
    assert table.exit_code == 0 and data[0]["step"] in table.stdout
    assert "bob-agreement-admin" not in table.stdout  # the role by its label
    only = runner.invoke(
        cli.cli, ["track", "mine", "--overdue", "--actor", AARHUS, "--db", str(web_db), "--json"]
    )
    assert all(w["overdue"] for w in json.loads(only.stdout))
    bad = runner.invoke(cli.cli, ["track", "mine", "--actor", "nobody", "--db", str(web_db)])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "nobody" in bad.stderr


# --- the work list (page) ------------------------------------------------------------------------


def test_web_home_lands_on_my_work_in_order(web_db: Path) -> None:
    """``/`` leads to "Mine opgaver": my tracks in the work list's order, each with its step,
    working days, due date and a link to its action; the overdue count links to the filtered
    list."""
    client = _client(web_db, AARHUS)
    try:
        landing = client.get("/", follow_redirects=False)
        assert landing.status_code == 303 and landing.headers["location"] == "/work"
        html = client.get("/work").text
        db = open_existing(web_db)
        try:
            items = worklist.work_list(db, AARHUS, TODAY)
        finally:
            db.close()
        assert "<h1>Mine opgaver</h1>" in html
        assert [int(x) for x in re.findall(r'data-track="(\d+)"', html)] == [
            w["track"] for w in items
        ]
        first = items[0]
        assert f'href="/tracks/{first["track"]}#do-{first["actions"][0]["trigger"]}"' in html
        assert "arbejdsdage" in html and 'href="/work?overdue=1"' in html
        overdue = client.get("/work", params={"overdue": "1"}).text
        assert [int(x) for x in re.findall(r'data-track="(\d+)"', overdue)] == [
            w["track"] for w in items if w["overdue"]
        ]
        track = client.get(f"/tracks/{first['track']}").text
        assert f'id="do-{first["actions"][0]["trigger"]}"' in track  # the link's target
    finally:
        client.__exit__(None, None, None)


# --- grid filters --------------------------------------------------------------------------------


def _cells(html: str) -> list[tuple[int, bool]]:
    return [
        (int(t), " late" in cls)
        for cls, t in re.findall(r'<a class="cell([^"]*)" href="/tracks/(\d+)"', html)
    ]


def test_web_grid_only_overdue_and_waiting_on_role(client: TestClient, web_db: Path) -> None:
    """``overdue=1`` keeps only overdue cells and the overdue count links to that view;
    ``role=R`` keeps the cells whose step waits on R; both stay in the URL."""
    everything = client.get("/grid").text
    link = re.search(r'<a class="late" href="(/grid\?[^"]*)"><strong>(\d+)</strong>', everything)
    assert link, "the overdue count is a link"
    assert link.group(1) == "/grid?overdue=1"
    overdue = client.get(link.group(1)).text
    cells = _cells(overdue)
    assert cells and all(late for _, late in cells) and len(cells) == int(link.group(2))
    assert 'name="overdue" value="1" id="f-overdue" checked' in overdue
    role = "agreement-admin"
    waiting = client.get("/grid", params={"role": role}).text
    ids = [t for t, _ in _cells(waiting)]
    assert ids and f'<option value="{role}" selected>' in waiting
    db = open_existing(web_db)
    try:
        for tid in ids:
            (definition, version, state) = db.conn.execute(
                "SELECT definition, def_version, state FROM tracks WHERE id = ?", [tid]
            ).fetchone()
            assert definitions.get(db, definition, version).state(state).role == role
    finally:
        db.close()
    both = client.get("/grid", params={"role": role, "overdue": "1", "region": "Hovedstaden"})
    assert set(_cells(both.text)) <= {(t, True) for t in ids}
    link_kept = re.search(r'<a class="late" href="([^"]*)">', both.text)
    assert link_kept is None or "role=agreement-admin" in link_kept.group(1)


# --- overdue report filters ----------------------------------------------------------------------


def test_report_overdue_filters_by_role_and_vendor(db: Database) -> None:
    """The overdue report keeps the steps waiting on a role, and a vendor's tracks; an unknown
    role or vendor is refused."""
    every = reports.overdue(db, TODAY)["tracks"]
    by_role = reports.overdue(db, TODAY, role="coordinator")["tracks"]
    assert by_role and {r["track"] for r in by_role} == {
        r["track"] for r in every if r["role"] == "coordinator"
    }
    kmd = reports.overdue(db, TODAY, vendor="KMD")["tracks"]
    assert kmd and len(kmd) < len(every) and all("KMD" in r["subject"] for r in kmd)
    both = reports.overdue(db, TODAY, role="vendor", vendor="KMD")
    assert {r["track"] for r in both["tracks"]} == {
        r["track"] for r in kmd if r["role"] == "vendor"
    }
    assert both["filter"] == {"role": "vendor", "vendor": "KMD"}
    with pytest.raises(InputError):
        reports.overdue(db, TODAY, role="no-such-role")
    with pytest.raises(NotFound):
        reports.overdue(db, TODAY, vendor="No Such Vendor")


def test_cli_report_overdue_role_and_vendor(web_db: Path) -> None:
    """``report overdue --role R --vendor V`` narrows the list; a wrong value is one line
    naming the option, exit 2."""
    runner = CliRunner()
    base = ["report", "overdue", "--db", str(web_db), "--json"]
    every = json.loads(runner.invoke(cli.cli, base).stdout)["tracks"]
    got = runner.invoke(cli.cli, [*base, "--role", "vendor", "--vendor", "KMD"])
    assert got.exit_code == 0, got.output
    rows = json.loads(got.stdout)["tracks"]
    assert rows and len(rows) < len(every) and all(r["role"] == "vendor" for r in rows)
    for option, value in (("--role", "nosuch"), ("--vendor", "Nosuch")):
        bad = runner.invoke(cli.cli, [*base[:-1], option, value])
        assert bad.exit_code == 2 and bad.stderr.startswith(f"Error: {option}:"), bad.output
        assert bad.stderr.count("\n") == 1


def test_web_overdue_report_filters_by_role_and_vendor(client: TestClient) -> None:
    """The overdue report page filters by responsible role and vendor (in the URL), and the
    CSV download carries the same filter."""
    html = client.get("/reports/overdue", params={"role": "vendor", "vendor": "KMD"}).text
    shown = [int(t) for t in re.findall(r'<tr><td><a href="/tracks/(\d+)">', html)]
    assert shown and '<option value="vendor" selected>' in html
    assert "<option selected>KMD</option>" in html
    csv_link = re.search(r'class="download" href="([^"]+)"', html)
    assert csv_link and "role=vendor" in csv_link.group(1) and "vendor=KMD" in csv_link.group(1)
    csv_text = client.get(csv_link.group(1).replace("&amp;", "&")).text
    assert sorted(int(r.split(",")[1]) for r in csv_text.strip().splitlines()[1:]) == sorted(shown)
    everything = client.get("/reports/overdue").text
    assert len(re.findall(r'<tr><td><a href="/tracks/', everything)) > len(shown)


# --- accountability: import and bulk -------------------------------------------------------------


def _status_file(web_db: Path) -> bytes:
    name, system = query(
        web_db,
        "SELECT m.name, v.name || ' ' || s.name FROM tracks t"
        " JOIN municipalities m ON m.code = t.municipality_code"
        " JOIN systems s ON s.id = t.system_id JOIN vendors v ON v.id = s.vendor_id"
        " WHERE t.definition = 'connection' AND t.state = 'date_agreement' AND t.final = 0"
        " ORDER BY t.id LIMIT 1",
    )[0]
    return (
        "municipality;system;status;date;connection_date\n"
        f"{name};{system};service_agreements;2021-06-30;2021-10-01\n"
    ).encode()


def _upload_and_apply(client: TestClient, data: bytes, name: str) -> str:
    token = csrf_of(client.get("/import").text)
    preview = client.post(
        "/import", data={"csrf": token}, files={"file": (name, data, "text/csv")}
    )
    assert preview.status_code == 200, preview.text
    upload = re.search(r'name="token" value="([^"]+)"', preview.text)
    assert upload
    applied = client.post("/import/apply", data={"csrf": token, "token": upload.group(1)})
    assert applied.status_code == 200, applied.text
    return applied.text


def test_web_import_history_names_the_person_the_file_and_its_digest(web_db: Path) -> None:
    """A status file imported on the page records the logged-in person (in their role) as the
    actor, and the file's name and sha256 digest in each step's note."""
    data = _status_file(web_db)
    before = query(web_db, "SELECT max(id) FROM history")[0][0]
    client = _client(web_db)
    try:
        page = _upload_and_apply(client, data, "status-2021-06.csv")
    finally:
        client.__exit__(None, None, None)
    rows = query(web_db, "SELECT actor, role, note FROM history WHERE id > ?", (before,))
    assert rows
    digest = hashlib.sha256(data).hexdigest()
    assert digest in page and "Historikken nævner" in page  # the page says what it recorded
    for actor, role, note in rows:
        assert (actor, role) == (COORDINATOR, "coordinator")
        assert "status-2021-06.csv" in note and digest in note


def test_web_import_by_an_importer_acts_in_role_importer(web_db: Path) -> None:
    """A person holding role importer imports in that role, under their own name."""
    db = open_existing(web_db)
    try:
        actors.add(db, "ida-import", display_name="Ida Import", password=PASSWORD)
        actors.grant(db, "ida-import", "importer")
    finally:
        db.close()
    before = query(web_db, "SELECT max(id) FROM history")[0][0]
    client = _client(web_db, "ida-import")
    try:
        _upload_and_apply(client, _status_file(web_db), "maj.csv")
    finally:
        client.__exit__(None, None, None)
    rows = query(web_db, "SELECT DISTINCT actor, role FROM history WHERE id > ?", (before,))
    assert rows == [("ida-import", "importer")]


def test_web_bulk_apply_names_the_person_and_operation_and_lists_what_moved(
    client: TestClient, web_db: Path
) -> None:
    """After a bulk apply the result page lists every moved track with a link, and each
    track's new history row names the person and the bulk operation (id and note)."""
    (region,) = query(
        web_db,
        "SELECT m.region FROM tracks t JOIN municipalities m ON m.code = t.municipality_code"
        " WHERE t.definition = 'connection' AND t.state = 'date_agreement' AND t.final = 0"
        " ORDER BY t.id LIMIT 1",
    )[0]
    params = {
        "definition": "connection",
        "state": "date_agreement",
        "region": str(region),
        "trigger": "agree_date",
        "role": "coordinator",
        "sets": "connection_date=2021-09-01",
        "note": "samlet aftale",
        "preview": "1",
    }
    html = client.get("/bulk", params=params).text
    ids = re.search(r'name="ids" value="([\d,]+)"', html)
    assert ids, html
    chosen = sorted(int(x) for x in ids.group(1).split(","))
    form = {k: v for k, v in params.items() if k != "preview"}
    response = client.post(
        "/bulk/apply",
        data={**form, "ids": ids.group(1), "csrf": csrf_of(html)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    where = re.fullmatch(r"/bulk/done/([0-9TZ]+-[0-9a-f]{6})\?.*", response.headers["location"])
    assert where, response.headers["location"]
    bulk_id = where.group(1)
    page = client.get(response.headers["location"]).text
    listed = sorted(int(t) for t in re.findall(r'<td><a href="/tracks/(\d+)">#', page))
    assert listed == chosen
    assert f"{len(chosen)} spor flyttet" in page and bulk_id in page
    marks = ",".join("?" * len(chosen))
    rows = query(
        web_db,
        f"SELECT track_id, actor, role, note FROM history WHERE track_id IN ({marks})"
        " AND seq = (SELECT max(seq) FROM history h2 WHERE h2.track_id = history.track_id)",
        tuple(chosen),
    )
    assert sorted(r[0] for r in rows) == chosen
    for _track, actor, role, note in rows:
        assert (actor, role) == (COORDINATOR, "coordinator")
        assert note == f"bulk {bulk_id}: samlet aftale"
    db = open_existing(web_db)
    try:
        again = bulkops.moved(db, bulk_id)
    finally:
        db.close()
    assert [t["track"] for t in again["tracks"]] == chosen and again["actor"] == COORDINATOR
    assert client.get("/bulk/done/20210630T150000000000Z-000000").status_code == 404
    assert client.get("/bulk/done/not-an-id").status_code in (404, 422)
