"""Load and validate workflow definitions (YAML).

The validator collects every problem, each with the path inside the file
(``states[2].due.after_entry: ...``), before anything runs. It knows no database: the caller
hands it the roles, guards and templates that exist (``Known``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflows import roles as role_format
from workflows.errors import DefinitionInvalid, DefinitionUnreadable
from workflows.model import (
    FIELD_TYPES,
    SUBJECT_ALIASES,
    SUBJECT_PARTS,
    Definition,
    DueRule,
    FieldDef,
    GuardRef,
    StateDef,
    SubjectDef,
    TransitionDef,
    date_refs,
)
from workflows.record import field, record, replace

if TYPE_CHECKING:
    import yaml

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # at most 64 characters
_TOP_KEYS = {
    "name", "version", "title", "description", "subject", "initial", "buckets", "fields",
    "states", "transitions", "roles",
}
_STATE_KEYS = {
    "name", "label", "bucket", "phase", "role", "due", "final", "description", "notifications",
}
_TRANSITION_KEYS = {
    "trigger", "source", "dest", "roles", "guards", "unless", "requires", "optional", "label",
}
_FIELD_KEYS = {"type", "label", "options", "keep"}
#: Which of the subject's tracks of the other definition a ``requires_track`` guard reads.
REQUIRES_TRACK_WHICH = ("latest", "any", "all")
#: How a ``field_value`` guard compares (exactly one is given).
_COMPARISONS = ("equals", "in", "not_in")


@record(frozen=True)
class GuardSignature:
    """What a guard accepts: its required and optional parameters, and a one-line meaning."""

    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    doc: str = ""


#: A check for one state's ``notifications`` list; returns problems (paths relative to it).
NotificationCheck = Callable[[Any, "Known", str], list[str]]


@record(frozen=True)
class OtherDefinition:
    """What a guard may name of another definition: its states and its fields' types.

    For an installed definition these are the union over its stored versions (its tracks may
    run on any of them).
    """

    states: frozenset[str]
    fields: Mapping[str, str] = field(default_factory=dict)


@record(frozen=True)
class Known:
    """Names that exist outside the definition: roles, guards, templates, other definitions.

    ``definitions`` is None when nobody said which definitions exist (a stored version being
    read back): guards naming another definition are then not checked against it. With
    ``definitions_missing_is_error`` false (``workflow validate`` of a lone file) a definition
    that is not among them is a warning, not a problem. ``legacy`` reads a text stored before
    the stricter rules (duplicate keys, guard parameter types): those are not applied to it, so
    a stored version keeps loading after an upgrade.
    """

    roles: frozenset[str]
    guards: Mapping[str, GuardSignature]
    templates: frozenset[str] | None = None
    check_notifications: NotificationCheck | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    definitions: Mapping[str, OtherDefinition] | None = None
    definitions_missing_is_error: bool = True
    definitions_where: str = "installed"
    legacy: bool = False
    #: Roles declared before (the shipped roles file): key -> (scope kind, where). A
    #: definition's own ``roles:`` may name one of them again only with the same scope kind.
    role_scopes: Mapping[str, tuple[str, str]] = field(default_factory=dict)


class _Problems:
    def __init__(self, legacy: bool = False) -> None:
        self.items: list[str] = []
        self.warnings: list[str] = []
        self.legacy = legacy

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def add_strict(self, path: str, message: str) -> None:
        """A rule added after versions were stored: not applied to a stored (legacy) text."""
        if not self.legacy:
            self.add(path, message)

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}" if path else message)


def shipped_dir() -> Path:
    # Beside this module (an installed package is always a folder here): importlib.resources
    # would cost every command its zipfile import.
    return Path(__file__).resolve().parent / "definitions"


def shipped_files() -> dict[str, Path]:
    """The definitions that ship with the package, by file stem."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.yaml"))}


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _keyed(base: type[Any]) -> type[Any]:
    """``base`` (a safe loader) that records every duplicate key of a mapping with both lines.

    PyYAML keeps the last of two equal keys without a word, so a second ``dest:`` silently
    replaced the first; the constructor sees each key node with its mark, so it can say where.
    """
    import yaml

    class _DuplicateKeyLoader(base):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.duplicates: list[str] = []

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                first: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                        continue
                    key = self.construct_object(key_node)
                    line = key_node.start_mark.line + 1
                    if key in first:
                        self.duplicates.append(
                            f"line {line}: duplicate key {key!r} (first at line {first[key]}): "
                            "YAML would silently keep only the last one; remove one of them"
                        )
                    else:
                        first[key] = line
            return super().construct_mapping(node, deep)

    def timestamp(loader: Any, node: yaml.ScalarNode) -> Any:
        # PyYAML's own constructor raises a bare ValueError (a traceback) for 2021-13-01.
        try:
            return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark
            ) from None

    _DuplicateKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", timestamp)
    return _DuplicateKeyLoader


@cache
def _loaders() -> tuple[type[Any] | None, type[Any] | None, type[Any]]:
    """(libyaml's safe loader, its keyed form, the pure-Python keyed loader).

    PyYAML is imported here, on the first text parsed, not with the module: a command that runs
    a stored definition reads it pre-parsed (``load_document``) and never needs it. libyaml's
    loader, when PyYAML has it, reads the same documents about 5x faster.
    """
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    return fast, (_keyed(fast) if fast is not None else None), _keyed(yaml.SafeLoader)


def _load_keyed(loader_cls: type[Any], text: str) -> tuple[Any, list[str]]:
    loader = loader_cls(text)
    try:
        return loader.get_single_data(), list(loader.duplicates)
    finally:
        loader.dispose()


def _syntax_hint(exc: yaml.MarkedYAMLError) -> str:
    """A plain-words guess at the cause of a PyYAML syntax error (its own words are terse)."""
    problem = str(exc.problem or "")
    context = str(exc.context or "")
    if "is not a valid date" in problem:
        return "write a date as YYYY-MM-DD with a real month and day"
    if "\\t" in problem or "\t" in problem:
        return "a tab character: YAML indents with spaces only, replace the tab by spaces"
    if "could not find expected ':'" in problem:
        where = exc.context_mark.line + 1 if exc.context_mark else None
        at = f" (on line {where})" if where else ""
        return f"a key without its colon{at}: write 'key: value'"
    if "mapping values are not allowed" in problem:
        return (
            "a ': ' inside a value (put the value in double quotes) or a line indented more "
            "than the key above it"
        )
    if "expected <block end>" in problem or "did not find expected" in problem:
        return (
            "check the indentation: the keys of one mapping and the '-' items of one list must "
            "start in the same column"
        )
    if "flow" in context or "expected ',' or" in problem:
        return "a '[' or '{' that is not closed on this or a later line"
    if "quoted scalar" in context:
        return "a quote that is not closed"
    return "check the indentation, the colons and the quotes near this place"


def parse_yaml(text: str, source: str, legacy: bool = False) -> tuple[Any, list[str]]:
    """The document and its problems: a syntax error (with a hint), or its duplicate keys.

    ``legacy`` (a stored version) skips the duplicate-key check.
    """
    import yaml

    fast, keyed_fast, keyed_safe = _loaders()
    if fast is not None and keyed_fast is not None:
        try:
            if legacy:
                return yaml.load(text, Loader=fast), []  # a safe loader (CSafeLoader)
            return _load_keyed(keyed_fast, text)
        except yaml.YAMLError:
            pass  # the pure-Python loader below words the problem as it always has
    try:
        if legacy:
            return yaml.safe_load(text), []
        return _load_keyed(keyed_safe, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        return None, [f"{where}: YAML syntax: {exc.problem or exc} (hint: {_syntax_hint(exc)})"]
    except yaml.YAMLError as exc:
        return None, [f"YAML syntax: {exc}"]


def check_text(text: str, source: str, known: Known) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a definition's text; no problems means it is valid.

    A warning is what cannot be checked here, such as a guard naming a definition that is not
    among ``known.definitions`` when ``workflow validate`` reads a lone file.
    """
    _, problems, warnings = _check(text, source, known)
    return problems, warnings


def _check(text: str, source: str, known: Known) -> tuple[Any, list[str], list[str]]:
    data, problems = parse_yaml(text, source, legacy=known.legacy)
    if data is None and problems:
        return None, problems, []
    out = _validate(data, known)
    return data, problems + out.items, out.warnings


def validate_text(text: str, source: str, known: Known) -> list[str]:
    """Every problem in a definition's text (empty list: it is valid)."""
    return check_text(text, source, known)[0]


def load_text(text: str, source: str, known: Known) -> Definition:
    """Validate and build a definition; raise ``DefinitionInvalid`` listing every problem."""
    data, problems, _ = _check(text, source, known)
    if problems:
        raise DefinitionInvalid(source, problems)
    return _build(data, text)


# --- pre-parsed documents ---------------------------------------------------------------------
# A stored definition keeps, beside its YAML text, the document that text parses to, as JSON
# (``document_json``). Running a stored version then builds it from that JSON
# (``load_document``): no YAML parser and no validation (it was validated when stored), so a
# command that advances a track never imports PyYAML. JSON has no dates, which YAML has: they
# are tagged.

_DATE_TAG = "__yaml_date__"
_DATETIME_TAG = "__yaml_datetime__"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: value.isoformat()}
    if isinstance(value, date):
        return {_DATE_TAG: value.isoformat()}
    raise TypeError(f"{type(value).__name__} in a definition document")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if _DATE_TAG in obj:
            return date.fromisoformat(obj[_DATE_TAG])
        if _DATETIME_TAG in obj:
            return datetime.fromisoformat(obj[_DATETIME_TAG])
    return obj


def document_json(text: str, source: str) -> str | None:
    """The document ``text`` parses to, as JSON that ``load_document`` reads back equal; None
    when JSON cannot carry it exactly (a key that is not text, say): such a version is then
    read from its YAML, as before."""
    import json

    data, problems = parse_yaml(text, source, legacy=True)
    if data is None or problems:
        return None
    try:
        encoded = json.dumps(data, ensure_ascii=False, default=_encode)
    except (TypeError, ValueError):
        return None
    if json.loads(encoded, object_hook=_decode) != data:
        return None
    return encoded


def load_document(document: str, text: str) -> Definition:
    """A stored definition built from its pre-parsed document (``document_json``); ``text``
    is its YAML, kept as the definition's source."""
    import json

    return _build(json.loads(document, object_hook=_decode), text)


def load_file(path: str | Path, known: Known) -> Definition:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DefinitionUnreadable(f"{p}: cannot read definition: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DefinitionUnreadable(
            f"{p}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as "
            "UTF-8"
        ) from None
    return load_text(text, str(p), known)


# --- validation -------------------------------------------------------------------------------


def _validate(data: Any, known: Known) -> _Problems:
    out = _Problems(known.legacy)
    if not isinstance(data, dict):
        out.add("", "a definition must be a mapping with name, version, states, transitions")
        return out
    for key in sorted(set(data) - _TOP_KEYS):
        out.add(key, f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    known = _with_own_roles(data.get("roles"), known, out)
    _check_header(data, out)
    subject = check_subject(data.get("subject"), out)
    fields = _check_fields(data.get("fields"), out)
    buckets = _check_buckets(data.get("buckets"), out)
    states = _check_states(data, subject, fields, buckets, known, out)
    scope = _Scope(
        name=str(data.get("name")),
        subject=subject,
        fields=fields,
        options=_options(data.get("fields")),
        states=states,
    )
    _check_transitions(data, scope, known, out)
    _check_graph(data, states, out)
    return out


def _with_own_roles(raw: Any, known: Known, out: _Problems) -> Known:
    """``known`` with the roles the definition declares (``roles:``), checked: its states,
    transitions and notifications may name them as they name the shipped ones."""
    roles, problems = role_format.check_roles(raw, known.role_scopes)
    for problem in problems:
        out.add("", problem)
    if raw is None:
        return known
    declared = {r.key for r in roles}
    if isinstance(raw, list):  # a role with a problem is still no "unknown role" elsewhere
        declared |= {s["key"] for s in raw if isinstance(s, dict) and isinstance(s.get("key"), str)}
    return replace(known, roles=known.roles | declared)


@record(frozen=True)
class _Scope:
    """What a transition's guards may name inside their own definition."""

    name: str
    subject: SubjectDef | None
    fields: dict[str, str]
    options: dict[str, tuple[str, ...]]
    states: dict[str, dict[str, Any]]


def _options(raw: Any) -> dict[str, tuple[str, ...]]:
    """Each choice field's options as the built definition holds them (text)."""
    if not isinstance(raw, dict):
        return {}
    return {
        name: tuple(str(o) for o in spec["options"])
        for name, spec in raw.items()
        if isinstance(spec, dict) and isinstance(spec.get("options"), list)
    }


def _check_header(data: dict[str, Any], out: _Problems) -> None:
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        out.add("name", "required: lower-case letters, digits, '-' or '_' (at most 64)")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        out.add("version", "required: a whole number from 1")
    if not isinstance(data.get("title"), str) or not data.get("title"):
        out.add("title", "required: a short title")
    if "initial" not in data:
        out.add("initial", "missing initial state")


_SUBJECT_KEYS = ("of", "key")


def check_subject(raw: Any, out: _Problems) -> SubjectDef | None:
    """The subject as parts and key: a short name for today's kinds, or
    ``{of: [KIND, ...], key: [KIND, ...]}`` (key: the parts that identify an open track; by
    default every part but the ``bob`` flag). None (with problems) when it is not valid."""
    shapes = (
        f"must be one of {', '.join(SUBJECT_ALIASES)}, or {{of: [KIND, ...], key: [KIND, ...]}} "
        f"with KIND from {', '.join(SUBJECT_PARTS)}"
    )
    if isinstance(raw, str):
        if raw in SUBJECT_ALIASES:
            return SUBJECT_ALIASES[raw]
        out.add("subject", f"unknown subject {raw!r}: {shapes}")
        return None
    if not isinstance(raw, dict):
        out.add("subject", shapes)
        return None
    ok = True
    for key in sorted(set(map(str, raw)) - set(_SUBJECT_KEYS)):
        out.add(f"subject.{key}", f"unknown key (allowed: {', '.join(_SUBJECT_KEYS)})")
        ok = False
    parts = _subject_list(raw.get("of"), "subject.of", SUBJECT_PARTS, out)
    if parts is None:
        return None
    if "bob" in parts and not {"system", "index_set"} <= set(parts):
        out.add(
            f"subject.of[{parts.index('bob')}]",
            "bob marks a system's connection to an index set: it needs system and index_set",
        )
        ok = False
    if {"index", "index_set"} <= set(parts):
        out.add(
            f"subject.of[{parts.index('index_set')}]",
            "index (one) and index_set (several) both take --index: declare one of them",
        )
        ok = False
    default_key = [p for p in parts if p != "bob"]
    identify = default_key if raw.get("key") is None else _subject_list(
        raw.get("key"), "subject.key", {p: "" for p in default_key}, out
    )
    if identify is None or not ok:
        return None
    return SubjectDef(tuple(parts), tuple(identify), None, raw)


def _subject_list(
    raw: Any, path: str, allowed: Mapping[str, str], out: _Problems
) -> list[str] | None:
    """A non-empty list of distinct names out of ``allowed`` (None, with problems, if not)."""
    if not isinstance(raw, list) or not raw:
        out.add(path, f"required: a non-empty list out of {', '.join(allowed) or 'none'}")
        return None
    names: list[str] = []
    for i, item in enumerate(raw):
        if not _named(item, allowed):
            if path.endswith(".of"):
                message = f"unknown kind {item!r} (kinds: {', '.join(allowed)})"
            else:
                message = (
                    f"{item!r} is not one of the subject's parts ({', '.join(allowed)}; "
                    "bob is a flag, never part of the key)"
                )
            out.add(f"{path}[{i}]", message)
            return None
        if item in names:
            out.add(f"{path}[{i}]", f"{item!r} is listed twice")
            return None
        names.append(item)
    return names


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
        for key in sorted(set(spec) - _FIELD_KEYS):
            out.add(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(_FIELD_KEYS))})")
        if "keep" in spec and not isinstance(spec["keep"], bool):
            out.add(f"{path}.keep", "must be true or false")
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
    subject: SubjectDef | None,
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
            out.add(f"{path}.role", _unknown_role(role, known))
        if "due" in spec:
            _check_due(spec["due"], f"{path}.due", subject, fields, out)
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
    raw: Any, path: str, subject: SubjectDef | None, fields: dict[str, str], out: _Problems
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
    refs = date_refs(subject)
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


def _unknown_role(role: Any, known: Known) -> str:
    """The runtime's wording (``roles.require_role``): the role and every known one."""
    return f"unknown role {role!r} (roles: {', '.join(sorted(known.roles))})"


def _named(value: Any, names: Iterable[str]) -> bool:
    """``value`` is a string among ``names`` (a list or mapping in its place is not; no crash)."""
    return isinstance(value, str) and value in names


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def guard_parts(raw: Any) -> tuple[str, dict[str, Any]] | None:
    """(name, parameters) of a guard as written, or None when it is no guard form.

    Forms: ``NAME``; ``{name: NAME, PARAM: VALUE, ...}``; ``{NAME: {PARAM: VALUE, ...}}``; and
    the field comparison ``{field: F, equals|in|not_in: ...}`` (the ``field_value`` guard).
    """
    if isinstance(raw, str):
        return raw, {}
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("name"), str):
        return raw["name"], {k: v for k, v in raw.items() if k != "name"}
    if "name" not in raw and "field" in raw:
        return "field_value", dict(raw)
    if len(raw) == 1:
        ((name, params),) = raw.items()
        if isinstance(name, str) and isinstance(params, dict):
            return name, dict(params)
    return None


def _check_guard_list(
    raw: Any, path: str, scope: _Scope, known: Known, out: _Problems
) -> list[str]:
    keys: list[str] = []
    for j, g in enumerate(_as_list(raw)):
        gpath = f"{path}[{j}]"
        parts = guard_parts(g)
        if parts is None:
            out.add(
                gpath,
                "a guard is a name or a mapping: {name: GUARD, PARAM: VALUE}, "
                "{GUARD: {PARAM: VALUE}} or {field: FIELD, equals: VALUE}",
            )
            continue
        name, params = parts
        sig = known.guards.get(name)
        if sig is None:
            out.add(gpath, f"unknown guard {name!r} (known: {', '.join(sorted(known.guards))})")
            continue
        for missing in sorted(sig.required - set(params)):
            out.add(gpath, f"guard {name!r} needs parameter {missing!r}")
        for extra in sorted(set(params) - sig.required - sig.optional):
            out.add(gpath, f"guard {name!r} has no parameter {extra!r}")
        check = _GUARD_CHECKS.get(name)
        if check is not None:
            check(params, f"{gpath} ({name})", scope, known, out)
        params = _normal_params(name, params, scope)
        keys.append(repr((name, sorted(params.items(), key=lambda kv: kv[0]))))
    return keys


# --- guard parameters: each checked against the fields and definitions it names ---------------


def _check_field_value(
    params: Mapping[str, Any], path: str, scope: _Scope, known: Known, out: _Problems
) -> None:
    fname = params.get("field")
    if fname is None:
        return  # reported as a missing parameter
    if not _named(fname, scope.fields):
        declared = ", ".join(scope.fields) or "none declared"
        out.add_strict(f"{path}.field", f"unknown field {fname!r} (fields: {declared})")
        return
    given = [c for c in _COMPARISONS if c in params]
    if len(given) != 1:
        out.add_strict(path, f"give exactly one of {', '.join(_COMPARISONS)}")
        return
    how = given[0]
    value = params[how]
    if how == "equals":
        values = [value]
    elif isinstance(value, list) and value:
        values = value
    else:
        out.add_strict(f"{path}.{how}", "must be a non-empty list of values")
        return
    ftype = scope.fields[fname]
    for v in values:
        problem = _value_problem(v, ftype, scope.options.get(fname, ()))
        if problem:
            out.add_strict(
                f"{path}.{how}", f"{v!r} does not fit field {fname} ({ftype}): {problem}"
            )


def _value_problem(value: Any, ftype: str, options: tuple[str, ...]) -> str | None:
    """Why ``value`` (as YAML gives it) cannot be a value of a field of type ``ftype``."""
    if ftype == "choice":
        return None if str(value) in options else f"not one of {', '.join(options)}"
    if ftype == "date":
        if isinstance(value, date):
            return None
        try:
            date.fromisoformat(str(value))
        except ValueError:
            return "not an ISO date such as 2021-03-31"
        return None
    if ftype == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "not a whole number"
    if ftype == "boolean":
        return None if isinstance(value, bool) else "not true or false"
    if ftype == "municipality":
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return None if ok else "not a municipality code"
    # text and wave: a plain string (a number or a date here means YAML read it as one)
    return None if isinstance(value, str) else "not text (put it in quotes)"


def _check_date_ref(
    ref: Any, path: str, scope: _Scope, out: _Problems, strict: bool
) -> None:
    refs = date_refs(scope.subject)
    if isinstance(ref, str) and (scope.fields.get(ref) == "date" or ref in refs):
        return
    choices = [f for f, t in scope.fields.items() if t == "date"] + list(refs)
    kind = f" (a {scope.fields[ref]} field)" if _named(ref, scope.fields) else ""
    message = (
        f"{ref!r}{kind} is not a date field or reference (choose from: "
        f"{', '.join(choices) or 'none declared'})"
    )
    (out.add_strict if strict else out.add)(path, message)


def _check_offset(raw: Any, path: str, out: _Problems) -> None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return
    if (
        isinstance(raw, dict)
        and len(raw) == 1
        and next(iter(raw)) in ("working_days", "calendar_days")
        and isinstance(next(iter(raw.values())), int)
        and not isinstance(next(iter(raw.values())), bool)
    ):
        return
    out.add_strict(
        path, "must be a whole number of working days, {working_days: N} or {calendar_days: N}"
    )


def _check_date_passed(
    params: Mapping[str, Any], path: str, scope: _Scope, known: Known, out: _Problems
) -> None:
    if "date" in params:
        _check_date_ref(params["date"], f"{path}.date", scope, out, strict=True)
    for key in ("after", "on_or_after"):
        if key in params and not isinstance(params[key], bool):
            out.add_strict(f"{path}.{key}", "must be true or false")
    if params.get("after") is True and params.get("on_or_after") is True:
        out.add_strict(path, "give after or on_or_after, not both")
    if "offset" in params:
        _check_offset(params["offset"], f"{path}.offset", out)


def _check_requires_track(
    params: Mapping[str, Any], path: str, scope: _Scope, known: Known, out: _Problems
) -> None:
    name = params.get("definition")
    states = params.get("states")
    if "definition" in params and not isinstance(name, str):
        out.add_strict(f"{path}.definition", "must be the name of a definition")
        name = None
    if "states" in params and (
        not isinstance(states, list) or not states or not all(isinstance(x, str) for x in states)
    ):
        out.add_strict(f"{path}.states", "must be a non-empty list of state names")
        states = None
    which = params.get("which", "latest")
    if which not in REQUIRES_TRACK_WHICH:
        out.add_strict(f"{path}.which", f"must be one of {', '.join(REQUIRES_TRACK_WHICH)}")
    for key in ("except_field", "reason"):
        if key in params and not isinstance(params[key], str):
            out.add_strict(f"{path}.{key}", "must be text")
    if name is None:
        return
    other = _other_definition(name, scope, known)
    if other is None:
        if known.definitions is None:
            return  # nobody said which definitions exist (a stored version read back)
        message = (
            f"definition {name!r} is not {known.definitions_where} "
            f"({known.definitions_where}: {', '.join(sorted(known.definitions)) or 'none'}); "
            "add it first, or the guard blocks the step for ever"
        )
        if known.definitions_missing_is_error:
            out.add_strict(f"{path}.definition", message)
        else:
            out.warn(f"{path}.definition", message)
        return
    for state in states or ():
        if state not in other.states:
            out.add_strict(
                f"{path}.states",
                f"{name} has no state {state!r} (states: {', '.join(sorted(other.states))})",
            )
    exempt = params.get("except_field")
    if isinstance(exempt, str) and other.fields.get(exempt) != "municipality":
        choices = [f for f, t in other.fields.items() if t == "municipality"]
        out.add_strict(
            f"{path}.except_field",
            f"{name} has no municipality field {exempt!r} (choose from: "
            f"{', '.join(choices) or 'none'})",
        )


def _other_definition(name: str, scope: _Scope, known: Known) -> OtherDefinition | None:
    if name == scope.name:  # a guard on a sibling track of the same definition
        return OtherDefinition(frozenset(scope.states), dict(scope.fields))
    if known.definitions is None:
        return None
    return known.definitions.get(name)


_GuardCheck = Callable[[Mapping[str, Any], str, _Scope, Known, _Problems], None]
_GUARD_CHECKS: Mapping[str, _GuardCheck] = {
    "field_value": _check_field_value,
    "date_passed": _check_date_passed,
    "requires_track": _check_requires_track,
}


def _normal_params(name: str, params: dict[str, Any], scope: _Scope) -> dict[str, Any]:
    """Parameters as the engine compares them: a field comparison's values in the form the
    track stores (an ISO date as text, a choice as text)."""
    if name != "field_value" or not _named(params.get("field"), scope.fields):
        return params
    ftype = scope.fields[params["field"]]

    def norm(v: Any) -> Any:
        if ftype == "date" and isinstance(v, date):
            return v.isoformat()
        if ftype == "choice":
            return str(v)
        return v

    out = dict(params)
    for how in _COMPARISONS:
        if how == "equals" and how in out:
            out[how] = norm(out[how])
        elif isinstance(out.get(how), list):
            out[how] = [norm(v) for v in out[how]]
    return out


def expand_sources(raw: Any, states: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """A transition's source states: ``"*"`` is every state that is not final, and
    ``{all_except: [...]}`` those minus the listed ones, taken from the definition's own states
    so a state added in a later version is covered without editing the transition."""
    if raw == "*" or (isinstance(raw, dict) and "all_except" in raw):
        excluded = set(_as_list(raw["all_except"])) if isinstance(raw, dict) else set()
        return [
            name
            for name, spec in states.items()
            if not spec.get("final") and name not in excluded
        ]
    return _as_list(raw)


def _check_source(
    raw: Any, path: str, states: dict[str, dict[str, Any]], out: _Problems
) -> list[Any]:
    if isinstance(raw, dict):
        if set(raw) != {"all_except"}:
            out.add(path, 'a mapping here is {all_except: [STATE, ...]}; or "*", a state, a list')
            return []
        for name in _as_list(raw["all_except"]):
            if not _named(name, states):
                out.add(f"{path}.all_except", f"unknown state {name!r}")
    sources = expand_sources(raw, states)
    if raw == "*" or isinstance(raw, dict):
        if not sources:
            out.add(path, "matches no state (every state it could name is final or excluded)")
        return sources
    if not sources:
        out.add(path, 'required: a state, a list of states, "*" or {all_except: [...]}')
    for src in sources:
        if not _named(src, states):
            hint = ' ("*" stands alone: source: "*")' if src == "*" else ""
            out.add(path, f"unknown state {src!r}{hint}")
    return sources


def _check_transitions(data: dict[str, Any], scope: _Scope, known: Known, out: _Problems) -> None:
    states, fields = scope.states, scope.fields
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
        sources = _check_source(spec.get("source"), f"{path}.source", states, out)
        dest = spec.get("dest")
        if not _named(dest, states):
            out.add(f"{path}.dest", f"unknown state {dest!r}")
        roles = _as_list(spec.get("roles"))
        if not roles:
            out.add(f"{path}.roles", "required: the roles allowed to fire it")
        for role in roles:
            if not _named(role, known.roles):
                out.add(f"{path}.roles", _unknown_role(role, known))
        guards = _check_guard_list(spec.get("guards"), f"{path}.guards", scope, known, out)
        unless = _check_guard_list(spec.get("unless"), f"{path}.unless", scope, known, out)
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
        for src in expand_sources(spec.get("source"), states):
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


def _guard_refs(raw: Any, scope: _Scope) -> tuple[GuardRef, ...]:
    refs = []
    for g in _as_list(raw):
        parts = guard_parts(g)
        assert parts is not None  # the validator refused any other form
        name, params = parts
        refs.append(GuardRef(name, _normal_params(name, params, scope)))
    return tuple(refs)


def _build(data: dict[str, Any], text: str) -> Definition:
    fields = {
        name: FieldDef(
            name=name,
            type=spec["type"],
            label=str(spec.get("label") or name),
            options=tuple(str(o) for o in spec.get("options") or ()),
            keep=bool(spec.get("keep", False)),
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
    by_name = {s["name"]: s for s in data["states"]}
    subject = check_subject(data["subject"], _Problems())
    assert subject is not None  # the validator refused any other form
    scope = _Scope(
        name=data["name"],
        subject=subject,
        fields={name: f.type for name, f in fields.items()},
        options={name: f.options for name, f in fields.items()},
        states=by_name,
    )
    transitions = tuple(
        TransitionDef(
            trigger=t["trigger"],
            sources=tuple(expand_sources(t["source"], by_name)),
            dest=t["dest"],
            roles=tuple(_as_list(t["roles"])),
            guards=_guard_refs(t.get("guards"), scope),
            unless=_guard_refs(t.get("unless"), scope),
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
        subject=subject.text,
        initial=data["initial"],
        states=states,
        transitions=transitions,
        fields=fields,
        roles=tuple(role_format.check_roles(data.get("roles"))[0]),
        buckets=tuple(data.get("buckets") or ()),
        description=data.get("description"),
        source=text,
        subject_def=subject,
    )


def _due(raw: Any) -> DueRule | None:
    if raw is None:
        return None
    if "after_entry" in raw:
        return DueRule(after_entry=int(raw["after_entry"]))
    return DueRule(date=str(raw["date"]), offset=int(raw.get("offset", 0)))
