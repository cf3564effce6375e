"""Failed logins and when the next attempt is allowed (table ``login_attempts``, migration 008).

Two limits, chosen so that guessing is slow and nobody can lock others out:

* **Per account and address** (the name as typed, case-insensitive, and the client's
  address): ``FREE_FAILURES`` wrong passwords are free; after that each one doubles the
  wait, from ``BASE_DELAY`` up to ``MAX_DELAY``. While it runs even the right password is
  refused for that name from that address, so guessing one account costs hours. The count
  is forgotten after ``RESET_AFTER`` without a failure, or at once by a correct login or
  ``onboarding actor unlock NAME``.
* **Per address**: ``ADDRESS_CEILING`` failures from one address within ``ADDRESS_WINDOW``
  (under any names) stop attempts from it, so one address cannot try a password on every
  account. The ceiling does not apply to an account that has logged in correctly from that
  address within ``KNOWN_FOR``: failures under other names never block its correct password
  (one person behind a municipality's shared address cannot lock out the others).

The address is what the server sees as the client: the socket's peer, or what a proxy the
operator named with ``serve --forwarded-allow-ips`` reports. Headers from anyone else are
ignored (``onboarding.commands.serve``), so a forged ``X-Forwarded-For`` resets nothing.

This module knows no HTTP; the login page calls ``wait``, ``failed`` and ``succeeded``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from onboarding import clock
from onboarding.db import Database, immediate

__all__ = ["Wait", "account_key", "failed", "succeeded", "unlock", "wait"]

FREE_FAILURES = 5
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
RESET_AFTER = timedelta(hours=1)
ADDRESS_CEILING = 20
ADDRESS_WINDOW = timedelta(minutes=15)
KNOWN_FOR = timedelta(days=90)
#: Longest account name kept (the form's name is free text; longer ones are cut).
MAX_KEY = 200


@dataclass(frozen=True)
class Wait:
    """Attempts are refused for ``seconds`` more, because of the ``account``'s own failures
    from this address or the ``address``'s failures under any names."""

    seconds: int
    reason: str


def account_key(name: str) -> str:
    return name.strip().casefold()[:MAX_KEY]


def _delay(failures: int) -> timedelta:
    """The wait after the ``failures``-th failure in a row (none while still free)."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    doublings = min(failures - FREE_FAILURES, 20)  # 2**20 * 30 s is far past MAX_DELAY
    delay: timedelta = BASE_DELAY * (2**doublings)
    return min(MAX_DELAY, delay)


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() + 0.999))


def wait(db: Database, name: str, address: str, now: datetime | None = None) -> Wait | None:
    """Whether an attempt for ``name`` from ``address`` must wait, and how long."""
    now = now or clock.now()
    row = db.conn.execute(
        "SELECT blocked_until, last_success_at FROM login_attempts"
        " WHERE account = ? AND address = ?",
        [account_key(name), address],
    ).fetchone()
    if row is not None and row[0] is not None and clock.unstamp(row[0]) > now:
        return Wait(_seconds(clock.unstamp(row[0]) - now), "account")
    known = row is not None and row[1] is not None and clock.unstamp(row[1]) > now - KNOWN_FOR
    if known:
        return None
    total, latest = db.conn.execute(
        "SELECT coalesce(sum(failures), 0), max(last_failure_at) FROM login_attempts"
        " WHERE address = ? AND last_failure_at > ?",
        [address, clock.stamp(now - ADDRESS_WINDOW)],
    ).fetchone()
    if int(total) >= ADDRESS_CEILING and latest is not None:
        return Wait(_seconds(clock.unstamp(latest) + ADDRESS_WINDOW - now), "address")
    return None


def failed(db: Database, name: str, address: str, now: datetime | None = None) -> None:
    """Count a failed attempt (a wrong password, or an unknown name: they look alike)."""
    now = now or clock.now()
    key = account_key(name)
    with immediate(db) as conn:
        _forget_stale(conn, now)
        row = conn.execute(
            "SELECT failures, last_failure_at FROM login_attempts"
            " WHERE account = ? AND address = ?",
            [key, address],
        ).fetchone()
        failures = 1
        if row is not None and row[1] is not None and clock.unstamp(row[1]) > now - RESET_AFTER:
            failures = int(row[0]) + 1
        delay = _delay(failures)
        blocked = clock.stamp(now + delay) if delay else None
        conn.execute(
            "INSERT INTO login_attempts (account, address, failures, last_failure_at,"
            " blocked_until) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (account, address) DO UPDATE SET failures = excluded.failures,"
            " last_failure_at = excluded.last_failure_at, blocked_until = excluded.blocked_until",
            [key, address, failures, clock.stamp(now), blocked],
        )


def succeeded(db: Database, name: str, address: str, now: datetime | None = None) -> None:
    """A correct login: the pair's failures are forgotten and the address is known for it."""
    now = now or clock.now()
    db.conn.execute(
        "INSERT INTO login_attempts (account, address, failures, last_success_at)"
        " VALUES (?, ?, 0, ?) ON CONFLICT (account, address) DO UPDATE SET failures = 0,"
        " last_failure_at = NULL, blocked_until = NULL, last_success_at = excluded.last_success_at",
        [account_key(name), address, clock.stamp(now)],
    )


def unlock(conn: sqlite3.Connection, name: str) -> int:
    """Forget the failures of ``name`` from every address; return how many addresses were
    waiting. (Inside the caller's transaction: ``onboarding.actors.unlock`` checks who may.)"""
    key = account_key(name)
    now = clock.stamp(clock.now())
    waiting = conn.execute(
        "SELECT count(*) FROM login_attempts WHERE account = ? AND blocked_until > ?",
        [key, now],
    ).fetchone()[0]
    conn.execute(
        "UPDATE login_attempts SET failures = 0, last_failure_at = NULL, blocked_until = NULL"
        " WHERE account = ?",
        [key],
    )
    conn.execute("DELETE FROM login_attempts WHERE account = ? AND last_success_at IS NULL", [key])
    return int(waiting)


def _forget_stale(conn: sqlite3.Connection, now: datetime) -> None:
    """Drop pairs with nothing left to remember (a flood of made-up names stays bounded)."""
    conn.execute(
        "DELETE FROM login_attempts WHERE ifnull(last_failure_at, '') <= ?"
        " AND ifnull(last_success_at, '') <= ?",
        [clock.stamp(now - RESET_AFTER), clock.stamp(now - KNOWN_FOR)],
    )
