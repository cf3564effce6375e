"""The errors a user can cause. The CLI turns each into one line on stderr and exit code 2.

Anything else that escapes is a bug and exits 1 with its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from onboarding.i18n import Message, localise


class OnboardingError(Exception):
    """A user error: bad input, an unknown name, a refused transition. Nothing was written.

    Raised with a ``Message`` (a message id with parameters), it is said in the reader's
    language by ``say(lang)``; ``hint`` is advice for the command line only ("give --set
    reason=<text>"), which the page leaves out. ``str()`` stays the English text with the hint,
    as logs, JSON and older callers have always read it.
    """

    def __init__(
        self, *args: Any, hint: Message | str | None = None, hint_sep: str = ": "
    ) -> None:
        first = args[0] if args else None
        #: The sentence without the hint (a Message is said again in the reader's language).
        self.message: str = first if isinstance(first, str) else str(first or "")
        self.hint = hint
        self.hint_sep = hint_sep
        if hint:
            args = (f"{self.message}{hint_sep}{hint}", *args[1:])
        super().__init__(*args)
        self._as_raised = str(self)

    def sentence(self) -> str:
        """The error as one ``str`` to keep (a bulk run's reason per track): English with the
        hint as ``str``, and, when it is a ``Message``, said without the hint in a language."""
        if isinstance(self.message, Message):
            m = self.message
            return Message(m.msgid, m.params, plural=m.plural, n=m.n, text=str(self))
        return str(self)

    def say(self, lang: str, *, cli: bool = False) -> str:
        """The error in ``lang``; with ``cli`` followed by the command-line hint. An error
        whose text a caller rewrote (``exc.args = ...``) or that has no ``Message`` is said as
        it is."""
        if not isinstance(self.message, Message) or str(self) != self._as_raised:
            return str(self)
        text = localise(self.message, lang)
        if cli and self.hint:
            text = f"{text}{self.hint_sep}{localise(self.hint, lang)}"
        return text


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
        # ``what`` is an English noun ("track", "municipality"): the catalogue has its Danish.
        params = {"what": Message(what), "name": shorten(name)}
        if self.candidates:
            params["closest"] = ", ".join(self.candidates)
            super().__init__(Message("unknown %(what)s %(name)s; closest: %(closest)s", params))
        else:
            super().__init__(Message("unknown %(what)s %(name)s", params))


class Ambiguous(OnboardingError):
    """A name that matches more than one thing."""

    def __init__(self, what: str, name: str, candidates: Sequence[str]) -> None:
        self.what = what
        self.name = name
        self.candidates = list(candidates)
        super().__init__(
            Message(
                "ambiguous %(what)s %(name)s: matches %(matches)s; be more specific",
                {
                    "what": Message(what),
                    "name": shorten(name),
                    "matches": ", ".join(self.candidates),
                },
            )
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
