"""State entries read from history: when a track entered the state it is in, and when it left.

A state entry is the history row (its ``seq``) that entered a state; notifications, plans and
calendar events are keyed by it. These queries are the one rule for which rows enter a state
(``NOT_ENTRIES`` do not), shared by scheduling, plans and calendar events.
"""

from __future__ import annotations

import sqlite3

from onboarding.outbox.declarations import NOT_ENTRIES

#: A history row (alias ``h``) that enters a state: any trigger but a field change or a
#: migration, the start, and a migration to another state written before migrations carried
#: their rows (it scheduled rows under its own seq, which stay that entry's rows). One rule for
#: every question about state entries: the current one, the one a final move leaves, and where
#: an entry's deadline event stops counting changes.
_ENTERS = (
    f"(h.trigger NOT IN ('{NOT_ENTRIES[0]}', '{NOT_ENTRIES[1]}') OR h.from_state IS NULL"
    " OR (h.trigger = '@migrate' AND h.from_state != h.to_state AND EXISTS (SELECT 1 FROM"
    " outbox o WHERE o.track_id = h.track_id AND o.entry_seq = h.seq)))"
)


def _entry_upto(conn: sqlite3.Connection, track_id: int, seq: int) -> int | None:
    """The history seq at which the track entered the state it was in at history row ``seq``."""
    row = conn.execute(
        f"SELECT max(seq) FROM history h WHERE track_id = ? AND seq <= ? AND {_ENTERS}",
        [track_id, seq],
    ).fetchone()
    return int(row[0]) if row[0] is not None else None


def _current_entry(conn: sqlite3.Connection, track_id: int) -> int:
    """The history seq at which the track entered its current state."""
    return _entry_upto(conn, track_id, 2**63 - 1) or 1


def _left_at(conn: sqlite3.Connection, track_id: int, seq: int) -> str | None:
    """When the track left the entry at history row ``seq`` (the recorded time of the next
    row that enters a state): what a left plan's rows show as their cancel time."""
    row = conn.execute(
        "SELECT recorded_at FROM history WHERE track_id = ? AND seq > ?"
        " AND trigger NOT IN (?, ?) ORDER BY seq LIMIT 1",
        [track_id, seq, *NOT_ENTRIES],
    ).fetchone()
    return str(row[0]) if row else None
