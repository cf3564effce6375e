"""The deck's Jobcenter and ESDH picture as test data, and helpers to vary the files.

``tests/data/deck-contracts.csv`` and ``tests/data/deck-status-2021-03.csv`` encode the deck's
rollout table of 31 March 2021 (municipalities in code order, in blocks: see the files);
``deck-status-2020-12.csv`` is an earlier picture of the same connections (``DECEMBER``).
Five municipality-system pairs of the status file are missing from the contracts file, so the
import must record their contracts as ``unknown`` for the report to come out right.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import cli

DATA = Path(__file__).parent / "data"
CONTRACTS = DATA / "deck-contracts.csv"
MARCH = DATA / "deck-status-2021-03.csv"
DECEMBER_FILE = DATA / "deck-status-2020-12.csv"

#: The deck's table (domain.md), category -> [(vendor, system, I drift, Aftalt, Endnu ikke
#: aftalt, I alt)].
DECK: dict[str, list[tuple[str, str, int, int, int, int]]] = {
    "Jobcenter": [
        ("KMD", "Momentum", 12, 22, 9, 43),
        ("Schultz", "Fasit", 4, 8, 43, 55),
    ],
    "ESDH": [
        ("Formpipe", "Acadre", 3, 4, 22, 29),
        ("Fujitsu", "eDoc", 3, 6, 9, 18),
        ("KMD", "Nova ESDH", 10, 15, 2, 27),
        ("Miracle/Convergens", "SBSys", 2, 15, 23, 40),
        ("Netcompany", "GetOrganized", 1, 2, 2, 5),
    ],
}
#: The same connections on 31 December 2020 (deck-status-2020-12.csv).
DECEMBER: dict[str, list[tuple[str, str, int, int, int, int]]] = {
    "Jobcenter": [
        ("KMD", "Momentum", 6, 17, 20, 43),
        ("Schultz", "Fasit", 2, 6, 47, 55),
    ],
    "ESDH": [
        ("Formpipe", "Acadre", 1, 4, 24, 29),
        ("Fujitsu", "eDoc", 1, 5, 12, 18),
        ("KMD", "Nova ESDH", 5, 12, 10, 27),
        ("Miracle/Convergens", "SBSys", 1, 8, 31, 40),
        ("Netcompany", "GetOrganized", 0, 2, 3, 5),
    ],
}
KEYS = ("in_operation", "agreed", "not_agreed", "total")


def expected_rows(table: dict[str, list[tuple[str, str, int, int, int, int]]]) -> dict[str, Any]:
    """category -> the ``rows`` list ``report rollout --json`` must print."""
    return {
        cat: [
            {"vendor": v, "system": s, **dict(zip(KEYS, counts, strict=True))}
            for v, s, *counts in rows
        ]
        for cat, rows in table.items()
    }


def invoke(runner: CliRunner, db_path: Path, *args: str, actor: str = "t") -> Any:
    result = runner.invoke(cli.cli, [*args, "--db", str(db_path)], env={"ONBOARDING_ACTOR": actor})
    assert result.exit_code == 0, (args, result.output)
    return result


def rollout_json(runner: CliRunner, db_path: Path, *args: str) -> Any:
    return json.loads(invoke(runner, db_path, "report", "rollout", "--json", *args).stdout)


def build(runner: CliRunner, path: Path, contracts: Path = CONTRACTS, *status_files: Path) -> Path:
    """A fresh database at ``path`` with the contracts and status files imported, by the CLI."""
    result = runner.invoke(cli.cli, ["init", "--db", str(path)])
    assert result.exit_code == 0, result.output
    invoke(runner, path, "registry", "import", "contracts", str(contracts))
    for status in status_files or (MARCH,):
        invoke(runner, path, "import", "status", str(status))
    return path


def copy_db(src: Path, dst: Path) -> Path:
    """A copy of a database file (WAL folded in first) for a test that changes it."""
    conn = sqlite3.connect(src)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    shutil.copyfile(src, dst)
    return dst


def read_rows(path: Path) -> list[list[str]]:
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def write_rows(
    path: Path,
    rows: list[list[str]],
    encoding: str = "utf-8",
    delimiter: str = ",",
    bom: bool = False,
) -> Path:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    data = out.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def shuffled(src: Path, dst: Path, seed: int = 7) -> Path:
    header, *body = read_rows(src)
    random.Random(seed).shuffle(body)
    return write_rows(dst, [header, *body])


def tracks_and_history(db_path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Tracks and history as the import left them (without the wall-clock recorded_at)."""
    conn = sqlite3.connect(db_path)
    try:
        tracks = conn.execute(
            "SELECT id, definition, subject_key, state, version, fields, entered_at, due, bob"
            " FROM tracks ORDER BY id"
        ).fetchall()
        history = conn.execute(
            "SELECT track_id, seq, from_state, to_state, trigger, actor, role, note, at, fields"
            " FROM history ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    return tracks, history
