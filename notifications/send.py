"""Handing messages over: SMTP (one connection reused for a batch) or .eml files.

``SmtpTransport`` connects lazily on the first message, reuses the connection for the rest of
the run, and reconnects once when the server dropped it. Errors are classified for the outbox:

* a 4xx reply, a dropped connection or an unreachable server is *temporary* (retry with backoff);
* a 5xx reply is *permanent* for that message (the row fails; ``reminders retry`` requeues it);
* a failure to connect or log in affects every message of the run (``batch=True``), so the
  runner stops trying the rest of the batch and schedules them for a retry instead.

``EmlTransport`` is the default with no SMTP server configured: each message becomes a file
named after its Message-ID in the outbox folder, written atomically; writing the same message
again replaces the file, so it never shows up twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Protocol

from notifications.config import Config, SmtpSettings


class DeliveryError(Exception):
    """A message could not be handed over. ``permanent``: do not retry; ``batch``: the
    connection itself failed, so the other messages of this run will fail too."""

    def __init__(self, message: str, *, permanent: bool = False, batch: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.batch = batch


class Transport(Protocol):
    def send(self, msg: EmailMessage, recipients: list[str]) -> dict[str, str]:
        """Hand over one message; return the recipients refused (address -> reply)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Transport: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


class SmtpTransport:
    """One SMTP connection, opened on first use and reused for every message of a run."""

    def __init__(self, settings: SmtpSettings, envelope_from: str) -> None:
        self.settings = settings
        self.envelope_from = envelope_from
        self._conn: smtplib.SMTP | None = None
        self.connections = 0

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.settings.ca_file is not None:
            ctx.load_verify_locations(cafile=str(self.settings.ca_file))
        return ctx

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"{s.host}:{s.port}"
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=self._context())
                conn.ehlo()
            if s.user:
                conn.login(s.user, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            self._quietly_close(conn)
            raise DeliveryError(
                f"SMTP login at {where} refused: {_reply(exc.smtp_code, exc.smtp_error)}",
                batch=True,
            ) from None
        except smtplib.SMTPResponseException as exc:
            self._quietly_close(conn)
            raise DeliveryError(
                f"SMTP server {where} refused the session: {_reply(exc.smtp_code, exc.smtp_error)}",
                batch=True,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._quietly_close(conn)
            raise DeliveryError(f"cannot reach SMTP server {where}: {exc}", batch=True) from None
        self.connections += 1
        return conn

    @staticmethod
    def _quietly_close(conn: smtplib.SMTP | None) -> None:
        if conn is None:
            return
        with contextlib.suppress(OSError):
            conn.close()

    def _drop(self) -> None:
        self._quietly_close(self._conn)
        self._conn = None

    def send(self, msg: EmailMessage, recipients: list[str]) -> dict[str, str]:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                refused = self._conn.send_message(
                    msg, from_addr=self.envelope_from, to_addrs=recipients
                )
            except smtplib.SMTPServerDisconnected as exc:
                # The server dropped the connection (idle timeout, restart): reconnect once.
                self._drop()
                if attempt == 2:
                    raise DeliveryError(f"SMTP connection lost while sending: {exc}") from None
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                replies = {a: _reply(c, t) for a, (c, t) in exc.recipients.items()}
                permanent = all(500 <= c < 600 for c, _ in exc.recipients.values())
                shown = "; ".join(f"{a}: {r}" for a, r in replies.items())
                raise DeliveryError(
                    f"every recipient refused: {shown}", permanent=permanent
                ) from None
            except smtplib.SMTPResponseException as exc:
                # 4xx: try again later; 5xx: this message will not be accepted as it is.
                raise DeliveryError(
                    f"SMTP refused the message: {_reply(exc.smtp_code, exc.smtp_error)}",
                    permanent=500 <= exc.smtp_code < 600,
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                raise DeliveryError(f"SMTP error while sending: {exc}") from None
            return {a: _reply(c, t) for a, (c, t) in refused.items()}
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
            self._drop()

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def eml_name(message_id: str) -> str:
    """A file name for a Message-ID (the same message always gets the same file)."""
    return _UNSAFE.sub("_", message_id.strip("<>")) + ".eml"


class EmlTransport:
    """Writes each message as ``<outbox folder>/<Message-ID>.eml`` (no mail server needed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, msg: EmailMessage, recipients: list[str]) -> dict[str, str]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.folder / eml_name(str(msg["Message-ID"]))
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(msg.as_bytes())
            os.replace(tmp, target)
        except OSError as exc:
            raise DeliveryError(f"cannot write to {self.folder}: {exc}", batch=True) from None
        return {}

    def close(self) -> None:
        return None

    def __enter__(self) -> EmlTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_transport(config: Config) -> SmtpTransport | EmlTransport:
    """SMTP when a server is configured, else .eml files in the outbox folder."""
    if config.smtp is None:
        return EmlTransport(config.outbox_dir)
    return SmtpTransport(config.smtp, config.envelope_from)
