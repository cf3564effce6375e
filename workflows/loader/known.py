"""What the caller says exists outside a definition: roles, guards, templates, other definitions.

The validator knows no database: the engine builds a ``Known`` from what is installed and hands
it in. Separate so the engine (``onboarding.guards``, ``onboarding.outbox``) can name these
records without reaching into the checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from workflows.record import field, record


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
