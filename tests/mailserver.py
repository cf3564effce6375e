"""A real SMTP server on loopback for tests (aiosmtpd), with switchable failures.

``mode`` decides the reply to DATA: ``accept`` (250), ``451`` (try later), ``550`` (refused) or
``drop`` (the server closes the connection mid-transaction). The server records every message
it accepted, in arrival order, with the envelope it came with.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())


class Handler:
    def __init__(self) -> None:
        self.mode = "accept"
        self.messages: list[Received] = []
        self.refused = 0
        self.dropped = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mode = self.mode
        if mode == "drop":
            with self.lock:
                self.dropped += 1
            server.transport.close()
            return "421 4.4.2 closing"
        if mode in ("451", "550"):
            with self.lock:
                self.refused += 1
            if mode == "451":
                return "451 4.3.0 mailbox busy, try again later"
            return "550 5.7.1 message refused"
        parsed = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 OK"


def free_port() -> int:
    """A free TCP port on loopback (aiosmtpd's Controller cannot take port 0 itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MailServer:
    """A running aiosmtpd server: ``port``, ``messages``, ``mode``; ``stop()`` when done."""

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.handler = Handler()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if users is not None:

            def authenticate(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and users.get(data.login.decode()) == data.password.decode()
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticate, auth_required=True)
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=tls,
            server_hostname="localhost",
            **kwargs,
        )
        self.controller.start()
        self.stopped = False

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def mode(self) -> str:
        return self.handler.mode

    @mode.setter
    def mode(self, value: str) -> None:
        assert value in ("accept", "451", "550", "drop")
        self.handler.mode = value

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def env(self) -> dict[str, str]:
        """The environment that points the onboarding CLI at this server."""
        return {
            "ONBOARDING_SMTP_HOST": "127.0.0.1",
            "ONBOARDING_SMTP_PORT": str(self.port),
            "ONBOARDING_SMTP_SECURITY": "none",
            "ONBOARDING_MAIL_FROM": "KOMBIT onboarding <onboarding@kombit.test>",
        }

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.controller.stop()


def write_cert_files(ca: Any, folder: Path) -> tuple[Path, Any]:
    """A trustme CA's certificate as a file, and a server certificate for localhost."""
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca_file, ca.issue_cert("localhost", "127.0.0.1")
