"""What every page handler shares: the request's ``Page``, the app's ``WebState``, the
``endpoint`` wrapper (session, CSRF, errors as pages), security headers and small helpers.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onboarding import clock, storage
from onboarding.db import Database, connect
from onboarding.errors import InputError, NotFound, OnboardingError, StaleVersion
from onboarding.roles import ROLES
from onboarding.web import i18n
from onboarding.web.i18n import gettext as _
from onboarding.web.security import CSRF_FIELD, csrf_ok, csrf_token
from onboarding.web.sessions import is_secure

log = logging.getLogger("onboarding.web")

HERE = Path(__file__).parent


TEMPLATES = HERE / "templates"


STATIC = HERE / "static"


NO_STORE = {"Cache-Control": "no-store"}


SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def _actors() -> Any:
    """The actors module (issue 5): who may log in and which roles they hold where."""
    from onboarding import actors

    return actors


def _is_permission_denied(exc: BaseException) -> bool:
    from onboarding import errors

    denied = getattr(errors, "PermissionDenied", None)
    return denied is not None and isinstance(exc, denied)


def _status_for(exc: OnboardingError) -> int:
    if _is_permission_denied(exc):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StaleVersion):
        return 409
    if isinstance(exc, BadRequest):
        return 400
    return 422


class BadRequest(InputError):
    """A value in the address or a form field the page itself cannot read (a version that
    is not a number): 400. What the engine refuses stays 422, a missing thing 404."""


#: The largest id SQLite stores (a signed 64-bit integer): a larger number in an address
#: names nothing, and would make the driver raise ``OverflowError``.
MAX_ID = 2**63 - 1


def _check_ids(params: Mapping[str, Any]) -> None:
    """A number in the address beyond what any row can have is simply not found."""
    for name, value in params.items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise NotFound(name, str(value))


#: HSTS for responses served over HTTPS or with ``serve --secure-cookies`` (a year; browsers
#: ignore it over plain HTTP).
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """Adds the security headers to every response (pages, static files, error pages alike).

    It is the outermost layer: should anything inside fail before a response started (a bug:
    every input error is a page of its own), it answers a plain 500 page with the same
    headers in the visitor's language, then lets the error propagate to the server's log.
    """

    def __init__(self, app: ASGIApp, *, secure: bool = False) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [*SECURITY_HEADERS, HSTS] if is_secure(scope, self.secure) else SECURITY_HEADERS
        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + extra
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception as exc:
            fault = storage.describe(exc)
            if fault is None:
                if not started:
                    await _server_error(scope).__call__(scope, receive, with_headers)
                raise
            # A full disk or a read-only file met outside a handler (the session store): not a
            # bug, so no traceback; the operator reads the one line, the visitor a 503 page.
            log.error("%s %s: %s", scope.get("method"), scope.get("path"), fault)
            if not started:
                await _storage_fault(scope).__call__(scope, receive, with_headers)


def _server_error(scope: Scope) -> Response:
    return _bare_page(
        scope, 500, "Something went wrong on our side. Nothing was changed; try again later."
    )


def _storage_fault(scope: Scope) -> Response:
    return _bare_page(scope, 503, STORAGE_FAULT)


#: What a visitor reads when the database cannot store (full disk, read-only file, a lock held
#: too long): the file's path and the details go to the server's log only.
STORAGE_FAULT = (
    "The database cannot store anything right now (a full disk, a read-only file or a long "
    "lock). Nothing was changed; try again later."
)


def _bare_page(scope: Scope, status: int, message: str) -> Response:
    """A page that needs nothing but the message catalogue (the templates or the database
    may be what failed)."""
    session = scope.get("session")
    lang = session.get("lang") if isinstance(session, dict) else None
    with i18n.language(i18n.normalise(lang)):
        text = _(message)
    return HTMLResponse(
        f"<!DOCTYPE html><meta charset='utf-8'><title>{status}</title><p>{text}</p>"
        "<p><a href='/'>OK</a></p>",
        status_code=status,
        headers=NO_STORE,
    )


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


@dataclass
class Page:
    """What a handler gets: the request, its database connection, who is logged in."""

    request: Request
    db: Database
    actor: str | None
    form: FormData | None
    session: dict[str, Any]
    today: date

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()

    def flash(self, text: str, kind: str = "ok") -> None:
        self.session.setdefault("flash", []).append([kind, text])


Handler = Callable[[Page], Response]


@dataclass
class WebState:
    db_path: Path
    env: Environment
    uploads: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="onboarding-web-")))

    # -- rendering --

    def render(self, page: Page, template: str, status: int = 200, **data: Any) -> HTMLResponse:
        """A page; one that shows a ``problem`` with its input (a date that cannot be read or
        lies ahead) answers 400, so nothing takes it for the page asked for."""
        if status == 200 and data.get("problem"):
            status = 400
        return self._render(
            page.request, page.session, page.actor, page.today, template, status, data
        )

    def _render(
        self,
        request: Request,
        session: dict[str, Any],
        actor: str | None,
        today: date,
        template: str,
        status: int,
        data: Mapping[str, Any],
    ) -> HTMLResponse:
        flashes = session.pop("flash", [])
        context = {
            "actor": actor,
            "actor_label": session.get("actor_label") or actor,
            "csrf": csrf_token(session),
            "csrf_field": CSRF_FIELD,
            "lang": i18n.current(),
            "languages": i18n.LANGUAGES,
            "path": request.url.path,
            "here": _here(request),
            "flashes": flashes,
            "today": today,
            "roles": ROLES,
            **data,
        }
        html = self.env.get_template(template).render(context)
        return HTMLResponse(html, status_code=status, headers=NO_STORE)

    def error(self, page: Page, status: int, message: str) -> HTMLResponse:
        return self.render(page, "error.html", status=status, message=message)

    def error_for(self, request: Request, status: int) -> HTMLResponse:
        """The page for an address no route answers (404) or a method it does not (405)."""
        session: dict[str, Any] = request.session if "session" in request.scope else {}
        actor = session.get("actor")
        with i18n.language(i18n.normalise(session.get("lang"))):
            message = (
                _("This page does not accept that kind of request.")
                if status == 405
                else _("Nothing was found at this address.")
            )
            return self._render(
                request,
                session,
                actor if isinstance(actor, str) and actor else None,
                clock.local_date(clock.now()),
                "error.html",
                status,
                {"message": message},
            )

    # -- running a handler in a worker thread --

    def run(
        self,
        handler: Handler,
        request: Request,
        form: FormData | None,
        actor: str | None,
    ) -> Response:
        session: dict[str, Any] = request.session
        with i18n.language(i18n.normalise(session.get("lang"))):
            db = connect(self.db_path)
            page = Page(request, db, actor, form, session, clock.local_date(clock.now()))
            try:
                if actor is not None and not _actor_exists(db, actor):
                    session.clear()
                    return RedirectResponse("/login", status_code=303)
                _check_ids(request.path_params)
                return handler(page)
            except Redirect as r:
                return RedirectResponse(r.url, status_code=303)
            except NotFound as exc:
                return self.error(page, 404, _not_found(exc, request))
            except (storage.StorageError, sqlite3.Error, OSError) as exc:
                fault = storage.describe(exc, self.db_path)
                if fault is None:
                    raise  # a bug: the outer layer answers 500 and logs the traceback
                log.error("%s %s: %s", request.method, request.url.path, fault)
                return self.error(page, 503, _(STORAGE_FAULT))
            except OnboardingError as exc:
                return self.error(page, _status_for(exc), i18n.say_error(exc))
            except OverflowError:
                # A number from the address or a form too large for SQLite (the driver raises
                # before any query runs): bad input, whichever parameter carried it.
                return self.error(page, 400, _("A number in the address or the form is too large."))
            finally:
                db.close()


def _not_found(exc: NotFound, request: Request) -> str:
    """What the 404 page says: for the thing the address names (``/tracks/N``), that nothing
    is there, in the reader's language; for a name given in a form, the library's message
    with its closest matches."""
    if exc.name in {str(v) for v in request.path_params.values()}:
        return _("Nothing was found at this address.")
    return str(exc)


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _actor_exists(db: Database, name: str) -> bool:
    """The session's actor is still registered and active (else the session ends)."""
    try:
        info = _actors().get(db, name)
    except NotFound:
        return False
    return bool(info.get("active", True))


def _same_origin(request: Request) -> bool:
    """A POST from a page of this site (a browser sends Origin with every form POST)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def endpoint(handler: Handler, *, public: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: login check, CSRF check on POST, then the handler in a worker thread."""

    async def run(request: Request) -> Response:
        state: WebState = request.app.state.web
        session = request.session
        actor = session.get("actor")
        actor = actor if isinstance(actor, str) and actor else None
        form: FormData | None = None
        if request.method == "POST":
            if not public and actor is None:
                return _refuse(request, 403, "login required")
            if not _same_origin(request):
                return _refuse(request, 403, "cross-site request refused")
            form = await request.form(max_files=1, max_fields=5000)
            if not csrf_ok(session, form.get(CSRF_FIELD)):
                await form.close()
                return _refuse(request, 403, "invalid or missing CSRF token")
        elif not public and actor is None:
            target = _here(request)
            query = "" if target == "/" else "?" + _urlencode({"next": target})
            return RedirectResponse("/login" + query, status_code=303)
        try:
            return await run_in_threadpool(state.run, handler, request, form, actor)
        finally:
            if form is not None:
                await form.close()

    return run


def _urlencode(params: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _refuse(request: Request, status: int, reason: str) -> Response:
    with i18n.language(i18n.normalise(request.session.get("lang"))):
        text = {
            "login required": _("Log in first."),
            "cross-site request refused": _("A form from another site was refused."),
            "invalid or missing CSRF token": _(
                "The form has expired or did not come from this page. Go back, reload the "
                "page and try again."
            ),
        }[reason]
    return HTMLResponse(
        f"<!DOCTYPE html><meta charset='utf-8'><title>{status}</title>"
        f"<p>{text}</p><p><a href='/'>OK</a></p>",
        status_code=status,
        headers=NO_STORE,
    )


def _parse_day(text: str, default: date) -> tuple[date, str | None]:
    """An "as of" day from the address: ``default`` (today) when empty; a day that cannot be
    read or lies after ``default`` gives ``default`` and the problem in words (the page then
    answers 400). The future has no history to replay."""
    if not text:
        return default, None
    try:
        day = clock.parse_date(text, what="date")
    except InputError:
        return default, _("“%(text)s” is not a date: write it as 30.06.2021 or 2021-06-30.") % {
            "text": text if len(text) <= 40 else text[:40] + "…"
        }
    if day > default:
        return default, _(
            "%(day)s is in the future: a picture “as of” a date can only show the past. "
            "This is today's."
        ) % {"day": i18n.fmt_date(day)}
    return day, None


def _grants(db: Database, actor: str) -> list[dict[str, Any]]:
    info = _actors().get(db, actor)
    grants = info.get("grants") if isinstance(info, Mapping) else None
    return [dict(g) for g in grants or []]


def _granted_roles(db: Database, actor: str) -> list[str]:
    roles: list[str] = []
    for g in _grants(db, actor):
        role = g.get("role")
        if isinstance(role, str) and role not in roles:
            roles.append(role)
    return [r for r in ROLES if r in roles] + [r for r in roles if r not in ROLES]


def _require_role(page: Page, allowed: Iterable[str], what: str) -> None:
    """Refuse unless the actor holds one of ``allowed`` for all tracks (a page-level action that
    is not one track's step: an import, which acts as the importer, or a retry)."""
    assert page.actor is not None
    held = _granted_roles(page.db, page.actor)
    for_all = {g.get("role") for g in _grants(page.db, page.actor) if g.get("scope") == "all"}
    allowed = tuple(allowed)
    if not for_all & set(allowed):
        from onboarding import errors, terms
        from onboarding.i18n import Message, Phrases

        denied = getattr(errors, "PermissionDenied", OnboardingError)
        raise denied(
            Message(
                "%(actor)s may not %(what)s: that needs role %(allowed)s for all "
                "(roles held: %(held)s)",
                {
                    "actor": page.actor,
                    "what": Message(what),
                    "allowed": Phrases((terms.role(r, quoted=False) for r in allowed), conj="or"),
                    "held": terms.roles(held) if held else Message("none"),
                },
            )
        )


def WEB(page: Page) -> WebState:
    state: WebState = page.request.app.state.web
    return state
