"""The coordinators' web page: a Starlette app over the same database and engine as the CLI.

Every page is server-rendered HTML (Jinja2, autoescaped, texts through gettext) and works
without JavaScript; ``static/app.js`` only saves a click here and there. Each request opens its
own connection to the SQLite file and calls the library functions the CLI calls: the engine
decides what an actor may do (``Act(actor=<logged in>, role=<chosen>)``) and a refusal shows
the engine's own reason. State changes are POST only, each with the session's CSRF token;
GET never writes.

Sessions live in the database (``onboarding.web.sessions``): the cookie holds only a random
token, so logging out, ``onboarding actor revoke-sessions`` and a change of password end a
session for good, and sessions survive a restart. Errors are pages: a malformed id, date or
version answers 400 or 404 in the visitor's language, with the security headers.

The handlers live in ``onboarding.web.views`` (one module per page family) and share
``onboarding.web.core``; this module only lists the routes and builds the app.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from onboarding import sessions
from onboarding.db import open_existing
from onboarding.roles import label as role_label
from onboarding.web import api, i18n
from onboarding.web.core import STATIC, TEMPLATES, Handler, SecurityHeaders, WebState, endpoint
from onboarding.web.sessions import ServerSessions
from onboarding.web.views import ops
from onboarding.web.views.auth import language_post, login_page, login_post, logout_post
from onboarding.web.views.bulk import bulk_apply, bulk_done, bulk_page
from onboarding.web.views.grid import grid_page
from onboarding.web.views.imports import import_apply, import_page, import_preview
from onboarding.web.views.municipalities import municipality_page
from onboarding.web.views.notifications import (
    notification_retry,
    notifications_page,
    notifications_retry_failed,
)
from onboarding.web.views.reports import report_csv, report_page
from onboarding.web.views.tracks import track_advance, track_page
from onboarding.web.views.work import home, work_page


def make_environment() -> Environment:
    """The one Jinja2 environment: templates of this package, autoescaped, gettext."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    env.filters.update(
        date=i18n.fmt_date,
        datetime=i18n.fmt_datetime,
        num=i18n.fmt_number,
        tr=i18n.translate_value,
        say=i18n.say,
        role=lambda r: role_label(str(r), i18n.current()),
    )
    env.globals.update(iso=lambda d: d.isoformat() if d else "", timedelta=timedelta)
    return env


def routes() -> list[Route | Mount]:
    def get(path: str, handler: Handler, public: bool = False) -> Route:
        return Route(path, endpoint(handler, public=public), methods=["GET"])

    def post(path: str, handler: Handler, public: bool = False) -> Route:
        return Route(path, endpoint(handler, public=public), methods=["POST"])

    return [
        get("/", home),
        get("/login", login_page, public=True),
        post("/login", login_post, public=True),
        post("/language", language_post, public=True),
        post("/logout", logout_post),
        get("/work", work_page),
        get("/grid", grid_page),
        get("/tracks/{track_id:int}", track_page),
        post("/tracks/{track_id:int}/advance", track_advance),
        get("/municipalities/{code:int}", municipality_page),
        get("/bulk", bulk_page),
        post("/bulk/apply", bulk_apply),
        get("/bulk/done/{bulk_id}", bulk_done),
        get("/import", import_page),
        post("/import", import_preview),
        post("/import/apply", import_apply),
        get("/reports", report_page),
        get("/reports/{name}.csv", report_csv),
        get("/reports/{name}", report_page),
        get("/notifications", notifications_page),
        post("/notifications/{row_id:int}/retry", notification_retry),
        post("/notifications/retry-failed", notifications_retry_failed),
        *ops.routes(),  # /healthz, /readyz, /metrics: no login, no session (views/ops.py)
        api.mount(),  # /api/v1: bearer tokens, JSON, no session or CSRF (onboarding/web/api/)
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]


def create_app(
    db_path: str | Path,
    *,
    secure_cookies: bool = False,
    session_policy: sessions.Policy | None = None,
) -> Starlette:
    """The web application over the database at ``db_path`` (which must be initialised).

    ``secure_cookies`` marks the session cookie ``Secure`` and sends HSTS on every response
    (for a page behind a TLS proxy; served over HTTPS they are set anyway).
    ``session_policy`` says how long sessions last (``onboarding.sessions.Policy``).
    Sessions are rows in the database and the cookie holds only a random token, so there is
    no signing secret to configure.
    """
    path = Path(db_path)
    open_existing(path).close()  # fails now, with the CLI's message, if not initialised
    state = WebState(db_path=path, env=make_environment())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            shutil.rmtree(state.uploads, ignore_errors=True)

    async def no_route(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        response = state.error_for(request, 405 if status == 405 else 404)
        response.headers.update(getattr(exc, "headers", None) or {})  # 405's Allow
        return response

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(SecurityHeaders, secure=secure_cookies),
            Middleware(ServerSessions, db_path=path, secure=secure_cookies, policy=session_policy),
        ],
        exception_handlers={404: no_route, 405: no_route},
        lifespan=lifespan,
    )
    app.state.web = state
    ops.install(app)  # request timing and log; serve sets the limits (ops.configure)
    return app
