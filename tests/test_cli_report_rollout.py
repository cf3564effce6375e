"""``onboarding report rollout``: the deck's table from the tool's own data, as of any date."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from tests import deckdata


@pytest.fixture(scope="module")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """December's status imported, then March's (the later import): built once."""
    path = tmp_path_factory.mktemp("rollout") / "history.db"
    return deckdata.build(
        CliRunner(), path, deckdata.CONTRACTS, deckdata.DECEMBER_FILE, deckdata.MARCH
    )


def _by_category(report: dict[str, object]) -> dict[str, dict[str, object]]:
    cats = report["categories"]
    assert isinstance(cats, list)
    return {c["category"]: c for c in cats}


def test_report_rollout_json_reproduces_the_deck_table(runner: CliRunner, tmp_path: Path) -> None:
    """Every row of the deck's Jobcenter and ESDH table exactly; totals are sums of the rows."""
    path = deckdata.build(runner, tmp_path / "deck.db")
    report = deckdata.rollout_json(runner, path)  # as of today: nothing happened since March
    cats = _by_category(report)
    assert list(cats) == ["Jobcenter", "ESDH"]
    expected = deckdata.expected_rows(deckdata.DECK)
    for name, cat in cats.items():
        assert cat["rows"] == expected[name]
        rows = expected[name]
        assert cat["total"] == {k: sum(r[k] for r in rows) for k in deckdata.KEYS}
    # Not the deck's printed 19 / 35 / 61 / 119: the tool's totals add up.
    assert cats["ESDH"]["total"] == {
        "in_operation": 19,
        "agreed": 42,
        "not_agreed": 58,
        "total": 119,
    }
    assert cats["Jobcenter"]["total"] == {
        "in_operation": 16,
        "agreed": 30,
        "not_agreed": 52,
        "total": 98,
    }
    assert cats["ESDH"]["distinct_municipalities"] == 98
    assert cats["Jobcenter"]["distinct_municipalities"] == 98
    assert "98 distinct municipalities" in str(cats["ESDH"]["note"])
    assert "more than one ESDH" in str(cats["ESDH"]["note"])
    assert cats["Jobcenter"]["note"] is None


def test_report_rollout_as_of_shows_the_earlier_picture_after_later_imports(
    runner: CliRunner, history_db: Path
) -> None:
    """After March's import, --as-of 31-12-2020 still gives December's table."""
    december = _by_category(deckdata.rollout_json(runner, history_db, "--as-of", "2020-12-31"))
    expected = deckdata.expected_rows(deckdata.DECEMBER)
    assert {c: v["rows"] for c, v in december.items()} == expected
    march = _by_category(deckdata.rollout_json(runner, history_db, "--as-of", "31-03-2021"))
    assert {c: v["rows"] for c, v in march.items()} == deckdata.expected_rows(deckdata.DECK)


def test_report_rollout_as_of_before_a_contract_was_reported_leaves_it_out(
    runner: CliRunner, history_db: Path
) -> None:
    """Contracts the import recorded count from the row's date: not in mid-2020's picture."""
    report = _by_category(deckdata.rollout_json(runner, history_db, "--as-of", "2020-06-01"))
    rows = report["Jobcenter"]["rows"]
    assert isinstance(rows, list)
    # Three Momentum and two Fasit contracts were recorded by December's import.
    assert [(r["system"], r["not_agreed"], r["total"]) for r in rows] == [
        ("Momentum", 40, 40),
        ("Fasit", 53, 53),
    ]


def test_report_rollout_table_fits_80_columns_with_the_note(
    runner: CliRunner, history_db: Path
) -> None:
    """The printed table is the deck's layout, within 80 columns, with the distinct note."""
    out = deckdata.invoke(runner, history_db, "report", "rollout", "--as-of", "2021-03-31").stdout
    assert "status per 31 Mar 2021" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    lines = out.splitlines()
    assert any(line.split() == ["Total", "19", "42", "58", "119"] for line in lines)
    assert any(line.split()[-5:] == ["Momentum", "12", "22", "9", "43"] for line in lines)
    assert "119 uses across 98 distinct municipalities" in " ".join(lines)


def test_report_rollout_csv_has_system_and_total_lines(runner: CliRunner, history_db: Path) -> None:
    """--format csv: one line per solution and one total per category."""
    out = deckdata.invoke(
        runner, history_db, "report", "rollout", "--as-of", "2021-03-31", "--format", "csv"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 9
    total = next(r for r in rows if r["category"] == "ESDH" and r["row"] == "total")
    assert (total["in_operation"], total["agreed"], total["not_agreed"], total["total"]) == (
        "19",
        "42",
        "58",
        "119",
    )
    assert total["distinct_municipalities"] == "98"


def test_report_rollout_category_filter(runner: CliRunner, history_db: Path) -> None:
    """--category keeps one category (any letter case); an unknown one exits 2."""
    report = deckdata.rollout_json(runner, history_db, "--category", "esdh")
    assert [c["category"] for c in report["categories"]] == ["ESDH"]
    bad = runner.invoke(
        cli.cli, ["report", "rollout", "--category", "CRM", "--db", str(history_db)]
    )
    assert bad.exit_code == 2 and "unknown category 'CRM'" in bad.output


def test_report_rollout_counts_untracked_and_early_connections_as_not_agreed(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A contract with no track, or a track in an Endnu ikke aftalt step, is not agreed."""
    contracts = tmp_path / "c.csv"
    contracts.write_text(
        "municipality,system,contract\nAarhus,Fasit,unknown\nOdense,Fasit,eu-tender\n"
        "Vejle,Fasit,ski-02.19-2019\n"
    )
    deckdata.invoke(runner, db_path, "registry", "import", "contracts", str(contracts))
    status = tmp_path / "s.csv"
    status.write_text(
        "municipality,system,status,date,kind\n"
        "Vejle,Fasit,ready,2021-01-04,system-readiness\n"
        "Odense,Fasit,service_agreements,2021-02-01,\n"
        "Vejle,Fasit,I drift,2021-02-01,\n"
    )
    deckdata.invoke(runner, db_path, "import", "status", str(status))
    report = deckdata.rollout_json(runner, db_path, "--as-of", "2021-03-31")
    assert report["categories"][0]["rows"] == [
        {
            "vendor": "Schultz",
            "system": "Fasit",
            "in_operation": 1,
            "agreed": 0,
            "not_agreed": 2,
            "total": 3,
        }
    ]


def test_report_rollout_html_escapes_names_and_is_self_contained(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """--format html -o FILE: autoescaped names, no script and no outside reference."""
    systems = tmp_path / "s.csv"
    systems.write_text('vendor,system,category\n"Evil <b>Corp</b>",<script>x</script>,ESDH\n')
    deckdata.invoke(runner, db_path, "registry", "import", "systems", str(systems))
    contracts = tmp_path / "c.csv"
    contracts.write_text("municipality,system,contract\nAarhus,<script>x</script>,unknown\n")
    deckdata.invoke(runner, db_path, "registry", "import", "contracts", str(contracts))
    out = tmp_path / "r.html"
    result = deckdata.invoke(
        runner, db_path, "report", "rollout", "--format", "html", "-o", str(out)
    )
    assert result.stdout == f"wrote {out}\n"
    html = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script" not in html
    assert "Evil &lt;b&gt;Corp&lt;/b&gt;" in html
    for outside in ("http://", "https://", " src=", "<link", "@import", "url("):
        assert outside not in html
    assert '<svg id="rollout-chart"' in html


def test_report_rollout_notes_tracks_without_a_contract(runner: CliRunner, db_path: Path) -> None:
    """A connection track with no contract on record is not counted, and the report says so."""
    deckdata.invoke(
        runner,
        db_path,
        "track",
        "start", "--quiet",
        "connection",
        "--municipality",
        "Aarhus",
        "--system",
        "Fasit",
        "--at",
        "2021-03-01",
    )
    report = deckdata.rollout_json(runner, db_path, "--as-of", "2021-03-31")
    assert report["categories"] == []
    assert report["notes"] and report["notes"][0].startswith("1 connection track is for")
