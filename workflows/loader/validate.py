"""The whole validator: a parsed document's every problem, part by part, with its path.

Runs the checks of each part (head, states, transitions, graph) in order, after adding the
roles the definition declares itself to those the caller knows.
"""

from __future__ import annotations

from typing import Any

from workflows import roles as role_format
from workflows.loader.guards import _Scope
from workflows.loader.header import (
    _check_buckets,
    _check_fields,
    _check_header,
    _options,
    check_subject,
)
from workflows.loader.known import Known
from workflows.loader.problems import _Problems
from workflows.loader.states import _check_states
from workflows.loader.transitions import _check_graph, _check_transitions
from workflows.record import replace

_TOP_KEYS = {
    "name",
    "version",
    "title",
    "description",
    "subject",
    "initial",
    "buckets",
    "fields",
    "states",
    "transitions",
    "roles",
}


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
