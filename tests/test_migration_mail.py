"""Migration 005_mail: an outbox written by the previous schema upgrades in place."""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from onboarding import engine, outbox
from onboarding.db import (
    connect,
    current_schema_version,
    initialise,
    migrations,
    schema_version,
)
from onboarding.definitions import register_shipped
from onboarding.registry import seed
from tests.notify_support import act, connection_to_sapa, make_ready


def _downgrade_outbox(db: Database) -> None:
    """Turn a current database back into schema 4's shape: the outbox without level and
    handed_at, no settings table, 005 not recorded (what the previous release wrote)."""
    conn = db.conn
    conn.execute("ALTER TABLE outbox DROP COLUMN level")
    conn.execute("ALTER TABLE outbox DROP COLUMN handed_at")
    conn.execute("DROP TABLE settings")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = '005_mail'")
    conn.execute("PRAGMA user_version = 4")


def test_migration_mail_keeps_rows_and_ranks_ladders(tmp_path: Path) -> None:
    """Rows written under schema 4 keep ids, times and statuses; rungs get their level; the
    new columns and the superseded status exist afterwards."""
    db = connect(tmp_path / "old.db")
    initialise(db)
    seed(db)
    register_shipped(db)
    make_ready(db)
    tid = connection_to_sapa(db)
    outbox.materialise_all(db.conn)  # planned rows (issue 14) become rows, as schema 4 had
    db.conn.execute("UPDATE outbox SET status = 'sent' WHERE notification = 'reminder'")
    _downgrade_outbox(db)
    assert [m.name for m in migrations.pending(db)] == ["005_mail"]
    before = db.conn.execute(
        "SELECT id, notification, kind, status, due_at FROM outbox ORDER BY id"
    ).fetchall()
    assert any(n.startswith("overdue-") for _, n, *_ in before)

    assert initialise(db) == ["005_mail"]
    assert schema_version(db) == current_schema_version()  # 005 and every later one
    after = db.conn.execute(
        "SELECT id, notification, kind, status, due_at, level FROM outbox ORDER BY id"
    ).fetchall()
    assert [r[:5] for r in after] == before
    levels = {n: lvl for _, n, _, _, _, lvl in after}
    assert levels["reminder"] == 0
    assert levels["overdue-1"] == 1 and levels["overdue-3"] == 3
    db.conn.execute("UPDATE outbox SET status = 'superseded' WHERE id = ?", [after[0][0]])
    # The engine writes rows with their level after the upgrade.
    engine.advance(db, tid, "request_display", act("2021-08-10T09:00", "sapa-owner"))
    outbox.materialise_all(db.conn)
    new = db.conn.execute(
        "SELECT notification, level FROM outbox WHERE entry_seq ="
        " (SELECT max(entry_seq) FROM outbox WHERE track_id = ?)",
        [tid],
    ).fetchall()
    assert ("overdue-2", 2) in new
