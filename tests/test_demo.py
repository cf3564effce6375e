"""``onboarding demo``: the deck's picture of 31 March 2021, a simulated quarter, the reports."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from onboarding import demo as demo_module
from tests import deckdata


@dataclass
class Demo:
    directory: Path
    output: str

    @property
    def db(self) -> Path:
        return self.directory / "onboarding.db"


def _run_demo(directory: Path) -> Demo:
    # In English: the module's checks read the demo's own lines (the Danish ones are checked in
    # tests/test_cli_output.py and tests/test_lean_snapshot.py).
    result = CliRunner().invoke(cli.cli, ["--lang", "en", "demo", "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    return Demo(directory, result.stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One demo run for the module (it is the slow part: a whole quarter)."""
    assert "ONBOARDING_NOW" not in os.environ
    return _run_demo(tmp_path_factory.mktemp("demo") / "out")


def _sql(db: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_demo_reproduces_the_decks_picture_of_31_march(demo: Demo) -> None:
    """The demo's database gives the deck's Jobcenter and ESDH table exactly as of 31-03-2021."""
    report = deckdata.rollout_json(CliRunner(), demo.db, "--as-of", "2021-03-31")
    cats = {c["category"]: c for c in report["categories"]}
    assert {c: v["rows"] for c, v in cats.items()} == deckdata.expected_rows(deckdata.DECK)
    assert cats["ESDH"]["total"]["total"] == 119 and cats["ESDH"]["distinct_municipalities"] == 98


def test_demo_prints_the_report_and_what_to_try_next(demo: Demo) -> None:
    """The output has the rollout tables (within 80 columns), where things are and what next."""
    out = demo.output
    # The module's demo runs with --lang en (_run_demo): the tables are English too.
    assert "status per 31 Mar 2021" in out and "status per 30 Jun 2021" in out
    assert "Where everything is:" in out and "Try next" in out
    assert str(demo.directory / "rollout-2021-06-30.html") in out
    for line in out.splitlines():
        if str(demo.directory) not in line:  # lines naming the (long) temporary path
            assert len(line) <= 80, line


def test_demo_writes_database_html_outbox_and_input_files(demo: Demo) -> None:
    """The folder holds the database, the HTML report, the .eml outbox and the input files."""
    html = (demo.directory / "rollout-2021-06-30.html").read_text(encoding="utf-8")
    assert '<svg id="rollout-chart"' in html and "<polyline" in html
    emails = list((demo.directory / "onboarding-outbox").glob("*.eml"))
    assert len(emails) > 50
    assert f"{len(emails)} .eml files" in demo.output
    names = sorted(p.name for p in (demo.directory / "data").iterdir())
    assert names == ["contacts.csv", "contracts.csv", "status-2020-12.csv", "status-2021-03.csv"]


def test_demo_simulates_a_quarter_of_work(demo: Demo) -> None:
    """April-June 2021: people take steps, KLIK and waves move, reminders go out, goals count."""
    actors = _sql(
        demo.db,
        "SELECT count(*), count(DISTINCT actor) FROM history"
        " WHERE at >= '2021-04-01' AND at < '2021-07-01' AND actor != 'import'",
    )[0]
    assert actors[0] > 300 and actors[1] > 50
    runner = CliRunner()
    # Read as the demo's coordinator: a named actor reads only what it may (issue 13).
    gdpr = deckdata.invoke(
        runner,
        demo.db,
        *("report", "klik", "--task", "GDPR", "--as-of", "2021-04-27", "--json"),
        actor="koordinator",
    )
    counts = json.loads(gdpr.stdout)["tasks"][0]["counts"]
    assert counts == {"Fuldført": 58, "Påbegyndt": 5, "Ikke påbegyndt": 35}  # the deck's
    waves = json.loads(
        runner.invoke(
            cli.cli,
            ["report", "waves", "--json", "--db", str(demo.db)],
            env={"ONBOARDING_NOW": "2021-06-30T17:00"},
        ).stdout
    )
    b1 = next(w for w in waves["waves"] if w["code"] == "B1")
    assert b1["by_step"]["Idriftsat"] == 8
    assert sum(w["municipalities"] for w in waves["waves"]) == 98
    sent = _sql(demo.db, "SELECT count(*) FROM outbox WHERE status = 'sent'")[0][0]
    assert isinstance(sent, int) and sent > 50
    goals = runner.invoke(
        cli.cli,
        ["report", "goals", "--year", "2021", "--quarter", "2", "--json", "--db", str(demo.db)],
        env={"ONBOARDING_NOW": "2021-06-30T17:00"},
    )
    status = {g["goal"]: g["status"] for g in json.loads(goals.stdout)["goals"]}
    assert status["eoj-ready"] == "met" and status["sapa-users"] == "missed"


def test_demo_status_file_reimported_after_the_quarter_changes_nothing(demo: Demo) -> None:
    """March's file again, after a quarter of progress: every row is in or past; nothing moves."""
    result = deckdata.invoke(
        CliRunner(),
        demo.db,
        "import",
        "status",
        str(demo.directory / "data" / "status-2021-03.csv"),
        "--dry-run",
        "--json",
    )
    data = json.loads(result.stdout)
    assert (data["tracks_started"], data["tracks_moved"], data["steps"]) == (0, 0, 0)
    outcomes = {o["outcome"] for o in data["outcomes"]}
    assert "past" in outcomes and outcomes <= {"unchanged", "past", "finished"}


def test_demo_is_deterministic(demo: Demo, tmp_path: Path) -> None:
    """A second build gives the same input files, tracks and history."""
    # The second build skips writing the .eml files (sending touches only the outbox table).
    # How long a build takes is not asserted here (speed is bench/'s to prove).
    again = demo_module.run(tmp_path / "again", echo=lambda _: None, send_reminders=False)
    assert deckdata.tracks_and_history(again.database) == deckdata.tracks_and_history(demo.db)
    for path in (demo.directory / "data").iterdir():
        assert (tmp_path / "again" / "data" / path.name).read_bytes() == path.read_bytes()
    assert "ONBOARDING_NOW" not in os.environ  # the demo's pinned clock is undone
