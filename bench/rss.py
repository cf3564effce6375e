"""Issue 14: peak memory of one ``onboarding track advance`` against a raw Python process
making the same commit.

The commit is taken from the database itself, not from what the engine is believed to write:
a command's run on one copy is compared with the copy before it, table by table (by rowid),
and the rows it added or changed become the statements the raw process executes on a fresh
copy, in one ``BEGIN IMMEDIATE`` transaction with the pragmas every connection of ours sets.
So the baseline stays the same commit whatever the engine writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

#: The raw process: sqlite3 and json only. argv: database, statements (JSON file).
RAW_COMMIT = """
import json, sqlite3, sys
statements = json.load(open(sys.argv[2], encoding="utf-8"))
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("PRAGMA foreign_keys = ON")
conn.execute("PRAGMA busy_timeout = 30000")
conn.execute("PRAGMA synchronous = NORMAL")
conn.execute("BEGIN IMMEDIATE")
for sql, params in statements:
    conn.execute(sql, params)
conn.execute("COMMIT")
conn.close()
"""

Snapshot = dict[str, tuple[list[str], dict[int, tuple[Any, ...]]]]


def snapshot(path: Path) -> Snapshot:
    """Every row of every table of ours, by rowid."""
    conn = sqlite3.connect(path)
    out: Snapshot = {}
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in tables:
        try:
            cur = conn.execute(f'SELECT rowid, * FROM "{table}"')
        except sqlite3.OperationalError:
            # A WITHOUT ROWID table (rollout_summary) is kept by triggers on the tracks: the
            # raw process's own writes to the tracks fire them on its copy, as the command's did.
            continue
        cols = [d[0] for d in cur.description][1:]
        out[table] = (cols, {r[0]: tuple(r[1:]) for r in cur})
    conn.close()
    return out


def commit_of(before: Snapshot, after: Snapshot) -> list[tuple[str, list[Any]]]:
    """The statements that turn ``before`` into ``after`` (rows added or changed; a command
    that deletes rows is not what this measures, and says so)."""
    statements: list[tuple[str, list[Any]]] = []
    for table, (cols, rows) in after.items():
        old = before.get(table, (cols, {}))[1]
        if set(old) - set(rows):
            raise RuntimeError(f"the command deleted rows of {table}")
        names = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" for _ in cols)
        for rowid, row in rows.items():
            if rowid not in old:
                statements.append(
                    (f'INSERT INTO "{table}" (rowid, {names}) VALUES (?, {marks})', [rowid, *row])
                )
            elif old[rowid] != row:
                pairs = zip(old[rowid], row, strict=True)
                changed = [i for i, (a, b) in enumerate(pairs) if a != b]
                sets = ", ".join(f'"{cols[i]}" = ?' for i in changed)
                statements.append(
                    (
                        f'UPDATE "{table}" SET {sets} WHERE rowid = ?',
                        [*(row[i] for i in changed), rowid],
                    )
                )
    return statements
