"""Need-to-know reads in a real browser (issue 13): the demo's coordinator, Aarhus's project
lead and KMD (a vendor) log in through the form of ``onboarding serve`` in headless Chromium
and each sees exactly its scope in the grid, track and municipality pages, notifications, the
overdue report and its CSV; another municipality's track or contacts by URL are 404.

The server, browser and port come from tests/test_web_e2e.py; the database here is its own
copy of the demo with one failed notification in Aarhus and one in Odense.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from onboarding.demo import DEMO_ACTORS
from tests.test_web_e2e import browser, server  # noqa: F401  (module fixtures)
from tests.web_support import fresh_db

PASSWORDS = {name: pw for name, _display, pw, _grants in DEMO_ACTORS if pw}
AARHUS, ODENSE, KMD = 751, 461, 1
ORACLE = {
    "koordinator": "SELECT id FROM tracks",
    "aarhus": f"SELECT id FROM tracks WHERE municipality_code = {AARHUS}",
    "kmd": f"SELECT t.id FROM tracks t LEFT JOIN systems s ON s.id = t.system_id"
    f" WHERE coalesce(t.vendor_id, s.vendor_id) = {KMD}",
}


def _ids(db: Path, sql: str) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {int(r[0]) for r in conn.execute(sql) if r[0] is not None}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def web_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo copy the server runs on, with a failed send in Aarhus and one in Odense."""
    db = fresh_db(tmp_path_factory.mktemp("e2e-scopes"))
    conn = sqlite3.connect(db)
    with conn:
        for code in (AARHUS, ODENSE):
            conn.execute(
                "UPDATE outbox SET status = 'failed', attempts = 1, last_error = '550 no'"
                " WHERE id = (SELECT min(o.id) FROM outbox o JOIN tracks t ON t.id = o.track_id"
                " WHERE t.municipality_code = ?)",
                [code],
            )
    conn.close()
    return db


Open = Callable[[str], Page]


@pytest.fixture
def as_actor(browser: Browser, server: str) -> Iterator[Open]:  # noqa: F811
    """Log a demo actor in through the form, each in a fresh browser context."""
    contexts = []

    def log_in(name: str) -> Page:
        context = browser.new_context(
            base_url=server, locale="da-DK", viewport={"width": 1400, "height": 900}
        )
        contexts.append(context)
        p = context.new_page()
        p.goto("/grid")
        p.fill("input[name=name]", name)
        p.fill("input[name=password]", PASSWORDS[name])
        p.click("form[action='/login'] button")
        p.wait_for_url(re.compile(r"^(?!.*/login).*$"))
        return p

    yield log_in
    for c in contexts:
        c.close()


def _track_links(p: Page) -> set[int]:
    hrefs = p.eval_on_selector_all(
        "a[href^='/tracks/']", "els => els.map(e => e.getAttribute('href'))"
    )
    return {int(h.rsplit("/", 1)[1]) for h in hrefs if h.rsplit("/", 1)[1].isdigit()}


def test_web_scopes_in_the_browser_each_role_sees_exactly_its_scope(
    as_actor: Open, web_db: Path
) -> None:
    """Coordinator, project lead and vendor: grid, track, municipality, notifications, reports
    and CSV show exactly each one's scope; other ids by URL are 404."""
    seen: dict[str, dict[str, set[int]]] = {}
    for name in ("koordinator", "aarhus", "kmd"):
        p = as_actor(name)
        own = _ids(web_db, ORACLE[name])
        p.goto("/grid")
        grid = _track_links(p)
        p.goto("/reports/overdue")
        overdue = _track_links(p)
        csv_text = p.request.get("/reports/overdue.csv").text().lstrip("\ufeff")
        overdue_csv = {int(r["track"]) for r in csv.DictReader(io.StringIO(csv_text))}
        p.goto("/notifications?days=60")
        notes = _track_links(p)
        retry_buttons = p.locator("form[action$='/retry'] button").count()
        seen[name] = {"grid": grid, "overdue": overdue, "csv": overdue_csv, "notes": notes}
        for what, ids in seen[name].items():
            assert ids <= own, (name, what)
        assert overdue == overdue_csv, name
        if name == "koordinator":
            assert retry_buttons == 2  # the two failed sends, each with "Prøv igen"
        else:
            assert retry_buttons == 0, name  # nothing offered that the server would refuse
        if name != "koordinator":
            # another municipality's track and page by URL: 404, with none of its data
            odense_track = min(
                _ids(web_db, f"SELECT id FROM tracks WHERE municipality_code = {ODENSE}") - own
            )
            response = p.goto(f"/tracks/{odense_track}")
            assert response is not None and response.status == 404, name
            assert "Odense" not in p.content()
        if name == "aarhus":
            response = p.goto(f"/municipalities/{ODENSE}")
            assert response is not None and response.status == 404
            assert "@odense" not in p.content()
            p.goto(f"/municipalities/{AARHUS}")
            assert "@aarhus.kommune.example" in p.content()  # its own contacts in full
            p.goto("/grid")
            rows = p.locator("table.grid tbody th.muni").all_inner_texts()
            assert [r.strip() for r in rows] == ["Aarhus"]
        if name == "kmd":
            p.goto(f"/municipalities/{AARHUS}")  # KMD has a connection in Aarhus
            assert "@aarhus.kommune.example" not in p.content()  # never others' contacts
    everything = seen["koordinator"]
    for name in ("aarhus", "kmd"):
        own = _ids(web_db, ORACLE[name])
        assert seen[name]["grid"] == everything["grid"] & own, name
        assert seen[name]["overdue"] == everything["overdue"] & own, name
        assert seen[name]["notes"] == everything["notes"] & own, name
    assert seen["kmd"]["grid"] and seen["kmd"]["overdue"]
