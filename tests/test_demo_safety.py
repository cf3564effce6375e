"""`onboarding demo` replaces only its own output, never a database it did not create.

Through the real CLI on real files: a folder holding another database (ours, another
application's, or not a database at all) makes the demo stop with one line and exit 2, the file
byte-identical and nothing added; ``--force`` moves it to ``replaced-<time>/`` and builds; a rerun
in the demo's own folder replaces it and says so; with no ``--dir`` the demo never touches
``./onboarding.db``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import cli
from onboarding.demo import is_demo_database


def _demo(*args: str) -> Result:
    return CliRunner().invoke(cli.cli, ["demo", *args], env={"ONBOARDING_NOW": None})


def _real_database(path: Path) -> None:
    """A database of this tool with work in it (what a coordinator stands to lose)."""
    runner = CliRunner()
    for args in (
        ["init"],
        ["track", "start", "connection", "--municipality", "Aarhus", "--system", "Momentum"],
    ):
        result = runner.invoke(cli.cli, [*args, "--db", str(path)], env={"ONBOARDING_ACTOR": "pl"})
        assert result.exit_code == 0, result.output


def _other_application(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER)")
    conn.execute("INSERT INTO invoices (amount) VALUES (100)")
    conn.commit()
    conn.close()


def _text_file(path: Path) -> None:
    path.write_text("not a database\n", encoding="utf-8")


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "make", [_real_database, _other_application, _text_file], ids=["ours", "other-app", "text"]
)
def test_demo_safety_refuses_a_folder_holding_a_database_it_did_not_create(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    """demo --dir D with a foreign D/onboarding.db: exit 2, one line naming the file, --dir and
    --force; every file in D byte-identical and nothing added (no -wal, no -shm)."""
    make(tmp_path / "onboarding.db")
    before = _listing(tmp_path)
    result = _demo("--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"{tmp_path / 'onboarding.db'} is not a demo database" in line
    assert "--dir" in line and "--force" in line
    assert _listing(tmp_path) == before


def test_demo_safety_refuses_its_file_names_without_its_database(tmp_path: Path) -> None:
    """A data/ folder (or an outbox, a report) with no demo database beside it is not the
    demo's either: refused, left as it was."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "budget.csv").write_text("mine\n", encoding="utf-8")
    before = _listing(tmp_path)
    result = _demo("--dir", str(tmp_path))
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert "holds data/ but no demo database" in line and "--force" in line
    assert _listing(tmp_path) == before


def test_demo_safety_force_keeps_a_timestamped_copy_and_builds(tmp_path: Path) -> None:
    """--force moves the foreign database to D/replaced-<time>/ (byte-identical), says where,
    and builds the demo in D."""
    _real_database(tmp_path / "onboarding.db")
    original = (tmp_path / "onboarding.db").read_bytes()
    result = _demo("--dir", str(tmp_path), "--force")
    assert result.exit_code == 0, result.output
    [kept] = tmp_path.glob("replaced-*")
    assert (kept / "onboarding.db").read_bytes() == original
    assert f"Kept what was in {tmp_path}/ (onboarding.db) in {kept}/" in result.stdout
    assert is_demo_database(tmp_path / "onboarding.db")
    assert (tmp_path / "rollout-2021-06-30.html").is_file()


def test_demo_safety_default_folder_runs_twice_and_spares_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`onboarding demo` with no --dir, from a folder holding onboarding.db, builds in
    ./demo-output/ and leaves ./onboarding.db alone; run again, it replaces its own output and
    says what it replaced."""
    monkeypatch.chdir(tmp_path)
    _real_database(tmp_path / "onboarding.db")
    original = (tmp_path / "onboarding.db").read_bytes()
    first = _demo()
    assert first.exit_code == 0, first.output
    assert (tmp_path / "onboarding.db").read_bytes() == original
    assert is_demo_database(tmp_path / "demo-output" / "onboarding.db")
    assert "Replacing" not in first.stdout
    second = _demo()
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith(
        "Replacing the earlier demo in demo-output/: onboarding.db, onboarding-outbox/, data/, "
        "rollout-2021-06-30.html\n"
    )
    assert (tmp_path / "onboarding.db").read_bytes() == original
    assert not list((tmp_path / "demo-output").glob("replaced-*"))
