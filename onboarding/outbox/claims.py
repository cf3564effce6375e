"""Claiming and recording: the exactly-once core the sender (``notifications.runner``) calls.

Claim due rows under a lease (``BEGIN IMMEDIATE``, planned rows written out first), take back
rows whose lease ran out, supersede lower rungs, re-check and charge each row right before its
message goes (``hand_over``), and record the result. A row is handed over and its result recorded
only while the runner still holds its claim, which is what makes a message go at most once but
for the one in flight at a crash.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from onboarding import clock
from onboarding.db import Database, immediate
from onboarding.outbox.declarations import NOT_ENTRIES
from onboarding.outbox.plans import _open_plan, _plan_rows, materialise_due

OUTBOX_COLUMNS = (
    "id, track_id, entry_seq, state, notification, kind, level, template, recipients, on_leave,"
    " cancel_on, due_date, due_at, status, attempts, next_attempt_at, claimed_by, lease_until,"
    " handed_at, sent_at, sent_to, message_id, last_error, created_at, updated_at"
)


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    keys = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(keys, r, strict=True))
        for key in ("recipients", "cancel_on", "sent_to"):
            if key in row and isinstance(row[key], str):
                row[key] = json.loads(row[key])
        out.append(row)
    return out


def reclaim_stale(db: Database, now: datetime, max_attempts: int) -> int:
    """Put back rows whose runner's lease ran out (it died or hung); return how many.

    A row its runner never handed to the transport (``handed_at`` empty) goes back to pending
    as if never claimed: no attempt, no error. A row handed over and never recorded may already
    have been delivered: that message is the one possible duplicate (it carries the same
    Message-ID), its attempt counts, and a row that has used all its attempts this way fails.
    """
    stamp = clock.stamp(now)
    with immediate(db) as conn:
        untried = conn.execute(
            "UPDATE outbox SET status = 'pending', claimed_by = NULL, lease_until = NULL,"
            " updated_at = ? WHERE status = 'sending' AND lease_until < ? AND handed_at IS NULL",
            [stamp, stamp],
        )
        handed = conn.execute(
            "UPDATE outbox SET status = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END,"
            " last_error = 'the runner ' || coalesce(claimed_by, '?') || ' stopped while sending"
            " (lease ran out); the message may have been delivered',"
            " claimed_by = NULL, lease_until = NULL, handed_at = NULL, updated_at = ?"
            " WHERE status = 'sending' AND lease_until < ?",
            [max_attempts, stamp, stamp],
        )
        return int(untried.rowcount) + int(handed.rowcount)


def claim(
    db: Database, at: datetime, now: datetime, runner: str, limit: int, lease: timedelta
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` rows due at ``at``, in due order, for ``lease``.

    One ``BEGIN IMMEDIATE`` transaction: two runners never claim the same row. A claim is not
    an attempt; ``hand_over`` charges one when the message actually goes to the transport.
    """
    with immediate(db) as conn:
        # Planned reminders and escalations that have fallen due become rows first (same
        # transaction, same ids and exactly-once key as if written on entry).
        materialise_due(conn, clock.stamp(at), limit)
        cur = conn.execute(
            "UPDATE outbox SET status = 'sending', claimed_by = ?, lease_until = ?,"
            " handed_at = NULL, updated_at = ?"
            " WHERE id IN (SELECT id FROM outbox WHERE status = 'pending'"
            # In the partial index's order (outbox_ready), so a claim reads ``limit`` rows
            # whatever the backlog; ordering by due_at would sort every due row per batch.
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?)"
            f" RETURNING {OUTBOX_COLUMNS}",
            [runner, clock.stamp(now + lease), clock.stamp(now), clock.stamp(at), limit],
        )
        rows = _dicts(cur)
    rows.sort(key=lambda r: (r["due_at"], r["id"]))
    return rows


def cancel_reason(conn: sqlite3.Connection, row: Mapping[str, Any]) -> str | None:
    """Why a row must not be sent any more, or None.

    * the track has left the row's state entry and the row is cancelled by leaving
      (``on_leave: cancel``): the step is done (a field change or a migration is not leaving);
    * a trigger in the row's ``cancel_on`` has fired since the entry (kept notices too).
    """
    track_id, seq = row["track_id"], row["entry_seq"]
    if row["on_leave"] == "cancel":
        left = conn.execute(
            "SELECT 1 FROM history WHERE track_id = ? AND seq > ? AND trigger NOT IN (?, ?)"
            " LIMIT 1",
            [track_id, seq, *NOT_ENTRIES],
        ).fetchone()
        if left is not None:
            return "the step was done first"
    if row["cancel_on"]:
        fired = conn.execute(
            "SELECT trigger FROM history WHERE track_id = ? AND seq > ?"
            " AND trigger IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT 1",
            [track_id, seq, json.dumps(list(row["cancel_on"]))],
        ).fetchone()
        if fired is not None:
            return f"cancelled by {fired[0]!r} before it was sent"
    return None


#: Kinds a higher rung of the same state entry can supersede (notices always go).
SUPERSEDABLE = ("reminder", "escalation")


def superseding(
    conn: sqlite3.Connection, row: Mapping[str, Any], by: datetime
) -> dict[str, Any] | None:
    """The row that makes ``row`` unnecessary if ``row`` is sent at ``by``, or None.

    The supersede rule: a reminder or escalation R is superseded by another reminder or
    escalation S of the same track and state entry with a higher ``level`` (a reminder is 0,
    escalation rung *k* is *k*) that is due by ``by`` and pending, being sent or sent, and
    whose recipients include all of R's. The recipient then gets S only: one message per
    recipient per step, the highest rung due. The highest such S is returned.

    One lookup through the (track_id, entry_seq, notification) key: a few rows per entry.
    """
    if row["kind"] not in SUPERSEDABLE:
        return None
    mine = set(row["recipients"])
    found = conn.execute(
        "SELECT id, notification, level, recipients FROM outbox"
        " WHERE track_id = ? AND entry_seq = ? AND level > ?"
        " AND kind IN ('reminder', 'escalation') AND status IN ('pending', 'sending', 'sent')"
        " AND next_attempt_at <= ? ORDER BY level DESC, id",
        [row["track_id"], row["entry_seq"], row["level"], clock.stamp(by)],
    ).fetchall()
    candidates = [(-level, row_id, name, set(json.loads(to))) for row_id, name, level, to in found]
    candidates += [
        (-r["level"], r["id"], r["notification"], set(r["recipients"]))
        for r in _planned_of_entry(conn, row["track_id"], row["entry_seq"])
        if r["level"] > row["level"]
        and r["kind"] in SUPERSEDABLE
        and r["due_at"] <= clock.stamp(by)
    ]
    for neg_level, row_id, name, to in sorted(candidates, key=lambda c: (c[0], c[1])):
        if mine <= to:
            return {"id": row_id, "notification": name, "level": -neg_level}
    return None


def _planned_of_entry(conn: sqlite3.Connection, track_id: int, seq: int) -> list[dict[str, Any]]:
    """The planned (not yet written) rows of one current state entry."""
    plan = _open_plan(conn, track_id)
    return _plan_rows(conn, plan) if plan is not None and plan[2] == seq else []


def supersede_claimed(
    db: Database, rows: Sequence[dict[str, Any]], at: datetime, runner: str, now: datetime
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Record the claimed rows that a higher rung due at ``at`` supersedes (``superseding``)
    as ``superseded``, never sent; return the rows still to send and (row, superseded by) pairs.

    Runs on the claimed batch only, one indexed lookup per row: O(batch), whatever the backlog.
    A row whose claim this runner no longer holds is left to its new holder.
    """
    if not any(r["kind"] in SUPERSEDABLE for r in rows):
        return list(rows), []
    keep: list[dict[str, Any]] = []
    dropped: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with immediate(db) as conn:
        for row in rows:
            by = superseding(conn, row, at)
            if by is None:
                keep.append(row)
                continue
            cur = conn.execute(
                "UPDATE outbox SET status = 'superseded', last_error = ?, claimed_by = NULL,"
                " lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND status = 'sending' AND claimed_by = ?",
                [
                    f"superseded by #{by['id']} ({by['notification']}): a higher rung for"
                    " the same recipients is due",
                    clock.stamp(now),
                    row["id"],
                    runner,
                ],
            )
            if cur.rowcount == 1:
                dropped.append((row, by))
    return keep, dropped


def hand_over(
    db: Database,
    rows: Sequence[Mapping[str, Any]],
    runner: str,
    now: datetime,
    lease: timedelta,
    first: Callable[[sqlite3.Connection], object] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Right before one message goes to the transport: re-check, renew and charge its rows.

    One ``BEGIN IMMEDIATE`` transaction, so no step can be recorded between the check and the
    handover: a row whose track left its state entry (or whose ``cancel_on`` fired) is
    cancelled unsent; every other row still claimed by ``runner`` gets a fresh lease,
    ``handed_at`` and one more attempt. Returns (rows to send, with their new attempt count;
    (row, reason) cancelled). A row no longer ours (our lease ran out and another runner took
    it, or an advance cancelled it) is in neither.

    ``first(conn)`` runs at the start of the same transaction: the results of the messages
    handed over before (``outbox_results.Ledger``), so they cost no commit of their own.
    """
    stamp = clock.stamp(now)
    until = clock.stamp(now + lease)
    handed: list[dict[str, Any]] = []
    cancelled: list[tuple[dict[str, Any], str]] = []
    with immediate(db) as conn:
        if first is not None:
            first(conn)
        for row in rows:
            why = cancel_reason(conn, row)
            if why is not None:
                cur = conn.execute(
                    "UPDATE outbox SET status = 'cancelled', last_error = ?, claimed_by = NULL,"
                    " lease_until = NULL, handed_at = NULL, updated_at = ?"
                    " WHERE id = ? AND status = 'sending' AND claimed_by = ?",
                    [why, stamp, row["id"], runner],
                )
                if cur.rowcount == 1:
                    cancelled.append((dict(row), why))
                continue
            got = conn.execute(
                "UPDATE outbox SET lease_until = ?, handed_at = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ? AND status = 'sending' AND claimed_by = ?"
                " RETURNING attempts",
                [until, stamp, stamp, row["id"], runner],
            ).fetchone()
            if got is not None:
                handed.append({**row, "attempts": int(got[0]), "handed_at": stamp})
    return handed, cancelled


def record_sent(
    db: Database,
    row_id: int,
    runner: str,
    now: datetime,
    sent_to: Sequence[str],
    message_id: str,
    note: str | None = None,
) -> bool:
    cur = db.conn.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, sent_to = ?, message_id = ?,"
        " last_error = ?, claimed_by = NULL, lease_until = NULL, handed_at = NULL,"
        " updated_at = ? WHERE id = ? AND status = 'sending' AND claimed_by = ?",
        [
            clock.stamp(now),
            json.dumps(list(sent_to)),
            message_id,
            note,
            clock.stamp(now),
            row_id,
            runner,
        ],
    )
    return cur.rowcount == 1


def record_failure(
    db: Database,
    row_id: int,
    runner: str,
    now: datetime,
    error: str,
    retry_at: datetime | None,
    max_attempts: int,
    *,
    charged: bool = True,
) -> str:
    """Record a failed attempt: pending again at ``retry_at`` (None: permanent) or failed once
    the attempts are used up. Returns the row's new status ("lost": the row is not ours now).

    ``charged=False``: the message never reached the transport (it could not be built after
    ``hand_over``), so the attempt ``hand_over`` charged is taken back."""
    # Every expression of an UPDATE sees the row as it was: the attempts are computed twice.
    attempts = "attempts - CASE WHEN ? AND handed_at IS NOT NULL THEN 1 ELSE 0 END"
    cur = db.conn.execute(
        f"UPDATE outbox SET attempts = {attempts},"
        f" status = CASE WHEN ? IS NULL OR {attempts} >= ? THEN 'failed' ELSE 'pending' END,"
        " next_attempt_at = coalesce(?, next_attempt_at), last_error = ?,"
        " claimed_by = NULL, lease_until = NULL, handed_at = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'sending' AND claimed_by = ? RETURNING status",
        [
            int(not charged),
            None if retry_at is None else 1,
            int(not charged),
            max_attempts,
            None if retry_at is None else clock.stamp(retry_at),
            error[:2000],
            clock.stamp(now),
            row_id,
            runner,
        ],
    )
    row = cur.fetchone()
    return str(row[0]) if row else "lost"


def record_cancelled(db: Database, row_id: int, runner: str, now: datetime, why: str) -> bool:
    cur = db.conn.execute(
        "UPDATE outbox SET status = 'cancelled', last_error = ?, claimed_by = NULL,"
        " lease_until = NULL, handed_at = NULL, updated_at = ? WHERE id = ?"
        " AND status = 'sending' AND claimed_by = ?",
        [why, clock.stamp(now), row_id, runner],
    )
    return cur.rowcount == 1


def release(db: Database, row_id: int, runner: str, now: datetime, note: str | None = None) -> bool:
    """Give a claimed row back untouched: pending, due as before, its attempts as before the
    claim (an attempt ``hand_over`` charged is taken back: the server refused the session, not
    this message). ``note`` (why) goes to the row's error column."""
    cur = db.conn.execute(
        "UPDATE outbox SET status = 'pending',"
        " attempts = attempts - CASE WHEN handed_at IS NULL THEN 0 ELSE 1 END,"
        " last_error = coalesce(?, last_error), claimed_by = NULL, lease_until = NULL,"
        " handed_at = NULL, updated_at = ? WHERE id = ? AND status = 'sending' AND claimed_by = ?",
        [note if note is None else note[:2000], clock.stamp(now), row_id, runner],
    )
    return cur.rowcount == 1


def instance_token(db: Database) -> str:
    """This database's random token (part of every Message-ID)."""
    row = db.conn.execute("SELECT token FROM outbox_instance WHERE id = 1").fetchone()
    return str(row[0]) if row else "0"


def message_key(row: Mapping[str, Any], token: str) -> str:
    """The left part of a row's Message-ID: the same for every attempt at the same row."""
    return f"t{row['track_id']}.e{row['entry_seq']}.{row['notification']}.{token}"


def next_due(db: Database) -> datetime | None:
    """When the earliest pending row becomes due (or a lease runs out): the scheduler's wake-up."""
    row = db.conn.execute(
        "SELECT min(t) FROM (SELECT min(next_attempt_at) AS t FROM outbox WHERE status = 'pending'"
        " UNION ALL SELECT min(lease_until) FROM outbox WHERE status = 'sending'"
        # The earliest open plan (a left plan not yet closed by a sweep is passed over).
        " UNION ALL SELECT * FROM (SELECT p.next_at FROM outbox_plan p"
        " JOIN tracks t ON t.id = p.track_id WHERE p.next_at IS NOT NULL"
        " AND t.plan_id = p.id AND t.plan_open ORDER BY p.next_at LIMIT 1))"
    ).fetchone()
    return clock.unstamp(row[0]) if row and row[0] else None
