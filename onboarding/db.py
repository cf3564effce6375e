"""Opening the database and the ordered schema migrations.

One SQLite file holds everything: the registry, tracks, their history and (later) the outbox.
Schema changes are named, ordered migrations (applied by ``sqlite_utils.Migrations``);
``onboarding init`` applies the pending ones and is safe to run again.

Opening a database does not import sqlite-utils (about 36 ms of every command's start, while
the library only ever calls ``execute`` and ``conn`` on it): ``Database`` is a small wrapper of
a plain ``sqlite3`` connection, and the schema check reads ``PRAGMA user_version``,
``application_id`` and the migrations table directly. sqlite-utils is loaded only by what uses
its richer API: applying migrations (``initialise``), and callers that ask ``Database.utils``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onboarding.errors import OnboardingError
from onboarding.i18n import Message
from onboarding.storage import StorageError, guard, missing_folder

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_DB = "onboarding.db"


class Database:
    """One open database of ours: a plain ``sqlite3`` connection and the few calls the library
    makes on it (``conn``, ``execute``, ``executescript``, ``close``), without importing
    sqlite-utils.

    The full ``sqlite_utils.Database`` on the same connection is ``utils`` (imported on first
    use). Tests and scripts written against sqlite-utils (``db["tracks"].rows``,
    ``db.query``) keep working: any other attribute or item is looked up there, at run time
    only, so mypy still holds the library to the four calls above.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._utils: sqlite_utils.Database | None = None

    def execute(
        self, sql: str, parameters: Iterable[Any] | Mapping[str, Any] | None = None
    ) -> sqlite3.Cursor:
        # The connection is in autocommit mode (isolation_level=None): a statement outside a
        # transaction commits by itself, as sqlite-utils' execute() does.
        if parameters is None:
            return self.conn.execute(sql)
        return self.conn.execute(sql, parameters)  # type: ignore[arg-type]

    def executescript(self, sql: str) -> sqlite3.Cursor:
        # sqlite-utils runs a script inside an open transaction statement by statement
        # (sqlite3's executescript would commit it first): only migrations use this.
        return self.utils.executescript(sql)

    def close(self) -> None:
        self.conn.close()

    @property
    def utils(self) -> sqlite_utils.Database:
        """sqlite-utils' ``Database`` on this connection (no plugins; recursive triggers
        already on, see ``connect``)."""
        if self._utils is None:
            import sqlite_utils

            self._utils = sqlite_utils.Database(
                self.conn, recursive_triggers=False, execute_plugins=False
            )
        return self._utils

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__") or name == "_utils":
                raise AttributeError(name)
            return getattr(self.utils, name)

        def __getitem__(self, name: str) -> Any:
            return self.utils[name]


class Migration:
    """One named schema change (a plain class: a dataclass costs every command's start)."""

    __slots__ = ("fn", "name")

    def __init__(self, name: str, fn: Callable[[Any], None]) -> None:
        self.name = name
        self.fn = fn


class MigrationSet:
    """The ordered, named schema changes: registered with ``@migrations(name=...)`` as with
    ``sqlite_utils.Migrations`` (same table, same set name, so existing files read the same),
    handed to it only when they are applied, so that registering them imports nothing."""

    migrations_table = "_sqlite_migrations"

    def __init__(self, name: str) -> None:
        self.name = name
        self._migrations: list[Migration] = []

    def __call__(self, *, name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        def inner(fn: Callable[[Any], None]) -> Callable[[Any], None]:
            if any(m.name == name for m in self._migrations):
                raise ValueError(f"migration {name!r} is registered twice")
            self._migrations.append(Migration(name, fn))
            return fn

        return inner

    def _utils(self) -> Any:
        import sqlite_utils

        out = sqlite_utils.Migrations(self.name)
        for m in self._migrations:
            out(name=m.name)(m.fn)
        return out

    def pending(self, db: Database) -> list[Migration]:
        """The migrations not yet applied to ``db``, in order (reads only)."""
        applied = set(applied_migrations(db.conn) or [])
        return [m for m in self._migrations if m.name not in applied]

    def apply(self, db: Any, *, stop_before: str | None = None) -> None:
        """Apply the pending migrations, each in its own transaction (sqlite-utils); ``db`` is
        ours or a ``sqlite_utils.Database``."""
        self._utils().apply(db.utils if isinstance(db, Database) else db, stop_before=stop_before)


migrations = MigrationSet("onboarding")

#: ``PRAGMA application_id`` of every database this tool creates (bytes 68-71 of the file's
#: header): the four letters "ONBD". A file with another non-zero id belongs to another
#: application and is never changed. Databases created before the id existed have 0 there and
#: are recognised by this tool's rows in ``_sqlite_migrations``; ``onboarding init`` stamps them.
APPLICATION_ID = int.from_bytes(b"ONBD", "big")  # 0x4F4E4244 = 1330528836

#: Test hook, read by ``connect`` only: ``PRAGMA max_page_count`` for every connection, which
#: makes a full disk reproducible on any machine (tests/test_storage_faults.py). Not for use.
TEST_MAX_PAGES_ENV = "ONBOARDING_TEST_MAX_PAGE_COUNT"

SQLITE_HEADER = b"SQLite format 3\x00"


class NotInitialised(Exception):
    """The database file has no onboarding schema yet."""


class NotOurs(StorageError):
    """A file that is not a database of this tool (another application's, or not SQLite)."""


class NewerVersion(StorageError):
    """A database written by a newer version of this tool: nothing here may read or change it."""


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The database path: the argument, else ``$ONBOARDING_DB``, else ``./onboarding.db``."""
    if path:
        return Path(path)
    return Path(os.environ.get("ONBOARDING_DB") or DEFAULT_DB)


def connect(path: str | os.PathLike[str]) -> Database:
    """Open a connection with the pragmas every connection needs, creating an empty file when
    there is none; refuse (``NotOurs``, ``NewerVersion``) a file that is not ours.

    Only our files are changed: before ``PRAGMA journal_mode = WAL`` (which rewrites bytes 18
    and 19 of the header) or any write, the file must be new or empty, or carry our
    ``APPLICATION_ID``, or (written before the id existed) our migrations. A refused file is
    left byte-identical: checking it only reads.

    ``isolation_level=None`` leaves transaction control to us (``BEGIN IMMEDIATE`` for every
    read-modify-write); a busy timeout lets concurrent writers wait instead of failing.
    WAL with ``synchronous=NORMAL`` survives a process crash (README: storage choices).
    Storage faults (missing folder, read-only, full disk) raise ``StorageError``.
    """
    p = Path(path)
    with guard(p):
        _check_header(p)
        conn = sqlite3.connect(str(p), timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 30000")
            # As sqlite-utils' Database set it on every connection before (recursive_triggers
            # defaults to True there): kept, so triggers behave as they always have.
            conn.execute("PRAGMA recursive_triggers = ON")
            check_ours(conn, p)
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            limit = os.environ.get(TEST_MAX_PAGES_ENV)
            if limit:
                conn.execute(f"PRAGMA max_page_count = {int(limit)}")
        except BaseException:
            conn.close()
            raise
    # No sqlite-utils here (see the module doc); nor its plugins when it is loaded: none is
    # needed, and finding them scans the entry points of every installed package.
    return Database(conn)


#: Database files (device, inode) this process has already found to carry our application id:
#: their header is not read again with ``open()``. Closing any descriptor of a file drops every
#: POSIX lock the process holds on it, also the shared lock another thread's SQLite connection
#: holds on a WAL database; another process then believes it closed the last connection and
#: resets the WAL under that connection ("disk I/O error", SQLITE_IOERR_SHORT_READ, seen with
#: two 'serve' processes; SQLite's "How To Corrupt An SQLite Database File", 2.2). Every
#: connection still checks the id through SQLite itself (``check_ours``).
_OURS: set[tuple[int, int]] = set()


def _check_header(p: Path) -> None:
    """Refuse, before SQLite opens it, a file that is not SQLite or has another application's
    id; a missing folder is said as such (SQLite would say "unable to open database file")."""
    if not p.parent.is_dir():
        raise missing_folder(p)
    if not p.exists():
        return
    st = p.stat()
    if (st.st_dev, st.st_ino) in _OURS:
        return
    with open(p, "rb") as f:
        header = f.read(100)
    if not header:
        return  # an empty file: a new database
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        raise NotOurs(
            Message(
                "%(path)s is not a SQLite database and was not changed: give --db the path of "
                "an onboarding database",
                {"path": str(p)},
            )
        )
    app_id = int.from_bytes(header[68:72], "big")
    if app_id not in (0, APPLICATION_ID):
        raise _foreign(p, f"SQLite application_id {app_id:#010x}")
    if app_id == APPLICATION_ID:
        _OURS.add((st.st_dev, st.st_ino))


def _foreign(p: Path, why: str | Message) -> NotOurs:
    return NotOurs(
        Message(
            "%(path)s is another application's SQLite database (%(why)s), not an onboarding "
            "database; it was not changed: give --db the path of an onboarding database",
            {"path": str(p), "why": why},
        )
    )


def applied_migrations(conn: sqlite3.Connection) -> list[str] | None:
    """Names of this tool's migrations recorded in the file, in order; ``None`` when the file
    has no migrations table at all."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        [migrations.migrations_table],
    ).fetchone()
    if not found:
        return None
    return [
        r[0]
        for r in conn.execute(
            f"SELECT name FROM {migrations.migrations_table} WHERE migration_set = ? "
            "ORDER BY rowid",
            [migrations.name],
        )
    ]


def check_ours(conn: sqlite3.Connection, p: Path) -> None:
    """Refuse (read only) a database that is another application's or from a newer version
    of this tool; accept an empty one (see ``connect``)."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    applied = applied_migrations(conn)
    if app_id not in (0, APPLICATION_ID):
        raise _foreign(p, f"SQLite application_id {app_id:#010x}")
    if app_id == 0 and not applied:
        objects = conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        if objects or user_version:
            names = ", ".join(r[0] for r in objects[:3]) or f"user_version {user_version}"
            more = ", …" if len(objects) > 3 else ""
            raise _foreign(p, Message("it holds %(names)s", {"names": names + more}))
    problem = newer_version_problem(applied or [], user_version)
    if problem:
        raise NewerVersion(Message("%(path)s: %(problem)s", {"path": str(p), "problem": problem}))


def newer_version_problem(applied: list[str], user_version: int) -> Message | None:
    """Why a database with these migrations and ``PRAGMA user_version`` is from a newer version
    of this tool (naming its schema and ours), or ``None``."""
    known = [m.name for m in migrations._migrations]
    unknown = [name for name in applied if name not in known]
    if not unknown and user_version <= len(known):
        return None
    if unknown:
        theirs = Message("schema %(names)s", {"names": ", ".join(unknown)})
    else:
        theirs = Message("schema version %(n)s", {"n": str(user_version)})
    return Message(
        "made by a newer version of this tool (%(theirs)s); this version (%(tool)s) knows "
        "schema version %(n)s (%(newest)s) and does not read or change it: use the newer "
        "version of onboarding",
        {"theirs": theirs, "tool": _tool_version(), "n": str(len(known)), "newest": known[-1]},
    )


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"onboarding {version('onboarding')}"
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "onboarding"


def open_existing(path: str | os.PathLike[str]) -> Database:
    """Open a database that ``onboarding init`` has already created."""
    p = Path(path)
    if not p.parent.is_dir():
        raise missing_folder(p)
    if not p.exists():
        raise NotInitialised(
            Message(
                "database %(path)s does not exist: run 'onboarding init' first", {"path": str(p)}
            )
        )
    db = connect(p)
    try:
        with guard(p):
            applied = applied_migrations(db.conn) or []
    except BaseException:
        db.close()
        raise
    if any(m.name not in applied for m in migrations._migrations):
        db.close()
        raise NotInitialised(
            Message(
                "database %(path)s has no current onboarding schema: run 'onboarding init' to "
                "create or upgrade it",
                {"path": str(p)},
            )
        )
    return db


def current_schema_version() -> int:
    """The number of migrations this code knows; written to ``PRAGMA user_version``."""
    return len(migrations._migrations)


def schema_version(db: Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def initialise(db: Database) -> list[str]:
    """Stamp the file as ours and apply pending migrations; return the names applied (empty
    when already current). ``connect`` has checked the file is empty or ours."""
    if int(db.execute("PRAGMA application_id").fetchone()[0]) != APPLICATION_ID:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    if schema_version(db) != current_schema_version():
        db.execute(f"PRAGMA user_version = {current_schema_version()}")
    return pending


#: ``BEGIN IMMEDIATE`` waits up to the busy timeout (30 s) for the write lock; when another
#: process holds it even longer it is tried this many times in all before giving up.
LOCK_ATTEMPTS = 3


class DatabaseBusy(OnboardingError):
    """Another process held the write lock for longer than we wait (see ``begin_immediate``)."""


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` with a bounded retry: each attempt waits up to the busy timeout;
    after ``LOCK_ATTEMPTS`` a ``DatabaseBusy`` says so in words (never "database is locked")."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" not in text and "busy" not in text:
                raise
            if attempt == LOCK_ATTEMPTS:
                raise DatabaseBusy(
                    "the database stayed busy: another process has been writing to it for "
                    "minutes; nothing was written, try again when it has finished"
                ) from exc
            time.sleep(0.1 * attempt)


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if there still is one, while an error is handled.

    SQLite ends a transaction by itself after some errors (a full disk, an I/O error), and a
    ``ROLLBACK`` then fails with "cannot rollback - no transaction is active", which would hide
    the error that matters; so this never raises, and the caller re-raises the original.
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class immediate:
    """One write transaction taken with ``BEGIN IMMEDIATE`` (``begin_immediate``).

    A deferred transaction that reads and then writes fails at once with "database is locked"
    when another process committed in between; taking the write lock first avoids that.
    Everything inside commits together or not at all; a failure (also of the ``COMMIT``, as on
    a full disk) rolls back and raises its own cause (``rollback``).

    A class rather than a ``@contextmanager`` generator: every advance enters one, and the
    generator's frames cost about as much as one of the advance's statements (issue 14).
    """

    __slots__ = ("conn",)

    def __init__(self, db: Database) -> None:
        self.conn = db.conn

    def __enter__(self) -> sqlite3.Connection:
        begin_immediate(self.conn)
        return self.conn

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            rollback(self.conn)
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            rollback(self.conn)
            raise


@migrations(name="001_registry_tracks_history")
def _m001(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE municipalities (
            code INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            region TEXT,
            population INTEGER
        );
        CREATE TABLE vendors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE
        );
        CREATE TABLE systems (
            id INTEGER PRIMARY KEY,
            vendor_id INTEGER NOT NULL REFERENCES vendors(id),
            name TEXT NOT NULL COLLATE NOCASE,
            category TEXT NOT NULL,
            UNIQUE (vendor_id, name)
        );
        CREATE TABLE indices (
            code TEXT PRIMARY KEY,
            name TEXT NOT NULL
        );
        CREATE TABLE contracts (
            municipality_code INTEGER NOT NULL REFERENCES municipalities(code),
            system_id INTEGER NOT NULL REFERENCES systems(id),
            contract TEXT NOT NULL CHECK (
                contract IN ('ski-02.19-2019', 'ski-02.19-2014', 'eu-tender', 'unknown')
            ),
            PRIMARY KEY (municipality_code, system_id)
        );
        CREATE TABLE contacts (
            id INTEGER PRIMARY KEY,
            role TEXT NOT NULL,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            municipality_code INTEGER REFERENCES municipalities(code),
            vendor_id INTEGER REFERENCES vendors(id)
        );
        CREATE UNIQUE INDEX contacts_unique ON contacts (
            role, email, ifnull(municipality_code, 0), ifnull(vendor_id, 0)
        );
        CREATE TABLE klik_tasks (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            type TEXT NOT NULL CHECK (
                type IN ('Anbefalet', 'Obligatorisk', 'Obligatorisk på kritisk vej')
            ),
            end_date TEXT NOT NULL,
            duration TEXT
        );
        CREATE TABLE waves (
            code TEXT PRIMARY KEY COLLATE NOCASE,
            name TEXT NOT NULL,
            prepare_start TEXT,
            prepare_end TEXT,
            rollout_start TEXT,
            rollout_end TEXT,
            go_live TEXT NOT NULL
        );

        CREATE TABLE tracks (
            id INTEGER PRIMARY KEY,
            definition TEXT NOT NULL,
            def_version INTEGER NOT NULL,
            subject_key TEXT NOT NULL,
            municipality_code INTEGER REFERENCES municipalities(code),
            system_id INTEGER REFERENCES systems(id),
            index_set TEXT,
            bob INTEGER NOT NULL DEFAULT 0,
            klik_task_id INTEGER REFERENCES klik_tasks(id),
            course INTEGER,
            state TEXT NOT NULL,
            final INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL,
            fields TEXT NOT NULL DEFAULT '{}',
            entered_at TEXT NOT NULL,
            due TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        -- One open track per definition and subject; finished tracks may repeat.
        CREATE UNIQUE INDEX tracks_open_subject ON tracks (definition, subject_key)
            WHERE final = 0;
        CREATE INDEX tracks_definition_state ON tracks (definition, state);
        CREATE INDEX tracks_municipality ON tracks (municipality_code);
        CREATE INDEX tracks_system ON tracks (system_id);
        CREATE INDEX tracks_due ON tracks (due) WHERE final = 0;

        CREATE TABLE history (
            id INTEGER PRIMARY KEY,
            track_id INTEGER NOT NULL REFERENCES tracks(id),
            seq INTEGER NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            trigger TEXT NOT NULL,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            note TEXT,
            at TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            def_version INTEGER NOT NULL,
            fields TEXT NOT NULL DEFAULT '{}',
            UNIQUE (track_id, seq)
        );
        CREATE INDEX history_at ON history (at);
        CREATE INDEX history_actor ON history (actor, at);
        -- The history is evidence: rows are appended, never changed.
        CREATE TRIGGER history_no_update BEFORE UPDATE ON history
            BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
        CREATE TRIGGER history_no_delete BEFORE DELETE ON history
            BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;

        CREATE TABLE definitions (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            source TEXT NOT NULL,
            registered_at TEXT NOT NULL,
            PRIMARY KEY (name, version)
        );
        """
    )


@migrations(name="002_outbox")
def _m002(db: Database) -> None:
    # The outbox is the record of every email that must go out (see docs/notifications.md).
    # One row per (track, state entry, notification): the entry is the history row (seq) that
    # entered the state, so the unique key makes each notification exist once.
    db.executescript(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            track_id INTEGER NOT NULL REFERENCES tracks(id),
            entry_seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            notification TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('reminder', 'notice', 'escalation')),
            template TEXT NOT NULL,
            recipients TEXT NOT NULL,
            on_leave TEXT NOT NULL CHECK (on_leave IN ('keep', 'cancel')),
            cancel_on TEXT NOT NULL DEFAULT '[]',
            due_date TEXT,
            due_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (
                status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')
            ),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_by TEXT,
            lease_until TEXT,
            sent_at TEXT,
            sent_to TEXT,
            message_id TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (track_id, entry_seq, notification)
        );
        CREATE INDEX outbox_ready ON outbox (next_attempt_at, id)
            WHERE status = 'pending';
        CREATE INDEX outbox_sending ON outbox (lease_until) WHERE status = 'sending';
        CREATE INDEX outbox_track ON outbox (track_id, status);
        CREATE INDEX outbox_failed ON outbox (due_at) WHERE status = 'failed';

        -- A random token per database, part of every Message-ID, so two databases never
        -- produce the same Message-ID for different messages.
        CREATE TABLE outbox_instance (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            token TEXT NOT NULL
        );
        INSERT INTO outbox_instance (id, token) VALUES (1, lower(hex(randomblob(6))));
        """
    )


@migrations(name="003_reports")
def _m003(db: Database) -> None:
    # Reports (docs/reports.md): counters the tool cannot derive, recorded by 'goals record'
    # (append-only: the latest recorded value on or before a date counts), and the date from
    # which a contract the status import recorded is known, so '--as-of' an earlier date does
    # not count a municipality the registry only learnt about later.
    db.executescript(
        """
        CREATE TABLE goal_counters (
            id INTEGER PRIMARY KEY,
            counter TEXT NOT NULL,
            value INTEGER NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            note TEXT,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX goal_counters_counter ON goal_counters (counter, at);
        CREATE TRIGGER goal_counters_no_update BEFORE UPDATE ON goal_counters
            BEGIN SELECT RAISE(ABORT, 'goal counters are append-only'); END;

        CREATE TABLE contract_origins (
            municipality_code INTEGER NOT NULL REFERENCES municipalities(code),
            system_id INTEGER NOT NULL REFERENCES systems(id),
            since TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (municipality_code, system_id)
        );
        """
    )


@migrations(name="004_actors_audit")
def _m004(db: Database) -> None:
    # Issue 5 (docs/audit.md, docs/actors.md). Actors with roles and scopes; the hash chain
    # over history (existing rows are hashed here, in id order); the chain's head; an
    # append-only log of changes to actors and grants. Statements run one by one (not
    # executescript, which would commit) so the whole migration is one transaction.
    from onboarding.audit import GENESIS, rehash_all

    statements = [
        """
        CREATE TABLE actors (
            name TEXT PRIMARY KEY,
            display_name TEXT,
            email TEXT,
            password_hash TEXT,
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE actor_grants (
            id INTEGER PRIMARY KEY,
            actor TEXT NOT NULL REFERENCES actors(name) ON DELETE CASCADE,
            role TEXT NOT NULL,
            scope_kind TEXT NOT NULL CHECK (scope_kind IN ('all', 'municipality', 'vendor')),
            scope_value TEXT,
            created_at TEXT NOT NULL,
            CHECK ((scope_kind = 'all') = (scope_value IS NULL))
        )
        """,
        "CREATE UNIQUE INDEX actor_grants_unique ON actor_grants"
        " (actor, role, scope_kind, ifnull(scope_value, ''))",
        """
        CREATE TABLE actor_events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            by TEXT,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT
        )
        """,
        "CREATE TRIGGER actor_events_no_update BEFORE UPDATE ON actor_events"
        " BEGIN SELECT RAISE(ABORT, 'actor events are append-only'); END",
        "CREATE TRIGGER actor_events_no_delete BEFORE DELETE ON actor_events"
        " BEGIN SELECT RAISE(ABORT, 'actor events are append-only'); END",
        "ALTER TABLE history ADD COLUMN hash TEXT",
        """
        CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_id INTEGER NOT NULL,
            last_hash TEXT NOT NULL,
            rows INTEGER NOT NULL
        )
        """,
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head"
        " BEGIN SELECT RAISE(ABORT, 'the audit head is kept'); END",
        "DROP TRIGGER history_no_update",
    ]
    conn = db.conn
    for sql in statements:
        conn.execute(sql)
    last_id, last_hash, rows = rehash_all(conn)
    conn.execute(
        "INSERT INTO audit_head (id, last_id, last_hash, rows) VALUES (1, ?, ?, ?)",
        [last_id, last_hash if rows else GENESIS, rows],
    )
    for sql in (
        "CREATE TRIGGER history_no_update BEFORE UPDATE ON history"
        " BEGIN SELECT RAISE(ABORT, 'history is append-only'); END",
        # Every row is written through onboarding.audit.append, which chains it.
        "CREATE TRIGGER history_needs_hash BEFORE INSERT ON history WHEN NEW.hash IS NULL"
        " BEGIN SELECT RAISE(ABORT, 'history rows are written by the engine (hash chain)'); END",
    ):
        conn.execute(sql)


@migrations(name="005_mail")
def _m005(db: Database) -> None:
    # Issue 10 (docs/notifications.md). The outbox gains:
    # * status 'superseded': a lower rung of a ladder (or a reminder) due together with a higher
    #   one for the same track, state entry and recipients is recorded, never sent;
    # * ``level``: the rung a row is (reminders 0, escalations 1..n), so superseding is a query;
    # * ``handed_at``: when the current attempt was handed to the transport. A claim no longer
    #   counts an attempt; only a handover does, so a runner killed after claiming costs nothing
    #   and only a row actually handed over is "may have been delivered".
    # SQLite cannot change a CHECK constraint, so the table is rebuilt (same ids). Settings a
    # coordinator stores with 'onboarding mail configure' go in ``settings``.
    statements = [
        """
        CREATE TABLE outbox_new (
            id INTEGER PRIMARY KEY,
            track_id INTEGER NOT NULL REFERENCES tracks(id),
            entry_seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            notification TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('reminder', 'notice', 'escalation')),
            level INTEGER NOT NULL DEFAULT 0,
            template TEXT NOT NULL,
            recipients TEXT NOT NULL,
            on_leave TEXT NOT NULL CHECK (on_leave IN ('keep', 'cancel')),
            cancel_on TEXT NOT NULL DEFAULT '[]',
            due_date TEXT,
            due_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (
                status IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'superseded')
            ),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_by TEXT,
            lease_until TEXT,
            handed_at TEXT,
            sent_at TEXT,
            sent_to TEXT,
            message_id TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (track_id, entry_seq, notification)
        )
        """,
        # A ladder rung is named NAME-k; a plain escalation counts as rung 1.
        """
        INSERT INTO outbox_new (id, track_id, entry_seq, state, notification, kind, level,
            template, recipients, on_leave, cancel_on, due_date, due_at, status, attempts,
            next_attempt_at, claimed_by, lease_until, handed_at, sent_at, sent_to, message_id,
            last_error, created_at, updated_at)
        SELECT id, track_id, entry_seq, state, notification, kind,
            CASE WHEN kind != 'escalation' THEN 0
                 WHEN notification GLOB '*-[0-9]' OR notification GLOB '*-[0-9][0-9]'
                 THEN CAST(substr(notification, length(rtrim(notification, '0123456789')) + 1)
                      AS INTEGER)
                 ELSE 1 END,
            template, recipients, on_leave, cancel_on, due_date, due_at, status, attempts,
            next_attempt_at, claimed_by, lease_until,
            CASE WHEN status = 'sending' THEN updated_at END,
            sent_at, sent_to, message_id, last_error, created_at, updated_at
        FROM outbox
        """,
        "DROP TABLE outbox",
        "ALTER TABLE outbox_new RENAME TO outbox",
        "CREATE INDEX outbox_ready ON outbox (next_attempt_at, id) WHERE status = 'pending'",
        "CREATE INDEX outbox_sending ON outbox (lease_until) WHERE status = 'sending'",
        "CREATE INDEX outbox_track ON outbox (track_id, status)",
        "CREATE INDEX outbox_failed ON outbox (due_at) WHERE status = 'failed'",
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
    ]
    conn = db.conn
    for sql in statements:
        conn.execute(sql)


@migrations(name="006_definition_templates")
def _m006(db: Database) -> None:
    # Issue 12: a definition may ship its own mail templates (a folder beside its YAML, added by
    # 'workflow add'). They are stored with the definition version, file by file (``path`` is
    # relative to the folder: ``da/welcome.txt``), so mail of tracks on that version never
    # changes when the folder is edited later, and a copied database still has them.
    db.conn.execute(
        """
        CREATE TABLE definition_templates (
            definition TEXT NOT NULL,
            version INTEGER NOT NULL,
            path TEXT NOT NULL,
            content TEXT NOT NULL,
            PRIMARY KEY (definition, version, path),
            FOREIGN KEY (definition, version) REFERENCES definitions (name, version)
        )
        """
    )


@migrations(name="007_track_subjects")
def _m007(db: Database) -> None:
    # Issue 12: a definition declares what its tracks are about from the registry's kinds
    # (docs/workflows.md, "Subjects"). Two kinds had no column: a vendor on its own (a vendor's
    # certification, not one of its systems) and a free-text name (a project, an agency). Both
    # are NULL on every track that does not name them, so older tracks are unchanged.
    conn = db.conn
    for sql in (
        "ALTER TABLE tracks ADD COLUMN vendor_id INTEGER REFERENCES vendors(id)",
        "ALTER TABLE tracks ADD COLUMN subject_name TEXT",
        "CREATE INDEX tracks_vendor ON tracks (vendor_id) WHERE vendor_id IS NOT NULL",
    ):
        conn.execute(sql)


@migrations(name="009_lean_outbox")
def _m009(db: Database) -> None:
    # Issue 14 (bench/FINDINGS.md, "Lean writes"): an advance no longer writes a row per
    # reminder and escalation of the state it enters, nor cancels those of the state it
    # leaves. Each state entry's reminders and escalations are one ``outbox_plan`` row, appended
    # (its id is the last outbox id it reserves, so ids stay in the order rows were always
    # written in): the reserved ids, names and due times. The sender turns the ones that fall
    # due into outbox rows (same ids, same exactly-once key) right before claiming. The track
    # row carries its latest plan (``plan_id``, the head of the track's chain of plans through
    # ``prev_id``) and whether it is the current entry's (``plan_open``): leaving a state only
    # rewrites the track row, which the advance writes anyway; a left plan's rows are shown as
    # cancelled. ``outbox_track`` goes: the unique (track_id, entry_seq, notification) key
    # serves every lookup by track, and a cancel no longer moves an index entry. Existing rows
    # are kept as they are (same ids, statuses, times): pending reminders of a database
    # upgraded in place go out as before.
    conn = db.conn
    for sql in (
        "DROP INDEX IF EXISTS outbox_track",
        "ALTER TABLE tracks ADD COLUMN plan_id INTEGER",
        "ALTER TABLE tracks ADD COLUMN plan_open INTEGER NOT NULL DEFAULT 0",
        """
        CREATE TABLE outbox_plan (
            id INTEGER PRIMARY KEY,
            prev_id INTEGER,
            track_id INTEGER NOT NULL REFERENCES tracks(id),
            entry_seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            def_version INTEGER NOT NULL,
            due_date TEXT,
            made_at TEXT NOT NULL,
            rows TEXT NOT NULL,
            next_at TEXT
        )
        """,
        "CREATE INDEX outbox_plan_next ON outbox_plan (next_at) WHERE next_at IS NOT NULL",
    ):
        conn.execute(sql)


@migrations(name="010_parsed_definitions")
def _m010(db: Database) -> None:
    # Issue 14: each stored definition version keeps, beside its YAML, the document the YAML
    # parses to (JSON) and the SHA-256 of its text, so a command builds the definition without
    # a YAML parser and a process knows a version it has built by one small read
    # (onboarding/definitions.py). Existing versions are filled here, from their YAML.
    from onboarding.definitions import fill_documents

    conn = db.conn
    conn.execute("ALTER TABLE definitions ADD COLUMN document TEXT")
    conn.execute("ALTER TABLE definitions ADD COLUMN digest TEXT")
    fill_documents(conn)


@migrations(name="008_sessions")
def _m008(db: Database) -> None:
    # Issue 13 (docs/web.md, "Logging in"). The web page's sessions live here, not in a signed
    # cookie, so logging out, a revocation and a change of password end them for good: the
    # cookie holds only a random token, the table only its SHA-256 (a copied database cannot be
    # used to log in). Failed logins are kept per (name as typed, client address), so a
    # throttle survives a restart, is shared by several server processes and can be lifted
    # with 'onboarding actor unlock'.
    conn = db.conn
    for sql in (
        """
        CREATE TABLE web_sessions (
            token_hash TEXT PRIMARY KEY,
            actor TEXT REFERENCES actors(name) ON DELETE CASCADE,
            data TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            address TEXT,
            user_agent TEXT
        )
        """,
        "CREATE INDEX web_sessions_actor ON web_sessions (actor) WHERE actor IS NOT NULL",
        "CREATE INDEX web_sessions_expires ON web_sessions (expires_at)",
        """
        CREATE TABLE login_attempts (
            account TEXT NOT NULL,
            address TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            last_failure_at TEXT,
            blocked_until TEXT,
            last_success_at TEXT,
            PRIMARY KEY (account, address)
        )
        """,
        "CREATE INDEX login_attempts_address ON login_attempts (address, last_failure_at)",
    ):
        conn.execute(sql)


#: The rollout summary (schema 012_rollout_summary): how many tracks of each definition version
#: are in each state per municipality and system (-1: none named), kept by triggers on every
#: write of a track, so today's rollout report reads these counts instead of every track row.
ROLLOUT_SUMMARY = (
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
#: Fills the summary from the tracks (the migration, and a generator that bulk-inserts).
ROLLOUT_SUMMARY_FILL = (
    "INSERT INTO rollout_summary SELECT definition, def_version, ifnull(municipality_code, -1),"
    " ifnull(system_id, -1), state, count(*) FROM tracks GROUP BY 1, 3, 4, 2, 5"
)


@migrations(name="012_rollout_summary")
def _m012(db: Database) -> None:
    # Issue 14: the rollout report grouped every connection track by (municipality, system),
    # reading the whole track table. Measured against a covering index (bench/FINDINGS.md,
    # "Issue 14"): the summary read faster and cost the single advance less. contracts_system
    # serves the report's uses per system in index order.
    conn = db.conn
    for sql in ROLLOUT_SUMMARY:
        conn.execute(sql)
    conn.execute(ROLLOUT_SUMMARY_FILL)
    conn.execute("CREATE INDEX contracts_system ON contracts (system_id, municipality_code)")


@migrations(name="011_api")
def _m011(db: Database) -> None:
    # Issue 15, the HTTP JSON API (docs/api.md). API tokens belong to an actor and act with its
    # grants; only a SHA-256 digest of each token is stored (a token is 256 random bits, so a
    # fast digest is enough: nothing to brute-force), with a short prefix to tell tokens apart.
    # Idempotency keys remember, per actor and key, the request (its fingerprint) and the answer
    # of a write that succeeded, so a repeated request gets that answer and writes nothing.
    db.executescript(
        """
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            actor TEXT NOT NULL REFERENCES actors(name),
            digest TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            label TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT,
            last_used_at TEXT,
            revoked_at TEXT,
            revoked_by TEXT
        );
        CREATE INDEX api_tokens_actor ON api_tokens (actor);
        CREATE TABLE api_idempotency (
            actor TEXT NOT NULL,
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            status INTEGER,
            response TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (actor, key)
        );
        CREATE INDEX api_idempotency_created ON api_idempotency (created_at);
        """
    )


@migrations(name="013_rollout_buckets")
def _m013(db: Database) -> None:
    # Issue 14: today's rollout report read one summary row per (municipality, system, state),
    # 10^6 at the bench's shape, and the summary cost every advance two upserts. The counts it
    # prints are now kept per system and bucket (onboarding/rollup.py), written only when a
    # write changes a pair's best bucket or contract; the per-state summary goes.
    from onboarding import definitions, rollup

    conn = db.conn
    for sql in rollup.SCHEMA:
        conn.execute(sql)
    versions = [
        int(r[0])
        for r in conn.execute("SELECT version FROM definitions WHERE name = ?", [rollup.CONNECTION])
    ]
    rollup.remember_ranks(conn, [definitions.get(db, rollup.CONNECTION, v) for v in versions])
    for name in ("rollout_summary_insert", "rollout_summary_delete", "rollout_summary_update"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE rollout_summary")
    rollup.fill(conn)
    for sql in rollup.TRIGGERS:
        conn.execute(sql)
