"""Checks of a definition's head: name, version, title, subject, fields and buckets.

What the states and transitions are checked against (the subject's date references, the
fields' types and options, the buckets) is read here first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.loader.known import _NAME, _named, _Problems
from workflows.model import FIELD_TYPES, SUBJECT_ALIASES, SUBJECT_PARTS, SubjectDef

_FIELD_KEYS = {"type", "label", "options", "keep"}


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
    identify = (
        default_key
        if raw.get("key") is None
        else _subject_list(raw.get("key"), "subject.key", {p: "" for p in default_key}, out)
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
