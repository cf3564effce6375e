"""The demo's clock: pinned to the simulated moment, moved one working day at a time."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta

from onboarding import calendar, clock


@contextmanager
def pinned() -> Iterator[Callable[[datetime], None]]:
    """Pin ``$ONBOARDING_NOW`` for the demo's duration; the caller moves it forward."""
    before = os.environ.get("ONBOARDING_NOW")

    def move(moment: datetime) -> None:
        os.environ["ONBOARDING_NOW"] = moment.isoformat()

    try:
        yield move
    finally:
        if before is None:
            os.environ.pop("ONBOARDING_NOW", None)
        else:
            os.environ["ONBOARDING_NOW"] = before


def local(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=clock.LOCAL)


def working_days(start: date, end: date) -> list[date]:
    days, day = [], start
    while day <= end:
        if calendar.is_working_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days
