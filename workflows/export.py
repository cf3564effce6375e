"""A definition as complete, plain JSON: the shape of ``workflow show --json``.

Everything the YAML says is carried, so a generic client can drive a track of any definition:
states with labels, descriptions, buckets, phases, roles, due rules (as written, plus a
sentence) and notifications; transitions with labels, roles, guards and ``unless`` with their
parameters, and the fields they take with type, label, options and whether each is required.

Attributes the model gains later (a new key a definition may write) are carried too: each
object's record fields (``workflows.record``) that this module does not name are added as
plain values, so the JSON never silently drops what a definition says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.model import (
    Definition,
    DueRule,
    FieldDef,
    GuardRef,
    StateDef,
    SubjectDef,
    TransitionDef,
)
from workflows.record import fields, is_record


def plain(value: Any) -> Any:
    """A value as JSON-ready data: records and mappings become dicts, tuples lists."""
    if is_record(value):
        return {name: plain(getattr(value, name)) for name in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _extras(obj: Any, named: set[str]) -> dict[str, Any]:
    """The record fields of ``obj`` this module does not lay out itself, as plain data."""
    return {
        name: plain(getattr(obj, name))
        for name in fields(obj)
        if name not in named and not name.startswith("_")
    }


def guard_json(ref: GuardRef) -> dict[str, Any]:
    """A guard as written: its name and every parameter (read generically, as a mapping)."""
    return {"name": ref.name, "params": plain(dict(ref.params))}


def due_json(rule: DueRule | None) -> dict[str, Any] | None:
    """A due rule with the keys a definition writes (``after_entry``, or ``date``/``offset``)."""
    if rule is None:
        return None
    if rule.after_entry is not None:
        return {"after_entry": rule.after_entry}
    out: dict[str, Any] = {"date": rule.date}
    if rule.offset:
        out["offset"] = rule.offset
    return out


def field_json(fdef: FieldDef) -> dict[str, Any]:
    return {
        "name": fdef.name,
        "type": fdef.type,
        "label": fdef.label,
        "options": list(fdef.options),
        **_extras(fdef, {"name", "type", "label", "options"}),
    }


def state_json(state: StateDef) -> dict[str, Any]:
    return {
        "name": state.name,
        "label": state.label,
        "description": state.description,
        "final": state.final,
        "bucket": state.bucket,
        "phase": state.phase,
        "role": state.role,
        "due": due_json(state.due),
        "due_text": state.due.describe() if state.due else None,
        "notifications": plain(list(state.notifications)),
        **_extras(
            state,
            {"name", "label", "description", "final", "bucket", "phase", "role", "due",
             "notifications"},
        ),
    }


def transition_json(defn: Definition, t: TransitionDef) -> dict[str, Any]:
    fields = []
    for name in t.inputs:
        fdef = defn.fields.get(name)
        entry = field_json(fdef) if fdef is not None else {"name": name}
        fields.append({**entry, "required": name in t.requires})
    return {
        "trigger": t.trigger,
        "label": t.label,
        "source": list(t.sources),
        "dest": t.dest,
        "roles": list(t.roles),
        "guards": [guard_json(g) for g in t.guards],
        "unless": [guard_json(g) for g in t.unless],
        "requires": list(t.requires),
        "optional": list(t.optional),
        "fields": fields,
        **_extras(
            t,
            {"trigger", "label", "sources", "dest", "roles", "guards", "unless", "requires",
             "optional", "index"},
        ),
    }


def subject_written(defn: Definition) -> Any:
    """The subject as the YAML writes it: a short name, or ``{of: [...], key: [...]}``."""
    sub = defn.subject_def
    return plain(sub.written) if sub is not None and sub.written is not None else defn.subject


def subject_json(sub: SubjectDef) -> dict[str, Any]:
    """The subject's parts, the parts that identify an open track (``key``), the
    ``track start`` options it takes, and the short name it was written as (or None)."""
    return {"of": list(sub.of), "key": list(sub.key), "options": list(sub.options),
            "alias": sub.alias}


def definition_json(defn: Definition) -> dict[str, Any]:
    """The whole definition (the stable shape of ``workflow show --json``)."""
    return {
        "name": defn.name,
        "version": defn.version,
        "title": defn.title,
        "description": defn.description,
        "subject": subject_written(defn),
        "subject_declaration": subject_json(defn.subject_parts),
        "initial": defn.initial,
        "buckets": list(defn.buckets),
        "fields": [field_json(f) for f in defn.fields.values()],
        "states": [state_json(s) for s in defn.states],
        "transitions": [transition_json(defn, t) for t in defn.transitions],
        **_extras(
            defn,
            {"name", "version", "title", "description", "subject", "initial", "buckets",
             "fields", "states", "transitions", "source", "subject_def"},
        ),
    }
