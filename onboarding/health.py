"""Is the service well? The scheduler's heartbeat and the checks behind ``/readyz``.

The scheduler (``onboarding scheduler run``) records a heartbeat in the ``settings`` table at
every sweep (key ``scheduler.heartbeat``: when, which process, its interval) and, when a sweep
finished, what it did (``scheduler.last_sweep``). Nothing else reads these rows to decide
anything: they are for ``/readyz`` and ``/metrics`` of the web process, which runs apart from
the scheduler and can only learn about it through the database.

Times come from ``onboarding.clock`` so a test pins them (``$ONBOARDING_NOW``) instead of
sleeping.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from onboarding import clock, settings
from onboarding.db import (
    Database,
    applied_migrations,
    current_schema_version,
    migrations,
    schema_version,
)

HEARTBEAT = "scheduler.heartbeat"
LAST_SWEEP = "scheduler.last_sweep"


@dataclass(frozen=True)
class Beat:
    """The scheduler's last sign of life."""

    at: datetime
    pid: int | None
    host: str | None
    interval: float | None


@dataclass(frozen=True)
class Sweep:
    """The last sweep that finished (an exception in a sweep records none)."""

    at: datetime
    counts: dict[str, int]


def beat(db: Database, interval: float, now: datetime | None = None) -> None:
    """Record that the scheduler is alive now (one small write transaction)."""
    moment = now or clock.now()
    settings.update(
        db,
        {
            HEARTBEAT: {
                "at": clock.stamp(moment),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "interval": interval,
            }
        },
    )


def record_sweep(db: Database, counts: Mapping[str, int], now: datetime | None = None) -> None:
    """Record a finished sweep and what it did; it is also a heartbeat's worth of news."""
    moment = now or clock.now()
    settings.update(
        db, {LAST_SWEEP: {"at": clock.stamp(moment), **{k: int(v) for k, v in counts.items()}}}
    )


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return clock.unstamp(value)
    except ValueError:
        return None


def last_beat(db: Database) -> Beat | None:
    raw = settings.read(db, HEARTBEAT).get(HEARTBEAT)
    at = _instant(raw.get("at")) if isinstance(raw, dict) else None
    if at is None or not isinstance(raw, dict):
        return None
    pid, host, interval = raw.get("pid"), raw.get("host"), raw.get("interval")
    return Beat(
        at=at,
        pid=pid if isinstance(pid, int) else None,
        host=host if isinstance(host, str) else None,
        interval=float(interval) if isinstance(interval, int | float) else None,
    )


def last_sweep(db: Database) -> Sweep | None:
    raw = settings.read(db, LAST_SWEEP).get(LAST_SWEEP)
    at = _instant(raw.get("at")) if isinstance(raw, dict) else None
    if at is None or not isinstance(raw, dict):
        return None
    counts = {k: int(v) for k, v in raw.items() if k != "at" and isinstance(v, int)}
    return Sweep(at=at, counts=counts)


@dataclass
class Readiness:
    """The outcome of the readiness checks: ``ok`` and one entry per check."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks.values())

    def add(self, name: str, ok: bool, **detail: Any) -> None:
        self.checks[name] = {"ok": ok, **detail}

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": self.checks}


def readiness(
    db: Database, heartbeat_limit: timedelta | None = None, now: datetime | None = None
) -> Readiness:
    """Database readable, schema current and, when ``heartbeat_limit`` is given, a scheduler
    heartbeat no older than it. A failure of one check is recorded, never raised."""
    result = Readiness()
    moment = now or clock.now()
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        applied = applied_migrations(db.conn) or []
    except Exception as exc:  # any fault here means "not ready", said in the answer
        result.add("database", False, error=type(exc).__name__)
        return result
    result.add("database", True)
    missing = [m.name for m in migrations._migrations if m.name not in applied]
    version = schema_version(db)
    result.add(
        "schema",
        not missing and version == current_schema_version(),
        version=version,
        expected=current_schema_version(),
        **({"missing": missing} if missing else {}),
    )
    if heartbeat_limit is not None:
        result.checks["scheduler"] = _heartbeat_check(db, heartbeat_limit, moment)
    return result


def _heartbeat_check(db: Database, limit: timedelta, now: datetime) -> dict[str, Any]:
    seen = last_beat(db)
    check: dict[str, Any] = {"limit_seconds": limit.total_seconds()}
    if seen is None:
        return {"ok": False, "error": "no scheduler heartbeat recorded", **check}
    age = (now - seen.at).total_seconds()
    return {"ok": age <= limit.total_seconds(), "age_seconds": round(age, 3), **check}


__all__ = [
    "HEARTBEAT",
    "LAST_SWEEP",
    "Beat",
    "Readiness",
    "Sweep",
    "beat",
    "last_beat",
    "last_sweep",
    "readiness",
    "record_sweep",
]
