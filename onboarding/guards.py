"""The guards a definition may name, and how they read the database.

A guard answers whether it holds for one track at one instant, with a sentence saying why.
Guards that read other tracks read them *as of* that instant (from history), so a transition
recorded for last March is judged by last March's facts. A ``GuardContext`` caches what it
reads, so a bulk operation over thousands of tracks of one system asks once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from onboarding import calendar, clock
from workflows.loader import GuardSignature
from workflows.record import field
from workflows.record import record as dataclass

#: A track row as the engine reads it (``fields`` already parsed).
Track = Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    holds: bool
    reason: str


@dataclass
class GuardContext:
    """What guards read, with caches for one operation (one instant, one transaction)."""

    conn: sqlite3.Connection
    at: datetime
    #: Read other tracks (``related``) as of this instant instead of ``at``: the status import
    #: records a date-only row at the start of its day but judges "is the system ready" as of
    #: the end of that day (docs/reports.md).
    related_at: datetime | None = None
    _related: dict[tuple[str, int, str], list[tuple[str, dict[str, Any], int]]] = field(
        default_factory=dict
    )
    _labels: dict[tuple[str, Any], str] = field(default_factory=dict)
    _dates: dict[tuple[str, Any], date | None] = field(default_factory=dict)

    @property
    def at_stamp(self) -> str:
        return clock.stamp(self.at)

    def system_label(self, system_id: int) -> str:
        key = ("system", system_id)
        if key not in self._labels:
            row = self.conn.execute(
                "SELECT v.name || ' ' || s.name FROM systems s JOIN vendors v ON v.id = s.vendor_id"
                " WHERE s.id = ?",
                [system_id],
            ).fetchone()
            self._labels[key] = row[0] if row else f"#{system_id}"
        return self._labels[key]

    def index_name(self, code: str) -> str:
        key = ("index", code)
        if key not in self._labels:
            row = self.conn.execute("SELECT name FROM indices WHERE code = ?", [code]).fetchone()
            self._labels[key] = row[0] if row else code
        return self._labels[key]

    def related(
        self, definition: str, system_id: int, index: str
    ) -> tuple[str, dict[str, Any], int] | None:
        """(state, fields, track id) of the newest track of ``definition`` for that system and
        index, as of ``self.related_at or self.at``; None when there was none then."""
        found = self.related_all(definition, system_id, index)
        return found[0] if found else None

    def related_all(
        self, definition: str, system_id: int, index: str
    ) -> list[tuple[str, dict[str, Any], int]]:
        """(state, fields, track id) of every track of ``definition`` for that system and
        index that existed as of ``self.related_at or self.at``, newest started first."""
        key = (definition, system_id, index)
        if key not in self._related:
            self._related[key] = self._read_related(definition, system_id, index)
        return self._related[key]

    def _read_related(
        self, definition: str, system_id: int, index: str
    ) -> list[tuple[str, dict[str, Any], int]]:
        rows = self.conn.execute(
            "SELECT id FROM tracks WHERE definition = ? AND system_id = ?"
            " AND (index_set = ? OR index_set IS NULL) ORDER BY id DESC",
            [definition, system_id, index],
        ).fetchall()
        found = []
        for (track_id,) in rows:
            hist = self.conn.execute(
                "SELECT to_state, fields FROM history WHERE track_id = ? AND at <= ? ORDER BY seq",
                [track_id, clock.stamp(self.related_at or self.at)],
            ).fetchall()
            if hist:
                fields: dict[str, Any] = {}
                for _, f in hist:
                    fields.update(json.loads(f))
                found.append((hist[-1][0], fields, track_id))
        return found

    def state_label(self, definition: str, track_id: int, state: str) -> str:
        from onboarding import definitions

        version = self.conn.execute(
            "SELECT def_version FROM tracks WHERE id = ?", [track_id]
        ).fetchone()[0]
        from onboarding.db import Database

        db = Database(self.conn)
        defn = definitions.get(db, definition, version)
        st = defn.by_name.get(state)
        if st is None:
            return state
        return f"{st.label} ({st.phase})" if st.phase else st.label

    def reference_date(self, track: Track, ref: str) -> date | None:
        """The date a due rule or guard names: a date field, or ``klik_task.end_date``, or
        ``wave.<column>``."""
        if "." not in ref:
            value = track["fields"].get(ref)
            if not isinstance(value, str) or not value:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                # Only a definition stored before the validator checked guard fields' types
                # can point here at a text field; judge "not set" rather than die.
                return None
        table, column = ref.split(".", 1)
        if table == "klik_task":
            key: Any = track.get("klik_task_id")
            sql = "SELECT end_date FROM klik_tasks WHERE id = ?"
        elif table == "wave":
            key = track["fields"].get("wave")
            sql = f"SELECT {column} FROM waves WHERE code = ?"  # column checked by the validator
        else:
            return None
        cache_key = (ref, key)
        if cache_key not in self._dates:
            row = self.conn.execute(sql, [key]).fetchone() if key is not None else None
            self._dates[cache_key] = date.fromisoformat(row[0]) if row and row[0] else None
        return self._dates[cache_key]


GuardFn = Callable[[GuardContext, Track, Mapping[str, Any]], Verdict]


def includes_bob(ctx: GuardContext, track: Track, params: Mapping[str, Any]) -> Verdict:
    if track.get("bob"):
        return Verdict(True, "the connection includes BoB display")
    return Verdict(False, "the connection does not include BoB display")


def requires_track(ctx: GuardContext, track: Track, params: Mapping[str, Any]) -> Verdict:
    """The subject's track(s) of another definition are in one of ``states``.

    ``which`` says which tracks count: ``latest`` (default) the newest started as of the
    instant, ``any`` at least one of them, ``all`` every one of them.
    """
    system_id = track.get("system_id")
    if system_id is None:
        return Verdict(False, "the track has no system")
    system = ctx.system_label(system_id)
    definition = str(params["definition"])
    wanted = [str(s) for s in params["states"]]
    which = str(params.get("which") or "latest")
    prefix = str(params.get("reason") or "{system} is not ready").format(system=system)
    indexes = [i for i in (track.get("index_set") or "sd").split(",") if i]
    exempt = params.get("except_field")

    def passes(found: tuple[str, dict[str, Any], int]) -> bool:
        state, fields, _ = found
        if state in wanted:
            return True
        return bool(exempt) and fields.get(str(exempt)) == track.get("municipality_code")

    for index in indexes:
        where = f" ({ctx.index_name(index)})" if len(indexes) > 1 or index != "sd" else ""
        tracks = ctx.related_all(definition, system_id, index)
        if not tracks:
            return Verdict(False, f"{prefix}{where}: it has no {definition} track")
        if which == "any":
            if any(passes(t) for t in tracks):
                continue
            states = ", ".join(
                f"#{other_id} in {ctx.state_label(definition, other_id, state)}"
                for state, _, other_id in tracks
            )
            return Verdict(False, f"{prefix}{where}: none of its {definition} tracks ({states})")
        judged = tracks if which == "all" else tracks[:1]
        for found in judged:
            if not passes(found):
                state, _, other_id = found
                label = ctx.state_label(definition, other_id, state)
                return Verdict(
                    False, f"{prefix}{where}: its {definition} track #{other_id} is in {label}"
                )
    return Verdict(True, f"{system} is ready")


def _shifted(day: date, offset: Any) -> tuple[date, str]:
    """``day`` moved by a guard's offset: N or {working_days: N} or {calendar_days: N}."""
    if isinstance(offset, Mapping):
        ((unit, n),) = offset.items()
    else:
        unit, n = "working_days", offset
    n = int(n or 0)
    if n == 0:
        return day, ""
    words = "working days" if unit == "working_days" else "calendar days"
    sign = "+" if n > 0 else "-"
    moved = calendar.add_working_days(day, n) if unit == "working_days" else day + timedelta(days=n)
    return moved, f" {sign} {abs(n)} {words} = {moved.isoformat()}"


def date_passed(ctx: GuardContext, track: Track, params: Mapping[str, Any]) -> Verdict:
    """The transition's day is after (or with ``on_or_after: true`` on or after) a date,
    shifted by ``offset`` working days (or ``{calendar_days: N}``)."""
    ref = str(params["date"])
    day = ctx.reference_date(track, ref)
    if day is None:
        raw = track["fields"].get(ref) if "." not in ref else None
        if raw not in (None, ""):
            return Verdict(False, f"{ref} ({raw!r}) is not a date")
        return Verdict(False, f"{ref} is not set")
    threshold, shift = _shifted(day, params.get("offset", 0))
    today = clock.local_date(ctx.at)
    inclusive = params.get("on_or_after") is True
    what = f"{ref} ({day.isoformat()}){shift}"
    if today > threshold or (inclusive and today == threshold):
        return Verdict(True, f"{what} has {'come' if inclusive else 'passed'}")
    return Verdict(False, f"{what} has not {'come' if inclusive else 'passed'} yet")


def field_value(ctx: GuardContext, track: Track, params: Mapping[str, Any]) -> Verdict:
    """A field of the track (with the values given on this firing) equals a value, or is or
    is not among a list. An unset field equals nothing and is in no list."""
    name = str(params["field"])
    value = track["fields"].get(name)
    shown = "not set" if value in (None, "") else repr(value)
    if "equals" in params:
        holds = value not in (None, "") and value == params["equals"]
        return Verdict(holds, f"{name} is {shown} ({'' if holds else 'not '}{params['equals']!r})")
    if "in" in params:
        options = list(params["in"])
        holds = value not in (None, "") and value in options
        return Verdict(holds, f"{name} is {shown} ({'' if holds else 'not '}one of {options})")
    options = list(params["not_in"])
    holds = value in (None, "") or value not in options
    return Verdict(holds, f"{name} is {shown} ({'not ' if holds else ''}one of {options})")


GUARDS: Mapping[str, GuardFn] = {
    "includes_bob": includes_bob,
    "requires_track": requires_track,
    "date_passed": date_passed,
    "field_value": field_value,
}

SIGNATURES: Mapping[str, GuardSignature] = {
    "includes_bob": GuardSignature(doc="the connection includes BoB display (--bob at start)"),
    "requires_track": GuardSignature(
        required=frozenset({"definition", "states"}),
        optional=frozenset({"except_field", "reason", "which"}),
        doc="the same system's track of another definition (which: latest, any, all) is in one "
        "of the states",
    ),
    "date_passed": GuardSignature(
        required=frozenset({"date"}),
        optional=frozenset({"after", "on_or_after", "offset"}),
        doc="a date field or reference (klik_task.end_date, wave.go_live), shifted by offset, "
        "has passed (or, with on_or_after, has come)",
    ),
    "field_value": GuardSignature(
        required=frozenset({"field"}),
        optional=frozenset({"equals", "in", "not_in"}),
        doc="a field of the track equals a value, or is (not) among a list",
    ),
}
