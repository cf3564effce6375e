"""The tamper-evident audit trail: every history row is hash-chained to the one before it.

Each history row stores ``hash = sha256(canonical(prev_hash, row))`` where ``prev_hash`` is the
hash of the row before it in id order (64 zeros for the first row) and ``canonical`` is the
UTF-8 JSON array::

    [prev_hash, id, track_id, seq, from_state, to_state, trigger, actor, role, note,
     at, recorded_at, def_version, fields]

serialised with ``separators=(",", ":")`` and ``ensure_ascii=False`` (``fields`` is the stored
JSON text, included as a string). The head of the chain (last id and hash) is kept in the
``audit_head`` table, written in the same transaction, so deleting rows at the end is seen too.

``append`` is the only way history rows are written (the engine's ``write_moves`` and
``start_in`` call it inside their ``BEGIN IMMEDIATE`` transaction; a trigger refuses a row
without a hash). ``verify`` walks the chain and names the first row that does not fit;
``export`` writes the trail for auditors. What this does and does not prove: docs/audit.md.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from sqlite_utils import Database

from onboarding.csvio import safe_row
from onboarding.errors import InputError

GENESIS = "0" * 64
#: The history columns a caller supplies, in order (``id`` and ``hash`` are assigned here).
COLUMNS = (
    "track_id",
    "seq",
    "from_state",
    "to_state",
    "trigger",
    "actor",
    "role",
    "note",
    "at",
    "recorded_at",
    "def_version",
    "fields",
)
EXPORT_COLUMNS = ("id", *COLUMNS, "prev_hash", "hash")
FORMATS = ("jsonl", "csv")

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_INSERT = (
    f"INSERT INTO history (id, {', '.join(COLUMNS)}, hash)"
    f" VALUES (?, {', '.join('?' for _ in COLUMNS)}, ?)"
)


def row_hash(prev: str, row_id: Any, values: Sequence[Any]) -> str:
    """The hash of one history row (``values`` in ``COLUMNS`` order) chained to ``prev``."""
    text = _ENCODER.encode([prev, row_id, *values])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Append history rows (each in ``COLUMNS`` order) to the chain, inside the caller's
    write transaction: ids follow the chain's head, each row gets its hash, the head moves."""
    if not rows:
        return
    if not conn.in_transaction:
        raise RuntimeError("audit.append needs the caller's write transaction (BEGIN IMMEDIATE)")
    head = conn.execute("SELECT last_id, last_hash FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        raise RuntimeError("the audit_head row is missing: run 'onboarding audit verify'")
    last_id, prev = int(head[0]), str(head[1])
    params = []
    encode = _ENCODER.encode
    sha = hashlib.sha256
    for values in rows:
        last_id += 1
        prev = sha(encode([prev, last_id, *values]).encode("utf-8")).hexdigest()
        params.append((last_id, *values, prev))
    conn.executemany(_INSERT, params)
    conn.execute(
        "UPDATE audit_head SET last_id = ?, last_hash = ?, rows = rows + ? WHERE id = 1",
        [last_id, prev, len(rows)],
    )


def rehash_all(conn: sqlite3.Connection) -> tuple[int, str, int]:
    """Compute every row's hash in id order (the schema migration for existing history);
    returns the head (last id, last hash, rows). The caller has dropped the update trigger."""
    prev, last_id, count = GENESIS, 0, 0
    cur = conn.execute(f"SELECT id, {', '.join(COLUMNS)} FROM history ORDER BY id")
    updates = []
    for row in cur.fetchall():
        prev = row_hash(prev, row[0], row[1:])
        updates.append((prev, row[0]))
        last_id, count = int(row[0]), count + 1
    conn.executemany("UPDATE history SET hash = ? WHERE id = ?", updates)
    return last_id, prev, count


# --- verifying --------------------------------------------------------------------------------


@dataclass
class Verification:
    """The outcome of ``verify``: ``ok``, or the first bad row and what is wrong with it."""

    ok: bool
    rows: int
    head_id: int
    head_hash: str
    first_bad: int | None = None
    problem: str | None = None
    anchors_found: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if self.ok:
            head = f"head #{self.head_id} {self.head_hash}"
            return f"audit trail intact: {self.rows} history rows, {head}"
        return f"audit trail BROKEN: {self.problem}"


def _scan(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    cur = conn.execute(f"SELECT id, {', '.join(COLUMNS)}, hash FROM history ORDER BY id")
    while True:
        batch = cur.fetchmany(5000)
        if not batch:
            return
        yield from batch


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block's reads in one read transaction, i.e. against one snapshot of the file.

    Without it every statement of an ``isolation_level=None`` connection is its own
    transaction: a writer committing between the history scan and the head read looked like
    deleted rows (issue 11). A deferred ``BEGIN`` takes its snapshot at the first read and
    keeps it until the end (WAL: the writer goes on; rollback journal: it waits). Inside a
    caller's transaction the caller's snapshot is used as it is.
    """
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # nothing was written: ending the read is all it does


def verify(db: Database, anchors: Iterable[str] = ()) -> Verification:
    """Walk the chain in id order and check every row, the head, and each track's rows.

    Everything is read from one snapshot (``read_snapshot``), so verify beside a writer sees
    the database as it was at one commit. ``anchors`` are head hashes recorded earlier
    (``audit verify`` prints the head): each must still be the hash of some row, or the
    history before it was rewritten wholesale.
    """
    with read_snapshot(db.conn):
        return _verify(db.conn, anchors)


def _verify(conn: sqlite3.Connection, anchors: Iterable[str]) -> Verification:
    wanted = {a.strip().lower() for a in anchors if a.strip()}
    found: set[str] = set()
    prev, prev_id, count = GENESIS, 0, 0

    def broken(row_id: int | None, problem: str) -> Verification:
        return Verification(False, count, prev_id, prev, row_id, problem, sorted(found))

    for row in _scan(conn):
        row_id, values, stored = row[0], row[1:-1], row[-1]
        if not isinstance(row_id, int):  # pragma: no cover - an INTEGER PRIMARY KEY
            return broken(None, f"history row id {row_id!r} is not a number")
        if row_id != prev_id + 1:
            missing = (
                f"#{prev_id + 1}" if row_id == prev_id + 2 else f"#{prev_id + 1}-#{row_id - 1}"
            )
            return broken(
                prev_id + 1,
                f"history row {missing} is missing (deleted); the chain breaks before #{row_id}",
            )
        if stored is None:
            return broken(row_id, f"history row #{row_id} has no hash (written around the engine)")
        try:
            expected = row_hash(prev, row_id, values)
        except (TypeError, ValueError):
            expected = ""
        if expected != stored:
            where = f"history row #{row_id} (track {values[0]}, seq {values[1]})"
            if row_id == 1:
                what = "was changed after it was written (it does not match its hash)"
            else:
                what = (
                    "does not match its hash: it was changed or inserted after it was written,"
                    f" or row #{prev_id} before it was rewritten"
                )
            return broken(row_id, f"{where} {what}")
        prev, prev_id, count = stored, row_id, count + 1
        if stored in wanted:
            found.add(stored)
    head = conn.execute("SELECT last_id, last_hash, rows FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        return broken(None, "the chain's head record (audit_head) is missing")
    if int(head[0]) != prev_id or head[1] != prev:
        if int(head[0]) > prev_id:
            return broken(
                prev_id + 1,
                f"history rows after #{prev_id} are missing (deleted): the head says the last "
                f"row is #{head[0]}",
            )
        return broken(
            prev_id,
            f"history row #{prev_id} is not the chain's recorded head (#{head[0]}): rows were "
            "added or changed around the engine",
        )
    missing_anchors = sorted(wanted - found)
    if missing_anchors:
        return broken(
            None,
            f"anchor {missing_anchors[0]} is not in the chain: the history before it was rewritten",
        )
    bad = conn.execute(
        "SELECT t.id, t.version, h.n, h.m FROM tracks t LEFT JOIN (SELECT track_id,"
        " count(*) AS n, max(seq) AS m FROM history GROUP BY track_id) h ON h.track_id = t.id"
        " WHERE h.n IS NULL OR h.n != t.version OR h.m != t.version ORDER BY t.id LIMIT 1"
    ).fetchone()
    if bad is not None:
        return broken(
            None,
            f"track #{bad[0]} is at version {bad[1]} but its history has {bad[2] or 0} row(s)",
        )
    return Verification(True, count, prev_id, prev, None, None, sorted(found))


# --- exporting --------------------------------------------------------------------------------


def iter_rows(db: Database) -> Iterator[dict[str, Any]]:
    """Every history row in chain order, with the previous row's hash (for auditors)."""
    prev = GENESIS
    for row in _scan(db.conn):
        out = dict(zip(("id", *COLUMNS), row[:-1], strict=True))
        out["prev_hash"] = prev
        out["hash"] = row[-1]
        prev = row[-1] or prev
        yield out


def export(db: Database, out: TextIO, fmt: str = "jsonl") -> int:
    """Write the trail as JSON lines or CSV (formula cells neutralised); return the rows."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    n = 0
    if fmt == "jsonl":
        for row in iter_rows(db):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n
    w = csv.writer(out, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for row in iter_rows(db):
        w.writerow(safe_row([row[c] for c in EXPORT_COLUMNS]))
        n += 1
    return n
