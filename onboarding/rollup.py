"""The rollout report's counts, kept at the level it prints (schema ``013_rollout_buckets``).

Today's ``report rollout`` prints, per vendor solution (system): how many municipalities use it
(a contract on record) and how many of those have their most advanced connection track in each
bucket; and per system how many (municipality, system) pairs have a connection track but no
contract. Two tables keep exactly that, in the transaction of every write, by triggers:

* ``rollout_rank``: each stored connection version's states and their rank (0 not agreed,
  1 agreed, 2 in operation: ``reports.vendor_rollout.rank_case``), written when a version is stored
  (``definitions.register`` calls ``remember_ranks``) and by the migration;
* ``rollout_count``: per system, rank and whether a contract is on record, how many pairs
  (municipality, system) with a contract or a connection track have that best rank (-1: no
  track) and that contract status: what the report reads. A write moves the pairs it touches
  from one cell to another; the pair's best rank before and after is read from its other
  tracks (index ``tracks_pair``: a pair has a track or a few) and the written row. An advance
  that stays in its bucket writes nothing here.

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


def _best(m: str, s: str, but: str | None = None) -> str:
    """SQL for the best rank of pair (municipality ``m``, which may be NULL, system ``s``):
    of its connection tracks, leaving out track ``but``; -1 when there is none. Read through
    the index ``tracks_pair``: a pair has a track or a few."""
    other = f" AND t.id != {but}" if but else ""
    return (
        f"coalesce((SELECT max({_rank('t')}) FROM tracks t WHERE t.system_id = {s}"
        f" AND t.municipality_code IS {m} AND t.definition = '{CONNECTION}'{other}), -1)"
    )


def _contracted(m: str, s: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM contracts c WHERE c.municipality_code = {m} AND c.system_id = {s})"
    )


def _shift(s: str, x: str, before: tuple[str, str], after: tuple[str, str], when: str) -> str:
    """Move one pair of system ``s`` from its count cell ``before`` (rank, contracted) to
    ``after``, both SQL in ``o`` (a best rank) and ``c`` (contracted) as the columns ``x``
    gives them: one statement, -1 on one cell and +1 on the other, nothing when they are the
    same cell. The cell (-1, 0) (no track, no contract: not a pair) is never counted. Each
    value is computed once, in the derived table (repeating the rank lookups in the outer
    expressions made the statement 20x dearer)."""
    cells = (
        f"SELECT {before[0]} AS br, {before[1]} AS bc, {after[0]} AS ar, {after[1]} AS ac"
        f" FROM (SELECT {x})"
    )
    return (
        " INSERT INTO rollout_count (system_id, rank, contracted, n)"
        f" SELECT {s}, CASE y.d WHEN 1 THEN z.ar ELSE z.br END,"
        " CASE y.d WHEN 1 THEN z.ac ELSE z.bc END, y.d"
        f" FROM ({cells}) z, (SELECT -1 AS d UNION ALL SELECT 1) y"
        f" WHERE {s} IS NOT NULL{when} AND (z.br != z.ar OR z.bc != z.ac)"
        " AND (CASE y.d WHEN 1 THEN z.ar >= 0 OR z.ac ELSE z.br >= 0 OR z.bc END)"
        " ON CONFLICT DO UPDATE SET n = n + excluded.n;"
    )


def _track_side(row: str, entering: bool, when: str = "") -> str:
    """The count change of the pair of track ``row`` (``new`` entering it, ``old`` leaving)."""
    m, s = f"{row}.municipality_code", f"{row}.system_id"
    x = f"{_best(m, s, f'{row}.id')} AS o, {_contracted(m, s)} AS c"
    with_it = (f"max(o, {_rank(row)})", "c")
    without = ("o", "c")
    if entering:
        return _shift(s, x, without, with_it, when)
    return _shift(s, x, with_it, without, when)


def _contract_side(row: str, entering: bool) -> str:
    """The count change of the pair of contract ``row`` (``new`` recorded, ``old`` removed)."""
    m, s = f"{row}.municipality_code", f"{row}.system_id"
    x = f"{_best(m, s)} AS o, 0 AS c"
    before, after = ("o", "0"), ("o", "1")
    return _shift(s, x, before, after, "") if entering else _shift(s, x, after, before, "")


_IS_NEW = f" AND new.definition = '{CONNECTION}'"
_IS_OLD = f" AND old.definition = '{CONNECTION}'"
#: The write moved the track off its pair (or into or out of the connection definition).
_MOVED = (
    "(new.definition IS NOT old.definition OR new.system_id IS NOT old.system_id"
    " OR new.municipality_code IS NOT old.municipality_code)"
)
_CONNECTION = f"(new.definition = '{CONNECTION}' OR old.definition = '{CONNECTION}')"

#: The triggers: each write changes the count cells of the pairs it touches, computed from the
#: pair's other tracks (index ``tracks_pair``) and its contract. A track that stays on its pair
#: and in its rank (most advances: the connection workflow has 9 states in 3 buckets) costs two
#: lookups in ``rollout_rank`` and no write; one that changes bucket rewrites two counts.
TRIGGERS = (
    "CREATE TRIGGER rollout_track_insert AFTER INSERT ON tracks"
    f" WHEN new.definition = '{CONNECTION}' AND new.system_id IS NOT NULL BEGIN"
    + _track_side("new", True)
    + " END",
    "CREATE TRIGGER rollout_track_delete AFTER DELETE ON tracks"
    f" WHEN old.definition = '{CONNECTION}' AND old.system_id IS NOT NULL BEGIN"
    + _track_side("old", False)
    + " END",
    # The same pair, another rank: one shift from the old rank to the new.
    "CREATE TRIGGER rollout_track_rank AFTER UPDATE OF def_version, state ON tracks"
    f" WHEN new.definition = '{CONNECTION}' AND NOT {_MOVED}"
    f" AND {_rank('new')} != {_rank('old')} BEGIN"
    + _shift(
        "new.system_id",
        f"{_best('new.municipality_code', 'new.system_id', 'new.id')} AS o,"
        f" {_contracted('new.municipality_code', 'new.system_id')} AS c",
        (f"max(o, {_rank('old')})", "c"),
        (f"max(o, {_rank('new')})", "c"),
        "",
    )
    + " END",
    # Another pair (or definition): the old pair loses the track, the new one gains it.
    "CREATE TRIGGER rollout_track_move AFTER UPDATE OF definition, municipality_code, system_id"
    f" ON tracks WHEN {_CONNECTION} AND {_MOVED} BEGIN"
    + _track_side("old", False, _IS_OLD)
    + _track_side("new", True, _IS_NEW)
    + " END",
    "CREATE TRIGGER rollout_contract_insert AFTER INSERT ON contracts BEGIN"
    + _contract_side("new", True)
    + " END",
    "CREATE TRIGGER rollout_contract_delete AFTER DELETE ON contracts BEGIN"
    + _contract_side("old", False)
    + " END",
    "CREATE TRIGGER rollout_contract_update AFTER UPDATE OF municipality_code, system_id"
    " ON contracts BEGIN" + _contract_side("old", False) + _contract_side("new", True) + " END",
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
    2 (in operation), else 0 (not agreed), as ``reports.vendor_rollout.rank_case`` counts it."""
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
    """Fill the counts from scratch (the migration; a generator that bulk-inserts with the
    triggers dropped). ``rollout_rank`` must be filled."""
    conn.execute("DELETE FROM rollout_count")
    conn.execute(
        "INSERT INTO rollout_count SELECT s, rank, contracted, count(*)"
        f" FROM ({PAIRS}) WHERE rank >= 0 OR contracted GROUP BY 1, 2, 3"
    )
