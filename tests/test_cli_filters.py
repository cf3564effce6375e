"""Filters that know their values: a typo in any filter is refused with the closest values,
and an empty selection of valid values says what it selected (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support import ok, ok_json, run, snapshot

DATA = Path(__file__).parent / "data"


def _start(runner: CliRunner, db_path: Path, municipality: str, system: str = "Momentum") -> int:
    data = ok_json(
        runner,
        db_path,
        "track",
        "start",
        "connection",
        "--municipality",
        municipality,
        "--system",
        system,
        "--at",
        "2021-04-01",
    )
    return int(data["id"])


@pytest.fixture
def world(runner: CliRunner, db_path: Path) -> Path:
    """Two connection tracks in date_agreement (Aarhus and Vejle, KMD Momentum)."""
    _start(runner, db_path, "Aarhus")
    _start(runner, db_path, "Vejle")
    return db_path


def _refused(runner: CliRunner, db_path: Path, *args: str) -> str:
    """Run a command that must be refused as bad input: exit 2, one line, nothing written."""
    before = snapshot(db_path)
    result = run(runner, db_path, *args)
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert result.stdout == ""
    assert snapshot(db_path) == before
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


LIST_TYPOS = [
    ("--state", "display_openng", "display_opening", "onboarding workflow show connection"),
    ("--definition", "conection", "connection", "onboarding workflow list"),
    ("--phase", "agrement", "agreement", "onboarding workflow show connection"),
    ("--bucket", "Endnu ikke aftal", "Endnu ikke aftalt", "onboarding workflow show connection"),
    ("--municipality", "Aarhsu", "Aarhus (751)", "onboarding registry list municipalities"),
    ("--system", "Momentun", "KMD Momentum", "onboarding registry list systems"),
    ("--vendor", "KDM", "KMD", "onboarding registry list vendors"),
]


@pytest.mark.parametrize(("option", "typo", "closest", "listing"), LIST_TYPOS)
def test_filters_track_list_typo_is_refused_with_closest(
    runner: CliRunner, world: Path, option: str, typo: str, closest: str, listing: str
) -> None:
    """'track list --state display_openng' (and every other filter option) exits 2 with the
    closest value and the command that lists them all, instead of printing '(none)'."""
    line = _refused(runner, world, "track", "list", option, typo)
    assert line.startswith(f"Error: {option}: ")
    assert f"closest: {closest}" in line
    assert f"(see '{listing}')" in line


WHERE_TYPOS = [
    ("definition=conection", "--where definition", "closest: connection"),
    ("state=display_openng", "--where state", "closest: display_opening"),
    ("definition=connection state=display_openng", "--where state", "closest: display_opening"),
    ("phase=agrement", "--where phase", "closest: agreement"),
    ("bucket=Aftal", "--where bucket", "closest: Aftalt"),
    ("municipality=Aarhsu", "--where municipality", "closest: Aarhus (751)"),
    ("system=Momentun", "--where system", "closest: KMD Momentum"),
    ("vendor=KDM", "--where vendor", "closest: KMD"),
    ("region=Syddanmrk", "--where region", "closest: Region Syddanmark"),
    ("stat=date_agreement", "--where", "closest: state"),
    ("definition=connection open=maybe", "--where open", "open=yes or open=no"),
]


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize(("where", "label", "hint"), WHERE_TYPOS)
def test_filters_where_typo_is_refused_and_database_unchanged(
    runner: CliRunner, world: Path, where: str, label: str, hint: str, dry_run: bool
) -> None:
    """A typo in any --where key or value exits 2 with a suggestion, before anything is
    selected: the database file is byte for byte as before (with and without --dry-run)."""
    args = ["track", "advance", "--where", where, "agree_date"]
    args += ["--set", "connection_date=2027-01-01"]
    line = _refused(runner, world, *args, *(["--dry-run"] if dry_run else []))
    assert line.startswith(f"Error: {label}"), line
    assert hint in line, line


def test_filters_state_of_another_definition_is_named(runner: CliRunner, world: Path) -> None:
    """'live' is no state of klik-task: the refusal says which workflows it is a state of."""
    line = _refused(runner, world, "track", "list", "--definition", "klik-task", "--state", "live")
    assert "unknown state 'live' of klik-task" in line
    assert "it is a state of connection" in line
    assert "(see 'onboarding workflow show klik-task')" in line


def test_filters_one_bad_alternative_is_refused(runner: CliRunner, world: Path) -> None:
    """'a|b' checks every alternative: one unknown state refuses the whole filter."""
    line = _refused(runner, world, "track", "list", "--state", "date_agreement|live|nope")
    assert "unknown state 'nope'" in line


def test_filters_empty_bulk_selection_says_what_it_selected(
    runner: CliRunner, world: Path
) -> None:
    """A valid filter that selects nothing says so in words (exit 0); --json stays numbers."""
    before = snapshot(world)
    where = "definition=connection state=display_opening"
    result = ok(runner, world, "track", "advance", "--where", where, "open_display")
    assert result.stdout.strip() == "no open track of connection is in display_opening"
    data = json.loads(
        ok(runner, world, "track", "advance", "--where", where, "open_display", "--json").stdout
    )
    assert (data["selected"], data["moved"]) == (0, 0)
    assert snapshot(world) == before


def test_filters_empty_track_list_says_what_it_selected(runner: CliRunner, world: Path) -> None:
    """'track list' with valid filters and no hit names them; --json prints an empty list."""
    args = ("track", "list", "--definition", "connection", "--municipality", "Odense")
    assert ok(runner, world, *args).stdout.strip() == (
        "no track of connection for municipality Odense"
    )
    assert ok_json(runner, world, *args) == []
    result = ok(runner, world, "track", "list", "--bucket", "Aftalt", "--open")
    assert result.stdout.strip() == "no open track is in bucket 'Aftalt'"


def test_filters_phase_and_bucket_select_their_states(runner: CliRunner, world: Path) -> None:
    """--phase and --bucket (any case) select the tracks in the states they group."""
    by_phase = ok_json(runner, world, "track", "list", "--phase", "AGREEMENT")
    assert [r["state"] for r in by_phase] == ["date_agreement", "date_agreement"]
    by_bucket = ok_json(runner, world, "track", "list", "--bucket", "endnu ikke aftalt")
    assert len(by_bucket) == 2
    where = "bucket='Endnu ikke aftalt' municipality=Vejle"
    result = ok(
        runner,
        world,
        "track",
        "advance",
        "--where",
        where,
        "agree_date",
        "--set",
        "connection_date=2027-01-01",
        "--dry-run",
    )
    assert "would move 1 of 1" in result.stdout


def test_filters_know_the_states_of_every_stored_version(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A state only an older version has is still a state tracks may be in; a new version's
    states are known as soon as it is added."""
    v1 = DATA / "custom-definition.yaml"
    v2 = tmp_path / "dpo-v2.yaml"
    text = v1.read_text(encoding="utf-8")
    v2.write_text(
        text.replace("version: 1", "version: 2").replace("dpo_review", "dpo_check"),
        encoding="utf-8",
    )
    ok(runner, db_path, "workflow", "add", str(v1))
    ok(runner, db_path, "workflow", "add", str(v2))
    for state in ("dpo_review", "dpo_check"):
        args = ("track", "list", "--definition", "dpo-approval", "--state", state)
        result = ok(runner, db_path, *args)
        assert result.stdout.strip() == f"no track of dpo-approval is in {state}"
    line = _refused(
        runner, db_path, "track", "list", "--definition", "dpo-approval", "--state", "dpo_revew"
    )
    assert "closest: dpo_review" in line
    assert "(see 'onboarding workflow show dpo-approval')" in line


def test_filters_history_unknown_actor_is_refused(runner: CliRunner, world: Path) -> None:
    """'history --actor' with a name no step was recorded by exits 2 with the closest name."""
    line = _refused(runner, world, "history", "--actor", "testr")
    assert "unknown actor 'testr'; closest: tester" in line
    assert "(see 'onboarding actor list')" in line
    assert ok_json(runner, world, "history", "--actor", "tester")


def test_filters_reminders_unknown_track_is_refused(runner: CliRunner, world: Path) -> None:
    """'reminders list --track 999' exits 2 instead of listing nothing."""
    line = _refused(runner, world, "reminders", "list", "--track", "999")
    assert "--track: no track #999" in line
