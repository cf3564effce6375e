"""Checks of a definition's states: keys, label, bucket, role, due rule, notifications.

A state's notifications are checked by the caller's ``Known.check_notifications`` (the
templates and recipients live outside workflows/).
"""

from __future__ import annotations

from typing import Any

from workflows.loader.known import _NAME, Known, _named, _Problems, _unknown_role
from workflows.model import SubjectDef, date_refs

_STATE_KEYS = {
    "name",
    "label",
    "bucket",
    "phase",
    "role",
    "due",
    "final",
    "description",
    "notifications",
}


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
