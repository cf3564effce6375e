"""Reminders and escalations not yet due: the planner and the stored plans (issue 14).

Entering a state stores the reminders and escalations it schedules as one ``outbox_plan`` row
(ids, names, due times); the ``_Planner`` computes those due times and row values once per
(rule, due date, entry time). Plans are written out as outbox rows when they fall due
(``materialise_due``, inside the claim's transaction) or before a change touches them
(``materialise_track``), under the ids reserved for them, and read as the rows they stand for
(``_plan_rows``). Separate from scheduling because the sender and the listings need it too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from onboarding import clock
from onboarding.outbox.cache import definition, state_rules
from onboarding.outbox.declarations import Rule
from onboarding.outbox.entries import _left_at


class _Planner:
    """Due times and JSON of state entries; repeated (rule, due, entry) work is done once, as
    a bulk transition enters the same state with the same dates for many tracks. One per
    process (``_PLANNER``), emptied when it grows large (a server runs for weeks)."""

    LIMIT = 20_000

    def __init__(self) -> None:
        self.times: dict[tuple[Rule, str | None, str], str | None] = {}
        self.sets: dict[
            tuple[int, str | None, str], tuple[tuple[Rule, ...], tuple[tuple[Rule, str], ...]]
        ] = {}
        self.json: dict[tuple[str, ...], str] = {}

    def _json(self, items: tuple[str, ...]) -> str:
        text = self.json.get(items)
        if text is None:
            text = self.json[items] = json.dumps(list(items))
        return text

    def _when(self, rule: Rule, due: str | None, entered: str) -> str | None:
        key = (rule, due, entered)
        if key not in self.times:
            if len(self.times) >= self.LIMIT:
                self.times.clear()
            # Stored stamps end in "Z", which fromisoformat reads (and faster than strptime).
            moment = rule.due_at(
                date.fromisoformat(due) if due else None, datetime.fromisoformat(entered)
            )
            self.times[key] = None if moment is None else clock.stamp(moment)
        return self.times[key]

    def timed(
        self, rule_set: tuple[Rule, ...], due: str | None, entered: str
    ) -> tuple[tuple[Rule, str], ...]:
        """(rule, due time) of the rules that have a time for this entry, in rule order:
        one lookup per state entry (rule sets are cached per definition, kept in the value)."""
        key = (id(rule_set), due, entered)
        found = self.sets.get(key)
        if found is None or found[0] is not rule_set:
            if len(self.sets) >= self.LIMIT:
                self.sets.clear()
            timed = tuple(
                (rule, at)
                for rule in rule_set
                if (at := self._when(rule, due, entered)) is not None
            )
            found = self.sets[key] = (rule_set, timed)
        return found[1]

    def rows(
        self,
        track_id: int,
        seq: int,
        state: str,
        rule_set: Iterable[Rule],
        due: str | None,
        entered: str,
        now: str,
    ) -> tuple[list[tuple[Any, ...]], set[str]]:
        """Upsert parameters for one state entry's notifications, and the names computed."""
        params: list[tuple[Any, ...]] = []
        names: set[str] = set()
        for rule in rule_set:
            at = self._when(rule, due, entered)
            if at is None:
                continue
            names.add(rule.name)
            params.append(self.row(track_id, seq, state, rule, due, at, now))
        return params, names

    def row(
        self, track_id: int, seq: int, state: str, rule: Rule, due: str | None, at: str, now: str
    ) -> tuple[Any, ...]:
        """One row's values, in ``_UPSERT_WITH_ID``'s order after the id."""
        return (
            track_id,
            seq,
            state,
            rule.name,
            rule.kind,
            rule.rank,
            rule.template,
            self._json(rule.to),
            rule.on_leave,
            self._json(rule.cancel_on),
            due,
            at,
            at,
            now,
            now,
        )


_PLANNER = _Planner()

_INSERT_WITH_ID = (
    "INSERT INTO outbox (id, track_id, entry_seq, state, notification, kind, level, template,"
    " recipients, on_leave, cancel_on, due_date, due_at, next_attempt_at, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _compact(rows: Iterable[Sequence[Any]]) -> str:
    """A plan's rows as stored: ``[[id,"name","due_at"],...]`` (names and stamps need no
    escaping: ``_NAME`` and ``clock.stamp``), without json.dumps on the write path."""
    return "[" + ",".join(f'[{r[0]},"{r[1]}","{r[2]}"]' for r in rows) + "]"


def _next_id(conn: sqlite3.Connection) -> int:
    """The next free outbox id: after every outbox row and every planned one. A plan's id is
    the last id it holds, so both maxima are one step down each table's rowid tree; the write
    lock (``BEGIN IMMEDIATE``) keeps two writers from taking the same ids."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM outbox), 0),"
        " coalesce((SELECT max(id) FROM outbox_plan), 0))"
    ).fetchone()
    return int(row[0]) + 1


_PLAN_COLUMNS = (
    "p.id, p.track_id, p.entry_seq, p.state, p.def_version, p.due_date, p.made_at, p.rows,"
    " t.definition, t.plan_id = p.id AND t.plan_open"
)


def _plan_rows(
    conn: sqlite3.Connection, plan: Sequence[Any], only: Iterable[Sequence[Any]] | None = None
) -> list[dict[str, Any]]:
    """The outbox rows a plan (``_PLAN_COLUMNS``) stands for, as ``list_rows`` returns rows:
    pending while it is the track's open plan, cancelled (when the entry was left) after."""
    _, track_id, seq, state, version, due, made, rows, name, is_open = plan[:10]
    items = list(only) if only is not None else json.loads(rows)
    if not items:
        return []
    by_name = {r.name: r for r in state_rules(definition(conn, name, int(version)), state)}
    left = None if is_open else _left_at(conn, int(track_id), int(seq)) or made
    out = []
    for row_id, notification, at in items:
        rule = by_name.get(notification)
        if rule is None:  # cannot happen: a stored version's rules never change
            continue
        out.append(
            {
                "id": int(row_id),
                "track_id": int(track_id),
                "entry_seq": int(seq),
                "state": state,
                "notification": notification,
                "kind": rule.kind,
                "level": rule.rank,
                "template": rule.template,
                "recipients": list(rule.to),
                "on_leave": rule.on_leave,
                "cancel_on": list(rule.cancel_on),
                "due_date": due,
                "due_at": at,
                "status": "pending" if is_open else "cancelled",
                "attempts": 0,
                "next_attempt_at": at,
                "claimed_by": None,
                "lease_until": None,
                "handed_at": None,
                "sent_at": None,
                "sent_to": None,
                "message_id": None,
                "last_error": None,
                "created_at": made,
                "updated_at": made if is_open else left,
            }
        )
    return out


def _write_out(conn: sqlite3.Connection, plan: Sequence[Any], until: str | None) -> int:
    """Write an open plan's rows due by ``until`` (None: all) as pending outbox rows, with
    their ids, and keep the rest planned."""
    rows = json.loads(plan[7])
    due = [r for r in rows if until is None or r[2] <= until]
    rest = [r for r in rows if not (until is None or r[2] <= until)]
    values = [
        (
            r["id"],
            r["track_id"],
            r["entry_seq"],
            r["state"],
            r["notification"],
            r["kind"],
            r["level"],
            r["template"],
            _PLANNER._json(tuple(r["recipients"])),
            r["on_leave"],
            _PLANNER._json(tuple(r["cancel_on"])),
            r["due_date"],
            r["due_at"],
            r["due_at"],
            r["created_at"],
            r["created_at"],
        )
        for r in _plan_rows(conn, plan, due)
    ]
    if values:
        conn.executemany(_INSERT_WITH_ID, values)
    conn.execute(
        "UPDATE outbox_plan SET rows = ?, next_at = ? WHERE id = ?",
        [_compact(rest), min((r[2] for r in rest), default=None), plan[0]],
    )
    return len(values)


def materialise_due(conn: sqlite3.Connection, at: str, limit: int) -> int:
    """Write out the planned rows due by ``at`` of up to ``limit`` open plans, earliest first
    (inside the claim's transaction): every plan taken has a row due by ``at``, so the
    ``limit`` earliest due rows are then all outbox rows and the claim keeps its due order.
    A plan its track has left is closed on the way (its rows stay cancelled, never due)."""
    written = taken = 0
    while taken < limit:
        asked = limit - taken
        plans = conn.execute(
            f"SELECT {_PLAN_COLUMNS} FROM outbox_plan p JOIN tracks t ON t.id = p.track_id"
            " WHERE p.next_at <= ? ORDER BY p.next_at, p.id LIMIT ?",
            [at, asked],
        ).fetchall()
        closed = [(p[0],) for p in plans if not p[9]]
        if closed:  # left plans leave the index for good: a later sweep never reads them
            conn.executemany("UPDATE outbox_plan SET next_at = NULL WHERE id = ?", closed)
        written += sum(_write_out(conn, p, at) for p in plans if p[9])
        taken += len(plans) - len(closed)
        if len(plans) < asked:
            break  # no due plan is left
    return written


def _open_plan(conn: sqlite3.Connection, track_id: int) -> Any:
    return conn.execute(
        f"SELECT {_PLAN_COLUMNS} FROM tracks t JOIN outbox_plan p ON p.id = t.plan_id"
        " WHERE t.id = ? AND t.plan_open",
        [track_id],
    ).fetchone()


def materialise_track(conn: sqlite3.Connection, track_id: int) -> int:
    """Write out every planned row of the track's current entry (before a field change or a
    migration recomputes them, or a retry touches one)."""
    plan = _open_plan(conn, track_id)
    return _write_out(conn, plan, None) if plan is not None else 0


def materialise_all(conn: sqlite3.Connection) -> int:
    """Write out every planned row of every current entry (tests that poke the outbox table)."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM tracks WHERE plan_open AND plan_id IS NOT NULL"
        ).fetchall()
    ]
    return sum(materialise_track(conn, i) for i in ids)
