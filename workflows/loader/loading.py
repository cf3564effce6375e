"""Validating and loading a definition from text or a file; the shipped files.

``_validate`` runs the checks of each part (head, states, transitions, graph) in order, after
adding the roles the definition declares itself to those the caller knows. The entry points:
``check_text``/``validate_text`` say what is wrong, ``load_text``/``load_file`` raise
``DefinitionInvalid`` listing every problem or return the built definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflows import roles as role_format
from workflows.errors import DefinitionInvalid, DefinitionUnreadable
from workflows.loader.build import _build
from workflows.loader.guards import _Scope
from workflows.loader.header import (
    _check_buckets,
    _check_fields,
    _check_header,
    _options,
    check_subject,
)
from workflows.loader.known import Known, _Problems
from workflows.loader.states import _check_states
from workflows.loader.transitions import _check_graph, _check_transitions
from workflows.loader.yaml_text import parse_yaml
from workflows.model import Definition
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


def shipped_dir() -> Path:
    # workflows/definitions, beside this package (an installed package is always a folder
    # here): importlib.resources would cost every command its zipfile import.
    return Path(__file__).resolve().parent.parent / "definitions"


def shipped_files() -> dict[str, Path]:
    """The definitions that ship with the package, by file stem."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.yaml"))}


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
