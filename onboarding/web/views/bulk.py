"""Bulk advance: choose tracks by conditions, preview, apply."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import Response

from onboarding import bulkops, definitions, engine, registry, tracks, visibility
from onboarding.db import Database
from onboarding.errors import InputError, NotFound, OnboardingError
from onboarding.filters import TrackFilter
from onboarding.web import i18n
from onboarding.web.core import WEB, Page, Redirect, _granted_roles, _status_for, _urlencode
from onboarding.web.i18n import gettext as _

#: At most this many tracks are listed in a bulk preview (all are counted).
MAX_LISTED = 500


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


def _bulk_filter(
    req: Mapping[str, Any], ids: tuple[int, ...] = (), scope: visibility.Scope | None = None
) -> TrackFilter:
    values = {k: req[k] for k in BULK_CONDITIONS if req.get(k)}
    # Only tracks the actor may read are selected (need-to-know): none of another's is listed.
    flt = TrackFilter(**values, overdue=bool(req.get("overdue")), ids=ids, scope=scope)
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
            error, status = i18n.say_error(exc), _status_for(exc)
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
    flt = _bulk_filter(req, scope=visibility.of(page.db, page.actor))
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
        flt = _bulk_filter(req, ids, visibility.of(page.db, page.actor))
        sets = _parse_sets(req["sets"])
        # Each history row names the operation (its id and instant), so the result page and
        # every moved track's history say which bulk action moved it, and who did it.
        op = bulkops.new()
        act = engine.Act(
            actor=page.actor, role=req["role"], note=op.note(req["note"] or None), at=op.at
        )
        check = engine.bulk_advance(page.db, flt, req["trigger"], act, sets, dry_run=True)
        if check.selected != len(ids):
            raise InputError(
                _(
                    "The selection changed since the preview (%(then)d tracks then, %(now)d "
                    "now); nothing was changed. Preview again."
                )
                % {"then": len(ids), "now": check.selected}
            )
        engine.bulk_advance(page.db, flt, req["trigger"], act, sets)
    except OnboardingError as exc:
        error, status = i18n.say_error(exc), _status_for(exc)
    else:
        # The result page (bulk_done) says how many moved and lists them.
        query = _urlencode({k: str(v) for k, v in req.items() if v and k not in ("note",)})
        raise Redirect(f"/bulk/done/{op.id}?" + query)
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


def bulk_done(page: Page) -> Response:
    """What one bulk operation moved, each track with a link (read back from history)."""
    result = bulkops.moved(page.db, page.request.path_params["bulk_id"])
    if not result["tracks"]:
        raise NotFound("bulk operation", result["id"])
    again = {k: v for k, v in page.request.query_params.items() if k in _REPEATABLE}
    return WEB(page).render(
        page, "bulk_done.html", op=result, again="/bulk?" + _urlencode(again) if again else "/bulk"
    )


#: The form fields a result page's "Back to the form" keeps (not the ids or the note).
_REPEATABLE = (*BULK_CONDITIONS, "overdue", "trigger", "role", "sets")
