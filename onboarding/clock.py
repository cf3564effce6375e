"""Time: stored in UTC, shown and reasoned about in Europe/Copenhagen.

Every stored instant is a fixed-width UTC string (``2021-03-31T10:00:00.000000Z``) so that
string order is time order in SQL. A clock can be pinned with ``$ONBOARDING_NOW`` (tests and
the demo), never by sleeping.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from onboarding.errors import InputError

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
    why: str = "the history records steps when they happened",
    hint: str = "",
) -> None:
    """Refuse ``at`` later than the clock plus ``FUTURE_TOLERANCE`` (InputError, one line
    naming both times). ``why`` says what the time is for, then come the tolerance and
    ``hint`` (what to do instead)."""
    current = current or now()
    if at > current + FUTURE_TOLERANCE:
        minutes = int(FUTURE_TOLERANCE.total_seconds() // 60)
        raise InputError(
            f"{what} {show_instant(at)} is later than the current time {show_instant(current)}:"
            f" {why} (at most {minutes} minutes ahead){'; ' + hint if hint else ''}"
        )


def show_instant(moment: datetime) -> str:
    """An instant in a message: local time to the second, with its offset."""
    return moment.astimezone(LOCAL).strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_time(text: str, what: str = "time") -> datetime:
    """Parse ISO 8601. A date alone means local midnight; a time without offset is local."""
    value = text.strip()
    try:
        if len(value) == 10:
            return local_midnight(date.fromisoformat(value))
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{what} {text!r} is not ISO 8601 (for example 2021-03-31 or 2021-03-31T14:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=LOCAL)
    return parsed.astimezone(UTC)


def parse_date(text: str, what: str = "date") -> date:
    """Parse an ISO date (``2021-03-31``); also accepts Danish ``31-03-2021``."""
    value = text.strip()
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return datetime.strptime(value, "%d-%m-%Y").date()
    except ValueError:
        raise InputError(f"{what} {text!r} is not a date (use 2021-03-31)") from None


def stamp(moment: datetime) -> str:
    """The stored form of an instant."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one")
    return moment.astimezone(UTC).strftime(_FORMAT)


def unstamp(text: str) -> datetime:
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
