"""The notification outbox: list, retry (need-to-know: only the reader's tracks' rows)."""

from __future__ import annotations

import re

from starlette.responses import Response

from onboarding import outbox, visibility
from onboarding.outbox_reasons import said
from onboarding.web import i18n
from onboarding.web.core import WEB, Page, Redirect, _grants, _require_role
from onboarding.web.i18n import gettext as _

#: Who may requeue a notification: a coordinator for all (as _require_role checks).
RETRY_ROLES = ("coordinator",)


def _may_retry(page: Page) -> bool:
    """Offer "Retry" only to those the server lets retry (no button it then refuses)."""
    assert page.actor is not None
    return any(
        g.get("role") in RETRY_ROLES and g.get("scope") == "all"
        for g in _grants(page.db, page.actor)
    )


def notifications_page(page: Page) -> Response:
    from notifications.config import load_config
    from notifications.runner import forecast

    days_text = page.query("days", "14")
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses.
    days = int(days_text) if re.fullmatch(r"[0-9]{1,2}", days_text) else 14
    days = days if 0 < days <= 90 else 14
    scope = visibility.of(page.db, page.actor)
    config = load_config(WEB(page).db_path, db=page.db)
    lang = i18n.current()
    ahead = [
        # why a message cannot go (nobody to send to) in the reader's language
        {**f, "problem": said(f["problem"], lang) or None}
        for f in (
            visibility.own_recipients(page.db, scope, f)
            for f in forecast(page.db, None, days, config, scope)
        )
    ]
    failed = [
        {
            **row,
            "last_error": said(row["last_error"], i18n.current(), page.db, row["track_id"]),
        }
        for row in outbox.list_rows(page.db, ("failed",), scope=scope)
    ]
    return WEB(page).render(
        page,
        "notifications.html",
        forecast=ahead,
        failed=failed,
        days=days,
        may_retry=_may_retry(page),
    )


def notification_retry(page: Page) -> Response:
    row_id = int(page.request.path_params["row_id"])
    # 404 for a row outside the reader's scope (as unknown), before the role check's 403.
    visibility.require_notification(page.db, visibility.of(page.db, page.actor), row_id)
    _require_role(page, RETRY_ROLES, "retry notifications")
    outbox.retry(page.db, row_id)
    page.flash(_("Notification %(id)d will be sent again at the next run.") % {"id": row_id})
    raise Redirect("/notifications")


def notifications_retry_failed(page: Page) -> Response:
    _require_role(page, RETRY_ROLES, "retry notifications")
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
