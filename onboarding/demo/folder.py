"""The demo's folder: what a run replaces, and never losing what is not the demo's."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from onboarding import clock
from onboarding.demo.result import Echo, t
from onboarding.errors import InputError

#: The setting that marks a database as the demo's own (table ``settings``, written right after
#: the schema): only a database carrying it is replaced by the next run without ``--force``. A
#: marker in the database itself, not a file beside it, so a real database copied into the
#: folder is never mistaken for the demo's.
MARKER = "demo.created"

#: What a demo run writes in its folder: a run replaces exactly these, and only when they are
#: the demo's (``is_demo_database``).
_FILES = ("onboarding.db", "onboarding.db-wal", "onboarding.db-shm")
_FOLDERS = ("onboarding-outbox", "data")


def _present(directory: Path) -> list[Path]:
    """The demo's names that exist in ``directory`` (what a run would replace)."""
    found = [directory / n for n in (*_FILES, *_FOLDERS) if (directory / n).exists()]
    return found + sorted(directory.glob("rollout-*.html"))


def is_demo_database(path: Path) -> bool:
    """True when ``path`` is a database the demo created (it carries ``MARKER``).

    Read with ``immutable=1``: no lock, no journal and no ``-shm`` file, so a file that is not
    ours (another tool's database, a text file) is left byte-identical; anything unreadable is
    not the demo's."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT 1 FROM settings WHERE key = ?", [MARKER]).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None


def _shown(paths: Sequence[Path]) -> str:
    return ", ".join(p.name + ("/" if p.is_dir() else "") for p in paths)


def prepare(directory: Path, force: bool, echo: Echo) -> None:
    """Make ``directory`` ready for a fresh demo, never losing what is not the demo's.

    An earlier demo's output is replaced, and the run says so. Anything else the demo would
    overwrite (a database it did not create, or its file and folder names without its database)
    is refused with one line, unless ``force``: then it is moved to ``replaced-<time>/`` in the
    same folder first, whole (a database with its ``-wal``), and the run says where.
    """
    present = _present(directory)
    if not present:
        return
    database = directory / "onboarding.db"
    if database.is_file() and is_demo_database(database):
        echo(
            t(
                "Replacing the earlier demo in %(folder)s/: %(names)s",
                folder=directory,
                names=_shown(present),
            )
        )
        _clean(present)
        return
    shown = _shown(present)
    if not force:
        if database.exists():
            what = f"{database} is not a demo database (onboarding demo did not create it)"
        else:
            what = f"{directory}/ holds {shown} but no demo database"
        raise InputError(
            f"{what}: the demo replaces only its own output; choose another folder with --dir, "
            f"or add --force to move {shown} to {directory}/replaced-<time>/ first"
        )
    # The wall clock, not $ONBOARDING_NOW: this names a folder, it records nothing.
    kept = _free(directory / f"replaced-{datetime.now(clock.LOCAL):%Y%m%d-%H%M%S}")
    kept.mkdir()
    for path in present:
        path.rename(kept / path.name)  # the same file system: a move, nothing copied or lost
    echo(
        t(
            "Kept what was in %(folder)s/ (%(names)s) in %(kept)s/",
            folder=directory,
            names=shown,
            kept=kept,
        )
    )


def _free(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3`` ... when it exists (two runs in one second)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _clean(present: Sequence[Path]) -> None:
    """Remove an earlier demo's output (only the names ``_present`` found)."""
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
