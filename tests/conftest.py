"""Fixtures shared by every test module: a CLI runner and an initialised database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from onboarding.db import open_existing


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def db_path(tmp_path: Path, runner: CliRunner) -> Path:
    """A real database file after ``onboarding init`` (schema applied, shipped data seeded)."""
    path = tmp_path / "onboarding.db"
    result = runner.invoke(cli.cli, ["init", "--db", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    """An open connection to ``db_path``, closed after the test."""
    database = open_existing(db_path)
    yield database
    database.close()
