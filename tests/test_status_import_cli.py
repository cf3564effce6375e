"""``onboarding import status`` through the CLI: one picture from any export, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from tests import deckdata
from tests.support import snapshot


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The deck database from the original files, and its rollout report (built once)."""
    runner = CliRunner()
    path = deckdata.build(runner, tmp_path_factory.mktemp("ref") / "ref.db")
    return path, deckdata.rollout_json(runner, path, "--as-of", "2021-03-31")


def _variant(kind: str, src: Path, dst: Path) -> Path:
    rows = deckdata.read_rows(src)
    if kind == "shuffled":
        return deckdata.shuffled(src, dst)
    if kind == "cp1252-semicolon":
        return deckdata.write_rows(dst, rows, encoding="cp1252", delimiter=";")
    if kind == "utf8-bom":
        return deckdata.write_rows(dst, rows, bom=True)
    return src


def _april(tmp_path: Path) -> Path:
    """Two good rows of April: one connection goes live, one starts."""
    rows = [
        ["municipality", "system", "status", "date"],
        ["Lyngby-Taarbæk", "Momentum", "I drift", "2021-04-19"],
        ["Esbjerg", "Momentum", "Endnu ikke aftalt", "2021-04-19"],
    ]
    return deckdata.write_rows(tmp_path / "april.csv", rows)


@pytest.mark.parametrize("kind", ["shuffled", "cp1252-semicolon", "utf8-bom"])
def test_import_status_variants_give_the_same_result(
    runner: CliRunner, tmp_path: Path, reference: tuple[Path, object], kind: str
) -> None:
    """Shuffled, Windows-1252 with semicolons or UTF-8 with BOM: same report, same history."""
    ref_path, ref_report = reference
    contracts = _variant(kind, deckdata.CONTRACTS, tmp_path / f"contracts-{kind}.csv")
    status = _variant(kind, deckdata.MARCH, tmp_path / f"status-{kind}.csv")
    if kind == "cp1252-semicolon":
        assert b";" in status.read_bytes() and "Tårnby".encode("cp1252") in status.read_bytes()
    path = deckdata.build(runner, tmp_path / "v.db", contracts, status)
    assert deckdata.rollout_json(runner, path, "--as-of", "2021-03-31") == ref_report
    # Rows apply in a canonical order, so even the tracks and their history are the same.
    assert deckdata.tracks_and_history(path) == deckdata.tracks_and_history(ref_path)


def test_import_status_twice_changes_nothing(
    runner: CliRunner, tmp_path: Path, reference: tuple[Path, object]
) -> None:
    """Importing the same status file again: no new track, no new history, same report."""
    ref_path, ref_report = reference
    path = deckdata.copy_db(ref_path, tmp_path / "twice.db")
    before = deckdata.tracks_and_history(path)
    result = deckdata.invoke(runner, path, "import", "status", str(deckdata.MARCH), "--json")
    data = json.loads(result.stdout)
    assert (data["tracks_started"], data["tracks_moved"], data["steps"]) == (0, 0, 0)
    assert deckdata.tracks_and_history(path) == before
    assert deckdata.rollout_json(runner, path, "--as-of", "2021-03-31") == ref_report


BAD_ROWS = {
    "unknown-municipality": (["Atlantis", "Momentum", "Aftalt", "2021-04-20"], "municipality"),
    "unknown-status": (["Vejle", "Momentum", "halvvejs", "2021-04-20"], "status"),
    # København's Momentum connection is live since 1 March: a later report of Aftalt.
    "backwards": (["København", "Momentum", "Aftalt", "2021-04-20"], "status"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_import_status_one_bad_row_exits_2_naming_it_and_applies_nothing(
    runner: CliRunner, tmp_path: Path, reference: tuple[Path, object], kind: str
) -> None:
    """One bad row among good ones: exit 2 naming FILE:LINE and column; the database unchanged."""
    path = deckdata.copy_db(reference[0], tmp_path / "bad.db")
    good = [
        # Moves that would apply on their own: agreed ones going live, a new connection.
        ["Lyngby-Taarbæk", "Momentum", "I drift", "2021-04-19"],
        ["Rødovre", "Momentum", "I drift", "2021-04-19"],
        ["Brøndby", "Acadre", "I drift", "2021-04-19"],
    ]
    bad, column = BAD_ROWS[kind]
    rows = [["municipality", "system", "status", "date"], *good[:2], bad, *good[2:]]
    status = deckdata.write_rows(tmp_path / "april.csv", rows)
    before = snapshot(path)
    result = runner.invoke(cli.cli, ["import", "status", str(status), "--db", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{status}:4: column {column}: " in result.output
    assert "Traceback" not in result.output
    assert snapshot(path) == before


def test_import_status_good_rows_apply_and_print_summary(
    runner: CliRunner, tmp_path: Path, reference: tuple[Path, object]
) -> None:
    """The same good rows alone apply: the summary line counts them; --dry-run writes nothing."""
    path = deckdata.copy_db(reference[0], tmp_path / "good.db")
    status = _april(tmp_path)
    before = snapshot(path)
    dry = deckdata.invoke(runner, path, "import", "status", str(status), "--dry-run")
    assert "dry run, nothing written" in dry.stdout and snapshot(path) == before
    out = deckdata.invoke(runner, path, "import", "status", str(status)).stdout
    assert out.startswith(f"{status}: 2 rows, started 1 track, moved 1 track (5 steps)")
    assert all(len(line) <= 80 for line in out.splitlines()[1:])


def test_import_status_summary_is_said_in_danish(
    runner: CliRunner,
    tmp_path: Path,
    reference: tuple[Path, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the default language the summary line is Danish, plurals included; English is as
    it always was."""
    path = deckdata.copy_db(reference[0], tmp_path / "good.db")
    status = _april(tmp_path)
    monkeypatch.setenv("ONBOARDING_LANG", "da")
    dry = deckdata.invoke(runner, path, "import", "status", str(status), "--dry-run").stdout
    assert dry.startswith(
        f"{status}: prøvekørsel, intet skrevet: 2 rækker, ville starte 1 spor,"
        " flyttede 1 spor (5 trin), 0 uændrede"
    ), dry
