"""What a state declares: its ``notifications:`` list parsed into rules, and validated.

Pure data over a definition (no database): the validator calls ``check_notifications`` while
loading a definition, and everything that schedules, lists or sends reads ``Rule``. Kept apart
so the constants every other module names (kinds, statuses, the triggers that enter no state)
live below all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from onboarding import calendar, clock
from workflows.model import StateDef
from workflows.record import record as dataclass

if TYPE_CHECKING:
    from workflows.loader import Known

KINDS = ("reminder", "notice", "escalation")
#: What happens to a kind's unsent rows when the track leaves the state.
DEFAULT_ON_LEAVE = {"reminder": "cancel", "escalation": "cancel", "notice": "keep"}
STATUSES = ("pending", "sending", "sent", "failed", "cancelled", "superseded")
#: Local time of day a date-based notification is due, unless it says ``time: "HH:MM"``.
DEFAULT_TIME = time(8, 0)
#: History triggers that do not enter a state (the engine's ``NO_REENTRY``: field changes and
#: migrations keep the step's clock running). A migration that maps a track to another state
#: carries the current entry's rows to that state (``on_moves``): it is not a new entry, so a
#: notice already scheduled is not scheduled a second time.
NOT_ENTRIES = ("@set", "@migrate")

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_EMAIL = re.compile(r"^[^@\s\"<>,;()]+@[^@\s\"<>,;()]+\.[^@\s\"<>,;().]{2,}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_KEYS = {"name", "kind", "when", "to", "template", "on_leave", "cancel_on", "time", "ladder"}
_WHEN_KEYS = {"before_due", "after_due", "after_entry"}


@dataclass(frozen=True)
class Rule:
    """One notification a state declares (a ladder is expanded into one rule per rung).

    ``anchor`` is ``"due"`` (relative to the step's due date) or ``"entry"`` (relative to when
    the track entered the state); ``offset`` is in working days (negative: before).
    ``ladder_start`` is the offset of the ladder's first rung when both it and this rung count
    from the due date (None otherwise): a step entered after that rung's time climbs the ladder
    from the moment of entry (``due_at``).
    """

    name: str
    kind: str
    anchor: str
    offset: int
    to: tuple[str, ...]
    template: str
    on_leave: str
    cancel_on: tuple[str, ...] = ()
    at_time: time = DEFAULT_TIME
    level: int = 0
    levels: int = 0
    ladder_start: int | None = None

    @property
    def rank(self) -> int:
        """The rung this rule is on (the outbox's ``level``): reminders and notices 0, an
        escalation its ladder level, a plain escalation 1."""
        if self.kind != "escalation":
            return 0
        return self.level or 1

    def describe(self) -> str:
        if self.anchor == "entry":
            return "on entry" if self.offset == 0 else f"{self.offset} working days after entry"
        if self.offset == 0:
            return "on the due date"
        side = "before" if self.offset < 0 else "after"
        return f"{abs(self.offset)} working days {side} due"

    def due_at(self, due: date | None, entered: datetime) -> datetime | None:
        """When this notification falls due (UTC), never before the state was entered.

        The ladder rule: when the state is entered after the first rung's time (the step was
        already overdue), rung *k* falls due at the later of its own time and the entry moved
        on by the working days between rung 1 and rung *k*; rung 1 at entry. So the ladder is
        climbed from the moment of entry, one rung at a time, instead of all rungs at once.
        """
        if self.anchor == "entry":
            if self.offset == 0:
                return entered
            moment = self._at(_shift(clock.local_date(entered), self.offset))
        else:
            if due is None:
                return None
            moment = self._at(_shift(due, self.offset))
            if self.ladder_start is not None and self._at(_shift(due, self.ladder_start)) < entered:
                lag = self.offset - self.ladder_start
                if lag > 0:
                    moment = max(moment, self._at(_shift(clock.local_date(entered), lag)))
        return max(moment, entered)

    def _at(self, day: date) -> datetime:
        """``at_time`` (local) on ``day``, in UTC."""
        return datetime.combine(day, self.at_time, tzinfo=clock.LOCAL).astimezone(UTC)


@lru_cache(maxsize=4096)
def _shift(day: date, offset: int) -> date:
    return calendar.add_working_days(day, offset) if offset else day


def _when(raw: Any) -> tuple[str, int] | str:
    """(anchor, offset) of a ``when`` value, or a problem."""
    if raw == "on_due":
        return ("due", 0)
    if raw == "on_entry":
        return ("entry", 0)
    if isinstance(raw, dict) and len(raw) == 1:
        ((key, n),) = raw.items()
        if key in _WHEN_KEYS:
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                return f"{key} must be a whole number of working days, 0 or more"
            if key == "before_due":
                return ("due", -n)
            if key == "after_due":
                return ("due", n)
            return ("entry", n)
    return "must be on_due, on_entry, {before_due: N}, {after_due: N} or {after_entry: N}"


def _recipients(raw: Any) -> list[str] | str:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        return "must be a role, an email address, or a list of them"
    return [i.strip() for i in items]


def template_names() -> frozenset[str]:
    """The templates shipped in ``notifications/templates`` (a definition may name these)."""
    return _template_names()


@lru_cache(maxsize=1)
def _template_names() -> frozenset[str]:
    from importlib import resources  # here: it costs every command's start its zipfile import

    root = resources.files("notifications") / "templates" / "da"
    suffix = ".subject.txt"
    return frozenset(
        entry.name[: -len(suffix)]
        for entry in root.iterdir()
        if entry.name.endswith(suffix) and not entry.name.startswith("_")
    )


def check_notifications(raw: Any, known: Known, state: str) -> list[str]:
    """Every problem in one state's ``notifications`` list (the validator's callback)."""
    if not isinstance(raw, list):
        return ["must be a list of notifications (name, kind, when, to, template)"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, spec in enumerate(raw):
        where = f"[{i}]"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a mapping with name, kind, when, to, template")
            continue
        name = spec.get("name")
        if isinstance(name, str):
            where = f"[{i}] ({name})"
        for key in sorted(set(spec) - _KEYS):
            problems.append(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}.name: required: lower-case letters, digits, '-' or '_'")
        elif name in seen:
            problems.append(f"{where}.name: {name!r} is declared twice in this state")
        else:
            seen.add(name)
        kind = spec.get("kind")
        if kind not in KINDS:
            problems.append(f"{where}.kind: must be one of {', '.join(KINDS)}")
        template = spec.get("template")
        if not isinstance(template, str) or not template:
            problems.append(f"{where}.template: required: a template name")
        elif known.templates is not None and template not in known.templates:
            problems.append(
                f"{where}.template: unknown template {template!r} "
                f"(known: {', '.join(sorted(known.templates))})"
            )
        on_leave = spec.get("on_leave")
        if on_leave is not None and on_leave not in ("keep", "cancel"):
            problems.append(f"{where}.on_leave: must be keep or cancel")
        cancel_on = spec.get("cancel_on")
        if cancel_on is not None and (
            not isinstance(cancel_on, list)
            or not all(isinstance(t, str) and _NAME.match(t) for t in cancel_on)
        ):
            problems.append(f"{where}.cancel_on: must be a list of trigger names")
        at = spec.get("time")
        if at is not None and not (isinstance(at, str) and _TIME.match(at)):
            problems.append(f'{where}.time: must be a local time such as "08:00"')
        if "ladder" in spec:
            for key in ("when", "to"):
                if key in spec:
                    problems.append(f"{where}.{key}: give it per rung of the ladder instead")
            rungs = spec["ladder"]
            if not isinstance(rungs, list) or not rungs:
                problems.append(f"{where}.ladder: must be a list of {{when, to}} rungs")
                continue
            for j, rung in enumerate(rungs):
                rwhere = f"{where}.ladder[{j}]"
                if not isinstance(rung, dict) or set(rung) != {"when", "to"}:
                    problems.append(f"{rwhere}: must be a mapping with exactly when and to")
                    continue
                problems += _check_when_to(rung, rwhere, known)
        else:
            for key in ("when", "to"):
                if key not in spec:
                    problems.append(f"{where}.{key}: required")
            problems += _check_when_to(spec, where, known)
    return problems


def _check_when_to(spec: Mapping[str, Any], where: str, known: Known) -> list[str]:
    problems: list[str] = []
    if "when" in spec:
        when = _when(spec["when"])
        if isinstance(when, str):
            problems.append(f"{where}.when: {when}")
    if "to" in spec:
        to = _recipients(spec["to"])
        if isinstance(to, str):
            problems.append(f"{where}.to: {to}")
        else:
            for item in to:
                if "@" in item:
                    if not _EMAIL.match(item):
                        problems.append(f"{where}.to: {item!r} is not an email address")
                elif item not in known.roles:
                    roles = ", ".join(sorted(known.roles))
                    problems.append(f"{where}.to: unknown role {item!r} (roles: {roles})")
    return problems


def rules(state: StateDef) -> tuple[Rule, ...]:
    """The notifications a (validated) state declares, ladders expanded."""
    out: list[Rule] = []
    for spec in state.notifications:
        kind = str(spec["kind"])
        on_leave = str(spec.get("on_leave") or DEFAULT_ON_LEAVE[kind])
        cancel_on = tuple(str(t) for t in spec.get("cancel_on") or ())
        at_time = time.fromisoformat(str(spec["time"])) if spec.get("time") else DEFAULT_TIME
        rungs = spec.get("ladder") or [spec]
        laddered = "ladder" in spec
        first = _when(rungs[0]["when"])
        assert not isinstance(first, str)  # validated
        for level, rung in enumerate(rungs, start=1):
            when = _when(rung["when"])
            to = _recipients(rung["to"])
            assert not isinstance(when, str) and not isinstance(to, str)  # validated
            climbs = laddered and first[0] == "due" and when[0] == "due"
            out.append(
                Rule(
                    name=f"{spec['name']}-{level}" if laddered else str(spec["name"]),
                    kind=kind,
                    anchor=when[0],
                    offset=when[1],
                    to=tuple(to),
                    template=str(spec["template"]),
                    on_leave=on_leave,
                    cancel_on=cancel_on,
                    at_time=at_time,
                    level=level if laddered else 0,
                    levels=len(rungs) if laddered else 0,
                    ladder_start=first[1] if climbs else None,
                )
            )
    return tuple(out)
