"""Mail settings kept in the database: 'onboarding mail configure/show', precedence, the demo."""

from __future__ import annotations

import json
import sqlite3
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cli
from notifications.config import STORED, load_config, store
from onboarding import settings
from onboarding.db import open_existing
from onboarding.errors import InputError
from tests.mailserver import MailServer
from tests.support import make_ready, snapshot

pytestmark = pytest.mark.usefixtures("no_mail_env")

SENDER = "KOMBIT onboarding <onboarding@kombit.example>"


def run(runner: CliRunner, db_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    full = {"ONBOARDING_ACTOR": "tester", **(env or {})}
    return runner.invoke(cli.cli, [*args, "--db", str(db_path)], env=full)


def ok(runner: CliRunner, db_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    result = run(runner, db_path, *args, env=env)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def show(runner: CliRunner, db_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``mail show --json`` as {key: row}."""
    data = json.loads(ok(runner, db_path, "mail", "show", "--json", env=env).stdout)
    return {row["key"]: row for row in data["settings"]}


def stored_rows(db_path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT key, value, updated_at FROM settings ORDER BY key").fetchall()
    finally:
        conn.close()


def _to_sapa_request(runner: CliRunner, db_path: Path) -> int:
    """Through the CLI: a Køge connection at step 4, a sapa-owner contact; return the track."""
    make_ready(runner, db_path, "Momentum")
    csv = db_path.parent / "contacts.csv"
    csv.write_text(
        "role,name,email,municipality,vendor\nsapa-owner,Sofie Sapa,sofie@koege.dk,Køge,\n",
        encoding="utf-8",
    )
    ok(runner, db_path, "registry", "import", "contacts", str(csv))
    tid = int(
        ok(runner, db_path, "track", "start", "--quiet", "connection", "--municipality", "Køge",
           "--system", "KMD Momentum", "--at", "2021-06-01T09:00").stdout
    )
    ok(runner, db_path, "track", "advance", str(tid), "agree_date",
       "--set", "connection_date=2021-09-01", "--at", "2021-06-02T09:00")
    ok(runner, db_path, "track", "advance", str(tid), "approve_agreements",
       "--role", "agreement-admin", "--at", "2021-06-03T09:00")
    return tid


def _sapa_notice_id(runner: CliRunner, db_path: Path) -> int:
    rows = json.loads(ok(runner, db_path, "reminders", "list", "--json").stdout)
    [row] = [r for r in rows if r["notification"] == "sapa-notice"]
    return int(row["id"])


def _eml(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# --- configure and show --------------------------------------------------------------------------


def test_mail_configure_then_show_reports_each_value_from_the_database(
    runner: CliRunner, db_path: Path
) -> None:
    """Every storable setting given to 'mail configure' is shown by 'mail show' as 'database'."""
    ok(runner, db_path, "mail", "configure", "--from", SENDER,
       "--message-id-domain", "mail.kombit.example", "--language", "EN", "--digest",
       "--smtp-host", "smtp.kombit.example", "--smtp-port", "2525", "--smtp-security", "tls",
       "--smtp-user", "onboarding", "--smtp-timeout", "12.5",
       "--organisation", "Testcenter", "--signature", "Testcenter\\nTeam A")
    rows = show(runner, db_path)
    expected = {
        "mail.from": SENDER,
        "mail.message_id_domain": "mail.kombit.example",
        "mail.language": "en",
        "mail.digest": True,
        "mail.organisation": "Testcenter",
        "mail.signature": "Testcenter\nTeam A",
        "smtp.host": "smtp.kombit.example",
        "smtp.port": 2525,
        "smtp.security": "tls",
        "smtp.user": "onboarding",
        "smtp.timeout": 12.5,
    }
    assert set(expected) == set(STORED)
    assert {k: rows[k]["value"] for k in expected} == expected
    assert {rows[k]["source"] for k in expected} == {"database"}
    assert rows["smtp.password"]["value"] is None and rows["smtp.password"]["source"] == "default"
    assert rows["delivery.max_attempts"]["source"] == "default"
    text = ok(runner, db_path, "mail", "show").stdout
    assert "mail.kombit.example" in text and "[database]" in text
    assert "SMTP smtp.kombit.example:2525 (tls) as onboarding" in text


def test_mail_configure_unset_returns_a_setting_to_its_default(
    runner: CliRunner, db_path: Path
) -> None:
    """--unset KEY (key or option name) removes the stored value; the default is used again."""
    ok(runner, db_path, "mail", "configure", "--from", SENDER, "--language", "en", "--digest")
    out = ok(runner, db_path, "mail", "configure", "--unset", "mail.language",
             "--unset", "digest").stdout
    assert "mail.language: removed" in out
    rows = show(runner, db_path)
    assert rows["mail.language"] == {**rows["mail.language"], "value": "da", "source": "default"}
    assert rows["mail.digest"]["value"] is False and rows["mail.digest"]["source"] == "default"
    assert rows["mail.from"]["source"] == "database"
    assert [r[0] for r in stored_rows(db_path)] == ["mail.from"]


def test_mail_show_environment_and_config_file_win_over_the_database(
    runner: CliRunner, db_path: Path
) -> None:
    """The config file beats a stored value, the environment beats both; show names each."""
    ok(runner, db_path, "mail", "configure", "--from", SENDER, "--smtp-host", "db-host",
       "--smtp-port", "2525", "--language", "en")
    toml = db_path.parent / "onboarding.toml"
    toml.write_text('[mail]\nfrom = "file@kombit.test"\n[smtp]\nport = 2526\n', encoding="utf-8")
    rows = show(runner, db_path)
    assert rows["mail.from"]["value"] == "file@kombit.test"
    assert (rows["mail.from"]["source"], rows["mail.from"]["where"]) == ("config file", str(toml))
    assert rows["mail.from"]["stored"] == SENDER  # still stored, just not in force
    assert rows["smtp.port"]["value"] == 2526 and rows["smtp.port"]["source"] == "config file"
    assert rows["smtp.host"]["source"] == "database" and rows["mail.language"]["value"] == "en"
    env = {"ONBOARDING_MAIL_FROM": "env@kombit.test", "ONBOARDING_SMTP_PORT": "2527"}
    rows = show(runner, db_path, env=env)
    assert rows["mail.from"]["value"] == "env@kombit.test"
    assert (rows["mail.from"]["source"], rows["mail.from"]["where"]) == (
        "environment", "ONBOARDING_MAIL_FROM"
    )
    assert rows["smtp.port"]["value"] == 2527 and rows["smtp.port"]["where"] == (
        "ONBOARDING_SMTP_PORT"
    )
    assert rows["mail.message_id_domain"]["value"] == "kombit.test"  # the sender's in force
    said = ok(runner, db_path, "mail", "configure", "--language", "da", env=env).stdout
    assert said == "mail.language = da (stored)\n"
    said = ok(runner, db_path, "mail", "configure", "--from", SENDER, env=env).stdout
    assert "in force: env@kombit.test from environment ($ONBOARDING_MAIL_FROM)" in said
    ok(runner, db_path, "mail", "configure", "--language", "en")
    text = ok(runner, db_path, "mail", "show", env=env).stdout
    assert "[environment ($ONBOARDING_MAIL_FROM)]" in text
    assert f"stored mail.from = {SENDER} is overridden by environment" in text
    # The loader every command uses agrees with what show says.
    db = open_existing(db_path)
    try:
        config = load_config(db_path, env=env, db=db)
    finally:
        db.close()
    assert config.mail_from == "env@kombit.test" and config.language == "en"
    assert config.smtp is not None and (config.smtp.host, config.smtp.port) == ("db-host", 2527)


BAD = [
    (["--from", "not an address"], "--from: 'not an address' is not an email address"),
    (["--from", "A <a@b.dk>\nBcc: x@y.dk"], "--from: "),
    (["--message-id-domain", "kombit example"], "--message-id-domain: 'kombit example' is not"),
    (["--message-id-domain", "<x@y>"], "is not a domain name"),
    (["--language", "fr"], "--language: 'fr' must be one of da, en"),
    (["--smtp-port", "smtp"], "--smtp-port: 'smtp' is not a whole number"),
    (["--smtp-port", "0"], "--smtp-port: must be a whole number from 1"),
    (["--smtp-port", "70000"], "--smtp-port: 70000 must be at most 65535"),
    (["--smtp-security", "ssl"], "--smtp-security: 'ssl' must be one of none, starttls, tls"),
    (["--smtp-timeout", "-1"], "--smtp-timeout: '-1' must be a number of seconds above 0"),
    (["--smtp-timeout", "soon"], "--smtp-timeout: 'soon' is not a number of seconds"),
    (["--smtp-host", "smtp host"], "is not a host name"),
    (["--unset", "colour"], "unknown mail setting 'colour'"),
    (["--from", "a@b.dk", "--unset", "mail.from"], "mail.from: both set and unset"),
    ([], "nothing to store"),
    # Each value is fine, but together they would not work: a host needs a sender.
    (["--smtp-host", "smtp.kombit.example", "--unset", "from"], "no sender"),
    # A login in clear text to a remote server.
    (["--smtp-host", "smtp.kombit.example", "--smtp-security", "none", "--smtp-user", "u"],
     "password would cross the network in clear text"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_mail_configure_refuses_a_bad_value_with_one_line_and_changes_nothing(
    runner: CliRunner, db_path: Path, args: list[str], message: str
) -> None:
    """A bad value (checked as the config file's same key) exits 2 with one line, nothing stored."""
    ok(runner, db_path, "mail", "configure", "--from", SENDER, "--smtp-port", "2525")
    before = stored_rows(db_path)
    dump = snapshot(db_path)[1]
    result = run(runner, db_path, "mail", "configure", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert stored_rows(db_path) == before
    assert snapshot(db_path)[1] == dump


def test_mail_configure_checks_a_value_as_the_config_file_does(tmp_path: Path) -> None:
    """The same bad value in the config file is refused by the same check, naming the file."""
    db_path = tmp_path / "onboarding.db"
    toml = tmp_path / "onboarding.toml"
    for text, message in (
        ('[mail]\nmessage_id_domain = "kombit example"\n', "[mail] message_id_domain: "),
        ("[smtp]\ntimeout = -1\n", "[smtp] timeout: -1 must be a number of seconds above 0"),
        ('[mail]\nlanguage = "fr"\n', "[mail] language: 'fr' must be one of da, en"),
    ):
        toml.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message.replace("[", r"\[")) as info:
            load_config(db_path, env={})
        assert str(info.value).startswith(str(toml))


def test_mail_configure_never_stores_the_password(runner: CliRunner, db_path: Path) -> None:
    """--smtp-password is refused with the reason, the library refuses secret keys, and a
    password put in the table by hand is never used; --help says where the password goes."""
    before = stored_rows(db_path)
    result = run(runner, db_path, "mail", "configure", "--smtp-password", "hunter2")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: the SMTP password is never stored in the database: set "
        "$ONBOARDING_SMTP_PASSWORD or [smtp] password in the config file"
    )
    unset = run(runner, db_path, "mail", "configure", "--unset", "smtp.password")
    assert unset.exit_code == 2 and "not kept in the database" in unset.stderr
    assert stored_rows(db_path) == before == []
    db = open_existing(db_path)
    try:
        with pytest.raises(InputError, match="not kept in the database"):
            store(db, db_path, {"smtp.password": "hunter2"}, env={})
        with pytest.raises(InputError, match="secrets are never stored"):
            settings.update(db, {"smtp.password": "hunter2"})
        assert settings.read(db) == {}
        # Written behind our back: ignored, never sent to a server.
        db.execute("INSERT INTO settings VALUES ('smtp.password', '\"hunter2\"', '2021-01-01')")
        config = load_config(db_path, env={"ONBOARDING_SMTP_HOST": "h", "ONBOARDING_MAIL_FROM":
                                           "a@b.dk"}, db=db)
        assert config.smtp is not None and config.smtp.password is None
    finally:
        db.close()
    help_text = ok(runner, db_path, "mail", "configure", "--help").stdout
    assert "password is never stored" in " ".join(help_text.split())
    assert "--smtp-password" not in help_text


def test_mail_show_never_prints_the_password(runner: CliRunner, db_path: Path) -> None:
    """A password from the environment or the file is shown as 'set' and its source only."""
    env = {"ONBOARDING_SMTP_PASSWORD": "hunter2-env"}
    ok(runner, db_path, "mail", "configure", "--from", SENDER, "--smtp-host", "localhost")
    rows = show(runner, db_path, env=env)
    assert rows["smtp.password"]["value"] == "set"
    assert rows["smtp.password"]["where"] == "ONBOARDING_SMTP_PASSWORD"
    text = ok(runner, db_path, "mail", "show", env=env).stdout
    assert "hunter2" not in text and "set  [environment ($ONBOARDING_SMTP_PASSWORD)]" in text
    (db_path.parent / "onboarding.toml").write_text(
        '[smtp]\npassword = "hunter2-file"\n', encoding="utf-8"
    )
    shown = ok(runner, db_path, "mail", "show", "--json").stdout
    assert "hunter2" not in shown and json.loads(shown)["settings"]
    assert show(runner, db_path)["smtp.password"]["source"] == "config file"


# --- every command on the database uses what is stored ------------------------------------------


def test_mail_settings_stored_sender_and_domain_reach_preview_and_send_due(
    runner: CliRunner, db_path: Path
) -> None:
    """preview, forecast and send-due (.eml) use the stored sender, domain and language."""
    _to_sapa_request(runner, db_path)
    ok(runner, db_path, "mail", "configure", "--from", SENDER,
       "--message-id-domain", "ids.kombit.example", "--language", "en")
    row_id = _sapa_notice_id(runner, db_path)
    shown = json.loads(ok(runner, db_path, "reminders", "preview", str(row_id), "--json").stdout)
    assert shown["from"] == SENDER
    assert shown["message_id"].endswith("@ids.kombit.example>")
    assert shown["subject"].startswith("Open display in SAPA: Køge")
    forecast = json.loads(ok(runner, db_path, "reminders", "forecast", "--at",
                             "2021-08-17T08:00", "--json").stdout)
    assert "Open display in SAPA: Køge – KMD Momentum" in [r["subject"] for r in forecast]
    ok(runner, db_path, "reminders", "send-due", "--at", "2021-08-18T08:00")
    outbox = db_path.parent / "onboarding-outbox"
    messages = [_eml(p) for p in sorted(outbox.glob("*.eml"))]
    assert messages
    for message in messages:
        assert message["From"] == SENDER
        assert str(message["Message-ID"]).endswith("@ids.kombit.example>")


def test_mail_settings_stored_smtp_server_is_used_by_send_due(
    runner: CliRunner, db_path: Path, smtp_server: MailServer
) -> None:
    """With host, port, security and sender stored (no environment), send-due uses that server."""
    _to_sapa_request(runner, db_path)
    ok(runner, db_path, "mail", "configure", "--from", SENDER, "--smtp-host", "127.0.0.1",
       "--smtp-port", str(smtp_server.port), "--smtp-security", "none")
    out = ok(runner, db_path, "reminders", "send-due", "--at", "2021-08-18T08:00").stdout
    assert "sapa@kombit.dk" in out
    [mail] = smtp_server.to("sapa@kombit.dk")
    assert mail.mail_from == "onboarding@kombit.example"
    assert mail.message["From"] == SENDER
    assert not (db_path.parent / "onboarding-outbox").exists()


# --- the demo ------------------------------------------------------------------------------------


def test_mail_settings_demo_sender_is_used_by_preview_and_send_due_afterwards(
    runner: CliRunner, tmp_path: Path
) -> None:
    """After 'onboarding demo', preview and send-due on its database send as the demo did."""
    folder = tmp_path / "demo"
    result = runner.invoke(cli.cli, ["demo", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    db_path = folder / "onboarding.db"
    outbox = folder / "onboarding-outbox"
    demo_files = set(outbox.glob("*.eml"))
    # The demo's own mail: its sender and domain.
    assert demo_files
    for path in sorted(demo_files)[:20]:
        message = _eml(path)
        assert message["From"] == SENDER
        assert str(message["Message-ID"]).endswith("@kombit.example>")
    # The demo enforces permissions: read as its coordinator (a named reader is scoped).
    as_coordinator = {"ONBOARDING_ACTOR": "koordinator"}
    listed = ok(runner, db_path, "reminders", "list", "--pending", "--json", env=as_coordinator)
    pending = json.loads(listed.stdout)
    assert pending
    shown = json.loads(
        ok(runner, db_path, "reminders", "preview", str(pending[0]["id"]), "--json").stdout
    )
    assert shown["from"] == SENDER
    assert shown["message_id"].endswith("@kombit.example>")
    sent = run(runner, db_path, "reminders", "send-due")
    assert sent.exit_code != 2 and (sent.exception is None or isinstance(sent.exception,
                                                                         SystemExit))
    new = set(outbox.glob("*.eml")) - demo_files
    assert new, sent.output
    for path in new:
        message = _eml(path)
        assert message["From"] == SENDER, path.name
        assert str(message["Message-ID"]).endswith("@kombit.example>"), path.name
        assert path.name.endswith("@kombit.example.eml")
    # It is kept in the database, so 'mail show' says where it comes from.
    rows = show(runner, db_path)
    assert rows["mail.from"]["value"] == SENDER and rows["mail.from"]["source"] == "database"
    assert rows["mail.digest"]["value"] is True and rows["mail.digest"]["source"] == "database"


def test_mail_settings_stored_sender_is_used_by_the_scheduler(
    runner: CliRunner, db_path: Path, smtp_server: MailServer
) -> None:
    """'scheduler run' (a real process) starts with the SMTP server and sender stored."""
    import signal

    from tests.reliability import cli_process

    ok(runner, db_path, "mail", "configure", "--from", SENDER, "--smtp-host", "127.0.0.1",
       "--smtp-port", str(smtp_server.port), "--smtp-security", "none")
    proc = cli_process(db_path, "scheduler", "run", "--interval", "3600")
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert first.strip() == (
        f"scheduler: SMTP 127.0.0.1:{smtp_server.port} (none), from {SENDER}"
    )
