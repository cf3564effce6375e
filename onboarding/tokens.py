"""API tokens: how a program (a vendor's system, a script) acts as an actor over the HTTP API.

A token belongs to one actor and acts with that actor's grants, exactly as the actor would on
the command line or the web page: the engine checks its role and scope for every write, and
history records the actor's name. Tokens are made with ``onboarding actor token create NAME``
and shown once; only a SHA-256 digest is stored (a token carries 256 random bits, so there is
nothing to guess and a slow hash such as the passwords' scrypt would only cost every request
50 ms), beside a short prefix that tells tokens apart in ``token list``.

Who may manage tokens follows the actors' rule (``onboarding.actors``): a coordinator for all,
or the actor itself for its own tokens. Creating and revoking are appended to
``actor_events`` (``token-create``, ``token-revoke``) with the token's id and prefix, never the
token. A token of a deactivated actor, or a revoked one, authenticates nobody.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
from typing import Any

from onboarding import actors, clock
from onboarding.db import Database, immediate
from onboarding.errors import InputError, NotFound, OnboardingError
from onboarding.i18n import Message

__all__ = ["PREFIX", "authenticate", "create", "list_tokens", "revoke"]

#: Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
PREFIX = "onb_"
#: Characters of the token (after ``PREFIX``) kept in clear to tell tokens apart.
SHOWN = 8
MAX_LABEL = 200


def digest(token: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    tid, actor, prefix, label, created, by, used, revoked, revoked_by = row
    return {
        "id": tid,
        "actor": actor,
        "prefix": f"{PREFIX}{prefix}…",
        "label": label,
        "created_at": created,
        "created_by": by,
        "last_used_at": used,
        "revoked_at": revoked,
        "revoked_by": revoked_by,
        "active": revoked is None,
    }


_SQL = (
    "SELECT id, actor, prefix, label, created_at, created_by, last_used_at, revoked_at,"
    " revoked_by FROM api_tokens"
)


def create(
    db: Database, name: str, *, label: str | None = None, by: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Make a token for actor ``name``; return the token (shown once, never stored) and its
    record. ``by`` must be a coordinator for all or ``name`` itself (see the module doc)."""
    if label is not None:
        label = " ".join(label.split())
        if len(label) > MAX_LABEL:
            raise InputError(Message("--label: at most %(n)s characters", {"n": str(MAX_LABEL)}))
        label = label or None
    body = secrets.token_urlsafe(32)
    token = PREFIX + body
    now = clock.stamp(clock.now())
    with immediate(db) as conn:
        # The same rule as a password: one's own, or a coordinator's for all.
        actors._may_administer(conn, by, target=name)
        row = conn.execute("SELECT active FROM actors WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFound("actor", name)
        if not row[0]:
            raise InputError(
                Message(
                    "actor %(actor)s is deactivated: activate it before giving it a token",
                    {"actor": repr(name)},
                )
            )
        cur = conn.execute(
            "INSERT INTO api_tokens (actor, digest, prefix, label, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [name, digest(token), body[:SHOWN], label, now, by],
        )
        tid = int(cur.lastrowid or 0)
        actors._event(conn, by, "token-create", name, {"id": tid, "prefix": body[:SHOWN]})
        record = _row(conn.execute(_SQL + " WHERE id = ?", [tid]).fetchone())
    return token, record


def list_tokens(db: Database, name: str) -> list[dict[str, Any]]:
    """The tokens of actor ``name``, oldest first (revoked ones too, marked), never the token."""
    actors.get(db, name)  # NotFound for an unknown actor
    rows = db.conn.execute(_SQL + " WHERE actor = ? ORDER BY id", [name]).fetchall()
    return [_row(r) for r in rows]


def revoke(
    db: Database, name: str, token_id: int | None = None, *, by: str | None = None
) -> list[dict[str, Any]]:
    """Revoke one token of ``name`` (by id) or, without an id, all its active tokens; return
    the tokens revoked. ``NotFound`` for an id that is not an active token of ``name``."""
    now = clock.stamp(clock.now())
    with immediate(db) as conn:
        actors._may_administer(conn, by, target=name)
        if conn.execute("SELECT 1 FROM actors WHERE name = ?", [name]).fetchone() is None:
            raise NotFound("actor", name)
        sql = _SQL + " WHERE actor = ? AND revoked_at IS NULL"
        params: list[Any] = [name]
        if token_id is not None:
            sql += " AND id = ?"
            params.append(token_id)
        rows = conn.execute(sql, params).fetchall()
        if token_id is not None and not rows:
            error = NotFound("active token of " + name, str(token_id))
            OnboardingError.__init__(  # said with the actor as a parameter, not in the noun
                error,
                Message(
                    "unknown active token of %(actor)s %(id)s",
                    {"actor": name, "id": repr(str(token_id))},
                ),
            )
            raise error
        for r in rows:
            conn.execute(
                "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ?",
                [now, by, r[0]],
            )
            actors._event(conn, by, "token-revoke", name, {"id": r[0], "prefix": r[2]})
        return [_row(conn.execute(_SQL + " WHERE id = ?", [r[0]]).fetchone()) for r in rows]


def authenticate(db: Database, token: str) -> str | None:
    """The actor a token acts for, or ``None`` for an unknown or revoked token or an actor that
    is no longer active. Records when the token was last used (at most once a minute)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    conn = db.conn
    row = conn.execute(
        "SELECT t.id, t.actor, t.last_used_at FROM api_tokens t JOIN actors a ON a.name = t.actor"
        " WHERE t.digest = ? AND t.revoked_at IS NULL AND a.active = 1",
        [digest(token)],
    ).fetchone()
    if row is None:
        return None
    now = clock.stamp(clock.now())
    # A write per request would serialise every reader behind the write lock: a minute is
    # precise enough to see which tokens are in use.
    if row[2] is None or row[2][:16] != now[:16]:
        # Best effort: a busy or read-only database must not stop a request that only reads.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [now, row[0]])
    return str(row[1])
