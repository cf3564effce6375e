"""Changes to a track that are not a step of its workflow: field values recorded without a
move (``set_fields``, history trigger ``@set``) and open tracks moved to another version of
their definition (``migrate``, ``@migrate``). Neither re-enters the state (``NO_REENTRY``).

Separate because both are rare writes built from the same parts as an advance (a ``Move``
written by ``write_moves``) without a transition to plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onboarding import clock, definitions, permits, terms
from onboarding.db import Database, begin_immediate, immediate, rollback
from onboarding.engine.planning import Move, compute_due
from onboarding.engine.rows import (
    MIGRATE,
    SET,
    TRACK_COLUMNS,
    _row_to_track,
    coerce_fields,
    load_track,
)
from onboarding.engine.writing import Act, moved_track, write_moves
from onboarding.errors import InputError, StaleVersion, TransitionRefused
from onboarding.guards import GuardContext
from onboarding.i18n import Message
from onboarding.roles import require_role
from workflows.record import field
from workflows.record import record as dataclass

# --- fields outside a transition --------------------------------------------------------------


def set_fields(
    db: Database,
    track_id: int,
    sets: Mapping[str, Any],
    act: Act,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Record field values on a track without moving it (audited; the due date follows)."""
    require_role(act.role, db)
    if not sets:
        raise InputError(Message("nothing to set: give NAME=VALUE"))
    moment = act.moment()
    with immediate(db) as conn:
        track = load_track(conn, track_id)
        permits.authorize(conn, act.actor, act.role, track)
        if expected_version is not None and track["version"] != expected_version:
            raise StaleVersion(
                Message(
                    "track #%(id)s changed since you read it: read it again", {"id": str(track_id)}
                )
            )
        if track["final"]:
            raise TransitionRefused(
                Message("track #%(id)s is finished; its fields are closed", {"id": str(track_id)})
            )
        defn = definitions.get(db, track["definition"], track["def_version"])
        values = coerce_fields(db, defn, sets, moment)
        roles = {r for t in defn.transitions_from(track["state"]) for r in t.roles}
        if act.role not in roles:
            raise TransitionRefused(
                Message(
                    "track #%(id)s: role %(role)s does not act on this step (roles: %(roles)s)",
                    {
                        "id": str(track_id),
                        "role": terms.role(act.role),
                        "roles": terms.roles(sorted(roles)),
                    },
                )
            )
        ctx = GuardContext(conn, moment)
        at = ctx.at_stamp
        if at < track["updated_at"]:
            raise TransitionRefused(
                Message(
                    "track #%(id)s: %(at)s is before its last recorded step; "
                    "history never goes backwards",
                    {"id": str(track_id), "at": clock.unstamp(at)},
                )
            )
        fields = {**track["fields"], **values}
        state = defn.state(track["state"])
        due = compute_due(
            ctx, state, {**track, "fields": fields}, clock.unstamp(track["entered_at"])
        )
        move = Move(
            track=track,
            transition=None,
            trigger=SET,
            to_state=state.name,
            final=state.final,
            fields_set=values,
            fields=fields,
            entered_at=track["entered_at"],
            due=due.isoformat() if due else None,
            def_version=defn.version,
        )
        write_moves(conn, [move], act, at)
        return moved_track(move, at)


# --- migration --------------------------------------------------------------------------------


@dataclass
class MigrationResult:
    moved: int = 0
    by_state: dict[tuple[int, str, str], int] = field(default_factory=dict)
    dry_run: bool = False


def migrate(
    db: Database,
    name: str,
    to_version: int | None,
    mapping: Mapping[str, str],
    act: Act,
    dry_run: bool = False,
) -> MigrationResult:
    """Move every open track of ``name`` to another version, mapping states explicitly.

    A state that exists in the target version maps to itself unless ``mapping`` says otherwise;
    a state that does not must be mapped, or nothing moves. Each track gets a history row.
    """
    require_role(act.role, db)
    moment = act.moment()
    target = definitions.get(db, name, to_version)
    for old, new in mapping.items():
        if new not in target.by_name:
            raise InputError(
                Message(
                    "--map %(old)s=%(new)s: %(definition)s v%(version)s has no state %(state)s",
                    {
                        "old": old,
                        "new": new,
                        "definition": name,
                        "version": str(target.version),
                        "state": repr(new),
                    },
                )
            )
    result = MigrationResult(dry_run=dry_run)
    conn = db.conn
    begin_immediate(conn)  # bounded retry (onboarding.db)
    try:
        rows = conn.execute(
            f"SELECT {TRACK_COLUMNS} FROM tracks WHERE definition = ? AND final = 0"
            " AND def_version != ? ORDER BY id",
            [name, target.version],
        )
        tracks = [_row_to_track(r) for r in rows.fetchall()]
        unmapped = sorted(
            {
                (t["def_version"], t["state"])
                for t in tracks
                if t["state"] not in mapping and t["state"] not in target.by_name
            }
        )
        if unmapped:
            listed = ", ".join(f"{s} (v{v})" for v, s in unmapped)
            raise InputError(
                Message(
                    "%(definition)s v%(version)s has no state for %(states)s",
                    {"definition": name, "version": str(target.version), "states": listed},
                ),
                hint=Message("add --map OLD=NEW for each"),
            )
        ctx = GuardContext(conn, moment)
        at = ctx.at_stamp
        moves = []
        allowed = permits.checker(conn, act.actor, act.role)  # None: the database runs open
        for t in tracks:
            if allowed is not None:
                allowed(t)
            dest = target.state(mapping.get(t["state"], t["state"]))
            if at < t["updated_at"]:
                raise TransitionRefused(
                    Message(
                        "track #%(id)s: %(at)s is before its last recorded step",
                        {"id": str(t["id"]), "at": clock.unstamp(at)},
                    )
                )
            due = compute_due(ctx, dest, t, clock.unstamp(t["entered_at"]))
            moves.append(
                Move(
                    track=t,
                    transition=None,
                    trigger=MIGRATE,
                    to_state=dest.name,
                    final=dest.final,
                    fields_set={},
                    fields=t["fields"],
                    entered_at=t["entered_at"],
                    due=due.isoformat() if due else None,
                    def_version=target.version,
                )
            )
            key = (t["def_version"], t["state"], dest.name)
            result.by_state[key] = result.by_state.get(key, 0) + 1
        result.moved = len(moves)
        if not dry_run:
            write_moves(conn, moves, act, at)
            conn.execute("COMMIT")
        else:
            conn.execute("ROLLBACK")
    except BaseException:
        rollback(conn)
        raise
    return result
