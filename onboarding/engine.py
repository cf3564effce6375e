"""The transition engine: start a track, fire a trigger on one track or many, set fields, migrate.

Every write is one ``BEGIN IMMEDIATE`` transaction: the track row (state, version, fields,
entered time, due date) and its appended history row commit together or not at all. Checks run
first (trigger valid from the state, role allowed, guards, required fields, time order, the
optimistic version); any refusal raises a user error before anything is written.

Bulk operations are set-based: the machine is asked once per (definition version, state,
trigger), guards read through a cached ``GuardContext``, and writes go out with
``executemany`` in batches, all inside one transaction (all or nothing).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from onboarding import audit, calendar, clock, definitions, outbox, permits, terms
from onboarding.db import Database, begin_immediate, immediate, rollback
from onboarding.errors import (
    InputError,
    NotFound,
    OnboardingError,
    PermissionDenied,
    StaleVersion,
    TransitionRefused,
)
from onboarding.guards import GUARDS, GuardContext, Verdict
from onboarding.i18n import Message, Phrases, Term
from onboarding.roles import require_role
from workflows.model import (
    OPTIONAL_PARTS,
    Definition,
    FieldDef,
    GuardRef,
    StateDef,
    TransitionDef,
)
from workflows.record import field
from workflows.record import record as dataclass

if TYPE_CHECKING:
    from onboarding.filters import TrackFilter


def _log(name: str, **fields: Any) -> None:
    """An event for the log of a long-running process (``onboarding.logs``). Only where logging
    is already in use: a one-off CLI advance does not pay to import it (start-up, issue 14)."""
    if "logging" not in sys.modules:
        return
    import logging

    from onboarding.logs import event

    event(logging.getLogger("onboarding.engine"), name, **fields)


START, SET, MIGRATE = "@start", "@set", "@migrate"
#: History triggers that do not re-enter the state (the step's clock keeps running).
NO_REENTRY = frozenset({SET, MIGRATE})
BATCH = 2000

TRACK_COLUMNS = (
    "id, definition, def_version, subject_key, municipality_code, system_id, index_set, bob,"
    " klik_task_id, course, vendor_id, subject_name, state, final, version, fields, entered_at,"
    " due, created_at, updated_at"
)


#: ``json.dumps(value, ensure_ascii=False, sort_keys=True)`` (how fields are stored), with one
#: encoder for the process instead of one built per call.
_FIELDS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


# --- reading tracks ---------------------------------------------------------------------------


#: The names of ``TRACK_COLUMNS``: the cursor's ``description`` is a tuple built per call.
_TRACK_NAMES = tuple(c.strip() for c in TRACK_COLUMNS.split(","))


def _row_to_track(row: tuple[Any, ...]) -> dict[str, Any]:
    """A track as a dict from a row of ``TRACK_COLUMNS`` (every caller selects those)."""
    track = dict(zip(_TRACK_NAMES, row, strict=True))
    track["fields"] = json.loads(track["fields"])
    return track


def load_track(conn: sqlite3.Connection, track_id: int) -> dict[str, Any]:
    cur = conn.execute(f"SELECT {TRACK_COLUMNS} FROM tracks WHERE id = ?", [track_id])
    row = cur.fetchone()
    if row is None:
        raise NotFound("track", str(track_id))
    return _row_to_track(row)


# --- values -----------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "ja", "y", "j"}
_FALSE = {"0", "false", "no", "nej", "n"}


def coerce_field(db: Database, fdef: FieldDef, raw: Any, at: datetime | None = None) -> Any:
    """A field value checked and normalised by its declared type (raises ``InputError``).

    A date far from ``at`` (the step's time) is kept, with a ``clock.FarDateWarning``."""
    text = str(raw).strip()
    # The field's name in an error (``_field_where``, a catalogue lookup) is built only for an
    # error: every advance with a value coerces it, and few values are wrong.
    if fdef.type == "text":
        if len(text) > 4000:
            raise InputError(
                Message("%(where)s: at most 4000 characters", {"where": _field_where(fdef)})
            )
        return text
    if fdef.type == "date":
        try:
            day = clock.parse_date(text)
        except InputError:
            clock.parse_date(text, what=_field_where(fdef))  # raises again, naming the field
            raise
        if at is not None:
            clock.warn_if_far(day, at, terms.field_named(fdef))
        return day.isoformat()
    if fdef.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise InputError(
                Message(
                    "%(where)s: %(value)s is not a whole number",
                    {"where": _field_where(fdef), "value": repr(text)},
                )
            ) from None
    if fdef.type == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise InputError(
            Message(
                "%(where)s: %(value)s is not yes/no",
                {"where": _field_where(fdef), "value": repr(text)},
            )
        )
    if fdef.type == "municipality":
        from onboarding import registry  # here: an advance without such a field never needs it

        return int(registry.resolve_municipality(db, text)["code"])
    if fdef.type == "wave":
        from onboarding import registry

        return str(registry.resolve_wave(db, text)["code"])
    if fdef.type == "choice":
        if text not in fdef.options:
            raise InputError(
                Message(
                    "%(where)s: %(value)s is not one of %(options)s",
                    {
                        "where": _field_where(fdef),
                        "value": repr(text),
                        "options": ", ".join(fdef.options),
                    },
                )
            )
        return text
    # the validator makes this unreachable
    raise InputError(Message("%(where)s: unsupported type", {"where": _field_where(fdef)}))


def _field_where(fdef: FieldDef) -> Message:
    """How an error names a field: by its key and type in English (as it always has), by its
    label in Danish."""
    name = terms.keyed(Term(fdef.name, {"da": f"“{fdef.label or fdef.name}”"}))
    return Message("field %(field)s (%(type)s)", {"field": name, "type": fdef.type})


def coerce_fields(
    db: Database, defn: Definition, sets: Mapping[str, Any], at: datetime | None = None
) -> dict[str, Any]:
    out = {}
    for name, raw in sets.items():
        fdef = defn.fields.get(name)
        if fdef is None:
            known = terms.keyed_all(terms.fields(defn, defn.fields))
            raise InputError(
                Message(
                    "%(definition)s has no field %(field)s (fields: %(known)s)",
                    {
                        "definition": defn.name,
                        "field": repr(name),
                        "known": known if defn.fields else Message("none"),
                    },
                )
            )
        out[name] = coerce_field(db, fdef, raw, at)
    return out


# --- due dates --------------------------------------------------------------------------------


def compute_due(
    ctx: GuardContext, state: StateDef, track: Mapping[str, Any], entered: datetime
) -> date | None:
    rule = state.due
    if rule is None or state.final:
        return None
    if rule.after_entry is not None:
        return calendar.add_working_days(clock.local_date(entered), rule.after_entry)
    assert rule.date is not None
    base = ctx.reference_date(track, rule.date)
    if base is None:
        return None
    return calendar.add_working_days(base, rule.offset) if rule.offset else base


# --- planning one transition ------------------------------------------------------------------


@dataclass
class Move:
    """One planned transition of one track, ready to write."""

    track: dict[str, Any]
    transition: TransitionDef | None
    trigger: str
    to_state: str
    final: bool
    fields_set: dict[str, Any]
    fields: dict[str, Any]
    entered_at: str
    due: str | None
    def_version: int


def _verdicts(
    ctx: GuardContext, track: Mapping[str, Any], t: TransitionDef
) -> tuple[list[str], list[str]]:
    """(reasons it is blocked, reasons it passes) for a transition's guards and unless."""
    blocked: list[str] = []
    passed: list[str] = []
    for ref in t.guards:
        v = _run_guard(ctx, track, ref)
        (passed if v.holds else blocked).append(v.reason)
    for ref in t.unless:
        v = _run_guard(ctx, track, ref)
        (blocked if v.holds else passed).append(v.reason)
    return blocked, passed


def _run_guard(ctx: GuardContext, track: Mapping[str, Any], ref: GuardRef) -> Verdict:
    return GUARDS[ref.name](ctx, track, ref.params)


def _check_trigger(defn: Definition, state: str, trigger: str) -> tuple[TransitionDef, ...]:
    if trigger not in defn.trigger_names:
        raise TransitionRefused(
            Message(
                "%(definition)s has no trigger %(trigger)s (triggers: %(triggers)s)",
                {
                    "definition": defn.name,
                    "trigger": repr(trigger),
                    "triggers": terms.triggers(defn, sorted(defn.trigger_names)),
                },
            )
        )
    candidates = defn.candidates(state, trigger)
    if not candidates:
        possible = defn.triggers_from(state)
        raise TransitionRefused(
            Message(
                "trigger %(trigger)s is not possible from state %(state)s (%(label)s); "
                "possible now: %(possible)s",
                {
                    "trigger": terms.trigger(defn, trigger),
                    "state": terms.state(defn, state),
                    "label": defn.state(state).label,
                    "possible": terms.triggers(defn, possible)
                    if possible
                    else Message("none: the track is finished"),
                },
            )
        )
    return candidates


def plan(
    ctx: GuardContext,
    defn: Definition,
    track: dict[str, Any],
    trigger: str,
    role: str,
    sets: Mapping[str, Any],
    unreported_ok: bool = False,
) -> Move:
    """Check that ``trigger`` may fire on ``track`` now and return the move (or raise).

    With ``unreported_ok`` (the monthly status import) a required field that is missing does
    not refuse the step: the field is recorded as ``None`` ("not reported") in the track and in
    the step's history row, so ``tracks.replay`` still equals the track row.
    """
    candidates = _check_trigger(defn, track["state"], trigger)
    allowed = sorted({r for t in candidates for r in t.roles})
    if role not in allowed:
        raise TransitionRefused(
            Message(
                "%(track)s: role %(role)s may not fire %(trigger)s (allowed: %(allowed)s)",
                {
                    "track": _track_label(track),
                    "role": terms.role(role),
                    "trigger": terms.trigger(defn, trigger),
                    "allowed": terms.roles(allowed),
                },
            )
        )
    at = ctx.at_stamp
    if at < track["updated_at"]:
        raise TransitionRefused(
            Message(
                "%(track)s: %(at)s is before its last recorded step (%(last)s); "
                "history never goes backwards",
                {
                    "track": _track_label(track),
                    "at": clock.unstamp(at),
                    "last": clock.unstamp(track["updated_at"]),
                },
            )
        )
    fields = {**track["fields"], **sets}
    view = {**track, "fields": fields}
    chosen: TransitionDef | None = None
    # Of alternatives that all fail, the one failing fewest guards explains best (the one
    # excluded by includes_bob/unless is not the reason a BoB-less connection is blocked).
    reasons: list[str] | None = None
    for t in candidates:
        blocked, _ = _verdicts(ctx, view, t)
        if not blocked:
            chosen = t
            break
        if reasons is None or len(blocked) < len(reasons):
            reasons = blocked
    if chosen is None:
        raise TransitionRefused(
            Message(
                "%(track)s: %(trigger)s is blocked: %(reasons)s",
                {
                    "track": _track_label(track),
                    "trigger": terms.trigger(defn, trigger),
                    "reasons": Phrases(reasons or [], "; "),
                },
            )
        )
    if role not in chosen.roles:
        raise TransitionRefused(
            Message(
                "%(track)s: role %(role)s may not fire %(trigger)s here (allowed: %(allowed)s)",
                {
                    "track": _track_label(track),
                    "role": terms.role(role),
                    "trigger": terms.trigger(defn, trigger),
                    "allowed": terms.roles(chosen.roles),
                },
            )
        )
    unlisted = sorted(set(sets) - set(chosen.inputs))
    if unlisted:
        raise TransitionRefused(
            Message(
                "%(track)s: %(trigger)s does not take %(unlisted)s (it takes: %(takes)s)",
                {
                    "track": _track_label(track),
                    "trigger": terms.trigger(defn, trigger),
                    "unlisted": terms.fields(defn, unlisted),
                    "takes": terms.fields(defn, chosen.inputs)
                    if chosen.inputs
                    else Message("no fields"),
                },
            ),
            hint=Message("'track set' changes a field without a step"),
            hint_sep="; ",
        )
    if unreported_ok:
        # The monthly status import rebuilds steps from a sheet: an earlier value still counts
        # there, and one never given is recorded as "not reported" (None).
        missing = [f for f in chosen.requires if fields.get(f) in (None, "")]
        sets = {**sets, **{f: None for f in missing}}
        fields = {**fields, **{f: None for f in missing}}
        view = {**track, "fields": fields}
        missing = []
    else:
        missing = [f for f in chosen.requires if not _field_given(defn, f, sets, track["fields"])]
    if missing:
        hints = " ".join(f"--set {f}=<{defn.fields[f].type}>" for f in missing)
        stale = [f for f in missing if track["fields"].get(f) not in (None, "")]
        params = {
            "track": _track_label(track),
            "trigger": terms.trigger(defn, trigger),
            "missing": terms.fields(defn, missing),
            "stale": terms.fields(defn, stale),
        }
        raise TransitionRefused(
            Message(
                "%(track)s: %(trigger)s needs %(missing)s (%(stale)s must be given again on "
                "this step: an earlier value does not count)"
                if stale
                else "%(track)s: %(trigger)s needs %(missing)s",
                params,
            ),
            hint=Message("give %(hints)s", {"hints": hints}),
        )
    dest = defn.state(chosen.dest)
    due = compute_due(ctx, dest, view, ctx.at)
    return Move(
        track=track,
        transition=chosen,
        trigger=trigger,
        to_state=dest.name,
        final=dest.final,
        fields_set=dict(sets),
        fields=fields,
        entered_at=at,
        due=due.isoformat() if due else None,
        def_version=defn.version,
    )


def _track_label(track: Mapping[str, Any]) -> Message:
    """How a refusal names the track (built only when one is raised: not on every step)."""
    return Message("track #%(id)s", {"id": str(track["id"])})


def _field_given(
    defn: Definition, name: str, sets: Mapping[str, Any], earlier: Mapping[str, Any]
) -> bool:
    """A required field is given on this firing, or (``keep: true``) was given before."""
    if sets.get(name) not in (None, ""):
        return True
    return defn.fields[name].keep and earlier.get(name) not in (None, "")


# --- writing ----------------------------------------------------------------------------------


#: What to do with a future date instead of ``--at`` (docs/workflows.md, "When a step happened").
PLANNED_HINT = Message("a planned date belongs in a date field of the track (--set NAME=DATE)")


@dataclass(frozen=True)
class Act:
    """Who acts, in which role, why, and when it happened."""

    actor: str
    role: str
    note: str | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        # An act dated later than the clock (beyond ``clock.FUTURE_TOLERANCE``) cannot exist,
        # whoever builds it (CLI, web page, status import), so no write can record it: a step
        # in the future would make every real step after it "go backwards", freezing the track.
        if self.at is not None:
            clock.check_not_future(self.at, hint=PLANNED_HINT)

    def moment(self) -> datetime:
        return self.at or clock.now()


def write_moves(
    conn: sqlite3.Connection, moves: list[Move], act: Act, at: str, recorded: str | None = None
) -> None:
    """Apply planned moves: update each track (checking its version) and append history.

    ``recorded`` is when this is written (one clock reading per operation: the history rows
    and the outbox share it)."""
    if not moves:
        return
    recorded = recorded or clock.stamp(clock.now())
    # The entered states' notifications first: the track row then points to their plan.
    heads = outbox.enter(conn, moves, recorded)
    keep: tuple[int | None, int | None] = (None, None)
    # ``final`` is only SET where it changes: SQLite rewrites the entry of every index whose
    # columns (or partial-index WHERE, here ``tracks_open_subject``'s ``final = 0``) the
    # statement SETs, even to the same value, and that page is one more written per advance.
    same: list[tuple[Any, ...]] = []
    flips: list[tuple[Any, ...]] = []
    for m in moves:
        values = (
            m.to_state,
            _FIELDS_JSON(m.fields),
            m.entered_at,
            m.due,
            m.def_version,
            at,
            *heads.get(int(m.track["id"]), keep),
        )
        if int(m.final) == int(m.track["final"]):
            same.append((*values, m.track["id"], m.track["version"]))
        else:
            flips.append((*values, int(m.final), m.track["id"], m.track["version"]))
    written = 0
    for params, final in ((same, ""), (flips, " final = ?,")):
        if params:
            written += conn.executemany(
                "UPDATE tracks SET state = ?, fields = ?, entered_at = ?, due = ?,"
                " def_version = ?, updated_at = ?, plan_id = coalesce(?, plan_id),"
                f" plan_open = coalesce(?, plan_open),{final} version = version + 1"
                " WHERE id = ? AND version = ?",
                params,
            ).rowcount
    if written != len(moves):
        raise StaleVersion(
            Message(
                "a track changed while this was being applied; nothing was written: read it again"
            )
        )
    audit.append(  # history rows, hash-chained (onboarding.audit)
        conn,
        [
            (
                m.track["id"],
                m.track["version"] + 1,
                m.track["state"],
                m.to_state,
                m.trigger,
                act.actor,
                act.role,
                act.note,
                at,
                recorded,
                m.def_version,
                _FIELDS_JSON(m.fields_set),
            )
            for m in moves
        ],
    )
    outbox.on_moves(conn, moves, at, recorded)


def advance(
    db: Database,
    track_id: int,
    trigger: str,
    act: Act,
    sets: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Fire ``trigger`` on one track; return the track as it is afterwards."""
    require_role(act.role, db)
    moment = act.moment()
    with immediate(db) as conn:
        track = load_track(conn, track_id)
        permits.authorize(conn, act.actor, act.role, track)
        _check_version(track, expected_version)
        defn = outbox.definition(conn, track["definition"], track["def_version"])
        values = coerce_fields(db, defn, sets or {}, moment)
        ctx = GuardContext(conn, moment)
        move = plan(ctx, defn, track, trigger, act.role, values)
        at = move.entered_at  # ctx.at_stamp, already formatted once by plan
        # Written "now" is the act's moment unless --at dated it: one clock reading.
        write_moves(conn, [move], act, at, None if act.at else at)
        after = moved_track(move, at)
    # Logged once committed (a long-running process's log, onboarding.logs); no field values.
    _log(
        "transition",
        track=track_id,
        trigger=trigger,
        to=move.to_state,
        version=after["version"],
        actor=act.actor,
        role=act.role,
    )
    return after


def _check_version(track: Mapping[str, Any], expected_version: int | None) -> None:
    """Optimistic locking for advance and its preview: the version the caller read, if given,
    must still be the track's."""
    if expected_version is not None and track["version"] != expected_version:
        raise StaleVersion(
            Message(
                "track #%(id)s changed since you read it (version %(expected)s, now %(now)s): "
                "read it again",
                {
                    "id": str(track["id"]),
                    "expected": str(expected_version),
                    "now": str(track["version"]),
                },
            )
        )


def moved_track(move: Move, at: str) -> dict[str, Any]:
    """The track row as ``write_moves`` left it, built from the move (not read back)."""
    return {
        **move.track,
        "state": move.to_state,
        "final": int(move.final),
        "version": int(move.track["version"]) + 1,
        # As stored and read back: keys sorted (json.dumps(sort_keys=True)).
        "fields": dict(sorted(move.fields.items())),
        "entered_at": move.entered_at,
        "due": move.due,
        "def_version": move.def_version,
        "updated_at": at,
    }


def preview_advance(
    db: Database,
    track_id: int,
    trigger: str,
    act: Act,
    sets: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """What ``advance`` would do, with every check it makes, and nothing written.

    Returns the move (from, to), the due date the track would get and the notifications
    entering the new state would schedule (each with when, to whom and its template). A step
    ``advance`` would refuse is refused here with the same error.
    """
    require_role(act.role, db)
    moment = act.moment()
    conn = db.conn
    track = load_track(conn, track_id)
    permits.authorize(conn, act.actor, act.role, track)
    _check_version(track, expected_version)
    defn = definitions.get(db, track["definition"], track["def_version"])
    values = coerce_fields(db, defn, sets or {})
    ctx = GuardContext(conn, moment)
    move = plan(ctx, defn, track, trigger, act.role, values)
    due = date.fromisoformat(move.due) if move.due else None
    entered = clock.unstamp(move.entered_at)
    notes = []
    for rule in outbox.state_rules(defn, move.to_state):
        when = rule.due_at(due, entered)
        if when is None:
            continue  # counted from a due date the step does not have
        notes.append(
            {
                "name": rule.name,
                "kind": rule.kind,
                "template": rule.template,
                "to": list(rule.to),
                "at": clock.stamp(when),
            }
        )
    notes.sort(key=lambda n: (n["at"], n["name"]))
    return {
        "id": track_id,
        "dry_run": True,
        "trigger": trigger,
        "from": track["state"],
        "from_label": defn.state(track["state"]).label,
        "to": move.to_state,
        "to_label": defn.state(move.to_state).label,
        "final": move.final,
        "at": move.entered_at,
        "fields_set": move.fields_set,
        "due": move.due,
        "version": track["version"],
        "notifications": notes,
    }


# --- bulk -------------------------------------------------------------------------------------


@dataclass
class BlockedGroup:
    """The selected tracks blocked for one reason: how many, and the first few by id."""

    reason: str
    count: int = 0
    #: ``{"id": ..., "subject": "Aarhus / KMD Momentum"}``, at most ``per_reason`` of them.
    tracks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BulkResult:
    selected: int = 0
    moved: int = 0
    blocked: list[tuple[int, str]] = field(default_factory=list)
    blocked_count: int = 0
    by_move: dict[tuple[str, str], int] = field(default_factory=dict)
    dry_run: bool = False
    #: The blocked tracks grouped by reason, in the order the reasons were first met.
    groups: dict[str, BlockedGroup] = field(default_factory=dict)

    def note_blocked(
        self, db: Database, track: Mapping[str, Any], reason: str, keep: int, per_reason: int | None
    ) -> None:
        """Count a blocked track in its reason's group (its id and subject kept while the group
        has fewer than ``per_reason``; None: all)."""
        from onboarding.tracks import _subject_labels, subject_text

        self.blocked_count += 1
        if len(self.blocked) < keep:
            self.blocked.append((track["id"], reason))
        # The reason without the track's own label, so the same cause groups together.
        general = _general(reason, track["id"])
        group = self.groups.setdefault(general, BlockedGroup(general))
        group.count += 1
        if per_reason is None or len(group.tracks) < per_reason:
            subject = subject_text(_subject_labels(db, dict(track)))
            group.tracks.append({"id": track["id"], "subject": subject})

    def refusal(self, trigger: str, shown: int = 5) -> Message:
        """Why a real bulk run moved nothing: a summary line, then per reason its count and
        a line naming the first tracks by id and subject (a ``Message``: English as ``str``)."""
        lines: list[Any] = [
            Message(
                "%(n)s of %(selected)s selected tracks cannot fire %(trigger)s, so none was moved:",
                {
                    "n": str(self.blocked_count),
                    "selected": str(self.selected),
                    "trigger": repr(trigger),
                },
            )
        ]
        for g in self.groups.values():
            named = ", ".join(f"#{t['id']} {t['subject']}".rstrip() for t in g.tracks[:shown])
            more = g.count - min(shown, len(g.tracks))
            tail = Message(" and %(more)s more", {"more": str(more)}) if more > 0 else ""
            lines += [
                Message("  %(count)s × %(reason)s", {"count": str(g.count), "reason": g.reason}),
                Message("      %(named)s%(tail)s", {"named": named, "tail": tail}),
            ]
        lines.append(
            Message("  'track advance --where ... --dry-run' lists them by reason (--json: all)")
        )
        return Message("%(lines)s", {"lines": Phrases(lines, "\n")})


def _general(reason: str, track_id: int) -> str:
    """A blocked track's reason without its own "track #N: ", still said in a language."""
    text = reason.removeprefix(f"track #{track_id}: ")
    if isinstance(reason, Message) and reason.msgid.startswith("%(track)s: "):
        params = {k: v for k, v in reason.params.items() if k != "track"}
        plural = reason.plural.removeprefix("%(track)s: ") if reason.plural else None
        msgid = reason.msgid.removeprefix("%(track)s: ")
        return Message(msgid, params, plural=plural, n=reason.n, text=text)
    return text


Progress = Callable[[int], None]


def _select_into_temp(conn: sqlite3.Connection, db: Database, flt: TrackFilter) -> int:
    where, params = flt.to_sql(db)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS bulk_selection (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM bulk_selection")
    conn.execute(
        f"INSERT INTO bulk_selection SELECT id FROM tracks t WHERE {where} AND t.final = 0",
        params,
    )
    return int(conn.execute("SELECT count(*) FROM bulk_selection").fetchone()[0])


def _chunks(conn: sqlite3.Connection) -> Iterator[list[dict[str, Any]]]:
    """The selected tracks in id order, a batch at a time (memory stays flat)."""
    last = 0
    cols = ", ".join(f"t.{c.strip()}" for c in TRACK_COLUMNS.split(","))
    while True:
        cur = conn.execute(
            f"SELECT {cols} FROM bulk_selection s JOIN tracks t ON t.id = s.id"
            " WHERE s.id > ? ORDER BY s.id LIMIT ?",
            [last, BATCH],
        )
        rows = [_row_to_track(r) for r in cur.fetchall()]
        if not rows:
            return
        last = rows[-1]["id"]
        yield rows


def bulk_advance(
    db: Database,
    flt: TrackFilter,
    trigger: str,
    act: Act,
    sets: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    keep_blocked: int = 50,
    per_reason: int | None = 20,
) -> BulkResult:
    """Fire ``trigger`` on every open track the filter selects: all of them, or none.

    A dry run checks everything and writes nothing. Otherwise any track that cannot fire
    makes the whole operation fail with the reasons, and nothing is written. The blocked
    tracks are grouped by reason (``BulkResult.groups``), with the id and subject of at most
    ``per_reason`` tracks each (None: all).
    """
    require_role(act.role, db)
    moment = act.moment()
    result = BulkResult(dry_run=dry_run)
    conn = db.conn
    begin_immediate(conn)  # bounded retry (onboarding.db)
    try:
        result.selected = _select_into_temp(conn, db, flt)
        allowed = permits.checker(conn, act.actor, act.role)  # None: the database runs open
        ctx = GuardContext(conn, moment)
        at = ctx.at_stamp
        values_by_def: dict[tuple[str, int], dict[str, Any]] = {}
        defs: dict[tuple[str, int], Definition] = {}
        for chunk in _chunks(conn):
            moves = []
            for track in chunk:
                key = (track["definition"], track["def_version"])
                if key not in defs:
                    defs[key] = outbox.definition(conn, *key)
                    values_by_def[key] = coerce_fields(db, defs[key], sets or {}, moment)
                defn = defs[key]
                try:
                    if allowed is not None:
                        allowed(track)
                    move = plan(ctx, defn, track, trigger, act.role, values_by_def[key])
                except (TransitionRefused, PermissionDenied) as exc:
                    result.note_blocked(db, track, exc.sentence(), keep_blocked, per_reason)
                    continue
                moves.append(move)
                pair = (track["state"], move.to_state)
                result.by_move[pair] = result.by_move.get(pair, 0) + 1
            if not dry_run and not result.blocked_count:
                write_moves(conn, moves, act, at)
            result.moved += len(moves)
            if progress:
                progress(len(chunk))
        if dry_run or result.blocked_count:
            conn.execute("ROLLBACK")
        else:
            conn.execute("COMMIT")
    except BaseException:
        rollback(conn)  # never hides the cause (a full disk ends the transaction itself)
        raise
    if result.blocked_count and not dry_run:
        raise TransitionRefused(result.refusal(trigger))
    if not dry_run and result.moved:  # one event for the bulk, not one per track
        _log(
            "transition",
            trigger=trigger,
            tracks=result.moved,
            actor=act.actor,
            role=act.role,
            bulk=True,
        )
    return result


# --- start ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What a new track is about, as the user named it (one attribute per ``track start``
    option; which apply is the definition's subject declaration)."""

    municipality: str | None = None
    system: str | None = None
    index: str | None = None
    bob: bool = False
    klik_task: str | None = None
    wave: str | None = None
    course: int | None = None
    vendor: str | None = None
    name: str | None = None


#: The ``Subject`` attribute behind each part (``index`` and ``index_set`` share ``--index``).
_PART_ATTR: Mapping[str, str] = {
    "municipality": "municipality",
    "vendor": "vendor",
    "system": "system",
    "index": "index",
    "index_set": "index",
    "bob": "bob",
    "klik_task": "klik_task",
    "wave": "wave",
    "course": "course",
    "name": "name",
}

#: The track's value of each part: its column (``wave`` lives in the fields, as it always has).
_PART_COLUMN: Mapping[str, str] = {
    "municipality": "municipality_code",
    "vendor": "vendor_id",
    "system": "system_id",
    "index": "index_set",
    "index_set": "index_set",
    "klik_task": "klik_task_id",
    "course": "course",
    "name": "subject_name",
}


def _option(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def _given(subject: Subject) -> set[str]:
    given = {
        k
        for k in (
            "municipality",
            "system",
            "index",
            "klik_task",
            "wave",
            "course",
            "vendor",
            "name",
        )
        if getattr(subject, k) is not None
    }
    if subject.bob:
        given.add("bob")
    return given


def _check_options(defn: Definition, subject: Subject) -> None:
    """Refuse an option the subject does not name, and a missing one it requires."""
    decl = defn.subject_parts
    takes = {_PART_ATTR[p] for p in decl.of}
    options = ", ".join(decl.options)
    extra = sorted(_given(subject) - takes)
    if extra:
        raise InputError(
            Message(
                "%(options)s does not apply to %(definition)s (its subject takes %(takes)s; "
                "see 'onboarding workflow show %(definition)s')",
                {
                    "options": ", ".join(map(_option, extra)),
                    "definition": defn.name,
                    "takes": options,
                },
            )
        )
    required = {_PART_ATTR[p] for p in decl.of if p not in OPTIONAL_PARTS}
    missing = sorted(a for a in required if getattr(subject, a) in (None, ""))
    if missing:
        raise InputError(
            Message(
                "%(definition)s tracks are about %(subject)s: give %(options)s",
                {
                    "definition": defn.name,
                    "subject": decl.text,
                    "options": ", ".join(map(_option, missing)),
                },
            )
        )


def _subject_name(text: str) -> str:
    """A free-text name as stored: surrounding and repeated spaces removed."""
    name = " ".join(text.split())
    if not name:
        raise InputError(Message("--name: give the subject's name (not blank)"))
    if len(name) > 200:
        raise InputError(Message("--name: at most 200 characters"))
    return name


def resolve_subject(db: Database, defn: Definition, subject: Subject) -> dict[str, Any]:
    """Resolve the names in a subject to registry rows; the columns of the new track.

    Only the parts the definition's subject declares are read: a track of a subject without an
    index part has no index (KOMBIT's ``sd`` default belongs to the index parts), and BoB is
    only a connection's flag."""
    from onboarding import registry  # here: only a start resolves a subject

    _check_options(defn, subject)
    parts = defn.subject_parts.of
    cols: dict[str, Any] = {"bob": int(subject.bob), "fields": {}}
    if subject.municipality:
        cols["municipality_code"] = int(
            registry.resolve_municipality(db, subject.municipality)["code"]
        )
    if subject.vendor:
        cols["vendor_id"] = int(registry.resolve_vendor(db, subject.vendor)["id"])
    if subject.system:
        cols["system_id"] = int(registry.resolve_system(db, subject.system)["id"])
    if "index" in parts or "index_set" in parts:
        names = (subject.index or "sd").split(",")
        codes = sorted({str(registry.resolve_index(db, n.strip())["code"]) for n in names})
        if "index" in parts and len(codes) != 1:
            what = (
                Message("a system-readiness track")
                if defn.subject == "system"
                else Message("this subject")
            )
            raise InputError(Message("%(what)s is for one index: give one --index", {"what": what}))
        cols["index_set"] = ",".join(codes)
    if subject.klik_task:
        cols["klik_task_id"] = int(registry.resolve_klik_task(db, subject.klik_task)["id"])
    if subject.wave:
        cols["fields"]["wave"] = str(registry.resolve_wave(db, subject.wave)["code"])
    if subject.course is not None:
        if not 1 <= subject.course <= 4:
            raise InputError(
                Message(
                    "--course %(course)s: courses are numbered 1 to 4",
                    {"course": str(subject.course)},
                )
            )
        cols["course"] = subject.course
    if subject.name is not None:
        cols["subject_name"] = _subject_name(subject.name)
    cols["subject_key"] = _subject_key(defn.subject_parts.key, cols)
    return cols


def _subject_key(key: tuple[str, ...], cols: Mapping[str, Any]) -> str:
    """The parts that identify an open track, joined by ':' in the declared key's order (the
    order today's kinds always used, so tracks already stored keep their key). A free-text
    name counts without case and extra spaces."""
    values = []
    for part in key:
        if part == "wave":
            values.append(str(cols["fields"]["wave"]))
        elif part == "name":
            values.append(str(cols["subject_name"]).casefold())
        else:
            values.append(str(cols[_PART_COLUMN[part]]))
    return ":".join(values)


def start(
    db: Database,
    definition: str,
    subject: Subject,
    act: Act,
    sets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a track on the latest version of a definition; the start is its first history row."""
    with immediate(db) as conn:
        return start_in(conn, db, definition, subject, act, sets)


def start_in(
    conn: sqlite3.Connection,
    db: Database,
    definition: str,
    subject: Subject,
    act: Act,
    sets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``start`` inside a write transaction the caller holds (an import applying a whole file)."""
    require_role(act.role, db)
    moment = act.moment()
    defn = definitions.get(db, definition)
    cols = resolve_subject(db, defn, subject)
    permits.authorize(conn, act.actor, act.role, {**cols, "id": None})
    fields = {**cols.pop("fields"), **coerce_fields(db, defn, sets or {}, moment)}
    open_row = conn.execute(
        "SELECT id, state FROM tracks WHERE definition = ? AND subject_key = ? AND final = 0",
        [defn.name, cols["subject_key"]],
    ).fetchone()
    if open_row:
        raise OnboardingError(
            Message(
                "this subject already has an open %(definition)s track: #%(id)s (in %(state)s); "
                "one open track per %(key)s",
                {
                    "definition": defn.name,
                    "id": str(open_row[0]),
                    "state": terms.keyed(terms.state(defn, open_row[1], quoted=False)),
                    "key": ", ".join(defn.subject_parts.key),
                },
            )
        )
    at = clock.stamp(moment)
    recorded = at if act.at is None else clock.stamp(clock.now())  # one reading when no --at
    initial = defn.state(defn.initial)
    ctx = GuardContext(conn, moment)
    due = compute_due(ctx, initial, {**cols, "fields": fields}, moment)
    fields_json = _FIELDS_JSON(fields)
    cur = conn.execute(
        "INSERT INTO tracks (definition, def_version, subject_key, municipality_code,"
        " system_id, index_set, bob, klik_task_id, course, vendor_id, subject_name, state,"
        " final, version, fields, entered_at, due, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
        [
            defn.name,
            defn.version,
            cols["subject_key"],
            cols.get("municipality_code"),
            cols.get("system_id"),
            cols.get("index_set"),
            cols["bob"],
            cols.get("klik_task_id"),
            cols.get("course"),
            cols.get("vendor_id"),
            cols.get("subject_name"),
            initial.name,
            int(initial.final),
            fields_json,
            at,
            due.isoformat() if due else None,
            at,
            at,
        ],
    )
    track_id = int(cur.lastrowid or 0)
    audit.append(
        conn,
        [
            (
                track_id,
                1,
                None,
                initial.name,
                START,
                act.actor,
                act.role,
                act.note,
                at,
                recorded,
                defn.version,
                fields_json,
            )
        ],
    )
    due_text = due.isoformat() if due else None
    outbox.on_start(
        conn, track_id, recorded, entry=(defn.name, defn.version, initial.name, due_text, at)
    )
    # The row as just inserted (TRACK_COLUMNS, as load_track reads it), not read back.
    return {
        "id": track_id,
        "definition": defn.name,
        "def_version": defn.version,
        "subject_key": cols["subject_key"],
        "municipality_code": cols.get("municipality_code"),
        "system_id": cols.get("system_id"),
        "index_set": cols.get("index_set"),
        "bob": cols["bob"],
        "klik_task_id": cols.get("klik_task_id"),
        "course": cols.get("course"),
        "vendor_id": cols.get("vendor_id"),
        "subject_name": cols.get("subject_name"),
        "state": initial.name,
        "final": int(initial.final),
        "version": 1,
        "fields": json.loads(fields_json),
        "entered_at": at,
        "due": due_text,
        "created_at": at,
        "updated_at": at,
    }


# --- fields outside a transition --------------------------------------------------------------


def set_fields(
    db: Database,
    track_id: int,
    sets: Mapping[str, Any],
    act: Act,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Record field values on a track without moving it (audited; the due date follows)."""
    require_role(act.role, db)
    if not sets:
        raise InputError(Message("nothing to set: give NAME=VALUE"))
    moment = act.moment()
    with immediate(db) as conn:
        track = load_track(conn, track_id)
        permits.authorize(conn, act.actor, act.role, track)
        if expected_version is not None and track["version"] != expected_version:
            raise StaleVersion(
                Message(
                    "track #%(id)s changed since you read it: read it again", {"id": str(track_id)}
                )
            )
        if track["final"]:
            raise TransitionRefused(
                Message("track #%(id)s is finished; its fields are closed", {"id": str(track_id)})
            )
        defn = definitions.get(db, track["definition"], track["def_version"])
        values = coerce_fields(db, defn, sets, moment)
        roles = {r for t in defn.transitions_from(track["state"]) for r in t.roles}
        if act.role not in roles:
            raise TransitionRefused(
                Message(
                    "track #%(id)s: role %(role)s does not act on this step (roles: %(roles)s)",
                    {
                        "id": str(track_id),
                        "role": terms.role(act.role),
                        "roles": terms.roles(sorted(roles)),
                    },
                )
            )
        ctx = GuardContext(conn, moment)
        at = ctx.at_stamp
        if at < track["updated_at"]:
            raise TransitionRefused(
                Message(
                    "track #%(id)s: %(at)s is before its last recorded step; "
                    "history never goes backwards",
                    {"id": str(track_id), "at": clock.unstamp(at)},
                )
            )
        fields = {**track["fields"], **values}
        state = defn.state(track["state"])
        due = compute_due(
            ctx, state, {**track, "fields": fields}, clock.unstamp(track["entered_at"])
        )
        move = Move(
            track=track,
            transition=None,
            trigger=SET,
            to_state=state.name,
            final=state.final,
            fields_set=values,
            fields=fields,
            entered_at=track["entered_at"],
            due=due.isoformat() if due else None,
            def_version=defn.version,
        )
        write_moves(conn, [move], act, at)
        return moved_track(move, at)


# --- migration --------------------------------------------------------------------------------


@dataclass
class MigrationResult:
    moved: int = 0
    by_state: dict[tuple[int, str, str], int] = field(default_factory=dict)
    dry_run: bool = False


def migrate(
    db: Database,
    name: str,
    to_version: int | None,
    mapping: Mapping[str, str],
    act: Act,
    dry_run: bool = False,
) -> MigrationResult:
    """Move every open track of ``name`` to another version, mapping states explicitly.

    A state that exists in the target version maps to itself unless ``mapping`` says otherwise;
    a state that does not must be mapped, or nothing moves. Each track gets a history row.
    """
    require_role(act.role, db)
    moment = act.moment()
    target = definitions.get(db, name, to_version)
    for old, new in mapping.items():
        if new not in target.by_name:
            raise InputError(
                Message(
                    "--map %(old)s=%(new)s: %(definition)s v%(version)s has no state %(state)s",
                    {
                        "old": old,
                        "new": new,
                        "definition": name,
                        "version": str(target.version),
                        "state": repr(new),
                    },
                )
            )
    result = MigrationResult(dry_run=dry_run)
    conn = db.conn
    begin_immediate(conn)  # bounded retry (onboarding.db)
    try:
        rows = conn.execute(
            f"SELECT {TRACK_COLUMNS} FROM tracks WHERE definition = ? AND final = 0"
            " AND def_version != ? ORDER BY id",
            [name, target.version],
        )
        tracks = [_row_to_track(r) for r in rows.fetchall()]
        unmapped = sorted(
            {
                (t["def_version"], t["state"])
                for t in tracks
                if t["state"] not in mapping and t["state"] not in target.by_name
            }
        )
        if unmapped:
            listed = ", ".join(f"{s} (v{v})" for v, s in unmapped)
            raise InputError(
                Message(
                    "%(definition)s v%(version)s has no state for %(states)s",
                    {"definition": name, "version": str(target.version), "states": listed},
                ),
                hint=Message("add --map OLD=NEW for each"),
            )
        ctx = GuardContext(conn, moment)
        at = ctx.at_stamp
        moves = []
        allowed = permits.checker(conn, act.actor, act.role)  # None: the database runs open
        for t in tracks:
            if allowed is not None:
                allowed(t)
            dest = target.state(mapping.get(t["state"], t["state"]))
            if at < t["updated_at"]:
                raise TransitionRefused(
                    Message(
                        "track #%(id)s: %(at)s is before its last recorded step",
                        {"id": str(t["id"]), "at": clock.unstamp(at)},
                    )
                )
            due = compute_due(ctx, dest, t, clock.unstamp(t["entered_at"]))
            moves.append(
                Move(
                    track=t,
                    transition=None,
                    trigger=MIGRATE,
                    to_state=dest.name,
                    final=dest.final,
                    fields_set={},
                    fields=t["fields"],
                    entered_at=t["entered_at"],
                    due=due.isoformat() if due else None,
                    def_version=target.version,
                )
            )
            key = (t["def_version"], t["state"], dest.name)
            result.by_state[key] = result.by_state.get(key, 0) + 1
        result.moved = len(moves)
        if not dry_run:
            write_moves(conn, moves, act, at)
            conn.execute("COMMIT")
        else:
            conn.execute("ROLLBACK")
    except BaseException:
        rollback(conn)
        raise
    return result
