"""Logging in and out, and choosing the language."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from starlette.responses import Response

from onboarding import logins
from onboarding.web import i18n
from onboarding.web.core import WEB, Page, Redirect, _actors
from onboarding.web.i18n import gettext as _
from onboarding.web.security import safe_next


def login_page(page: Page) -> Response:
    if page.actor:
        raise Redirect("/")
    return WEB(page).render(
        page,
        "login.html",
        next=safe_next(page.query("next"), "/"),
        nobody=not _actors().enforcing(page.db),
    )


def login_post(page: Page) -> Response:
    state = WEB(page)
    name = page.field("name")
    password = page.form.get("password") if page.form is not None else None
    target = safe_next(page.field("next"), "/")
    # The peer as the server sees it: the socket's, or a proxy's report only when the
    # operator named that proxy (serve --forwarded-allow-ips); see onboarding.logins.
    address = page.request.client.host if page.request.client else "?"
    waiting = logins.wait(page.db, name, address)
    if waiting is not None:
        minutes = max(1, (waiting.seconds + 59) // 60)
        message = i18n.ngettext(
            "Too many failed attempts. Try again in %(n)d minute.",
            "Too many failed attempts. Try again in %(n)d minutes.",
            minutes,
        ) % {"n": minutes}
        return state.render(page, "login.html", status=429, error=message, next=target, name=name)
    ok = bool(name) and isinstance(password, str) and bool(password)
    ok = ok and bool(_actors().verify_password(page.db, name, password))
    if not ok:
        logins.failed(page.db, name, address)
        return state.render(
            page,
            "login.html",
            status=401,
            error=_("Wrong name or password."),
            next=target,
            name=name,
        )
    logins.succeeded(page.db, name, address)
    info = _actors().get(page.db, name)
    lang = page.session.get("lang")
    # A new actor in the session: the session middleware ends the old row and issues a new
    # token, so a token planted or seen before login is worthless after it.
    page.session.clear()
    page.session.update(
        actor=str(info.get("name", name)) if isinstance(info, Mapping) else name,
        actor_label=str(info.get("display_name") or info.get("name") or name)
        if isinstance(info, Mapping)
        else name,
        csrf=secrets.token_urlsafe(32),
    )
    if lang:
        page.session["lang"] = i18n.normalise(lang)
    raise Redirect(target)


def logout_post(page: Page) -> Response:
    # Without the actor the middleware ends the session's row: its cookie, wherever copied,
    # is refused from now on.
    lang = page.session.get("lang")
    page.session.clear()
    if lang:
        page.session["lang"] = lang
    raise Redirect("/login")


def language_post(page: Page) -> Response:
    page.session["lang"] = i18n.normalise(page.field("lang"))
    raise Redirect(safe_next(page.field("next"), "/"))
