"""No write records a time later than the clock: a typo'd year must not freeze a track.

Through the real CLI on a real file, with the clock pinned (``$ONBOARDING_NOW``): every write
refuses an ``--at`` (or a status file's date) later than now plus ``clock.FUTURE_TOLERANCE`` with
one line naming the value and the current time, exit 2, the file byte-identical; a backdated
``--at`` still works. The engine refuses it too, so the web page and the importer get the check.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlite_utils import Database

import cli
from onboarding import clock, engine
from onboarding.db import open_existing
from onboarding.errors import InputError
from tests.support import make_ready, snapshot

pytestmark = pytest.mark.usefixtures("no_mail_env")

NOW = "2021-06-01T12:00"
NOW_SHOWN = "2021-06-01T12:00:00+0200"  # how the messages show the pinned clock
TYPO = "2030-06-01"  # the typo'd year


def _cli(runner: CliRunner, db_path: Path, *args: str) -> Result:
    env = {"ONBOARDING_ACTOR": "tester", "ONBOARDING_NOW": NOW}
    return runner.invoke(cli.cli, [*args, "--db", str(db_path)], env=env)


def _ok(runner: CliRunner, db_path: Path, *args: str) -> Result:
    result = _cli(runner, db_path, *args)
    assert result.exit_code == 0, (args, result.output)
    return result


def _write_v2(tmp_path: Path) -> Path:
    """connection v2 with the same states: a migration has something to do."""
    source = Path("workflows/definitions/connection.yaml").read_text(encoding="utf-8")
    path = tmp_path / "connection-v2.yaml"
    path.write_text(source.replace("version: 1", "version: 2", 1), encoding="utf-8")
    return path


@pytest.fixture
def world(runner: CliRunner, db_path: Path, tmp_path: Path) -> tuple[Path, int]:
    """KMD Momentum ready, an open connection track for Aarhus (#2) and connection v2 added."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
    tid = int(
        _ok(
            runner, db_path, "track", "start", "--quiet", "connection", "--municipality", "Aarhus",
            "--system", "Momentum", "--at", "2021-04-01T09:00",
        ).stdout
    )
    _ok(runner, db_path, "workflow", "add", str(_write_v2(tmp_path)))
    return db_path, tid


def _status_file(tmp_path: Path, day: str) -> Path:
    path = tmp_path / "status.csv"
    path.write_text(
        "municipality,system,status,date,kind,bob,connection_date,note\n"
        f"Aarhus,Momentum,agreed,{day},connection,,2027-01-01,\n",
        encoding="utf-8",
    )
    return path


WRITES: dict[str, tuple[str, ...]] = {
    "start": ("track", "start", "connection", "--municipality", "Vejle", "--system", "Momentum"),
    "advance": ("track", "advance", "{tid}", "agree_date", "--set", "connection_date=2027-01-01"),
    "bulk advance": (
        "track", "advance", "--where", "definition=connection", "agree_date",
        "--set", "connection_date=2027-01-01",
    ),
    "set": ("track", "set", "{tid}", "connection_date=2027-01-01"),
    "migrate": ("workflow", "migrate", "connection", "--to-version", "2"),
    "goals record": ("goals", "record", "sapa-unique-users", "9412"),
    "send-due": ("reminders", "send-due"),
}


@pytest.mark.parametrize("command", [*WRITES, "status import"])
def test_time_guard_every_write_refuses_a_future_at(
    runner: CliRunner, world: tuple[Path, int], tmp_path: Path, command: str
) -> None:
    """start, advance, bulk advance, set, migrate, goals record, send-due and the status import
    refuse a time in the future: exit 2, one line naming it and the current time, file unchanged."""
    db_path, tid = world
    if command == "status import":
        args: tuple[str, ...] = ("import", "status", str(_status_file(tmp_path, TYPO)))
    else:
        args = (*(a.format(tid=tid) for a in WRITES[command]), "--at", TYPO)
    before = snapshot(db_path)
    result = _cli(runner, db_path, *args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert TYPO in line and NOW_SHOWN in line, line
    assert "Traceback" not in result.output
    assert snapshot(db_path) == before


def test_time_guard_a_typo_no_longer_freezes_a_track(
    runner: CliRunner, world: tuple[Path, int]
) -> None:
    """The issue's case: advance --at 2030-01-01 is refused, so the track still takes real
    steps afterwards (set, advance and cancel), and the planned date goes in a field."""
    db_path, tid = world
    typo = _cli(
        runner, db_path, "track", "advance", str(tid), "agree_date",
        "--set", "connection_date=2027-01-01", "--at", "2030-01-01",
    )
    assert typo.exit_code == 2
    assert "a planned date belongs in a date field" in typo.stderr
    _ok(runner, db_path, "track", "advance", str(tid), "agree_date",
        "--set", "connection_date=2030-01-01")
    _ok(runner, db_path, "track", "set", str(tid), "connection_date=2030-02-01")
    _ok(runner, db_path, "track", "advance", str(tid), "cancel", "--set", "reason=typo")


def test_time_guard_backdated_at_still_works(runner: CliRunner, world: tuple[Path, int]) -> None:
    """An --at in the past is recorded as given, for advance, set, migrate and goals record."""
    db_path, tid = world
    _ok(runner, db_path, "track", "advance", str(tid), "agree_date",
        "--set", "connection_date=2027-01-01", "--at", "2021-05-03T10:00")
    _ok(runner, db_path, "track", "set", str(tid), "connection_date=2027-02-01",
        "--at", "2021-05-04T10:00")
    _ok(runner, db_path, "workflow", "migrate", "connection", "--to-version", "2",
        "--at", "2021-05-05T10:00")
    _ok(runner, db_path, "goals", "record", "sapa-unique-users", "9412", "--at", "2021-05-31")
    db = open_existing(db_path)
    try:
        rows = list(db.query("SELECT trigger, at FROM history WHERE track_id = ? ORDER BY id",
                             [tid]))
    finally:
        db.close()
    assert [(r["trigger"], clock.display(r["at"])) for r in rows[-3:]] == [
        ("agree_date", "2021-05-03 10:00"),
        ("@set", "2021-05-04 10:00"),
        ("@migrate", "2021-05-05 10:00"),
    ]


def test_time_guard_tolerates_five_minutes_of_clock_difference(
    runner: CliRunner, world: tuple[Path, int]
) -> None:
    """An --at up to clock.FUTURE_TOLERANCE (5 minutes) ahead is accepted; 6 minutes is not."""
    db_path, tid = world
    assert timedelta(minutes=5) == clock.FUTURE_TOLERANCE
    late = _cli(runner, db_path, "track", "set", str(tid), "connection_date=2027-01-01",
                "--at", "2021-06-01T12:06")
    assert late.exit_code == 2
    assert "--at 2021-06-01T12:06:00+0200 is later than the current time" in late.stderr
    _ok(runner, db_path, "track", "set", str(tid), "connection_date=2027-01-01",
        "--at", "2021-06-01T12:04")


def test_time_guard_engine_refuses_a_future_act(
    world: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is the engine's: an Act dated later than the clock cannot be made, so no
    caller (the web page, the status import, a script) can write one; the web page's acts carry
    no time (the clock's) and a backdated Act still advances."""
    db_path, tid = world
    monkeypatch.setenv("ONBOARDING_NOW", NOW)
    refused = rf"is later than the current time {re.escape(NOW_SHOWN)}:"
    with pytest.raises(InputError, match=refused):
        engine.Act(actor="web", role="coordinator", at=clock.parse_time(TYPO))
    assert engine.Act(actor="web", role="coordinator").moment() == clock.parse_time(NOW)
    db: Database = open_existing(db_path)
    try:
        past = engine.Act(actor="web", role="coordinator", at=clock.parse_time("2021-05-03"))
        row = engine.advance(db, tid, "agree_date", past, {"connection_date": "2021-09-01"})
        assert row["updated_at"] == clock.stamp(clock.parse_time("2021-05-03"))
    finally:
        db.close()
