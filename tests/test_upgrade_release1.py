"""A database written by the first release (schema 4, commit 8cbc3ad: a ready system, a Køge
connection at step 4, reminders sent, failed, pending and cancelled) upgrades in place with
``onboarding init``: tracks, history, hash chain and outbox rows intact, and it runs on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from onboarding.db import current_schema_version
from tests.support import ok, ok_json, query

RELEASE1 = Path(__file__).parent / "data" / "release1.db"



def test_upgrade_release1_database_keeps_tracks_history_chain_and_outbox(
    tmp_path: Path, runner: CliRunner
) -> None:
    """init upgrades the first release's file: same tracks, history rows and hashes, an intact
    chain, the same outbox rows and statuses (rungs ranked), and the tracks advance after."""
    db = tmp_path / "release1.db"
    shutil.copyfile(RELEASE1, db)
    assert query(db, "PRAGMA user_version") == [(4,)]
    tracks = query(db, "SELECT id, definition, def_version, state, version, fields FROM tracks")
    history = query(db, "SELECT id, track_id, seq, to_state, trigger, at, hash FROM history")
    outbox = query(db, "SELECT id, notification, status, attempts, due_at FROM outbox")
    assert {s for _, _, s, _, _ in outbox} >= {"sent", "failed", "pending", "cancelled"}

    ok(runner, db, "init")
    assert query(db, "PRAGMA user_version") == [(current_schema_version(),)]
    assert query(db, "SELECT id, definition, def_version, state, version, fields FROM tracks") \
        == tracks
    assert query(db, "SELECT id, track_id, seq, to_state, trigger, at, hash FROM history") \
        == history
    assert query(db, "SELECT id, notification, status, attempts, due_at FROM outbox") == outbox
    levels = dict(query(db, "SELECT notification, max(level) FROM outbox GROUP BY 1"))
    assert levels["reminder"] == 0 and levels["overdue-3"] == 3
    assert ok(runner, db, "audit", "verify").stdout.startswith("audit trail intact")

    shown = ok_json(runner, db, "track", "show", "2")
    assert shown["state"] == "sapa_request"
    ok(runner, db, "track", "advance", "2", "request_display", "--role", "sapa-owner",
       "--at", "2021-08-20T10:00")
    assert ok(runner, db, "audit", "verify").stdout.startswith("audit trail intact")
    pending = json.loads(ok(runner, db, "reminders", "list", "--pending", "--json").stdout)
    assert pending and all(r["state"] != "sapa_request" or r["kind"] == "notice" for r in pending)
