"""``onboarding registry import`` and ``onboarding registry list`` against a real database file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlite_utils import Database

import cli
from tests.support import snapshot

CONTRACTS = (
    "municipality,system,contract\n"
    "København,Momentum,ski-02.19-2019\n"
    "Frederiksberg,kmd nova esdh,ski-02.19-2014\n"
    "Ærø,Fasit,unknown\n"
)


def _run(runner: CliRunner, db_path: Path, *args: str) -> Result:
    return runner.invoke(cli.cli, [*args, "--db", str(db_path)])


def _contracts(db_path: Path) -> list[dict[str, object]]:
    db = Database(db_path)
    try:
        return list(db["contracts"].rows)
    finally:
        db.close()


def test_registry_init_seeds_98_municipalities(runner: CliRunner, db_path: Path) -> None:
    """After init the database holds all 98 municipalities."""
    db = Database(db_path)
    assert db["municipalities"].count == 98
    db.close()


def test_registry_list_municipalities_json_is_list_of_objects(
    runner: CliRunner, db_path: Path
) -> None:
    """--json prints a JSON list with one object per municipality."""
    result = _run(runner, db_path, "registry", "list", "municipalities", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 98
    assert rows[0] == {
        "code": 101,
        "name": "København",
        "region": "Region Hovedstaden",
        "population": 632340,
    }


def test_registry_list_systems_table(runner: CliRunner, db_path: Path) -> None:
    """Without --json a list is an aligned table with a header line."""
    result = _run(runner, db_path, "registry", "list", "systems")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "category", "vendor", "name"]
    assert any("Momentum" in line and "KMD" in line for line in lines[2:])


def test_registry_list_empty_kind(runner: CliRunner, db_path: Path) -> None:
    """A kind with no rows says so instead of printing an empty table."""
    result = _run(runner, db_path, "registry", "list", "contacts")
    assert result.exit_code == 0
    assert result.stdout.strip() == "(none)"


def test_registry_import_contracts_then_reimport_changes_nothing(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """An import reports its counts; importing the same file again leaves the database as it was."""
    path = tmp_path / "contracts.csv"
    path.write_text(CONTRACTS, encoding="utf-8")
    first = _run(runner, db_path, "registry", "import", "contracts", str(path))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == f"{path}: 3 inserted, 0 updated, 0 unchanged"
    before = snapshot(db_path)
    again = _run(runner, db_path, "registry", "import", "contracts", str(path))
    assert again.stdout.strip() == f"{path}: 0 inserted, 0 updated, 3 unchanged"
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("encoding", "separator"), [("utf-8-sig", ","), ("cp1252", ";"), ("cp1252", ",")]
)
def test_registry_import_encodings_give_same_rows(
    runner: CliRunner, tmp_path: Path, encoding: str, separator: str
) -> None:
    """A BOM, Windows-1252 or semicolon file imports exactly the rows the UTF-8 file does."""
    results = []
    for name, enc, sep in (("plain", "utf-8", ","), ("variant", encoding, separator)):
        db_path = tmp_path / f"{name}.db"
        assert _run(runner, db_path, "init").exit_code == 0
        path = tmp_path / f"{name}.csv"
        path.write_bytes(CONTRACTS.replace(",", sep).encode(enc))
        result = _run(runner, db_path, "registry", "import", "contracts", str(path))
        assert result.exit_code == 0, result.output
        results.append(_contracts(db_path))
    assert results[0] == results[1]
    assert len(results[0]) == 3


def test_registry_import_bad_row_exits_2_and_changes_nothing(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A bad row after a multi-line cell: exit 2, one located line on stderr, database untouched."""
    path = tmp_path / "contacts.csv"
    path.write_text(
        "role,name,email,municipality\n"
        'coordinator,"Kim\nKoordinator",kim@kombit.dk,\n'
        "municipality-pl,Pia,pia@kk.dk,Atlantis\n",
        encoding="utf-8",
    )
    before = snapshot(db_path)
    result = _run(runner, db_path, "registry", "import", "contacts", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {path}:4: column municipality: unknown municipality")
    assert snapshot(db_path) == before


def test_registry_import_missing_column_exits_2(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A file without a required column is refused at line 1."""
    path = tmp_path / "systems.csv"
    path.write_text("vendor,system\nAcme,One\n", encoding="utf-8")
    result = _run(runner, db_path, "registry", "import", "systems", str(path))
    assert result.exit_code == 2
    assert f"{path}:1: column category: missing" in result.stderr


def test_registry_import_systems_and_municipalities(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Systems and municipalities import through the same command."""
    systems = tmp_path / "systems.csv"
    systems.write_text("vendor;system;category\nAcme;Plads;Pladsanvisning\n", encoding="utf-8")
    result = _run(runner, db_path, "registry", "import", "systems", str(systems))
    counts = "1 inserted, 0 updated, 0 unchanged, 1 vendors inserted"
    assert result.stdout.strip() == f"{systems}: {counts}"
    towns = tmp_path / "m.csv"
    towns.write_text("code,name,population\n101,København,700000\n", encoding="utf-8")
    result = _run(runner, db_path, "registry", "import", "municipalities", str(towns))
    assert result.exit_code == 0, result.output
    db = Database(db_path)
    assert db.table("municipalities").get(101)["population"] == 700000
    assert db.table("systems").count == 12
    db.close()


def test_registry_list_contracts_json_has_scenario(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Listed contracts carry the municipality name, system label and payment scenario."""
    path = tmp_path / "contracts.csv"
    path.write_text(CONTRACTS, encoding="utf-8")
    _run(runner, db_path, "registry", "import", "contracts", str(path))
    rows = json.loads(_run(runner, db_path, "registry", "list", "contracts", "--json").stdout)
    assert {(r["municipality"], r["system"]) for r in rows} == {
        ("København", "KMD Momentum"),
        ("Frederiksberg", "KMD Nova ESDH"),
        ("Ærø", "Schultz Fasit"),
    }
    assert all(r["payment_scenario"] for r in rows)


def test_registry_needs_initialised_database(runner: CliRunner, tmp_path: Path) -> None:
    """Listing from a database that was never initialised is a user error."""
    result = _run(runner, tmp_path / "none.db", "registry", "list", "vendors")
    assert result.exit_code == 2
    assert "run 'onboarding init'" in result.stderr


def test_registry_unknown_kind_is_usage_error(runner: CliRunner, db_path: Path) -> None:
    """KIND must be one of the listed kinds."""
    result = _run(runner, db_path, "registry", "list", "planets")
    assert result.exit_code == 2
    assert "planets" in result.stderr


def test_registry_commands_document_an_example(runner: CliRunner) -> None:
    """Every registry command's help shows an example."""
    for args in (["registry"], ["registry", "import"], ["registry", "list"]):
        result = runner.invoke(cli.cli, [*args, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.stdout
