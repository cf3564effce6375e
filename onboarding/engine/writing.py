"""Writing planned moves: who acts (``Act``), ``write_moves`` (track rows checked by version,
hash-chained history rows, the outbox), one track's ``advance`` and its dry run
``preview_advance``.

Every write is one ``BEGIN IMMEDIATE`` transaction: the track row (state, version, fields,
entered time, due date) and its appended history row commit together or not at all. This is
the advance path of the command line (issue 14): it imports only the row and planning modules.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from onboarding import audit, clock, outbox, permits
from onboarding.db import Database, immediate
from onboarding.engine.planning import Move, plan
from onboarding.engine.rows import _FIELDS_JSON, coerce_fields, load_track
from onboarding.errors import StaleVersion
from onboarding.guards import GuardContext
from onboarding.i18n import Message
from onboarding.roles import require_role
from workflows.record import record as dataclass


def _log(name: str, **fields: Any) -> None:
    """An event for the log of a long-running process (``onboarding.logs``). Only where logging
    is already in use: a one-off CLI advance does not pay to import it (start-up, issue 14)."""
    if "logging" not in sys.modules:
        return
    import logging

    from onboarding.logs import event

    event(logging.getLogger("onboarding.engine"), name, **fields)


#: What to do with a future date instead of ``--at`` (docs/workflows.md, "When a step happened").
PLANNED_HINT = Message("a planned date belongs in a date field of the track (--set NAME=DATE)")


@dataclass(frozen=True)
class Act:
    """Who acts, in which role, why, and when it happened."""

    actor: str
    role: str
    note: str | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        # An act dated later than the clock (beyond ``clock.FUTURE_TOLERANCE``) cannot exist,
        # whoever builds it (CLI, web page, status import), so no write can record it: a step
        # in the future would make every real step after it "go backwards", freezing the track.
        if self.at is not None:
            clock.check_not_future(self.at, hint=PLANNED_HINT)

    def moment(self) -> datetime:
        return self.at or clock.now()


def write_moves(
    conn: sqlite3.Connection, moves: list[Move], act: Act, at: str, recorded: str | None = None
) -> None:
    """Apply planned moves: update each track (checking its version) and append history.

    ``recorded`` is when this is written (one clock reading per operation: the history rows
    and the outbox share it)."""
    if not moves:
        return
    recorded = recorded or clock.stamp(clock.now())
    # The entered states' notifications first: the track row then points to their plan.
    heads = outbox.enter(conn, moves, recorded)
    keep: tuple[int | None, int | None] = (None, None)
    # ``final`` is only SET where it changes: SQLite rewrites the entry of every index whose
    # columns (or partial-index WHERE, here ``tracks_open_subject``'s ``final = 0``) the
    # statement SETs, even to the same value, and that page is one more written per advance.
    same: list[tuple[Any, ...]] = []
    flips: list[tuple[Any, ...]] = []
    for m in moves:
        values = (
            m.to_state,
            _FIELDS_JSON(m.fields),
            m.entered_at,
            m.due,
            m.def_version,
            at,
            *heads.get(int(m.track["id"]), keep),
        )
        if int(m.final) == int(m.track["final"]):
            same.append((*values, m.track["id"], m.track["version"]))
        else:
            flips.append((*values, int(m.final), m.track["id"], m.track["version"]))
    written = 0
    for params, final in ((same, ""), (flips, " final = ?,")):
        if params:
            written += conn.executemany(
                "UPDATE tracks SET state = ?, fields = ?, entered_at = ?, due = ?,"
                " def_version = ?, updated_at = ?, plan_id = coalesce(?, plan_id),"
                f" plan_open = coalesce(?, plan_open),{final} version = version + 1"
                " WHERE id = ? AND version = ?",
                params,
            ).rowcount
    if written != len(moves):
        raise StaleVersion(
            Message(
                "a track changed while this was being applied; nothing was written: read it again"
            )
        )
    audit.append(  # history rows, hash-chained (onboarding.audit)
        conn,
        [
            (
                m.track["id"],
                m.track["version"] + 1,
                m.track["state"],
                m.to_state,
                m.trigger,
                act.actor,
                act.role,
                act.note,
                at,
                recorded,
                m.def_version,
                _FIELDS_JSON(m.fields_set),
            )
            for m in moves
        ],
    )
    outbox.on_moves(conn, moves, at, recorded)


def advance(
    db: Database,
    track_id: int,
    trigger: str,
    act: Act,
    sets: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Fire ``trigger`` on one track; return the track as it is afterwards."""
    require_role(act.role, db)
    moment = act.moment()
    with immediate(db) as conn:
        track = load_track(conn, track_id)
        permits.authorize(conn, act.actor, act.role, track)
        _check_version(track, expected_version)
        defn = outbox.definition(conn, track["definition"], track["def_version"])
        values = coerce_fields(db, defn, sets or {}, moment)
        ctx = GuardContext(conn, moment)
        move = plan(ctx, defn, track, trigger, act.role, values)
        at = move.entered_at  # ctx.at_stamp, already formatted once by plan
        # Written "now" is the act's moment unless --at dated it: one clock reading.
        write_moves(conn, [move], act, at, None if act.at else at)
        after = moved_track(move, at)
    # Logged once committed (a long-running process's log, onboarding.logs); no field values.
    _log(
        "transition",
        track=track_id,
        trigger=trigger,
        to=move.to_state,
        version=after["version"],
        actor=act.actor,
        role=act.role,
    )
    return after


def _check_version(track: Mapping[str, Any], expected_version: int | None) -> None:
    """Optimistic locking for advance and its preview: the version the caller read, if given,
    must still be the track's."""
    if expected_version is not None and track["version"] != expected_version:
        raise StaleVersion(
            Message(
                "track #%(id)s changed since you read it (version %(expected)s, now %(now)s): "
                "read it again",
                {
                    "id": str(track["id"]),
                    "expected": str(expected_version),
                    "now": str(track["version"]),
                },
            )
        )


def moved_track(move: Move, at: str) -> dict[str, Any]:
    """The track row as ``write_moves`` left it, built from the move (not read back)."""
    return {
        **move.track,
        "state": move.to_state,
        "final": int(move.final),
        "version": int(move.track["version"]) + 1,
        # As stored and read back: keys sorted (json.dumps(sort_keys=True)).
        "fields": dict(sorted(move.fields.items())),
        "entered_at": move.entered_at,
        "due": move.due,
        "def_version": move.def_version,
        "updated_at": at,
    }


def preview_advance(
    db: Database,
    track_id: int,
    trigger: str,
    act: Act,
    sets: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """What ``advance`` would do, with every check it makes, and nothing written.

    Returns the move (from, to), the due date the track would get and the notifications
    entering the new state would schedule (each with when, to whom and its template). A step
    ``advance`` would refuse is refused here with the same error.
    """
    require_role(act.role, db)
    moment = act.moment()
    conn = db.conn
    track = load_track(conn, track_id)
    permits.authorize(conn, act.actor, act.role, track)
    _check_version(track, expected_version)
    defn = outbox.definition(conn, track["definition"], track["def_version"])  # as advance
    values = coerce_fields(db, defn, sets or {})
    ctx = GuardContext(conn, moment)
    move = plan(ctx, defn, track, trigger, act.role, values)
    due = date.fromisoformat(move.due) if move.due else None
    entered = clock.unstamp(move.entered_at)
    notes = []
    for rule in outbox.state_rules(defn, move.to_state):
        when = rule.due_at(due, entered)
        if when is None:
            continue  # counted from a due date the step does not have
        notes.append(
            {
                "name": rule.name,
                "kind": rule.kind,
                "template": rule.template,
                "to": list(rule.to),
                "at": clock.stamp(when),
            }
        )
    notes.sort(key=lambda n: (n["at"], n["name"]))
    return {
        "id": track_id,
        "dry_run": True,
        "trigger": trigger,
        "from": track["state"],
        "from_label": defn.state(track["state"]).label,
        "to": move.to_state,
        "to_label": defn.state(move.to_state).label,
        "final": move.final,
        "at": move.entered_at,
        "fields_set": move.fields_set,
        "due": move.due,
        "version": track["version"],
        "notifications": notes,
    }
