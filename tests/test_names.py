"""Names as people write them: municipality names with a suffix, in any case or spelling,
former names and exonyms; CSV headers in Danish and English (issue 16)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from onboarding import registry
from onboarding.csvio import read_csv_all
from tests.support import ok, ok_json, run, snapshot

DATA = Path(registry.__file__).parent / "data"


def _start(runner: CliRunner, db_path: Path, municipality: str) -> int:
    data = ok_json(
        runner,
        db_path,
        "track",
        "start",
        "connection",
        "--municipality",
        municipality,
        "--system",
        "Momentum",
        "--at",
        "2021-04-01",
    )
    return int(data["id"])


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("Århus", 751),
        ("aarhus kommune", 751),
        ("AARHUS", 751),
        ("Aarhus Kommune", 751),
        ("Copenhagen", 101),
        ("Kjøbenhavn", 101),
        ("Københavns Kommune", 101),
        ("Elsinore", 217),
        ("Brønderslev-Dronninglund", 810),
        ("Bornholms Regionskommune", 400),
        ("Hoeje Taastrup", 169),
        ("Koge", 259),
    ],
)
def test_names_municipality_as_people_write_it(
    runner: CliRunner, db_path: Path, written: str, code: int
) -> None:
    """'Århus', 'aarhus kommune', 'AARHUS', 'Copenhagen' (and more) name their municipality on
    the command line: to start a track, in a list filter and in --where."""
    tid = _start(runner, db_path, written)
    listed = ok_json(runner, db_path, "track", "list", "--municipality", written)
    assert [r["id"] for r in listed] == [tid]
    (row,) = ok_json(runner, db_path, "track", "list", "--municipality", str(code))
    assert row["id"] == tid
    where = f"municipality='{written}' definition=connection"
    result = ok(
        runner,
        db_path,
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


def test_names_exact_name_still_wins(runner: CliRunner, db_path: Path, tmp_path: Path) -> None:
    """A municipality actually named like an exonym is found by it, not the exonym's city."""
    path = tmp_path / "m.csv"
    path.write_text("code,name\n999,Copenhagen\n", encoding="utf-8")
    ok(runner, db_path, "registry", "import", "municipalities", str(path))
    tid = _start(runner, db_path, "Copenhagen")
    (row,) = ok_json(runner, db_path, "track", "list", "--municipality", "999")
    assert row["id"] == tid


def test_names_ambiguous_name_is_refused_with_candidates(
    runner: CliRunner, db_path: Path
) -> None:
    """'Frederiks' could be three municipalities: refused (exit 2) naming all three."""
    before = snapshot(db_path)
    result = run(runner, db_path, "track", "start", "connection", "--municipality", "Frederiks",
                 "--system", "Momentum")
    assert result.exit_code == 2
    assert "Frederiksberg (147), Frederikshavn (813), Frederikssund (250)" in result.stderr
    assert snapshot(db_path) == before


def test_names_shipped_table_names_real_municipalities() -> None:
    """Every former name or exonym points at a shipped municipality by code and name, says
    where it comes from, and is not also another municipality's name."""
    optional = ["region", "population", "population_year"]
    shipped = {
        int(r["code"]): r["name"]
        for _, r in read_csv_all(DATA / "municipalities.csv", ["code", "name"], optional)
    }
    rows = read_csv_all(
        DATA / "municipality_names.csv", ["name", "code", "municipality", "kind", "source"]
    )
    assert len(rows) >= 10
    names = {k: code for code, name in shipped.items() for k in registry._name_keys(name)}
    for line, row in rows:
        assert shipped[int(row["code"])] == row["municipality"], line
        assert row["source"] and row["kind"], line
        for key in registry._name_keys(row["name"]):
            assert names.get(key, int(row["code"])) == int(row["code"]), line


def test_names_every_municipality_resolves_by_its_folded_spellings(
    runner: CliRunner, db_path: Path
) -> None:
    """No two shipped names fold to one key: each resolves to itself upper-cased, with a
    'Kommune' suffix, and with æ/ø/å spelled ae/oe/aa or typed as a/o."""
    from onboarding.db import open_existing

    db = open_existing(db_path)
    try:
        for m in registry.list_municipalities(db):
            name = str(m["name"])
            spelled = name.replace("æ", "ae").replace("ø", "oe").replace("å", "aa")
            plain = name.replace("æ", "a").replace("ø", "o").replace("å", "a").replace("Æ", "A")
            for written in (name.upper(), f"{name} Kommune", spelled, plain):
                assert registry.resolve_municipality(db, written)["code"] == m["code"], written
    finally:
        db.close()


def _write(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, delimiter=";").writerows(rows)
    return path


def test_names_status_file_with_danish_headers_imports(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A status file as a municipality writes it in a Danish Excel (Windows-1252, semicolons,
    'Kommune;Fagsystem;Status;Dato' and a field by its label) imports like the English one."""
    danish = _write(
        tmp_path / "status-da.csv",
        [
            ["Kommune", "Fagsystem", "Status", "Dato", "Type", "Aftalt tilslutningsdato",
             "Bemærkning"],
            ["Århus Kommune", "KMD Momentum", "service_agreements", "15-03-2021", "", "01-09-2021",
             "aftalt på møde"],
            ["Copenhagen", "Momentum", "Endnu ikke aftalt", "15-03-2021", "connection", "", ""],
        ],
        encoding="cp1252",
    )
    data = ok_json(runner, db_path, "import", "status", str(danish))
    assert (data["rows"], data["tracks_started"]) == (2, 2)
    tracks = {r["subject"].split(" / ")[0]: r for r in ok_json(runner, db_path, "track", "list")}
    assert tracks["Aarhus"]["state"] == "service_agreements"
    assert tracks["København"]["state"] == "date_agreement"
    show = ok_json(runner, db_path, "track", "show", str(tracks["Aarhus"]["id"]))
    assert show["fields"]["connection_date"] == "2021-09-01"
    history = ok_json(runner, db_path, "track", "history", str(tracks["Aarhus"]["id"]))
    assert history[-1]["note"] == "aftalt på møde"


def test_names_kind_column_by_its_danish_name_needs_a_known_kind(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A Danish header maps to its column, so the column's own checks apply (a bad 'Type')."""
    path = _write(
        tmp_path / "s.csv",
        [["kommune", "fagsystem", "status", "dato", "type"],
         ["Aarhus", "Momentum", "date_agreement", "2021-03-15", "tilslutning"]],
    )
    result = run(runner, db_path, "import", "status", str(path))
    assert result.exit_code == 2
    assert f"{path}:2: column kind: unknown kind 'tilslutning'" in result.stderr


def test_names_registry_imports_accept_danish_headers(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Contracts ('kommune;fagsystem;kontrakt') and contacts ('rolle;navn;e-mail;kommune;
    leverandør') import with Danish headers."""
    contracts = _write(
        tmp_path / "k.csv",
        [["Kommune", "Fagsystem", "Kontrakt"], ["Århus", "KMD Momentum", "ski-02.19-2019"]],
    )
    ok(runner, db_path, "registry", "import", "contracts", str(contracts))
    contacts = _write(
        tmp_path / "c.csv",
        [
            ["Rolle", "Navn", "E-mail", "Kommune", "Leverandør"],
            ["municipality-pl", "Lis", "lis@aarhus.dk", "Aarhus Kommune", ""],
            ["vendor", "Kim", "kim@kmd.dk", "", "KMD"],
        ],
    )
    ok(runner, db_path, "registry", "import", "contacts", str(contacts))
    listed = json.loads(ok(runner, db_path, "registry", "list", "contracts", "--json").stdout)
    assert [(r["municipality"], r["contract"]) for r in listed] == [("Aarhus", "ski-02.19-2019")]
    people = ok_json(runner, db_path, "registry", "list", "contacts")
    assert {(p["name"], p["municipality"], p["vendor"]) for p in people} == {
        ("Lis", "Aarhus", None),
        ("Kim", None, "KMD"),
    }


def test_names_one_column_under_two_names_is_refused(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """'kommune' and 'municipality' in one header are the same column twice: refused."""
    path = tmp_path / "k.csv"
    path.write_text("municipality,kommune,system,contract\n", encoding="utf-8")
    before = snapshot(db_path)
    result = run(runner, db_path, "registry", "import", "contracts", str(path))
    assert result.exit_code == 2
    assert "column kommune: repeated column (the same column as municipality)" in result.stderr
    assert snapshot(db_path) == before


def test_names_unknown_header_suggests_the_closest(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A misspelt header ('fagsytem') is refused with the column it is closest to."""
    path = tmp_path / "k.csv"
    path.write_text("kommune,fagsytem,kontrakt\n", encoding="utf-8")
    result = run(runner, db_path, "registry", "import", "contracts", str(path))
    assert result.exit_code == 2
    assert "column fagsytem: unknown column" in result.stderr
    assert "closest: system" in result.stderr
