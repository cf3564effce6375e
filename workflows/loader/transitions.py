"""Checks of a definition's transitions and of the graph they make.

Sources (``"*"``, ``{all_except: [...]}``), destinations, roles, guards, required fields, a
trigger declared twice from one state, and then the whole graph: every state reachable, no dead
end, some final state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workflows.loader.guards import _check_guard_list, _Scope
from workflows.loader.known import _NAME, Known, _as_list, _named, _Problems, _unknown_role

_TRANSITION_KEYS = {
    "trigger",
    "source",
    "dest",
    "roles",
    "guards",
    "unless",
    "requires",
    "optional",
    "label",
}


def expand_sources(raw: Any, states: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """A transition's source states: ``"*"`` is every state that is not final, and
    ``{all_except: [...]}`` those minus the listed ones, taken from the definition's own states
    so a state added in a later version is covered without editing the transition."""
    if raw == "*" or (isinstance(raw, dict) and "all_except" in raw):
        excluded = set(_as_list(raw["all_except"])) if isinstance(raw, dict) else set()
        return [
            name for name, spec in states.items() if not spec.get("final") and name not in excluded
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
