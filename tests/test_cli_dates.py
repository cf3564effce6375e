"""One date rule through the real CLI: ISO 8601 and the Danish d-m-yyyy, d.m.yyyy and d/m/yyyy
(with an optional time) for every date and time option and field, errors that list the forms,
and a warning for a date field far from the step (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from tests.support import ok, ok_json, run, snapshot

FORMS = ("2021-03-31 (ISO 8601)", "31-03-2021", "31.03.2021", "31/03/2021")


def _start(runner: CliRunner, db_path: Path, at: str) -> int:
    return int(
        ok(
            runner,
            db_path,
            "track",
            "start",
            "--quiet",
            "connection",
            "--municipality",
            "Aarhus",
            "--system",
            "KMD Momentum",
            "--at",
            at,
        ).stdout
    )


@pytest.mark.parametrize("day", ["01-02-2021", "1.2.2021", "01/02/2021"])
def test_dates_same_danish_date_is_accepted_by_at_as_of_and_set(
    runner: CliRunner, db_path: Path, day: str
) -> None:
    """One Danish date is taken by --at, by --as-of and by --set on a date field alike."""
    tid = _start(runner, db_path, day)
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "agree_date",
        "--set",
        f"connection_date={day}",
        "--at",
        f"{day} 14:30",
    )
    db = Database(db_path)
    rows = list(db.query("SELECT trigger, at FROM history WHERE track_id = ? ORDER BY seq", [tid]))
    # Local midnight and 14:30 in Copenhagen (winter time: UTC+1), stored in UTC.
    assert [r["at"][:16] for r in rows] == ["2021-01-31T23:00", "2021-02-01T13:30"]
    assert ok_json(runner, db_path, "track", "show", str(tid))["fields"] == {
        "connection_date": "2021-02-01"
    }
    for report, key in (("rollout", "as_of"), ("klik", "as_of"), ("overdue", "today")):
        assert ok_json(runner, db_path, "report", report, "--as-of", day)[key] == "2021-02-01"
    assert ok_json(runner, db_path, "report", "grid", "--as-of", day)["today"] == "2021-02-01"
    history = ok_json(runner, db_path, "history", "--since", day, "--until", day)
    assert len(history) == 2  # a date alone as --until includes that whole day


@pytest.mark.parametrize(
    "args",
    [
        ("track", "start", "connection", "--municipality", "Aarhus", "--system", "Momentum",
         "--at", "2021/02/01"),
        ("track", "start", "connection", "--municipality", "Aarhus", "--system", "Momentum",
         "--set", "connection_date=1 februar 2021"),
        ("report", "klik", "--as-of", "31-02-2021"),
        ("report", "grid", "--as-of", "yesterday"),
        ("goals", "record", "sapa-unique-users", "5", "--at", "2021.03.31"),
        ("history", "--until", "31-3-21"),
    ],
)
def test_dates_invalid_date_error_lists_the_accepted_forms(
    runner: CliRunner, db_path: Path, args: tuple[str, ...]
) -> None:
    """A date no form matches: exit 2, one line that lists every accepted form, nothing written."""
    before = snapshot(db_path)
    result = run(runner, db_path, *args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for form in FORMS:
        assert form in result.stderr
    assert snapshot(db_path) == before


def test_dates_far_field_date_is_accepted_with_a_warning(runner: CliRunner, db_path: Path) -> None:
    """A date field more than a year before (or five years after) the step's time is kept,
    with one warning line on stderr naming the field; a near one says nothing."""
    tid = _start(runner, db_path, "01-06-2021")
    far = ok(
        runner,
        db_path,
        "track",
        "set",
        str(tid),
        "connection_date=30-06-2016",
        "--at",
        "2021-06-30T10:00",
    )
    [line] = far.stderr.strip().splitlines()
    assert line.startswith("warning: field connection_date 2016-06-30 is more than a year before")
    assert "2021-06-30" in line
    assert ok_json(runner, db_path, "track", "show", str(tid))["fields"]["connection_date"] == (
        "2016-06-30"
    )
    future = ok(
        runner, db_path, "track", "set", str(tid), "connection_date=01.07.2027", "--at", "1-7-2021"
    )
    assert "more than five years after the step (2021-07-01)" in future.stderr
    near = ok(
        runner, db_path, "track", "set", str(tid), "connection_date=01/09/2021", "--at", "2.7.2021"
    )
    assert near.stderr == ""


def test_dates_future_at_in_danish_form_is_still_refused(
    runner: CliRunner, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Danish form does not get round the rule that no step is recorded in the future."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-06-30T12:00")
    before = snapshot(db_path)
    result = run(
        runner,
        db_path,
        "track",
        "start",
        "connection",
        "--municipality",
        "Vejle",
        "--system",
        "Momentum",
        "--at",
        "01-07-2021",
    )
    assert result.exit_code == 2 and "is later than the current time" in result.stderr
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ("report", "rollout", "--as-of", "{day}"),
        ("report", "goals", "--as-of", "{day}"),
        ("report", "grid", "--as-of", "{day}"),
        ("report", "klik", "--as-of", "{day}"),
        ("report", "buckets", "connection", "--as-of", "{day}"),
    ],
    ids=["rollout", "goals", "grid", "klik", "buckets"],
)
def test_dates_day_after_today_is_refused_by_reports(
    runner: CliRunner, db_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """A report "as of" tomorrow is refused in one line (exit 2, the database unchanged);
    today is still accepted. (A counter recorded tomorrow: tests/test_time_guard.py.)"""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-06-30T17:00")
    before = snapshot(db_path)
    result = run(runner, db_path, *(a.format(day="01.07.2021") for a in args))
    assert result.exit_code == 2, result.output
    assert "is after today (30 Jun 2021)" in result.stderr and result.stderr.count("\n") == 1
    assert snapshot(db_path) == before
    ok(runner, db_path, *(a.format(day="30.06.2021") for a in args))
