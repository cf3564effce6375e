"""``report goals|grid|klik|overdue|waves`` and ``goals record|list`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cli
from tests import deckdata

NOW = "2021-06-30T12:00"


@pytest.fixture(scope="module")
def deck_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deckdata.build(CliRunner(), tmp_path_factory.mktemp("cli-reports") / "deck.db")


@pytest.fixture
def deck(deck_file: Path, tmp_path: Path) -> Path:
    return deckdata.copy_db(deck_file, tmp_path / "deck.db")


def _run(runner: CliRunner, db: Path, *args: str) -> Result:
    env = {"ONBOARDING_NOW": NOW, "ONBOARDING_ACTOR": "anna"}
    return runner.invoke(cli.cli, [*args, "--db", str(db)], env=env)


def _ok(runner: CliRunner, db: Path, *args: str) -> str:
    result = _run(runner, db, *args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def _json(runner: CliRunner, db: Path, *args: str) -> Any:
    return json.loads(_ok(runner, db, *args, "--json"))


def _fits(text: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_goals_record_then_report_goals_met(runner: CliRunner, deck: Path) -> None:
    """'goals record' stores a counter; 'report goals' counts it against the quarter's target."""
    out = _ok(runner, deck, "goals", "record", "sapa-unique-users", "9412", "--at", "2021-03-31")
    assert out == "sapa-unique-users = 9412 on 2021-03-31\n"
    report = _json(runner, deck, "report", "goals", "--year", "2021", "--quarter", "1")
    status = {g["goal"]: g["status"] for g in report["goals"]}
    assert status == {
        "esdh-jobcenter-ready": "met",
        "pladsanvisning": "not recorded",
        "sapa-users": "met",
        "manuelle-sager": "not recorded",
    }
    _fits(_ok(runner, deck, "report", "goals", "--year", "2021"))


def test_goals_list_shows_recorded_values(runner: CliRunner, deck: Path) -> None:
    """'goals list' names every counter with its values; an unknown counter exits 2."""
    _ok(runner, deck, "goals", "record", "manuelle-sager-cancelled", "47", "--note", "KMD")
    listed = {c["counter"]: c for c in _json(runner, deck, "goals", "list")}
    assert listed["manuelle-sager-cancelled"]["values"] == [
        {"value": 47, "at": "2021-06-30", "actor": "anna", "note": "KMD"}
    ]
    table = _ok(runner, deck, "goals", "list").splitlines()
    line = next(line for line in table if line.startswith("manuelle-sager-cancelled"))
    assert line.split()[1:4] == ["47", "(2021-06-30)", "1"]
    bad = _run(runner, deck, "goals", "record", "users", "5")
    assert bad.exit_code == 2 and "unknown counter 'users'" in bad.output


def test_report_grid_cli(runner: CliRunner, deck: Path) -> None:
    """The grid for a category prints within 80 columns; --json has a cell per connection."""
    grid = _json(runner, deck, "report", "grid", "--category", "Jobcenter")
    assert [s["label"] for s in grid["systems"]] == ["KMD Momentum", "Schultz Fasit"]
    assert len(grid["rows"]) == 98
    aarhus = next(r for r in grid["rows"] if r["municipality"] == "Aarhus")
    assert set(aarhus["cells"]) == {"Schultz Fasit"}
    text = _ok(runner, deck, "report", "grid")
    _fits(text)
    header = " ".join(line for line in text.splitlines() if line.startswith("Municipality"))
    for name in ("Momentum", "Fasit", "Acadre", "eDoc", "Nova ESDH", "SBSys", "GetOrganiz"):
        assert name in header


def test_report_klik_overdue_and_waves_cli(runner: CliRunner, deck: Path) -> None:
    """The KLIK, overdue and waves reports answer in JSON and print within 80 columns."""
    klik = _json(runner, deck, "report", "klik")
    assert [t["task"] for t in klik["tasks"]][1] == "Systemoverblik"
    assert klik["tasks"][0]["counts"]["Ikke påbegyndt"] == 98
    overdue = _json(runner, deck, "report", "overdue")
    assert overdue["today"] == "2021-06-30" and overdue["tracks"]
    assert all(t["due"] < "2021-06-30" for t in overdue["tracks"])
    waves = _json(runner, deck, "report", "waves")
    assert [w["code"] for w in waves["waves"]] == ["B1", "B2", "B3", "B4", "B5", "B6"]
    for args in (("klik",), ("klik", "--task", "GDPR"), ("overdue",), ("waves",)):
        _fits(_ok(runner, deck, "report", *args))


def test_report_rollout_json_flag_and_format_agree(runner: CliRunner, deck: Path) -> None:
    """--json and --format json print the same document."""
    a = _ok(runner, deck, "report", "rollout", "--json")
    b = _ok(runner, deck, "report", "rollout", "--format", "json")
    assert json.loads(a) == json.loads(b)
    assert json.loads(a)["as_of"] == "2021-06-30"
