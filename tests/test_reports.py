"""The reports library: goals, counters, grid, KLIK, overdue, waves (rollout: the CLI tests)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from onboarding import calendar, clock, engine, reports
from onboarding.db import open_existing
from onboarding.errors import InputError, NotFound
from onboarding.status_import import import_status
from tests import deckdata

Q2_END = date(2021, 6, 30)


@pytest.fixture(scope="module")
def deck_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deckdata.build(CliRunner(), tmp_path_factory.mktemp("reports") / "deck.db")


@pytest.fixture
def deck(deck_file: Path, tmp_path: Path) -> Iterator[Database]:
    db = open_existing(deckdata.copy_db(deck_file, tmp_path / "deck.db"))
    yield db
    db.close()


def _act(role: str, at: str) -> engine.Act:
    return engine.Act(actor=f"{role}-1", role=role, at=clock.parse_time(at))


def _goal(report: dict[str, object], name: str, quarter: str) -> dict[str, object]:
    goals = report["goals"]
    assert isinstance(goals, list)
    return next(g for g in goals if g["goal"] == name and g["quarter"] == quarter)


# --- goals ----------------------------------------------------------------------------------------


def test_goals_measure_tracks_at_each_quarter_end(deck: Database) -> None:
    """Systems ready by Q1 (all 7 in use): met; Jobcenter live at Q2 (16 of 30): missed."""
    report = reports.goals(deck, 2021, today=Q2_END)
    ready = _goal(report, "esdh-jobcenter-ready", "Q1")
    assert (ready["target"], ready["actual"], ready["status"]) == (7, 7, "met")
    jobcenter = _goal(report, "jobcenter-rollout", "Q2")
    assert (jobcenter["target"], jobcenter["actual"], jobcenter["status"]) == (30, 16, "missed")
    esdh_all = _goal(report, "esdh-rollout", "Q4")
    assert (esdh_all["target"], esdh_all["status"]) == (98, "open")


def test_goals_counters_count_the_latest_value_by_quarter_end(deck: Database) -> None:
    """A recorded counter meets Q1; the latest value on or before 30 June misses Q2."""
    reports.record_counter(deck, "sapa-unique-users", 8800, date(2021, 3, 15), "pl")
    reports.record_counter(deck, "sapa-unique-users", 9412, date(2021, 3, 31), "pl")
    reports.record_counter(deck, "sapa-unique-users", 12000, date(2021, 7, 1), "pl")
    report = reports.goals(deck, 2021, today=date(2021, 7, 2))
    q1, q2 = _goal(report, "sapa-users", "Q1"), _goal(report, "sapa-users", "Q2")
    assert (q1["actual"], q1["status"]) == (9412, "met")
    assert (q2["actual"], q2["status"]) == (9412, "missed")
    assert _goal(report, "manuelle-sager", "Q1")["status"] == "not recorded"
    assert _goal(report, "pladsanvisning", "Q2")["target_label"] == "mapping settled"


def test_goals_quarter_filter_and_unknown_year(deck: Database) -> None:
    """--quarter keeps one quarter; a year without a goals file is an unknown goals file."""
    report = reports.goals(deck, 2021, quarter=3, today=Q2_END)
    assert {g["quarter"] for g in report["goals"]} == {"Q3"}
    with pytest.raises(NotFound, match="goals file for year '1999'"):
        reports.goals(deck, 1999)


def test_goals_text_fits_80_columns(deck: Database) -> None:
    """The goals table prints within 80 columns with Danish thousands separators."""
    reports.record_counter(deck, "sapa-unique-users", 9412, date(2021, 3, 31), "pl")
    text = reports.goals_text(reports.goals(deck, 2021, today=Q2_END))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "9.412" in text and "11.000" in text


def test_record_counter_checks_name_value_and_date(deck: Database) -> None:
    """Unknown counters, negative values and future dates are refused; values are kept."""
    with pytest.raises(NotFound, match="unknown counter 'sapa'; closest: sapa-unique-users"):
        reports.record_counter(deck, "sapa", 1, date(2021, 1, 1), "pl")
    with pytest.raises(InputError, match="negative"):
        reports.record_counter(deck, "sapa-unique-users", -1, date(2021, 1, 1), "pl")
    with pytest.raises(InputError, match="in the future"):
        reports.record_counter(deck, "sapa-unique-users", 1, date(2999, 1, 1), "pl")
    reports.record_counter(deck, "manuelle-sager-cancelled", 40, date(2021, 3, 31), "a")
    reports.record_counter(deck, "manuelle-sager-cancelled", 47, date(2021, 3, 31), "b", "fixed")
    listed = {c["counter"]: c for c in reports.list_counters(deck)}
    assert [v["value"] for v in listed["manuelle-sager-cancelled"]["values"]] == [40, 47]
    q1 = _goal(reports.goals(deck, 2021, today=Q2_END), "manuelle-sager", "Q1")
    assert (q1["actual"], q1["status"]) == (47, "met")


def test_load_goals_reports_every_problem(tmp_path: Path) -> None:
    """A broken goals file names each problem with its place."""
    path = tmp_path / "goals.yaml"
    path.write_text(
        "year: 2022\ncounters: {}\ngoals:\n"
        "  - {name: a, label: A, measure: {counter: nope}, targets: {Q1: 5}}\n"
        "  - {name: b, label: B, measure: {count: people, definition: connection,"
        " buckets: [I drift], categories: [ESDH]}, targets: {Q5: -1}}\n"
    )
    with pytest.raises(InputError) as info:
        reports.load_goals(path)
    message = str(info.value)
    assert "goals[0] (a).measure.counter: 'nope' is not in counters" in message
    assert "goals[1] (b).measure.count: municipalities or systems" in message
    assert "goals[1] (b).targets.Q5: quarters are Q1-Q4" in message


def test_shipped_goals_file_holds_the_decks_2021_targets() -> None:
    """The shipped 2021 goals: rollout 30 / 70 / all, SAPA users, Manuelle sager."""
    path = reports.goals_file(2021)
    assert path is not None
    spec = {g["name"]: g["targets"] for g in reports.load_goals(path)["goals"]}
    assert {q: t["value"] for q, t in spec["esdh-rollout"].items()} == {
        "Q2": 30,
        "Q3": 70,
        "Q4": "all",
    }
    assert [t["value"] for t in spec["sapa-users"].values()] == [9000, 11000, 13000, 15000]
    assert [t["value"] for t in spec["manuelle-sager"].values()] == [47, 57, 67, 78]
    assert {q: t["value"] for q, t in spec["eoj-ready"].items()} == {"Q2": 1, "Q3": "all"}


# --- grid -----------------------------------------------------------------------------------------


def test_grid_cells_show_step_days_and_mark_the_outlier(db: Database, tmp_path: Path) -> None:
    """Five connections waiting in one step; the one waiting far longer is marked '*'."""
    rows = ["municipality,system,status,date,kind,connection_date"]
    rows.append("Aarhus,Momentum,ready,2020-09-01,system-readiness,")
    for name in ("Odense", "Vejle", "Horsens", "Kolding"):
        rows.append(f"{name},Momentum,Aftalt,2021-03-01,,2021-09-01")
    rows.append("Esbjerg,Momentum,Aftalt,2020-10-01,,2021-09-01")
    rows.append("Aarhus,Momentum,I drift,2021-01-04,,2020-12-01")
    path = tmp_path / "s.csv"
    path.write_text("\n".join(rows) + "\n")
    import_status(db, path)
    grid = reports.grid(db, "Jobcenter", today=Q2_END)
    cells = {r["municipality"]: r["cells"]["KMD Momentum"] for r in grid["rows"]}
    days = calendar.working_days_between(date(2021, 3, 1), Q2_END)
    assert cells["Odense"]["text"] == f"4:{days}"  # step 4, working days since 1 March
    assert cells["Esbjerg"]["outlier"] and cells["Esbjerg"]["text"].endswith("*")
    assert not cells["Odense"]["outlier"]
    assert cells["Aarhus"]["text"] == "ok"
    assert grid["outliers"] == 1
    text = reports.grid_text(grid)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "* = outlier" in text


def test_grid_of_the_deck_fits_80_columns(deck: Database) -> None:
    """All seven systems for 98 municipalities: blocks of columns within 80 columns."""
    grid = reports.grid(deck, today=Q2_END)
    assert len(grid["rows"]) == 98 and len(grid["systems"]) == 7
    text = reports.grid_text(grid)
    assert max(len(line) for line in text.splitlines()) <= 80
    faxe = next(r for r in grid["rows"] if r["municipality"] == "Faxe")
    assert faxe["cells"]["KMD Momentum"]["step"] == 1  # Endnu ikke aftalt, contract unknown


# --- KLIK, overdue, waves ----------------------------------------------------------------------


def _klik(db: Database, municipality: str, *triggers: str, at: str = "2021-04-20") -> int:
    subject = engine.Subject(municipality=municipality, klik_task="GDPR")
    tid = int(engine.start(db, "klik-task", subject, _act("coordinator", "2021-04-06"))["id"])
    for trigger in triggers:
        engine.advance(db, tid, trigger, _act("municipality-pl", at))
    return tid


def test_klik_counts_buckets_and_municipalities_without_a_track(db: Database) -> None:
    """Fuldført / Påbegyndt / Ikke påbegyndt; municipalities with no track are not started."""
    _klik(db, "Aarhus", "complete")
    _klik(db, "Odense", "start")
    _klik(db, "Vejle")
    _klik(db, "Aalborg", "start", "complete", at="2021-05-03")
    report = reports.klik(db, "GDPR", as_of=date(2021, 4, 27))
    task = report["tasks"][0]
    assert report["buckets"] == ["Fuldført", "Påbegyndt", "Ikke påbegyndt"]
    # Aalborg answered only in May: not started as of 27 April.
    assert task["counts"] == {"Fuldført": 1, "Påbegyndt": 1, "Ikke påbegyndt": 96}
    assert task["without_track"] == 94
    assert [r["municipality"] for r in task["open"]] == ["Aalborg", "Odense", "Vejle"]
    later = reports.klik(db, as_of=date(2021, 5, 7))["tasks"][0]
    assert later["counts"]["Fuldført"] == 2 and later["overdue"] == 2
    assert max(len(line) for line in reports.klik_text(report).splitlines()) <= 80


def test_overdue_lists_open_tracks_past_due(db: Database) -> None:
    """A KLIK task open past its end date is overdue; a completed one is not."""
    late = _klik(db, "Odense", "start")
    _klik(db, "Aarhus", "complete")
    report = reports.overdue(db, today=date(2021, 5, 10))
    assert [(r["track"], r["due"], r["working_days_late"]) for r in report["tracks"]] == [
        (late, "2021-04-29", 6)
    ]
    text = reports.overdue_text(report)
    assert "Overdue tracks, 10 May 2021: 1" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_waves_count_municipalities_by_step(db: Database) -> None:
    """Each wave's municipalities by step of the rollout-wave workflow."""
    for name in ("Aarhus", "Odense", "Vejle"):
        subject = engine.Subject(municipality=name, wave="B1")
        tid = int(
            engine.start(db, "rollout-wave", subject, _act("coordinator", "2021-04-12"))["id"]
        )
        if name != "Vejle":
            engine.advance(db, tid, "start_rollout", _act("municipality-pl", "2021-05-10"))
        if name == "Aarhus":
            engine.advance(db, tid, "go_live", _act("municipality-pl", "2021-05-24"))
    report = reports.waves(db, today=date(2021, 5, 25))
    b1 = next(w for w in report["waves"] if w["code"] == "B1")
    assert b1["by_step"] == {"Forberedelse": 1, "Udrulning": 1, "Idriftsat": 1}
    assert b1["municipalities"] == 3 and b1["overdue"] == 2
    assert max(len(line) for line in reports.waves_text(report).splitlines()) <= 80
