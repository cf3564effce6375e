"""Settings kept in the database (table ``settings``, migration 005_mail).

A setting is a dotted key (``mail.from``, ``smtp.port``) and a JSON value, so a number stays a
number and ``true`` stays a boolean. This module only reads and writes; what a key means and
which values it accepts is decided by its owner (mail settings: ``notifications.config``).

Secrets are never kept here: anyone who can read the database file (a backup, a copy for a
colleague) would have them. A key that names a password, secret or token is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from onboarding import clock
from onboarding.db import Database, immediate
from onboarding.errors import InputError

#: Last parts of a key that mark it as a secret; such keys are never stored.
SECRET_WORDS = ("password", "secret", "token")


def is_secret(key: str) -> bool:
    return any(word in key.rpartition(".")[2].lower() for word in SECRET_WORDS)


def _decode(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise InputError(
            f"database setting {key}: stored value {text!r} is not readable; "
            "set it again with 'onboarding mail configure'"
        ) from None


def read(db: Database, prefix: str = "") -> dict[str, Any]:
    """Every stored setting whose key starts with ``prefix``, decoded, by key."""
    rows = db.execute(
        "SELECT key, value FROM settings WHERE substr(key, 1, ?) = ? ORDER BY key",
        [len(prefix), prefix],
    ).fetchall()
    return {key: _decode(key, value) for key, value in rows}


def read_rows(db: Database) -> list[dict[str, Any]]:
    """The raw rows (key, value as stored, updated_at), for showing when each was set."""
    rows = db.execute("SELECT key, value, updated_at FROM settings ORDER BY key").fetchall()
    return [{"key": k, "value": v, "updated_at": u} for k, v, u in rows]


def update(
    db: Database,
    changes: Mapping[str, Any],
    unset: Iterable[str] = (),
    check: Callable[[dict[str, Any]], None] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """Store ``changes`` and remove ``unset`` in one write transaction; return the new settings.

    ``check`` sees every setting under ``prefix`` as it would be afterwards and may raise to
    refuse the whole change: then nothing is written (the transaction is rolled back).
    """
    removed = list(unset)
    for key in [*changes, *removed]:
        if is_secret(key):
            raise InputError(
                f"{key}: secrets are never stored in the database (anyone with a copy of the "
                "file could read them); keep it in the environment or the config file"
            )
    with immediate(db) as conn:
        current = read(db, prefix)
        after = {k: v for k, v in current.items() if k not in removed}
        after.update(changes)
        if check is not None:
            check(after)
        stamp = clock.stamp(clock.now())
        for key in removed:
            conn.execute("DELETE FROM settings WHERE key = ?", [key])
        for key, value in changes.items():
            conn.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                [key, json.dumps(value, ensure_ascii=False), stamp],
            )
    return after
