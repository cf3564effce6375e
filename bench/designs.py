"""Issue 14, the rollout report: a covering index against a maintained summary table.

Both make the report read less than the whole track table; each costs every write that
changes a track. ``python -m bench --only report`` measures, on copies of the cached
databases:

* the read: the report's bucket query (the part the two designs change) at 10^6 tracks,
  without either (a full scan of the track rows, the schema before ``012_rollout_summary``),
  through the covering index ``tracks_rollout``, and from a summary table kept by triggers
  (one row per definition version, municipality, system and state with its count);
* the write: single advances (``engine.advance``, one commit each) on a fresh 10^4-track
  database in each variant, the variants taking turns so that load on the machine falls
  on all three alike.

The variant kept in the schema is the covering index (bench/FINDINGS.md says why).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from typing import Any

#: The summary design, as it would be added instead of the index: counts kept by triggers.
SUMMARY_DDL = (
    "CREATE TABLE rollout_summary (definition TEXT NOT NULL, def_version INTEGER NOT NULL,"
    " municipality_code INTEGER NOT NULL, system_id INTEGER NOT NULL, state TEXT NOT NULL,"
    " n INTEGER NOT NULL, PRIMARY KEY (definition, municipality_code, system_id,"
    " def_version, state)) WITHOUT ROWID",
    "CREATE TRIGGER rollout_summary_insert AFTER INSERT ON tracks BEGIN"
    " INSERT INTO rollout_summary VALUES (new.definition, new.def_version,"
    " ifnull(new.municipality_code, -1), ifnull(new.system_id, -1), new.state, 1)"
    " ON CONFLICT DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER rollout_summary_delete AFTER DELETE ON tracks BEGIN"
    " UPDATE rollout_summary SET n = n - 1 WHERE definition = old.definition"
    " AND municipality_code = ifnull(old.municipality_code, -1)"
    " AND system_id = ifnull(old.system_id, -1) AND def_version = old.def_version"
    " AND state = old.state; END",
    "CREATE TRIGGER rollout_summary_update AFTER UPDATE OF definition, def_version,"
    " municipality_code, system_id, state ON tracks BEGIN"
    " UPDATE rollout_summary SET n = n - 1 WHERE definition = old.definition"
    " AND municipality_code = ifnull(old.municipality_code, -1)"
    " AND system_id = ifnull(old.system_id, -1) AND def_version = old.def_version"
    " AND state = old.state;"
    " INSERT INTO rollout_summary VALUES (new.definition, new.def_version,"
    " ifnull(new.municipality_code, -1), ifnull(new.system_id, -1), new.state, 1)"
    " ON CONFLICT DO UPDATE SET n = n + 1; END",
)
INDEXES = ("tracks_rollout", "contracts_system")
VARIANTS = ("none", "index", "summary")


def apply(conn: sqlite3.Connection, variant: str) -> None:
    """Turn a database of the current schema (with the index) into ``variant``."""
    if variant == "index":
        return
    for name in INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    if variant == "summary":
        for sql in SUMMARY_DDL:
            conn.execute(sql)
        conn.execute(
            "INSERT INTO rollout_summary SELECT definition, def_version,"
            " ifnull(municipality_code, -1), ifnull(system_id, -1), state, count(*)"
            " FROM tracks GROUP BY 1, 3, 4, 2, 5"
        )
    conn.commit()


def bucket_query(variant: str, rank_sql: str) -> str:
    """The report's bucket query (``reports._best_buckets``, no track changed after the
    date) as each variant runs it."""
    if variant == "summary":
        states = (
            "SELECT municipality_code AS m, system_id AS s, def_version AS v, state"
            " FROM rollout_summary WHERE definition = :d AND n > 0"
        )
    else:
        hint = "NOT INDEXED" if variant == "none" else "INDEXED BY tracks_rollout"
        states = (
            "SELECT municipality_code AS m, system_id AS s, def_version AS v, state"
            f" FROM tracks {hint} WHERE definition = :d AND created_at <= :at"
            " AND updated_at <= :at"
        )
    return (
        f"WITH best AS (SELECT m, s, max({rank_sql}) AS r FROM ({states}) GROUP BY m, s)"
        " SELECT b.s, b.r, (SELECT CASE WHEN o.since IS NULL OR o.since <= :at THEN 2"
        " ELSE 1 END FROM contracts c LEFT JOIN contract_origins o"
        " ON o.municipality_code = c.municipality_code AND o.system_id = c.system_id"
        " WHERE c.municipality_code = b.m AND c.system_id = b.s) AS contract, count(*)"
        " FROM best b WHERE b.s IS NOT NULL GROUP BY 1, 2, 3"
    )


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Any, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out
