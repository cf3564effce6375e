"""The handlers of ``/api/v1``: each parses, calls one library function, and answers JSON.

The YAML after ``---`` in each docstring is that operation of the OpenAPI document
(``openapi.py`` collects them from the routes).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.routing import Match, Mount, Route

from onboarding import actors, clock, definitions, engine, filters, reports, tracks
from onboarding.errors import Ambiguous, InputError, NotFound, StaleVersion
from onboarding.status_import import ROLE as IMPORTER
from onboarding.status_import import Importer, import_status, upload_source
from onboarding.web.api.base import ApiError, Call, Result, fields_of, require_track

#: Tracks per page of ``GET /tracks``: the default and the most a client may ask for.
PAGE = 100
MAX_PAGE = 1000
#: The ``GET /tracks`` query parameters that are filters (those of ``track list``).
FILTERS = (
    "definition",
    "state",
    "phase",
    "bucket",
    "municipality",
    "system",
    "vendor",
    "region",
)
FLAGS = ("overdue", "open")
MAX_NOTE = 2000


def _int_param(call: Call, name: str, default: int, low: int, high: int) -> int:
    text = call.query(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(
            400,
            "invalid_parameter",
            call._("Query parameter %(name)s: a whole number from %(low)d to %(high)d.")
            % {"name": name, "low": low, "high": high},
            parameter=name,
        )
    return int(text)


def _flag(call: Call, name: str) -> bool:
    text = (call.query(name) or "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ApiError(
        400,
        "invalid_parameter",
        call._("Query parameter %(name)s: true or false.") % {"name": name},
        parameter=name,
    )


def _filter(call: Call) -> filters.TrackFilter:
    """The filter of ``track list`` from the query: ``where`` (as ``--where``) and/or one
    parameter per key; every value checked against what exists (``filters.resolve``)."""
    where = call.query("where")
    try:
        base = filters.parse_where(where) if where else filters.TrackFilter()
    except InputError as exc:
        raise ApiError(400, "invalid_filter", exc.say(call.lang)) from None
    given: dict[str, Any] = {k: call.query(k) for k in FILTERS if call.query(k)}
    given.update({k: True for k in FLAGS if _flag(call, k)})
    for key in given:
        if getattr(base, key):
            raise ApiError(
                400,
                "invalid_parameter",
                call._("%(name)s is given twice (as a parameter and in where).") % {"name": key},
                parameter=key,
            )


    try:
        return filters.resolve(call.db, replace(base, **given), where=bool(where))
    except (NotFound, Ambiguous, InputError) as exc:
        # A filter naming nothing that exists is a bad query, not a missing resource.
        raise ApiError(400, "invalid_filter", exc.say(call.lang)) from None


def list_tracks(call: Call) -> Result:
    """The tracks the token's actor may read that a filter selects, by id, a page at a time.
    ---
    summary: List tracks
    description: >-
      Filtered like `track list` / `track advance --where`: `where` takes the same text
      (`definition=connection state=agreed`), or give the keys as parameters. Only tracks the
      token's actor may read are listed. Pages of `limit` tracks; pass `next_after` as `after`
      for the next page.
    parameters:
      - {name: where, in: query, schema: {type: string}}
      - {name: definition, in: query, schema: {type: string}}
      - {name: state, in: query, schema: {type: string}}
      - {name: phase, in: query, schema: {type: string}}
      - {name: bucket, in: query, schema: {type: string}}
      - {name: municipality, in: query, schema: {type: string}}
      - {name: system, in: query, schema: {type: string}}
      - {name: vendor, in: query, schema: {type: string}}
      - {name: region, in: query, schema: {type: string}}
      - {name: overdue, in: query, schema: {type: boolean}}
      - {name: open, in: query, schema: {type: boolean}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000}}
      - {name: after, in: query, schema: {type: integer, minimum: 0}}
    responses:
      "200":
        description: A page of track summaries.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/TrackPage"}
      "400": {$ref: "#/components/responses/BadRequest"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/NotFound"}
    """
    limit = _int_param(call, "limit", PAGE, 1, MAX_PAGE)
    after = _int_param(call, "after", 0, 0, 2**62)
    flt = replace(_filter(call), scope=call.scope)
    where, params = flt.to_sql(call.db)
    # The filter and the reader's scope select ids in SQL; the summaries are track list's.
    ids = [
        int(r[0])
        for r in call.db.conn.execute(
            f"SELECT t.id FROM tracks t WHERE {where} AND t.id > ? ORDER BY t.id LIMIT ?",
            [*params, after, limit + 1],
        )
    ]
    more = len(ids) > limit
    ids = ids[:limit]
    rows = tracks.list_tracks(call.db, filters.TrackFilter(ids=tuple(ids))) if ids else []
    return 200, {"tracks": rows, "next_after": ids[-1] if more else None}


def _track_id(call: Call) -> int:
    track_id = call.path_int("track_id")
    require_track(call.db, call.scope, track_id)
    return track_id


def show_track(call: Call) -> Result:
    """One track: subject, state, fields, version, due date and what may happen next.
    ---
    summary: Read a track
    description: The shape of `track show --json`.
    parameters:
      - {$ref: "#/components/parameters/TrackId"}
    responses:
      "200":
        description: The track.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Track"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/NotFound"}
    """
    return 200, tracks.show(call.db, _track_id(call))


def track_history(call: Call) -> Result:
    """A track's history, oldest first: who did what, in which role, when.
    ---
    summary: Read a track's history
    description: The shape of `track history --json`.
    parameters:
      - {$ref: "#/components/parameters/TrackId"}
    responses:
      "200":
        description: The history rows.
        content:
          application/json:
            schema:
              type: object
              required: [track, history]
              properties:
                track: {type: integer}
                history: {type: array, items: {$ref: "#/components/schemas/HistoryRow"}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/NotFound"}
    """
    track_id = _track_id(call)
    return 200, {"track": track_id, "history": tracks.history(call.db, track_id)}


def track_transitions(call: Call) -> Result:
    """The triggers possible from a track's state now, what blocks each, and which of their
    roles the token's actor holds on this track.
    ---
    summary: Available transitions of a track
    parameters:
      - {$ref: "#/components/parameters/TrackId"}
    responses:
      "200":
        description: The transitions.
        content:
          application/json:
            schema:
              type: object
              required: [track, version, transitions]
              properties:
                track: {type: integer}
                version: {type: integer}
                transitions: {type: array, items: {$ref: "#/components/schemas/Transition"}}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/NotFound"}
    """
    track_id = _track_id(call)
    info = tracks.show(call.db, track_id)
    mine = set(actors.roles_for(call.db, call.actor, engine.load_track(call.db.conn, track_id)))
    out = [{**a, "my_roles": [r for r in a["roles"] if r in mine]} for a in info["available"]]
    return 200, {"track": track_id, "version": info["version"], "transitions": out}


_WRITE_MEMBERS: dict[str, tuple[type, ...]] = {
    "role": (str,),
    "expect_version": (int,),
    "fields": (dict,),
    "note": (str,),
    "at": (str,),
}


def _act(call: Call, role: str) -> engine.Act:
    note = call.body.get("note")
    if note is not None and len(note) > MAX_NOTE:
        raise ApiError(
            400,
            "invalid_member",
            call._("'note': at most %(n)d characters.") % {"n": MAX_NOTE},
            member="note",
        )
    at = call.body.get("at")
    moment = clock.parse_time(at, what="at") if at else None
    return engine.Act(actor=call.actor, role=role, note=note or None, at=moment)


def _sets(call: Call) -> dict[str, Any]:
    values = call.body.get("fields") or {}
    for name, value in values.items():
        if not isinstance(value, str | int | float | bool):
            raise ApiError(
                400,
                "invalid_member",
                call._("fields.%(name)s: a string, number or boolean.") % {"name": name},
                member=f"fields.{name}",
            )
    # As typed on the command line (--set NAME=VALUE): the engine coerces by the field's type.
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def _at_version(call: Call, track_id: int) -> dict[str, Any]:
    """The track, if it is at the version the client read: the role is chosen from its state,
    and a track that moved on is stale (409), not a reason to refuse the role. The engine
    checks the version again inside its transaction."""
    track = engine.load_track(call.db.conn, track_id)
    expected = call.body["expect_version"]
    if track["version"] != expected:
        raise StaleVersion(
            f"track #{track_id} changed since you read it (version {expected}, "
            f"now {track['version']}): read it again"
        )
    return track


def _role(call: Call, track_id: int, acting: list[str], what: str) -> str:
    """The role to act in: the body's, else the one role the actor holds on this track that
    may do ``what`` (several: the client must choose)."""
    given = call.body.get("role")
    if given:
        return str(given)
    held = actors.roles_for(call.db, call.actor, engine.load_track(call.db.conn, track_id))
    fit = [r for r in held if r in acting]
    if len(fit) == 1:
        return fit[0]
    if not fit:
        raise ApiError(
            403,
            "forbidden",
            call._("%(actor)s holds no role that may %(what)s on track #%(id)d.")
            % {"actor": call.actor, "what": what, "id": track_id},
        )
    raise ApiError(
        400,
        "role_required",
        call._("Say which role to act in: 'role' is one of %(roles)s.")
        % {"roles": ", ".join(fit)},
        roles=fit,
    )


def advance(call: Call) -> Result:
    """Fire a trigger on a track, as the token's actor, if the track is still at the version
    the client read.
    ---
    summary: Advance a track
    description: >-
      The engine's checks and refusals are those of `track advance`: the actor must hold the
      role for this track, the workflow must let the role fire the trigger from the state, its
      guards and required fields must hold. History records the actor and role. Send an
      `Idempotency-Key` to make a retry safe.
    parameters:
      - {$ref: "#/components/parameters/TrackId"}
      - {$ref: "#/components/parameters/IdempotencyKey"}
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Advance"}
    responses:
      "200":
        description: The track after the step.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Track"}
      "400": {$ref: "#/components/responses/BadRequest"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/Forbidden"}
      "404": {$ref: "#/components/responses/NotFound"}
      "409": {$ref: "#/components/responses/Conflict"}
      "422": {$ref: "#/components/responses/Refused"}
    """
    fields_of(call, {"trigger": (str,), **_WRITE_MEMBERS}, {"trigger", "expect_version"})
    track_id = _track_id(call)
    trigger = call.body["trigger"]
    track = _at_version(call, track_id)
    defn = definitions.get(call.db, track["definition"], track["def_version"])
    acting = sorted(
        {r for t in defn.transitions_from(track["state"]) if t.trigger == trigger for r in t.roles}
    )
    role = _role(call, track_id, acting, trigger)
    engine.advance(
        call.db, track_id, trigger, _act(call, role), _sets(call), call.body["expect_version"]
    )
    return 200, tracks.show(call.db, track_id)


def set_fields(call: Call) -> Result:
    """Record field values on a track without moving it, if it is still at the version read.
    ---
    summary: Set a track's fields
    description: The checks of `track set`; history records a `@set` row.
    parameters:
      - {$ref: "#/components/parameters/TrackId"}
      - {$ref: "#/components/parameters/IdempotencyKey"}
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/SetFields"}
    responses:
      "200":
        description: The track with its new fields.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Track"}
      "400": {$ref: "#/components/responses/BadRequest"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/Forbidden"}
      "404": {$ref: "#/components/responses/NotFound"}
      "409": {$ref: "#/components/responses/Conflict"}
      "422": {$ref: "#/components/responses/Refused"}
    """
    fields_of(call, _WRITE_MEMBERS, {"fields", "expect_version"})
    track_id = _track_id(call)
    track = _at_version(call, track_id)
    defn = definitions.get(call.db, track["definition"], track["def_version"])
    acting = sorted({r for t in defn.transitions_from(track["state"]) for r in t.roles})
    role = _role(call, track_id, acting, "set fields")
    engine.set_fields(
        call.db, track_id, _sets(call), _act(call, role), call.body["expect_version"]
    )
    return 200, tracks.show(call.db, track_id)


def import_status_file(call: Call) -> Result:
    """Import a monthly status file (the CSV of `import status`): every row or none.
    ---
    summary: Import a status file
    description: >-
      The body is the file itself (CSV, UTF-8 or Windows-1252). Each step is taken by the
      token's actor in role `importer` (or `role`), whose scope must cover every row; the note
      of each step names the file (`name`) and its sha256. `dry_run=true` checks and counts,
      writing nothing.
    parameters:
      - {name: name, in: query, schema: {type: string}, description: The file's name.}
      - {name: role, in: query, schema: {type: string, default: importer}}
      - {name: dry_run, in: query, schema: {type: boolean}}
      - {$ref: "#/components/parameters/IdempotencyKey"}
    requestBody:
      required: true
      content:
        text/csv:
          schema: {type: string}
    responses:
      "200":
        description: What the import did (the shape of `import status --json`).
        content:
          application/json:
            schema: {$ref: "#/components/schemas/ImportResult"}
      "400": {$ref: "#/components/responses/BadRequest"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "403": {$ref: "#/components/responses/Forbidden"}
      "422": {$ref: "#/components/responses/Refused"}
    """
    if not call.raw.strip():
        raise ApiError(400, "empty_body", call._("Send the status file as the request body."))
    # The name is only shown (errors, the steps' note): kept to a plain file name.
    name = re.sub(r"[^\w.\-]+", "_", Path(call.query("name") or "").name)[:100].lstrip(".")
    name = name or "status.csv"
    role = call.query("role") or IMPORTER
    by = Importer(actor=call.actor, role=role, source=upload_source(name, call.raw))
    with tempfile.TemporaryDirectory(prefix="onboarding-api-") as folder:
        path = Path(folder) / name
        path.write_bytes(call.raw)
        try:
            result = import_status(call.db, path, dry_run=_flag(call, "dry_run"), by=by)
        except InputError as exc:
            # Name the file as the client did, not by the server's temporary path.
            lines = exc.say(call.lang).replace(str(path), name).splitlines()
            raise ApiError(
                400, "invalid_status_file", lines[0], **({"lines": lines} if len(lines) > 1 else {})
            ) from None
    data = result.to_dict()
    data["file"] = name
    return 200, data


def rollout_report(call: Call) -> Result:
    """The rollout report (the deck's table) as of a date: counts only, readable by every actor.
    ---
    summary: Rollout report
    description: The shape of `report rollout --json`.
    parameters:
      - {name: category, in: query, schema: {type: string}}
      - {name: as_of, in: query, schema: {type: string, format: date}}
    responses:
      "200":
        description: The report.
        content:
          application/json:
            schema: {type: object}
      "400": {$ref: "#/components/responses/BadRequest"}
      "401": {$ref: "#/components/responses/Unauthorized"}
      "404": {$ref: "#/components/responses/NotFound"}
    """
    as_of = call.query("as_of")
    day = clock.parse_date(as_of, what="as_of") if as_of else None
    return 200, reports.rollout(call.db, category=call.query("category") or None, as_of=day)


def no_route(call: Call) -> Result:
    """Any other path or method under /api/v1 (no YAML: not in the OpenAPI document)."""
    routes = call.request.app.routes
    mount = next((m for m in routes if isinstance(m, Mount) and m.path == "/api/v1"), None)
    for route in mount.routes if mount is not None else ():
        # PARTIAL: the path is a route's, the method is not (Starlette's own rule for 405).
        match, _ = route.matches(call.request.scope)
        if match == Match.PARTIAL and isinstance(route, Route):
            allowed = ", ".join(sorted((route.methods or set()) - {"HEAD"}))
            raise ApiError(
                405,
                "method_not_allowed",
                call._("This route does not take %(method)s; it takes %(allowed)s.")
                % {"method": call.request.method, "allowed": allowed},
            )
    raise ApiError(404, "no_such_route", call._("There is no such API route."))
