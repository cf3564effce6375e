"""A database written before lean writes (schema 7, commit b4ef440: every reminder and
escalation written as an outbox row on entry; tests/data/make_schema7_db.py) upgrades in place
with ``onboarding init``: its pending, sent, failed and cancelled rows keep their ids, statuses
and times, the pending reminders still go out exactly once, and new rows never reuse an id."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from onboarding import outbox
from onboarding.db import current_schema_version, open_existing
from tests.support import ok, query

SCHEMA7 = Path(__file__).parent / "data" / "schema7.db"
ROWS = "SELECT id, track_id, entry_seq, notification, status, attempts, due_at FROM outbox"



def test_upgrade_schema7_keeps_outbox_rows_and_sends_pending_once(
    tmp_path: Path, runner: CliRunner
) -> None:
    """init upgrades a schema-7 file: the same outbox rows (all four statuses), the pending
    ones listed, claimed and sent once; a later advance plans new rows under fresh ids."""
    db_path = tmp_path / "schema7.db"
    shutil.copyfile(SCHEMA7, db_path)
    assert query(db_path, "PRAGMA user_version") == [(7,)]
    before = query(db_path, ROWS + " ORDER BY id")
    assert {r[4] for r in before} == {"pending", "sent", "failed", "cancelled"}
    pending = {r[0] for r in before if r[4] == "pending"}

    ok(runner, db_path, "init")
    assert query(db_path, "PRAGMA user_version") == [(current_schema_version(),)]
    assert query(db_path, ROWS + " ORDER BY id") == before
    assert ok(runner, db_path, "audit", "verify").stdout.startswith("audit trail intact")

    db = open_existing(db_path)
    try:
        listed = {r["id"] for r in outbox.list_rows(db, ("pending",))}
        assert listed == pending
        # Everything pending is due by the end of September: sent once, as before the upgrade.
        at = outbox.clock.parse_time("2021-09-30T12:00")
        claimed = outbox.claim(db, at, at, "upgrade-test", 100, outbox.timedelta(minutes=5))
        assert {r["id"] for r in claimed} == pending
        assert outbox.claim(db, at, at, "other", 100, outbox.timedelta(minutes=5)) == []
    finally:
        db.close()

    # Track 2 (Køge) moves on: the new entry's rows get ids after every existing row.
    ok(runner, db_path, "track", "advance", "2", "request_display", "--role", "sapa-owner",
       "--at", "2021-10-01T10:00")
    db = open_existing(db_path)
    try:
        new = [r for r in outbox.list_rows(db, track_id=2) if r["entry_seq"] == 4]
        assert new and min(r["id"] for r in new) > max(r[0] for r in before)
        assert len({r["id"] for r in outbox.list_rows(db)}) == len(outbox.list_rows(db))
    finally:
        db.close()
