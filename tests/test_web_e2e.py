"""End to end in a real headless Chromium (Debian's, driven by Playwright), as people use it.

The server is the real command, ``onboarding serve``, in a subprocess on a free loopback port,
over a copy of the demo database; it is stopped when the module ends. A missing Chromium fails
these tests (``.ci/run`` installs it); it never skips them.

Set ``ONBOARDING_SCREENSHOTS=docs/screenshots`` to refresh the screenshots kept in the docs.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser import chromium
from tests.web_support import COORDINATOR, DEMO_NOW, PASSWORD, fresh_db, wait_listening

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def web_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_db(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="module")
def server(web_db: Path) -> Iterator[str]:
    """``onboarding serve`` on a free loopback port; its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "ONBOARDING_NOW": DEMO_NOW,
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--db", str(web_db), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_listening(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (tests/browser.py); its absence is a failure, not a skip."""
    executable = chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh browser context (Danish locale), logged in through the form as a coordinator."""
    context = browser.new_context(
        base_url=server, locale="da-DK", viewport={"width": 1440, "height": 900}
    )
    p = context.new_page()
    problems: list[str] = []
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(str(e)))
    p.goto("/grid")
    assert "/login" in p.url  # not logged in yet
    p.fill("input[name=name]", COORDINATOR)
    p.fill("input[name=password]", PASSWORD)
    p.click("form[action='/login'] button")
    p.wait_for_url("**/grid")
    yield p
    context.close()
    assert not problems, problems  # no script errors, no refused resources (CSP)


def _shot(p: Page, name: str, tmp_path: Path, full_page: bool = False) -> None:
    folder = os.environ.get("ONBOARDING_SCREENSHOTS")
    target = (ROOT / folder if folder else tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(target), full_page=full_page)
    assert target.stat().st_size > 10_000


def _sql(db: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(query).fetchall()]
    finally:
        conn.close()


def test_web_e2e_grid_to_track_step_to_history(page: Page, web_db: Path, tmp_path: Path) -> None:
    """Log in, open the grid, click a cell, take a step with a date and a note, see it in the
    history and in the database."""
    (track,) = _sql(
        web_db,
        "SELECT id FROM tracks WHERE definition = 'connection' AND state = 'date_agreement'"
        " AND final = 0 ORDER BY id LIMIT 1",
    )[0]
    assert page.locator("table.grid a.cell").count() > 100
    assert page.locator("h1").inner_text() == "Portefølje"
    _shot(page, "grid.png", tmp_path)
    page.click(f"a.cell[href='/tracks/{track}']")
    page.wait_for_url(f"**/tracks/{track}")
    assert "1. Aftal tilslutningsdato" in page.locator(".state .value").inner_text()
    form = page.locator("form.action", has=page.locator("input[name=trigger][value=agree_date]"))
    form.locator("input[name=field_connection_date]").fill("2021-09-01")
    form.locator("input[name=note]").fill("aftalt med leverandøren i dag")
    form.locator("button").click()
    page.wait_for_selector(".flash.ok")
    assert "2. Godkend serviceaftaler" in page.locator(".state .value").inner_text()
    first = page.locator("table.history tbody tr").first.inner_text()
    assert "Tilslutningsdato aftalt" in first and "aftalt med leverandøren i dag" in first
    assert COORDINATOR in first
    _shot(page, "track.png", tmp_path, full_page=True)
    (row,) = _sql(
        web_db,
        f"SELECT actor, note FROM history WHERE track_id = {track} ORDER BY seq DESC LIMIT 1",
    )
    assert row == (COORDINATOR, "aftalt med leverandøren i dag")


def test_web_e2e_bulk_preview(page: Page) -> None:
    """Choose tracks and a step in the bulk form and see the preview of what would move."""
    page.goto("/bulk")
    page.select_option("select[name=definition]", "connection")
    page.select_option("select[name=state]", "sapa_request")
    page.select_option("select[name=trigger]", "request_display")
    page.click("form.bulkform button.primary")
    page.wait_for_selector("#preview")
    summary = page.locator("#preview .summary").inner_text()
    assert "kan flyttes" in summary and "spærret" in summary
    assert page.locator("form.apply button").count() == 1


def test_web_e2e_import_upload_preview_and_apply(page: Page, web_db: Path, tmp_path: Path) -> None:
    """Upload a status file, see the difference, apply it."""
    name, system = _sql(
        web_db,
        "SELECT m.name, v.name || ' ' || s.name FROM tracks t"
        " JOIN municipalities m ON m.code = t.municipality_code"
        " JOIN systems s ON s.id = t.system_id JOIN vendors v ON v.id = s.vendor_id"
        " WHERE t.definition = 'connection' AND t.state = 'service_agreements' AND t.final = 0"
        " ORDER BY t.id LIMIT 1",
    )[0]
    status = tmp_path / "status-2021-06.csv"
    status.write_text(
        f"municipality;system;status;date\n{name};{system};sapa_request;2021-06-30\n",
        encoding="utf-8",
    )
    page.goto("/import")
    page.set_input_files("input[type=file]", str(status))
    page.click("form.upload button")
    page.wait_for_selector("section.preview")
    assert "status-2021-06.csv" in page.locator("section.preview h2").inner_text()
    assert "flyttes" in page.locator("section.preview table").inner_text()
    page.click("form.apply button")
    page.wait_for_selector(".flash.ok")
    assert "indlæst" in page.locator(".flash.ok").inner_text()
