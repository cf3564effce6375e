"""Issue 13 in a real headless Chromium: "Mine opgaver" after logging in, and a filtered grid URL
that reproduces the same view in a new session.

The server, the browser and the database copy are those of ``tests/test_web_e2e.py`` (the real
``onboarding serve`` over the demo database with the test actors).
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, BrowserContext, Page

from onboarding import worklist
from onboarding.db import open_existing
from tests import test_web_e2e as e2e
from tests.web_support import AARHUS, COORDINATOR, PASSWORD

# The same fixtures (one server per module), under the names the tests ask for.
web_db = e2e.web_db
server = e2e.server
browser = e2e.browser

TODAY = date(2021, 6, 30)
ROOT = Path(__file__).parent.parent


def _context(browser: Browser, server: str, width: int = 1400) -> BrowserContext:
    return browser.new_context(
        base_url=server, locale="da-DK", viewport={"width": width, "height": 900}
    )


def _log_in(p: Page, name: str) -> None:
    assert "/login" in p.url
    p.fill("input[name=name]", name)
    p.fill("input[name=password]", PASSWORD)
    p.click("form[action='/login'] button")


def _shot(p: Page, name: str, tmp_path: Path) -> None:
    folder = os.environ.get("ONBOARDING_SCREENSHOTS")
    target = (ROOT / folder if folder else tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(target), full_page=False)
    assert target.stat().st_size > 5_000


def test_web_e2e_my_work_lists_my_tracks_in_order(
    browser: Browser, server: str, web_db: Path, tmp_path: Path
) -> None:
    """Logging in lands on "Mine opgaver": exactly my tracks, overdue first then by deadline,
    each with its step and working days; one click on the action opens the step's form."""
    db = open_existing(web_db)
    try:
        expected = worklist.work_list(db, AARHUS, TODAY)
    finally:
        db.close()
    assert expected and expected[0]["overdue"] and not expected[-1]["overdue"]
    context = _context(browser, server)
    try:
        p = context.new_page()
        p.goto("/")
        _log_in(p, AARHUS)
        p.wait_for_url("**/work")
        assert p.locator("h1").inner_text() == "Mine opgaver"
        rows = p.locator("table.work tbody tr")
        shown = [int(rows.nth(i).get_attribute("data-track") or 0) for i in range(rows.count())]
        assert shown == [w["track"] for w in expected]
        first = rows.first.inner_text()
        assert expected[0]["step"] in first and "arbejdsdage" in first
        assert expected[0]["subject"] in first
        _shot(p, "work.png", tmp_path)
        p.set_viewport_size({"width": 390, "height": 844})
        _shot(p, "work-390.png", tmp_path)
        p.set_viewport_size({"width": 1400, "height": 900})
        action = expected[0]["actions"][0]
        rows.first.locator("a.act").first.click()
        p.wait_for_url(f"**/tracks/{expected[0]['track']}#do-{action['trigger']}")
        form = p.locator(f"form#do-{action['trigger']}")
        assert form.is_visible() and action["label"] in form.inner_text()
    finally:
        context.close()


def _grid_view(p: Page) -> tuple[list[str], dict[str, str], bool]:
    cells = p.locator("table.grid a.cell")
    hrefs = [cells.nth(i).get_attribute("href") or "" for i in range(cells.count())]
    chosen = {
        name: p.locator(f"form.filters select[name={name}]").input_value()
        for name in ("definition", "category", "vendor", "region", "phase", "role")
    }
    return hrefs, chosen, p.locator("input[name=overdue]").is_checked()


def test_web_e2e_filtered_grid_url_reproduces_the_view_in_a_new_session(
    browser: Browser, server: str
) -> None:
    """Filters chosen on the grid (waiting on a role, only overdue, a vendor) are all in the
    URL; that URL opened in a new session (after logging in) shows the same cells and the same
    filter choices."""
    first = _context(browser, server)
    try:
        p = first.new_page()
        p.goto("/grid")
        _log_in(p, COORDINATOR)
        p.wait_for_url("**/grid")
        everything = p.locator("table.grid a.cell").count()
        p.select_option("select[name=vendor]", "KMD")  # submits on change
        p.wait_for_url(re.compile(r".*vendor=KMD.*"))
        p.select_option("select[name=role]", "vendor")
        p.wait_for_url(re.compile(r".*role=vendor.*"))
        p.check("input[name=overdue]")
        p.click("form.filters button")
        p.wait_for_url(re.compile(r".*overdue=1.*"))
        url = p.url
        hrefs, chosen, overdue = _grid_view(p)
    finally:
        first.close()
    query = parse_qs(urlsplit(url).query)
    assert query["vendor"] == ["KMD"] and query["role"] == ["vendor"] and query["overdue"] == ["1"]
    assert hrefs and len(hrefs) < everything and overdue
    assert chosen["vendor"] == "KMD" and chosen["role"] == "vendor"
    second = _context(browser, server)
    try:
        q = second.new_page()
        q.goto(url)
        _log_in(q, COORDINATOR)
        q.wait_for_url(url)
        assert _grid_view(q) == (hrefs, chosen, overdue)
    finally:
        second.close()
