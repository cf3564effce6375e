"""Mail settings: config file, environment on top, .eml default, refusals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from notifications.config import load_config
from onboarding.errors import InputError

pytestmark = pytest.mark.usefixtures("no_mail_env")


def _file(folder: Path, text: str) -> Path:
    path = folder / "onboarding.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_nothing_configured_writes_eml_next_to_the_database(tmp_path: Path) -> None:
    """No file, no environment: no SMTP, .eml files in <db stem>-outbox beside the database."""
    config = load_config(tmp_path / "kombit.db", env={})
    assert config.smtp is None
    assert config.outbox_dir == tmp_path / "kombit-outbox"
    assert config.language == "da" and config.digest is False
    assert "eml" in config.describe()


def test_config_file_next_to_the_database_is_read(tmp_path: Path) -> None:
    """onboarding.toml beside the database sets SMTP, sender, language, digest, delivery."""
    _file(tmp_path, """
[smtp]
host = "smtp.kombit.test"
security = "tls"
user = "onboarding"
password = "from-file"
[mail]
from = "KOMBIT <onboarding@kombit.test>"
language = "en"
digest = true
templates = "tpl"
[delivery]
max_attempts = 3
backoff_seconds = 60
""")
    config = load_config(tmp_path / "onboarding.db", env={})
    assert config.smtp is not None
    assert (config.smtp.host, config.smtp.port, config.smtp.security) == (
        "smtp.kombit.test", 465, "tls"
    )
    assert config.smtp.password == "from-file"
    assert "from-file" not in repr(config)  # the password never shows in logs or errors
    assert config.envelope_from == "onboarding@kombit.test" and config.domain == "kombit.test"
    assert config.language == "en" and config.digest is True
    assert config.templates_dir == tmp_path / "tpl"
    assert config.max_attempts == 3
    assert [config.backoff(n) for n in (1, 2, 3)] == [
        timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)
    ]


def test_config_environment_wins_over_the_file(tmp_path: Path) -> None:
    """Every ONBOARDING_SMTP_* variable and ONBOARDING_MAIL_FROM overrides the file."""
    _file(tmp_path, """
[smtp]
host = "file-host"
port = 2525
security = "tls"
user = "file-user"
password = "file-pass"
[mail]
from = "file@kombit.test"
""")
    env = {
        "ONBOARDING_SMTP_HOST": "env-host",
        "ONBOARDING_SMTP_PORT": "587",
        "ONBOARDING_SMTP_SECURITY": "starttls",
        "ONBOARDING_SMTP_USER": "env-user",
        "ONBOARDING_SMTP_PASSWORD": "env-pass",
        "ONBOARDING_MAIL_FROM": "env@kombit.test",
    }
    config = load_config(tmp_path / "onboarding.db", env=env)
    assert config.smtp is not None
    s = config.smtp
    assert (s.host, s.port, s.security, s.user, s.password) == (
        "env-host", 587, "starttls", "env-user", "env-pass"
    )
    assert config.mail_from == "env@kombit.test"


def test_config_onboarding_config_names_the_file(tmp_path: Path) -> None:
    """$ONBOARDING_CONFIG points at a file elsewhere; a missing one is an error."""
    other = tmp_path / "etc"
    other.mkdir()
    path = _file(other, '[mail]\noutbox_dir = "mail"\n')
    config = load_config(tmp_path / "onboarding.db", env={"ONBOARDING_CONFIG": str(path)})
    assert config.outbox_dir == other / "mail"
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "onboarding.db", env={"ONBOARDING_CONFIG": str(tmp_path / "x")})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ONBOARDING_SMTP_SECURITY": "ssl"}, "must be one of none, starttls, tls"),
        ({"ONBOARDING_SMTP_PORT": "smtp"}, "not a whole number"),
        ({"ONBOARDING_MAIL_FROM": ""}, "no sender"),
        ({"ONBOARDING_MAIL_FROM": "not an address"}, "not an email address"),
        (
            {"ONBOARDING_SMTP_SECURITY": "none", "ONBOARDING_SMTP_USER": "u"},
            "password would cross the network in clear text",
        ),
    ],
)
def test_config_refuses_bad_settings(tmp_path: Path, env: dict[str, str], message: str) -> None:
    """Bad security, port, sender, or a login over an unencrypted remote link is refused."""
    base = {"ONBOARDING_SMTP_HOST": "smtp.kombit.test", "ONBOARDING_MAIL_FROM": "a@kombit.test"}
    with pytest.raises(InputError, match=message):
        load_config(tmp_path / "onboarding.db", env={**base, **env})


def test_config_refuses_unknown_sections_and_keys(tmp_path: Path) -> None:
    """A misspelt key is reported, not ignored."""
    _file(tmp_path, '[smtp]\nhots = "x"\n')
    with pytest.raises(InputError, match="has no key 'hots'"):
        load_config(tmp_path / "onboarding.db", env={})
    _file(tmp_path, '[smpt]\nhost = "x"\n')
    with pytest.raises(InputError, match=r"unknown section \[smpt\]"):
        load_config(tmp_path / "onboarding.db", env={})
