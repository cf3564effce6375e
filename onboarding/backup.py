"""``onboarding backup`` and ``onboarding restore``: a copy of the database, safely, and back.

* ``backup`` uses SQLite's online backup API in one step: it copies a consistent snapshot (one
  read transaction) while other processes go on writing (WAL: readers never block writers).
  The copy is written to a temporary file next to the target, switched to a self-contained
  rollback-journal file, checked (``PRAGMA integrity_check``), flushed to disk and only then
  renamed into place, so a crash never leaves a half-written backup under the target's name.
* ``restore`` first checks that the file is a database of this tool: a SQLite file that passes
  ``integrity_check``, with this tool's migrations table listing only migrations this version
  knows and the core tables. Anything else is refused (a user error, exit 2) and nothing is
  touched. It then keeps the current database as ``<db>.before-restore-<time>.db`` and copies
  the backup into place with the backup API (other connections see the restored content).
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from onboarding import audit
from onboarding.db import (
    APPLICATION_ID,
    connect,
    migrations,
    newer_version_problem,
    open_existing,
)
from onboarding.errors import InputError
from onboarding.i18n import Message
from onboarding.storage import guard, remove_with_journals

HEADER = b"SQLite format 3\x00"
CORE_TABLES = ("tracks", "history", "definitions", "municipalities")


def _summary(conn: sqlite3.Connection) -> dict[str, Any]:
    tracks = conn.execute("SELECT count(*) FROM tracks").fetchone()[0]
    rows = conn.execute("SELECT count(*) FROM history").fetchone()[0]
    return {"tracks": int(tracks), "history_rows": int(rows)}


def backup(db_path: Path, target: Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Copy the database at ``db_path`` to ``target`` (see the module doc); return a summary."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise InputError(
            Message(
                "%(target)s exists: give another file name, or --force to replace it",
                {"target": str(target)},
            )
        )
    if target.exists() and target.resolve() == Path(db_path).resolve():
        raise InputError(Message("%(target)s is the database itself", {"target": str(target)}))
    if target.is_dir():
        raise InputError(
            Message("%(target)s is a folder: give a file name", {"target": str(target)})
        )
    if not target.parent.is_dir():
        raise InputError(Message("%(folder)s does not exist", {"folder": str(target.parent)}))
    db = open_existing(db_path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with guard(target):  # a full disk or read-only folder is said of the backup file
            dest = sqlite3.connect(tmp)
            try:
                db.conn.backup(dest)  # pages=-1: the whole database from one snapshot
                dest.execute("PRAGMA journal_mode = DELETE")
                check = dest.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":  # pragma: no cover - a copy of a sound database
                    raise InputError(
                        Message(
                            "the copy failed its integrity check: %(check)s",
                            {"check": str(check)},
                        )
                    )
                info = _summary(dest)
            finally:
                dest.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
    except BaseException:
        remove_with_journals(tmp)
        raise
    finally:
        db.close()
    return {"file": str(target), "bytes": target.stat().st_size, **info}


def check(path: Path) -> dict[str, Any]:
    """Refuse (``InputError``) unless ``path`` is a sound database of this tool; a summary."""
    path = Path(path)
    if not path.is_file():
        raise InputError(Message("%(path)s: no such file", {"path": str(path)}))
    with open(path, "rb") as f:
        if f.read(16) != HEADER:
            raise InputError(Message("%(path)s: not a SQLite database", {"path": str(path)}))
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:  # pragma: no cover - a readable file with the header
        raise InputError(
            Message("%(path)s: cannot open: %(reason)s", {"path": str(path), "reason": str(exc)})
        ) from None
    try:
        try:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            raise InputError(
                Message(
                    "%(path)s: damaged database: %(reason)s",
                    {"path": str(path), "reason": str(exc)},
                )
            ) from None
        if result != ["ok"]:
            raise InputError(
                Message(
                    "%(path)s: fails the integrity check: %(problems)s",
                    {"path": str(path), "problems": "; ".join(result[:3])},
                )
            )
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if app_id not in (0, APPLICATION_ID):
            raise InputError(
                Message(
                    "%(path)s: not a database of this tool (SQLite application_id %(id)s)",
                    {"path": str(path), "id": f"{app_id:#010x}"},
                )
            )
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "_sqlite_migrations" not in tables:
            raise InputError(
                Message(
                    "%(path)s: not a database of this tool (no migrations table)",
                    {"path": str(path)},
                )
            )
        applied = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY id",
                [migrations.name],
            )
        ]
        if not applied:
            raise InputError(
                Message(
                    "%(path)s: not a database of this tool (no onboarding migrations)",
                    {"path": str(path)},
                )
            )
        user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        newer = newer_version_problem(applied, user_version)
        if newer:
            raise InputError(
                Message("%(path)s: %(problem)s", {"path": str(path), "problem": newer})
            )
        known = [m.name for m in migrations._migrations]
        missing = [t for t in CORE_TABLES if t not in tables]
        if missing:
            raise InputError(
                Message(
                    "%(path)s: not a database of this tool (no %(tables)s)",
                    {"path": str(path), "tables": ", ".join(missing)},
                )
            )
        pending = [name for name in known if name not in applied]
        return {"file": str(path), **_summary(conn), "pending_migrations": pending}
    finally:
        conn.close()


def restore(
    source: Path, db_path: Path, checked: tuple[dict[str, Any], str | None] | None = None
) -> dict[str, Any]:
    """Replace the database at ``db_path`` with the backup ``source`` (see the module doc).

    ``checked`` is what a caller that has just checked ``source`` found (``check``'s summary
    and its ``audit verify`` line, None with migrations pending): a restore from a replica
    checks the file before it calls this, and on a large database each check takes seconds."""
    source, db_path = Path(source), Path(db_path)
    if db_path.exists() and source.resolve() == db_path.resolve():
        raise InputError(Message("%(target)s is the database itself", {"target": str(source)}))
    info = dict(checked[0]) if checked else check(source)
    kept = None
    if db_path.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kept = db_path.with_name(f"{db_path.name}.before-restore-{stamp}.db")
        current = connect(db_path)  # refuses a file that is not ours, changing nothing
        try:
            with guard(kept):
                dest = sqlite3.connect(kept)
                try:
                    current.conn.backup(dest)
                    dest.execute("PRAGMA journal_mode = DELETE")
                finally:
                    dest.close()
        except BaseException:
            remove_with_journals(kept)
            raise
        finally:
            current.close()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    db = connect(db_path)
    try:
        with guard(db_path):
            src.backup(db.conn)
            db.conn.execute("PRAGMA journal_mode = WAL")
        info["kept"] = str(kept) if kept else None
        info["audit"] = None
        if checked:
            info["audit"] = checked[1]
        elif not info["pending_migrations"]:
            info["audit"] = audit.verify(db).line()
    finally:
        src.close()
        db.close()
    return info
