"""The engine's permission check, importing ``onboarding.actors`` only where it can matter.

A database runs open until its first actor is registered (``actors.enforcing``). Every
advance, start and set asks whether the actor may act; on an open database the answer is one
``SELECT`` away, and ``onboarding.actors`` (password hashing, grants, labels) is never
imported: that is what an advance on such a database costs at start (issue 14). Where actors
exist, the question goes to ``onboarding.actors`` unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onboarding.db import Database

Check = Callable[[Mapping[str, Any]], None]


def runs_open(conn_or_db: sqlite3.Connection | Database) -> bool:
    """Whether the database runs open (no actor registered), as ``actors.enforcing`` asks."""
    conn = conn_or_db if isinstance(conn_or_db, sqlite3.Connection) else conn_or_db.conn
    return not conn.execute("SELECT EXISTS (SELECT 1 FROM actors)").fetchone()[0]


def checker(conn_or_db: sqlite3.Connection | Database, actor: str, role: str) -> Check | None:
    """``actors.checker``: None on an open database, without importing ``onboarding.actors``."""
    if runs_open(conn_or_db):
        return None
    from onboarding import actors

    return actors.checker(conn_or_db, actor, role)


def authorize(
    conn_or_db: sqlite3.Connection | Database, actor: str, role: str, track: Mapping[str, Any]
) -> None:
    """``actors.authorize``: nothing to do on an open database (``onboarding.actors`` is not
    imported); otherwise refuse as it does."""
    if runs_open(conn_or_db):
        return
    from onboarding import actors

    actors.authorize(conn_or_db, actor, role, track)
