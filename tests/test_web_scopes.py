"""Need-to-know reads on the web page (issue 13), over HTTP on a copy of the demo database.

The demo's coordinator (``koordinator``), Aarhus's project lead (``aarhus``) and KMD's account
manager (``kmd``, a vendor) log in; what each page links to and shows is compared with an
oracle written here in plain SQL (not with ``onboarding.visibility``): a municipality's staff
read its municipality's tracks, a vendor its systems' tracks, a coordinator everything.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from onboarding import actors, outbox, visibility
from onboarding.db import open_existing
from onboarding.demo import DEMO_ACTORS
from onboarding.web import create_app
from tests.web_support import DEMO_NOW, csrf_of, fresh_db, login, without_csrf

PASSWORDS = {name: pw for name, _display, pw, _grants in DEMO_ACTORS if pw}
AARHUS, ODENSE = 751, 461
KMD = 1
TRACK_LINK = re.compile(r'href="/tracks/(\d+)"')
MUNICIPALITY_LINK = re.compile(r'href="/municipalities/(\d+)"')

#: Which tracks each demo actor reads: plain SQL, independent of onboarding.visibility.
ORACLE = {
    "koordinator": "SELECT id FROM tracks",
    "aarhus": f"SELECT id FROM tracks WHERE municipality_code = {AARHUS}",
    "kmd": f"SELECT t.id FROM tracks t LEFT JOIN systems s ON s.id = t.system_id"
    f" WHERE coalesce(t.vendor_id, s.vendor_id) = {KMD}",
}


@pytest.fixture
def web_db(tmp_path: Path) -> Path:
    return fresh_db(tmp_path)


Login = Callable[[str], TestClient]


@pytest.fixture
def as_actor(web_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Login]:
    """Log a demo actor in; the clients close at the end of the test."""
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    clients: list[TestClient] = []

    def log_in(name: str) -> TestClient:
        client = TestClient(create_app(web_db))
        client.__enter__()
        clients.append(client)
        login(client, name, PASSWORDS[name])
        return client

    yield log_in
    for c in clients:
        c.__exit__(None, None, None)


def _ids(db: Path, sql: str) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {int(r[0]) for r in conn.execute(sql)}
    finally:
        conn.close()


def _scalar(db: Path, sql: str) -> Any:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


@contextmanager
def _write(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _links(html: str) -> set[int]:
    return {int(n) for n in TRACK_LINK.findall(html)}


def _rows(html: str) -> list[str]:
    """The municipality (row) names of the grid's body."""
    body = html.split("<tbody>", 1)[1] if "<tbody>" in html else ""
    return re.findall(r'<th class="muni" scope="row">(?:<a [^>]*>)?([^<]+)', body)


def test_visibility_read_scope_is_the_write_scope(web_db: Path) -> None:
    """For every track and demo actor, the read predicate agrees with the write check."""
    db = open_existing(web_db)
    try:
        every = [
            dict(zip(("id", "municipality_code", "system_id", "vendor_id"), r, strict=True))
            for r in db.conn.execute(
                "SELECT id, municipality_code, system_id, vendor_id FROM tracks"
            )
        ]
        for name in ("koordinator", "aarhus", "kmd"):
            scope = visibility.of(db, name)
            reads = scope.track_ids(db)
            assert reads == _ids(web_db, ORACLE[name]), name
            may_act = {t["id"] for t in every if actors.roles_for(db, name, t)}
            assert reads == may_act, name
    finally:
        db.close()


def test_web_grid_shows_each_reader_exactly_its_scope(as_actor: Login, web_db: Path) -> None:
    """Grid cells link only to readable tracks; rows of others are gone; totals are national."""
    pages = {name: as_actor(name).get("/grid").text for name in ("koordinator", "aarhus", "kmd")}
    everything = _links(pages["koordinator"])
    assert len(everything) > 100
    for name in ("aarhus", "kmd"):
        own = _ids(web_db, ORACLE[name])
        assert _links(pages[name]) == everything & own, name
    assert _rows(pages["aarhus"]) == ["Aarhus"]
    assert "Odense" not in pages["aarhus"] and "Odense" in pages["koordinator"]
    # KMD: every row is a municipality where a KMD system has a track or a contract.
    kmd_places = _ids(
        web_db,
        f"SELECT t.municipality_code FROM tracks t JOIN systems s ON s.id = t.system_id"
        f" WHERE s.vendor_id = {KMD} AND t.municipality_code IS NOT NULL"
        f" UNION SELECT c.municipality_code FROM contracts c"
        f" JOIN systems s ON s.id = c.system_id WHERE s.vendor_id = {KMD}",
    )
    kmd_rows = {int(c) for c in MUNICIPALITY_LINK.findall(pages["kmd"])}
    assert kmd_rows and kmd_rows <= kmd_places
    # The totals are the national aggregate, the same for everyone.
    summary = re.compile(r'<p class="summary">(.*?)</p>', re.S)
    national = summary.search(pages["koordinator"])
    assert national is not None
    for name in ("aarhus", "kmd"):
        found = summary.search(pages[name])
        assert found is not None and found.group(1) == national.group(1), name
        assert 'class="summary mine"' in pages[name]
    assert 'class="summary mine"' not in pages["koordinator"]


def test_web_public_portfolio_names_every_row_but_opens_only_ones_own(
    as_actor: Login, web_db: Path
) -> None:
    """With portfolio.public other rows are named, without links, and their pages stay 404."""
    db = open_existing(web_db)
    try:
        visibility.set_portfolio_public(db, True, by="koordinator")
    finally:
        db.close()
    client = as_actor("aarhus")
    html = client.get("/grid").text
    assert "Odense" in _rows(html) and "Aarhus" in _rows(html)
    assert _links(html) <= _ids(web_db, ORACLE["aarhus"])
    assert {int(c) for c in MUNICIPALITY_LINK.findall(html)} == {AARHUS}
    assert client.get(f"/municipalities/{ODENSE}").status_code == 404


def _masked(html: str, track_id: int) -> str:
    """A page with its CSRF tokens and the track's id (as a whole number) replaced."""
    html = without_csrf(html)
    return re.sub(rf"(?<!\d){track_id}(?!\d)", "N", html)


def test_web_track_outside_the_scope_is_not_found(as_actor: Login, web_db: Path) -> None:
    """A track another municipality's or vendor's is 404 (as unknown), page and advance."""
    odense = int(_scalar(web_db, f"SELECT min(id) FROM tracks WHERE municipality_code = {ODENSE}"))
    subject = f"/municipalities/{ODENSE}"
    aarhus = as_actor("aarhus")
    page = aarhus.get(f"/tracks/{odense}")
    assert page.status_code == 404
    assert subject not in page.text and "Odense" not in page.text
    missing = aarhus.get("/tracks/999999")
    assert missing.status_code == 404
    # the same answer as for a track that does not exist: no hint that it is there (the
    # pages' CSRF tokens masked first: a random token may hold the track's id as digits)
    assert _masked(page.text, odense) == _masked(missing.text, 999999)
    token = csrf_of(aarhus.get("/grid").text)
    version = _scalar(web_db, f"SELECT version FROM tracks WHERE id = {odense}")
    refused = aarhus.post(
        f"/tracks/{odense}/advance",
        data={"csrf": token, "trigger": "x", "role": "municipality-pl", "version": str(version)},
    )
    assert refused.status_code == 404
    assert _scalar(web_db, f"SELECT version FROM tracks WHERE id = {odense}") == version
    for name in ("aarhus", "kmd"):
        client = aarhus if name == "aarhus" else as_actor(name)
        own = sorted(_ids(web_db, ORACLE[name]))
        other = sorted(_ids(web_db, "SELECT id FROM tracks") - set(own))
        for track_id in own[:4]:
            assert client.get(f"/tracks/{track_id}").status_code == 200, (name, track_id)
        for track_id in other[:: max(1, len(other) // 6)]:
            assert client.get(f"/tracks/{track_id}").status_code == 404, (name, track_id)
    assert as_actor("koordinator").get(f"/tracks/{odense}").status_code == 200


def test_web_municipality_page_and_contacts_follow_the_scope(as_actor: Login, web_db: Path) -> None:
    """Own municipality in full; another's is 404; a vendor never sees a municipality's people."""
    aarhus = as_actor("aarhus")
    own = aarhus.get(f"/municipalities/{AARHUS}")
    assert own.status_code == 200 and "mette.thomsen@aarhus.kommune.example" in own.text
    assert aarhus.get(f"/municipalities/{ODENSE}").status_code == 404
    kmd = as_actor("kmd")
    page = kmd.get(f"/municipalities/{AARHUS}")  # KMD has a connection track in Aarhus
    assert page.status_code == 200
    assert "@aarhus.kommune.example" not in page.text
    assert _links(page.text) <= _ids(web_db, ORACLE["kmd"])
    no_kmd = _scalar(
        web_db,
        f"SELECT min(code) FROM municipalities WHERE code NOT IN (SELECT t.municipality_code"
        f" FROM tracks t JOIN systems s ON s.id = t.system_id WHERE s.vendor_id = {KMD}"
        f" AND t.municipality_code IS NOT NULL) AND code NOT IN (SELECT c.municipality_code"
        f" FROM contracts c JOIN systems s ON s.id = c.system_id WHERE s.vendor_id = {KMD})",
    )
    assert kmd.get(f"/municipalities/{no_kmd}").status_code == 404
    everyone = as_actor("koordinator").get(f"/municipalities/{AARHUS}").text
    assert "mette.thomsen@aarhus.kommune.example" in everyone


def test_web_notifications_follow_the_scope_and_offer_no_refused_retry(
    as_actor: Login, web_db: Path
) -> None:
    """Forecast and failed lists hold only readable tracks; no Retry the server would refuse."""
    db = open_existing(web_db)
    try:  # planned rows (issue 14) become rows, to be poked at and counted in SQL below
        with db.conn:
            outbox.materialise_all(db.conn)
    finally:
        db.close()
    aarhus_row = int(
        _scalar(
            web_db,
            "SELECT min(o.id) FROM outbox o JOIN tracks t ON t.id ="
            f" o.track_id WHERE t.municipality_code = {AARHUS}",
        )
    )
    odense_row = int(
        _scalar(
            web_db,
            "SELECT min(o.id) FROM outbox o JOIN tracks t ON t.id ="
            f" o.track_id WHERE t.municipality_code = {ODENSE}",
        )
    )
    with _write(web_db) as conn:
        conn.execute(
            "UPDATE outbox SET status = 'failed', attempts = 1, last_error = '550 no'"
            f" WHERE id IN ({aarhus_row}, {odense_row})"
        )
    coordinator = as_actor("koordinator").get("/notifications?days=60").text
    assert f"/notifications/{aarhus_row}/retry" in coordinator
    assert f"/notifications/{odense_row}/retry" in coordinator
    for name in ("aarhus", "kmd"):
        client = as_actor(name)
        html = client.get("/notifications?days=60").text
        assert _links(html) <= _ids(web_db, ORACLE[name]), name
        assert "/retry" not in html, name  # no "Prøv igen" it may not use
        # another's row: 404 as unknown; its own: the role check refuses (403)
        token = csrf_of(html)
        assert (
            client.post(f"/notifications/{odense_row}/retry", data={"csrf": token}).status_code
            == 404
        )
    aarhus = as_actor("aarhus")
    html = aarhus.get("/notifications?days=60").text
    assert (
        f'href="/tracks/{_scalar(web_db, f"SELECT track_id FROM outbox WHERE id = {aarhus_row}")}"'
        in html
    )
    own = aarhus.post(f"/notifications/{aarhus_row}/retry", data={"csrf": csrf_of(html)})
    assert own.status_code == 403
    assert _scalar(web_db, f"SELECT status FROM outbox WHERE id = {aarhus_row}") == "failed"
    kmd = as_actor("kmd").get("/notifications?days=60").text
    kmd_pending = _ids(
        web_db,
        "SELECT o.track_id FROM outbox o JOIN tracks t ON t.id = o.track_id JOIN systems s"
        f" ON s.id = t.system_id WHERE s.vendor_id = {KMD} AND o.status = 'pending'",
    )
    assert kmd_pending and kmd_pending <= _links(kmd)
    assert "@aarhus.kommune.example" not in kmd


def test_web_overdue_report_and_csv_follow_the_scope(as_actor: Login, web_db: Path) -> None:
    """The overdue list (page and CSV) holds only readable tracks; aggregates are national."""

    def csv_tracks(client: TestClient) -> set[int]:
        text = client.get("/reports/overdue.csv").text.lstrip("\ufeff")
        return {int(r["track"]) for r in csv.DictReader(io.StringIO(text))}

    coordinator = as_actor("koordinator")
    everything = csv_tracks(coordinator)
    assert everything
    rollout = coordinator.get("/reports/rollout.csv").text
    for name in ("aarhus", "kmd"):
        client = as_actor(name)
        own = _ids(web_db, ORACLE[name])
        assert csv_tracks(client) == everything & own, name
        assert _links(client.get("/reports/overdue").text) == everything & own, name
        assert client.get("/reports/rollout.csv").text == rollout, name  # aggregate counts
    assert csv_tracks(as_actor("kmd"))  # KMD has overdue tracks of its own in the demo


def test_web_bulk_preview_selects_only_readable_tracks(as_actor: Login, web_db: Path) -> None:
    """A bulk selection over every municipality lists none of another's tracks."""
    query = "/bulk?preview=1&definition=connection&trigger=agree_date&role="
    everything = _links(as_actor("koordinator").get(query + "coordinator").text)
    assert len(everything) > 20
    html = as_actor("aarhus").get(query + "municipality-pl").text
    assert _links(html) == everything & _ids(web_db, ORACLE["aarhus"]) != set()
    assert "Odense" not in html


FORM = re.compile(
    r'<form method="post" action="/tracks/(\d+)/advance".*?name="trigger" value="([^"]+)"'
    r".*?</form>",
    re.S,
)
ROLE = re.compile(r'name="role" value="([^"]+)"|<option value="([^"]+)"')


def test_web_track_page_offers_only_steps_the_reader_may_take(
    as_actor: Login, web_db: Path
) -> None:
    """Every advance button is for a trigger one of the reader's roles there may fire."""
    from onboarding import tracks

    db = open_existing(web_db)
    try:
        for name in ("koordinator", "aarhus", "kmd"):
            client = as_actor(name)
            own = sorted(
                _ids(web_db, ORACLE[name] + " INTERSECT SELECT id FROM tracks WHERE final = 0")
            )
            offered = 0
            for track_id in own[:12]:
                html = client.get(f"/tracks/{track_id}").text
                track = dict(
                    zip(
                        ("id", "municipality_code", "system_id", "vendor_id"),
                        db.conn.execute(
                            "SELECT id, municipality_code, system_id, vendor_id FROM tracks"
                            " WHERE id = ?",
                            [track_id],
                        ).fetchone(),
                        strict=True,
                    )
                )
                mine = set(actors.roles_for(db, name, track))
                allowed = {
                    a["trigger"]: set(a["roles"]) & mine
                    for a in tracks.why(db, track_id)["available"]
                    if not a["blocked_by"]
                }
                for match in FORM.finditer(html):
                    trigger = match.group(2)
                    roles = {a or b for a, b in ROLE.findall(match.group(0))}
                    assert allowed.get(trigger), (name, track_id, trigger)
                    assert roles <= allowed[trigger], (name, track_id, trigger, roles)
                    offered += 1
            if name != "kmd":  # a vendor's steps depend on where the demo left its tracks
                assert offered > 0, name
    finally:
        db.close()


def test_web_track_page_shows_no_others_addresses(as_actor: Login, web_db: Path) -> None:
    """A track's sent notifications show the reader's own contacts' addresses, no one else's."""
    track = int(
        _scalar(
            web_db,
            "SELECT min(o.track_id) FROM outbox o JOIN tracks t ON t.id = o.track_id"
            f" WHERE t.municipality_code = {AARHUS} AND o.sent_to LIKE '%@kombit%'",
        )
    )
    coordinator = as_actor("koordinator").get(f"/tracks/{track}").text
    assert "@kombit.example" in coordinator and "@aarhus.kommune.example" in coordinator
    aarhus = as_actor("aarhus").get(f"/tracks/{track}").text
    assert "@kombit.example" not in aarhus and "@aarhus.kommune.example" in aarhus
