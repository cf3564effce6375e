"""Building the model (``workflows.model.Definition``) from a document already validated.

Both roads end here: a text just checked (``load_text``) and a stored version's pre-parsed
document (``load_document``), so the two give equal definitions by construction.
"""

from __future__ import annotations

from typing import Any

from workflows import roles as role_format
from workflows.loader.guards import _normal_params, _Scope, guard_parts
from workflows.loader.header import check_subject
from workflows.loader.problems import _as_list, _Problems
from workflows.loader.transitions import expand_sources
from workflows.model import Definition, DueRule, FieldDef, GuardRef, StateDef, TransitionDef


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
