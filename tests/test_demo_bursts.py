"""The demo's mail has no bursts: one message per recipient per track and state entry per run.

Issue 10: in the demo, a track entering a step already late (or a weekly run catching up) sent
the reminder and escalation rungs together, so the same person got two or more items about the
same step in one run. The demo sends on Mondays with the digest on; a digest groups items, so
this counts outbox rows (items), not .eml files.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo run for the module (a whole simulated quarter)."""
    assert "ONBOARDING_NOW" not in os.environ
    directory = tmp_path_factory.mktemp("demo-bursts") / "out"
    result = CliRunner().invoke(cli.cli, ["demo", "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    return directory / "onboarding.db"


def _sql(db: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_demo_bursts_no_recipient_gets_two_items_for_one_step_in_one_run(demo_db: Path) -> None:
    """No recipient got more than one item (outbox row) for the same track and state entry in
    one sender run (the demo runs the sender once a day at most, so a run is a day)."""
    repeats = _sql(
        demo_db,
        "SELECT o.track_id, o.entry_seq, r.value, substr(o.sent_at, 1, 10) AS run,"
        " count(*), group_concat(o.notification)"
        " FROM outbox o, json_each(o.sent_to) r WHERE o.status = 'sent'"
        " GROUP BY o.track_id, o.entry_seq, r.value, run HAVING count(*) > 1",
    )
    assert repeats == []
    assert _sql(demo_db, "SELECT count(*) FROM outbox WHERE status = 'sent'")[0][0] > 100


def test_demo_bursts_superseded_rows_name_a_higher_rung_that_was_sent(demo_db: Path) -> None:
    """The demo does supersede: each superseded row names a higher rung of the same track and
    entry, for the same recipients, that was sent (or is still due) instead."""
    rows = _sql(
        demo_db,
        "SELECT o.id, o.level, o.last_error, s.id, s.level, s.status"
        " FROM outbox o JOIN outbox s ON s.track_id = o.track_id"
        " AND s.entry_seq = o.entry_seq"
        " AND o.last_error LIKE 'superseded by #' || s.id || ' %'"
        " WHERE o.status = 'superseded'",
    )
    total = _sql(demo_db, "SELECT count(*) FROM outbox WHERE status = 'superseded'")[0][0]
    assert total > 0 and len(rows) == total
    for _, level, _, _, by_level, by_status in rows:
        assert by_level > level and by_status in ("sent", "pending", "failed")
