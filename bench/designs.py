"""Issue 14, the rollout report: a covering index against a maintained summary table.

Both make the report read less than the whole track table; each costs every write that
changes a track. ``python -m bench --only report`` measures, on copies of the cached
databases:

* the read: the report's bucket query (the part the two designs change) at 10^6 tracks,
  without either (a full scan of the track rows, the schema before ``012_rollout_summary``),
  through the covering index ``tracks_rollout``, and from a summary table kept by triggers
  (one row per definition version, municipality, system and state with its count: the
  schema's ``rollout_summary``);
* the write: single advances (``engine.advance``, one commit each) on a fresh 10^4-track
  database in each variant, the variants taking turns so that load on the machine falls
  on all three alike.

The variant kept in the schema (``012_rollout_summary``) is the summary (bench/FINDINGS.md
says why).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from typing import Any

INDEX = (
    "CREATE INDEX tracks_rollout ON tracks (definition, municipality_code, system_id,"
    " def_version, state, created_at, updated_at)"
)
SUMMARY = ("rollout_summary_insert", "rollout_summary_delete", "rollout_summary_update")
VARIANTS = ("none", "index", "summary")


def apply(conn: sqlite3.Connection, variant: str) -> None:
    """Turn a database of the current schema (with the summary) into ``variant``."""
    if variant == "summary":
        return
    for name in SUMMARY:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("DROP TABLE IF EXISTS rollout_summary")
    if variant == "none":
        conn.execute("DROP INDEX IF EXISTS contracts_system")
    else:
        conn.execute(INDEX)
    conn.commit()


def bucket_query(variant: str, rank_sql: str) -> str:
    """The report's bucket query (``reports._best_buckets``, no track changed after the
    date) as each variant runs it."""
    if variant == "summary":
        states = (
            "SELECT nullif(municipality_code, -1) AS m, nullif(system_id, -1) AS s,"
            " def_version AS v, state FROM rollout_summary WHERE definition = :d AND n > 0"
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
