"""The landing page and the portfolio grid."""

from __future__ import annotations

from starlette.responses import Response

from onboarding import visibility
from onboarding.web import portfolio
from onboarding.web.core import WEB, Page, _parse_day, _urlencode


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
        overdue=page.query("overdue") in ("1", "on", "ja", "yes"),
        role=pick("role", options["roles"]),
    )
    scope = visibility.of(page.db, page.actor)
    data = portfolio.grid(page.db, as_of, flt, definition, scope)
    # The overdue count links to this very view narrowed to the overdue cells: every filter
    # lives in the URL, so the link (like any view) can be bookmarked and shared.
    kept = {k: v for k, v in page.request.query_params.items() if k in _FILTERS and v}
    return WEB(page).render(
        page,
        "grid.html",
        grid=data,
        options=options,
        problem=problem,
        as_of=as_of,
        overdue_url="/grid?" + _urlencode({**kept, "overdue": "1"}),
    )


#: The grid's filters, as URL parameters.
_FILTERS = ("definition", "category", "vendor", "region", "phase", "role", "overdue", "as_of")
