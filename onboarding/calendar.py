"""Working days in Denmark, for due dates.

Closed days are Saturdays, Sundays, the Danish public holidays (as the ``holidays`` package
lists them: Store Bededag through 2023 only, as the law has it) and three days that are not
public holidays but on which public offices close: Grundlovsdag (5 June), Juleaftensdag
(24 December) and Nytårsaften (31 December). 1 May is a working day: it is closed only under
some collective agreements.

The days are computed here (fixed dates and Easter offsets) rather than asked of ``holidays`` at
run time: importing it and building its Danish calendar took about 0.4 s, most of what a
single ``track advance`` cost as a process (bench/RESULTS.md). ``tests/test_calendar.py``
checks these days against ``holidays`` for every year from 1990 to 2060, so a change in the
law that the package learns about fails that test.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

#: Fixed-date closed days: public holidays and the three optional days offices close.
_FIXED = ((1, 1), (6, 5), (12, 24), (12, 25), (12, 26), (12, 31))
#: Closed days by their distance from Easter Sunday (Store Bededag, +26, is added to 2023).
_EASTER = (-3, -2, 0, 1, 39, 49, 50)
#: The last year with Store Bededag (abolished from 2024).
_LAST_BEDEDAG = 2023


def easter(year: int) -> date:
    """Easter Sunday (Gregorian; the anonymous algorithm of Meeus, Jones and Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=256)
def closed_days(year: int) -> frozenset[date]:
    """Every closed day of the year that is not a weekend day."""
    sunday = easter(year)
    offsets = (*_EASTER, 26) if year <= _LAST_BEDEDAG else _EASTER
    days = {date(year, month, day) for month, day in _FIXED}
    days.update(sunday + timedelta(days=n) for n in offsets)
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
