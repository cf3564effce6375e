"""Load and validate workflow definitions (YAML).

The validator collects every problem, each with the path inside the file
(``states[2].due.after_entry: ...``), before anything runs. It knows no database: the caller
hands it the roles, guards and templates that exist (``Known``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from workflows.model import (
    DATE_REFS,
    FIELD_TYPES,
    SUBJECT_KINDS,
    Definition,
    DueRule,
    FieldDef,
    GuardRef,
    StateDef,
    TransitionDef,
)

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # at most 64 characters
_TOP_KEYS = {
    "name", "version", "title", "description", "subject", "initial", "buckets", "fields",
    "states", "transitions",
}
_STATE_KEYS = {
    "name", "label", "bucket", "phase", "role", "due", "final", "description", "notifications",
}
_TRANSITION_KEYS = {
    "trigger", "source", "dest", "roles", "guards", "unless", "requires", "optional", "label",
}


@dataclass(frozen=True)
class GuardSignature:
    """What a guard accepts: its required and optional parameters, and a one-line meaning."""

    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    doc: str = ""


#: A check for one state's ``notifications`` list; returns problems (paths relative to it).
NotificationCheck = Callable[[Any, "Known", str], list[str]]


@dataclass(frozen=True)
class Known:
    """Names that exist outside the definition: roles, guards, templates."""

    roles: frozenset[str]
    guards: Mapping[str, GuardSignature]
    templates: frozenset[str] | None = None
    check_notifications: NotificationCheck | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)


def shipped_dir() -> Path:
    return Path(str(resources.files("workflows") / "definitions"))


def shipped_files() -> dict[str, Path]:
    """The definitions that ship with the package, by file stem."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.yaml"))}


#: libyaml's safe loader when PyYAML has it: the same documents, about 5x faster (a command
#: parses its definition once per process; bench/RESULTS.md).
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def parse_yaml(text: str, source: str) -> tuple[Any, list[str]]:
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER), []  # a safe loader (CSafeLoader)
        except yaml.YAMLError:
            pass  # the pure-Python loader below words the problem as it always has
    try:
        return yaml.safe_load(text), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        return None, [f"{where}: YAML syntax: {exc.problem or exc}"]
    except yaml.YAMLError as exc:
        return None, [f"YAML syntax: {exc}"]


def validate_text(text: str, source: str, known: Known) -> list[str]:
    """Every problem in a definition's text (empty list: it is valid)."""
    data, problems = parse_yaml(text, source)
    if problems:
        return problems
    return _validate(data, known).items


def load_text(text: str, source: str, known: Known) -> Definition:
    """Validate and build a definition; raise ``DefinitionInvalid`` listing every problem."""
    from onboarding.errors import DefinitionInvalid

    data, problems = parse_yaml(text, source)
    if not problems:
        problems = _validate(data, known).items
    if problems:
        raise DefinitionInvalid(source, problems)
    return _build(data, text)


def load_file(path: str | Path, known: Known) -> Definition:
    from onboarding.errors import InputError

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read definition: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{p}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as "
            "UTF-8"
        ) from None
    return load_text(text, str(p), known)


# --- validation -------------------------------------------------------------------------------


def _validate(data: Any, known: Known) -> _Problems:
    out = _Problems()
    if not isinstance(data, dict):
        out.add("", "a definition must be a mapping with name, version, states, transitions")
        return out
    for key in sorted(set(data) - _TOP_KEYS):
        out.add(key, f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    _check_header(data, out)
    fields = _check_fields(data.get("fields"), out)
    buckets = _check_buckets(data.get("buckets"), out)
    states = _check_states(data, fields, buckets, known, out)
    _check_transitions(data, states, fields, known, out)
    _check_graph(data, states, out)
    return out


def _check_header(data: dict[str, Any], out: _Problems) -> None:
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        out.add("name", "required: lower-case letters, digits, '-' or '_' (at most 64)")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        out.add("version", "required: a whole number from 1")
    if not isinstance(data.get("title"), str) or not data.get("title"):
        out.add("title", "required: a short title")
    subject = data.get("subject")
    if not _named(subject, SUBJECT_KINDS):
        out.add("subject", f"must be one of {', '.join(SUBJECT_KINDS)}")
    if "initial" not in data:
        out.add("initial", "missing initial state")


def _check_fields(raw: Any, out: _Problems) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        out.add("fields", "must be a mapping of field name to {type, label}")
        return {}
    types: dict[str, str] = {}
    for name, spec in raw.items():
        path = f"fields.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            out.add(path, "field names are lower-case letters, digits and '_' (at most 64)")
            continue
        if not isinstance(spec, dict):
            out.add(path, "must be a mapping with type and label")
            continue
        for key in sorted(set(spec) - {"type", "label", "options"}):
            out.add(f"{path}.{key}", "unknown key (allowed: type, label, options)")
        ftype = spec.get("type")
        if not isinstance(ftype, str) or ftype not in FIELD_TYPES:
            out.add(f"{path}.type", f"must be one of {', '.join(FIELD_TYPES)}")
            continue
        if ftype == "choice":
            options = spec.get("options")
            if not isinstance(options, list) or not options:
                out.add(f"{path}.options", "a choice field needs a non-empty list of options")
        types[name] = ftype
    return types


def _check_buckets(raw: Any, out: _Problems) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(b, str) and b for b in raw):
        out.add("buckets", "must be a list of report bucket labels, earliest first")
        return []
    if len(set(raw)) != len(raw):
        out.add("buckets", "a bucket is listed twice")
    return list(raw)


def _check_states(
    data: dict[str, Any],
    fields: dict[str, str],
    buckets: list[str],
    known: Known,
    out: _Problems,
) -> dict[str, dict[str, Any]]:
    raw = data.get("states")
    if not isinstance(raw, list) or not raw:
        out.add("states", "required: a non-empty list of states")
        return {}
    states: dict[str, dict[str, Any]] = {}
    for i, spec in enumerate(raw):
        path = f"states[{i}]"
        if not isinstance(spec, dict):
            out.add(path, "must be a mapping with at least name and label")
            continue
        name = spec.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            out.add(f"{path}.name", "required: lower-case letters, digits, '-' or '_' (at most 64)")
            continue
        path = f"states[{i}] ({name})"
        if name in states:
            out.add(path, "state declared twice")
            continue
        states[name] = spec
        for key in sorted(set(spec) - _STATE_KEYS):
            out.add(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(_STATE_KEYS))})")
        if not isinstance(spec.get("label"), str) or not spec.get("label"):
            out.add(f"{path}.label", "required: the Danish label coordinators see")
        if "final" in spec and not isinstance(spec["final"], bool):
            out.add(f"{path}.final", "must be true or false")
        bucket = spec.get("bucket")
        if buckets and bucket is None:
            out.add(f"{path}.bucket", f"required when buckets are declared: {', '.join(buckets)}")
        elif bucket is not None and bucket not in buckets:
            out.add(f"{path}.bucket", f"unknown bucket {bucket!r} (declared: {buckets or 'none'})")
        role = spec.get("role")
        if role is not None and not _named(role, known.roles):
            out.add(f"{path}.role", f"unknown role {role!r}")
        if "due" in spec:
            _check_due(spec["due"], f"{path}.due", data.get("subject"), fields, out)
        if "notifications" in spec:
            if known.check_notifications is None:
                out.add(f"{path}.notifications", "notifications are not supported here")
            else:
                for problem in known.check_notifications(spec["notifications"], known, name):
                    out.add(f"{path}.notifications", problem)
    initial = data.get("initial")
    if "initial" in data and not _named(initial, states):
        out.add("initial", f"unknown state {initial!r}")
    return states


def _check_due(
    raw: Any, path: str, subject: Any, fields: dict[str, str], out: _Problems
) -> None:
    if not isinstance(raw, dict):
        out.add(path, "must be {after_entry: N} or {date: FIELD_OR_REF, offset: N}")
        return
    for key in sorted(set(raw) - {"after_entry", "date", "offset"}):
        out.add(f"{path}.{key}", "unknown key (allowed: after_entry, date, offset)")
    has_after, has_date = "after_entry" in raw, "date" in raw
    if has_after == has_date:
        out.add(path, "give exactly one of after_entry (working days) or date")
        return
    if has_after:
        n = raw["after_entry"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            out.add(f"{path}.after_entry", "must be a whole number of working days, 0 or more")
        if "offset" in raw:
            out.add(f"{path}.offset", "offset goes with date, not after_entry")
        return
    ref = raw["date"]
    refs = DATE_REFS.get(str(subject), ())
    if not isinstance(ref, str) or (fields.get(ref) != "date" and ref not in refs):
        choices = [f for f, t in fields.items() if t == "date"] + list(refs)
        out.add(
            f"{path}.date",
            f"{ref!r} is not a date field or reference (choose from: "
            f"{', '.join(choices) or 'none declared'})",
        )
    offset = raw.get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool):
        out.add(f"{path}.offset", "must be a whole number of working days")


def _named(value: Any, names: Iterable[str]) -> bool:
    """``value`` is a string among ``names`` (a list or mapping in its place is not; no crash)."""
    return isinstance(value, str) and value in names


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _check_guard_list(raw: Any, path: str, known: Known, out: _Problems) -> list[str]:
    keys: list[str] = []
    for j, g in enumerate(_as_list(raw)):
        gpath = f"{path}[{j}]"
        if isinstance(g, str):
            name, params = g, {}
        elif isinstance(g, dict) and isinstance(g.get("name"), str):
            name, params = g["name"], {k: v for k, v in g.items() if k != "name"}
        else:
            out.add(gpath, "a guard is a name or {name: GUARD, PARAM: VALUE}")
            continue
        sig = known.guards.get(name)
        if sig is None:
            out.add(gpath, f"unknown guard {name!r} (known: {', '.join(sorted(known.guards))})")
            continue
        for missing in sorted(sig.required - set(params)):
            out.add(gpath, f"guard {name!r} needs parameter {missing!r}")
        for extra in sorted(set(params) - sig.required - sig.optional):
            out.add(gpath, f"guard {name!r} has no parameter {extra!r}")
        keys.append(repr((name, sorted(params.items(), key=lambda kv: kv[0]))))
    return keys


def _check_transitions(
    data: dict[str, Any],
    states: dict[str, dict[str, Any]],
    fields: dict[str, str],
    known: Known,
    out: _Problems,
) -> None:
    raw = data.get("transitions")
    if not isinstance(raw, list):
        out.add("transitions", "required: a list of transitions")
        return
    seen: dict[tuple[str, str], list[tuple[set[str], set[str], str]]] = {}
    for i, spec in enumerate(raw):
        path = f"transitions[{i}]"
        if not isinstance(spec, dict):
            out.add(path, "must be a mapping with trigger, source, dest, roles")
            continue
        trigger = spec.get("trigger")
        if isinstance(trigger, str):
            path = f"transitions[{i}] ({trigger})"
        for key in sorted(set(spec) - _TRANSITION_KEYS):
            allowed = ", ".join(sorted(_TRANSITION_KEYS))
            out.add(f"{path}.{key}", f"unknown key (allowed: {allowed})")
        if not isinstance(trigger, str) or not _NAME.match(trigger):
            out.add(
                f"{path}.trigger", "required: lower-case letters, digits, '-' or '_' (at most 64)"
            )
        sources = _as_list(spec.get("source"))
        if not sources:
            out.add(f"{path}.source", "required: a state or a list of states")
        for src in sources:
            if not _named(src, states):
                out.add(f"{path}.source", f"unknown state {src!r}")
        dest = spec.get("dest")
        if not _named(dest, states):
            out.add(f"{path}.dest", f"unknown state {dest!r}")
        roles = _as_list(spec.get("roles"))
        if not roles:
            out.add(f"{path}.roles", "required: the roles allowed to fire it")
        for role in roles:
            if not _named(role, known.roles):
                out.add(f"{path}.roles", f"unknown role {role!r}")
        guards = _check_guard_list(spec.get("guards"), f"{path}.guards", known, out)
        unless = _check_guard_list(spec.get("unless"), f"{path}.unless", known, out)
        for key in ("requires", "optional"):
            for fname in _as_list(spec.get(key)):
                if not _named(fname, fields):
                    out.add(f"{path}.{key}", f"unknown field {fname!r}")
        if isinstance(trigger, str):
            for src in sources:
                if isinstance(src, str):
                    seen.setdefault((src, trigger), []).append((set(guards), set(unless), path))
    for (src, trigger), entries in seen.items():
        if len(entries) > 1 and not _mutually_exclusive(entries):
            paths = ", ".join(p for _, _, p in entries)
            out.add(
                paths,
                f"trigger {trigger!r} is declared more than once from state {src!r}; "
                "give each the same guard, once under guards and once under unless, "
                "so exactly one can fire",
            )


def _mutually_exclusive(entries: list[tuple[set[str], set[str], str]]) -> bool:
    """Each pair shares a guard that one requires and the other forbids."""
    for a in range(len(entries)):
        for b in range(a + 1, len(entries)):
            ga, ua, _ = entries[a]
            gb, ub, _ = entries[b]
            if not (ga & ub or gb & ua):
                return False
    return True


def _check_graph(data: dict[str, Any], states: dict[str, dict[str, Any]], out: _Problems) -> None:
    raw = data.get("transitions")
    initial = data.get("initial")
    if not states or not isinstance(raw, list) or not _named(initial, states):
        return
    edges: dict[str, set[str]] = {s: set() for s in states}
    for spec in raw:
        if not isinstance(spec, dict):
            continue
        for src in _as_list(spec.get("source")):
            if _named(src, edges) and _named(spec.get("dest"), states):
                edges[src].add(spec["dest"])
    reached = _reachable(str(initial), edges)
    for i, (name, spec) in enumerate(states.items()):
        if name not in reached:
            out.add(f"states[{i}] ({name})", f"unreachable from the initial state {initial!r}")
        if not spec.get("final") and not (edges[name] - {name}):
            out.add(f"states[{i}] ({name})", "dead end: not final and no transition leaves it")
    if not any(spec.get("final") for spec in states.values()):
        out.add("states", "no final state: a track could never finish")


def _reachable(start: str, edges: Mapping[str, Iterable[str]]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# --- building ---------------------------------------------------------------------------------


def _guard_refs(raw: Any) -> tuple[GuardRef, ...]:
    refs = []
    for g in _as_list(raw):
        if isinstance(g, str):
            refs.append(GuardRef(g, {}))
        else:
            refs.append(GuardRef(g["name"], {k: v for k, v in g.items() if k != "name"}))
    return tuple(refs)


def _build(data: dict[str, Any], text: str) -> Definition:
    fields = {
        name: FieldDef(
            name=name,
            type=spec["type"],
            label=str(spec.get("label") or name),
            options=tuple(str(o) for o in spec.get("options") or ()),
        )
        for name, spec in (data.get("fields") or {}).items()
    }
    states = tuple(
        StateDef(
            name=s["name"],
            label=s["label"],
            bucket=s.get("bucket"),
            phase=s.get("phase"),
            role=s.get("role"),
            due=_due(s.get("due")),
            final=bool(s.get("final", False)),
            description=s.get("description"),
            notifications=tuple(s.get("notifications") or ()),
        )
        for s in data["states"]
    )
    transitions = tuple(
        TransitionDef(
            trigger=t["trigger"],
            sources=tuple(_as_list(t["source"])),
            dest=t["dest"],
            roles=tuple(_as_list(t["roles"])),
            guards=_guard_refs(t.get("guards")),
            unless=_guard_refs(t.get("unless")),
            requires=tuple(_as_list(t.get("requires"))),
            optional=tuple(_as_list(t.get("optional"))),
            label=t.get("label"),
            index=i,
        )
        for i, t in enumerate(data["transitions"])
    )
    return Definition(
        name=data["name"],
        version=data["version"],
        title=data["title"],
        subject=data["subject"],
        initial=data["initial"],
        states=states,
        transitions=transitions,
        fields=fields,
        buckets=tuple(data.get("buckets") or ()),
        description=data.get("description"),
        source=text,
    )


def _due(raw: Any) -> DueRule | None:
    if raw is None:
        return None
    if "after_entry" in raw:
        return DueRule(after_entry=int(raw["after_entry"]))
    return DueRule(date=str(raw["date"]), offset=int(raw.get("offset", 0)))
