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
from typing import TYPE_CHECKING, Any

from onboarding import calendar, clock
from onboarding.i18n import Message, Phrases, Term
from workflows.loader import GuardSignature
from workflows.record import field
from workflows.record import record as dataclass

if TYPE_CHECKING:
    from workflows.model import Definition

#: A track row as the engine reads it (``fields`` already parsed).
Track = Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    holds: bool
    #: A ``Message``: English as ``str``, said in the reader's language by ``say(lang)``.
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
        version = self.conn.execute(
            "SELECT def_version FROM tracks WHERE id = ?", [track_id]
        ).fetchone()[0]
        defn = self._definition(definition, version)
        st = defn.by_name.get(state) if defn is not None else None
        if st is None:
            return state
        if not st.phase:
            return str(st.label)
        from onboarding.i18n import LANGUAGES, pgettext

        # The phase is a key of the definition: each language says it by the catalogue.
        return Term(
            f"{st.label} ({st.phase})",
            {lang: f"{st.label} ({pgettext(lang, 'phase', st.phase)})" for lang in LANGUAGES},
        )

    def _definition(self, name: Any, version: Any) -> Definition | None:
        from onboarding import definitions
        from onboarding.db import Database
        from onboarding.errors import NotFound

        if name is None or version is None:
            return None
        db = Database(self.conn)
        try:
            return definitions.get(db, str(name), int(version))
        except NotFound:
            return None

    def field(self, track: Track, name: str) -> str:
        """A field of the track's definition: its key in English, its label for people."""
        from onboarding import terms

        defn = self._definition(track.get("definition"), track.get("def_version"))
        return terms.field(defn, name)

    def definition_title(self, definition: str) -> str:
        """Another definition named in a reason: its key in English, its title for people."""
        from onboarding.i18n import LANGUAGES

        row = self.conn.execute(
            "SELECT MAX(version) FROM definitions WHERE name = ?", [definition]
        ).fetchone()
        defn = self._definition(definition, row[0] if row else None)
        if defn is None:
            return definition
        return Term(definition, {lang: f"“{defn.title}”" for lang in LANGUAGES})

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
        return Verdict(True, Message("the connection includes BoB display"))
    return Verdict(False, Message("the connection does not include BoB display"))


def requires_track(ctx: GuardContext, track: Track, params: Mapping[str, Any]) -> Verdict:
    """The subject's track(s) of another definition are in one of ``states``.

    ``which`` says which tracks count: ``latest`` (default) the newest started as of the
    instant, ``any`` at least one of them, ``all`` every one of them.
    """
    system_id = track.get("system_id")
    if system_id is None:
        return Verdict(False, Message("the track has no system"))
    system = ctx.system_label(system_id)
    definition = str(params["definition"])
    wanted = [str(s) for s in params["states"]]
    which = str(params.get("which") or "latest")
    # The definition's own sentence: its English is a message id too (the shipped ones are in
    # the catalogue), with {system} as its one parameter.
    reason = str(params.get("reason") or "{system} is not ready")
    msgid = reason.replace("%", "%%").replace("{system}", "%(system)s")
    prefix = Message(msgid, {"system": system})
    title = ctx.definition_title(definition)
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
        base = {"prefix": prefix, "where": where, "definition": title}
        if not tracks:
            return Verdict(
                False, Message("%(prefix)s%(where)s: it has no %(definition)s track", base)
            )
        if which == "any":
            if any(passes(t) for t in tracks):
                continue
            states = Phrases(
                Message(
                    "#%(id)s in %(state)s",
                    {"id": str(other_id), "state": ctx.state_label(definition, other_id, state)},
                )
                for state, _, other_id in tracks
            )
            return Verdict(
                False,
                Message(
                    "%(prefix)s%(where)s: none of its %(definition)s tracks (%(states)s)",
                    {**base, "states": states},
                ),
            )
        judged = tracks if which == "all" else tracks[:1]
        for found in judged:
            if not passes(found):
                state, _, other_id = found
                label = ctx.state_label(definition, other_id, state)
                return Verdict(
                    False,
                    Message(
                        "%(prefix)s%(where)s: its %(definition)s track #%(id)s is in %(state)s",
                        {**base, "id": str(other_id), "state": label},
                    ),
                )
    return Verdict(True, Message("%(system)s is ready", {"system": system}))


def _shifted(day: date, offset: Any) -> tuple[date, Message | str]:
    """``day`` moved by a guard's offset: N or {working_days: N} or {calendar_days: N}."""
    if isinstance(offset, Mapping):
        ((unit, n),) = offset.items()
    else:
        unit, n = "working_days", offset
    n = int(n or 0)
    if n == 0:
        return day, ""
    sign = "+" if n > 0 else "-"
    moved = calendar.add_working_days(day, n) if unit == "working_days" else day + timedelta(days=n)
    params = {"sign": sign, "n": abs(n), "moved": moved}
    if unit == "working_days":
        return moved, Message(
            " %(sign)s %(n)s working day = %(moved)s",
            params,
            plural=" %(sign)s %(n)s working days = %(moved)s",
            n=abs(n),
        )
    return moved, Message(
        " %(sign)s %(n)s calendar day = %(moved)s",
        params,
        plural=" %(sign)s %(n)s calendar days = %(moved)s",
        n=abs(n),
    )


def date_passed(ctx: GuardContext, track: Track, params: Mapping[str, Any]) -> Verdict:
    """The transition's day is after (or with ``on_or_after: true`` on or after) a date,
    shifted by ``offset`` working days (or ``{calendar_days: N}``)."""
    ref = str(params["date"])
    day = ctx.reference_date(track, ref)
    name = ctx.field(track, ref) if "." not in ref else ref
    if day is None:
        raw = track["fields"].get(ref) if "." not in ref else None
        if raw not in (None, ""):
            return Verdict(
                False, Message("%(ref)s (%(raw)s) is not a date", {"ref": name, "raw": repr(raw)})
            )
        return Verdict(False, Message("%(ref)s is not set", {"ref": name}))
    threshold, shift = _shifted(day, params.get("offset", 0))
    today = clock.local_date(ctx.at)
    inclusive = params.get("on_or_after") is True
    what = Message("%(ref)s (%(day)s)%(shift)s", {"ref": name, "day": day, "shift": shift})
    if today > threshold or (inclusive and today == threshold):
        text = "%(what)s has come" if inclusive else "%(what)s has passed"
        return Verdict(True, Message(text, {"what": what}))
    text = "%(what)s has not come yet" if inclusive else "%(what)s has not passed yet"
    return Verdict(False, Message(text, {"what": what}))


def field_value(ctx: GuardContext, track: Track, params: Mapping[str, Any]) -> Verdict:
    """A field of the track (with the values given on this firing) equals a value, or is or
    is not among a list. An unset field equals nothing and is in no list."""
    key = str(params["field"])
    value = track["fields"].get(key)
    base: dict[str, Any] = {
        "name": ctx.field(track, key),
        "shown": Message("not set") if value in (None, "") else repr(value),
    }
    if "equals" in params:
        holds = value not in (None, "") and value == params["equals"]
        text = (
            "%(name)s is %(shown)s (%(want)s)"
            if holds
            else "%(name)s is %(shown)s (not %(want)s)"
        )
        return Verdict(holds, Message(text, {**base, "want": repr(params["equals"])}))
    if "in" in params:
        options = list(params["in"])
        holds = value not in (None, "") and value in options
        text = (
            "%(name)s is %(shown)s (one of %(options)s)"
            if holds
            else "%(name)s is %(shown)s (not one of %(options)s)"
        )
        return Verdict(holds, Message(text, {**base, "options": str(options)}))
    options = list(params["not_in"])
    holds = value in (None, "") or value not in options
    text = (
        "%(name)s is %(shown)s (not one of %(options)s)"
        if holds
        else "%(name)s is %(shown)s (one of %(options)s)"
    )
    return Verdict(holds, Message(text, {**base, "options": str(options)}))


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
