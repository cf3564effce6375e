"""Rendering messages: one sandboxed Jinja2 environment, templates per language, .ics attachments.

Each template name (``reminder``, ``escalation``, ``notice``, ``sapa-request``) is three files per
language under ``notifications/templates/<lang>/``: ``NAME.subject.txt``, ``NAME.txt`` (plain
text) and ``NAME.html`` (the HTML alternative, autoescaped). A file of the same relative path in
the configured templates folder overrides the shipped one, and a definition version's own
templates (stored with it, ``OwnTemplates``) come before both for its tracks' messages; since
users write templates, the environment is a ``SandboxedEnvironment``. ``StrictUndefined``
makes a misspelt variable an error, never an empty string.

Messages are ``email.message.EmailMessage`` with the default policy: a header value holding CR or
LF raises instead of injecting a header, and subjects and names are made one line first. Subject
and the display names of From and To are folded here, not by CPython (see "headers" below): every
reader decodes them to exactly the text set.
"""

from __future__ import annotations

import base64
import email.contentmanager
import email.policy
import hashlib
import random
import re
import string
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email._header_value_parser import UnstructuredTokenList as _UnstructuredTokenList
from email._header_value_parser import ValueTerminal as _ValueTerminal
from email.headerregistry import (
    Address,
    AddressHeader,
    BaseHeader,
    Group,
    HeaderRegistry,
    UniqueAddressHeader,
    UniqueUnstructuredHeader,
)
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, parseaddr
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from notifications.config import Config
from onboarding import i18n

if TYPE_CHECKING:
    from onboarding.db import Database

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"

_MONTHS = {
    "da": (
        "januar",
        "februar",
        "marts",
        "april",
        "maj",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "december",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_WEEKDAYS = {
    "da": ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
#: What ``str.splitlines`` breaks at, and every other control character: never in a header.
_LINE_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")


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


@dataclass(frozen=True)
class OwnTemplates:
    """A definition version's own templates, as stored with it (``definition_templates``):
    file path relative to its folder (``da/welcome.txt``) -> text."""

    definition: str
    version: int
    files: Mapping[str, str]

    @cached_property
    def key(self) -> str:
        """Names the environment that serves these files (same files, same environment)."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(f"{path}\0{self.files[path]}\0".encode())
        return f"{self.definition}\0{self.version}\0{digest.hexdigest()}"


def shipped_internal(path: str) -> bool:
    """A shipped ``_``-prefixed file (``da/_macros.txt``, ``_layout.html``): the shared
    pieces every message uses, which a definition's own templates may not replace (the
    override folder, ``[mail] templates``, is the deliberate way to change them)."""
    return (
        path.rpartition("/")[2].startswith("_")
        and PACKAGE_TEMPLATES.joinpath(*path.split("/")).is_file()
    )


class _OverridableLoader(BaseLoader):
    """A definition version's own templates first, then the configured templates folder,
    then the shipped templates.

    A definition's own files never change (they are stored with its version), and never
    stand in for a shipped ``_`` file (``shipped_internal``). A shipped template stays cached
    only while no file of the same name has appeared in the folder since, so an override a
    user adds later is picked up (and one edited or removed too: Jinja2 checks each file's
    modification time)."""

    def __init__(self, folder: Path | None, own: OwnTemplates | None = None) -> None:
        self.folder = folder
        self.own = own
        self.override = FileSystemLoader(str(folder)) if folder is not None else None
        self.package = FileSystemLoader(str(PACKAGE_TEMPLATES))

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        own = self.own
        if own is not None and template in own.files and not shipped_internal(template):
            where = f"{own.definition} v{own.version} (stored): {template}"
            return own.files[template], where, lambda: True
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


@pass_context
def _genitive(ctx: Context, name: str) -> str:
    """A name in the genitive for the message's language: ``KOMBIT's`` (da: an acronym keeps
    the apostrophe), ``Digitaliseringsstyrelsens``, ``Aarhus'``; en: ``KOMBIT's``,
    ``Agency's``, ``Systems'``. In HTML the name is escaped, the apostrophe is not (as it
    was written in the templates before the name became a setting)."""
    lang = ctx.get("lang") or _LANGUAGE.get()
    text = str(name)
    hissing = ("s", "x", "z") if lang == "da" else ("s",)
    if text[-1:].lower() in hissing:
        suffix = "'"
    elif lang != "da" or text.isupper():
        suffix = "'s"
    else:
        suffix = "s"
    if ctx.eval_ctx.autoescape:
        return Markup(f"{escape(text)}{suffix}")
    return f"{text}{suffix}"


def _line_breaks(value: str) -> Markup:
    """Text of several lines for HTML: each line escaped, joined by ``<br>``."""
    return Markup("<br>").join(escape(line) for line in str(value).split("\n"))


#: One environment per templates folder and definition version's own templates, kept for the
#: life of the process: compiled templates are reused by every ``Renderer`` (``send_due`` makes
#: one per run, the scheduler one per sweep, the demo one per simulated day) instead of
#: compiled again each time.
_ENVIRONMENTS: dict[tuple[str | None, str | None], SandboxedEnvironment] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _environment(folder: Path | None, own: OwnTemplates | None = None) -> SandboxedEnvironment:
    key = (str(folder) if folder is not None else None, own.key if own is not None else None)
    with _ENVIRONMENTS_LOCK:
        env = _ENVIRONMENTS.get(key)
        if env is None:
            env = SandboxedEnvironment(
                loader=_OverridableLoader(folder, own),
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
            env.filters["genitive"] = _genitive
            env.filters["lines"] = _line_breaks
            _ENVIRONMENTS[key] = env
        return env


def template_problems(files: Mapping[str, str]) -> list[str]:
    """Each file that does not compile as a template (``da/welcome.txt: line 3: ...``),
    compiled by the same sandboxed environment that renders messages, or that extends,
    includes or imports a template that is neither among ``files`` nor shipped."""
    env = _environment(None)
    problems: list[str] = []
    for path in sorted(files):
        try:
            tree = env.parse(files[path], path.rpartition("/")[2], path)
        except TemplateSyntaxError as exc:
            problems.append(f"{path}: line {exc.lineno}: {exc.message}")
            continue
        for ref in meta.find_referenced_templates(tree):
            if ref is None:
                continue  # a name computed at render time: found (or not) then
            if ref not in files and not PACKAGE_TEMPLATES.joinpath(*ref.split("/")).is_file():
                problems.append(f"{path}: uses {ref!r}, which is neither beside it nor shipped")
    return problems


class Renderer:
    """Renders a template name in a language with a context (one Jinja2 environment per
    templates folder and definition version's own templates, shared: see ``_environment``).

    Every template also gets ``organisation`` and ``signature`` from the settings
    (``[mail] organisation``/``signature``, ``onboarding mail configure``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = _environment(config.templates_dir)
        #: Each definition version's own templates, read once per renderer (per run).
        self._own: dict[tuple[str, int], OwnTemplates | None] = {}
        #: Templates looked up by this renderer (``_get``); environments live for the process.
        self._templates: dict[tuple[int, str, str, str], Any] = {}

    def own_templates(self, db: Database, track_id: int) -> OwnTemplates | None:
        """The own templates of the definition version a track runs (None: it has none)."""
        from onboarding.definition_templates import templates

        row = db.execute(
            "SELECT definition, def_version FROM tracks WHERE id = ?", [track_id]
        ).fetchone()
        if row is None:
            return None
        key = (str(row[0]), int(row[1]))
        if key not in self._own:
            files = templates(db, *key)
            self._own[key] = OwnTemplates(key[0], key[1], files) if files else None
        return self._own[key]

    def _get(self, env: Environment, name: str, suffix: str, lang: str) -> Any:
        # The configured language first, then Danish (every template ships in Danish). Kept
        # for the renderer's life (one run, sweep or demo day): Jinja2 would look at each
        # file's modification time again for every message.
        key = (id(env), name, suffix, lang)
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = env.select_template(
                [f"{lang}/{name}.{suffix}", f"da/{name}.{suffix}"]
            )
        return found

    def render(
        self,
        name: str,
        context: Mapping[str, Any],
        lang: str | None = None,
        own: OwnTemplates | None = None,
    ) -> Rendered:
        lang = lang or self.config.language
        env = self.env if own is None else _environment(self.config.templates_dir, own)
        ctx = {
            "organisation": self.config.organisation,
            "signature": self.config.signature or self.config.organisation,
            **context,
            "lang": lang,
        }
        with _language(lang):
            subject = one_line(self._get(env, name, "subject.txt", lang).render(ctx))
            text = self._get(env, name, "txt", lang).render(ctx)
            html = self._get(env, name, "html", lang).render(ctx)
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
    a UTF-8 character nor between a backslash and the character it escapes.

    Cut on the UTF-8 bytes (a character by character loop was a tenth of a message's cost):
    each piece is the longest that stays under ``limit`` octets and ends on a character's
    end; a piece ending in ``\\`` or ``^`` gives that character to the next (as icalendar
    does)."""
    data = line.encode("utf-8")
    if len(data) < limit:
        return line
    room = limit - 1
    pieces: list[bytes] = []
    pos = 0
    while len(data) - pos > room:
        end = pos + room
        while data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: not a character's start
            end -= 1
        if end - pos > 1 and data[end - 1] in b"\\^":
            end -= 1
        pieces.append(data[pos:end])
        pos = end
    pieces.append(data[pos:])
    return b"\r\n ".join(pieces).decode("utf-8")


#: iTIP methods (RFC 5546) a deadline event is sent with: PUBLISH adds or updates it, CANCEL
#: withdraws it (the event then says STATUS:CANCELLED).
METHODS = ("PUBLISH", "CANCEL")


def due_calendar(
    *,
    uid: str,
    summary: str,
    description: str,
    due: date,
    stamp: datetime,
    lang: str,
    sequence: int = 0,
    method: str = "PUBLISH",
    organizer: str | None = None,
) -> bytes:
    """An iCalendar file with one all-day event on the due date.

    ``uid`` names the deadline (one per track and state entry), ``sequence`` grows each time
    the deadline changed, so a calendar moves its one entry instead of adding another (RFC 5545
    3.8.7.4); ``method="CANCEL"`` withdraws it. ``organizer`` is the sender's address.

    Written directly (the same bytes the ``icalendar`` package writes for this event, which
    ``tests/test_notifications_render.py`` and ``tests/test_mail_calendar.py`` check): building
    it with ``icalendar`` was a fifth of the cost of each message (bench/RESULTS.md).
    """
    if method not in METHODS:
        raise ValueError(f"unknown iCalendar method {method!r}")
    # Properties in the order icalendar writes them: its canonical ones, then alphabetical.
    lines = (
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{_ics_text(f'-//KOMBIT//onboarding//{lang.upper()}')}",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"SUMMARY:{_ics_text(summary)}",
        f"DTSTART;VALUE=DATE:{due.strftime('%Y%m%d')}",
        f"DTEND;VALUE=DATE:{(due + timedelta(days=1)).strftime('%Y%m%d')}",
        f"DTSTAMP:{stamp.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}",
        f"UID:{_ics_text(uid)}",
        f"SEQUENCE:{int(sequence)}",
        f"DESCRIPTION:{_ics_text(description)}",
        *((f"ORGANIZER:mailto:{organizer}",) if organizer else ()),
        *(("STATUS:CANCELLED",) if method == "CANCEL" else ()),
        "TRANSP:TRANSPARENT",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    return "".join(_ics_fold(line) + "\r\n" for line in lines).encode("utf-8")


# --- headers --------------------------------------------------------------------------------
#
# CPython's folding (``email.policy.default`` and ``SMTP``, 3.11 to 3.13) can split an RFC 2047
# encoded-word across lines, glue two together (``?==?``) or lose a space (python/cpython issues
# 121284 and 144156): 13% of the demo's subjects came out garbled. So Subject and the display
# names of From and To are folded here instead: text that is not plain ASCII words becomes whole
# encoded-words (``=?utf-8?q?...?=``, at most 75 characters, never splitting a character, every
# space inside a word as ``_``), one per line piece, separated by CRLF + space. Decoders ignore the
# white space between adjacent encoded-words, so the text decodes to exactly what was set, runs
# of spaces included. Plain ASCII text stays readable, folded at its single spaces.

#: The longest line we write (RFC 5322 recommends 78; the hard limit is 998).
_LINE = 78
_WORD = 75  # RFC 2047: an encoded-word is at most 75 characters
_OPEN, _CLOSE = "=?utf-8?q?", "?="
#: Characters that stand for themselves in a Q encoded-word anywhere, a phrase included
#: (RFC 2047 5(3)); everything else is =XX, a space is "_".
_Q_SAFE = frozenset(string.ascii_letters + string.digits + "!*+-/")
#: RFC 5322 atext: a display name of these words (single spaces between) needs no encoding.
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))
#: The longest plain word; a longer one is encoded so that every line stays within _LINE.
_PLAIN_WORD = 60
#: The longest display name, in characters: one encoded-word of it (B, 4 bytes a character)
#: stays far below the 998-octet line limit. No person's or sender's name comes near it.
_NAME_MAX = 100


def _q(char: str) -> str:
    if char in _Q_SAFE:
        return char
    if char == " ":
        return "_"
    return "".join(f"={b:02X}" for b in char.encode("utf-8", "replace"))


#: ``_q`` of each character seen so far (a subject is encoded character by character).
_Q_SEEN: dict[str, str] = {}


def _q_all(text: str) -> list[str]:
    seen = _Q_SEEN
    out = []
    for char in text:
        q = seen.get(char)
        if q is None:
            q = seen[char] = _q(char)
        out.append(q)
    return out


def _encoded_word(text: str) -> str:
    """The text as one encoded-word, Q or B, whichever is shorter."""
    q = "".join(_q(c) for c in text)
    b = base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="


def _plain(text: str, allowed: frozenset[str]) -> bool:
    """Text that can go as it is: allowed characters in words of a sane length, single spaces
    between them, and nothing a decoder could take for an encoded-word."""
    words = text.split(" ")
    return (
        all(c in allowed for c in text)
        and "=?" not in text
        and all(0 < len(w) <= _PLAIN_WORD for w in words)
    )


class _Lines:
    """A header's lines, filled piece by piece (no piece holds white space)."""

    def __init__(self, name: str) -> None:
        self.lines = [f"{name}:"]
        self.started = False  # the first line holds a piece

    def room(self) -> int:
        """Characters left on the current line after a separating space."""
        return _LINE - len(self.lines[-1]) - 1

    def wrap(self) -> None:
        self.lines.append("")
        self.started = True

    def put(self, piece: str) -> None:
        if self.started and len(piece) > self.room() and self.lines[-1] != "":
            self.wrap()
        self.lines[-1] += " " + piece
        self.started = True

    def text(self, text: str, allowed: frozenset[str]) -> None:
        """Plain words, or the whole text as encoded-words (never a mix: decoders differ on
        the space between a plain word and an encoded-word)."""
        if _plain(text, allowed):
            for word in text.split(" "):
                self.put(word)
            return
        pieces = _q_all(text)
        i = 0
        while i < len(pieces):
            room = min(_WORD, self.room()) - len(_OPEN) - len(_CLOSE)
            if room < len(pieces[i]):
                self.wrap()
                continue
            chunk: list[str] = []
            while i < len(pieces) and len(pieces[i]) <= room:
                chunk.append(pieces[i])
                room -= len(pieces[i])
                i += 1
            self.put(_OPEN + "".join(chunk) + _CLOSE)

    def phrase(self, text: str) -> None:
        """A display name: plain atoms as they are, and each run of words that need encoding
        as ONE encoded-word, however long. ``email.policy.default`` keeps the white space
        between two adjacent encoded-words in a phrase (RFC 2047 says to drop it, and
        ``decode_header`` does), so no two encoded-words may touch; between an encoded-word
        and an atom both keep the space. ``_NAME_MAX`` keeps such a word within 998."""
        run: list[str] = []
        for word in [*text.split(" "), None]:
            if word is not None and not _plain(word, _ATEXT):
                run.append(word)
                continue
            if run:
                self.put(_encoded_word(" ".join(run)))
                run = []
            if word:
                self.put(word)

    def fold(self, linesep: str) -> str:
        return linesep.join(self.lines) + linesep


class _FoldedText:
    """An unstructured header (Subject) folded by ``_Lines``, whatever the policy."""

    name: str

    def fold(self, *, policy: Policy) -> str:
        lines = _Lines(self.name)
        if str(self):
            lines.text(str(self), _PRINTABLE)
        return lines.fold(policy.linesep)


class _Subject(_FoldedText, UniqueUnstructuredHeader):
    """The registry's Subject: parsed as usual (a message read back), folded by ``_Lines``."""


class _ExactSubject(_FoldedText, UniqueUnstructuredHeader, BaseHeader):
    """A Subject holding exactly the text given: the stock parse would decode anything in it
    that looks like an encoded-word (a subject quoting ``=?utf-8?q?x?=`` would lose it)."""

    max_count: ClassVar[Literal[1]] = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        # The parse tree serves only the stock fold, which _FoldedText replaces: parsing the
        # text (a tenth of building a message) would be thrown away.
        kwds["parse_tree"] = _UnstructuredTokenList([_ValueTerminal(value, "vtext")])
        kwds["decoded"] = value


class _FoldedAddresses:
    """An address header (From, To, Cc, ...) whose display names are folded by ``_Lines``.

    A group (``team: a@x, b@y;``) or an address that is not plain ASCII is left to the stock
    folding, which handles them (we never write either)."""

    name: str
    groups: tuple[Group, ...]

    def fold(self, *, policy: Policy) -> str:
        groups = self.groups
        if any(g.display_name is not None for g in groups):
            return str(super().fold(policy=policy))  # type: ignore[misc]
        addresses = [a for g in groups for a in g.addresses]
        if not addresses or not all(a.addr_spec.isascii() for a in addresses):
            return str(super().fold(policy=policy))  # type: ignore[misc]
        lines = _Lines(self.name)
        for n, address in enumerate(addresses):
            comma = "," if n < len(addresses) - 1 else ""
            if address.display_name:
                lines.phrase(address.display_name)
                lines.put(f"<{address.addr_spec}>{comma}")
            else:
                lines.put(f"{address.addr_spec}{comma}")
        return lines.fold(policy.linesep)


class _Addresses(_FoldedAddresses, AddressHeader):
    pass


class _UniqueAddresses(_FoldedAddresses, UniqueAddressHeader):
    pass


class _HeaderRegistry(HeaderRegistry):
    """The standard header registry with our Subject and address folding, making each header
    class once: the stock one builds a new class for every header of every message (45 a
    message here, a tenth of its cost)."""

    def __init__(self) -> None:
        super().__init__()
        # Mixins: the registry combines each with BaseHeader, as it does the stock classes.
        self.map_to_type("subject", cast("type[BaseHeader]", _Subject))
        for name in ("from", "sender", "reply-to"):
            self.map_to_type(name, cast("type[BaseHeader]", _UniqueAddresses))
        for name in ("to", "cc", "bcc"):
            self.map_to_type(name, cast("type[BaseHeader]", _Addresses))
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


#: ``email.policy.default`` (header values with CR or LF still raise), with the registry above.
_POLICY = email.policy.default.clone(header_factory=_HeaderRegistry())


def header_text(text: str) -> str:
    """A header value on one line, otherwise exactly as given: each run of control characters
    or line separators (CR, LF, tab, U+2028, ...) becomes one space."""
    return _LINE_BREAKS.sub(" ", text)


def _display_name(name: str) -> str:
    """A display name is a phrase, where RFC 5322 reads any run of white space as one space
    (and ``email.policy.default`` does so even inside an encoded-word): so it is ``one_line``,
    the text with single spaces, which every reader gives back exactly; at most ``_NAME_MAX``
    characters."""
    return one_line(name)[:_NAME_MAX].rstrip()


def _sender(mail_from: str) -> Address | str:
    """The configured sender (``Name <address>``, the name quoted or not) as an Address, so
    its display name is folded like the others; as given if it does not parse."""
    mail_from = header_text(mail_from)
    name, addr = parseaddr(mail_from)
    if not addr or "@" not in addr:
        return mail_from
    try:
        return Address(display_name=_display_name(name), addr_spec=addr)
    except (ValueError, IndexError):
        return mail_from


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


def _recipients(to: tuple[tuple[str, str], ...]) -> list[Address]:
    return [Address(display_name=_display_name(name), addr_spec=email) for name, email in to]


# --- the fast build -----------------------------------------------------------------------------
#
# Building a message with ``EmailMessage`` (set_content, add_alternative, add_attachment) and
# flattening it again in smtplib cost about 2 ms a message here, more than the whole SMTP
# exchange with a local server (bench/FINDINGS.md). Every message we send has one of a few
# shapes: text and HTML alternatives, then zero or more calendar files. So the MIME frame of a
# shape (part headers, MIME-Version lines, boundaries' places) is made once, by the email
# package itself from a reference message (``_frame``), and each message only fills it in:
#
# * its own headers are the same header objects ``build_message`` sets (``_top_fields``: our
#   folding classes, CR/LF refused by the policy's ``header_store_parse``), folded by the
#   policy as the generator folds them;
# * each text part is encoded by the content manager's own encoder (7bit, 8bit,
#   quoted-printable or base64, chosen by the same rule), each calendar file by its base64;
# * boundaries are drawn as the generator draws them and never occur in the parts.
#
# ``tests/test_mail_build.py`` checks, for varied input (hypothesis), that the bytes equal
# ``build_message``'s in both forms: as ``.eml`` (``as_bytes``) and as smtplib sends them.
# Anything the frame does not cover (a calendar file name that would be folded or quoted
# differently) takes ``build_message``.

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
