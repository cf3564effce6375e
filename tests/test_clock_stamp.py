"""The stored form of an instant: one text per instant, as the schema and every reader expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from onboarding import clock

_INSTANTS = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)
).flatmap(
    lambda d: st.integers(min_value=-14 * 60, max_value=14 * 60).map(
        lambda minutes: d.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    )
)


@given(_INSTANTS)
def test_clock_stamp_is_the_strftime_form_and_reads_back(moment: datetime) -> None:
    """``stamp`` gives exactly ``%Y-%m-%dT%H:%M:%S.%fZ`` in UTC (the form every stored row
    has), and ``unstamp`` reads it back to the same instant."""
    text = clock.stamp(moment)
    assert text == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert clock.unstamp(text) == moment
