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

import base64
import binascii
import json
import os
import re
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from onboarding import clock
from onboarding.db import Database
from onboarding.errors import InputError, shorten
from onboarding.i18n import Message
from workflows.digest import sha256_hex
from workflows.record import asdict, field, replace
from workflows.record import record as dataclass

if TYPE_CHECKING:  # cryptography is imported where it is used: most commands never sign
    from email.message import EmailMessage

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
    return sha256_hex(text.encode("utf-8"))


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
    for values in rows:
        last_id += 1
        prev = sha256_hex(encode([prev, last_id, *values]).encode("utf-8"))
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
    #: What is wrong (a ``Message``: English as ``str``, said in the reader's language).
    problem: str | None = None
    anchors_found: list[str] = field(default_factory=list)
    #: The signed anchors the history still extends (row, hash, time, fingerprint), by row.
    anchored: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> Message:
        """The result in one sentence (English as ``str``; said in the reader's language)."""
        if not self.ok:
            return Message("audit trail BROKEN: %(problem)s", {"problem": self.problem or ""})
        params: dict[str, Any] = {
            "rows": str(self.rows),
            "head": f"#{self.head_id} {self.head_hash}",
        }
        if not self.anchored:
            return Message("audit trail intact: %(rows)s history rows, head %(head)s", params)
        last = self.anchored[-1]
        params.update(row=str(last["row"]), taken=last["shown"], key=last["fingerprint"])
        return Message(
            "audit trail intact: %(rows)s history rows, head %(head)s; extends the anchor of "
            "#%(row)s taken %(taken)s (key %(key)s)",
            {**params, "n": str(len(self.anchored))},
            plural="audit trail intact: %(rows)s history rows, head %(head)s; extends %(n)s "
            "anchors, the latest of #%(row)s taken %(taken)s (key %(key)s)",
            n=len(self.anchored),
        )


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


def verify(
    db: Database, anchors: Iterable[str] = (), signed: Sequence[Anchor] = ()
) -> Verification:
    """Walk the chain in id order and check every row, the head, and each track's rows.

    Everything is read from one snapshot (``read_snapshot``), so verify beside a writer sees
    the database as it was at one commit. ``anchors`` are bare head hashes recorded earlier
    (``audit verify`` prints the head): each must still be the hash of some row. ``signed``
    are anchor statements (``take_anchor``), already checked by ``check_anchors``: each
    anchored row must still exist with the anchored hash, so the chain, verified from the
    first row, extends it. Otherwise the history up to it was rewritten wholesale.
    """
    with read_snapshot(db.conn):
        return _verify(db.conn, anchors, signed)


def _verify(
    conn: sqlite3.Connection, anchors: Iterable[str], signed: Sequence[Anchor]
) -> Verification:
    wanted = {a.strip().lower() for a in anchors if a.strip()}
    found: set[str] = set()
    prev, prev_id, count = GENESIS, 0, 0
    by_row: dict[int, list[Anchor]] = {}
    for anchor in sorted(signed, key=lambda a: (a.row, a.time)):
        by_row.setdefault(anchor.row, []).append(anchor)
    held: list[Anchor] = []  # signed anchors met so far whose row still has their hash

    def broken(row_id: int | None, problem: Message) -> Verification:
        return Verification(False, count, prev_id, prev, row_id, problem, sorted(found))

    for row in _scan(conn):
        row_id, values, stored = row[0], row[1:-1], row[-1]
        if not isinstance(row_id, int):  # pragma: no cover - an INTEGER PRIMARY KEY
            return broken(
                None, Message("history row id %(id)s is not a number", {"id": repr(row_id)})
            )
        if row_id != prev_id + 1:
            missing = (
                f"#{prev_id + 1}" if row_id == prev_id + 2 else f"#{prev_id + 1}-#{row_id - 1}"
            )
            return broken(
                prev_id + 1,
                Message(
                    "history row %(missing)s is missing (deleted); the chain breaks before"
                    " #%(row)s",
                    {"missing": missing, "row": str(row_id)},
                ),
            )
        if stored is None:
            return broken(
                row_id,
                Message(
                    "history row #%(row)s has no hash (written around the engine)",
                    {"row": str(row_id)},
                ),
            )
        try:
            expected = row_hash(prev, row_id, values)
        except (TypeError, ValueError):
            expected = ""
        if expected != stored:
            where = {"row": str(row_id), "track": str(values[0]), "seq": str(values[1])}
            if row_id == 1:
                what = Message(
                    "history row #%(row)s (track %(track)s, seq %(seq)s) was changed after it"
                    " was written (it does not match its hash)",
                    where,
                )
            else:
                what = Message(
                    "history row #%(row)s (track %(track)s, seq %(seq)s) does not match its"
                    " hash: it was changed or inserted after it was written, or row #%(prev)s"
                    " before it was rewritten",
                    {**where, "prev": str(prev_id)},
                )
            return broken(row_id, what)
        prev, prev_id, count = stored, row_id, count + 1
        if stored in wanted:
            found.add(stored)
        for anchor in by_row.get(row_id, ()):
            if anchor.hash != stored:
                return broken(row_id, _rewritten(anchor, stored, held))
            held.append(anchor)
    head = conn.execute("SELECT last_id, last_hash, rows FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        return broken(None, Message("the chain's head record (audit_head) is missing"))
    if int(head[0]) != prev_id or head[1] != prev:
        if int(head[0]) > prev_id:
            return broken(
                prev_id + 1,
                Message(
                    "history rows after #%(row)s are missing (deleted): the head says the last"
                    " row is #%(head)s",
                    {"row": str(prev_id), "head": str(head[0])},
                ),
            )
        return broken(
            prev_id,
            Message(
                "history row #%(row)s is not the chain's recorded head (#%(head)s): rows were"
                " added or changed around the engine",
                {"row": str(prev_id), "head": str(head[0])},
            ),
        )
    beyond = [a for a in signed if a.row > prev_id]
    if beyond:
        anchor = min(beyond, key=lambda a: a.row)
        return broken(
            prev_id + 1,
            Message(
                "history row #%(row)s, anchored %(taken)s (key %(key)s), is missing: the chain"
                " now ends at #%(last)s, so rows were deleted and the chain's head rewritten",
                {
                    "row": str(anchor.row),
                    "taken": anchor.shown_time,
                    "key": anchor.fingerprint,
                    "last": str(prev_id),
                },
            ),
        )
    missing_anchors = sorted(wanted - found)
    if missing_anchors:
        return broken(
            None,
            Message(
                "anchor %(anchor)s is not in the chain: the history before it was rewritten",
                {"anchor": missing_anchors[0]},
            ),
        )
    bad = conn.execute(
        "SELECT t.id, t.version, h.n, h.m FROM tracks t LEFT JOIN (SELECT track_id,"
        " count(*) AS n, max(seq) AS m FROM history GROUP BY track_id) h ON h.track_id = t.id"
        " WHERE h.n IS NULL OR h.n != t.version OR h.m != t.version ORDER BY t.id LIMIT 1"
    ).fetchone()
    if bad is not None:
        return broken(
            None,
            Message(
                "track #%(track)s is at version %(version)s but its history has %(n)s row(s)",
                {"track": str(bad[0]), "version": str(bad[1]), "n": str(bad[2] or 0)},
            ),
        )
    anchored = [a.summary() for a in held]
    return Verification(True, count, prev_id, prev, None, None, sorted(found), anchored)


def _rewritten(anchor: Anchor, stored: str, held: Sequence[Anchor]) -> Message:
    """What an anchored row that lost its hash means, narrowed by the last anchor still held."""
    params = {
        "row": str(anchor.row),
        "taken": anchor.shown_time,
        "key": anchor.fingerprint,
        "now": f"{stored[:16]}…",
        "was": f"{anchor.hash[:16]}…",
    }
    if not held:
        return Message(
            "history row #%(row)s no longer has the hash anchored %(taken)s (key %(key)s): it"
            " is %(now)s, the anchor says %(was)s; a row up to #%(row)s was changed and the"
            " chain recomputed after it",
            params,
        )
    last = held[-1]
    return Message(
        "history row #%(row)s no longer has the hash anchored %(taken)s (key %(key)s): it is"
        " %(now)s, the anchor says %(was)s; a row after #%(held)s (whose anchor of"
        " %(held_taken)s still holds) up to #%(row)s was changed and the chain recomputed"
        " after it",
        {**params, "held": str(last.row), "held_taken": last.shown_time},
    )


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


def export(db: Database, out: IO[str], fmt: str = "jsonl") -> int:
    """Write the trail as JSON lines or CSV (formula cells neutralised); return the rows."""
    if fmt not in FORMATS:
        raise InputError(
            Message(
                "unknown format %(format)s: expected one of %(expected)s",
                {"format": repr(fmt), "expected": ", ".join(FORMATS)},
            )
        )
    n = 0
    if fmt == "jsonl":
        for row in iter_rows(db):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        return n
    import csv

    from onboarding.csvio import safe_row  # here: every advance imports this module

    w = csv.writer(out, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for row in iter_rows(db):
        w.writerow(safe_row([row[c] for c in EXPORT_COLUMNS]))
        n += 1
    return n


# --- signed anchors ---------------------------------------------------------------------------
#
# An anchor is a short statement of the chain's head (row id and hash), the time and the
# database's identity (its outbox_instance token), signed with an Ed25519 key kept outside the
# database file. Kept by an auditor, it lets anyone with the database later check that the
# history still extends that head, even against someone who rewrote rows and recomputed the
# whole chain (docs/audit.md). The statement carries its public key, so the signature can be
# checked with the statement and the database alone; the key's fingerprint is what an auditor
# keeps from the first anchor.

KEY_ENV = "ONBOARDING_AUDIT_KEY"
KEY_SUFFIX = ".audit-key"
BEGIN = "-----BEGIN ONBOARDING AUDIT ANCHOR-----"
END = "-----END ONBOARDING AUDIT ANCHOR-----"
#: The statement's fields, in the order they are printed and signed.
ANCHOR_FIELDS = ("database", "row", "hash", "time", "key", "signature")
_SIGNED_HEADER = "onboarding audit anchor v1\n"
_KEY_PREFIX = "ed25519:"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"[0-9a-f]{1,64}")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Anchor:
    """One signed statement of the chain's head (see the section comment)."""

    database: str
    row: int
    hash: str
    time: str  # UTC, to the second: 2021-06-30T15:00:00Z
    key: bytes  # the raw 32-byte Ed25519 public key
    signature: bytes = b""

    def message(self) -> bytes:
        """The exact bytes signed: every field but the signature, one per line."""
        lines = [f"{name}: {self._value(name)}\n" for name in ANCHOR_FIELDS[:-1]]
        return (_SIGNED_HEADER + "".join(lines)).encode("ascii")

    def _value(self, name: str) -> str:
        if name == "key":
            return _KEY_PREFIX + base64.b64encode(self.key).decode("ascii")
        if name == "signature":
            return base64.b64encode(self.signature).decode("ascii")
        return str(getattr(self, name))

    def text(self) -> str:
        """The statement as printed and mailed (``parse_anchors`` reads it back)."""
        body = "".join(f"{name}: {self._value(name)}\n" for name in ANCHOR_FIELDS)
        return f"{BEGIN}\n{body}{END}\n"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    @property
    def shown_time(self) -> str:
        """The anchor's time in Copenhagen, to the minute."""
        moment = datetime.strptime(self.time, _TIME_FORMAT).replace(tzinfo=UTC)
        return moment.astimezone(clock.LOCAL).strftime("%Y-%m-%d %H:%M")

    def summary(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "hash": self.hash,
            "time": self.time,
            "shown": self.shown_time,
            "fingerprint": self.fingerprint,
        }


def fingerprint(public_key: bytes) -> str:
    """A public key's fingerprint, as ssh shows one: SHA256 and unpadded base64."""
    import hashlib  # here: only signing and verifying anchors need a key's fingerprint

    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


# --- the key ----------------------------------------------------------------------------------


def key_path(db_path: str | os.PathLike[str]) -> Path:
    """Where the signing key of the database at ``db_path`` lives: ``$ONBOARDING_AUDIT_KEY``,
    else ``<database>.audit-key`` next to it (a file of its own, never inside the database)."""
    env = os.environ.get(KEY_ENV)
    db_file = Path(db_path)
    path = Path(env).expanduser() if env else db_file.with_name(db_file.name + KEY_SUFFIX)
    taken = {db_file.name, f"{db_file.name}-wal", f"{db_file.name}-shm", f"{db_file.name}-journal"}
    if path.name in taken and path.parent.resolve() == db_file.parent.resolve():
        raise InputError(
            Message(
                "$%(env)s: %(path)s is the database's own file; name another file",
                {"env": KEY_ENV, "path": str(path)},
            )
        )
    return path


def load_key(path: Path) -> Ed25519PrivateKey | None:
    """The signing key in ``path`` (PEM, PKCS#8), or None when there is no such file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"audit key {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(
            f"audit key {path}: not an Ed25519 private key in PEM form; restore it from its"
            " backup (docs/audit.md)"
        )
    return key


def ensure_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key in ``path``, created (mode 0600) when there is none; and whether it
    was created now. Two processes creating it at once end up with the same key."""
    key = load_key(path)
    if key is not None:
        return key, False
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    new = Ed25519PrivateKey.generate()
    pem = new.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with suppress(FileNotFoundError):
            tmp.unlink()  # left by a crashed process with our pid
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask: only the owner may read it
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        # A hard link fails if the key appeared meanwhile: never replace a key.
        with suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        raise InputError(
            f"audit key {path}: cannot create it: {exc.strerror or exc} (set ${KEY_ENV} to"
            " another file)"
        ) from None
    finally:
        with suppress(OSError):
            tmp.unlink()
    key = load_key(path)
    if key is None:  # pragma: no cover - removed between link and read
        raise InputError(f"audit key {path}: it disappeared while being created")
    return key, key.public_key().public_bytes_raw() == new.public_key().public_bytes_raw()


def public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def key_mode_warning(path: Path) -> str | None:
    """A warning when others may read the key file (it should be 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return Message(
            "audit key %(path)s can be read by others (mode %(mode)s): chmod 600 %(path)s",
            {"path": str(path), "mode": f"{mode:04o}"},
        )
    return None


# --- taking and reading anchors ---------------------------------------------------------------


def database_token(db: Database) -> str:
    """This database's identity in anchors: the random token made by its first migration."""
    row = db.conn.execute("SELECT token FROM outbox_instance WHERE id = 1").fetchone()
    if row is None:
        raise InputError("this database has no identity token (outbox_instance): run 'init'")
    return str(row[0])


def require_history(result: Verification) -> None:
    """Refuse to anchor an empty history: there is no head to vouch for."""
    if result.head_id == 0:
        raise InputError("the history is empty: there is nothing to anchor yet")


def take_anchor(db: Database, key: Ed25519PrivateKey) -> tuple[Verification, Anchor | None]:
    """Verify the chain and sign its head; no anchor when the chain is broken (an anchor
    would vouch for the tampering) or empty (nothing to vouch for)."""
    result = verify(db)
    if not result.ok:
        return result, None
    require_history(result)
    moment = clock.now().astimezone(UTC).strftime(_TIME_FORMAT)
    unsigned = Anchor(database_token(db), result.head_id, result.head_hash, moment, public_key(key))
    return result, replace(unsigned, signature=key.sign(unsigned.message()))


def parse_anchors(text: str, where: str) -> list[Anchor]:
    """Every anchor statement in ``text`` (a file of them, a mail, quoted with ``>`` or not),
    each with a valid signature by the key it names; ``InputError`` naming ``where``
    otherwise. Nothing found is an error too."""
    lines = [line.strip().lstrip(">").strip() for line in text.splitlines()]
    anchors: list[Anchor] = []
    block: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        if line == BEGIN:
            if block is not None:
                raise InputError(f"{where}, line {number}: an anchor starts before the last ends")
            block, start = [], number
        elif line == END:
            if block is None:
                raise InputError(f"{where}, line {number}: an anchor ends that did not begin")
            anchors.append(_parse_block(block, f"{where}, anchor at line {start}"))
            block = None
        elif block is not None and line:
            block.append(line)
    if block is not None:
        raise InputError(f"{where}: the anchor at line {start} has no end line ({END})")
    if not anchors:
        raise InputError(f"{where}: no anchor statement in it (it starts with {BEGIN})")
    return anchors


def _parse_block(lines: Sequence[str], where: str) -> Anchor:
    values: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or name not in ANCHOR_FIELDS:
            raise InputError(f"{where}: unexpected line {shorten(line)!r}")
        if name in values:
            raise InputError(f"{where}: {name} is given twice")
        values[name] = value.strip()
    missing = [name for name in ANCHOR_FIELDS if name not in values]
    if missing:
        raise InputError(f"{where}: {', '.join(missing)} missing (the statement was cut)")
    database, row, hash_, time = (values[n] for n in ("database", "row", "hash", "time"))
    if not _TOKEN.fullmatch(database):
        raise InputError(f"{where}: database {shorten(database)!r} is not a database token")
    if not row.isascii() or not row.isdigit() or int(row) < 1:
        raise InputError(f"{where}: row {shorten(row)!r} is not a history row number")
    if not _HEX64.fullmatch(hash_):
        raise InputError(f"{where}: hash {shorten(hash_)!r} is not 64 hex digits")
    try:
        datetime.strptime(time, _TIME_FORMAT)
    except ValueError:
        raise InputError(
            f"{where}: time {shorten(time)!r} is not like 2021-06-30T15:00:00Z"
        ) from None
    if not values["key"].startswith(_KEY_PREFIX):
        raise InputError(f"{where}: key {shorten(values['key'])!r} is not an {_KEY_PREFIX} key")
    key = _base64(values["key"][len(_KEY_PREFIX) :], 32, f"{where}: key")
    signature = _base64(values["signature"], 64, f"{where}: signature")
    anchor = Anchor(database, int(row), hash_, time, key, signature)
    _check_signature(anchor, where)
    return anchor


def _base64(text: str, size: int, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        data = b""
    if len(data) != size:
        raise InputError(f"{what} is not {size} bytes in base64 (the statement was changed)")
    return data


def _check_signature(anchor: Anchor, where: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(anchor.key).verify(anchor.signature, anchor.message())
    except (InvalidSignature, ValueError):
        raise InputError(
            f"{where}: the signature does not match the statement (it was changed, or forged"
            f" without key {anchor.fingerprint})"
        ) from None


def read_anchor_option(value: str, stdin: TextIO | None = None) -> tuple[list[Anchor], list[str]]:
    """What ``--anchor VALUE`` names: a file of anchor statements, a statement's text, ``-``
    (stdin) or a bare 64-hex head hash (unsigned, checked only to be in the chain)."""
    text = value.strip()
    if _HEX64.fullmatch(text.lower()):
        return [], [text.lower()]
    if text == "-" and stdin is not None:
        return parse_anchors(stdin.read(), "--anchor - (stdin)"), []
    if BEGIN in text:
        return parse_anchors(text, "--anchor"), []
    path = Path(value)
    if path.is_file():
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--anchor {path}: cannot read it: {exc}") from None
        if _HEX64.fullmatch(content.strip().lower()):
            return [], [content.strip().lower()]
        return parse_anchors(content, str(path)), []
    raise InputError(
        f"--anchor {shorten(value)}: not a file, an anchor statement ({BEGIN} …) or a 64-hex"
        " head hash"
    )


def check_anchors(
    db: Database,
    anchors: Sequence[Anchor],
    local_key: bytes | None,
    trusted: Sequence[str] = (),
) -> None:
    """Refuse (``InputError``) anchors not made for this database or not by the trusted key:
    a fingerprint given (``trusted``), else this database's key file when there is one."""
    token = database_token(db) if anchors else ""
    for anchor in anchors:
        where = f"the anchor of #{anchor.row} taken {anchor.shown_time}"
        if anchor.database != token:
            raise InputError(f"{where} is of database {anchor.database}, not of this one ({token})")
        if trusted:
            if anchor.fingerprint not in trusted:
                raise InputError(
                    f"{where} is signed by key {anchor.fingerprint}, not by the key you trust"
                    f" ({', '.join(trusted)})"
                )
        elif local_key is not None and anchor.key != local_key:
            raise InputError(
                f"{where} is signed by key {anchor.fingerprint}, not by this database's audit"
                f" key ({fingerprint(local_key)}): give the fingerprint you trust with --key"
            )


# --- mailing an anchor ------------------------------------------------------------------------


def anchor_message(anchor: Anchor, mail_from: str, to: Sequence[str], domain: str) -> EmailMessage:
    """A plain text mail (Danish) carrying the statement, for the auditor to keep."""
    # The email package here, not with the module: every advance appends to the chain.
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = (
        f"Revisionsanker for onboarding-databasen {anchor.database}: række #{anchor.row}"
    )
    msg["Date"] = format_datetime(clock.now().astimezone(UTC))
    msg["Message-ID"] = make_msgid("audit-anchor", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        f"Dette er et signeret anker for revisionssporet i onboarding-databasen"
        f" {anchor.database}.\n\n"
        f"Den {anchor.shown_time} sluttede historikken med række #{anchor.row}, der havde"
        f" hashværdien\n{anchor.hash}.\n\n"
        "Gem denne mail uden for systemet. Så kan enhver senere kontrollere, at historikken\n"
        "stadig bygger videre på dette punkt og ikke er skrevet om: gem teksten mellem de to\n"
        "stregede linjer i en fil, fx anker.txt, og kør\n\n"
        "    onboarding audit verify --anchor anker.txt\n\n"
        f"Ankeret er signeret med nøglen {anchor.fingerprint}. Sammenlign fingeraftrykket\n"
        "med det fra det første anker, du fik: er det et andet, er nøglen skiftet.\n\n"
        f"{anchor.text()}"
    )
    return msg


def mail_anchor(db: Database, db_path: Path, anchor: Anchor, to: Sequence[str]) -> str:
    """Send the anchor through the mail settings of the database (SMTP, or an .eml file in
    the outbox folder when no server is configured); return where it went."""
    from notifications.config import load_config
    from notifications.send import DeliveryError, open_transport

    addresses = [_address(a) for a in to]
    config = load_config(db_path, db=db)
    msg = anchor_message(anchor, config.mail_from, addresses, config.domain)
    try:
        with open_transport(config) as transport:
            transport.open()
            refused = transport.send(msg, addresses)
    except DeliveryError as exc:
        raise InputError(f"the anchor was not sent: {exc}") from None
    if refused:
        shown = "; ".join(f"{a}: {r}" for a, r in refused.items())
        raise InputError(f"the anchor was not accepted for {shown}")
    if config.smtp is None:
        return Message(
            "written to %(folder)s (no SMTP server configured)", {"folder": str(config.outbox_dir)}
        )
    return Message(
        "sent to %(to)s through %(host)s",
        {"to": ", ".join(addresses), "host": config.smtp.host},
    )


def _address(value: str) -> str:
    from email.utils import parseaddr

    addr = parseaddr(value)[1]
    if "@" not in addr or any(c in value for c in "\r\n"):
        raise InputError(f"--mail {shorten(value)!r} is not an email address")
    return addr
