"""Planning one transition: which of a trigger's transitions may fire on a track now (role,
guards and ``unless``, required fields, time order), the due date of the state it enters, and
the ``Move`` that describes it, ready to write. Nothing here writes.

Separate from writing because the status import and the track's "why" plan without writing
(``plan``, ``_verdicts``), and the reports compute due dates as the engine does
(``compute_due``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from onboarding import calendar, clock, terms
from onboarding.errors import TransitionRefused
from onboarding.guards import GUARDS, GuardContext, Verdict
from onboarding.i18n import Message, Phrases
from workflows.model import Definition, GuardRef, StateDef, TransitionDef
from workflows.record import record as dataclass

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
