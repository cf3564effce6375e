"""Storage faults as one line a person can act on: the ONE place that reads SQLite and OS errors.

A full disk, a read-only file, folder or file system, a file that is not a database, a lock
held too long, a missing folder or a missing permission are not bugs: each becomes a
``StorageError`` (exit code 2 in the CLI) that names the file, says what is wrong and what to
do. Nothing was written when it is raised: every write of ours is one transaction, and a
transaction that fails is rolled back (``onboarding.db.rollback``).

``describe`` maps an exception; ``guard`` applies it around a block for one file; ``writing``
and ``write_text`` write an output file (``-o``) through a temporary file next to it, so a
failed write leaves neither a partial file nor a temporary one.

Any other ``sqlite3`` or ``OSError`` (a syntax error in our SQL, an unknown column) is left
alone: it is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from onboarding.errors import OnboardingError
from onboarding.i18n import Message as M

# SQLite's primary result codes (https://sqlite.org/rescode.html); ``sqlite_errorcode`` holds
# the extended code, whose low byte is the primary one.
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26

#: Below this many free bytes a failed open or write is put down to a full disk.
NEARLY_FULL = 256 * 1024


class StorageError(OnboardingError):
    """The disk or the file could not do what was asked (see the module doc)."""


def describe(exc: BaseException, path: Path | str | None = None) -> StorageError | None:
    """The one-line error for ``exc`` about ``path`` (the database or an output file), or
    ``None`` when ``exc`` is not a storage fault (then it is a bug and is re-raised)."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        return _from_sqlite(code & 0xFF, str(exc), Path(path) if path else None)
    if isinstance(exc, OSError):
        target = exc.filename if exc.filename is not None else path
        return _from_os(exc, Path(os.fsdecode(target)) if target is not None else None)
    return None


@contextmanager
def guard(path: Path | str | None, *, os_errors: bool = True) -> Iterator[None]:
    """Turn storage faults raised in the block into ``StorageError`` naming ``path``.

    ``os_errors=False`` leaves OS errors alone: around a command's use of its database, an
    ``OSError`` is about another file (stdout, an output file) and is named by its own
    ``filename`` where the CLI catches it.
    """
    handled = (sqlite3.Error, OSError) if os_errors else (sqlite3.Error,)
    try:
        yield
    except handled as exc:
        error = describe(exc, path)
        if error is None:
            raise
        raise error from exc


def _name(path: Path | None) -> str | M:
    return str(path) if path else M("the database")


def _from_sqlite(primary: int, text: str, path: Path | None) -> StorageError | None:
    where = _name(path)
    if primary == SQLITE_FULL:
        return full(path)
    if primary == SQLITE_READONLY:
        return read_only(path)
    if primary == SQLITE_NOTADB:
        return StorageError(
            M(
                "%(where)s is not a SQLite database: give --db the path of an onboarding database",
                {"where": where},
            )
        )
    if primary == SQLITE_CORRUPT:
        return StorageError(
            M(
                "%(where)s is damaged (%(detail)s): restore a backup with 'onboarding restore'",
                {"where": where, "detail": text},
            )
        )
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return StorageError(
            M(
                "%(where)s stayed locked by another process longer than we wait; nothing was "
                "written: try again when it has finished",
                {"where": where},
            )
        )
    if primary == SQLITE_PERM:
        return StorageError(
            M("no permission to use %(where)s: check the file's owner and mode", {"where": where})
        )
    if primary in (SQLITE_CANTOPEN, SQLITE_IOERR):
        # SQLite does not say why; the file system does.
        found = _diagnose(path)
        if found:
            return found
        if primary == SQLITE_CANTOPEN:
            return StorageError(
                M("cannot open %(where)s: check the disk and the file's folder", {"where": where})
            )
        return StorageError(
            M(
                "%(detail)s on %(where)s: check the disk and the file's folder",
                {"detail": text, "where": where},
            )
        )
    return None


def _from_os(exc: OSError, path: Path | None) -> StorageError | None:
    where = _name(path)
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return full(path)
    if code == errno.EROFS:
        return read_only(path)
    if path is None:  # a permission or missing-file error about no file we know is not ours
        return None
    if code in (errno.EACCES, errno.EPERM):
        return _diagnose(path) or StorageError(
            M("no permission to use %(where)s: check its owner and mode", {"where": where})
        )
    if code == errno.ENOENT:
        return (
            missing_folder(path)
            if not path.parent.is_dir()
            else StorageError(M("%(where)s does not exist", {"where": where}))
        )
    if code == errno.ENOTDIR:
        return StorageError(
            M("%(where)s: a part of the path is a file, not a folder", {"where": where})
        )
    if code == errno.EISDIR:
        return StorageError(M("%(where)s is a folder: give a file name", {"where": where}))
    return None


def full(path: Path | None) -> StorageError:
    if path is None:  # writing to stdout redirected to a file, say
        return StorageError(M("the disk is full: free some space and run the command again"))
    return StorageError(
        M(
            "the disk holding %(path)s is full (or the database reached its size limit); "
            "nothing was written: free some space and run the command again",
            {"path": str(path)},
        )
    )


def missing_folder(path: Path) -> StorageError:
    return StorageError(
        M(
            "cannot use %(path)s: folder %(folder)s does not exist",
            {"path": str(path), "folder": str(path.parent)},
        )
    )


def read_only(path: Path | None) -> StorageError:
    """Which of file, folder or file system is read-only, as far as we can tell."""
    return _diagnose(path, assume_read_only=True) or StorageError(
        M("%(path)s is read-only; nothing was written", {"path": str(path)})
        if path
        else M("the file system is read-only")
    )


def _diagnose(path: Path | None, *, assume_read_only: bool = False) -> StorageError | None:
    """Ask the file system why ``path`` cannot be opened or written: a missing folder, a full
    disk, a read-only file system, folder or file, or no permission; ``None`` if it cannot
    tell. (``os.access`` sees the immutable flag and read-only mounts, even for root.)"""
    if path is None:
        return None
    folder = path.parent
    if not folder.is_dir():
        return missing_folder(path)
    try:
        stat = os.statvfs(folder)
    except OSError:
        stat = None
    if stat is not None and stat.f_flag & os.ST_RDONLY:
        return StorageError(
            M(
                "%(path)s is on a read-only file system; nothing was written: copy it somewhere "
                "writable or remount the file system read-write",
                {"path": str(path)},
            )
        )
    if stat is not None and stat.f_bavail * stat.f_frsize < NEARLY_FULL:
        return full(path)
    if path.exists() and not os.access(path, os.R_OK):
        return StorageError(
            M(
                "no permission to read %(path)s: check the file's owner and mode",
                {"path": str(path)},
            )
        )
    if path.exists() and not os.access(path, os.W_OK):
        return StorageError(
            M(
                "%(path)s is read-only; nothing was written: make it writable (chmod u+w) to "
                "change it",
                {"path": str(path)},
            )
        )
    if not path.exists() and not os.access(folder, os.W_OK):
        return StorageError(
            M(
                "cannot create %(path)s: folder %(folder)s is read-only",
                {"path": str(path), "folder": str(folder)},
            )
        )
    if not os.access(folder, os.W_OK):
        return StorageError(
            M(
                "folder %(folder)s is read-only; nothing was written: SQLite must be able to "
                "create %(name)s-wal and %(name)s-shm next to the database, so make the folder "
                "writable",
                {"folder": str(folder), "name": path.name},
            )
        )
    if assume_read_only:
        return StorageError(M("%(path)s is read-only; nothing was written", {"path": str(path)}))
    return None


JOURNAL_SUFFIXES = ("-journal", "-wal", "-shm")


def remove_with_journals(path: Path) -> None:
    """Remove a database file this command created and that failed, with the journal files
    SQLite left beside it (a failed copy must not leave ``*.tmp-journal`` behind)."""
    for leftover in (path, *(path.with_name(path.name + s) for s in JOURNAL_SUFFIXES)):
        with contextlib.suppress(OSError):
            leftover.unlink()


# --- output files (-o) ------------------------------------------------------------------------


def check_output(path: Path | str) -> Path:
    """Refuse an output path whose folder is missing (before any work is done)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise StorageError(
            M(
                "cannot write %(path)s: folder %(folder)s does not exist",
                {"path": str(target), "folder": str(target.parent)},
            )
        )
    if target.is_dir():
        raise StorageError(
            M("cannot write %(path)s: it is a folder, give a file name", {"path": str(target)})
        )
    return target


@contextmanager
def writing(path: Path | str, *, newline: str | None = None) -> Iterator[IO[str]]:
    """A text file opened for writing that appears at ``path`` only when the block succeeds
    (written to a temporary file beside it, then renamed); a failure removes the temporary
    file and keeps whatever ``path`` held before."""
    target = check_output(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with guard(target):
            with open(tmp, "w", encoding="utf-8", newline=newline) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (see ``writing``)."""
    with writing(path) as f:
        f.write(text)
