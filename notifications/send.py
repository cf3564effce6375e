"""Handing messages over: SMTP (one connection reused for a run) or .eml files.

``SmtpTransport`` connects lazily on the first message, reuses the connection for the rest of
the run, and reconnects once when the server dropped it. Each message has an overall deadline
(``[delivery] message_timeout``, from connecting to the ``250`` after DATA): smtplib's
``timeout`` is per socket read, so a server that trickles endless ``250-`` continuation lines
would otherwise hold the run forever; a watchdog thread shuts the socket down at the deadline.
After the run's deadline (``run_timeout``) no new message is started. Errors are classified
for the outbox:

* a 4xx reply to the message, or a dropped connection, is *temporary* (retry with backoff);
* a 5xx reply to the message (RCPT, DATA) is *permanent* for that message (the row fails;
  ``reminders retry`` requeues it);
* no complete reply within the deadline is a *timeout*: the message may have arrived, so it is
  retried with backoff like a temporary error; the second timeout in a row stops the run;
* a failure of the session itself (unreachable, TLS, login refused, ``421`` anywhere, ``530``
  or ``454``, the sender address refused at MAIL FROM, the run's time up) is *not the message's
  fault* (``batch=True``): the runner stops and leaves this and every remaining row as it was.

``EmlTransport`` is the default with no SMTP server configured: each message becomes a file
named after its Message-ID in the outbox folder, written atomically; writing the same message
again replaces the file, so it never shows up twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Protocol

from notifications.config import Config, SmtpSettings
from notifications.render import Outgoing

#: Replies that refuse the session, not one message: closing (421), TLS not available (454),
#: authentication required, too weak, refused or needing encryption (530, 534, 535, 538).
SESSION_CODES = frozenset({421, 454, 530, 534, 535, 538})
#: Replies to MAIL FROM that concern one message (its size), not the sender address.
_MESSAGE_SENDER_CODES = frozenset({452, 552})


class DeliveryError(Exception):
    """A message could not be handed over.

    ``permanent``: do not retry this message. ``batch``: the session failed (not this message's
    fault): stop the run and leave the message as it was. ``timeout``: no complete answer in
    time; the message may have arrived. ``stop``: record this message's failure, then stop the
    run (the second timeout in a row)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        batch: bool = False,
        timeout: bool = False,
        stop: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.batch = batch
        self.timeout = timeout
        self.stop = stop


class Transport(Protocol):
    def open(self) -> None:
        """Make sure a message can be handed over now (connected, TLS, logged in), before the
        runner charges it an attempt: a server that cannot be used costs no attempt."""
        ...

    def send(self, msg: EmailMessage | Outgoing, recipients: list[str]) -> dict[str, str]:
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


def _timed_out(exc: BaseException) -> bool:
    """A socket read or write timed out somewhere behind ``exc`` (smtplib turns a timeout
    while reading a reply into ``SMTPServerDisconnected``)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Keeper:
    """One daemon thread that fires the watchdog of the message being sent.

    A ``threading.Timer`` per message started a thread per message (a tenth of a message's
    cost here). Arming needs no wake-up when the new deadline is no earlier than the one the
    thread already sleeps towards (each message's deadline is later than the last one's):
    the thread wakes then, sees the later deadline and sleeps on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watch: _Watchdog | None = None
        self._until: float | None = None  # what the thread sleeps towards (None: no watch)
        self._thread: object | None = None  # the running thread's token

    def arm(self, dog: _Watchdog) -> None:
        with self._cond:
            self._watch = dog
            if self._thread is None:
                token = self._thread = object()
                self._until = dog.deadline
                threading.Thread(
                    target=self._run, args=(token,), name="smtp-watchdog", daemon=True
                ).start()
            elif self._until is None or dog.deadline < self._until:
                self._cond.notify()

    def disarm(self, dog: _Watchdog) -> None:
        with self._cond:
            if self._watch is dog:
                self._watch = None

    def stop(self) -> None:
        """End the thread (the transport is closed); a later ``arm`` starts another."""
        with self._cond:
            self._thread = None
            self._cond.notify()

    def _run(self, me: object) -> None:
        while True:
            with self._cond:
                if self._thread is not me:
                    return
                dog = self._watch
                if dog is None:
                    self._until = None
                    self._cond.wait()
                    continue
                left = dog.deadline - time.monotonic()
                if left > 0:
                    self._until = dog.deadline
                    self._cond.wait(left)
                    continue
                self._until = None
            if dog.fire():  # outside the lock: shutting a socket down may take a moment
                self.disarm(dog)


class _Watchdog:
    """Shuts the connection's socket down when a deadline passes, which ends whatever smtplib
    is blocked in (a read of yet another continuation line, a write to a server not reading).

    The socket is taken when the deadline passes (``target``): the connection may only just
    be opening; until it has a socket the watchdog looks again every 50 ms (the connect itself
    is bounded by the per-operation timeout)."""

    def __init__(
        self, seconds: float, target: Callable[[], smtplib.SMTP | None], keeper: _Keeper
    ) -> None:
        self.seconds = max(seconds, 0.0)
        self.target = target
        self.keeper = keeper
        self.deadline = 0.0
        self.fired = False
        self._done = False
        self._lock = threading.Lock()

    def fire(self) -> bool:
        """At the deadline: cut the connection; False when it has no socket yet (the
        deadline moves 50 ms on)."""
        with self._lock:
            if self._done:
                return True
            self.fired = True
            conn = self.target()
            sock = getattr(conn, "sock", None) if conn is not None else None
            if sock is None:
                self.deadline = time.monotonic() + 0.05
                return False
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would unwrap the
            # SSL object under the feet of the thread reading from it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return True

    def __enter__(self) -> _Watchdog:
        self.deadline = time.monotonic() + self.seconds
        self.keeper.arm(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self.keeper.disarm(self)


@lru_cache(maxsize=4096)
def _quoted(address: str) -> str:
    """``smtplib.quoteaddr``, which parses the address again for every message: once per
    address (a run sends from one sender to a few hundred people)."""
    return smtplib.quoteaddr(address)


_DONE = object()


class _Session(smtplib.SMTP):
    """smtplib's session with the same bytes on the wire and two changes: addresses are
    quoted once per address, and ``meanwhile`` (set by the transport for one message) is
    advanced one step each time a command of the message has been written and before its
    reply is read (MAIL, RCPT, DATA, the data itself), so the sender's work on the next
    message overlaps the server's work on this one. Replies are read, and classified,
    exactly as before; only later."""

    meanwhile: Iterator[object] | None = None

    def getreply(self) -> tuple[int, bytes]:
        if self.meanwhile is not None and next(self.meanwhile, _DONE) is _DONE:
            self.meanwhile = None
        return super().getreply()

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("mail", f"FROM:{_quoted(sender)}{optionlist}")
        return self.getreply()

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        optionlist = " " + " ".join(options) if options and self.does_esmtp else ""
        self.putcmd("rcpt", f"TO:{_quoted(recip)}{optionlist}")
        return self.getreply()


class _SessionSSL(_Session, smtplib.SMTP_SSL):
    """``_Session`` over implicit TLS."""


class SmtpTransport:
    """One SMTP connection, opened on first use and reused for every message of a run.

    ``message_timeout``: seconds one message may take, from connecting to the ``250`` after
    DATA. ``deadline``: the run's end (``time.monotonic()``), or None."""

    def __init__(
        self,
        settings: SmtpSettings,
        envelope_from: str,
        *,
        message_timeout: float = 120.0,
        deadline: float | None = None,
    ) -> None:
        self.settings = settings
        self.envelope_from = envelope_from
        self.message_timeout = message_timeout
        self.deadline = deadline
        self._conn: _Session | None = None
        self._live: smtplib.SMTP | None = None  # the connection the watchdog cuts
        self._meanwhile: Iterator[object] | None = None
        self.connections = 0
        self.timeouts_in_a_row = 0
        self._keeper = _Keeper()

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.settings.ca_file is not None:
            ctx.load_verify_locations(cafile=str(self.settings.ca_file))
        return ctx

    def _connect(self, dog: _Watchdog) -> _Session:
        s = self.settings
        where = self.where
        timeout = min(s.timeout, self.message_timeout)
        conn: _Session | None = None
        try:
            # Made unconnected first, so the watchdog can reach it while it connects.
            if s.security == "tls":
                conn = _SessionSSL(timeout=timeout, context=self._context())
            else:
                conn = _Session(timeout=timeout)
            # What SMTP(host) would have set: the name TLS verifies the certificate against.
            conn._host = s.host  # type: ignore[attr-defined]
            self._live = conn
            code, greeting = conn.connect(s.host, s.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, greeting)
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
            if dog.fired or _timed_out(exc):
                raise DeliveryError(
                    f"SMTP server {where} did not complete the session within "
                    f"{self._seconds(dog)} s",
                    batch=True,
                ) from None
            raise DeliveryError(f"cannot reach SMTP server {where}: {exc}", batch=True) from None
        self.connections += 1
        return conn

    @staticmethod
    def _seconds(dog: _Watchdog) -> str:
        return f"{dog.seconds:g}"

    @staticmethod
    def _quietly_close(conn: smtplib.SMTP | None) -> None:
        if conn is None:
            return
        with contextlib.suppress(OSError):
            conn.close()

    def _drop(self) -> None:
        self._quietly_close(self._conn)
        self._conn = None

    def _seconds_left(self) -> float:
        """The deadline of the next message; refused once the run's time is up. A message
        already started keeps its own deadline: cutting it would only risk a duplicate."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeliveryError(
                "the run's time is up ([delivery] run_timeout); the rest waits for the next run",
                batch=True,
            )
        return float(self.message_timeout)

    def open(self) -> None:
        seconds = self._seconds_left()
        if self._conn is None:
            with _Watchdog(seconds, lambda: self._live, self._keeper) as dog:
                self._conn = self._connect(dog)

    def meanwhile(self, work: Iterator[object] | None) -> None:
        """Advance ``work`` one step at a time during the next ``send``, each time a command
        of the message was written and before its reply is read (the server is busy with it
        meanwhile); what is left of it when the message is done is the caller's to finish.
        ``work`` must not raise and must not write to the database: the message's outcome is
        not known while it runs."""
        self._meanwhile = work

    def send(self, msg: EmailMessage | Outgoing, recipients: list[str]) -> dict[str, str]:
        with _Watchdog(float(self.message_timeout), lambda: self._live, self._keeper) as dog:
            try:
                refused = self._send(msg, recipients, dog)
            except DeliveryError as exc:
                if not exc.timeout:
                    self.timeouts_in_a_row = 0
                raise
            finally:
                self._meanwhile = None
                if self._conn is not None:
                    self._conn.meanwhile = None
        self.timeouts_in_a_row = 0
        if dog.fired:  # the 250 came just as the watchdog cut the connection
            self._drop()
        return refused

    def _timeout(self, dog: _Watchdog) -> DeliveryError:
        self._drop()
        self.timeouts_in_a_row += 1
        stop = self.timeouts_in_a_row >= 2
        return DeliveryError(
            f"no answer from SMTP server {self.where} within {self._seconds(dog)} s; the message "
            "may have been delivered"
            + ("; two timeouts in a row: stopping this run" if stop else ""),
            timeout=True,
            stop=stop,
        )

    def _session(self, code: int, text: bytes | str, what: str) -> DeliveryError:
        self._drop()
        return DeliveryError(
            f"SMTP server {self.where} refused the session ({what}): {_reply(code, text)}",
            batch=True,
        )

    def _send(
        self, msg: EmailMessage | Outgoing, recipients: list[str], dog: _Watchdog
    ) -> dict[str, str]:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect(dog)
            try:
                refused = self._hand(self._conn, msg, recipients)
            except smtplib.SMTPServerDisconnected as exc:
                if dog.fired or _timed_out(exc):
                    raise self._timeout(dog) from None
                # The server dropped the connection (idle timeout, restart): reconnect once.
                self._drop()
                if attempt == 2:
                    raise DeliveryError(f"SMTP connection lost while sending: {exc}") from None
                continue
            except smtplib.SMTPSenderRefused as exc:
                # The envelope sender is the same for every message: refusing it refuses the
                # session, unless the reply is about this message's size.
                if exc.smtp_code not in _MESSAGE_SENDER_CODES:
                    raise self._session(exc.smtp_code, exc.smtp_error, "MAIL FROM") from None
                raise DeliveryError(
                    f"SMTP refused the message: {_reply(exc.smtp_code, exc.smtp_error)}",
                    permanent=500 <= exc.smtp_code < 600,
                ) from None
            except smtplib.SMTPRecipientsRefused as exc:
                codes = {c for c, _ in exc.recipients.values()}
                if codes & SESSION_CODES:
                    code, text = next(r for r in exc.recipients.values() if r[0] in SESSION_CODES)
                    raise self._session(code, text, "RCPT TO") from None
                replies = {a: _reply(c, t) for a, (c, t) in exc.recipients.items()}
                permanent = all(500 <= c < 600 for c in codes)
                shown = "; ".join(f"{a}: {r}" for a, r in replies.items())
                raise DeliveryError(
                    f"every recipient refused: {shown}", permanent=permanent
                ) from None
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code in SESSION_CODES:
                    raise self._session(exc.smtp_code, exc.smtp_error, "DATA") from None
                # 4xx: try again later; 5xx: this message will not be accepted as it is.
                raise DeliveryError(
                    f"SMTP refused the message: {_reply(exc.smtp_code, exc.smtp_error)}",
                    permanent=500 <= exc.smtp_code < 600,
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                if dog.fired or _timed_out(exc):
                    raise self._timeout(dog) from None
                self._drop()
                raise DeliveryError(f"SMTP error while sending: {exc}") from None
            return {a: _reply(c, t) for a, (c, t) in refused.items()}
        raise AssertionError("unreachable")  # pragma: no cover

    def _hand(
        self, conn: _Session, msg: EmailMessage | Outgoing, recipients: list[str]
    ) -> dict[str, tuple[int, bytes]]:
        """MAIL, RCPT, DATA. A built message goes as the bytes ``send_message`` would make
        of it; an address that is not ASCII needs SMTPUTF8, which ``send_message`` handles."""
        conn.meanwhile, self._meanwhile = self._meanwhile, None
        if isinstance(msg, Outgoing):
            if self.envelope_from.isascii() and all(r.isascii() for r in recipients):
                return conn.sendmail(self.envelope_from, recipients, msg.smtp_bytes())
            msg = msg.message()
        return conn.send_message(msg, from_addr=self.envelope_from, to_addrs=recipients)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
            self._drop()
        self._keeper.stop()

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

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(f"cannot write to {self.folder}: {exc}", batch=True) from None

    def send(self, msg: EmailMessage | Outgoing, recipients: list[str]) -> dict[str, str]:
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


def open_transport(config: Config, deadline: float | None = None) -> SmtpTransport | EmlTransport:
    """SMTP when a server is configured, else .eml files in the outbox folder. ``deadline``:
    the run's end (``time.monotonic()``); each message also gets ``message_timeout``."""
    if config.smtp is None:
        return EmlTransport(config.outbox_dir)
    return SmtpTransport(
        config.smtp,
        config.envelope_from,
        message_timeout=config.message_timeout,
        deadline=deadline,
    )
