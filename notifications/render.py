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

import email.policy
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from notifications.config import Config
from onboarding import i18n

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


#: The language of the message being rendered. Per render, not per environment: one environment
#: serves every language, and messages may be rendered in several threads at once (a context
#: variable is per thread). Read by gettext/ngettext in templates and by ``long_date`` inside
#: imported macros, which do not see the template's ``lang``.
_LANGUAGE: ContextVar[str] = ContextVar("notifications_language", default=i18n.DEFAULT)


@contextmanager
def _language(lang: str) -> Iterator[None]:
    token = _LANGUAGE.set(i18n.normalise(lang))
    try:
        yield
    finally:
        _LANGUAGE.reset(token)


def _gettext(message: str) -> str:
    return i18n.gettext(_LANGUAGE.get(), message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return i18n.ngettext(_LANGUAGE.get(), singular, plural, n)


@pass_context
def _long_date(ctx: Context, value: date | None, weekday: bool = False) -> str:
    """18. august 2021 (da) / 18 August 2021 (en); with weekday: onsdag den 18. august 2021."""
    if value is None:
        return ""
    lang = ctx.get("lang") or _LANGUAGE.get()
    month = _MONTHS[lang][value.month - 1]
    if lang == "da":
        text = f"{value.day}. {month} {value.year}"
        return f"{_WEEKDAYS['da'][value.weekday()]} den {text}" if weekday else text
    text = f"{value.day} {month} {value.year}"
    return f"{_WEEKDAYS['en'][value.weekday()]} {text}" if weekday else text


def one_line(text: str) -> str:
    """A header value on one line: control characters (CR, LF, tabs) become single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


class _OverridableLoader(BaseLoader):
    """The configured templates folder first, then the shipped templates.

    A shipped template stays cached only while no file of the same name has appeared in the
    folder since, so an override a user adds later is picked up (and one edited or removed
    too: Jinja2 checks each file's modification time)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.override = FileSystemLoader(str(folder)) if folder is not None else None
        self.package = FileSystemLoader(str(PACKAGE_TEMPLATES))

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if self.override is not None:
            try:
                return self.override.get_source(environment, template)
            except TemplateNotFound:
                pass
        source, filename, uptodate = self.package.get_source(environment, template)
        folder = self.folder
        if folder is None:
            return source, filename, uptodate
        shadow = folder.joinpath(*template.split("/"))

        def fresh() -> bool:
            return not shadow.exists() and (uptodate is None or uptodate())

        return source, filename, fresh


#: One environment per templates folder, kept for the life of the process: compiled templates
#: are reused by every ``Renderer`` (``send_due`` makes one per run, the scheduler one per
#: sweep, the demo one per simulated day) instead of compiled again each time.
_ENVIRONMENTS: dict[str | None, SandboxedEnvironment] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _environment(folder: Path | None) -> SandboxedEnvironment:
    key = str(folder) if folder is not None else None
    with _ENVIRONMENTS_LOCK:
        env = _ENVIRONMENTS.get(key)
        if env is None:
            env = SandboxedEnvironment(
                loader=_OverridableLoader(folder),
                autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
                extensions=["jinja2.ext.i18n"],
            )
            # gettext/ngettext of the project's catalogue in the language of the message being
            # rendered (``_LANGUAGE``): "1 arbejdsdag", "2 arbejdsdage".
            env.install_gettext_callables(  # type: ignore[attr-defined]
                _gettext, _ngettext, newstyle=True
            )
            env.filters["long_date"] = _long_date
            _ENVIRONMENTS[key] = env
        return env


class Renderer:
    """Renders a template name in a language with a context (one Jinja2 environment per
    templates folder, shared: see ``_environment``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = _environment(config.templates_dir)

    def _get(self, name: str, suffix: str, lang: str) -> Any:
        # The configured language first, then Danish (every template ships in Danish).
        return self.env.select_template([f"{lang}/{name}.{suffix}", f"da/{name}.{suffix}"])

    def render(self, name: str, context: Mapping[str, Any], lang: str | None = None) -> Rendered:
        lang = lang or self.config.language
        ctx = {**context, "lang": lang}
        with _language(lang):
            subject = one_line(self._get(name, "subject.txt", lang).render(ctx))
            text = self._get(name, "txt", lang).render(ctx)
            html = self._get(name, "html", lang).render(ctx)
        return Rendered(subject=subject, text=text, html=html)


def _ics_text(value: str) -> str:
    """An iCalendar TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma escaped and
    every line break as ``\\n``."""
    return (
        value.replace("\\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _ics_fold(line: str, limit: int = 75) -> str:
    """A content line folded to at most ``limit`` octets per line (RFC 5545 3.1), never inside
    a UTF-8 character nor between a backslash and the character it escapes."""
    if len(line) < limit and line.isascii():
        return line
    lines: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        n = len(char.encode("utf-8"))
        if current and size + n >= limit:
            if len(current) > 1 and current[-1] in "\\^":  # as icalendar does
                carried = current.pop()
                lines.append("".join(current))
                current, size = [carried], 1
            else:
                lines.append("".join(current))
                current, size = [], 0
        current.append(char)
        size += n
    if current:
        lines.append("".join(current))
    return "\r\n ".join(lines)


def due_calendar(
    *, uid: str, summary: str, description: str, due: date, stamp: datetime, lang: str
) -> bytes:
    """An iCalendar file with one all-day event on the due date.

    Written directly (the same bytes the ``icalendar`` package writes for this event, which
    ``tests/test_notifications_render.py`` checks): building it with ``icalendar`` was a
    fifth of the cost of each message (bench/RESULTS.md).
    """
    lines = (
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{_ics_text(f'-//KOMBIT//onboarding//{lang.upper()}')}",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"SUMMARY:{_ics_text(summary)}",
        f"DTSTART;VALUE=DATE:{due.strftime('%Y%m%d')}",
        f"DTEND;VALUE=DATE:{(due + timedelta(days=1)).strftime('%Y%m%d')}",
        f"DTSTAMP:{stamp.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}",
        f"UID:{_ics_text(uid)}",
        f"DESCRIPTION:{_ics_text(description)}",
        "TRANSP:TRANSPARENT",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    return "".join(_ics_fold(line) + "\r\n" for line in lines).encode("utf-8")


class _HeaderRegistry(HeaderRegistry):
    """The standard header registry, making each header class once: the stock one builds a new
    class for every header of every message (45 a message here, a tenth of its cost)."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


#: ``email.policy.default`` (header values with CR or LF still raise), with the registry above.
_POLICY = email.policy.default.clone(header_factory=_HeaderRegistry())


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
    msg = EmailMessage(policy=_POLICY)
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
