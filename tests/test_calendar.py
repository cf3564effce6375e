"""The working-day calendar against the ``holidays`` package (the reference for Danish law)."""

from __future__ import annotations

from datetime import date

import holidays
import pytest

from onboarding import calendar

#: Optional-category days that count as closed (names as ``holidays`` gives them in Danish).
CLOSED_OPTIONAL = {"Grundlovsdag", "Juleaftensdag", "Nytårsaften"}


@pytest.mark.parametrize("year", range(1990, 2061))
def test_closed_days_match_holidays_package(year: int) -> None:
    public = holidays.country_holidays("DK", years=year, language="da")
    optional = holidays.country_holidays("DK", years=year, language="da", categories=("optional",))
    expected = set(public) | {d for d, name in optional.items() if name in CLOSED_OPTIONAL}
    assert calendar.closed_days(year) == expected


def test_store_bededag_until_2023_and_1_may_open() -> None:
    assert date(2023, 5, 5) in calendar.closed_days(2023)
    assert date(2024, 4, 26) not in calendar.closed_days(2024)
    assert calendar.is_working_day(date(2024, 5, 1))
    assert not calendar.is_working_day(date(2024, 12, 24))


def test_easter() -> None:
    assert calendar.easter(2021) == date(2021, 4, 4)
    assert calendar.easter(2024) == date(2024, 3, 31)
    assert calendar.easter(2038) == date(2038, 4, 25)
