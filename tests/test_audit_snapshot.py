"""'audit verify' reads one snapshot: no false tamper alarm while another process writes (issue 11).

Before, verify read the history, the chain's head and the track versions as separate statements,
so a commit landing between them looked like deleted rows ("rows after #N are missing").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from onboarding import audit
from onboarding.db import open_existing
from tests.support import make_ready, ok, run
from tests.test_audit import CASES, _tamper, _work

ROOT = Path(__file__).resolve().parents[1]

#: The writer process: 'track set' on one track through the real CLI code, one commit each,
#: until the stop file appears; prints how many it wrote.
WRITER = r"""
import sys
from pathlib import Path
from click.testing import CliRunner
import cli

db, stop, ready, tid = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
runner = CliRunner()
n = 0
ready.touch()
while not stop.exists():
    day = 1 + n % 28
    args = ["track", "set", tid, f"connection_date=2027-03-{day:02d}", "--db", db]
    result = runner.invoke(cli.cli, args)
    if result.exit_code != 0:
        print(result.output, result.exception, file=sys.stderr)
        sys.exit(1)
    n += 1
print(n)
"""

#: History rows written before the loop: verify then hashes a few milliseconds' worth of rows
#: after its scan statement ends, the window in which the old code read a newer head.
SEED_ROWS = 3000
MIN_VERIFIES = 200
MIN_SECONDS = 3.0
RESTORES = 20


def _seed_history(db_path: Path, rows: int) -> None:
    """A long-lived track with ``rows`` history rows, appended through the chain."""
    db = open_existing(db_path)
    try:
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO tracks (id, definition, def_version, subject_key, state, version,"
            " entered_at, created_at, updated_at) VALUES (100, 'x', 1, 'seed', 's', ?, '', '',"
            " '')",
            [rows],
        )
        audit.append(
            conn,
            [(100, i, None, "s", "t", "seed", "r", None, "", "", 1, "{}")
             for i in range(1, rows + 1)],
        )
        conn.execute("COMMIT")
    finally:
        db.close()


def _start_writer(db_path: Path, tmp_path: Path, tid: int) -> tuple[subprocess.Popen[str], Path]:
    stop, ready = tmp_path / "writer.stop", tmp_path / "writer.ready"
    env = {**os.environ, "ONBOARDING_ACTOR": "writer", "ONBOARDING_NOW": "2021-05-01T10:00"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), str(stop), str(ready), str(tid)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.01)
    return proc, stop


def test_audit_snapshot_verify_beside_a_writer_never_raises_a_false_alarm(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """At least 200 'audit verify' runs while another process commits history rows: every one
    exits 0 on the intact database, and the heads they report move forward."""
    make_ready(runner, db_path, "Momentum")
    tid = ok(runner, db_path, "track", "start", "--quiet", "connection", "--municipality", "Aarhus",
             "--system", "Momentum", "--at", "2021-04-01").stdout.strip()
    ok(runner, db_path, "track", "advance", tid, "agree_date", "--set",
       "connection_date=2027-03-01", "--at", "2021-04-02")
    _seed_history(db_path, SEED_ROWS)
    proc, stop = _start_writer(db_path, tmp_path, int(tid))
    alarms: list[str] = []
    heads: list[int] = []
    started = time.monotonic()
    try:
        while len(heads) < MIN_VERIFIES or time.monotonic() - started < MIN_SECONDS:
            assert proc.poll() is None, proc.communicate()
            result = run(runner, db_path, "audit", "verify", "--json")
            data = json.loads(result.stdout)
            heads.append(data["head_id"])
            if result.exit_code != 0:
                alarms.append(data["problem"])
    finally:
        stop.touch()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    written = int(out)
    assert alarms == [], f"{len(alarms)} false alarms in {len(heads)} verifies: {alarms[:3]}"
    assert len(heads) >= MIN_VERIFIES
    # The writer really wrote while verify ran: many commits, and verify saw the head move.
    assert written >= 50, written
    assert len(set(heads)) >= 20, len(set(heads))
    assert heads == sorted(heads)
    assert ok(runner, db_path, "audit", "verify").stdout.startswith("audit trail intact")


def test_audit_snapshot_restore_check_beside_a_writer_says_intact(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """'restore' checks the restored database's chain while a writer goes on writing to it:
    every check says intact (before: a false "BROKEN")."""
    make_ready(runner, db_path, "Momentum")
    tid = ok(runner, db_path, "track", "start", "--quiet", "connection", "--municipality", "Aarhus",
             "--system", "Momentum", "--at", "2021-04-01").stdout.strip()
    _seed_history(db_path, SEED_ROWS)
    backup = tmp_path / "backup.db"
    ok(runner, db_path, "backup", str(backup))
    proc, stop = _start_writer(db_path, tmp_path, int(tid))
    lines = []
    try:
        for _ in range(RESTORES):
            assert proc.poll() is None, proc.communicate()
            out = ok(runner, db_path, "restore", str(backup)).stdout
            lines.append(next(line for line in out.splitlines() if "audit trail" in line))
            for kept in tmp_path.glob("onboarding.db.before-restore-*"):
                kept.unlink()  # the copies each restore keeps: not under test here
    finally:
        stop.touch()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    broken = [line for line in lines if not line.startswith("audit trail intact")]
    assert broken == [], f"{len(broken)} of {len(lines)}: {broken[:2]}"


def test_audit_snapshot_still_sees_tampering(runner: CliRunner, db_path: Path) -> None:
    """Reading in one transaction changes nothing for a tampered file: each tamper case of
    tests/test_audit.py still exits 3 naming its row."""
    _work(runner, db_path)
    for name in ("edited note", "deleted last row"):
        statements, first_bad, words = CASES[name]
        copy = db_path.with_name(f"{name.replace(' ', '-')}.db")
        src = open_existing(db_path)
        try:
            src.conn.execute(f"VACUUM INTO '{copy}'")
        finally:
            src.close()
        _tamper(copy, *statements)
        result = run(runner, copy, "audit", "verify", "--json")
        assert result.exit_code == 3, result.output
        data = json.loads(result.stdout)
        assert data["first_bad"] == first_bad and words in data["problem"]


def test_audit_snapshot_verify_leaves_no_transaction_open(db_path: Path) -> None:
    """verify ends its read transaction, so a caller's connection is free to write after it."""
    db = open_existing(db_path)
    try:
        assert audit.verify(db).ok
        assert not db.conn.in_transaction
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.execute("ROLLBACK")
    finally:
        db.close()
