"""The model (``Definition``) built from a valid document, and the pre-parsed JSON documents.

Both roads end in ``_build``: a text just checked (``load_text``) and a stored version's
pre-parsed document (``load_document``), so the two give equal definitions by construction.

A stored definition keeps, beside its YAML text, the document that text parses to, as JSON
(``document_json``). Running a stored version then builds it from that JSON
(``load_document``): no YAML parser and no validation (it was validated when stored), so a
command that advances a track never imports PyYAML. JSON has no dates, which YAML has: they
are tagged.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from workflows import roles as role_format
from workflows.loader.guards import _normal_params, _Scope, guard_parts
from workflows.loader.header import check_subject
from workflows.loader.known import _as_list, _Problems
from workflows.loader.transitions import expand_sources
from workflows.loader.yaml_text import parse_yaml
from workflows.model import Definition, DueRule, FieldDef, GuardRef, StateDef, TransitionDef

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
