"""What the validator is told and what it reports: ``Known`` in, ``_Problems`` out.

The validator knows no database: the engine builds a ``Known`` (roles, guards, templates,
other definitions) from what is installed and hands it in; ``_Problems`` collects each problem
with its path inside the file. The name rule and the "is it one of these names" tests are
shared by the checks of every part of a definition, so they live here, below all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from workflows.record import field, record

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # at most 64 characters


@record(frozen=True)
class GuardSignature:
    """What a guard accepts: its required and optional parameters, and a one-line meaning."""

    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    doc: str = ""


#: A check for one state's ``notifications`` list; returns problems (paths relative to it).
NotificationCheck = Callable[[Any, "Known", str], list[str]]


@record(frozen=True)
class OtherDefinition:
    """What a guard may name of another definition: its states and its fields' types.

    For an installed definition these are the union over its stored versions (its tracks may
    run on any of them).
    """

    states: frozenset[str]
    fields: Mapping[str, str] = field(default_factory=dict)


@record(frozen=True)
class Known:
    """Names that exist outside the definition: roles, guards, templates, other definitions.

    ``definitions`` is None when nobody said which definitions exist (a stored version being
    read back): guards naming another definition are then not checked against it. With
    ``definitions_missing_is_error`` false (``workflow validate`` of a lone file) a definition
    that is not among them is a warning, not a problem. ``legacy`` reads a text stored before
    the stricter rules (duplicate keys, guard parameter types): those are not applied to it, so
    a stored version keeps loading after an upgrade.
    """

    roles: frozenset[str]
    guards: Mapping[str, GuardSignature]
    templates: frozenset[str] | None = None
    check_notifications: NotificationCheck | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    definitions: Mapping[str, OtherDefinition] | None = None
    definitions_missing_is_error: bool = True
    definitions_where: str = "installed"
    legacy: bool = False
    #: Roles declared before (the shipped roles file): key -> (scope kind, where). A
    #: definition's own ``roles:`` may name one of them again only with the same scope kind.
    role_scopes: Mapping[str, tuple[str, str]] = field(default_factory=dict)


class _Problems:
    def __init__(self, legacy: bool = False) -> None:
        self.items: list[str] = []
        self.warnings: list[str] = []
        self.legacy = legacy

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def add_strict(self, path: str, message: str) -> None:
        """A rule added after versions were stored: not applied to a stored (legacy) text."""
        if not self.legacy:
            self.add(path, message)

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}" if path else message)


def _unknown_role(role: Any, known: Known) -> str:
    """The runtime's wording (``roles.require_role``): the role and every known one."""
    return f"unknown role {role!r} (roles: {', '.join(sorted(known.roles))})"


def _named(value: Any, names: Iterable[str]) -> bool:
    """``value`` is a string among ``names`` (a list or mapping in its place is not; no crash)."""
    return isinstance(value, str) and value in names


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
