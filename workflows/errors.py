"""The errors of the definition format: a file that cannot be read or does not validate.

``workflows/`` is data and its validator and knows no engine, so it has its own error types;
``onboarding.definitions`` turns them into ``onboarding.errors`` exceptions (exit code 2).
"""

from __future__ import annotations

from collections.abc import Sequence


class DefinitionError(Exception):
    """A definition file or text the loader refuses; the message says where."""


class DefinitionUnreadable(DefinitionError):
    """A file that cannot be read, or is not UTF-8 text."""


class DefinitionInvalid(DefinitionError):
    """A definition with problems; ``problems`` lists every one with its path."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {source}: {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")
