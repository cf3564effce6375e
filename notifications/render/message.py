"""Building a message: ``build_message`` (the reference) and ``build_outgoing`` (its bytes, fast).

``build_message`` is the one definition of what we send: ``EmailMessage`` with the text, the
HTML alternative and the .ics files, and safe headers (``notifications.render.headers``).

The fast build. Building a message with ``EmailMessage`` (set_content, add_alternative,
add_attachment) and flattening it again in smtplib cost about 2 ms a message here, more than
the whole SMTP exchange with a local server (bench/FINDINGS.md). Every message we send has one
of a few shapes: text and HTML alternatives, then zero or more calendar files. So the MIME
frame of a shape (part headers, MIME-Version lines, boundaries' places) is made once, by the
email package itself from a reference message (``_frame``), and each message only fills it in:

* its own headers are the same header objects ``build_message`` sets (``_top_fields``: our
  folding classes, CR/LF refused by the policy's ``header_store_parse``), folded by the
  policy as the generator folds them;
* each text part is encoded by the content manager's own encoder (7bit, 8bit,
  quoted-printable or base64, chosen by the same rule), each calendar file by its base64;
* boundaries are drawn as the generator draws them and never occur in the parts.

``tests/test_mail_build.py`` checks, for varied input (hypothesis), that the bytes equal
``build_message``'s in both forms: as ``.eml`` (``as_bytes``) and as smtplib sends them.
Anything the frame does not cover (a calendar file name that would be folded or quoted
differently) takes ``build_message``.
"""

from __future__ import annotations

import email.contentmanager
import random
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cached_property, lru_cache
from typing import Any

from notifications.render.headers import (
    _POLICY,
    _ExactSubject,
    _recipients,
    _sender,
    header_text,
)
from notifications.render.rendered import Rendered


@dataclass(frozen=True)
class Attachment:
    """An iCalendar file (UTF-8) and its iTIP method (RFC 5546): PUBLISH or CANCEL."""

    filename: str
    content: bytes
    method: str = "PUBLISH"


def build_message(
    rendered: Rendered,
    *,
    mail_from: str,
    to: Sequence[tuple[str, str]],
    message_id: str,
    date_sent: datetime,
    attachments: Sequence[Attachment] = (),
    outbox_ids: Sequence[int] = (),
) -> EmailMessage:
    """A complete message: plain text, HTML alternative, .ics attachments, safe headers.

    The reference build: ``build_outgoing`` writes the same bytes faster, and falls back to
    this for anything it does not handle."""
    msg = EmailMessage(policy=_POLICY)
    for name, value in _top_fields(rendered, mail_from, to, message_id, date_sent, outbox_ids):
        msg[name] = value
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for item in attachments:
        msg.add_attachment(
            item.content,
            maintype="text",
            subtype="calendar",
            filename=item.filename,
            params={"method": item.method, "charset": "utf-8"},
        )
    return msg


def _top_fields(
    rendered: Rendered,
    mail_from: str,
    to: Sequence[tuple[str, str]],
    message_id: str,
    date_sent: datetime,
    outbox_ids: Sequence[int],
) -> list[tuple[str, Any]]:
    """The message's own headers, in order, as set on it: one place for both builds."""
    fields: list[tuple[str, Any]] = [
        ("From", _sender(mail_from)),
        ("To", _recipients(tuple(to))),
        ("Subject", _ExactSubject("Subject", header_text(rendered.subject))),
        ("Date", format_datetime(date_sent.astimezone(UTC))),
        ("Message-ID", message_id),
        ("Auto-Submitted", "auto-generated"),
    ]
    if outbox_ids:
        fields.append(("X-Onboarding-Outbox", ", ".join(str(i) for i in outbox_ids)))
    return fields


# --- the fast build (the module's docstring says how) ----------------------------------------

_ENCODE_TEXT: Callable[..., tuple[str, str]] | None = getattr(
    email.contentmanager, "_encode_text", None
)
_ENCODE_BASE64: Callable[..., str] | None = getattr(email.contentmanager, "_encode_base64", None)
#: Placeholder boundaries of the generator's form (15 "=", 19 digits, "=="): same length, so
#: a header holding one folds as it does with any drawn boundary.
_PLACEHOLDERS = ("=" * 15 + "0" * 18 + "1==", "=" * 15 + "0" * 18 + "2==")
_SENTINEL_TEXT, _SENTINEL_HTML = "QZXTEXTQZX", "QZXHTMLQZX"
#: A calendar file name the frame can take as it is: quoted, never folded or encoded.
_PLAIN_FILENAME = re.compile(r"[A-Za-z0-9._-]{1,30}\Z")
#: What ``BytesGenerator`` does to a body line starting "From " when smtplib flattens.
_FROM_LINE = re.compile(rb"^From ", re.MULTILINE)


def _sentinel_file(i: int) -> tuple[str, bytes]:
    return f"QZXF{i}QZX.ics", f"QZXA{i}QZX".encode()


@dataclass(frozen=True)
class _Frame:
    """The fixed bytes of one message shape (``.eml`` form, LF), between its slots.

    ``pieces`` alternates literal bytes and slot names: ``text-cte``, ``text``, ``html-cte``,
    ``html``, ``name<i>``, ``file<i>``. Literals hold the placeholder boundaries."""

    pieces: tuple[bytes | str, ...]


_FRAMES: dict[tuple[str, ...], _Frame | None] = {}
_FRAMES_LOCK = threading.Lock()


def _frame(methods: tuple[str, ...]) -> _Frame | None:
    """The frame of messages with calendar files of these methods (None: no fast build)."""
    with _FRAMES_LOCK:
        if methods not in _FRAMES:
            _FRAMES[methods] = _make_frame(methods)
        return _FRAMES[methods]


def _make_frame(methods: tuple[str, ...]) -> _Frame | None:
    """Build a reference message of this shape through ``build_message`` with sentinel
    parts and the placeholder boundaries, and cut its bytes at the sentinels."""
    if _ENCODE_TEXT is None or _ENCODE_BASE64 is None:
        return None
    files = [_sentinel_file(i) for i in range(len(methods))]
    ref = build_message(
        Rendered("s", _SENTINEL_TEXT, _SENTINEL_HTML),
        mail_from="a@example.invalid",
        to=[("", "b@example.invalid")],
        message_id="<m@example.invalid>",
        date_sent=datetime(2000, 1, 1, tzinfo=UTC),
        attachments=[
            Attachment(name, content, method)
            for (name, content), method in zip(files, methods, strict=True)
        ],
    )
    ref.set_boundary(_PLACEHOLDERS[0])
    if methods:
        first = ref.get_payload(0)
        assert isinstance(first, EmailMessage)
        first.set_boundary(_PLACEHOLDERS[1])
    data = ref.as_bytes()
    start = data.find(b"\nMIME-Version: 1.0\n") + 1
    if start <= 0:
        return None
    body = data[start:]
    cte = b"Content-Transfer-Encoding: 7bit\n"
    slots: list[tuple[bytes, str, int]] = []  # (sentinel bytes, slot name, how many to cut)
    for text, name in ((_SENTINEL_TEXT, "text"), (_SENTINEL_HTML, "html")):
        payload = f"{text}\n".encode()
        at = body.find(payload)
        header = body.rfind(cte, 0, at)
        if at < 0 or header < 0:
            return None
        slots.append((b"7bit", f"{name}-cte", header + len(cte) - len(b"7bit\n")))
        slots.append((payload, name, at))
    for i, (filename, content) in enumerate(files):
        for sentinel, name in (
            (filename.encode(), f"name{i}"),
            (_ENCODE_BASE64(content, _POLICY.max_line_length).encode(), f"file{i}"),
        ):
            at = body.find(sentinel)
            if at < 0 or body.find(sentinel, at + 1) >= 0:
                return None
            slots.append((sentinel, name, at))
    slots.sort(key=lambda s: s[2])
    pieces: list[bytes | str] = []
    pos = 0
    for sentinel, name, at in slots:
        pieces += [body[pos:at], name]
        pos = at + len(sentinel)
    pieces.append(body[pos:])
    return _Frame(tuple(pieces))


def _fold_field(name: str, value: Any) -> tuple[bytes, str]:
    """One header as the generator writes it (``.eml`` form), and its value as read back:
    the policy's header object, folded by the policy. A str value holding CR or LF raises
    ``ValueError`` here, as on ``EmailMessage``."""
    name, obj = _POLICY.header_store_parse(name, value)
    return _POLICY.fold_binary(name, obj), str(obj)


# Headers that repeat across messages are folded once: the same input always gives the same
# header object and the same bytes (a run sends from one sender to a few hundred recipient
# lists, all in a few seconds).


@lru_cache(maxsize=64)
def _folded_from(mail_from: str) -> tuple[bytes, str]:
    return _fold_field("From", _sender(mail_from))


@lru_cache(maxsize=4096)
def _folded_to(to: tuple[tuple[str, str], ...]) -> tuple[bytes, str]:
    return _fold_field("To", _recipients(to))


@lru_cache(maxsize=256)
def _folded_plain(name: str, value: str) -> tuple[bytes, str]:
    return _fold_field(name, value)


@lru_cache(maxsize=1024)
def _folded_subject(subject: str) -> tuple[bytes, str]:
    """A run's reminders about the same step share their subject: folded once."""
    return _fold_field("Subject", _ExactSubject("Subject", header_text(subject)))


# A Message-ID of our own shape (a dot-atom at a dot-atom) and a list of outbox ids are
# written as given when the line fits: the policy's folding, which parses them, gives exactly
# these bytes then (tests/test_mail_build.py compares the two). Anything else is folded.
_SIMPLE = {
    "Message-ID": re.compile(
        r"<[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>"
    ),
    "X-Onboarding-Outbox": re.compile(r"[0-9]+(?:, [0-9]+)*"),
}


def _folded_simple(name: str, value: str) -> tuple[bytes, str]:
    if len(name) + 2 + len(value) <= 78 and _SIMPLE[name].fullmatch(value):
        return f"{name}: {value}\n".encode("ascii"), value
    return _fold_field(name, value)


@dataclass(frozen=True)
class Outgoing:
    """A message ready to hand over: its bytes, and the header values a run records.

    ``as_bytes()`` is what ``EmailMessage.as_bytes()`` gives (``.eml`` files); ``smtp_bytes()``
    what ``smtplib.send_message`` would send (CRLF, body lines starting "From " quoted).
    ``message()`` builds the same message as an ``EmailMessage`` (for an SMTPUTF8 session)."""

    data: bytes
    headers: Mapping[str, str]
    rebuild: Callable[[], EmailMessage]

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def as_bytes(self) -> bytes:
        return self.data

    def smtp_bytes(self) -> bytes:
        return self._smtp_bytes

    @cached_property
    def _smtp_bytes(self) -> bytes:
        # Made once, and by a sender ahead of the message's turn (notifications.runner).
        return _FROM_LINE.sub(b">From ", self.data).replace(b"\n", b"\r\n")

    def message(self) -> EmailMessage:
        return self.rebuild()


def _draw_boundary(parts: Sequence[bytes]) -> str:
    """A boundary as the generator draws one, found in none of the parts."""
    while True:
        boundary = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="
        mark = b"--" + boundary.encode()
        if not any(mark in p for p in parts):
            return boundary


def build_outgoing(
    rendered: Rendered,
    *,
    mail_from: str,
    to: Sequence[tuple[str, str]],
    message_id: str,
    date_sent: datetime,
    attachments: Sequence[Attachment] = (),
    outbox_ids: Sequence[int] = (),
) -> Outgoing:
    """``build_message``'s message as bytes, through the frame of its shape (see above)."""

    def rebuild() -> EmailMessage:
        return build_message(
            rendered,
            mail_from=mail_from,
            to=to,
            message_id=message_id,
            date_sent=date_sent,
            attachments=attachments,
            outbox_ids=outbox_ids,
        )

    frame = _frame(tuple(a.method for a in attachments))
    if frame is None or not all(_PLAIN_FILENAME.match(a.filename) for a in attachments):
        msg = rebuild()
        return Outgoing(msg.as_bytes(), _recorded(msg), rebuild)
    # The fields of _top_fields, in its order, each folded as the generator folds it.
    subject = rendered.subject
    fields = [
        ("from", _folded_from(mail_from)),
        ("to", _folded_to(tuple(to))),
        ("subject", _folded_subject(subject)),
        ("date", _folded_plain("Date", format_datetime(date_sent.astimezone(UTC)))),
        ("message-id", _folded_simple("Message-ID", message_id)),
        ("auto-submitted", _folded_plain("Auto-Submitted", "auto-generated")),
    ]
    if outbox_ids:
        ids = ", ".join(str(i) for i in outbox_ids)
        fields.append(("x-onboarding-outbox", _folded_simple("X-Onboarding-Outbox", ids)))
    head = [folded for _, (folded, _) in fields]
    recorded = {name: value for name, (_, value) in fields}
    slots = _fill(rendered, attachments)
    b1, b2 = (_draw_boundary(list(slots.values())) for _ in _PLACEHOLDERS)
    out = head
    for piece in frame.pieces:
        if isinstance(piece, str):
            out.append(slots[piece])
        else:
            out.append(
                piece.replace(_PLACEHOLDERS[0].encode(), b1.encode()).replace(
                    _PLACEHOLDERS[1].encode(), b2.encode()
                )
            )
    return Outgoing(b"".join(out), recorded, rebuild)


def _fill(rendered: Rendered, attachments: Sequence[Attachment]) -> dict[str, bytes]:
    """Each slot's bytes: the text parts as the content manager encodes them, each calendar
    file's name and base64."""
    assert _ENCODE_TEXT is not None and _ENCODE_BASE64 is not None
    slots: dict[str, bytes] = {}
    for name, text in (("text", rendered.text), ("html", rendered.html)):
        cte, payload = _ENCODE_TEXT(text, "utf-8", None, _POLICY)
        slots[f"{name}-cte"] = cte.encode("ascii")
        slots[name] = payload.encode("ascii", "surrogateescape")
    for i, item in enumerate(attachments):
        slots[f"name{i}"] = item.filename.encode("ascii")
        slots[f"file{i}"] = _ENCODE_BASE64(item.content, _POLICY.max_line_length).encode()
    return slots


def _recorded(msg: EmailMessage) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in msg.items()}
