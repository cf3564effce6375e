"""Lean writes (issue 14): an advance writes the track row, one history row, the audit head
and the notices of the state it enters; a state's reminders and escalations are one planned
row that the sender writes out when they fall due, and leaving the state writes nothing for
them. What anyone sees (ids, statuses, times) is what the rows written on entry showed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlite_utils import Database

from onboarding import engine, outbox
from onboarding.errors import OnboardingError
from tests.notify_support import act, connection_to_sapa, make_ready, t


def _outbox_table(db: Database) -> list[tuple[Any, ...]]:
    return db.conn.execute("SELECT * FROM outbox ORDER BY id").fetchall()


def test_lean_advance_writes_only_notices_and_leaving_changes_no_outbox_row(
    db: Database,
) -> None:
    """Step 4 entered writes its notice only (not its reminder and three escalations); step 4
    left writes and changes no outbox row, yet its reminders read as cancelled."""
    make_ready(db)
    tid = connection_to_sapa(db)  # entering sapa_request: notice, reminder, 3 escalations
    table = _outbox_table(db)
    assert [(r[3], r[4]) for r in table if r[1] == tid] == [("sapa_request", "sapa-notice")]
    listed = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)
              if r["state"] == "sapa_request"}
    assert {r["status"] for r in listed.values()} == {"pending"}

    engine.advance(db, tid, "request_display", act("2021-06-04T09:00", "sapa-owner"))
    after = _outbox_table(db)
    assert [r for r in after if r[1] == tid and r[3] == "sapa_request"] == [
        r for r in table if r[1] == tid and r[3] == "sapa_request"
    ]  # leaving changed no row
    left = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)
            if r["state"] == "sapa_request"}
    assert {n: r["id"] for n, r in left.items()} == {n: r["id"] for n, r in listed.items()}
    assert left["sapa-notice"]["status"] == "pending"
    recorded = db.conn.execute(
        "SELECT recorded_at FROM history WHERE track_id = ? AND trigger = 'request_display'",
        [tid],
    ).fetchone()[0]
    for name in ("reminder", "overdue-1", "overdue-2", "overdue-3"):
        assert (left[name]["status"], left[name]["updated_at"]) == ("cancelled", recorded)
    assert outbox.counts(db.conn)["cancelled"] >= 4


def test_lean_claim_writes_due_rows_out_under_the_ids_shown(db: Database) -> None:
    """The sender's claim writes the planned rows that are due as outbox rows, with the ids
    and times listed before, claims them once, and leaves the later ones planned."""
    make_ready(db)
    tid = connection_to_sapa(db)
    pending = {r["notification"]: r for r in outbox.list_rows(db, ("pending",), track_id=tid)}
    at = t("2021-08-19T09:00")  # notice, reminder and overdue-1 due; overdue-2 and -3 later
    assert outbox.next_due(db) == t("2021-08-13T08:00")
    claimed = outbox.claim(db, at, at, "lean-test", 50, timedelta(minutes=5))
    assert {r["notification"]: r["id"] for r in claimed} == {
        n: pending[n]["id"] for n in ("sapa-notice", "reminder", "overdue-1")
    }
    assert {r["notification"]: r["due_at"] for r in claimed} == {
        n: pending[n]["due_at"] for n in ("sapa-notice", "reminder", "overdue-1")
    }
    assert outbox.claim(db, at, at, "other", 50, timedelta(minutes=5)) == []
    still = {r["notification"]: r for r in outbox.list_rows(db, ("pending",), track_id=tid)}
    assert {n: r["id"] for n, r in still.items()} == {
        n: pending[n]["id"] for n in ("overdue-2", "overdue-3")
    }
    assert outbox.next_due(db) == at + timedelta(minutes=5)  # the lease, before overdue-2


def test_lean_planned_row_can_be_previewed_and_retried_by_id(db: Database) -> None:
    """A planned reminder is found by its id (preview) and a retry writes it out pending;
    a planned row its step left is cancelled and cannot be retried."""
    make_ready(db)
    tid = connection_to_sapa(db)
    reminder = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)}["reminder"]
    assert outbox.get_row(db, reminder["id"])["notification"] == "reminder"
    again = outbox.retry(db, reminder["id"])
    assert (again["id"], again["status"], again["due_at"]) == (
        reminder["id"], "pending", reminder["due_at"]
    )
    other = connection_to_sapa(db, municipality="Aarhus")
    ladder = {r["notification"]: r for r in outbox.list_rows(db, track_id=other)}["overdue-2"]
    engine.advance(db, other, "request_display", act("2021-06-04T09:00", "sapa-owner"))
    with pytest.raises(OnboardingError, match="is cancelled"):
        outbox.retry(db, ladder["id"])


def test_lean_field_change_writes_the_entry_out_and_moves_it(db: Database) -> None:
    """``track set`` of the date a step's due date follows writes the planned rows out and
    moves them, same ids; the rows the next entry plans get ids after every earlier one."""
    make_ready(db)
    tid = connection_to_sapa(db)
    before = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)
              if r["state"] == "sapa_request"}
    engine.set_fields(db, tid, {"connection_date": "2021-10-01"}, act("2021-06-05T09:00"))
    after = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)
             if r["state"] == "sapa_request"}
    assert {n: r["id"] for n, r in after.items()} == {n: r["id"] for n, r in before.items()}
    assert after["overdue-1"]["due_at"] == t("2021-09-20T08:00").strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    engine.advance(db, tid, "request_display", act("2021-06-06T09:00", "sapa-owner"))
    newest = [r for r in outbox.list_rows(db, track_id=tid) if r["state"] == "display_opening"]
    assert newest and min(r["id"] for r in newest) > max(r["id"] for r in after.values())
