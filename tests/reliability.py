"""Shared helpers for the crash, concurrency and backup tests: real processes, real files.

``cli_process`` starts the real command line (``python -m cli ...`` in a fresh interpreter) so
it can be killed with SIGKILL at any point; ``check_consistent`` is what must hold after any
kill: the file is sound, every track equals the replay of its history, and the hash chain
verifies.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import cli
from onboarding import audit, clock, engine, outbox, registry, tracks
from onboarding.db import immediate, open_existing

ROOT = Path(__file__).resolve().parent.parent
#: The pinned clock of every reliability test (the CLI reads $ONBOARDING_NOW).
NOW = "2021-06-01T12:00"
START_AT = "2021-04-01T09:00"
#: Systems and index sets for connection tracks: 98 x 11 x 3 subjects are available.
INDEX_SETS = ("sd", "ydelse", "sd,ydelse")


def env(db_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI process: pinned clock, no mail settings from the host."""
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ONBOARDING_") and k not in ("PYTHONPATH",)
    }
    out.update(
        ONBOARDING_DB=str(db_path),
        ONBOARDING_NOW=NOW,
        ONBOARDING_ACTOR="tester",
        # The suite asserts the English wording (tests/conftest.py, english_cli).
        ONBOARDING_LANG="en",
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
    )
    out.update(extra)
    return out


def cli_process(db_path: Path, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """The real CLI in its own process (killable), output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env(db_path, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def cli_run(db_path: Path, *args: str, timeout: float = 60, **extra_env: str) -> tuple[int, str]:
    """Run the real CLI to the end; (exit code, stdout + stderr)."""
    proc = cli_process(db_path, *args, **extra_env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode() + err.decode()


def init(db_path: Path) -> None:
    result = CliRunner().invoke(cli.cli, ["init", "--db", str(db_path)])
    assert result.exit_code == 0, result.output


def add_contacts(db_path: Path, roles: Sequence[str] = ("municipality-pl",)) -> None:
    """A contact per municipality for each role, and a coordinator and programme lead."""
    path = db_path.parent / "contacts.csv"
    db = open_existing(db_path)
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["role", "name", "email", "municipality", "vendor"])
            w.writerow(["coordinator", "Kim Koordinator", "kim@kombit.example", "", ""])
            for m in registry.list_municipalities(db):
                for role in (*roles, "programme-lead"):
                    w.writerow([role, f"{role} {m['name']}", f"{role}-{m['code']}@k.example",
                                m["code"], ""])
        registry.import_contacts(db, path)
    finally:
        db.close()


def start_connections(db_path: Path, n: int, at: str = START_AT) -> list[int]:
    """Start ``n`` connection tracks (distinct subjects) in one transaction; their ids."""
    db = open_existing(db_path)
    try:
        municipalities = [str(m["code"]) for m in registry.list_municipalities(db)]
        systems = [str(s["label"]) for s in registry.list_systems(db)]
        subjects = [
            (m, s, i) for i in INDEX_SETS for s in systems for m in municipalities
        ][:n]
        act = engine.Act(actor="tester", role="coordinator", at=clock.parse_time(at))
        ids = []
        with immediate(db) as conn:
            for m, s, i in subjects:
                subject = engine.Subject(municipality=m, system=s, index=i)
                ids.append(int(engine.start_in(conn, db, "connection", subject, act)["id"]))
        return ids
    finally:
        db.close()


def copy_db(source: Path, target: Path) -> Path:
    """A copy of a database file (its WAL folded in first), as a fresh starting point."""
    conn = sqlite3.connect(source)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return target


def check_consistent(db_path: Path) -> dict[str, Any]:
    """What must hold after any crash: integrity_check ok, every track equal to the replay
    of its history, an intact hash chain. Returns counts for further checks."""
    db = open_existing(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        verified = audit.verify(db)
        assert verified.ok, verified.problem
        keys = ("state", "version", "def_version", "final", "fields", "entered_at", "updated_at",
                "due")
        for tid in [r[0] for r in db.execute("SELECT id FROM tracks ORDER BY id").fetchall()]:
            row = engine.load_track(db.conn, tid)
            replayed = tracks.replay(db, tid)
            assert {k: row[k] for k in keys} == {k: replayed[k] for k in keys}, tid
        dupes = db.execute(
            "SELECT track_id, seq FROM history GROUP BY track_id, seq HAVING count(*) > 1"
        ).fetchall()
        assert dupes == []
        return {
            "history": verified.rows,
            "tracks": db.execute("SELECT count(*) FROM tracks").fetchone()[0],
            "outbox": outbox.counts(db.conn),  # planned rows included (issue 14)
        }
    finally:
        db.close()


def table_dump(db_path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def tracks_and_history(db_path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Tracks and history rows (with hashes): equal for two runs that did the same work."""
    return (
        table_dump(db_path, "SELECT * FROM tracks ORDER BY id"),
        table_dump(db_path, "SELECT * FROM history ORDER BY id"),
    )


def counts(mapping: Mapping[str, int], *keys: str) -> tuple[int, ...]:
    return tuple(mapping.get(k, 0) for k in keys)
