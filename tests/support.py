"""Helpers for tests that drive the real CLI against a real database file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

import cli


def run(runner: CliRunner, db_path: Path, *args: str, actor: str = "tester") -> Result:
    """Invoke ``onboarding ARGS --db DB`` with an explicit actor (never the login name)."""
    env = {"ONBOARDING_ACTOR": actor}
    return runner.invoke(cli.cli, [*args, "--db", str(db_path)], env=env)


def ok(runner: CliRunner, db_path: Path, *args: str, actor: str = "tester") -> Result:
    result = run(runner, db_path, *args, actor=actor)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def ok_json(runner: CliRunner, db_path: Path, *args: str, actor: str = "tester") -> Any:
    return json.loads(ok(runner, db_path, *args, "--json", actor=actor).stdout)


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one SQL statement on the file, read by a connection of its own."""
    conn = sqlite3.connect(db_path)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def snapshot(db_path: Path) -> tuple[bytes, str]:
    """The database file's bytes and a full SQL dump, after folding the WAL into the file."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    return db_path.read_bytes(), dump


def make_ready(
    runner: CliRunner,
    db_path: Path,
    system: str,
    pilot: str = "Aarhus",
    at: tuple[str, str, str, str] | None = None,
    index: str = "sd",
) -> int:
    """Take a system through readiness (development -> pilot -> compliance test -> ready)."""
    times = at or ("2021-01-04T09:00", "2021-01-11T09:00", "2021-02-01T09:00", "2021-03-01T09:00")
    tid = int(
        ok(
            runner,
            db_path,
            "track",
            "start", "--quiet",
            "system-readiness",
            "--system",
            system,
            "--index",
            index,
            "--at",
            times[0],
        ).stdout
    )
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "start_pilot",
        "--set",
        f"pilot_municipality={pilot}",
        "--role",
        "vendor",
        "--at",
        times[1],
    )
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "complete_pilot",
        "--role",
        "vendor",
        "--at",
        times[2],
    )
    ok(runner, db_path, "track", "advance", str(tid), "pass_compliance", "--at", times[3])
    return tid


def start_connection(
    runner: CliRunner,
    db_path: Path,
    *extra: str,
    municipality: str = "Aarhus",
    system: str = "KMD Momentum",
) -> int:
    """Start a connection track (Aarhus and KMD Momentum unless told) and return its id."""
    args = ("track", "start", "connection", "--municipality", municipality, "--system", system)
    args += ("--quiet",)  # the id alone
    return int(ok(runner, db_path, *args, *extra).stdout)


def agree_date(runner: CliRunner, db_path: Path, tid: int, day: str = "2027-06-01") -> Result:
    """Record step 1 of a connection: the connection date is agreed."""
    return ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "agree_date",
        "--set",
        f"connection_date={day}",
    )
