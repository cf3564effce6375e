"""Fixtures shared by every test module: a CLI runner and an initialised database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from onboarding.db import open_existing


@pytest.fixture(autouse=True)
def english_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command line and the HTML report speak Danish unless told otherwise; the suite's
    assertions on their wording are in English, so every test runs with ONBOARDING_LANG=en
    (tests of the Danish output, tests/test_danish_throughout.py, set it themselves). The web
    page's language is the session's and does not read it."""
    from onboarding import i18n

    monkeypatch.setenv("ONBOARDING_LANG", "en")
    i18n.choose(None)
    yield
    # '--lang' (or its env) chosen by an in-process CLI run is process-wide: forget it, so a
    # later test (or a module-scoped fixture) does not inherit this test's language.
    i18n.choose(None)


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


# --- notifications: a real SMTP server on loopback ------------------------------------------

from tests.mailserver import MailServer  # noqa: E402  (appended section: kept together)


@pytest.fixture
def smtp_server() -> Iterator[MailServer]:
    """An aiosmtpd server on 127.0.0.1 (a free port), accepting until told otherwise."""
    server = MailServer()
    yield server
    server.stop()


@pytest.fixture
def no_mail_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No mail settings from the developer's environment leak into a test."""
    for name in (
        "ONBOARDING_SMTP_HOST",
        "ONBOARDING_SMTP_PORT",
        "ONBOARDING_SMTP_SECURITY",
        "ONBOARDING_SMTP_USER",
        "ONBOARDING_SMTP_PASSWORD",
        "ONBOARDING_MAIL_FROM",
        "ONBOARDING_CONFIG",
        "ONBOARDING_NOW",
    ):
        monkeypatch.delenv(name, raising=False)
