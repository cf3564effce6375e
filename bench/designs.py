"""Issue 14, the rollout report: a covering index, a per-state summary, or the counts the
report prints kept per system and bucket.

Each makes today's report read less than the whole track table; each costs writes that change
a track. ``python -m bench --only report`` measures, on copies of the cached databases:

* the read, at 10^6 tracks: the report's bucket query without any (a full scan of the track
  rows, the schema before ``012_rollout_summary``), through the covering index
  ``tracks_rollout``, from the per-state summary of ``012_rollout_summary`` (one row per
  definition version, municipality, system and state), and what the report reads now: the
  counts per system, bucket and whether a contract is on record (``013_rollout_buckets``,
  ``onboarding/rollup.py``: O(systems) rows);
* the write: single advances (``engine.advance``, one commit each) on a fresh 10^4-track
  database in each variant, the variants taking turns advance by advance: one that stays in
  its bucket (``agree_date``: not agreed to not agreed; the kept counts then cost two lookups
  and no write) and one that moves the pair to the next bucket (``approve_agreements``: not
  agreed to agreed; the pair is recounted, its row and two counts rewritten).
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
#: neither; the covering index; the per-state summary of 012; the counts per system and bucket
#: of 013 (the schema now, which dropped 012's summary).
VARIANTS = ("none", "index", "summary", "kept")


def _triggers(sqls: tuple[str, ...]) -> list[str]:
    return [sql.split()[2] for sql in sqls]


def apply(conn: sqlite3.Connection, variant: str) -> None:
    """Turn a database of the current schema (013: the kept counts) into ``variant``."""
    from onboarding import rollup
    from onboarding.db import ROLLOUT_SUMMARY, ROLLOUT_SUMMARY_FILL

    if variant == "kept":
        return
    for name in _triggers(rollup.TRIGGERS):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("DROP TABLE IF EXISTS rollout_summary")
    if variant == "summary":
        for sql in ROLLOUT_SUMMARY:  # 012's table and triggers: the per-state summary
            conn.execute(sql)
        conn.execute(ROLLOUT_SUMMARY_FILL)
    elif variant == "none":
        conn.execute("DROP INDEX IF EXISTS contracts_system")
    else:
        conn.execute(INDEX)
    conn.commit()


#: What today's report reads in the kept design (``reports.vendor_rollout._use_counts``).
KEPT_QUERY = (
    "SELECT c.system_id, s.category, v.name, s.name, c.rank, c.contracted, c.n"
    " FROM rollout_count c LEFT JOIN systems s ON s.id = c.system_id"
    " LEFT JOIN vendors v ON v.id = s.vendor_id WHERE c.n != 0"
)


def kept_as_buckets(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The kept counts in the bucket query's shape (system, rank, contract 2 or None, n), for
    comparing the designs' answers (no contract in the bench was recorded later)."""
    return sorted(
        (sid, rank, 2 if contracted else None, n)
        for sid, _c, _v, _s, rank, contracted, n in rows
        if rank >= 0
    )


def bucket_query(variant: str, rank_sql: str) -> str:
    """The report's bucket query (``reports.vendor_rollout._best_buckets``, no track changed
    after the date) as each variant runs it (``kept`` reads ``KEPT_QUERY`` instead)."""
    if variant in ("summary", "kept"):
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
