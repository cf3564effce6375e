"""Naming a bulk operation, so each track's history says which one moved it.

A bulk advance started from the web page (or the HTTP API) gets an id made of the instant it
is recorded at and a random part: ``20210630T150000000000Z-3fa9c1``. Every history row it writes
carries that instant and the note ``bulk <id>`` (then ``: `` and the person's own note, if any),
so the tracks an operation moved are found again from history alone (``moved``), through the
index on ``history.at``; nothing else needs to be stored.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from onboarding import clock, definitions
from onboarding.db import Database
from onboarding.errors import InputError
from onboarding.i18n import Message
from onboarding.tracks import list_tracks

__all__ = ["BulkOp", "moved", "new"]

PREFIX = "bulk "
_ID = re.compile(r"(\d{8})T(\d{6})(\d{6})Z-([0-9a-f]{6})")


class BulkOp:
    """One bulk operation: its id, its instant and the note its history rows carry."""

    def __init__(self, at: datetime, token: str) -> None:
        self.at = at
        self.stamp = clock.stamp(at)
        self.id = re.sub(r"[-:.]", "", self.stamp) + "-" + token

    def note(self, note: str | None = None) -> str:
        tag = PREFIX + self.id
        return f"{tag}: {note}" if note else tag


def new(at: datetime | None = None) -> BulkOp:
    """A new bulk operation recorded at ``at`` (default: now)."""
    return BulkOp(at or clock.now(), secrets.token_hex(3))


def parse(bulk_id: str) -> BulkOp:
    """The operation an id names (``InputError`` for anything that is not such an id)."""
    m = _ID.fullmatch(bulk_id)
    if not m:
        raise _not_an_id(bulk_id)
    day, time, micro, token = m.groups()
    try:
        at = datetime.fromisoformat(
            f"{day[:4]}-{day[4:6]}-{day[6:]}T{time[:2]}:{time[2:4]}:{time[4:]}.{micro}+00:00"
        )
    except ValueError:
        raise _not_an_id(bulk_id) from None
    return BulkOp(at, token)


def _not_an_id(bulk_id: str) -> InputError:
    return InputError(Message("%(value)s is not a bulk operation id", {"value": repr(bulk_id)}))


def moved(db: Database, bulk_id: str) -> dict[str, Any]:
    """What an operation moved: who did it, when, and each track (subject, from and to step
    by label), read from the history rows that name it."""
    op = parse(bulk_id)
    tag = PREFIX + op.id
    rows = db.conn.execute(
        "SELECT h.track_id, h.from_state, h.to_state, h.actor, h.role, h.note, h.def_version,"
        " t.definition FROM history h JOIN tracks t ON t.id = h.track_id"
        " WHERE h.at = ? AND (h.note = ? OR substr(h.note, 1, ?) = ?) ORDER BY h.track_id",
        [op.stamp, tag, len(tag) + 2, tag + ": "],
    ).fetchall()
    from onboarding.filters import TrackFilter

    ids = tuple(r[0] for r in rows)
    now = {t["id"]: t for t in list_tracks(db, TrackFilter(ids=ids))} if ids else {}
    out = []
    for tid, src, dest, _actor, _role, _note, version, name in rows:
        defn = definitions.get(db, name, version)
        out.append(
            {
                "track": tid,
                "definition": name,
                "subject": now[tid]["subject"] if tid in now else "",
                "from": src,
                "from_label": defn.state(src).label if src else None,
                "to": dest,
                "to_label": defn.state(dest).label,
            }
        )
    first = rows[0] if rows else None
    return {
        "id": op.id,
        "at": op.stamp,
        "actor": first[3] if first else None,
        "role": first[4] if first else None,
        "note": first[5][len(tag) + 2 :] if first and first[5] != tag else None,
        "tracks": out,
    }
