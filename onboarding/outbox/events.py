"""Calendar events, one per track and state entry: their ids, their sequence, and withdrawal.

Every deadline mail carries a calendar event for its step; these give the event its UID and
SEQUENCE, and schedule the notice that withdraws it when the track ends before the deadline
(``_withdraw_events``, called by ``on_moves``). The runner reads the first two when it builds
a message; kept apart from scheduling because it is what the sender and the engine share.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from onboarding import clock
from onboarding.db import Database
from onboarding.outbox.cache import definition
from onboarding.outbox.declarations import NOT_ENTRIES
from onboarding.outbox.entries import _ENTERS, _entry_upto
from onboarding.outbox.plans import _next_id

if TYPE_CHECKING:
    from onboarding.engine import Move


#: The notice that withdraws a deadline's calendar event when the track ends before it: its
#: notification name (the dot keeps it apart from any a definition may declare, and it stays
#: valid in a Message-ID) per how the track ended, and its template (the leading underscore
#: keeps definitions from naming it, like ``_digest``).
WITHDRAWALS = {"cancelled": "calendar.cancelled", "finished": "calendar.finished"}
WITHDRAW_TEMPLATE = "_calendar-cancel"


def event_key(row: Mapping[str, Any], token: str) -> str:
    """The left part of the UID of a row's deadline event: one per (track, state entry), so a
    reminder, the escalations and a notice of the same step update one calendar entry."""
    return f"t{row['track_id']}.e{row['entry_seq']}.deadline.{token}"


def event_sequence(db: Database, track_id: int, entry_seq: int) -> int:
    """The SEQUENCE of an entry's deadline event: how many times the track's fields changed
    (``track set``, a same-state migration: the only ways a deadline moves) while it was in
    that entry. It only grows, and it stops when the entry is left."""
    row = db.conn.execute(
        "SELECT count(*) FROM history WHERE track_id = ? AND seq > ?"
        " AND trigger IN (?, ?) AND from_state = to_state"
        " AND seq < coalesce((SELECT min(seq) FROM history h WHERE track_id = ? AND seq > ?"
        f"  AND {_ENTERS}), 9223372036854775807)",
        [track_id, entry_seq, *NOT_ENTRIES, track_id, entry_seq],
    ).fetchone()
    return int(row[0])


def _withdraw_events(conn: sqlite3.Connection, moves: Sequence[Move], now: str) -> None:
    """A track entering a final state withdraws the deadline event of the entry it leaves:
    if deadline mails of that entry were sent and the event's date has not passed, one notice
    (``WITHDRAW_TEMPLATE``, with a METHOD:CANCEL event) goes to the people who got them."""
    params: list[tuple[Any, ...]] = []
    for m in moves:
        if not m.final or m.track["final"]:
            continue
        track_id, seq = int(m.track["id"]), int(m.track["version"]) + 1
        entry = _entry_upto(conn, track_id, seq - 1)
        if entry is None:
            continue
        sent = conn.execute(
            "SELECT sent_to, due_date FROM outbox WHERE track_id = ? AND entry_seq = ?"
            " AND status = 'sent' AND due_date IS NOT NULL AND template != ?"
            " ORDER BY sent_at, id",
            [track_id, entry, WITHDRAW_TEMPLATE],
        ).fetchall()
        if not sent:
            continue
        day = sent[-1][1]  # the date the latest mail put in the calendar
        if day < clock.local_date(datetime.fromisoformat(m.entered_at)).isoformat():
            continue  # already past: nothing to take out of anyone's calendar
        people = list(dict.fromkeys(e for sent_to, _ in sent for e in json.loads(sent_to or "[]")))
        if not people:
            continue
        name = WITHDRAWALS["cancelled" if _phase(conn, m) == "cancelled" else "finished"]
        params.append(
            (
                track_id,
                entry,
                m.track["state"],
                name,
                WITHDRAW_TEMPLATE,
                json.dumps(people),
                day,
                m.entered_at,
                m.entered_at,
                now,
                now,
            )
        )
    if params:
        # Explicit ids after every planned one (a plan may hold ids above the outbox's own).
        first = _next_id(conn)
        conn.executemany(
            "INSERT INTO outbox (id, track_id, entry_seq, state, notification, kind, level,"
            " template, recipients, on_leave, cancel_on, due_date, due_at, next_attempt_at,"
            " created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'notice', 0, ?, ?, 'keep', '[]', ?, ?, ?, ?, ?)"
            " ON CONFLICT (track_id, entry_seq, notification) DO NOTHING",
            [(first + i, *p) for i, p in enumerate(params)],
        )


def _phase(conn: sqlite3.Connection, m: Move) -> str | None:
    state = definition(conn, str(m.track["definition"]), m.def_version).by_name.get(m.to_state)
    return state.phase if state else None
