"""A workflow definition as plain data, and the ``transitions`` machine built from it.

The loader (``workflows.loader``) turns YAML into these objects after validating it. One
``Definition`` per (name, version) is built once and reused: its machine is never bound to
per-track models; it answers "which transitions leave this state on this trigger".
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from workflows.record import field, record

if TYPE_CHECKING:
    from transitions import Machine

#: The registry kinds a subject is made of (``subject: {of: [...], key: [...]}``), each with
#: the ``track start`` option that names it and what it means.
SUBJECT_PARTS: Mapping[str, str] = {
    "municipality": "a municipality (--municipality)",
    "vendor": "a vendor (--vendor)",
    "system": "a vendor system (--system)",
    "index": "one index, sd unless --index says otherwise",
    "index_set": "a set of indices, sd unless --index says otherwise ('sd,ydelse')",
    "bob": "the flag --bob: the connection includes BoB display (needs system and index_set)",
    "klik_task": "a KLIK task (--klik-task)",
    "wave": "a rollout wave (--wave)",
    "course": "an onboarding course 1-4 (--course)",
    "name": "a free-text name (--name), compared without case and extra spaces",
}

#: The ``track start`` option of each part (``index`` and ``index_set`` share ``--index``).
PART_OPTIONS: Mapping[str, str] = {
    "municipality": "--municipality",
    "vendor": "--vendor",
    "system": "--system",
    "index": "--index",
    "index_set": "--index",
    "bob": "--bob",
    "klik_task": "--klik-task",
    "wave": "--wave",
    "course": "--course",
    "name": "--name",
}

#: Parts a track may leave out at start: the index defaults to sd, BoB is a flag.
OPTIONAL_PARTS = frozenset({"index", "index_set", "bob"})


@record(frozen=True)
class SubjectDef:
    """What a definition's tracks are about: registry kinds (``of``) and the parts that
    identify an open track (``key``). ``alias`` is the short name when written as one of
    today's kinds (``subject: municipality-system``); ``written`` is the YAML value as given."""

    of: tuple[str, ...]
    key: tuple[str, ...]
    alias: str | None = None
    written: Any = None

    @property
    def options(self) -> tuple[str, ...]:
        """The ``track start`` options this subject takes, in declared order, once each."""
        return tuple(dict.fromkeys(PART_OPTIONS[p] for p in self.of))

    @property
    def text(self) -> str:
        """A one-line name: the alias, or the declaration in YAML flow style."""
        if self.alias:
            return self.alias
        return f"{{of: [{', '.join(self.of)}], key: [{', '.join(self.key)}]}}"


#: Today's kinds, as short names for a declaration (the shipped definitions use them). Each key
#: keeps the order of the ``subject_key`` tracks already carry.
SUBJECT_ALIASES: Mapping[str, SubjectDef] = {
    "system": SubjectDef(("system", "index"), ("system", "index"), "system", "system"),
    "system-course": SubjectDef(
        ("system", "course"), ("system",), "system-course", "system-course"
    ),
    "municipality-system": SubjectDef(
        ("municipality", "system", "index_set", "bob"),
        ("municipality", "system", "index_set"),
        "municipality-system",
        "municipality-system",
    ),
    "municipality-klik": SubjectDef(
        ("municipality", "klik_task"),
        ("municipality", "klik_task"),
        "municipality-klik",
        "municipality-klik",
    ),
    "municipality-wave": SubjectDef(
        ("municipality", "wave"), ("municipality",), "municipality-wave", "municipality-wave"
    ),
}

#: What a track of a definition is about (the short names), for messages and docs.
SUBJECT_KINDS: Mapping[str, str] = {
    "system": "a vendor system and an index",
    "system-course": "a vendor system in an onboarding course (1-4)",
    "municipality-system": "a municipality, a system and an index set",
    "municipality-klik": "a municipality and a KLIK task",
    "municipality-wave": "a municipality in a rollout wave",
}

#: Field types a definition may declare, and what a value must look like.
FIELD_TYPES: Mapping[str, str] = {
    "text": "any text",
    "date": "an ISO date such as 2021-03-31",
    "integer": "a whole number",
    "boolean": "yes/no, true/false, ja/nej",
    "municipality": "a municipality code or name",
    "wave": "a rollout wave code such as B2",
    "choice": "one of the declared options",
}

#: Dated references a due rule may use, per subject part, besides the track's date fields.
PART_DATE_REFS: Mapping[str, tuple[str, ...]] = {
    "klik_task": ("klik_task.end_date",),
    "wave": (
        "wave.prepare_start",
        "wave.prepare_end",
        "wave.rollout_start",
        "wave.rollout_end",
        "wave.go_live",
    ),
}


def date_refs(subject: SubjectDef | None) -> tuple[str, ...]:
    """The dated references a subject's parts carry (``wave.go_live`` for a wave part)."""
    if subject is None:
        return ()
    return tuple(r for p in subject.of for r in PART_DATE_REFS.get(p, ()))


#: Dated references by short subject name (kept for readers of the old table).
DATE_REFS: Mapping[str, tuple[str, ...]] = {
    name: date_refs(sub) for name, sub in SUBJECT_ALIASES.items() if date_refs(sub)
}


@record(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str
    options: tuple[str, ...] = ()
    #: An earlier value satisfies a transition's ``requires`` (otherwise it must be given on
    #: that firing).
    keep: bool = False


@record(frozen=True)
class DueRule:
    """When a state falls due: N working days after entry, or a date carried by the track.

    ``date`` names a date field of the track or a reference such as ``wave.go_live``;
    ``offset`` shifts it by working days (negative: before).
    """

    after_entry: int | None = None
    date: str | None = None
    offset: int = 0

    def describe(self) -> str:
        if self.after_entry is not None:
            return f"{self.after_entry} working days after entry"
        shift = ""
        if self.offset:
            shift = f" {'+' if self.offset > 0 else '-'} {abs(self.offset)} working days"
        return f"{self.date}{shift}"


@record(frozen=True)
class GuardRef:
    """A named guard with its parameters, as written in a transition."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@record(frozen=True)
class StateDef:
    name: str
    label: str
    bucket: str | None = None
    phase: str | None = None
    role: str | None = None
    due: DueRule | None = None
    final: bool = False
    description: str | None = None
    notifications: tuple[Mapping[str, Any], ...] = ()


@record(frozen=True)
class TransitionDef:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    roles: tuple[str, ...]
    guards: tuple[GuardRef, ...] = ()
    unless: tuple[GuardRef, ...] = ()
    requires: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    label: str | None = None
    index: int = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.requires + self.optional


#: Whom a role is held for (``roles.yaml`` and a definition's ``roles:``): which scope a grant
#: of it and a contact in it name.
SCOPE_KINDS: Mapping[str, str] = {
    "national": "for every track (a national body: KOMBIT, an agency, a process)",
    "municipality": "for one municipality (its staff)",
    "vendor": "for one vendor (its systems' tracks)",
    "subject": "for the track's own subject (its municipality or its vendor)",
}


@record(frozen=True)
class RoleDef:
    """A role people act in: its stable key, its label per language (``da``, ``en``), whom it
    is held for (``SCOPE_KINDS``) and, optionally, how a message greets someone known only by
    the role ("KOMBIT-koordinatoren"), per language."""

    key: str
    label: Mapping[str, str]
    scope: str
    addressee: Mapping[str, str] = field(default_factory=dict)


@record(frozen=True)
class Definition:
    name: str
    version: int
    title: str
    #: The subject's one-line name (``subject_def.text``): the short name for today's kinds.
    subject: str
    initial: str
    states: tuple[StateDef, ...]
    transitions: tuple[TransitionDef, ...]
    fields: Mapping[str, FieldDef]
    #: The roles the definition declares itself (besides the shipped ones).
    roles: tuple[RoleDef, ...] = ()
    buckets: tuple[str, ...] = ()
    description: str | None = None
    source: str = ""
    subject_def: SubjectDef | None = None

    @property
    def subject_parts(self) -> SubjectDef:
        """The subject as parts and key (a definition built without one: by its short name)."""
        return self.subject_def or SUBJECT_ALIASES[self.subject]

    @cached_property
    def by_name(self) -> dict[str, StateDef]:
        return {s.name: s for s in self.states}

    def state(self, name: str) -> StateDef:
        return self.by_name[name]

    @cached_property
    def machine(self) -> Machine:
        """The structure as a ``transitions`` machine (no models bound, ever)."""
        from transitions import Machine  # only here: no command's path needs the machine

        return Machine(
            model=None,
            states=[s.name for s in self.states],
            initial=self.initial,
            transitions=[
                {
                    "trigger": t.trigger,
                    "source": list(t.sources),
                    "dest": t.dest,
                    # Guards are evaluated by the engine in batch; the machine carries only
                    # the structure, so conditions are left out here.
                }
                for t in self.transitions
            ],
            auto_transitions=False,
        )

    @cached_property
    def _candidates(self) -> dict[tuple[str, str], tuple[TransitionDef, ...]]:
        out: dict[tuple[str, str], list[TransitionDef]] = {}
        for t in self.transitions:
            for src in t.sources:
                out.setdefault((src, t.trigger), []).append(t)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _triggers(self) -> dict[str, tuple[str, ...]]:
        """The triggers leaving each state, in the order the machine gives them
        (``machine.get_triggers``: each trigger where it is first declared).

        Read from the transitions themselves, which is the same answer (the machine has no
        automatic transitions; tests/test_workflow_rules.py compares the two for every shipped
        definition) without importing ``transitions`` on every command's path.
        """
        order = {t: i for i, t in enumerate(dict.fromkeys(t.trigger for t in self.transitions))}
        leaving: dict[str, set[str]] = {s.name: set() for s in self.states}
        for t in self.transitions:
            for src in t.sources:
                leaving.setdefault(src, set()).add(t.trigger)
        return {
            name: tuple(sorted(found, key=order.__getitem__)) for name, found in leaving.items()
        }

    def candidates(self, state: str, trigger: str) -> tuple[TransitionDef, ...]:
        """Transitions for ``trigger`` from ``state``, in declared order (first that passes wins).

        Which triggers leave each state is worked out once per definition and kept, so a bulk
        operation over many tracks asks nothing per track.
        """
        if trigger not in self._triggers.get(state, ()):
            return ()
        return self._candidates.get((state, trigger), ())

    def triggers_from(self, state: str) -> list[str]:
        return list(self._triggers.get(state, ()))

    @cached_property
    def trigger_names(self) -> frozenset[str]:
        return frozenset(t.trigger for t in self.transitions)

    def transitions_from(self, state: str) -> list[TransitionDef]:
        return [t for t in self.transitions if state in t.sources]

    def bucket_rank(self, state: str) -> int:
        """Position of the state's bucket in the declared order (-1 when it has none)."""
        bucket = self.state(state).bucket
        return self.buckets.index(bucket) if bucket in self.buckets else -1

    def final_states(self) -> list[str]:
        return [s.name for s in self.states if s.final]

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of ``workflow show --json``."""
        return {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "subject": self.subject,
            "initial": self.initial,
            "buckets": list(self.buckets),
            "fields": [
                {"name": f.name, "type": f.type, "label": f.label, "options": list(f.options)}
                for f in self.fields.values()
            ],
            "states": [
                {
                    "name": s.name,
                    "label": s.label,
                    "final": s.final,
                    "bucket": s.bucket,
                    "phase": s.phase,
                    "role": s.role,
                    "due": s.due.describe() if s.due else None,
                }
                for s in self.states
            ],
            "transitions": [
                {
                    "trigger": t.trigger,
                    "source": list(t.sources),
                    "dest": t.dest,
                    "roles": list(t.roles),
                    "guards": [g.name for g in t.guards],
                    "unless": [g.name for g in t.unless],
                    "requires": list(t.requires),
                }
                for t in self.transitions
            ],
        }
