"""One track: its page and its advance form."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from onboarding import clock, definitions, engine, outbox, registry, tracks, visibility
from onboarding.db import Database
from onboarding.errors import NotFound, OnboardingError
from onboarding.roles import label as role_label
from onboarding.web import i18n
from onboarding.web.core import WEB, BadRequest, Page, Redirect, _actors, _status_for
from onboarding.web.i18n import gettext as _


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
        "notifications": _without_others_addresses(
            page, [_notification_view(defn, n) for n in notes if n["status"] != "cancelled"]
        ),
        "field_labels": {name: f.label for name, f in defn.fields.items()},
        "field_types": {name: f.type for name, f in defn.fields.items()},
        "cancelled_notifications": sum(1 for n in notes if n["status"] == "cancelled"),
    }


def _expected_version(page: Page) -> int | None:
    """The version the form was rendered at (the stale-edit check); a form without the field
    (a script) asks for no check, but one that is not a number is refused, never ignored."""
    assert page.form is not None
    if "version" not in page.form:
        return None
    text = page.field("version")
    if not _VERSION.fullmatch(text):
        raise BadRequest(
            _("The form's version “%(text)s” is not a number: reload the track and try again.")
            % {"text": text[:20]}
        )
    return int(text)


_VERSION = re.compile(r"[0-9]{1,18}")


def _readable(page: Page, track_id: int) -> None:
    """404 for a track outside the actor's read scope, as for one that does not exist."""
    visibility.require_track(page.db, visibility.of(page.db, page.actor), track_id)


def _without_others_addresses(page: Page, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recipients' addresses only of the reader's own contacts (others' are personal data)."""
    own = visibility.own_addresses(page.db, visibility.of(page.db, page.actor))
    return [{**r, "to": visibility.hide_addresses(r["to"], own)[0]} for r in rows]


def track_page(page: Page) -> Response:
    track_id = int(page.request.path_params["track_id"])
    _readable(page, track_id)
    return WEB(page).render(page, "track.html", **_track_view(page, track_id))


def track_advance(page: Page) -> Response:
    assert page.actor is not None and page.form is not None
    track_id = int(page.request.path_params["track_id"])
    _readable(page, track_id)
    trigger = page.field("trigger")
    role = page.field("role")
    note = page.field("note") or None
    sets = {
        k[len("field_") :]: v.strip()
        for k, v in page.form.multi_items()
        if k.startswith("field_") and isinstance(v, str) and v.strip()
    }
    expected = _expected_version(page)
    try:
        with clock.far_dates() as far:  # a date far from the step: accepted, and said
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
            error=i18n.say_error(exc),
            tried=trigger,
            **view,
        )
    defn = definitions.get(page.db, after["definition"], after["def_version"])
    page.flash(
        _("Done: the track is now in “%(state)s”.") % {"state": defn.state(after["state"]).label}
    )
    for said in far:
        page.flash(i18n.say(said), "warn")
    raise Redirect(f"/tracks/{track_id}")
