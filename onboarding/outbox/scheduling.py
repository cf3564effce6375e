"""Entering and leaving a state: what the engine's transaction writes to the outbox.

``enter`` (before the track rows are written) and ``on_start`` schedule an entered state's
notifications: notices as outbox rows, reminders and escalations as one plan; ``on_moves``
(after) cancels what leaving cancels, recomputes the current entry's rows after a field change
or a migration, and withdraws calendar events of a track that ends. This is the outbox's part
of every advance and start, on the engine's connection; the sender's side is ``claims``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from onboarding import clock
from onboarding.outbox.cache import definition, state_rules
from onboarding.outbox.declarations import NOT_ENTRIES, Rule
from onboarding.outbox.entries import _current_entry
from onboarding.outbox.events import _withdraw_events
from onboarding.outbox.plans import (
    _INSERT_WITH_ID,
    _PLANNER,
    _compact,
    _next_id,
    materialise_track,
)

if TYPE_CHECKING:
    from onboarding.engine import Move


_UPSERT_WITH_ID = (
    "INSERT INTO outbox (id, track_id, entry_seq, state, notification, kind, level, template,"
    " recipients, on_leave, cancel_on, due_date, due_at, next_attempt_at, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (track_id, entry_seq, notification) DO UPDATE SET"
    " state = excluded.state, kind = excluded.kind, level = excluded.level,"
    " template = excluded.template,"
    " recipients = excluded.recipients, on_leave = excluded.on_leave,"
    " cancel_on = excluded.cancel_on, due_date = excluded.due_date, due_at = excluded.due_at,"
    " next_attempt_at = CASE WHEN outbox.attempts = 0 THEN excluded.due_at"
    " ELSE max(excluded.due_at, outbox.next_attempt_at) END,"
    " status = 'pending', updated_at = excluded.updated_at"
    " WHERE outbox.status IN ('pending', 'cancelled')"
)

#: Rows not yet handed to a transport: pending, failed, or claimed by a sender that has not
#: handed them over yet (its ``hand_over`` then finds them cancelled and sends nothing).
_UNSENT = "(status IN ('pending', 'failed') OR (status = 'sending' AND handed_at IS NULL))"

#: Cancel what leaving a state cancels: rows of earlier entries not yet sent.
_CANCEL_ON_LEAVE = (
    "UPDATE outbox SET status = 'cancelled', updated_at = ?,"
    " last_error = CASE WHEN status = 'failed' THEN last_error ELSE NULL END,"
    " claimed_by = NULL, lease_until = NULL"
    f" WHERE track_id = ? AND entry_seq < ? AND {_UNSENT}"
    " AND (on_leave = 'cancel' OR EXISTS (SELECT 1 FROM json_each(cancel_on) WHERE value = ?))"
)


#: Where a track row's plan pointer goes: (plan_id or None for unchanged, plan_open).
Heads = dict[int, tuple[int | None, int]]


def _enter(
    conn: sqlite3.Connection,
    entries: Sequence[tuple[int, int, str, int, str | None, str, tuple[Rule, ...]]],
    now: str,
) -> Heads:
    """Write what entering a state writes, for each (track, seq, state, version, due, entered,
    rules): the notifications kept on leave (notices) as outbox rows, the rest (cancelled by
    leaving) as one appended ``outbox_plan`` row, under ids in the order the rows were always
    written in. Returns where each track row's plan pointer goes, for the caller's write of
    the track row (before it: the new plan links to the track's head so far). Leaving the
    state before writes nothing more: the pointer moves on."""
    next_id = 0
    eager: list[tuple[Any, ...]] = []
    plans: list[tuple[Any, ...]] = []
    heads: Heads = {}
    for track_id, seq, state, version, due, entered, rule_set in entries:
        timed = _PLANNER.timed(rule_set, due, entered)
        if not timed:
            heads[track_id] = (None, 0)
            continue
        if not next_id:
            next_id = _next_id(conn)
        later: list[tuple[int, str, str]] = []
        for rule, at in timed:
            if rule.on_leave == "keep":
                eager.append((next_id, *_PLANNER.row(track_id, seq, state, rule, due, at, now)))
            else:
                later.append((next_id, rule.name, at))
            next_id += 1
        if later:
            plans.append(
                (
                    next_id - 1,
                    track_id,
                    seq,
                    state,
                    version,
                    due,
                    now,
                    _compact(later),
                    min(r[2] for r in later),
                )
            )
            heads[track_id] = (next_id - 1, 1)
        else:
            heads[track_id] = (None, 0)
    if eager:
        conn.executemany(_INSERT_WITH_ID, eager)
    if plans:
        # The plan's predecessor is the track's head so far (the track row is not written yet).
        conn.executemany(
            "INSERT INTO outbox_plan (id, prev_id, track_id, entry_seq, state, def_version,"
            " due_date, made_at, rows, next_at) SELECT ?, plan_id, id, ?, ?, ?, ?, ?, ?, ?"
            " FROM tracks WHERE id = ?",
            [(p[0], *p[2:], p[1]) for p in plans],
        )
    return heads


def enter(conn: sqlite3.Connection, moves: Sequence[Move], now: str) -> Heads:
    """Schedule the notifications of the states the moves enter (called by the engine before
    it writes the track rows, in the same transaction); return the track rows' plan
    pointers (``_enter``). A field change or a migration enters nothing."""
    entries = []
    for m in moves:
        if m.trigger in NOT_ENTRIES:
            continue
        name = str(m.track["definition"])
        rule_set = state_rules(definition(conn, name, m.def_version), m.to_state)
        entries.append(
            (
                int(m.track["id"]),
                int(m.track["version"]) + 1,
                m.to_state,
                m.def_version,
                m.due,
                m.entered_at,
                rule_set,
            )
        )
    return _enter(conn, entries, now) if entries else {}


def on_start(
    conn: sqlite3.Connection,
    track_id: int,
    now: str | None = None,
    entry: tuple[str, int, str, str | None, str] | None = None,
) -> None:
    """Schedule the notifications of a new track's initial state (its history seq 1).

    ``entry`` is the track's (definition, def_version, state, due, entered_at) when the
    caller has just written them (``engine.start``: not read back); otherwise it is read."""
    row = (
        entry
        or conn.execute(
            "SELECT definition, def_version, state, due, entered_at FROM tracks WHERE id = ?",
            [track_id],
        ).fetchone()
    )
    name, version, state, due, entered = row
    rule_set = state_rules(definition(conn, name, version), state)
    heads = _enter(
        conn,
        [(track_id, 1, state, version, due, entered, rule_set)],
        now or clock.stamp(clock.now()),
    )
    for plan_id, is_open in heads.values():
        conn.execute(
            "UPDATE tracks SET plan_id = coalesce(?, plan_id), plan_open = ? WHERE id = ?",
            [plan_id, is_open, track_id],
        )


def on_moves(
    conn: sqlite3.Connection, moves: Sequence[Move], at: str, now: str | None = None
) -> None:
    """Cancel and reschedule notifications for moves just written (same transaction; the
    entered states' were scheduled by ``enter`` before the track rows were written).

    A move that enters a state (any trigger but a field change or a migration) cancels what
    leaving the old entry cancels (its plan is no longer the track's open one: the track row
    says so; outbox rows already written and unsent are cancelled). A field change or a
    migration first writes the entry's planned rows out (``materialise_track``), then
    recomputes the current entry's rows in place, from the (new version's) rules of the
    state the track is in now: a migration to another state carries the entry's unsent rows
    there (same row, same Message-ID, sent once), and cancels those the state has no rule
    for unless they are kept on leave.
    """
    if not moves:
        return
    now = now or clock.stamp(clock.now())
    cancels: list[tuple[Any, ...]] = []
    for m in moves:
        track = m.track
        track_id = int(track["id"])
        if m.trigger not in NOT_ENTRIES:
            cancels.append((now, track_id, int(track["version"]) + 1, m.trigger))
            continue
        rule_set = state_rules(
            definition(conn, str(track["definition"]), m.def_version), m.to_state
        )
        _recompute(conn, m, rule_set, now)
    if cancels:
        conn.executemany(_CANCEL_ON_LEAVE, cancels)
    _withdraw_events(conn, moves, now)


def _recompute(conn: sqlite3.Connection, m: Move, rule_set: tuple[Rule, ...], now: str) -> None:
    """A field change or migration: the current entry's rows recomputed in place."""
    track_id = int(m.track["id"])
    materialise_track(conn, track_id)
    entry = _current_entry(conn, track_id)
    params, names = _PLANNER.rows(track_id, entry, m.to_state, rule_set, m.due, m.entered_at, now)
    existing = {
        str(n)
        for (n,) in conn.execute(
            "SELECT notification FROM outbox WHERE track_id = ? AND entry_seq = ?",
            [track_id, entry],
        ).fetchall()
    }
    # A new row takes the next id; one that exists is updated in place (no id taken).
    next_id = _next_id(conn)
    values = []
    for p in params:
        if p[3] in existing:
            values.append((None, *p))
        else:
            values.append((next_id, *p))
            next_id += 1
    if values:
        conn.executemany(_UPSERT_WITH_ID, values)
    # Unsent rows of this entry that can no longer be computed (no due date any more, or
    # a migrated state without them) are cancelled unless they are kept on leave.
    stale = conn.execute(
        "SELECT id, notification FROM outbox WHERE track_id = ? AND entry_seq = ?"
        f" AND {_UNSENT} AND on_leave = 'cancel'",
        [track_id, entry],
    ).fetchall()
    for row_id, name in stale:
        if name not in names:
            conn.execute(
                "UPDATE outbox SET status = 'cancelled', claimed_by = NULL,"
                " lease_until = NULL, updated_at = ? WHERE id = ?",
                [now, row_id],
            )
