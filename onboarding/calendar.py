"""Working days in Denmark, for due dates.

Closed days are Saturdays, Sundays, the public holidays of ``holidays`` (Store Bededag through
2023 only, as the law has it) and three days that are not public holidays but on which public
offices close: Grundlovsdag (5 June), Juleaftensdag (24 December) and Nytårsaften
(31 December). 1 May is a working day: it is closed only under some collective agreements.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

#: Optional-category days that count as closed (names as ``holidays`` gives them in Danish).
_CLOSED_OPTIONAL = frozenset({"Grundlovsdag", "Juleaftensdag", "Nytårsaften"})


@lru_cache(maxsize=64)
def closed_days(year: int) -> frozenset[date]:
    """Every closed day of the year that is not a weekend day."""
    public = holidays.country_holidays("DK", years=year, language="da")
    optional = holidays.country_holidays("DK", years=year, language="da", categories=("optional",))
    days = set(public)
    days.update(d for d, name in optional.items() if name in _CLOSED_OPTIONAL)
    return frozenset(days)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in closed_days(day.year)


@lru_cache(maxsize=4096)
def add_working_days(start: date, n: int) -> date:
    """The date ``n`` working days after ``start`` (before it when negative).

    ``n == 0`` gives ``start`` itself if it is a working day, else the next working day.
    """
    step = 1 if n >= 0 else -1
    day = start
    if n == 0:
        while not is_working_day(day):
            day += timedelta(days=1)
        return day
    remaining = abs(n)
    while remaining:
        day += timedelta(days=step)
        if is_working_day(day):
            remaining -= 1
    return day


def working_days_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end`` (negative if end is earlier)."""
    if end < start:
        return -working_days_between(end, start)
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count
