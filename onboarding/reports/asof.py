"""What every report stands on: the last instant of a day, the tracks as they were then
(replayed from history), definitions read once per report, and the registry's categories.

"As of" always means *replayed from history*: a track's state at the end of that day is the
``to_state`` of its last history row at or before that instant, and its due date then is the
engine's due rule applied to its fields and entry time then (``_tracks_as_of``), so a past date
gives the past picture however much has happened since (tests/test_reports_asof.py).
Its own module because every report reads through it and it knows none of them: the bottom of
the package, importing no other module of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any

from onboarding import clock, definitions, registry
from onboarding.db import Database
from onboarding.errors import InputError
from onboarding.i18n import Message
from workflows.model import Definition

if TYPE_CHECKING:
    from onboarding.visibility import Scope

#: The definition whose tracks the rollout, progress and grid reports count.
CONNECTION = "connection"


def _today(today: date | None) -> date:
    return today or clock.local_date(clock.now())


def _end_stamp(day: date) -> str:
    """The last instant of a Copenhagen day, stored form: 'as of 31 March' includes all of it."""
    return clock.stamp(clock.end_of_local_day(day))


def _rows(
    db: Database, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> list[dict[str, Any]]:
    cur = db.conn.execute(sql, params)
    keys = [d[0] for d in cur.description]
    return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


class _Defs:
    """Definitions by (name, version), read once per report."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[tuple[str, int | None], Definition] = {}

    def get(self, name: str, version: int | None = None) -> Definition:
        key = (name, version)
        if key not in self._cache:
            self._cache[key] = definitions.get(self.db, name, version)
        return self._cache[key]


def _states_as_of(db: Database, definition: str, stamp: str) -> list[dict[str, Any]]:
    """Every track of ``definition`` that existed at ``stamp``, with its state then."""
    return _rows(
        db,
        """
        WITH last AS (
            SELECT h.track_id, max(h.seq) AS seq FROM history h
            JOIN tracks t ON t.id = h.track_id
            WHERE t.definition = ? AND h.at <= ?
            GROUP BY h.track_id
        )
        SELECT t.id, t.municipality_code, t.system_id, t.index_set, t.klik_task_id,
               h.to_state AS state, h.def_version
        FROM last
        JOIN history h ON h.track_id = last.track_id AND h.seq = last.seq
        JOIN tracks t ON t.id = last.track_id
        ORDER BY t.id
        """,
        [definition, stamp],
    )


#: The columns of a track that never change after it starts: its subject.
_SUBJECT_COLUMNS = (
    "t.id, t.definition, t.municipality_code, t.system_id, t.index_set, t.bob, t.klik_task_id,"
    " t.course, t.vendor_id"
)


def _tracks_as_of(
    db: Database,
    stamp: str,
    definition: str | None = None,
    open_due_before: str | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Every track (of ``definition``, or of all) that existed at ``stamp``, as it was then.

    Each has its subject columns and, as of ``stamp``: ``state``, ``def_version``, ``final``,
    ``fields``, ``entered_at`` and ``due``. With ``open_due_before`` (an ISO date) only the
    tracks open then whose due date then is earlier are returned: the overdue ones.

    A track's row is the replay of its whole history (``tracks.replay``; the audit checks it),
    and its ``updated_at`` is the instant of its last history row, so a track not changed
    after ``stamp`` is read from its row, due date included (the same fast path as the rollout
    report). Only the tracks changed after ``stamp`` have their history up to then replayed:
    fields merged, the entry time of the last row that entered a state, and the due date
    computed by the engine's rule (``engine.compute_due``) from those. Never is a column of
    such a track's current row used for its state then: a finished track's row has no due date.
    """
    where = " AND t.definition = :d" if definition else ""
    if scope is not None and not scope.everything:
        where += f" AND {scope.tracks('t')}"  # need-to-know: onboarding.visibility
    params: dict[str, Any] = {"d": definition, "at": stamp, "day": open_due_before}
    late = " AND t.final = 0 AND t.due < :day" if open_due_before else ""
    out = [
        {**r, "fields": json.loads(r["fields"])}
        for r in _rows(
            db,
            f"SELECT {_SUBJECT_COLUMNS}, t.state, t.def_version, t.final, t.fields,"
            f" t.entered_at, t.due FROM tracks t WHERE t.updated_at <= :at{where}{late}",
            params,
        )
    ]
    if db.execute("SELECT 1 FROM history WHERE at > ? LIMIT 1", [stamp]).fetchone():
        out += _replayed(db, stamp, where, params, open_due_before)
    out.sort(key=lambda t: t["id"])
    return out


def _replayed(
    db: Database, stamp: str, where: str, params: dict[str, Any], open_due_before: str | None
) -> list[dict[str, Any]]:
    """The tracks changed after ``stamp`` (but started by then), replayed up to it."""
    from onboarding.engine import NO_REENTRY, compute_due
    from onboarding.guards import GuardContext

    defs = _Defs(db)
    ctx = GuardContext(db.conn, clock.unstamp(stamp))
    # History is appended in time order per track (a step is never dated before the one
    # before it), so the rows at or before the instant are a prefix of each track's history.
    # CROSS JOIN keeps the tracks the outer loop: only the changed tracks' history is read
    # (through its (track_id, seq) key), not every history row with a lookup of its track.
    cur = db.conn.execute(
        f"SELECT {_SUBJECT_COLUMNS}, h.to_state, h.trigger, h.at, h.def_version, h.fields"
        " FROM tracks t CROSS JOIN history h ON h.track_id = t.id"
        f" WHERE t.updated_at > :at AND t.created_at <= :at{where} AND h.at <= :at"
        " ORDER BY t.id, h.seq",
        params,
    )
    n = len(_SUBJECT_COLUMNS.split(","))
    keys = [d[0] for d in cur.description][:n]
    out = []
    for _, rows in groupby(cur, key=lambda r: r[0]):
        history = list(rows)
        track: dict[str, Any] = dict(zip(keys, history[0][:n], strict=True))
        fields: dict[str, Any] = {}
        entered = history[0][n + 2]
        for _to, trigger, at, _v, changed in (r[n:] for r in history):
            if changed != "{}":
                fields.update(json.loads(changed))
            if trigger not in NO_REENTRY:
                entered = at
        state_name, def_version = history[-1][n], history[-1][n + 3]
        state = defs.get(track["definition"], def_version).state(state_name)
        due = None
        if state.due is not None and not state.final:
            # fromisoformat reads the stored form exactly as clock.unstamp does, 10x faster.
            moment = datetime.fromisoformat(entered)
            due = compute_due(ctx, state, {**track, "fields": fields}, moment)
        track.update(
            state=state_name,
            def_version=def_version,
            final=int(state.final),
            fields=fields,
            entered_at=entered,
            due=due.isoformat() if due else None,
        )
        if open_due_before and (state.final or not due or track["due"] >= open_due_before):
            continue
        out.append(track)
    return out


def _category(db: Database, text: str | None) -> str | None:
    """A category as the registry spells it (case-insensitive), or None for all."""
    if not text:
        return None
    known = list(registry.CATEGORIES) + [
        r[0]
        for r in db.execute("SELECT DISTINCT category FROM systems ORDER BY category").fetchall()
    ]
    for name in known:
        if name.casefold() == text.strip().casefold():
            return str(name)
    raise InputError(
        Message(
            "unknown category %(category)s: expected %(expected)s",
            {"category": repr(text), "expected": ", ".join(dict.fromkeys(known))},
        )
    )


def _category_order(name: str) -> tuple[int, str]:
    cats = registry.CATEGORIES
    return (cats.index(name) if name in cats else len(cats), name)
