"""A definition as a Mermaid ``stateDiagram-v2``, for docs and ``workflow show``.

The output is deterministic: states in declared order, transitions in declared order (each
source of a transition in the order listed), each (source, dest, label) once. An edge is
labelled with its trigger and its guards with their parameters (``unless`` ones as ``not``).
"""

from __future__ import annotations

from workflows.model import Definition, GuardRef, TransitionDef


def mermaid(defn: Definition) -> str:
    """The definition's states and transitions as Mermaid ``stateDiagram-v2`` text."""
    ids = _state_ids([s.name for s in defn.states])
    lines = ["stateDiagram-v2"]
    lines += [f'    state "{_label(s.label)}" as {ids[s.name]}' for s in defn.states]
    lines.append(f"    [*] --> {ids[defn.initial]}")
    seen: set[tuple[str, str, str]] = set()
    for t in defn.transitions:
        text = _edge_text(t)
        for src in t.sources:
            edge = (src, t.dest, text)
            if edge in seen:
                continue
            seen.add(edge)
            lines.append(f"    {ids[src]} --> {ids[t.dest]}: {text}")
    lines += [f"    {ids[s.name]} --> [*]" for s in defn.states if s.final]
    return "\n".join(lines) + "\n"


def _edge_text(t: TransitionDef) -> str:
    """The trigger and, in brackets, the guards that must hold and (``not``) must not hold:
    two transitions with the same trigger from one state read apart by their condition."""
    conds = [_guard(g) for g in t.guards] + [f"not {_guard(g)}" for g in t.unless]
    text = t.trigger + (f" [{', '.join(conds)}]" if conds else "")
    return _label(text).replace(";", ",")  # ';' ends a Mermaid statement


def _guard(ref: GuardRef) -> str:
    """A guard and its parameters (read generically; the refusal text is left out)."""
    params = []
    for key, value in ref.params.items():
        if key == "reason":
            continue
        if isinstance(value, list | tuple):
            value = "|".join(str(v) for v in value)
        params.append(f"{key}={value}")
    return f"{ref.name}({' '.join(params)})" if params else ref.name


def _state_ids(names: list[str]) -> dict[str, str]:
    """Mermaid ids for state names: '-' (which Mermaid reads as part of an arrow) becomes '_'.

    A name that would then clash with another state's id gets a numeric suffix.
    """
    taken = {n for n in names if "-" not in n}
    out: dict[str, str] = {}
    for name in names:
        if "-" not in name:
            out[name] = name
            continue
        base = candidate = name.replace("-", "_")
        n = 2
        while candidate in taken:
            candidate = f"{base}_{n}"
            n += 1
        taken.add(candidate)
        out[name] = candidate
    return out


def _label(text: str) -> str:
    """A state label safe inside Mermaid double quotes (one line, quotes as entity codes)."""
    return " ".join(text.split()).replace('"', "#quot;")
