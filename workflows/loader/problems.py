"""The validator's list of problems and the small rules every part's checks share.

``_Problems`` collects each problem with its path inside the file; the name rule and the
"is it one of these names" tests are used by the checks of every part of a definition, so they
live below all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from workflows.loader.known import Known

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # at most 64 characters


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
