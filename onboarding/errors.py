"""The errors a user can cause. The CLI turns each into one line on stderr and exit code 2.

Anything else that escapes is a bug and exits 1 with its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class OnboardingError(Exception):
    """A user error: bad input, an unknown name, a refused transition. Nothing was written."""


class InputError(OnboardingError):
    """A file or value that cannot be read; the message says where."""


def shorten(text: str, limit: int = 80) -> str:
    """A value as quoted in a message: ``repr``, cut to ``limit`` characters when longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


class NotFound(OnboardingError):
    """An unknown municipality, system, track, definition and so on."""

    def __init__(self, what: str, name: str, candidates: Sequence[str] = ()) -> None:
        self.what = what
        self.name = name
        self.candidates = list(candidates)
        hint = f"; closest: {', '.join(self.candidates)}" if self.candidates else ""
        super().__init__(f"unknown {what} {shorten(name)}{hint}")


class Ambiguous(OnboardingError):
    """A name that matches more than one thing."""

    def __init__(self, what: str, name: str, candidates: Sequence[str]) -> None:
        self.what = what
        self.name = name
        self.candidates = list(candidates)
        super().__init__(
            f"ambiguous {what} {shorten(name)}: matches {', '.join(self.candidates)}; "
            "be more specific"
        )


class TransitionRefused(OnboardingError):
    """A trigger that may not fire now: invalid from the state, wrong role, a guard, a field."""


class StaleVersion(OnboardingError):
    """The track changed since it was read (optimistic concurrency)."""


class DefinitionInvalid(OnboardingError):
    """A workflow definition with problems; ``problems`` lists every one with its path."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {source}: {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {source}:\n{lines}")


class PermissionDenied(OnboardingError):
    """An actor acting in a role it does not hold, or on a track outside its scope.

    Raised by the engine before anything is written (see ``onboarding.actors``).
    """
