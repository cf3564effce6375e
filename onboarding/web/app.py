"""The coordinators' web page: a Starlette app over the same database and engine as the CLI.

Every page is server-rendered HTML (Jinja2, autoescaped, texts through gettext) and works
without JavaScript; ``static/app.js`` only saves a click here and there. Each request opens its
own connection to the SQLite file and calls the library functions the CLI calls: the engine
decides what an actor may do (``Act(actor=<logged in>, role=<chosen>)``) and a refusal shows
the engine's own reason. State changes are POST only, each with the session's CSRF token;
GET never writes.

Sessions are signed cookies (Starlette's ``SessionMiddleware``: HttpOnly, SameSite=Lax) that
hold the actor's name, the CSRF token and the language; the secret is given to
``create_app`` or made at random per process (everyone logs in again after a restart).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlite_utils import Database
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onboarding import clock, definitions, engine, outbox, registry, reports, tracks
from onboarding.db import connect, open_existing
from onboarding.errors import InputError, NotFound, OnboardingError, StaleVersion
from onboarding.filters import TrackFilter
from onboarding.roles import ROLES
from onboarding.roles import label as role_label
from onboarding.web import i18n, portfolio
from onboarding.web.i18n import gettext as _
from onboarding.web.security import (
    CSRF_FIELD,
    LoginThrottle,
    csrf_ok,
    csrf_token,
    csv_cell,
    safe_next,
)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: The largest status file the import page takes.
MAX_UPLOAD = 5 * 1024 * 1024
#: At most this many tracks are listed in a bulk preview (all are counted).
MAX_LISTED = 500
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
    return 422


class SecurityHeaders:
    """Adds the security headers to every response (pages and static files alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


# --- one request --------------------------------------------------------------------------------


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
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    uploads: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="onboarding-web-")))

    # -- rendering --

    def render(self, page: Page, template: str, status: int = 200, **data: Any) -> HTMLResponse:
        flashes = page.session.pop("flash", [])
        context = {
            "actor": page.actor,
            "actor_label": page.session.get("actor_label") or page.actor,
            "csrf": csrf_token(page.session),
            "csrf_field": CSRF_FIELD,
            "lang": i18n.current(),
            "languages": i18n.LANGUAGES,
            "path": page.request.url.path,
            "here": _here(page.request),
            "flashes": flashes,
            "today": page.today,
            "roles": ROLES,
            **data,
        }
        html = self.env.get_template(template).render(context)
        return HTMLResponse(html, status_code=status, headers=NO_STORE)

    def error(self, page: Page, status: int, message: str) -> HTMLResponse:
        return self.render(page, "error.html", status=status, message=message)

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
                return handler(page)
            except Redirect as r:
                return RedirectResponse(r.url, status_code=303)
            except OnboardingError as exc:
                return self.error(page, _status_for(exc), str(exc))
            finally:
                db.close()


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


# --- helpers ------------------------------------------------------------------------------------


def _parse_day(text: str, default: date) -> tuple[date, str | None]:
    if not text:
        return default, None
    try:
        return clock.parse_date(text, what="date"), None
    except InputError as exc:
        return default, str(exc)


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
        from onboarding import errors

        denied = getattr(errors, "PermissionDenied", OnboardingError)
        raise denied(
            f"{page.actor} may not {what}: that needs role {' or '.join(allowed)} for all "
            f"(roles held: {', '.join(held) or 'none'})"
        )


def _csv_response(name: str, header: list[str], rows: Iterable[Iterable[Any]]) -> Response:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([csv_cell(h) for h in header])
    for r in rows:
        w.writerow([csv_cell(v) for v in r])
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
    )


def _history_view(db: Database, track: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = tracks.history(db, int(track["id"]))
    out = []
    for r in reversed(rows):
        defn = definitions.get(db, str(track["definition"]), int(r["definition_version"]))
        out.append(
            {
                **r,
                "from_label": defn.state(r["from"]).label if r["from"] else "",
                "to_label": defn.state(r["to"]).label,
                "trigger_label": _trigger_label(defn, r["trigger"]),
            }
        )
    return out


def _notification_view(defn: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox row for the track page: the step's label and who it goes (or went) to."""
    raw = row["sent_to"] if row["sent_to"] is not None else row["recipients"]
    try:
        to = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        to = raw
    names = to if isinstance(to, list) else [to]
    label = defn.state(row["state"]).label if row["state"] in defn.by_name else row["state"]
    return {
        **row,
        "state_label": label,
        "to": [role_label(str(n), i18n.current()) for n in names if n],
    }


def _trigger_label(defn: Any, trigger: str) -> str:
    special = {
        engine.START: _("Started"),
        engine.SET: _("Fields recorded"),
        engine.MIGRATE: _("Moved to a new workflow version"),
    }
    if trigger in special:
        return special[trigger]
    for t in defn.transitions:
        if t.trigger == trigger:
            return str(t.label or trigger)
    return trigger


def _input_widgets(defn: Any, inputs: list[dict[str, Any]], db: Database) -> list[dict[str, Any]]:
    out = []
    for i in inputs:
        fdef = defn.fields[i["name"]]
        widget = {**i, "options": list(getattr(fdef, "options", ()) or ())}
        if fdef.type == "wave":
            widget["options"] = [w["code"] for w in registry.list_waves(db)]
        out.append(widget)
    return out


# --- pages: login ------------------------------------------------------------------------------


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
    address = page.request.client.host if page.request.client else "?"
    wait = state.throttle.wait(name, address)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        message = i18n.ngettext(
            "Too many failed attempts. Try again in %(n)d minute.",
            "Too many failed attempts. Try again in %(n)d minutes.",
            minutes,
        ) % {"n": minutes}
        return state.render(page, "login.html", status=429, error=message, next=target, name=name)
    ok = bool(name) and isinstance(password, str) and bool(password)
    ok = ok and bool(_actors().verify_password(page.db, name, password))
    if not ok:
        state.throttle.failed(name, address)
        return state.render(
            page,
            "login.html",
            status=401,
            error=_("Wrong name or password."),
            next=target,
            name=name,
        )
    state.throttle.succeeded(name, address)
    info = _actors().get(page.db, name)
    lang = page.session.get("lang")
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
    lang = page.session.get("lang")
    page.session.clear()
    if lang:
        page.session["lang"] = lang
    raise Redirect("/login")


def language_post(page: Page) -> Response:
    page.session["lang"] = i18n.normalise(page.field("lang"))
    raise Redirect(safe_next(page.field("next"), "/"))


def home(page: Page) -> Response:
    raise Redirect("/grid")


# --- pages: grid -----------------------------------------------------------------------------


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
    data = portfolio.grid(page.db, as_of, flt, definition)
    return WEB(page).render(
        page, "grid.html", grid=data, options=options, problem=problem, as_of=as_of
    )


# --- pages: track ----------------------------------------------------------------------------


def _track_view(page: Page, track_id: int) -> dict[str, Any]:
    assert page.actor is not None
    info = tracks.why(page.db, track_id)
    row = engine.load_track(page.db.conn, track_id)
    defn = definitions.get(page.db, row["definition"], row["def_version"])
    mine = set(_actors().roles_for(page.db, page.actor, row))
    actions = []
    for a in info["available"]:
        my_roles = [r for r in a["roles"] if r in mine]
        dest = defn.state(a["dest"])
        actions.append(
            {
                **a,
                "my_roles": my_roles,
                "danger": dest.final and defn.bucket_rank(dest.name) < len(defn.buckets) - 1,
                "widgets": _input_widgets(defn, a["inputs"], page.db),
                "possible": not a["blocked_by"] and bool(my_roles),
            }
        )
    notes = outbox.list_rows(page.db, track_id=track_id)
    field_rows = [
        {
            "label": defn.fields[k].label if k in defn.fields else k,
            "type": defn.fields[k].type if k in defn.fields else "text",
            "value": v,
        }
        for k, v in info["fields"].items()
    ]
    return {
        "info": info,
        "field_rows": field_rows,
        "track": row,
        "actions": actions,
        "my_roles": sorted(mine),
        "history": _history_view(page.db, row),
        "notifications": [_notification_view(defn, n) for n in notes if n["status"] != "cancelled"],
        "field_labels": {name: f.label for name, f in defn.fields.items()},
        "cancelled_notifications": sum(1 for n in notes if n["status"] == "cancelled"),
    }


def track_page(page: Page) -> Response:
    track_id = int(page.request.path_params["track_id"])
    return WEB(page).render(page, "track.html", **_track_view(page, track_id))


def track_advance(page: Page) -> Response:
    assert page.actor is not None and page.form is not None
    track_id = int(page.request.path_params["track_id"])
    trigger = page.field("trigger")
    role = page.field("role")
    note = page.field("note") or None
    sets = {
        k[len("field_") :]: v.strip()
        for k, v in page.form.multi_items()
        if k.startswith("field_") and isinstance(v, str) and v.strip()
    }
    version_text = page.field("version")
    expected = int(version_text) if version_text.isdigit() else None
    try:
        after = engine.advance(
            page.db,
            track_id,
            trigger,
            engine.Act(actor=page.actor, role=role, note=note),
            sets,
            expected_version=expected,
        )
    except OnboardingError as exc:
        if isinstance(exc, NotFound) and exc.what == "track":
            raise
        view = _track_view(page, track_id)
        return WEB(page).render(
            page,
            "track.html",
            status=_status_for(exc),
            error=str(exc),
            tried=trigger,
            **view,
        )
    defn = definitions.get(page.db, after["definition"], after["def_version"])
    page.flash(
        _("Done: the track is now in “%(state)s”.") % {"state": defn.state(after["state"]).label}
    )
    raise Redirect(f"/tracks/{track_id}")


# --- pages: municipality ---------------------------------------------------------------------


def municipality_page(page: Page) -> Response:
    code = int(page.request.path_params["code"])
    found = [m for m in registry.list_municipalities(page.db) if int(m["code"]) == code]
    if not found:
        raise NotFound("municipality", str(code))
    m = found[0]
    rows = tracks.list_tracks(page.db, TrackFilter(municipality=str(code)))
    by_def: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_def.setdefault(r["definition"], []).append(r)
    contracts = [c for c in registry.list_contracts(page.db) if c["municipality_code"] == code]
    contacts = [c for c in registry.list_contacts(page.db) if c["municipality_code"] == code]
    klik_tasks = registry.list_klik_tasks(page.db)
    klik_rows = {}
    for t in tracks.iter_tracks(
        page.db, TrackFilter(municipality=str(code), definition="klik-task")
    ):
        klik_rows[t["klik_task_id"]] = t
    klik_view = []
    for task in klik_tasks:
        kt = klik_rows.get(task["id"])
        entry: dict[str, Any] = {"task": task, "track": None}
        if kt is not None:
            defn = definitions.get(page.db, kt["definition"], kt["def_version"])
            st = defn.state(kt["state"])
            entry.update(track=kt, label=st.label, bucket=st.bucket, final=st.final)
        klik_view.append(entry)
    waves = {str(w["code"]).upper(): w for w in registry.list_waves(page.db)}
    wave_view = []
    for t in tracks.iter_tracks(
        page.db, TrackFilter(municipality=str(code), definition="rollout-wave")
    ):
        defn = definitions.get(page.db, t["definition"], t["def_version"])
        code_ = str(t["fields"].get("wave") or "").upper()
        wave_view.append(
            {"track": t, "label": defn.state(t["state"]).label, "wave": waves.get(code_)}
        )
    return WEB(page).render(
        page,
        "municipality.html",
        m=m,
        connections=by_def.pop("connection", []),
        other_tracks=[
            r
            for d, rs in sorted(by_def.items())
            if d not in ("klik-task", "rollout-wave")
            for r in rs
        ],
        contracts=contracts,
        contacts=contacts,
        klik=klik_view,
        waves=wave_view,
    )


# --- pages: bulk -------------------------------------------------------------------------------

BULK_CONDITIONS = ("definition", "state", "municipality", "system", "vendor", "region")


def _bulk_options(db: Database) -> dict[str, Any]:
    defs = []
    for name, version in definitions.names(db):
        defn = definitions.get(db, name, version)
        defs.append(
            {
                "name": name,
                "title": defn.title,
                "states": [(s.name, s.label) for s in defn.states if not s.final],
                "triggers": sorted(
                    {(t.trigger, t.label or t.trigger) for t in defn.transitions},
                    key=lambda x: x[1].casefold(),
                ),
            }
        )
    return {
        "definitions": defs,
        "systems": [s["label"] for s in registry.list_systems(db)],
        "vendors": [v["name"] for v in registry.list_vendors(db)],
        "regions": list(registry.REGIONS),
    }


def _bulk_request(source: Callable[[str], str]) -> dict[str, Any]:
    req: dict[str, Any] = {k: source(k) for k in BULK_CONDITIONS}
    req["overdue"] = source("overdue") in ("1", "on", "yes", "ja")
    req["trigger"] = source("trigger")
    req["role"] = source("role")
    req["note"] = source("note")
    req["sets"] = source("sets")
    return req


def _parse_sets(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in re.split(r"[\n;]", text):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"{item!r}: write NAME=VALUE, one per line")
        out[name.strip()] = value.strip()
    return out


def _bulk_filter(req: Mapping[str, Any], ids: tuple[int, ...] = ()) -> TrackFilter:
    values = {k: req[k] for k in BULK_CONDITIONS if req.get(k)}
    flt = TrackFilter(**values, overdue=bool(req.get("overdue")), ids=ids)
    if flt.is_empty():
        raise InputError(_("Choose at least one condition: the filter would select every track."))
    return flt


def _selected_ids(db: Database, flt: TrackFilter) -> list[int]:
    where, params = flt.to_sql(db)
    return [
        int(r[0])
        for r in db.conn.execute(
            f"SELECT t.id FROM tracks t WHERE {where} AND t.final = 0 ORDER BY t.id", params
        )
    ]


def bulk_page(page: Page) -> Response:
    assert page.actor is not None
    state = WEB(page)
    req = _bulk_request(page.query)
    options = _bulk_options(page.db)
    my_roles = _granted_roles(page.db, page.actor)
    if not req["role"] and my_roles:
        req["role"] = my_roles[0]
    preview: dict[str, Any] | None = None
    error = None
    status = 200
    if page.query("preview"):
        try:
            preview = _bulk_preview(page, req)
        except OnboardingError as exc:
            error, status = str(exc), _status_for(exc)
    return state.render(
        page,
        "bulk.html",
        status=status,
        req=req,
        options=options,
        my_roles=my_roles,
        preview=preview,
        error=error,
    )


def _bulk_preview(page: Page, req: Mapping[str, Any]) -> dict[str, Any]:
    assert page.actor is not None
    if not req["trigger"]:
        raise InputError(_("Choose the step to take (trigger)."))
    flt = _bulk_filter(req)
    sets = _parse_sets(req["sets"])
    act = engine.Act(actor=page.actor, role=req["role"], note=req["note"] or None)
    result = engine.bulk_advance(
        page.db, flt, req["trigger"], act, sets, dry_run=True, keep_blocked=100_000
    )
    ids = _selected_ids(page.db, flt)
    blocked = dict(result.blocked)
    listed = tracks.list_tracks(page.db, TrackFilter(ids=tuple(ids[:MAX_LISTED]))) if ids else []
    moving = [t for t in listed if t["id"] not in blocked]
    blocked_rows = [{**t, "reason": blocked[t["id"]]} for t in listed if t["id"] in blocked]
    labels: dict[str, str] = {}
    for name, version in definitions.names(page.db):
        for s in definitions.get(page.db, name, version).states:
            labels.setdefault(s.name, s.label)
    return {
        "selected": result.selected,
        "moved": result.moved,
        "blocked_count": result.blocked_count,
        "moving": moving,
        "blocked": blocked_rows,
        "by_move": [
            {"from": labels.get(a, a), "to": labels.get(b, b), "count": n}
            for (a, b), n in sorted(result.by_move.items())
        ],
        "ids": ",".join(str(i) for i in ids),
        "listed_all": len(ids) <= MAX_LISTED,
    }


def bulk_apply(page: Page) -> Response:
    assert page.actor is not None
    req = _bulk_request(page.field)
    try:
        ids = tuple(int(x) for x in page.field("ids").split(",") if x.strip())
    except ValueError:
        ids = ()
    error = None
    status = 200
    try:
        if not ids:
            raise InputError(_("Nothing to apply: preview first."))
        if not req["trigger"]:
            raise InputError(_("Choose the step to take (trigger)."))
        flt = _bulk_filter(req, ids)
        sets = _parse_sets(req["sets"])
        act = engine.Act(actor=page.actor, role=req["role"], note=req["note"] or None)
        check = engine.bulk_advance(page.db, flt, req["trigger"], act, sets, dry_run=True)
        if check.selected != len(ids):
            raise InputError(
                _(
                    "The selection changed since the preview (%(then)d tracks then, %(now)d "
                    "now); nothing was changed. Preview again."
                )
                % {"then": len(ids), "now": check.selected}
            )
        result = engine.bulk_advance(page.db, flt, req["trigger"], act, sets)
    except OnboardingError as exc:
        error, status = str(exc), _status_for(exc)
    else:
        page.flash(
            i18n.ngettext("%(n)d track moved.", "%(n)d tracks moved.", result.moved)
            % {"n": result.moved}
        )
        query = _urlencode({k: str(v) for k, v in req.items() if v and k not in ("note",)})
        raise Redirect("/bulk?" + query)
    return WEB(page).render(
        page,
        "bulk.html",
        status=status,
        req=req,
        options=_bulk_options(page.db),
        my_roles=_granted_roles(page.db, page.actor),
        preview=None,
        error=error,
    )


# --- pages: import -----------------------------------------------------------------------------

IMPORT_ROLES = ("coordinator", "importer")


def import_page(page: Page) -> Response:
    return WEB(page).render(page, "import.html", result=None, errors=None)


def _save_upload(state: WebState, upload: UploadFile) -> tuple[str, Path]:
    name = Path(upload.filename or "status.csv").name
    name = re.sub(r"[^\w.\-]+", "_", name)[:100] or "status.csv"
    token = secrets.token_urlsafe(16)
    folder = state.uploads / token
    folder.mkdir(parents=True)
    path = folder / name
    size = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(64 * 1024):
            size += len(chunk)
            if size > MAX_UPLOAD:
                out.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise InputError(
                    _("The file is larger than %(mb)d MB.") % {"mb": MAX_UPLOAD // 2**20}
                )
            out.write(chunk)
    return token, path


def _pending_upload(state: WebState, token: str) -> Path | None:
    if not re.fullmatch(r"[\w\-]{10,40}", token):
        return None
    folder = state.uploads / token
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return files[0] if files else None


def _file_errors(exc: OnboardingError, path: Path) -> list[str]:
    """The import's messages, naming the uploaded file by its name (not the server's path)."""
    return str(exc).replace(str(path), path.name).splitlines()


def _import_view(result: Any, path: Path) -> dict[str, Any]:
    data = result.to_dict()
    changed = [o for o in data["outcomes"] if o["outcome"] not in ("unchanged",)]
    return {"summary": data, "changed": changed, "file": path.name}


def import_preview(page: Page) -> Response:
    from onboarding.status_import import import_status

    assert page.form is not None
    state = WEB(page)
    _require_role(page, IMPORT_ROLES, "import status files")
    upload = page.form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return state.render(
            page, "import.html", status=422, result=None, errors=[_("Choose a file.")]
        )
    try:
        token, path = _save_upload(state, upload)
    except InputError as exc:
        return state.render(page, "import.html", status=422, result=None, errors=[str(exc)])
    old = page.session.get("import")
    if isinstance(old, str) and old != token and _pending_upload(state, old) is not None:
        shutil.rmtree(state.uploads / old, ignore_errors=True)
    page.session["import"] = token
    try:
        result = import_status(page.db, path, dry_run=True)
    except OnboardingError as exc:
        shutil.rmtree(path.parent, ignore_errors=True)
        page.session.pop("import", None)
        return state.render(
            page,
            "import.html",
            status=_status_for(exc),
            result=None,
            errors=_file_errors(exc, path),
        )
    return state.render(page, "import.html", result=_import_view(result, path), token=token)


def import_apply(page: Page) -> Response:
    from onboarding.status_import import import_status

    state = WEB(page)
    _require_role(page, IMPORT_ROLES, "import status files")
    token = page.field("token")
    path = _pending_upload(state, token) if token == page.session.get("import") else None
    if path is None:
        return state.render(
            page,
            "import.html",
            status=409,
            result=None,
            errors=[_("That preview is no longer available: upload the file again.")],
        )
    try:
        result = import_status(page.db, path)
    except OnboardingError as exc:
        return state.render(
            page,
            "import.html",
            status=_status_for(exc),
            result=None,
            errors=_file_errors(exc, path),
        )
    shutil.rmtree(path.parent, ignore_errors=True)
    page.session.pop("import", None)
    return state.render(page, "import.html", result=_import_view(result, path), applied=True)


# --- pages: reports ----------------------------------------------------------------------------

REPORTS = ("rollout", "goals", "klik", "overdue")


def _report_data(page: Page, name: str) -> dict[str, Any]:
    as_of, problem = _parse_day(page.query("as_of"), page.today)
    as_of = min(as_of, page.today)
    data: dict[str, Any] = {"as_of": as_of, "problem": problem, "name": name}
    if name == "rollout":
        category = page.query("category")
        cats = portfolio.filter_options(page.db)["categories"]
        data["category"] = category if category in cats else ""
        data["categories"] = cats
        data["report"] = reports.rollout(page.db, data["category"] or None, as_of)
    elif name == "goals":
        year = as_of.year
        data["year"] = year
        data["report"] = (
            reports.goals(page.db, year, today=as_of) if reports.goals_file(year) else None
        )
        data["chart"] = _chart(page.db, as_of)
    elif name == "klik":
        data["report"] = reports.klik(page.db, as_of=as_of)
    else:
        data["report"] = reports.overdue(page.db, today=as_of)
    return data


def _chart(db: Database, as_of: date) -> dict[str, Any]:
    """The rollout chart of the HTML report: municipalities in operation against targets."""
    year = as_of.year
    start = date(year, 1, 1)
    series = reports.progress_series(db, start, as_of) if as_of >= start else {}
    targets = reports._rollout_targets(db, year, as_of)
    return reports._chart(series, targets, year, as_of)


def report_page(page: Page) -> Response:
    name = page.request.path_params.get("name", "rollout")
    if name not in REPORTS:
        raise NotFound("report", name)
    return WEB(page).render(page, "reports.html", reports=REPORTS, **_report_data(page, name))


def report_csv(page: Page) -> Response:
    name = page.request.path_params["name"]
    if name not in REPORTS:
        raise NotFound("report", name)
    data = _report_data(page, name)
    r = data["report"]
    day = data["as_of"].isoformat()
    if name == "rollout":
        keys = ("in_operation", "agreed", "not_agreed", "total")
        rows: list[list[Any]] = []
        for c in r["categories"]:
            for row in c["rows"]:
                rows.append(
                    [r["as_of"], c["category"], "system", row["vendor"], row["system"]]
                    + [row[k] for k in keys]
                    + [""]
                )
            rows.append(
                [r["as_of"], c["category"], "total", "", ""]
                + [c["total"][k] for k in keys]
                + [c["distinct_municipalities"]]
            )
        return _csv_response(
            f"rollout-{day}.csv",
            ["as_of", "category", "row", "vendor", "system", *keys, "distinct_municipalities"],
            rows,
        )
    if name == "goals":
        goal_rows = r["goals"] if r else []
        return _csv_response(
            f"goals-{day}.csv",
            [
                "year",
                "quarter",
                "goal",
                "label",
                "target_label",
                "target",
                "actual",
                "status",
                "measured_on",
            ],
            [
                [
                    r["year"],
                    g["quarter"],
                    g["goal"],
                    g["label"],
                    g["target_label"] or "",
                    g["target"],
                    "" if g["actual"] is None else g["actual"],
                    g["status"],
                    g["measured_on"],
                ]
                for g in goal_rows
            ],
        )
    if name == "klik":
        buckets = r["buckets"]
        return _csv_response(
            f"klik-{day}.csv",
            ["as_of", "task", "type", "end_date", *buckets, "total", "overdue"],
            [
                [
                    r["as_of"],
                    t["task"],
                    t["type"],
                    t["end_date"],
                    *(t["counts"][b] for b in buckets),
                    t["total"],
                    t["overdue"],
                ]
                for t in r["tasks"]
            ],
        )
    return _csv_response(
        f"overdue-{day}.csv",
        [
            "today",
            "track",
            "definition",
            "subject",
            "state",
            "label",
            "role",
            "due",
            "working_days_late",
        ],
        [
            [
                r["today"],
                t["track"],
                t["definition"],
                t["subject"],
                t["state"],
                t["label"],
                t["role"] or "",
                t["due"],
                t["working_days_late"],
            ]
            for t in r["tracks"]
        ],
    )


# --- pages: notifications ------------------------------------------------------------------------


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


# --- the app -----------------------------------------------------------------------------------


def WEB(page: Page) -> WebState:
    state: WebState = page.request.app.state.web
    return state


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
        get("/grid", grid_page),
        get("/tracks/{track_id:int}", track_page),
        post("/tracks/{track_id:int}/advance", track_advance),
        get("/municipalities/{code:int}", municipality_page),
        get("/bulk", bulk_page),
        post("/bulk/apply", bulk_apply),
        get("/import", import_page),
        post("/import", import_preview),
        post("/import/apply", import_apply),
        get("/reports", report_page),
        get("/reports/{name}.csv", report_csv),
        get("/reports/{name}", report_page),
        get("/notifications", notifications_page),
        post("/notifications/{row_id:int}/retry", notification_retry),
        post("/notifications/retry-failed", notifications_retry_failed),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]


def create_app(db_path: str | Path, secret: str | None = None) -> Starlette:
    """The web application over the database at ``db_path`` (which must be initialised).

    ``secret`` signs the session cookies; without one a random secret is made, so sessions
    last as long as the process.
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

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret or secrets.token_urlsafe(32),
                session_cookie="onboarding_session",
                max_age=12 * 60 * 60,
                same_site="lax",
                https_only=False,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.web = state
    return app
