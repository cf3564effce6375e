"""The rollout report's counts, kept at the level the report prints (schema ``013_rollout_buckets``).

Today's ``report rollout`` prints, per vendor solution (system): how many municipalities use it
(a contract on record) and how many of those have their most advanced connection track in each
bucket; and per system how many (municipality, system) pairs have a connection track but no
contract. Three tables keep exactly that, in the transaction of every write, by triggers:

* ``rollout_rank``: each stored connection version's states and their rank (0 not agreed,
  1 agreed, 2 in operation: ``reports.rank_case``), written when a version is stored
  (``definitions.store`` calls ``remember_ranks``) and by the migration;
* ``rollout_pair``: per (system, municipality) pair that has a contract or a connection track,
  the best rank of its tracks (-1: no track) and whether a contract is on record. Recounted
  from the pair's tracks (index ``tracks_pair``) and its contract by the triggers on
  ``tracks`` and ``contracts``, only when a write can change it: an advance that stays in its
  bucket writes nothing here;
* ``rollout_count``: per (system, rank, contracted) how many pairs: what the report reads.
  Kept by triggers on ``rollout_pair``.

So the report reads O(systems) rows whatever the number of tracks or uses. This replaces the
per-state summary of ``012_rollout_summary`` (one row per municipality, system and state: as
many rows as uses, 10^6 at the bench's shape), which the migration drops. The counts equal a
recount from scratch (``RECOUNT``) after any sequence of writes: tests/test_rollout_buckets.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from workflows.model import Definition

__all__ = ["COUNTS", "RECOUNT", "SCHEMA", "TRIGGERS", "fill", "remember_ranks", "rollout_rank"]

#: The only definition the rollout report counts.
CONNECTION = "connection"

SCHEMA = (
    "CREATE TABLE rollout_rank (definition TEXT NOT NULL, def_version INTEGER NOT NULL,"
    " state TEXT NOT NULL, rank INTEGER NOT NULL,"
    " PRIMARY KEY (definition, def_version, state)) WITHOUT ROWID",
    "CREATE TABLE rollout_pair (system_id INTEGER NOT NULL, municipality_code INTEGER NOT NULL,"
    " rank INTEGER NOT NULL, contracted INTEGER NOT NULL,"
    " PRIMARY KEY (system_id, municipality_code)) WITHOUT ROWID",
    "CREATE TABLE rollout_count (system_id INTEGER NOT NULL, rank INTEGER NOT NULL,"
    " contracted INTEGER NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (system_id, rank, contracted)) WITHOUT ROWID",
    # The report's fast path is taken only when no contract was recorded after its date.
    "CREATE INDEX contract_origins_since ON contract_origins (since)",
    # A pair's tracks, for its recount (the old tracks_system index is its prefix). Its key
    # never changes on an advance, so keeping it costs a start, not an advance.
    "CREATE INDEX tracks_pair ON tracks (system_id, municipality_code)",
    "DROP INDEX tracks_system",
)


def _rank(row: str) -> str:
    """SQL for the rank of track ``row`` (``new`` or ``old``, or an alias)."""
    return (
        f"coalesce((SELECT r.rank FROM rollout_rank r WHERE r.definition = {row}.definition"
        f" AND r.def_version = {row}.def_version AND r.state = {row}.state), 0)"
    )


def _recount(m: str, s: str, when: str = "") -> str:
    """Upsert pair (municipality ``m``, which may be NULL, system ``s``) from its connection
    tracks (index ``tracks_pair``: a pair has a track or a few) and its contract. An unchanged
    pair writes nothing (the DO UPDATE's WHERE)."""
    return (
        " INSERT INTO rollout_pair (system_id, municipality_code, rank, contracted)"
        f" SELECT {s}, ifnull({m}, -1),"
        f" coalesce((SELECT max({_rank('t')}) FROM tracks t WHERE t.system_id = {s}"
        f" AND t.municipality_code IS {m} AND t.definition = '{CONNECTION}'), -1),"
        f" EXISTS (SELECT 1 FROM contracts c WHERE c.municipality_code = {m}"
        f" AND c.system_id = {s})"
        f" WHERE {s} IS NOT NULL{when}"
        " ON CONFLICT (system_id, municipality_code) DO UPDATE SET rank = excluded.rank,"
        " contracted = excluded.contracted"
        " WHERE rank != excluded.rank OR contracted != excluded.contracted;"
    )


_IS_NEW = f" AND new.definition = '{CONNECTION}'"
_IS_OLD = f" AND old.definition = '{CONNECTION}'"
#: The write moved the track off its pair (or out of the connection definition).
_MOVED = (
    "(new.definition IS NOT old.definition OR new.system_id IS NOT old.system_id"
    " OR new.municipality_code IS NOT old.municipality_code)"
)
_CONNECTION = (
    f"(new.definition = '{CONNECTION}' OR old.definition = '{CONNECTION}')"
)

#: The triggers. A track that stays on its pair and in its rank (most advances: the connection
#: workflow has 9 states and 3 buckets) costs two lookups in ``rollout_rank`` and no write.
#: A new track can only raise its pair's best rank; any other change recounts the pair.
TRIGGERS = (
    f"CREATE TRIGGER rollout_track_insert AFTER INSERT ON tracks"
    f" WHEN new.definition = '{CONNECTION}' AND new.system_id IS NOT NULL BEGIN"
    " INSERT INTO rollout_pair (system_id, municipality_code, rank, contracted)"
    f" VALUES (new.system_id, ifnull(new.municipality_code, -1), {_rank('new')},"
    " EXISTS (SELECT 1 FROM contracts c WHERE c.municipality_code = new.municipality_code"
    " AND c.system_id = new.system_id))"
    " ON CONFLICT (system_id, municipality_code) DO UPDATE SET rank = excluded.rank"
    " WHERE excluded.rank > rank; END",
    f"CREATE TRIGGER rollout_track_delete AFTER DELETE ON tracks"
    f" WHEN old.definition = '{CONNECTION}' AND old.system_id IS NOT NULL BEGIN"
    + _recount("old.municipality_code", "old.system_id")
    + " END",
    "CREATE TRIGGER rollout_track_update AFTER UPDATE OF definition, def_version,"
    " municipality_code, system_id, state ON tracks"
    f" WHEN {_CONNECTION} AND ({_MOVED} OR {_rank('new')} != {_rank('old')}) BEGIN"
    + _recount("new.municipality_code", "new.system_id", _IS_NEW)
    + _recount("old.municipality_code", "old.system_id", _IS_OLD + " AND " + _MOVED)
    + " END",
    "CREATE TRIGGER rollout_contract_insert AFTER INSERT ON contracts BEGIN"
    + _recount("new.municipality_code", "new.system_id")
    + " END",
    "CREATE TRIGGER rollout_contract_delete AFTER DELETE ON contracts BEGIN"
    + _recount("old.municipality_code", "old.system_id")
    + " END",
    "CREATE TRIGGER rollout_contract_update AFTER UPDATE OF municipality_code, system_id"
    " ON contracts BEGIN"
    + _recount("new.municipality_code", "new.system_id")
    + _recount("old.municipality_code", "old.system_id")
    + " END",
    "CREATE TRIGGER rollout_pair_insert AFTER INSERT ON rollout_pair BEGIN"
    " INSERT INTO rollout_count VALUES (new.system_id, new.rank, new.contracted, 1)"
    " ON CONFLICT DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER rollout_pair_delete AFTER DELETE ON rollout_pair BEGIN"
    " UPDATE rollout_count SET n = n - 1 WHERE system_id = old.system_id"
    " AND rank = old.rank AND contracted = old.contracted; END",
    "CREATE TRIGGER rollout_pair_update AFTER UPDATE ON rollout_pair BEGIN"
    " UPDATE rollout_count SET n = n - 1 WHERE system_id = old.system_id"
    " AND rank = old.rank AND contracted = old.contracted;"
    " INSERT INTO rollout_count VALUES (new.system_id, new.rank, new.contracted, 1)"
    " ON CONFLICT DO UPDATE SET n = n + 1; END",
)

#: The pairs from scratch: every (system, municipality) with a contract or a connection track
#: with a system, its tracks' best rank (-1 for none) and whether it has a contract.
PAIRS = f"""
    WITH tracked AS (
        SELECT t.system_id AS s, ifnull(t.municipality_code, -1) AS m,
               max(coalesce(r.rank, 0)) AS rank
        FROM tracks t LEFT JOIN rollout_rank r ON r.definition = t.definition
            AND r.def_version = t.def_version AND r.state = t.state
        WHERE t.definition = '{CONNECTION}' AND t.system_id IS NOT NULL
        GROUP BY 1, 2
    ),
    keys AS (
        SELECT s, m FROM tracked UNION SELECT system_id, municipality_code FROM contracts
    )
    SELECT k.s, k.m, coalesce(t.rank, -1) AS rank,
           EXISTS (SELECT 1 FROM contracts c WHERE c.municipality_code = k.m
                   AND c.system_id = k.s) AS contracted
    FROM keys k LEFT JOIN tracked t ON t.s = k.s AND t.m = k.m
"""
#: ``rollout_count`` recounted from the tracks and contracts (pairs with neither left out).
RECOUNT = (
    f"SELECT s, rank, contracted, count(*) FROM ({PAIRS})"
    " WHERE rank >= 0 OR contracted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
#: ``rollout_count`` as kept, in the shape of ``RECOUNT``.
COUNTS = (
    "SELECT system_id, rank, contracted, n FROM rollout_count"
    " WHERE n != 0 AND (rank >= 0 OR contracted) ORDER BY 1, 2, 3"
)


def rollout_rank(defn: Definition, state: str) -> int:
    """The rollout report's rank of a state: its bucket's position when that is 1 (agreed) or
    2 (in operation), else 0 (not agreed), as ``reports.rank_case`` counts it."""
    rank = defn.bucket_rank(state)
    return rank if rank in (1, 2) else 0


def remember_ranks(conn: sqlite3.Connection, definitions: Iterable[Definition]) -> None:
    """Write the ranks of connection versions (others are not counted by the report)."""
    rows = [
        (d.name, d.version, s.name, rollout_rank(d, s.name))
        for d in definitions
        if d.name == CONNECTION
        for s in d.states
    ]
    conn.executemany("INSERT OR REPLACE INTO rollout_rank VALUES (?, ?, ?, ?)", rows)


def fill(conn: sqlite3.Connection) -> None:
    """Fill the pairs and counts from scratch (the migration; a generator that bulk-inserts
    with the triggers dropped). ``rollout_rank`` must be filled."""
    conn.execute("DELETE FROM rollout_pair")
    conn.execute(f"INSERT INTO rollout_pair SELECT s, m, rank, contracted FROM ({PAIRS})")
    # Counted from the pairs (whatever the pair triggers counted on the way, if present).
    conn.execute("DELETE FROM rollout_count")
    conn.execute(
        "INSERT INTO rollout_count SELECT system_id, rank, contracted, count(*)"
        " FROM rollout_pair GROUP BY 1, 2, 3"
    )
