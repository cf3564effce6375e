"""The outbox: every email that must go out, as rows in the same SQLite database.

The outbox table is the source of truth for notifications; the scheduler is only a clock.

* **Scheduling** happens inside the transition's transaction (``enter``, ``on_start``,
  ``on_moves``, called by the engine on the same connection). Each notification is keyed by
  (track, state entry, notification), where the state entry is the history row's ``seq``; the
  unique key makes each exist exactly once however often a runner restarts. Entering a state
  writes (issue 14, "lean writes") only the notifications kept on leave (notices) as outbox
  rows; its reminders and escalations are one appended ``outbox_plan`` row (their ids, names
  and due times; ids taken in the order rows were always written in) that the track row
  points to (``plan_id``, ``plan_open``). Right before claiming, the sender writes the planned
  rows that have fallen due as outbox rows (``materialise_due``, same transaction as the
  claim, same ids and key); every reader (``list_rows``, ``get_row``, ``next_due``,
  ``superseding``, ``counts``) shows planned rows as the rows they stand for.
* **Leaving** a state cancels its unsent (pending, failed, or claimed but not yet handed over)
  reminders and escalations: the step is done. Planned ones cost nothing: the track row, which
  the advance writes anyway, stops pointing to the plan as open, and they are shown as
  cancelled (at the time the step was recorded). Notices are kept (an outside request must
  arrive even when the coordinator records the next step first) unless the notification says
  ``on_leave: cancel`` or the step is left by a trigger in its ``cancel_on`` list.
  ``on_leave: keep`` keeps a reminder too.
* **Changing the due date** (``track set`` of a date field, a migration) recomputes the pending
  rows of the current state entry; a migration to another state carries them there.
* **Sending** (``notifications.runner``) claims due rows with ``BEGIN IMMEDIATE`` and
  ``UPDATE ... RETURNING`` (status ``sending``, a lease). Right before a message goes to the
  transport, ``hand_over`` re-checks each row in one more ``BEGIN IMMEDIATE`` (still in its state
  entry, no ``cancel_on`` trigger since), renews the lease, stamps ``handed_at`` and charges the
  attempt; only then is the message sent and the result recorded. A row whose lease ran out is
  taken back by the next runner: untried (``handed_at`` empty) as if never claimed, handed over
  as an attempt that may have been delivered. Any number of runners may sweep the same database.

Notifications are declared per state in the workflow definition (``notifications:``); this
module parses and validates them (``check_notifications`` is the validator's callback).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from onboarding import calendar, clock, definitions
from onboarding.db import Database, immediate
from onboarding.errors import InputError, NotFound, OnboardingError
from onboarding.i18n import Message, Term
from workflows.model import Definition, StateDef
from workflows.record import record as dataclass

if TYPE_CHECKING:
    from onboarding.engine import Move
    from onboarding.visibility import Scope
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


# --- the declarations -------------------------------------------------------------------------


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


# --- scheduling (called by the engine inside its transaction) ---------------------------------

_UPSERT_WITH_ID = (
    "INSERT INTO outbox (id, track_id, entry_seq, state, notification, kind, level, template,"
    " recipients, on_leave, cancel_on, due_date, due_at, next_attempt_at, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (track_id, entry_seq, notification) DO UPDATE SET"
    " state = excluded.state, kind = excluded.kind, level = excluded.level,"
    " template = excluded.template,"
    " recipients = excluded.recipients, on_leave = excluded.on_leave,"
    " cancel_on = excluded.cancel_on, due_date = excluded.due_date, due_at = excluded.due_at,"
    " next_attempt_at = CASE WHEN outbox.attempts = 0 THEN excluded.due_at"
    " ELSE max(excluded.due_at, outbox.next_attempt_at) END,"
    " status = 'pending', updated_at = excluded.updated_at"
    " WHERE outbox.status IN ('pending', 'cancelled')"
)

#: Rows not yet handed to a transport: pending, failed, or claimed by a sender that has not
#: handed them over yet (its ``hand_over`` then finds them cancelled and sends nothing).
_UNSENT = "(status IN ('pending', 'failed') OR (status = 'sending' AND handed_at IS NULL))"

#: Cancel what leaving a state cancels: rows of earlier entries not yet sent.
_CANCEL_ON_LEAVE = (
    "UPDATE outbox SET status = 'cancelled', updated_at = ?,"
    " last_error = CASE WHEN status = 'failed' THEN last_error ELSE NULL END,"
    " claimed_by = NULL, lease_until = NULL"
    f" WHERE track_id = ? AND entry_seq < ? AND {_UNSENT}"
    " AND (on_leave = 'cancel' OR EXISTS (SELECT 1 FROM json_each(cancel_on) WHERE value = ?))"
)


#: A parsed definition's rules per state, computed once per process. Keyed by the object's
#: id, with the object kept in the value so the id cannot be reused (definitions are cached
#: for the life of the process anyway: ``definitions.parse``).
_STATE_RULES: dict[int, tuple[Definition, dict[str, tuple[Rule, ...]]]] = {}


def state_rules(defn: Definition, state: str) -> tuple[Rule, ...]:
    """The notifications ``state`` of ``defn`` declares (``rules``), cached."""
    entry = _STATE_RULES.get(id(defn))
    if entry is None or entry[0] is not defn:
        entry = _STATE_RULES[id(defn)] = (defn, {})
    found = entry[1].get(state)
    if found is None:
        st = defn.by_name.get(state)
        found = entry[1][state] = rules(st) if st is not None else ()
    return found


#: Parsed definitions by (name, version), per connection (``definition``). A stored version
#: never changes, so one read per connection and version is enough; keyed by the connection
#: object (kept in the value, so its id cannot be reused while the entry lives), because two
#: databases open in one process may hold different texts under the same name and version.
_DEFINITIONS: dict[int, tuple[sqlite3.Connection, dict[tuple[str, int], Definition]]] = {}
_CONNECTIONS_KEPT = 16


def _definitions_of(conn: sqlite3.Connection) -> dict[tuple[str, int], Definition]:
    entry = _DEFINITIONS.get(id(conn))
    if entry is None or entry[0] is not conn:
        while len(_DEFINITIONS) >= _CONNECTIONS_KEPT:
            del _DEFINITIONS[next(iter(_DEFINITIONS))]
        entry = _DEFINITIONS[id(conn)] = (conn, {})
    return entry[1]


def definition(conn: sqlite3.Connection, name: str, version: int) -> Definition:
    """Version ``version`` of definition ``name`` in the database of ``conn``, read and parsed
    once per connection (``definitions.get`` SELECTs its source on every call)."""
    known = _definitions_of(conn)
    found = known.get((name, version))
    if found is None:
        db = Database(conn)
        found = known[(name, version)] = definitions.get(db, name, version)
    return found


def remember_definition(conn: sqlite3.Connection, defn: Definition) -> None:
    """Feed the per-connection cache a definition read another way (e.g. pre-parsed)."""
    _definitions_of(conn)[(defn.name, defn.version)] = defn


class _Planner:
    """Due times and JSON of state entries; repeated (rule, due, entry) work is done once, as
    a bulk transition enters the same state with the same dates for many tracks. One per
    process (``_PLANNER``), emptied when it grows large (a server runs for weeks)."""

    LIMIT = 20_000

    def __init__(self) -> None:
        self.times: dict[tuple[Rule, str | None, str], str | None] = {}
        self.sets: dict[
            tuple[int, str | None, str], tuple[tuple[Rule, ...], tuple[tuple[Rule, str], ...]]
        ] = {}
        self.json: dict[tuple[str, ...], str] = {}

    def _json(self, items: tuple[str, ...]) -> str:
        text = self.json.get(items)
        if text is None:
            text = self.json[items] = json.dumps(list(items))
        return text

    def _when(self, rule: Rule, due: str | None, entered: str) -> str | None:
        key = (rule, due, entered)
        if key not in self.times:
            if len(self.times) >= self.LIMIT:
                self.times.clear()
            # Stored stamps end in "Z", which fromisoformat reads (and faster than strptime).
            moment = rule.due_at(
                date.fromisoformat(due) if due else None, datetime.fromisoformat(entered)
            )
            self.times[key] = None if moment is None else clock.stamp(moment)
        return self.times[key]

    def timed(
        self, rule_set: tuple[Rule, ...], due: str | None, entered: str
    ) -> tuple[tuple[Rule, str], ...]:
        """(rule, due time) of the rules that have a time for this entry, in rule order:
        one lookup per state entry (rule sets are cached per definition, kept in the value)."""
        key = (id(rule_set), due, entered)
        found = self.sets.get(key)
        if found is None or found[0] is not rule_set:
            if len(self.sets) >= self.LIMIT:
                self.sets.clear()
            timed = tuple(
                (rule, at) for rule in rule_set
                if (at := self._when(rule, due, entered)) is not None
            )
            found = self.sets[key] = (rule_set, timed)
        return found[1]

    def rows(
        self,
        track_id: int,
        seq: int,
        state: str,
        rule_set: Iterable[Rule],
        due: str | None,
        entered: str,
        now: str,
    ) -> tuple[list[tuple[Any, ...]], set[str]]:
        """Upsert parameters for one state entry's notifications, and the names computed."""
        params: list[tuple[Any, ...]] = []
        names: set[str] = set()
        for rule in rule_set:
            at = self._when(rule, due, entered)
            if at is None:
                continue
            names.add(rule.name)
            params.append(self.row(track_id, seq, state, rule, due, at, now))
        return params, names

    def row(
        self, track_id: int, seq: int, state: str, rule: Rule, due: str | None, at: str, now: str
    ) -> tuple[Any, ...]:
        """One row's values, in ``_UPSERT_WITH_ID``'s order after the id."""
        return (
            track_id,
            seq,
            state,
            rule.name,
            rule.kind,
            rule.rank,
            rule.template,
            self._json(rule.to),
            rule.on_leave,
            self._json(rule.cancel_on),
            due,
            at,
            at,
            now,
            now,
        )


_PLANNER = _Planner()

_INSERT_WITH_ID = (
    "INSERT INTO outbox (id, track_id, entry_seq, state, notification, kind, level, template,"
    " recipients, on_leave, cancel_on, due_date, due_at, next_attempt_at, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PLAN_INSERT = (
    "INSERT INTO outbox_plan (id, prev_id, track_id, entry_seq, state, def_version, due_date,"
    " made_at, rows, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _compact(rows: Iterable[Sequence[Any]]) -> str:
    """A plan's rows as stored: ``[[id,"name","due_at"],...]`` (names and stamps need no
    escaping: ``_NAME`` and ``clock.stamp``), without json.dumps on the write path."""
    return "[" + ",".join(f'[{r[0]},"{r[1]}","{r[2]}"]' for r in rows) + "]"


def _next_id(conn: sqlite3.Connection) -> int:
    """The next free outbox id: after every outbox row and every planned one. A plan's id is
    the last id it holds, so both maxima are one step down each table's rowid tree; the write
    lock (``BEGIN IMMEDIATE``) keeps two writers from taking the same ids."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM outbox), 0),"
        " coalesce((SELECT max(id) FROM outbox_plan), 0))"
    ).fetchone()
    return int(row[0]) + 1


#: Where a track row's plan pointer goes: (plan_id or None for unchanged, plan_open).
Heads = dict[int, tuple[int | None, int]]


def _enter(
    conn: sqlite3.Connection,
    entries: Sequence[tuple[int, int, str, int, str | None, str, tuple[Rule, ...]]],
    now: str,
) -> Heads:
    """Write what entering a state writes, for each (track, seq, state, version, due, entered,
    rules): the notifications kept on leave (notices) as outbox rows, the rest (cancelled by
    leaving) as one appended ``outbox_plan`` row, under ids in the order the rows were always
    written in. Returns where each track row's plan pointer goes, for the caller's write of
    the track row (before it: the new plan links to the track's head so far). Leaving the
    state before writes nothing more: the pointer moves on."""
    next_id = 0
    eager: list[tuple[Any, ...]] = []
    plans: list[tuple[Any, ...]] = []
    heads: Heads = {}
    for track_id, seq, state, version, due, entered, rule_set in entries:
        timed = _PLANNER.timed(rule_set, due, entered)
        if not timed:
            heads[track_id] = (None, 0)
            continue
        if not next_id:
            next_id = _next_id(conn)
        later: list[tuple[int, str, str]] = []
        for rule, at in timed:
            if rule.on_leave == "keep":
                eager.append((next_id, *_PLANNER.row(track_id, seq, state, rule, due, at, now)))
            else:
                later.append((next_id, rule.name, at))
            next_id += 1
        if later:
            plans.append((next_id - 1, track_id, seq, state, version, due, now,
                          _compact(later), min(r[2] for r in later)))
            heads[track_id] = (next_id - 1, 1)
        else:
            heads[track_id] = (None, 0)
    if eager:
        conn.executemany(_INSERT_WITH_ID, eager)
    if plans:
        # The plan's predecessor is the track's head so far (the track row is not written yet).
        conn.executemany(
            "INSERT INTO outbox_plan (id, prev_id, track_id, entry_seq, state, def_version,"
            " due_date, made_at, rows, next_at) SELECT ?, plan_id, id, ?, ?, ?, ?, ?, ?, ?"
            " FROM tracks WHERE id = ?",
            [(p[0], *p[2:], p[1]) for p in plans],
        )
    return heads


def enter(conn: sqlite3.Connection, moves: Sequence[Move], now: str) -> Heads:
    """Schedule the notifications of the states the moves enter (called by the engine before
    it writes the track rows, in the same transaction); return the track rows' plan
    pointers (``_enter``). A field change or a migration enters nothing."""
    entries = []
    for m in moves:
        if m.trigger in NOT_ENTRIES:
            continue
        name = str(m.track["definition"])
        rule_set = state_rules(definition(conn, name, m.def_version), m.to_state)
        entries.append((int(m.track["id"]), int(m.track["version"]) + 1, m.to_state,
                        m.def_version, m.due, m.entered_at, rule_set))
    return _enter(conn, entries, now) if entries else {}


def on_start(
    conn: sqlite3.Connection,
    track_id: int,
    now: str | None = None,
    entry: tuple[str, int, str, str | None, str] | None = None,
) -> None:
    """Schedule the notifications of a new track's initial state (its history seq 1).

    ``entry`` is the track's (definition, def_version, state, due, entered_at) when the
    caller has just written them (``engine.start``: not read back); otherwise it is read."""
    row = entry or conn.execute(
        "SELECT definition, def_version, state, due, entered_at FROM tracks WHERE id = ?",
        [track_id],
    ).fetchone()
    name, version, state, due, entered = row
    rule_set = state_rules(definition(conn, name, version), state)
    heads = _enter(conn, [(track_id, 1, state, version, due, entered, rule_set)],
                   now or clock.stamp(clock.now()))
    for plan_id, is_open in heads.values():
        conn.execute(
            "UPDATE tracks SET plan_id = coalesce(?, plan_id), plan_open = ? WHERE id = ?",
            [plan_id, is_open, track_id],
        )


def on_moves(
    conn: sqlite3.Connection, moves: Sequence[Move], at: str, now: str | None = None
) -> None:
    """Cancel and reschedule notifications for moves just written (same transaction; the
    entered states' were scheduled by ``enter`` before the track rows were written).

    A move that enters a state (any trigger but a field change or a migration) cancels what
    leaving the old entry cancels (its plan is no longer the track's open one: the track row
    says so; outbox rows already written and unsent are cancelled). A field change or a
    migration first writes the entry's planned rows out (``materialise_track``), then
    recomputes the current entry's rows in place, from the (new version's) rules of the
    state the track is in now: a migration to another state carries the entry's unsent rows
    there (same row, same Message-ID, sent once), and cancels those the state has no rule
    for unless they are kept on leave.
    """
    if not moves:
        return
    now = now or clock.stamp(clock.now())
    cancels: list[tuple[Any, ...]] = []
    for m in moves:
        track = m.track
        track_id = int(track["id"])
        if m.trigger not in NOT_ENTRIES:
            cancels.append((now, track_id, int(track["version"]) + 1, m.trigger))
            continue
        rule_set = state_rules(
            definition(conn, str(track["definition"]), m.def_version), m.to_state
        )
        _recompute(conn, m, rule_set, now)
    if cancels:
        conn.executemany(_CANCEL_ON_LEAVE, cancels)
    _withdraw_events(conn, moves, now)


def _recompute(conn: sqlite3.Connection, m: Move, rule_set: tuple[Rule, ...], now: str) -> None:
    """A field change or migration: the current entry's rows recomputed in place."""
    track_id = int(m.track["id"])
    materialise_track(conn, track_id)
    entry = _current_entry(conn, track_id)
    params, names = _PLANNER.rows(track_id, entry, m.to_state, rule_set, m.due, m.entered_at, now)
    existing = {
        str(n) for (n,) in conn.execute(
            "SELECT notification FROM outbox WHERE track_id = ? AND entry_seq = ?",
            [track_id, entry],
        ).fetchall()
    }
    # A new row takes the next id; one that exists is updated in place (no id taken).
    next_id = _next_id(conn)
    values = []
    for p in params:
        if p[3] in existing:
            values.append((None, *p))
        else:
            values.append((next_id, *p))
            next_id += 1
    if values:
        conn.executemany(_UPSERT_WITH_ID, values)
    # Unsent rows of this entry that can no longer be computed (no due date any more, or
    # a migrated state without them) are cancelled unless they are kept on leave.
    stale = conn.execute(
        "SELECT id, notification FROM outbox WHERE track_id = ? AND entry_seq = ?"
        f" AND {_UNSENT} AND on_leave = 'cancel'",
        [track_id, entry],
    ).fetchall()
    for row_id, name in stale:
        if name not in names:
            conn.execute(
                "UPDATE outbox SET status = 'cancelled', claimed_by = NULL,"
                " lease_until = NULL, updated_at = ? WHERE id = ?",
                [now, row_id],
            )


# --- plans: reminders and escalations not yet due ---------------------------------------------

_PLAN_COLUMNS = (
    "p.id, p.track_id, p.entry_seq, p.state, p.def_version, p.due_date, p.made_at, p.rows,"
    " t.definition, t.plan_id = p.id AND t.plan_open"
)


def _left_at(conn: sqlite3.Connection, track_id: int, seq: int) -> str | None:
    """When the track left the entry at history row ``seq`` (the recorded time of the next
    row that enters a state): what a left plan's rows show as their cancel time."""
    row = conn.execute(
        "SELECT recorded_at FROM history WHERE track_id = ? AND seq > ?"
        " AND trigger NOT IN (?, ?) ORDER BY seq LIMIT 1",
        [track_id, seq, *NOT_ENTRIES],
    ).fetchone()
    return str(row[0]) if row else None


def _plan_rows(
    conn: sqlite3.Connection, plan: Sequence[Any], only: Iterable[Sequence[Any]] | None = None
) -> list[dict[str, Any]]:
    """The outbox rows a plan (``_PLAN_COLUMNS``) stands for, as ``list_rows`` returns rows:
    pending while it is the track's open plan, cancelled (when the entry was left) after."""
    _, track_id, seq, state, version, due, made, rows, name, is_open = plan[:10]
    items = list(only) if only is not None else json.loads(rows)
    if not items:
        return []
    by_name = {r.name: r for r in state_rules(definition(conn, name, int(version)), state)}
    left = None if is_open else _left_at(conn, int(track_id), int(seq)) or made
    out = []
    for row_id, notification, at in items:
        rule = by_name.get(notification)
        if rule is None:  # cannot happen: a stored version's rules never change
            continue
        out.append(
            {
                "id": int(row_id),
                "track_id": int(track_id),
                "entry_seq": int(seq),
                "state": state,
                "notification": notification,
                "kind": rule.kind,
                "level": rule.rank,
                "template": rule.template,
                "recipients": list(rule.to),
                "on_leave": rule.on_leave,
                "cancel_on": list(rule.cancel_on),
                "due_date": due,
                "due_at": at,
                "status": "pending" if is_open else "cancelled",
                "attempts": 0,
                "next_attempt_at": at,
                "claimed_by": None,
                "lease_until": None,
                "handed_at": None,
                "sent_at": None,
                "sent_to": None,
                "message_id": None,
                "last_error": None,
                "created_at": made,
                "updated_at": made if is_open else left,
            }
        )
    return out


def _write_out(conn: sqlite3.Connection, plan: Sequence[Any], until: str | None) -> int:
    """Write an open plan's rows due by ``until`` (None: all) as pending outbox rows, with
    their ids, and keep the rest planned."""
    rows = json.loads(plan[7])
    due = [r for r in rows if until is None or r[2] <= until]
    rest = [r for r in rows if not (until is None or r[2] <= until)]
    values = [
        (
            r["id"], r["track_id"], r["entry_seq"], r["state"], r["notification"], r["kind"],
            r["level"], r["template"], _PLANNER._json(tuple(r["recipients"])), r["on_leave"],
            _PLANNER._json(tuple(r["cancel_on"])), r["due_date"], r["due_at"], r["due_at"],
            r["created_at"], r["created_at"],
        )
        for r in _plan_rows(conn, plan, due)
    ]
    if values:
        conn.executemany(_INSERT_WITH_ID, values)
    conn.execute(
        "UPDATE outbox_plan SET rows = ?, next_at = ? WHERE id = ?",
        [_compact(rest), min((r[2] for r in rest), default=None), plan[0]],
    )
    return len(values)


def materialise_due(conn: sqlite3.Connection, at: str, limit: int) -> int:
    """Write out the planned rows due by ``at`` of up to ``limit`` open plans, earliest first
    (inside the claim's transaction): every plan taken has a row due by ``at``, so the
    ``limit`` earliest due rows are then all outbox rows and the claim keeps its due order.
    A plan its track has left is closed on the way (its rows stay cancelled, never due)."""
    written = taken = 0
    while taken < limit:
        asked = limit - taken
        plans = conn.execute(
            f"SELECT {_PLAN_COLUMNS} FROM outbox_plan p JOIN tracks t ON t.id = p.track_id"
            " WHERE p.next_at <= ? ORDER BY p.next_at, p.id LIMIT ?",
            [at, asked],
        ).fetchall()
        closed = [(p[0],) for p in plans if not p[9]]
        if closed:  # left plans leave the index for good: a later sweep never reads them
            conn.executemany("UPDATE outbox_plan SET next_at = NULL WHERE id = ?", closed)
        written += sum(_write_out(conn, p, at) for p in plans if p[9])
        taken += len(plans) - len(closed)
        if len(plans) < asked:
            break  # no due plan is left
    return written


def _open_plan(conn: sqlite3.Connection, track_id: int) -> Any:
    return conn.execute(
        f"SELECT {_PLAN_COLUMNS} FROM tracks t JOIN outbox_plan p ON p.id = t.plan_id"
        " WHERE t.id = ? AND t.plan_open",
        [track_id],
    ).fetchone()


def materialise_track(conn: sqlite3.Connection, track_id: int) -> int:
    """Write out every planned row of the track's current entry (before a field change or a
    migration recomputes them, or a retry touches one)."""
    plan = _open_plan(conn, track_id)
    return _write_out(conn, plan, None) if plan is not None else 0


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many notifications there are per status, planned ones included (pending while
    their plan is open, cancelled after): what the rows written on entry used to count."""
    out: dict[str, int] = dict(
        conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
    )
    for is_open, n in conn.execute(
        "SELECT t.plan_id = p.id AND t.plan_open, sum(json_array_length(p.rows))"
        " FROM outbox_plan p JOIN tracks t ON t.id = p.track_id GROUP BY 1"
    ).fetchall():
        status = "pending" if is_open else "cancelled"
        out[status] = out.get(status, 0) + int(n or 0)
    return {k: v for k, v in out.items() if v}


def materialise_all(conn: sqlite3.Connection) -> int:
    """Write out every planned row of every current entry (tests that poke the outbox table)."""
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM tracks WHERE plan_open AND plan_id IS NOT NULL"
    ).fetchall()]
    return sum(materialise_track(conn, i) for i in ids)


#: A history row (alias ``h``) that enters a state: any trigger but a field change or a
#: migration, the start, and a migration to another state written before migrations carried
#: their rows (it scheduled rows under its own seq, which stay that entry's rows). One rule for
#: every question about state entries: the current one, the one a final move leaves, and where
#: an entry's deadline event stops counting changes.
_ENTERS = (
    f"(h.trigger NOT IN ('{NOT_ENTRIES[0]}', '{NOT_ENTRIES[1]}') OR h.from_state IS NULL"
    " OR (h.trigger = '@migrate' AND h.from_state != h.to_state AND EXISTS (SELECT 1 FROM"
    " outbox o WHERE o.track_id = h.track_id AND o.entry_seq = h.seq)))"
)


def _entry_upto(conn: sqlite3.Connection, track_id: int, seq: int) -> int | None:
    """The history seq at which the track entered the state it was in at history row ``seq``."""
    row = conn.execute(
        f"SELECT max(seq) FROM history h WHERE track_id = ? AND seq <= ? AND {_ENTERS}",
        [track_id, seq],
    ).fetchone()
    return int(row[0]) if row[0] is not None else None


def _current_entry(conn: sqlite3.Connection, track_id: int) -> int:
    """The history seq at which the track entered its current state."""
    return _entry_upto(conn, track_id, 2**63 - 1) or 1


# --- calendar events (one per track and state entry) -------------------------------------------

#: The notice that withdraws a deadline's calendar event when the track ends before it: its
#: notification name (the dot keeps it apart from any a definition may declare, and it stays
#: valid in a Message-ID) per how the track ended, and its template (the leading underscore
#: keeps definitions from naming it, like ``_digest``).
WITHDRAWALS = {"cancelled": "calendar.cancelled", "finished": "calendar.finished"}
WITHDRAW_TEMPLATE = "_calendar-cancel"


def event_key(row: Mapping[str, Any], token: str) -> str:
    """The left part of the UID of a row's deadline event: one per (track, state entry), so a
    reminder, the escalations and a notice of the same step update one calendar entry."""
    return f"t{row['track_id']}.e{row['entry_seq']}.deadline.{token}"


def event_sequence(db: Database, track_id: int, entry_seq: int) -> int:
    """The SEQUENCE of an entry's deadline event: how many times the track's fields changed
    (``track set``, a same-state migration: the only ways a deadline moves) while it was in
    that entry. It only grows, and it stops when the entry is left."""
    row = db.conn.execute(
        "SELECT count(*) FROM history WHERE track_id = ? AND seq > ?"
        " AND trigger IN (?, ?) AND from_state = to_state"
        " AND seq < coalesce((SELECT min(seq) FROM history h WHERE track_id = ? AND seq > ?"
        f"  AND {_ENTERS}), 9223372036854775807)",
        [track_id, entry_seq, *NOT_ENTRIES, track_id, entry_seq],
    ).fetchone()
    return int(row[0])


def _withdraw_events(conn: sqlite3.Connection, moves: Sequence[Move], now: str) -> None:
    """A track entering a final state withdraws the deadline event of the entry it leaves:
    if deadline mails of that entry were sent and the event's date has not passed, one notice
    (``WITHDRAW_TEMPLATE``, with a METHOD:CANCEL event) goes to the people who got them."""
    params: list[tuple[Any, ...]] = []
    for m in moves:
        if not m.final or m.track["final"]:
            continue
        track_id, seq = int(m.track["id"]), int(m.track["version"]) + 1
        entry = _entry_upto(conn, track_id, seq - 1)
        if entry is None:
            continue
        sent = conn.execute(
            "SELECT sent_to, due_date FROM outbox WHERE track_id = ? AND entry_seq = ?"
            " AND status = 'sent' AND due_date IS NOT NULL AND template != ?"
            " ORDER BY sent_at, id",
            [track_id, entry, WITHDRAW_TEMPLATE],
        ).fetchall()
        if not sent:
            continue
        day = sent[-1][1]  # the date the latest mail put in the calendar
        if day < clock.local_date(datetime.fromisoformat(m.entered_at)).isoformat():
            continue  # already past: nothing to take out of anyone's calendar
        people = list(dict.fromkeys(e for sent_to, _ in sent for e in json.loads(sent_to or "[]")))
        if not people:
            continue
        name = WITHDRAWALS["cancelled" if _phase(conn, m) == "cancelled" else "finished"]
        params.append(
            (
                track_id,
                entry,
                m.track["state"],
                name,
                WITHDRAW_TEMPLATE,
                json.dumps(people),
                day,
                m.entered_at,
                m.entered_at,
                now,
                now,
            )
        )
    if params:
        # Explicit ids after every planned one (a plan may hold ids above the outbox's own).
        first = _next_id(conn)
        conn.executemany(
            "INSERT INTO outbox (id, track_id, entry_seq, state, notification, kind, level,"
            " template, recipients, on_leave, cancel_on, due_date, due_at, next_attempt_at,"
            " created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'notice', 0, ?, ?, 'keep', '[]', ?, ?, ?, ?, ?)"
            " ON CONFLICT (track_id, entry_seq, notification) DO NOTHING",
            [(first + i, *p) for i, p in enumerate(params)],
        )


def _phase(conn: sqlite3.Connection, m: Move) -> str | None:
    state = definition(conn, str(m.track["definition"]), m.def_version).by_name.get(m.to_state)
    return state.phase if state else None


# --- claiming and recording (called by notifications.runner) -----------------------------------


OUTBOX_COLUMNS = (
    "id, track_id, entry_seq, state, notification, kind, level, template, recipients, on_leave,"
    " cancel_on, due_date, due_at, status, attempts, next_attempt_at, claimed_by, lease_until,"
    " handed_at, sent_at, sent_to, message_id, last_error, created_at, updated_at"
)


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    keys = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(keys, r, strict=True))
        for key in ("recipients", "cancel_on", "sent_to"):
            if key in row and isinstance(row[key], str):
                row[key] = json.loads(row[key])
        out.append(row)
    return out


def reclaim_stale(db: Database, now: datetime, max_attempts: int) -> int:
    """Put back rows whose runner's lease ran out (it died or hung); return how many.

    A row its runner never handed to the transport (``handed_at`` empty) goes back to pending
    as if never claimed: no attempt, no error. A row handed over and never recorded may already
    have been delivered: that message is the one possible duplicate (it carries the same
    Message-ID), its attempt counts, and a row that has used all its attempts this way fails.
    """
    stamp = clock.stamp(now)
    with immediate(db) as conn:
        untried = conn.execute(
            "UPDATE outbox SET status = 'pending', claimed_by = NULL, lease_until = NULL,"
            " updated_at = ? WHERE status = 'sending' AND lease_until < ? AND handed_at IS NULL",
            [stamp, stamp],
        )
        handed = conn.execute(
            "UPDATE outbox SET status = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END,"
            " last_error = 'the runner ' || coalesce(claimed_by, '?') || ' stopped while sending"
            " (lease ran out); the message may have been delivered',"
            " claimed_by = NULL, lease_until = NULL, handed_at = NULL, updated_at = ?"
            " WHERE status = 'sending' AND lease_until < ?",
            [max_attempts, stamp, stamp],
        )
        return int(untried.rowcount) + int(handed.rowcount)


def claim(
    db: Database, at: datetime, now: datetime, runner: str, limit: int, lease: timedelta
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` rows due at ``at``, in due order, for ``lease``.

    One ``BEGIN IMMEDIATE`` transaction: two runners never claim the same row. A claim is not
    an attempt; ``hand_over`` charges one when the message actually goes to the transport.
    """
    with immediate(db) as conn:
        # Planned reminders and escalations that have fallen due become rows first (same
        # transaction, same ids and exactly-once key as if written on entry).
        materialise_due(conn, clock.stamp(at), limit)
        cur = conn.execute(
            "UPDATE outbox SET status = 'sending', claimed_by = ?, lease_until = ?,"
            " handed_at = NULL, updated_at = ?"
            " WHERE id IN (SELECT id FROM outbox WHERE status = 'pending'"
            # In the partial index's order (outbox_ready), so a claim reads ``limit`` rows
            # whatever the backlog; ordering by due_at would sort every due row per batch.
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?)"
            f" RETURNING {OUTBOX_COLUMNS}",
            [runner, clock.stamp(now + lease), clock.stamp(now), clock.stamp(at), limit],
        )
        rows = _dicts(cur)
    rows.sort(key=lambda r: (r["due_at"], r["id"]))
    return rows


def cancel_reason(conn: sqlite3.Connection, row: Mapping[str, Any]) -> str | None:
    """Why a row must not be sent any more, or None.

    * the track has left the row's state entry and the row is cancelled by leaving
      (``on_leave: cancel``): the step is done (a field change or a migration is not leaving);
    * a trigger in the row's ``cancel_on`` has fired since the entry (kept notices too).
    """
    track_id, seq = row["track_id"], row["entry_seq"]
    if row["on_leave"] == "cancel":
        left = conn.execute(
            "SELECT 1 FROM history WHERE track_id = ? AND seq > ? AND trigger NOT IN (?, ?)"
            " LIMIT 1",
            [track_id, seq, *NOT_ENTRIES],
        ).fetchone()
        if left is not None:
            return "the step was done first"
    if row["cancel_on"]:
        fired = conn.execute(
            "SELECT trigger FROM history WHERE track_id = ? AND seq > ?"
            " AND trigger IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT 1",
            [track_id, seq, json.dumps(list(row["cancel_on"]))],
        ).fetchone()
        if fired is not None:
            return f"cancelled by {fired[0]!r} before it was sent"
    return None


#: Kinds a higher rung of the same state entry can supersede (notices always go).
SUPERSEDABLE = ("reminder", "escalation")


def superseding(
    conn: sqlite3.Connection, row: Mapping[str, Any], by: datetime
) -> dict[str, Any] | None:
    """The row that makes ``row`` unnecessary if ``row`` is sent at ``by``, or None.

    The supersede rule: a reminder or escalation R is superseded by another reminder or
    escalation S of the same track and state entry with a higher ``level`` (a reminder is 0,
    escalation rung *k* is *k*) that is due by ``by`` and pending, being sent or sent, and
    whose recipients include all of R's. The recipient then gets S only: one message per
    recipient per step, the highest rung due. The highest such S is returned.

    One lookup through the (track_id, entry_seq, notification) key: a few rows per entry.
    """
    if row["kind"] not in SUPERSEDABLE:
        return None
    mine = set(row["recipients"])
    found = conn.execute(
        "SELECT id, notification, level, recipients FROM outbox"
        " WHERE track_id = ? AND entry_seq = ? AND level > ?"
        " AND kind IN ('reminder', 'escalation') AND status IN ('pending', 'sending', 'sent')"
        " AND next_attempt_at <= ? ORDER BY level DESC, id",
        [row["track_id"], row["entry_seq"], row["level"], clock.stamp(by)],
    ).fetchall()
    candidates = [(-level, row_id, name, set(json.loads(to))) for row_id, name, level, to in found]
    candidates += [
        (-r["level"], r["id"], r["notification"], set(r["recipients"]))
        for r in _planned_of_entry(conn, row["track_id"], row["entry_seq"])
        if r["level"] > row["level"] and r["kind"] in SUPERSEDABLE
        and r["due_at"] <= clock.stamp(by)
    ]
    for neg_level, row_id, name, to in sorted(candidates, key=lambda c: (c[0], c[1])):
        if mine <= to:
            return {"id": row_id, "notification": name, "level": -neg_level}
    return None


def _planned_of_entry(conn: sqlite3.Connection, track_id: int, seq: int) -> list[dict[str, Any]]:
    """The planned (not yet written) rows of one current state entry."""
    plan = _open_plan(conn, track_id)
    return _plan_rows(conn, plan) if plan is not None and plan[2] == seq else []


def supersede_claimed(
    db: Database, rows: Sequence[dict[str, Any]], at: datetime, runner: str, now: datetime
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Record the claimed rows that a higher rung due at ``at`` supersedes (``superseding``)
    as ``superseded``, never sent; return the rows still to send and (row, superseded by) pairs.

    Runs on the claimed batch only, one indexed lookup per row: O(batch), whatever the backlog.
    A row whose claim this runner no longer holds is left to its new holder.
    """
    if not any(r["kind"] in SUPERSEDABLE for r in rows):
        return list(rows), []
    keep: list[dict[str, Any]] = []
    dropped: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with immediate(db) as conn:
        for row in rows:
            by = superseding(conn, row, at)
            if by is None:
                keep.append(row)
                continue
            cur = conn.execute(
                "UPDATE outbox SET status = 'superseded', last_error = ?, claimed_by = NULL,"
                " lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND status = 'sending' AND claimed_by = ?",
                [
                    f"superseded by #{by['id']} ({by['notification']}): a higher rung for"
                    " the same recipients is due",
                    clock.stamp(now),
                    row["id"],
                    runner,
                ],
            )
            if cur.rowcount == 1:
                dropped.append((row, by))
    return keep, dropped


def hand_over(
    db: Database,
    rows: Sequence[Mapping[str, Any]],
    runner: str,
    now: datetime,
    lease: timedelta,
    first: Callable[[sqlite3.Connection], object] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Right before one message goes to the transport: re-check, renew and charge its rows.

    One ``BEGIN IMMEDIATE`` transaction, so no step can be recorded between the check and the
    handover: a row whose track left its state entry (or whose ``cancel_on`` fired) is
    cancelled unsent; every other row still claimed by ``runner`` gets a fresh lease,
    ``handed_at`` and one more attempt. Returns (rows to send, with their new attempt count;
    (row, reason) cancelled). A row no longer ours (our lease ran out and another runner took
    it, or an advance cancelled it) is in neither.

    ``first(conn)`` runs at the start of the same transaction: the results of the messages
    handed over before (``outbox_results.Ledger``), so they cost no commit of their own.
    """
    stamp = clock.stamp(now)
    until = clock.stamp(now + lease)
    handed: list[dict[str, Any]] = []
    cancelled: list[tuple[dict[str, Any], str]] = []
    with immediate(db) as conn:
        if first is not None:
            first(conn)
        for row in rows:
            why = cancel_reason(conn, row)
            if why is not None:
                cur = conn.execute(
                    "UPDATE outbox SET status = 'cancelled', last_error = ?, claimed_by = NULL,"
                    " lease_until = NULL, handed_at = NULL, updated_at = ?"
                    " WHERE id = ? AND status = 'sending' AND claimed_by = ?",
                    [why, stamp, row["id"], runner],
                )
                if cur.rowcount == 1:
                    cancelled.append((dict(row), why))
                continue
            got = conn.execute(
                "UPDATE outbox SET lease_until = ?, handed_at = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ? AND status = 'sending' AND claimed_by = ?"
                " RETURNING attempts",
                [until, stamp, stamp, row["id"], runner],
            ).fetchone()
            if got is not None:
                handed.append({**row, "attempts": int(got[0]), "handed_at": stamp})
    return handed, cancelled


def record_sent(
    db: Database,
    row_id: int,
    runner: str,
    now: datetime,
    sent_to: Sequence[str],
    message_id: str,
    note: str | None = None,
) -> bool:
    cur = db.conn.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, sent_to = ?, message_id = ?,"
        " last_error = ?, claimed_by = NULL, lease_until = NULL, handed_at = NULL,"
        " updated_at = ? WHERE id = ? AND status = 'sending' AND claimed_by = ?",
        [
            clock.stamp(now),
            json.dumps(list(sent_to)),
            message_id,
            note,
            clock.stamp(now),
            row_id,
            runner,
        ],
    )
    return cur.rowcount == 1


def record_failure(
    db: Database,
    row_id: int,
    runner: str,
    now: datetime,
    error: str,
    retry_at: datetime | None,
    max_attempts: int,
    *,
    charged: bool = True,
) -> str:
    """Record a failed attempt: pending again at ``retry_at`` (None: permanent) or failed once
    the attempts are used up. Returns the row's new status ("lost": the row is not ours now).

    ``charged=False``: the message never reached the transport (it could not be built after
    ``hand_over``), so the attempt ``hand_over`` charged is taken back."""
    # Every expression of an UPDATE sees the row as it was: the attempts are computed twice.
    attempts = "attempts - CASE WHEN ? AND handed_at IS NOT NULL THEN 1 ELSE 0 END"
    cur = db.conn.execute(
        f"UPDATE outbox SET attempts = {attempts},"
        f" status = CASE WHEN ? IS NULL OR {attempts} >= ? THEN 'failed' ELSE 'pending' END,"
        " next_attempt_at = coalesce(?, next_attempt_at), last_error = ?,"
        " claimed_by = NULL, lease_until = NULL, handed_at = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'sending' AND claimed_by = ? RETURNING status",
        [
            int(not charged),
            None if retry_at is None else 1,
            int(not charged),
            max_attempts,
            None if retry_at is None else clock.stamp(retry_at),
            error[:2000],
            clock.stamp(now),
            row_id,
            runner,
        ],
    )
    row = cur.fetchone()
    return str(row[0]) if row else "lost"


def record_cancelled(db: Database, row_id: int, runner: str, now: datetime, why: str) -> bool:
    cur = db.conn.execute(
        "UPDATE outbox SET status = 'cancelled', last_error = ?, claimed_by = NULL,"
        " lease_until = NULL, handed_at = NULL, updated_at = ? WHERE id = ?"
        " AND status = 'sending' AND claimed_by = ?",
        [why, clock.stamp(now), row_id, runner],
    )
    return cur.rowcount == 1


def release(db: Database, row_id: int, runner: str, now: datetime, note: str | None = None) -> bool:
    """Give a claimed row back untouched: pending, due as before, its attempts as before the
    claim (an attempt ``hand_over`` charged is taken back: the server refused the session, not
    this message). ``note`` (why) goes to the row's error column."""
    cur = db.conn.execute(
        "UPDATE outbox SET status = 'pending',"
        " attempts = attempts - CASE WHEN handed_at IS NULL THEN 0 ELSE 1 END,"
        " last_error = coalesce(?, last_error), claimed_by = NULL, lease_until = NULL,"
        " handed_at = NULL, updated_at = ? WHERE id = ? AND status = 'sending' AND claimed_by = ?",
        [note if note is None else note[:2000], clock.stamp(now), row_id, runner],
    )
    return cur.rowcount == 1


def instance_token(db: Database) -> str:
    """This database's random token (part of every Message-ID)."""
    row = db.conn.execute("SELECT token FROM outbox_instance WHERE id = 1").fetchone()
    return str(row[0]) if row else "0"


def message_key(row: Mapping[str, Any], token: str) -> str:
    """The left part of a row's Message-ID: the same for every attempt at the same row."""
    return f"t{row['track_id']}.e{row['entry_seq']}.{row['notification']}.{token}"


def next_due(db: Database) -> datetime | None:
    """When the earliest pending row becomes due (or a lease runs out): the scheduler's wake-up."""
    row = db.conn.execute(
        "SELECT min(t) FROM (SELECT min(next_attempt_at) AS t FROM outbox WHERE status = 'pending'"
        " UNION ALL SELECT min(lease_until) FROM outbox WHERE status = 'sending'"
        # The earliest open plan (a left plan not yet closed by a sweep is passed over).
        " UNION ALL SELECT * FROM (SELECT p.next_at FROM outbox_plan p"
        " JOIN tracks t ON t.id = p.track_id WHERE p.next_at IS NOT NULL"
        " AND t.plan_id = p.id AND t.plan_open ORDER BY p.next_at LIMIT 1))"
    ).fetchone()
    return clock.unstamp(row[0]) if row and row[0] else None


# --- reading and requeueing ------------------------------------------------------------------

#: What the lists show of a row's track (``t``): its municipality and system by name.
_SUBJECT_COLUMNS = """t.municipality_code, m.name AS municipality,
           CASE WHEN s.id IS NULL THEN NULL ELSE v.name || ' ' || s.name END AS system"""
_SUBJECT_JOINS = """
    LEFT JOIN municipalities m ON m.code = t.municipality_code
    LEFT JOIN systems s ON s.id = t.system_id
    LEFT JOIN vendors v ON v.id = s.vendor_id
"""

_LIST_SQL = f"""
    SELECT {", ".join("o." + c.strip() for c in OUTBOX_COLUMNS.split(","))},
           t.definition, {_SUBJECT_COLUMNS}
    FROM outbox o
    JOIN tracks t ON t.id = o.track_id{_SUBJECT_JOINS}"""


def list_rows(
    db: Database,
    statuses: Sequence[str] = (),
    track_id: int | None = None,
    limit: int | None = None,
    until: datetime | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows in due order, optionally only some statuses, one track, due by ``until``,
    only those ``scope`` may read (``onboarding.visibility``)."""
    for status in statuses:
        if status not in STATUSES:
            # The keys are listed: they are what --status takes.
            raise InputError(
                Message(
                    "unknown status %(status)s (statuses: %(statuses)s)",
                    {"status": repr(status), "statuses": ", ".join(STATUSES)},
                )
            )
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"o.status IN ({', '.join('?' for _ in statuses)})")
        params += list(statuses)
    if track_id is not None:
        where.append("o.track_id = ?")
        params.append(track_id)
    if until is not None:
        where.append("o.next_attempt_at <= ?")
        params.append(clock.stamp(until))
    if scope is not None and not scope.everything:
        where.append(scope.outbox("o"))
    sql = _LIST_SQL + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY o.due_at, o.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = _dicts(db.conn.execute(sql, params))
    planned = _planned(db.conn, statuses, track_id, until, scope=scope)
    if not planned:
        return rows
    rows = sorted(rows + planned, key=lambda r: (r["due_at"], r["id"]))
    return rows if limit is None else rows[:limit]


_PLAN_LIST_SQL = f"""
    SELECT {_PLAN_COLUMNS}, {_SUBJECT_COLUMNS}
    FROM outbox_plan p
    JOIN tracks t ON t.id = p.track_id{_SUBJECT_JOINS}"""


def _planned(
    conn: sqlite3.Connection,
    statuses: Sequence[str],
    track_id: int | None,
    until: datetime | None,
    row_id: int | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Planned rows as ``list_rows`` shows them: pending while their plan is open, cancelled
    once the entry was left (what the rows written on entry used to say); only of the tracks
    ``scope`` reads."""
    wanted = {"pending", "cancelled"} & set(statuses) if statuses else {"pending", "cancelled"}
    if not wanted:
        return []
    if row_id is not None:
        # A plan's id is the last id it holds: the first plan at or after the row's id.
        plans = conn.execute(
            _PLAN_LIST_SQL + " WHERE p.id >= ? ORDER BY p.id LIMIT 1", [row_id]
        ).fetchall()
    elif track_id is not None:
        plans = _track_plans(conn, track_id)
    else:
        where = ["1"]
        if wanted == {"pending"}:
            where.append("t.plan_id = p.id AND t.plan_open")
        if scope is not None and not scope.everything:
            where.append(scope.outbox("p"))
        plans = conn.execute(_PLAN_LIST_SQL + " WHERE " + " AND ".join(where)).fetchall()
    if (row_id is not None or track_id is not None) and scope is not None \
            and not scope.everything:
        plans = [
            p for p in plans
            if conn.execute(
                f"SELECT 1 FROM outbox_plan p WHERE p.id = ? AND {scope.outbox('p')}", [p[0]]
            ).fetchone()
        ]
    stamp = None if until is None else clock.stamp(until)
    out = []
    for plan in plans:
        if ("pending" if plan[9] else "cancelled") not in wanted:
            continue
        extra = {"definition": plan[8], "municipality_code": plan[10], "municipality": plan[11],
                 "system": plan[12]}
        for r in _plan_rows(conn, plan):
            if (stamp is None or r["next_attempt_at"] <= stamp) and (
                row_id is None or r["id"] == row_id
            ):
                out.append({**r, **extra})
    return out


def _track_plans(conn: sqlite3.Connection, track_id: int) -> list[Any]:
    """A track's plans, newest first, along its chain (the track row holds the head)."""
    out = []
    head = conn.execute("SELECT plan_id FROM tracks WHERE id = ?", [track_id]).fetchone()
    at = head[0] if head else None
    while at is not None:
        plan = conn.execute(_PLAN_LIST_SQL + " WHERE p.id = ?", [at]).fetchone()
        if plan is None:
            break
        out.append(plan)
        at = conn.execute("SELECT prev_id FROM outbox_plan WHERE id = ?", [at]).fetchone()[0]
    return out


def get_row(db: Database, row_id: int) -> dict[str, Any]:
    rows = _dicts(db.conn.execute(_LIST_SQL + " WHERE o.id = ?", [row_id]))
    if not rows:
        rows = _planned(db.conn, (), None, None, row_id=row_id)  # a planned row
    if not rows:
        raise NotFound("notification", str(row_id))
    return rows[0]


def retry(db: Database, row_id: int) -> dict[str, Any]:
    """Requeue one failed (or pending) row as if never tried: due again at its due time."""
    with immediate(db) as conn:
        row = conn.execute("SELECT status FROM outbox WHERE id = ?", [row_id]).fetchone()
        if row is None:
            planned = _planned(conn, ("pending",), None, None, row_id=row_id)
            if planned:  # a planned row is written out first, then requeued as any other
                materialise_track(conn, int(planned[0]["track_id"]))
            else:
                cancelled = _planned(conn, ("cancelled",), None, None, row_id=row_id)
                if cancelled:
                    raise _not_retried(row_id, "cancelled")
            row = conn.execute("SELECT status FROM outbox WHERE id = ?", [row_id]).fetchone()
        if row is None:
            raise NotFound("notification", str(row_id))
        if row[0] not in ("failed", "pending"):
            raise _not_retried(row_id, str(row[0]))
        conn.execute(_REQUEUE + " WHERE id = ?", [clock.stamp(clock.now()), row_id])
    return get_row(db, row_id)


def _not_retried(row_id: int, status: str) -> OnboardingError:
    """A notification that cannot be retried, its status as the reader's language says it
    (English: the key, as the text has always had it)."""
    from onboarding import i18n

    forms = {lang: i18n.pgettext(lang, "status", status) for lang in i18n.LANGUAGES}
    return OnboardingError(
        Message(
            "notification %(id)s is %(status)s: only a failed or pending one can be retried",
            {"id": str(row_id), "status": Term(status, {**forms, "en": status})},
        )
    )


def retry_failed(db: Database) -> int:
    """Requeue every failed row; return how many."""
    with immediate(db) as conn:
        cur = conn.execute(_REQUEUE + " WHERE status = 'failed'", [clock.stamp(clock.now())])
        return int(cur.rowcount)


_REQUEUE = (
    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = due_at,"
    " claimed_by = NULL, lease_until = NULL, updated_at = ?"
)


# --- what a message is about ----------------------------------------------------------------


def recipients(db: Database, row: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The people (name, email, role) a row goes to now, and the roles with nobody to reach.

    A role is resolved through the registry's contacts by its scope kind (shipped or declared by
    a definition): for the track's municipality (municipality), its system's vendor (vendor),
    either (the track's subject) or for all (national).
    """
    from onboarding import registry, roles

    track = db.conn.execute(
        "SELECT t.municipality_code, coalesce(t.vendor_id, s.vendor_id) FROM tracks t"
        " LEFT JOIN systems s ON s.id = t.system_id WHERE t.id = ?",
        [row["track_id"]],
    ).fetchone()
    code, vendor = (track[0], track[1]) if track else (None, None)
    people: list[dict[str, Any]] = []
    missing: list[str] = []
    seen: set[str] = set()
    for item in row["recipients"]:
        if "@" in item:
            # A plain address (a notice to sapa@kombit.dk, a calendar withdrawal to the people
            # who got the event): greet by the registry's name for it when it has one.
            known = db.conn.execute(
                "SELECT name FROM contacts WHERE email = ? COLLATE NOCASE ORDER BY id LIMIT 1",
                [item],
            ).fetchone()
            found = [{"name": known[0] if known else "", "email": item.lower(), "role": None}]
        elif _unreachable(roles.scope_of(item, db), code, vendor):
            found = []
        else:
            found = [
                {"name": c["name"], "email": c["email"], "role": item}
                for c in registry.contacts_for(db, item, code, vendor)
            ]
        if not found:
            missing.append(item)
        for person in found:
            if person["email"] not in seen:
                seen.add(person["email"])
                people.append(person)
    return people, missing


def _unreachable(scope: str | None, code: int | None, vendor: int | None) -> bool:
    """A role held for a municipality (or vendor, or either) on a track that names none."""
    return (
        (scope == "municipality" and code is None)
        or (scope == "vendor" and vendor is None)
        or (scope == "subject" and code is None and vendor is None)
    )


def message_data(
    db: Database, row: Mapping[str, Any], at: datetime, lang: str = "da"
) -> dict[str, Any]:
    """Everything a template may show about a row's track (plain data, no rendering), with
    role labels in ``lang``, the language of the message."""
    from onboarding import roles

    conn = db.conn
    cur = conn.execute(
        "SELECT t.id, t.definition, t.def_version, t.state, t.final, t.fields, t.due,"
        " t.entered_at, t.index_set, t.bob, t.course, t.municipality_code, t.system_id,"
        " t.klik_task_id, t.vendor_id, t.subject_name FROM tracks t WHERE t.id = ?",
        [row["track_id"]],
    )
    t = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    fields = json.loads(t["fields"])
    defn = definitions.get(db, t["definition"], t["def_version"])
    state = defn.by_name.get(row["state"]) or _state_elsewhere(db, defn.name, row["state"])
    municipality = None
    if t["municipality_code"] is not None:
        m = conn.execute(
            "SELECT code, name, region FROM municipalities WHERE code = ?", [t["municipality_code"]]
        ).fetchone()
        municipality = {"code": m[0], "name": m[1], "region": m[2]}
    system = None
    if t["system_id"] is not None:
        s = conn.execute(
            "SELECT s.id, s.name, v.name, s.category FROM systems s"
            " JOIN vendors v ON v.id = s.vendor_id WHERE s.id = ?",
            [t["system_id"]],
        ).fetchone()
        system = {
            "id": s[0],
            "name": s[1],
            "vendor": s[2],
            "category": s[3],
            "label": f"{s[2]} {s[1]}",
        }
    indices = []
    for code in (t["index_set"] or "").split(","):
        if code:
            r = conn.execute("SELECT name FROM indices WHERE code = ?", [code]).fetchone()
            indices.append(r[0] if r else code)
    klik_task = None
    if t["klik_task_id"] is not None:
        k = conn.execute(
            "SELECT name, type, end_date FROM klik_tasks WHERE id = ?", [t["klik_task_id"]]
        ).fetchone()
        klik_task = {"name": k[0], "type": k[1], "end_date": date.fromisoformat(k[2])}
    wave = None
    if fields.get("wave"):
        w = conn.execute(
            "SELECT code, name, go_live FROM waves WHERE code = ?", [fields["wave"]]
        ).fetchone()
        if w:
            wave = {"code": w[0], "name": w[1], "go_live": date.fromisoformat(w[2])}
    parts = [
        p
        for p in (
            municipality["name"] if municipality else None,
            system["label"] if system else None,
            klik_task["name"] if klik_task else None,
            wave["name"] if wave else None,
            f"forløb {t['course']}" if t["course"] else None,
            _vendor_name(conn, t["vendor_id"]),  # a vendor subject (not a system's vendor)
            t["subject_name"],  # a free-text subject
        )
        if p
    ]
    due = date.fromisoformat(row["due_date"]) if row["due_date"] else None
    today = clock.local_date(at)
    role = state.role if state else None
    date_fields = {
        name: date.fromisoformat(value)
        for name, value in fields.items()
        if name in defn.fields and defn.fields[name].type == "date" and value
    }
    people, missing = recipients(db, row)
    for person in people:
        # Whom a greeting names when the contact has no name: the role, never its key.
        person["role_label"] = roles.label(person["role"], lang) if person["role"] else None
        person["addressee"] = (
            roles.addressee(
                person["role"],
                lang,
                municipality=municipality["name"] if municipality else None,
                vendor=system["vendor"] if system else None,
            )
            if person["role"]
            else None
        )
    return {
        "notification": {
            "id": row["id"],
            "name": row["notification"],
            "kind": row["kind"],
            "template": row["template"],
            "level": _level(row["notification"]),
        },
        "track": {
            "id": t["id"],
            "definition": t["definition"],
            "definition_title": defn.title,
            "state": row["state"],
            "step": state.label if state else row["state"],
            "phase": state.phase if state else None,
            "role": role,
            "role_label": roles.label(role, lang) if role else "",
            "current_state": t["state"],
            "finished": bool(t["final"]),
            "entered": clock.local_date(clock.unstamp(t["entered_at"])),
            "fields": fields,
            "dates": date_fields,
            "bob": bool(t["bob"]),
        },
        "subject_label": " · ".join(parts) or f"#{t['id']}",
        "municipality": municipality,
        "system": system,
        "indices": indices,
        "klik_task": klik_task,
        "wave": wave,
        "due": due,
        "today": today,
        **_deadline_facts(due, today),
        "recipients": people,
        "missing_roles": missing,
    }


def _deadline_facts(due: date | None, today: date) -> dict[str, Any]:
    """Where the sending day stands against the step's deadline, for the wording: before it
    (``working_days_left`` > 0), on the day itself (``due_today``) or after it (``overdue``, by
    ``working_days_overdue``). A Saturday after a Friday deadline is overdue by 0 working days."""
    if due is None:
        return {
            "working_days_left": None,
            "overdue": False,
            "due_today": False,
            "working_days_overdue": 0,
        }
    left = calendar.working_days_between(today, due)
    return {
        "working_days_left": left,
        "overdue": today > due,
        "due_today": today == due,
        "working_days_overdue": max(-left, 0) if today > due else 0,
    }


def _state_elsewhere(db: Database, name: str, state: str) -> StateDef | None:
    """The state in the newest stored version of the definition that has it: a kept notice of
    a state a migration renamed still shows the step's label, never its raw name."""
    versions = db.conn.execute(
        "SELECT version FROM definitions WHERE name = ? ORDER BY version DESC", [name]
    ).fetchall()
    for (version,) in versions:
        found = definitions.get(db, name, int(version)).by_name.get(state)
        if found is not None:
            return found
    return None


def _level(name: str) -> int:
    tail = name.rsplit("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


def _vendor_name(conn: sqlite3.Connection, vendor_id: int | None) -> str | None:
    if vendor_id is None:
        return None
    found = conn.execute("SELECT name FROM vendors WHERE id = ?", [vendor_id]).fetchone()
    return str(found[0]) if found else None
