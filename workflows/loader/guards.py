"""Guards as written in a transition: their forms, their parameters checked, normalised.

Each guard with parameters that name something (a field, a date, another definition) has its
own check here, against the definition's own fields and states (``_Scope``) and the other
definitions the caller knows. The model builder uses the same forms and normalisation, so a
guard is compared at run time exactly as it was checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from workflows.loader.known import Known, OtherDefinition, _as_list, _named, _Problems
from workflows.model import SubjectDef, date_refs
from workflows.record import record

#: Which of the subject's tracks of the other definition a ``requires_track`` guard reads.
REQUIRES_TRACK_WHICH = ("latest", "any", "all")
#: How a ``field_value`` guard compares (exactly one is given).
_COMPARISONS = ("equals", "in", "not_in")


@record(frozen=True)
class _Scope:
    """What a transition's guards may name inside their own definition."""

    name: str
    subject: SubjectDef | None
    fields: dict[str, str]
    options: dict[str, tuple[str, ...]]
    states: dict[str, dict[str, Any]]


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


def _check_date_ref(ref: Any, path: str, scope: _Scope, out: _Problems, strict: bool) -> None:
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
