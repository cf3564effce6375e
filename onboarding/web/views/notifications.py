"""The notification outbox: list, retry."""

from __future__ import annotations

from starlette.responses import Response

from onboarding import outbox
from onboarding.web import i18n
from onboarding.web.core import WEB, Page, Redirect, _require_role
from onboarding.web.i18n import gettext as _


def notifications_page(page: Page) -> Response:
    from notifications.config import load_config
    from notifications.runner import forecast

    days_text = page.query("days", "14")
    days = int(days_text) if days_text.isdigit() and 0 < int(days_text) <= 90 else 14
    config = load_config(WEB(page).db_path, db=page.db)
    ahead = forecast(page.db, None, days, config)
    failed = outbox.list_rows(page.db, ("failed",))
    return WEB(page).render(page, "notifications.html", forecast=ahead, failed=failed, days=days)


def notification_retry(page: Page) -> Response:
    _require_role(page, ("coordinator",), "retry notifications")
    row_id = int(page.request.path_params["row_id"])
    outbox.retry(page.db, row_id)
    page.flash(_("Notification %(id)d will be sent again at the next run.") % {"id": row_id})
    raise Redirect("/notifications")


def notifications_retry_failed(page: Page) -> Response:
    _require_role(page, ("coordinator",), "retry notifications")
    count = outbox.retry_failed(page.db)
    page.flash(
        i18n.ngettext(
            "%(n)d notification will be sent again at the next run.",
            "%(n)d notifications will be sent again at the next run.",
            count,
        )
        % {"n": count}
    )
    raise Redirect("/notifications")
