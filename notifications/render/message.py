"""Building a message the reference way: ``EmailMessage`` with text, HTML and .ics parts.

``build_message`` is the one definition of what we send; the fast build
(``notifications.render.outgoing``) writes the same bytes and is tested against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
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
