"""Issue 13, mobile and accessibility, in a real headless Chromium (Debian's, via Playwright).

Every GET route of the app that renders a page (read from ``onboarding.web.app.routes()``, so a
page added later is covered or fails here until it is given a sample URL) is opened in Danish and
English at 1400 px and 390 px:

- axe-core (bundled by ``axe-playwright-python``, so offline) finds nothing "serious" or
  "critical";
- at 390 px the page itself never scrolls sideways (wide tables scroll inside their box);
- every link in the page body can be told from text without colour (underline, or a box of its
  own), and the header's menu folds away behind a button at 390 px.

The server, browser and database copy are those of ``tests/test_web_e2e.py`` (the real
``onboarding serve`` over the demo database with the test actors), one server for this module.
Set ``ONBOARDING_SCREENSHOTS=docs/screenshots`` to refresh the narrow screenshots in the docs.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page
from starlette.routing import Route

from onboarding.web.app import routes
from tests import test_web_e2e as e2e
from tests.web_support import COORDINATOR, PASSWORD

# The same fixtures (one server per module), under the names the tests ask for.
web_db = e2e.web_db
server = e2e.server
browser = e2e.browser

ROOT = Path(__file__).parent.parent
WIDTHS = (1400, 390)
LANGUAGES = ("da", "en")
#: What fails the check: axe-core's two worst impact levels.
FAILING = ("serious", "critical")


@dataclass(frozen=True)
class Samples:
    """Concrete values for the routes' path parameters, read from the demo database."""

    open_track: int
    finished_track: int
    municipality: int
    bulk_preview: str
    bulk_done: str


#: How each GET route is reached as a page: the URLs to check (an empty list: not a page).
#: A route missing here fails the tests below, so a new page cannot go unchecked.
PAGES: dict[str, Callable[[Samples], list[str]]] = {
    "/": lambda s: ["/"],  # lands on the work list
    "/login": lambda s: ["/login"],  # opened logged out
    "/work": lambda s: ["/work", "/work?overdue=1"],
    "/grid": lambda s: ["/grid", "/grid?overdue=1"],
    "/tracks/{track_id:int}": lambda s: [f"/tracks/{s.open_track}", f"/tracks/{s.finished_track}"],
    "/municipalities/{code:int}": lambda s: [f"/municipalities/{s.municipality}"],
    "/bulk": lambda s: ["/bulk", s.bulk_preview],
    "/bulk/done/{bulk_id}": lambda s: [s.bulk_done],
    "/import": lambda s: ["/import"],
    "/reports": lambda s: ["/reports"],
    "/reports/{name}.csv": lambda s: [],  # a CSV download
    "/reports/{name}": lambda s: [f"/reports/{n}" for n in ("rollout", "goals", "klik", "overdue")],
    "/notifications": lambda s: ["/notifications"],
    # For machines, not people: plain text / Prometheus text, no page.
    "/healthz": lambda s: [],
    "/readyz": lambda s: [],
    "/metrics": lambda s: [],
    # Not a route of its own: the error page, as a malformed or unknown id gets it.
    "(not found)": lambda s: ["/tracks/99999999"],
}
#: Pages opened without logging in.
LOGGED_OUT = ("/login",)


def get_routes() -> list[str]:
    """Every GET route of the app (static files aside), plus the error page."""
    paths = [r.path for r in routes() if isinstance(r, Route) and "GET" in (r.methods or ())]
    return [*paths, "(not found)"]


def _one(db: Path, query: str) -> Any:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query).fetchone()[0]
    finally:
        conn.close()


def _log_in(p: Page, name: str) -> None:
    p.goto("/login")
    p.fill("input[name=name]", name)
    p.fill("input[name=password]", PASSWORD)
    p.click("form[action='/login'] button")
    p.wait_for_url("**/work")


def _bulk_pages(p: Page) -> tuple[str, str]:
    """A bulk preview and the result page of applying it (the preview's URL, the result's)."""
    p.goto("/bulk")
    p.select_option("select[name=definition]", "connection")
    p.select_option("select[name=state]", "sapa_request")
    p.select_option("select[name=trigger]", "request_display")
    p.click("form.bulkform button.primary")
    p.wait_for_selector("#preview")
    preview = p.url.removeprefix(_origin(p.url))
    p.click("form.apply button")
    p.wait_for_url("**/bulk/done/**")
    return preview, p.url.removeprefix(_origin(p.url))


def _origin(url: str) -> str:
    return url[: url.index("/", len("http://"))]


@pytest.fixture(scope="module")
def samples(browser: Browser, server: str, web_db: Path) -> Samples:
    """Sample URLs, the bulk ones made by doing a bulk action in the browser."""
    context = browser.new_context(base_url=server, locale="da-DK")
    try:
        p = context.new_page()
        _log_in(p, COORDINATOR)
        preview, done = _bulk_pages(p)
    finally:
        context.close()
    return Samples(
        open_track=_one(
            web_db,
            "SELECT id FROM tracks WHERE definition = 'connection' AND state = 'date_agreement'"
            " AND final = 0 ORDER BY id LIMIT 1",
        ),
        finished_track=_one(web_db, "SELECT id FROM tracks WHERE final = 1 ORDER BY id LIMIT 1"),
        municipality=_one(web_db, "SELECT code FROM municipalities WHERE name = 'Aarhus'"),
        bulk_preview=preview,
        bulk_done=done,
    )


class Sessions:
    """One browser context per (logged in?, language, width), made when first asked for."""

    def __init__(self, browser: Browser, server: str) -> None:
        self.browser, self.server = browser, server
        self.pages: dict[tuple[bool, str, int], Page] = {}
        self.contexts: list[BrowserContext] = []

    def page(self, logged_in: bool, lang: str, width: int) -> Page:
        key = (logged_in, lang, width)
        if key not in self.pages:
            context = self.browser.new_context(
                base_url=self.server, locale="da-DK", viewport={"width": width, "height": 900}
            )
            self.contexts.append(context)
            p = context.new_page()
            p.goto("/login")
            if logged_in:
                _log_in(p, COORDINATOR)
            if lang != "da":
                toggle = p.locator("header.top .menu-toggle")
                if toggle.is_visible():  # narrow: the switch is in the folded menu
                    toggle.click()
                p.click(f"header form[action='/language'] button[value={lang}]")
                p.wait_for_load_state()
            assert p.locator("html").get_attribute("lang") == lang
            self.pages[key] = p
        return self.pages[key]

    def close(self) -> None:
        for c in self.contexts:
            c.close()


@pytest.fixture(scope="module")
def sessions(browser: Browser, server: str) -> Iterator[Sessions]:
    s = Sessions(browser, server)
    yield s
    s.close()


def _urls(route: str, samples: Samples) -> list[str]:
    if route not in PAGES:
        pytest.fail(
            f"GET {route} has no sample URL: add it to PAGES in tests/test_web_a11y.py",
            pytrace=False,
        )
    return PAGES[route](samples)


def _open(sessions: Sessions, route: str, url: str, lang: str, width: int) -> Page:
    p = sessions.page(route not in LOGGED_OUT, lang, width)
    response = p.goto(url)
    assert response is not None
    assert response.status < 500, (url, response.status)
    assert "text/html" in response.headers.get("content-type", ""), url
    return p


def _findings(p: Page) -> list[str]:
    """axe-core's serious and critical findings on the page, one line each."""
    result = Axe().run(p).response
    return [
        f"{v['id']} ({v['impact']}): {v['help']}; "
        + ", ".join(" ".join(n["target"]) for n in v["nodes"][:3])
        + (f" and {len(v['nodes']) - 3} more" if len(v["nodes"]) > 3 else "")
        for v in result["violations"]
        if v["impact"] in FAILING
    ]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("route", get_routes())
def test_web_a11y_axe_finds_nothing_serious(
    route: str, lang: str, width: int, sessions: Sessions, samples: Samples
) -> None:
    """axe-core reports no serious or critical finding on the page, in either language, at
    either width."""
    problems = []
    for url in _urls(route, samples):
        p = _open(sessions, route, url, lang, width)
        problems += [f"{url}: {f}" for f in _findings(p)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("route", get_routes())
def test_web_a11y_narrow_page_never_scrolls_sideways(
    route: str, lang: str, sessions: Sessions, samples: Samples
) -> None:
    """At 390 px the document is no wider than the window (wide tables scroll in their box)."""
    too_wide = []
    for url in _urls(route, samples):
        p = _open(sessions, route, url, lang, 390)
        scroll, client = p.evaluate(
            "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
        )
        if scroll > client:
            too_wide.append(f"{url}: {scroll} px wide in a {client} px window")
    assert not too_wide, "\n".join(too_wide)


#: A link is told from text without colour when it is underlined or drawn as a box (a border or
#: its own background); links in a navigation bar are known to be links by where they are.
_LINKS_BY_COLOUR_ONLY = """() => {
  const out = [];
  for (const a of document.querySelectorAll("main a[href]")) {
    if (a.closest("nav") || !a.offsetParent) continue;
    const s = getComputedStyle(a);
    const underlined = s.textDecorationLine.includes("underline");
    const border = ["Top", "Right", "Bottom", "Left"].some(
      (side) => parseFloat(s["border" + side + "Width"]) > 0
        && s["border" + side + "Color"] !== "rgba(0, 0, 0, 0)");
    const box = s.backgroundColor !== "rgba(0, 0, 0, 0)";
    if (!underlined && !border && !box) out.push(a.outerHTML.slice(0, 120));
  }
  return out;
}"""


@pytest.mark.parametrize("route", get_routes())
def test_web_a11y_links_are_distinguishable_without_colour(
    route: str, sessions: Sessions, samples: Samples
) -> None:
    """Every link in the page body is underlined or drawn as a box, not told apart by colour
    alone."""
    found = []
    for url in _urls(route, samples):
        p = _open(sessions, route, url, "da", 1400)
        found += [f"{url}: {a}" for a in p.evaluate(_LINKS_BY_COLOUR_ONLY)]
    assert not found, f"{len(found)} links differ by colour only:\n" + "\n".join(found[:20])


def _shot(p: Page, name: str, tmp_path: Path) -> None:
    folder = os.environ.get("ONBOARDING_SCREENSHOTS")
    target = (ROOT / folder if folder else tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(target), full_page=False)
    assert target.stat().st_size > 5_000


def test_web_a11y_header_menu_collapses_when_narrow(
    sessions: Sessions, samples: Samples, tmp_path: Path
) -> None:
    """At 390 px the header shows a menu button instead of the menu; the button opens it, and
    each item is reachable; at 1400 px the menu is there without a button."""
    wide = _open(sessions, "/grid", "/grid", "da", 1400)
    assert wide.locator("header.top nav a").first.is_visible()
    assert not wide.locator("header.top .menu-toggle").is_visible()
    p = _open(sessions, "/grid", "/grid", "da", 390)
    toggle = p.locator("header.top .menu-toggle")
    assert toggle.is_visible()
    assert not p.locator("header.top nav a").first.is_visible()
    _shot(p, "grid-390.png", tmp_path)
    toggle.click()
    links = p.locator("header.top nav a")
    assert all(links.nth(i).is_visible() for i in range(links.count()))
    assert p.locator("header.top form[action='/logout'] button").is_visible()
    p.click("header.top nav a[href='/notifications']")
    p.wait_for_url("**/notifications")
    _open(sessions, "/tracks/{track_id:int}", f"/tracks/{samples.open_track}", "da", 390)
    _shot(p, "track-390.png", tmp_path)
