"""Time: stored in UTC, shown and reasoned about in Europe/Copenhagen.

Every stored instant is a fixed-width UTC string (``2021-03-31T10:00:00.000000Z``) so that
string order is time order in SQL. A clock can be pinned with ``$ONBOARDING_NOW`` (tests and
the demo), never by sleeping.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from onboarding.errors import InputError
from onboarding.i18n import Message, Term

LOCAL = ZoneInfo("Europe/Copenhagen")
_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

#: How far a given time (``--at``) may be ahead of the clock: two machines' clocks differ a
#: little, and a person typing "now" by hand is a minute late or early. Anything further is a
#: typo: a step recorded in the future would make every real step after it "go backwards".
FUTURE_TOLERANCE = timedelta(minutes=5)


def now() -> datetime:
    """The current instant (UTC), or the pinned ``$ONBOARDING_NOW``."""
    pinned = os.environ.get("ONBOARDING_NOW")
    if pinned:
        return parse_time(pinned, what="$ONBOARDING_NOW")
    return datetime.now(UTC)


def check_not_future(
    at: datetime,
    current: datetime | None = None,
    *,
    what: str = "--at",
    why: str = Message("the history records steps when they happened"),
    hint: str = "",
) -> None:
    """Refuse ``at`` later than the clock plus ``FUTURE_TOLERANCE`` (InputError, one line
    naming both times). ``why`` says what the time is for, then come the tolerance and
    ``hint`` (what to do instead)."""
    current = current or now()
    if at > current + FUTURE_TOLERANCE:
        minutes = int(FUTURE_TOLERANCE.total_seconds() // 60)
        raise InputError(
            Message(
                "%(what)s %(at)s is later than the current time %(now)s: %(why)s "
                "(at most %(minutes)s minutes ahead)",
                {
                    "what": what,
                    "at": show_instant(at),
                    "now": show_instant(current),
                    "why": why,
                    "minutes": str(minutes),
                },
            ),
            hint=hint or None,  # what to do instead, on the command line
            hint_sep="; ",
        )


def show_instant(moment: datetime) -> str:
    """An instant in a message: local time to the second, with its offset."""
    return moment.astimezone(LOCAL).strftime("%Y-%m-%dT%H:%M:%S%z")


#: What every date and time option and field accepts (named in every date error).
ACCEPTED_DATES = Message("2021-03-31 (ISO 8601), 31-03-2021, 31.03.2021 or 31/03/2021")
ACCEPTED_TIMES = Message(
    "%(dates)s, optionally with a time: 2021-03-31T14:00 or 31-03-2021 14:00",
    {"dates": ACCEPTED_DATES},
)

# The Danish forms: day and month of one or two digits, the same separator twice, a four-digit
# year, then optionally a time (HH:MM or HH:MM:SS) after a space or a T.
_DANISH = re.compile(
    r"(?P<d>\d{1,2})(?P<sep>[-./])(?P<m>\d{1,2})(?P=sep)(?P<y>\d{4})"
    r"(?:[ T](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?"
)

#: A date field this far from the step's time is accepted, with a warning naming it: a
#: connection date five years in the past is far more often a typo than a fact.
FAR_PAST = timedelta(days=366)
FAR_FUTURE = timedelta(days=5 * 366)


class FarDateWarning(UserWarning):
    """A date accepted although far from the step's time (the CLI prints it on stderr)."""


def _parse(text: str) -> tuple[date, datetime | None]:
    """(the day, the full local/offset datetime if a time was given); ValueError if neither
    ISO 8601 nor a Danish form. The one parser behind every date and time the user types."""
    value = text.strip()
    match = _DANISH.fullmatch(value)
    if match:
        g = match.groupdict()
        day = date(int(g["y"]), int(g["m"]), int(g["d"]))
        if g["H"] is None:
            return day, None
        moment = datetime.combine(day, time(int(g["H"]), int(g["M"]), int(g["S"] or 0)))
        return day, moment
    if len(value) <= 10 and "T" not in value and ":" not in value:
        return date.fromisoformat(value), None
    parsed = datetime.fromisoformat(value)
    return parsed.date(), parsed


def parse_when(text: str, what: str = "time") -> tuple[date, datetime | None]:
    """(the day, the instant in UTC if a time was given) from ISO 8601 or a Danish form
    (``ACCEPTED_TIMES``); a time without an offset is Copenhagen time. For inputs where a date
    alone means something else than its midnight (a whole day, an import row's day)."""
    try:
        day, moment = _parse(text)
    except ValueError:
        raise InputError(
            Message(
                "%(what)s %(value)s is not a date or time: use %(formats)s",
                {"what": what, "value": repr(text), "formats": ACCEPTED_TIMES},
            )
        ) from None
    if moment is None:
        return day, None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL)
    return day, moment.astimezone(UTC)


def parse_time(text: str, what: str = "time", *, end_of_day: bool = False) -> datetime:
    """An instant from ISO 8601 or a Danish form (``ACCEPTED_TIMES``). A date alone means
    local midnight (with ``end_of_day``: the last instant of that day)."""
    day, moment = parse_when(text, what)
    if moment is None:
        return end_of_local_day(day) if end_of_day else local_midnight(day)
    return moment


def parse_date(text: str, what: str = "date") -> date:
    """A day from ISO 8601 (``2021-03-31``) or a Danish form (``31-03-2021``, ``31.03.2021``,
    ``31/03/2021``); a time is refused: this is a date."""
    try:
        day, moment = _parse(text)
    except ValueError:
        raise InputError(
            Message(
                "%(what)s %(value)s is not a date: use %(formats)s",
                {"what": what, "value": repr(text), "formats": ACCEPTED_DATES},
            )
        ) from None
    if moment is not None:
        raise InputError(
            Message(
                "%(what)s %(value)s is a date without a time: use %(formats)s",
                {"what": what, "value": repr(text), "formats": ACCEPTED_DATES},
            )
        )
    return day


def warn_if_far(day: date, reference: datetime, what: str | Callable[[], str]) -> None:
    """Warn (``FarDateWarning``) when ``day`` is more than a year before or five years after
    the day of ``reference`` (the step's time): accepted, but said. The warning's text is a
    ``Message`` (its English the sentence it has always been; the reader's language where it
    is shown); ``what`` names the value (a ``Message`` or ``Term`` to be said in Danish too), or
    makes that name: the engine's is built only when there is something to say (issue 14)."""
    ref = local_date(reference)
    if day < ref - FAR_PAST:
        msgid = (
            "%(what)s %(day)s is more than a year before the step (%(ref)s); "
            "accepted, but check it is not a typo"
        )
    elif day > ref + FAR_FUTURE:
        msgid = (
            "%(what)s %(day)s is more than five years after the step (%(ref)s); "
            "accepted, but check it is not a typo"
        )
    else:
        return
    named = what() if callable(what) else what
    said = Message(msgid, {"what": named, "day": _iso_day(day), "ref": _iso_day(ref)})
    heard = _HEARD.get() if _HEARD is not None else None
    if heard is not None:
        heard.append(said)
        return
    warnings.warn(FarDateWarning(said), stacklevel=2)


def _iso_day(day: date) -> Term:
    """A day said as Danes write it in Danish, and in English as the ISO date this warning
    has always had."""
    from onboarding.i18n import fmt_date

    return Term(day.isoformat(), {"da": fmt_date(day, "da"), "en": day.isoformat()})


#: The far-date warnings said in this context, while ``far_dates`` collects them: a
#: ``ContextVar``, made by the first ``far_dates`` (the web page's; the CLI uses Python's
#: warnings, and its advance path needs no context variable).
_HEARD: Any = None


@contextmanager
def far_dates() -> Iterator[list[Message]]:
    """Collect the far-date warnings said inside (in this thread or task only) instead of
    warning: Python's warning filters are process-wide, so a server running requests in
    threads cannot catch one request's warnings with them."""
    global _HEARD
    if _HEARD is None:
        from contextvars import ContextVar

        _HEARD = ContextVar("far_dates", default=None)
    found: list[Message] = []
    token = _HEARD.set(found)
    try:
        yield found
    finally:
        _HEARD.reset(token)


def warning_text(warning: Warning | str) -> str:
    """A warning's text as given (a ``Message`` stays one: the reader's language is said
    where it is shown)."""
    if isinstance(warning, Warning) and len(warning.args) == 1 and isinstance(warning.args[0], str):
        return warning.args[0]
    return str(warning)


def show_day(day: date | str) -> str:
    """A day as Danes write it: 15.03.2021."""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    return day.strftime("%d.%m.%Y")


def stamp(moment: datetime) -> str:
    """The stored form of an instant."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one")
    # isoformat is C and about twice as fast as strftime, and gives the same text
    # (2021-03-01T10:00:00.000000Z) for every year SQLite and we store (1000-9999).
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def unstamp(text: str) -> datetime:
    # A stored stamp (2021-03-01T10:00:00.000000Z) is read by fromisoformat: strptime would
    # cost every command its _strptime import (and is slower); anything else keeps strptime's
    # strict reading and its error.
    if len(text) == 27 and text[-1] == "Z" and text[10] == "T" and text[19] == ".":
        return datetime.fromisoformat(text).astimezone(UTC)
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def local_date(moment: datetime) -> date:
    """The calendar date in Copenhagen at that instant."""
    return moment.astimezone(LOCAL).date()


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LOCAL).astimezone(UTC)


def end_of_local_day(day: date) -> datetime:
    """The last instant of a Copenhagen day: 'as of 31 March' includes all of 31 March."""
    return local_midnight(day + timedelta(days=1)) - timedelta(microseconds=1)


def display(text: str | None) -> str:
    """A stored instant shown in local time, to the minute."""
    if not text:
        return ""
    return unstamp(text).astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")
