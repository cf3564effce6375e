"""Rendering messages: one sandboxed Jinja2 environment, templates per language, .ics attachments.

Each template name (``reminder``, ``escalation``, ``notice``, ``sapa-request``) is three files per
language under ``notifications/templates/<lang>/``: ``NAME.subject.txt``, ``NAME.txt`` (plain
text) and ``NAME.html`` (the HTML alternative, autoescaped). A file of the same relative path in
the configured templates folder overrides the shipped one; since users may edit templates, the
environment is a ``SandboxedEnvironment``. ``StrictUndefined`` makes a misspelt variable an error,
never an empty string.

Messages are ``email.message.EmailMessage`` with the default policy: a header value holding CR or
LF raises instead of injecting a header, and subjects are folded to one line first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import icalendar
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from notifications.config import Config

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"

_MONTHS = {
    "da": (
        "januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september",
        "oktober", "november", "december",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December",
    ),
}
_WEEKDAYS = {
    "da": ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@pass_context
def _long_date(ctx: Context, value: date | None, weekday: bool = False) -> str:
    """18. august 2021 (da) / 18 August 2021 (en); with weekday: onsdag den 18. august 2021."""
    if value is None:
        return ""
    lang = ctx.get("lang", "da")
    month = _MONTHS[lang][value.month - 1]
    if lang == "da":
        text = f"{value.day}. {month} {value.year}"
        return f"{_WEEKDAYS['da'][value.weekday()]} den {text}" if weekday else text
    text = f"{value.day} {month} {value.year}"
    return f"{_WEEKDAYS['en'][value.weekday()]} {text}" if weekday else text


def one_line(text: str) -> str:
    """A header value on one line: control characters (CR, LF, tabs) become single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


class Renderer:
    """Renders a template name in a language with a context (one Jinja2 environment)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        loaders = []
        if config.templates_dir is not None:
            loaders.append(FileSystemLoader(str(config.templates_dir)))
        loaders.append(FileSystemLoader(str(PACKAGE_TEMPLATES)))
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["long_date"] = _long_date

    def _get(self, name: str, suffix: str, lang: str) -> Any:
        # The configured language first, then Danish (every template ships in Danish).
        return self.env.select_template([f"{lang}/{name}.{suffix}", f"da/{name}.{suffix}"])

    def render(self, name: str, context: Mapping[str, Any], lang: str | None = None) -> Rendered:
        lang = lang or self.config.language
        ctx = {**context, "lang": lang}
        subject = one_line(self._get(name, "subject.txt", lang).render(ctx))
        text = self._get(name, "txt", lang).render(ctx)
        html = self._get(name, "html", lang).render(ctx)
        return Rendered(subject=subject, text=text, html=html)


def due_calendar(
    *, uid: str, summary: str, description: str, due: date, stamp: datetime, lang: str
) -> bytes:
    """An iCalendar file with one all-day event on the due date."""
    cal = icalendar.Calendar()
    cal.add("prodid", f"-//KOMBIT//onboarding//{lang.upper()}")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", due)
    event.add("dtend", due + timedelta(days=1))
    event.add("summary", summary)
    event.add("description", description)
    event.add("transp", "TRANSPARENT")
    cal.add_component(event)
    return bytes(cal.to_ical())


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes


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
    """A complete message: plain text, HTML alternative, .ics attachments, safe headers."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = [
        Address(display_name=one_line(name), addr_spec=email) for name, email in to
    ]
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(date_sent.astimezone(UTC))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    if outbox_ids:
        msg["X-Onboarding-Outbox"] = ", ".join(str(i) for i in outbox_ids)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for item in attachments:
        msg.add_attachment(
            item.content,
            maintype="text",
            subtype="calendar",
            filename=item.filename,
            params={"method": "PUBLISH"},
        )
    return msg
