"""My work ("Mine opgaver"): the landing page, what is waiting on the logged-in person."""

from __future__ import annotations

from starlette.responses import Response

from onboarding import worklist
from onboarding.web.core import WEB, Page, Redirect


def home(page: Page) -> Response:
    """After logging in, people land on their work list."""
    raise Redirect("/work")


def work_page(page: Page) -> Response:
    """Every open track whose next step lies with one of my roles in my scope (overdue first,
    then by deadline); ``?overdue=1`` keeps only the overdue ones (a link one can share)."""
    assert page.actor is not None
    items = worklist.work_list(page.db, page.actor, page.today)
    only_overdue = page.query("overdue") in ("1", "on", "ja", "yes")
    overdue = sum(1 for w in items if w["overdue"])
    shown = [w for w in items if w["overdue"]] if only_overdue else items
    return WEB(page).render(
        page,
        "work.html",
        work=shown,
        total=len(items),
        overdue=overdue,
        only_overdue=only_overdue,
    )
