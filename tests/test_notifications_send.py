"""SMTP security and login against a real local server (STARTTLS, implicit TLS), and .eml files."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from sqlite_utils import Database

from notifications.config import load_config
from notifications.runner import send_due
from notifications.send import EmlTransport, eml_name
from onboarding import outbox
from tests.mailserver import MailServer
from tests.notify_support import SAPA_NOTICE_AT, connection_to_sapa, make_ready, statuses, t

pytestmark = pytest.mark.usefixtures("no_mail_env")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def notice(db: Database) -> int:
    """A connection whose sapa@kombit.dk notice is due at SAPA_NOTICE_AT (no contacts, so the
    reminder to the SAPA owner fails without reaching SMTP)."""
    make_ready(db)
    return connection_to_sapa(db)


def _config_file(db_path: Path, ca: trustme.CA, server: MailServer, security: str) -> None:
    ca.cert_pem.write_to_path(str(db_path.parent / "ca.pem"))
    (db_path.parent / "onboarding.toml").write_text(
        "[smtp]\n"
        'host = "127.0.0.1"\n'
        f"port = {server.port}\n"
        f'security = "{security}"\n'
        'ca_file = "ca.pem"\n'
        "timeout = 10\n"
        "[mail]\n"
        'from = "KOMBIT <onboarding@kombit.test>"\n',
        encoding="utf-8",
    )


@pytest.fixture
def starttls_server(server_context: ssl.SSLContext) -> Iterator[MailServer]:
    server = MailServer(starttls=server_context, users={"onboarding": "s3cret"})
    yield server
    server.stop()


def test_send_starttls_with_login_delivers(
    db: Database, db_path: Path, notice: int, ca: trustme.CA, starttls_server: MailServer
) -> None:
    """STARTTLS verified against the configured CA, then login; the password comes from the
    environment, the rest from the config file."""
    _config_file(db_path, ca, starttls_server, "starttls")
    env = {"ONBOARDING_SMTP_USER": "onboarding", "ONBOARDING_SMTP_PASSWORD": "s3cret"}
    config = load_config(db_path, env=env)
    assert config.smtp is not None and config.smtp.security == "starttls"
    summary = send_due(db, t(SAPA_NOTICE_AT), config)
    assert summary.sent == 1
    assert len(starttls_server.to("sapa@kombit.dk")) == 1


def test_send_wrong_password_keeps_rows_for_a_retry(
    db: Database, db_path: Path, notice: int, ca: trustme.CA, starttls_server: MailServer
) -> None:
    """A refused login is a failure of the whole run, not of the message: the run stops and
    the row stays pending with no attempt charged, the reason noted on it."""
    _config_file(db_path, ca, starttls_server, "starttls")
    env = {"ONBOARDING_SMTP_USER": "onboarding", "ONBOARDING_SMTP_PASSWORD": "wrong"}
    summary = send_due(db, t(SAPA_NOTICE_AT), load_config(db_path, env=env))
    assert summary.sent == 0 and summary.retrying == 0 and summary.held == 1
    assert "login" in (summary.stopped or "") and "login" in (summary.outcomes[-1].error or "")
    assert starttls_server.messages == []
    [row] = [r for r in outbox.list_rows(db) if r["notification"] == "sapa-notice"]
    assert row["status"] == "pending"
    assert row["attempts"] == 0 and "login" in row["last_error"]


def test_send_untrusted_certificate_is_not_used(
    db: Database, db_path: Path, notice: int, ca: trustme.CA, starttls_server: MailServer
) -> None:
    """Without the CA the server's certificate does not verify: no message; the run stops
    and the row stays pending for the next run, no attempt charged."""
    _config_file(db_path, ca, starttls_server, "starttls")
    text = (db_path.parent / "onboarding.toml").read_text().replace('ca_file = "ca.pem"\n', "")
    (db_path.parent / "onboarding.toml").write_text(text)
    summary = send_due(db, t(SAPA_NOTICE_AT), load_config(db_path, env={}))
    assert summary.sent == 0 and summary.retrying == 0 and summary.held == 1
    assert "CERTIFICATE_VERIFY_FAILED" in (summary.outcomes[-1].error or "")
    [row] = [r for r in outbox.list_rows(db) if r["notification"] == "sapa-notice"]
    assert row["status"] == "pending"
    assert row["attempts"] == 0


def test_send_implicit_tls_delivers(
    db: Database, db_path: Path, notice: int, ca: trustme.CA, server_context: ssl.SSLContext
) -> None:
    """Security 'tls' speaks TLS from the first byte (port 465 style)."""
    server = MailServer(tls=server_context)
    try:
        _config_file(db_path, ca, server, "tls")
        summary = send_due(db, t(SAPA_NOTICE_AT), load_config(db_path, env={}))
        assert summary.sent == 1 and len(server.to("sapa@kombit.dk")) == 1
    finally:
        server.stop()
    assert statuses(db)["sent"] == 1


def test_send_eml_transport_writes_a_message_once(tmp_path: Path) -> None:
    """The .eml transport names the file after the Message-ID: writing twice keeps one file."""
    msg = EmailMessage()
    msg["From"] = "a@kombit.test"
    msg["To"] = "b@kombit.test"
    msg["Subject"] = "Hej"
    msg["Message-ID"] = "<t1.e2.notice.abc@kombit.test>"
    msg.set_content("hej")
    transport = EmlTransport(tmp_path / "out")
    assert transport.send(msg, ["b@kombit.test"]) == {}
    transport.send(msg, ["b@kombit.test"])
    files = list((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [eml_name("<t1.e2.notice.abc@kombit.test>")]
    assert b"Subject: Hej" in files[0].read_bytes()
