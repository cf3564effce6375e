"""Reading and requeueing: the outbox as lists and rows, planned rows included.

What the CLI, the web pages and the sender's preview and forecast show (``list_rows``,
``get_row``, ``counts``) and what a coordinator may do to it (``retry``, ``retry_failed``).
Planned rows are shown as the rows they stand for, so a reader never sees the difference lean
writes made. Read-mostly and off the advance path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from onboarding import clock
from onboarding.db import Database, immediate
from onboarding.errors import InputError, NotFound, OnboardingError
from onboarding.i18n import Message, Term
from onboarding.outbox.claims import OUTBOX_COLUMNS, _dicts
from onboarding.outbox.declarations import STATUSES
from onboarding.outbox.plans import _PLAN_COLUMNS, _plan_rows, materialise_track

if TYPE_CHECKING:
    from onboarding.visibility import Scope


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many notifications there are per status, planned ones included (pending while
    their plan is open, cancelled after): what the rows written on entry used to count."""
    out: dict[str, int] = dict(
        conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
    )
    for is_open, n in conn.execute(
        "SELECT t.plan_id = p.id AND t.plan_open, sum(json_array_length(p.rows))"
        " FROM outbox_plan p JOIN tracks t ON t.id = p.track_id GROUP BY 1"
    ).fetchall():
        status = "pending" if is_open else "cancelled"
        out[status] = out.get(status, 0) + int(n or 0)
    return {k: v for k, v in out.items() if v}


#: What the lists show of a row's track (``t``): its municipality and system by name.
_SUBJECT_COLUMNS = """t.municipality_code, m.name AS municipality,
           CASE WHEN s.id IS NULL THEN NULL ELSE v.name || ' ' || s.name END AS system"""
_SUBJECT_JOINS = """
    LEFT JOIN municipalities m ON m.code = t.municipality_code
    LEFT JOIN systems s ON s.id = t.system_id
    LEFT JOIN vendors v ON v.id = s.vendor_id
"""

_LIST_SQL = f"""
    SELECT {", ".join("o." + c.strip() for c in OUTBOX_COLUMNS.split(","))},
           t.definition, {_SUBJECT_COLUMNS}
    FROM outbox o
    JOIN tracks t ON t.id = o.track_id{_SUBJECT_JOINS}"""


def list_rows(
    db: Database,
    statuses: Sequence[str] = (),
    track_id: int | None = None,
    limit: int | None = None,
    until: datetime | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows in due order, optionally only some statuses, one track, due by ``until``,
    only those ``scope`` may read (``onboarding.visibility``)."""
    for status in statuses:
        if status not in STATUSES:
            # The keys are listed: they are what --status takes.
            raise InputError(
                Message(
                    "unknown status %(status)s (statuses: %(statuses)s)",
                    {"status": repr(status), "statuses": ", ".join(STATUSES)},
                )
            )
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"o.status IN ({', '.join('?' for _ in statuses)})")
        params += list(statuses)
    if track_id is not None:
        where.append("o.track_id = ?")
        params.append(track_id)
    if until is not None:
        where.append("o.next_attempt_at <= ?")
        params.append(clock.stamp(until))
    if scope is not None and not scope.everything:
        where.append(scope.outbox("o"))
    sql = _LIST_SQL + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY o.due_at, o.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = _dicts(db.conn.execute(sql, params))
    planned = _planned(db.conn, statuses, track_id, until, scope=scope)
    if not planned:
        return rows
    rows = sorted(rows + planned, key=lambda r: (r["due_at"], r["id"]))
    return rows if limit is None else rows[:limit]


_PLAN_LIST_SQL = f"""
    SELECT {_PLAN_COLUMNS}, {_SUBJECT_COLUMNS}
    FROM outbox_plan p
    JOIN tracks t ON t.id = p.track_id{_SUBJECT_JOINS}"""


def _planned(
    conn: sqlite3.Connection,
    statuses: Sequence[str],
    track_id: int | None,
    until: datetime | None,
    row_id: int | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Planned rows as ``list_rows`` shows them: pending while their plan is open, cancelled
    once the entry was left (what the rows written on entry used to say); only of the tracks
    ``scope`` reads."""
    wanted = {"pending", "cancelled"} & set(statuses) if statuses else {"pending", "cancelled"}
    if not wanted:
        return []
    if row_id is not None:
        # A plan's id is the last id it holds: the first plan at or after the row's id.
        plans = conn.execute(
            _PLAN_LIST_SQL + " WHERE p.id >= ? ORDER BY p.id LIMIT 1", [row_id]
        ).fetchall()
    elif track_id is not None:
        plans = _track_plans(conn, track_id)
    else:
        where = ["1"]
        if wanted == {"pending"}:
            where.append("t.plan_id = p.id AND t.plan_open")
        if scope is not None and not scope.everything:
            where.append(scope.outbox("p"))
        plans = conn.execute(_PLAN_LIST_SQL + " WHERE " + " AND ".join(where)).fetchall()
    if (row_id is not None or track_id is not None) and scope is not None and not scope.everything:
        plans = [
            p
            for p in plans
            if conn.execute(
                f"SELECT 1 FROM outbox_plan p WHERE p.id = ? AND {scope.outbox('p')}", [p[0]]
            ).fetchone()
        ]
    stamp = None if until is None else clock.stamp(until)
    out = []
    for plan in plans:
        if ("pending" if plan[9] else "cancelled") not in wanted:
            continue
        extra = {
            "definition": plan[8],
            "municipality_code": plan[10],
            "municipality": plan[11],
            "system": plan[12],
        }
        for r in _plan_rows(conn, plan):
            if (stamp is None or r["next_attempt_at"] <= stamp) and (
                row_id is None or r["id"] == row_id
            ):
                out.append({**r, **extra})
    return out


def _track_plans(conn: sqlite3.Connection, track_id: int) -> list[Any]:
    """A track's plans, newest first, along its chain (the track row holds the head)."""
    out = []
    head = conn.execute("SELECT plan_id FROM tracks WHERE id = ?", [track_id]).fetchone()
    at = head[0] if head else None
    while at is not None:
        plan = conn.execute(_PLAN_LIST_SQL + " WHERE p.id = ?", [at]).fetchone()
        if plan is None:
            break
        out.append(plan)
        at = conn.execute("SELECT prev_id FROM outbox_plan WHERE id = ?", [at]).fetchone()[0]
    return out


def get_row(db: Database, row_id: int) -> dict[str, Any]:
    rows = _dicts(db.conn.execute(_LIST_SQL + " WHERE o.id = ?", [row_id]))
    if not rows:
        rows = _planned(db.conn, (), None, None, row_id=row_id)  # a planned row
    if not rows:
        raise NotFound("notification", str(row_id))
    return rows[0]


def retry(db: Database, row_id: int) -> dict[str, Any]:
    """Requeue one failed (or pending) row as if never tried: due again at its due time."""
    with immediate(db) as conn:
        row = conn.execute("SELECT status FROM outbox WHERE id = ?", [row_id]).fetchone()
        if row is None:
            planned = _planned(conn, ("pending",), None, None, row_id=row_id)
            if planned:  # a planned row is written out first, then requeued as any other
                materialise_track(conn, int(planned[0]["track_id"]))
            else:
                cancelled = _planned(conn, ("cancelled",), None, None, row_id=row_id)
                if cancelled:
                    raise _not_retried(row_id, "cancelled")
            row = conn.execute("SELECT status FROM outbox WHERE id = ?", [row_id]).fetchone()
        if row is None:
            raise NotFound("notification", str(row_id))
        if row[0] not in ("failed", "pending"):
            raise _not_retried(row_id, str(row[0]))
        conn.execute(_REQUEUE + " WHERE id = ?", [clock.stamp(clock.now()), row_id])
    return get_row(db, row_id)


def _not_retried(row_id: int, status: str) -> OnboardingError:
    """A notification that cannot be retried, its status as the reader's language says it
    (English: the key, as the text has always had it)."""
    from onboarding import i18n

    forms = {lang: i18n.pgettext(lang, "status", status) for lang in i18n.LANGUAGES}
    return OnboardingError(
        Message(
            "notification %(id)s is %(status)s: only a failed or pending one can be retried",
            {"id": str(row_id), "status": Term(status, {**forms, "en": status})},
        )
    )


def retry_failed(db: Database) -> int:
    """Requeue every failed row; return how many."""
    with immediate(db) as conn:
        cur = conn.execute(_REQUEUE + " WHERE status = 'failed'", [clock.stamp(clock.now())])
        return int(cur.rowcount)


_REQUEUE = (
    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = due_at,"
    " claimed_by = NULL, lease_until = NULL, updated_at = ?"
)
