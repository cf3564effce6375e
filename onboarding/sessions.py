"""The web page's sessions, kept in the database (table ``web_sessions``, migration 008).

A browser holds only a random token (``new_token``: 32 bytes, URL-safe); the table holds its
SHA-256, so neither a copied database nor a leaked backup can be turned into a cookie. A
session ends when it is older than ``Policy.lifetime``, when it has not been used for
``Policy.idle``, when its owner logs out, when ``end_for`` ends all of an actor's sessions
(``onboarding actor revoke-sessions``, a change of password, a deactivation), and for good:
a cookie copied before any of these is refused afterwards.

Sessions before login (the login form's CSRF token, the chosen language) are rows too, with
``actor`` NULL; expired rows are removed whenever a new session starts.

This module knows no HTTP: the page's middleware (``onboarding.web.sessions``) reads the
cookie and calls ``load``, ``create``, ``save`` and ``end``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from onboarding import clock
from onboarding.db import Database, immediate

__all__ = [
    "Policy",
    "Session",
    "create",
    "end",
    "end_for",
    "list_for",
    "load",
    "new_token",
    "save",
    "token_hash",
]

#: Bytes of randomness in a session token (256 bits: not guessable).
TOKEN_BYTES = 32
#: A session's last use is written at most this often (a page view is otherwise a read only).
TOUCH_EVERY = timedelta(minutes=1)
#: Longest a user agent string is kept (it is shown by 'actor sessions', nothing else).
MAX_AGENT = 200


@dataclass(frozen=True)
class Policy:
    """How long sessions last: ``lifetime`` from login at most, ``idle`` without a request."""

    lifetime: timedelta = timedelta(hours=12)
    idle: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Session:
    """A live session as loaded: its token's hash, its actor (None before login), its data."""

    token_hash: str
    actor: str | None
    data: dict[str, Any]
    last_seen: datetime
    expires: datetime


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the table stores of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _live(row: tuple[Any, ...], now: datetime, policy: Policy) -> bool:
    expires, last_seen = clock.unstamp(row[4]), clock.unstamp(row[3])
    return now < expires and now - last_seen < policy.idle


def load(db: Database, token: str, policy: Policy, now: datetime | None = None) -> Session | None:
    """The live session of ``token``, or None (unknown, ended, expired or idle too long: an
    expired row is removed)."""
    if not token or len(token) > 200:
        return None
    now = now or clock.now()
    digest = token_hash(token)
    row = db.conn.execute(
        "SELECT actor, data, created_at, last_seen_at, expires_at FROM web_sessions"
        " WHERE token_hash = ?",
        [digest],
    ).fetchone()
    if row is None:
        return None
    if not _live(row, now, policy):
        end(db, digest)
        return None
    try:
        data = json.loads(row[1])
    except ValueError:
        data = {}
    return Session(
        token_hash=digest,
        actor=row[0],
        data=data if isinstance(data, dict) else {},
        last_seen=clock.unstamp(row[3]),
        expires=clock.unstamp(row[4]),
    )


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def create(
    db: Database,
    actor: str | None,
    data: dict[str, Any],
    policy: Policy,
    *,
    address: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> str:
    """Start a session; return its token (for the cookie: the only place it is kept)."""
    now = now or clock.now()
    token = new_token()
    with immediate(db) as conn:
        _purge(conn, now, policy)
        conn.execute(
            "INSERT INTO web_sessions (token_hash, actor, data, created_at, last_seen_at,"
            " expires_at, address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                token_hash(token),
                actor,
                _dump(data),
                clock.stamp(now),
                clock.stamp(now),
                clock.stamp(now + policy.lifetime),
                address,
                (user_agent or "")[:MAX_AGENT] or None,
            ],
        )
    return token


def save(
    db: Database, session: Session, data: dict[str, Any] | None, now: datetime | None = None
) -> None:
    """Record a request on the session: its new ``data`` (None: unchanged) and its last use
    (written only when ``TOUCH_EVERY`` has passed, unless the data changed)."""
    now = now or clock.now()
    if data is None and now - session.last_seen < TOUCH_EVERY:
        return
    if data is None:
        db.conn.execute(
            "UPDATE web_sessions SET last_seen_at = ? WHERE token_hash = ?",
            [clock.stamp(now), session.token_hash],
        )
    else:
        db.conn.execute(
            "UPDATE web_sessions SET last_seen_at = ?, data = ? WHERE token_hash = ?",
            [clock.stamp(now), _dump(data), session.token_hash],
        )


def end(db: Database, digest: str) -> None:
    """End one session (logout, or a new session replacing it at login)."""
    db.conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", [digest])


def end_for(conn: sqlite3.Connection, actor: str) -> int:
    """End every session of ``actor``; return how many were live or not (inside the caller's
    transaction, so a change of password and the end of the sessions commit together)."""
    cur = conn.execute("DELETE FROM web_sessions WHERE actor = ?", [actor])
    return int(cur.rowcount)


def list_for(
    db: Database, actor: str, policy: Policy | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The live sessions of ``actor``, newest first (never their tokens or hashes)."""
    policy = policy or Policy()
    now = now or clock.now()
    rows = db.conn.execute(
        "SELECT actor, data, created_at, last_seen_at, expires_at, address, user_agent"
        " FROM web_sessions WHERE actor = ? ORDER BY created_at DESC",
        [actor],
    ).fetchall()
    out = []
    for r in rows:
        if not _live(r, now, policy):
            continue
        idle_ends = clock.unstamp(r[3]) + policy.idle
        out.append(
            {
                "started": r[2],
                "last_seen": r[3],
                "ends": clock.stamp(min(clock.unstamp(r[4]), idle_ends)),
                "address": r[5],
                "user_agent": r[6],
            }
        )
    return out


def _purge(conn: sqlite3.Connection, now: datetime, policy: Policy) -> None:
    conn.execute(
        "DELETE FROM web_sessions WHERE expires_at <= ? OR last_seen_at <= ?",
        [clock.stamp(now), clock.stamp(now - policy.idle)],
    )
