"""The landing page and the portfolio grid."""

from __future__ import annotations

from starlette.responses import Response

from onboarding import visibility
from onboarding.web import portfolio
from onboarding.web.core import WEB, Page, Redirect, _parse_day


def home(page: Page) -> Response:
    raise Redirect("/grid")


def grid_page(page: Page) -> Response:
    known = [d["name"] for d in portfolio.filter_options(page.db)["definitions"]]
    chosen = page.query("definition")
    definition = chosen if chosen in known else portfolio.CONNECTION
    options = portfolio.filter_options(page.db, definition)
    as_of, problem = _parse_day(page.query("as_of"), page.today)

    def pick(name: str, allowed: list[str]) -> str:
        value = page.query(name)
        return value if value in allowed else ""

    flt = portfolio.GridFilter(
        category=pick("category", options["categories"]),
        vendor=pick("vendor", options["vendors"]),
        region=pick("region", options["regions"]),
        phase=pick("phase", options["phases"]),
    )
    scope = visibility.of(page.db, page.actor)
    data = portfolio.grid(page.db, as_of, flt, definition, scope)
    return WEB(page).render(
        page, "grid.html", grid=data, options=options, problem=problem, as_of=as_of
    )
