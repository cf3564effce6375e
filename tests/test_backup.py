"""'onboarding backup' and 'onboarding restore' (issue 5).

Restoring files that are not sound databases of this tool (text, empty, truncated, corrupted,
another application's, a newer version's) is part of the hostile-input corpus
(tests/hostile/restore/, run by tests/test_hostile.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from onboarding import registry
from onboarding.db import open_existing
from tests import reliability as rel
from tests.support import ok, run, snapshot


def test_backup_while_another_process_writes_is_a_consistent_snapshot(tmp_path: Path) -> None:
    """Backups taken while a second process keeps starting tracks are each a sound database
    of one moment: integrity ok, every track equal to its replay, the hash chain intact."""
    db_path = tmp_path / "live.db"
    rel.init(db_path)
    db = open_existing(db_path)
    names = [str(m["code"]) for m in registry.list_municipalities(db)][:60]
    db.close()
    commands = [
        ["track", "start", "--quiet", "klik-task", "--municipality", code, "--klik-task", "GDPR",
         "--db", str(db_path)]
        for code in names
    ]
    job = tmp_path / "writer.json"
    job.write_text(json.dumps({"go": str(tmp_path / "go"), "commands": commands}), "utf-8")
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.workers", str(job)], cwd=rel.ROOT, env=rel.env(db_path)
    )
    deadline = time.monotonic() + 60
    while not Path(f"{job}.ready").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    runner = CliRunner()
    taken: list[tuple[Path, bool]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = writer.poll() is None
        target = tmp_path / f"backup-{len(taken)}.db"
        ok(runner, db_path, "backup", str(target))
        taken.append((target, running))
        if not running:
            break
        time.sleep(0.05)
    assert writer.wait(timeout=60) == 0
    assert any(running for _, running in taken)
    counts = [rel.check_consistent(path)["tracks"] for path, _ in taken]
    assert counts == sorted(counts) and counts[-1] == len(names)
    assert len(set(counts)) >= 2  # snapshots of different moments, taken mid-write


def test_backup_refuses_to_replace_a_file_without_force(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """An existing file is kept unless --force; the backup is a single self-contained file."""
    target = tmp_path / "copy.db"
    target.write_text("precious", encoding="utf-8")
    refused = run(runner, db_path, "backup", str(target))
    assert refused.exit_code == 2 and "exists" in refused.stderr
    assert target.read_text(encoding="utf-8") == "precious"
    done = ok(runner, db_path, "backup", str(target), "--force")
    assert done.stdout.startswith(f"backed up to {target}: 0 tracks, 0 history rows")
    assert not Path(f"{target}-wal").exists()
    assert rel.table_dump(target, "PRAGMA journal_mode") == [("delete",)]


def test_restore_brings_back_the_backup_and_keeps_the_current_database(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Restore replaces the database with the backup (checked first) and keeps what it
    replaced beside it; the restored history verifies."""
    ok(runner, db_path, "track", "start", "connection", "--municipality", "Aarhus", "--system",
       "Momentum", "--at", "2021-04-01")
    backup = tmp_path / "monday.db"
    ok(runner, db_path, "backup", str(backup))
    at_backup = snapshot(backup)[1]
    ok(runner, db_path, "track", "advance", "1", "agree_date", "--set",
       "connection_date=2027-01-01", "--at", "2021-04-02")
    restored = ok(runner, db_path, "restore", str(backup))
    assert "restored" in restored.stdout and "audit trail intact: 1 history rows" in (
        restored.stdout
    )
    [kept] = list(db_path.parent.glob("onboarding.db.before-restore-*.db"))
    assert rel.table_dump(kept, "SELECT count(*) FROM history") == [(2,)]
    assert rel.table_dump(db_path, "SELECT count(*) FROM history") == [(1,)]
    ok(runner, db_path, "audit", "verify")
    assert snapshot(backup)[1] == at_backup  # the backup itself is untouched
    ok(runner, db_path, "track", "advance", "1", "agree_date", "--set",
       "connection_date=2027-01-01", "--at", "2021-04-03")
