"""Selecting tracks: the filter behind ``track list`` and ``track advance --where``.

A filter is written as ``key=value`` pairs separated by spaces or commas, e.g.
``definition=connection state=service_agreements system=Momentum``. Names are resolved
through the registry (code or name, exact before partial).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from sqlite_utils import Database

from onboarding.errors import InputError

KEYS = ("definition", "state", "municipality", "system", "vendor", "region", "overdue", "open")


@dataclass(frozen=True)
class TrackFilter:
    definition: str | None = None
    state: str | None = None
    municipality: str | None = None
    system: str | None = None
    vendor: str | None = None
    region: str | None = None
    overdue: bool = False
    open: bool = False
    today: date | None = None
    ids: tuple[int, ...] = ()

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self) if f.name not in ("today",))

    def to_sql(self, db: Database) -> tuple[str, list[Any]]:
        """A WHERE clause over ``tracks t`` and its parameters."""
        from onboarding import clock, registry

        clauses: list[str] = []
        params: list[Any] = []
        if self.definition:
            clauses.append("t.definition = ?")
            params.append(self.definition)
        if self.state:
            states = [s.strip() for s in self.state.split("|") if s.strip()]
            clauses.append(f"t.state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        if self.municipality:
            clauses.append("t.municipality_code = ?")
            params.append(registry.resolve_municipality(db, self.municipality)["code"])
        if self.system:
            clauses.append("t.system_id = ?")
            params.append(registry.resolve_system(db, self.system)["id"])
        if self.vendor:
            clauses.append("t.system_id IN (SELECT id FROM systems WHERE vendor_id = ?)")
            params.append(registry.resolve_vendor(db, self.vendor)["id"])
        if self.region:
            clauses.append(
                "t.municipality_code IN (SELECT code FROM municipalities WHERE region LIKE ?)"
            )
            params.append(f"%{self.region}%")
        if self.overdue:
            today = self.today or clock.local_date(clock.now())
            clauses.append("t.final = 0 AND t.due IS NOT NULL AND t.due < ?")
            params.append(today.isoformat())
        if self.open:
            clauses.append("t.final = 0")
        if self.ids:
            clauses.append(f"t.id IN ({', '.join('?' * len(self.ids))})")
            params.extend(self.ids)
        return (" AND ".join(clauses) or "1 = 1"), params


_PAIR = re.compile(r"\s*([a-z_]+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^,\s]+(?:\s+(?![a-z_]+\s*=)[^,\s]+)*)")


def parse_where(text: str) -> TrackFilter:
    """Parse ``key=value`` pairs; a value may be quoted or hold spaces (``system=KMD Momentum``)."""
    values: dict[str, Any] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _PAIR.match(text, pos)
        if not m:
            raise InputError(
                f"--where {text!r}: cannot read from {text[pos:]!r}; "
                f"write key=value pairs (keys: {', '.join(KEYS)})"
            )
        key, value = m.group(1), m.group(2).strip("\"'")
        if key not in KEYS:
            raise InputError(f"--where: unknown key {key!r} (keys: {', '.join(KEYS)})")
        if key in ("overdue", "open"):
            values[key] = value.lower() in ("1", "true", "yes", "ja")
        else:
            values[key] = value
        pos = m.end()
        while pos < len(text) and text[pos] in ", ":
            pos += 1
    flt = TrackFilter(**values)
    if flt.is_empty():
        raise InputError("--where selects every track: name at least one condition")
    return flt
