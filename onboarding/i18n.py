"""The project's one message catalogue: Danish for the web page, the emails and role labels.

Message ids are English; ``locale/da/LC_MESSAGES/messages.po`` holds the Danish. The ``.po``
file is compiled in memory with Babel the first time a language is asked for, so a fresh clone
needs nothing but ``pip install -e .``. English needs no file: the message ids are English.

Here live only the catalogue and the languages; who is reading (the web request's language, the
email's language) is for the caller to say: ``onboarding.web.i18n`` keeps a language per request,
``notifications.render`` one per message.
"""

from __future__ import annotations

import gettext as gettext_module
import io
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: 'onboarding --help' reads the catalogue, no dates
    from datetime import date, datetime

from workflows.digest import sha256_hex

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "da"
#: Language code -> its name in that language, in menu order.
LANGUAGES = {"da": "Dansk", "en": "English"}


def normalise(lang: object) -> str:
    """A supported language code (anything else gives the default)."""
    return lang if isinstance(lang, str) and lang in LANGUAGES else DEFAULT


@cache
def translations(lang: str) -> gettext_module.NullTranslations:
    """The compiled catalogue of a language (English: the ids themselves, and the labels of
    keys that are not English words)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    try:
        stat = po.stat()
    except OSError:
        return gettext_module.NullTranslations()
    # The command line speaks Danish by default, so nearly every command (and every --help)
    # reads the catalogue. Fastest: this checkout's unpacked catalogue (_State), trusted while
    # the .po's size, times and inode are the ones recorded with it (no hashing, no parsing:
    # ~0.2 ms against ~1.5 ms). Else the compiled copy named by the .po's digest, so an edited
    # (or merged) .po is never read stale; else Babel compiles it (~100 ms). Copies are kept in
    # the user's cache folder, never in the installed package (which may be read-only or
    # shared by several users).
    state = _State(po, lang)
    found = state.read(stat)
    if found is not None:
        return found
    source = po.read_bytes()
    # (SHA-256 without OpenSSL's module: workflows.digest)
    digest = sha256_hex(source)[:16]
    compiled = cache_dir() / f"messages-{lang}-{digest}.mo"
    try:
        found = gettext_module.GNUTranslations(io.BytesIO(compiled.read_bytes()))
    except (OSError, ValueError):
        # Babel is imported here, not at the top: with a compiled copy it is not needed at all.
        from babel.messages import mofile, pofile

        catalog = pofile.read_po(io.BytesIO(source), locale=lang)
        buf = io.BytesIO()
        mofile.write_mo(buf, catalog)
        _keep(compiled, buf.getvalue())
        buf.seek(0)
        found = gettext_module.GNUTranslations(buf)
    state.write(stat, found)
    return found


#: What ``GNUTranslations`` keeps of a parsed catalogue (its ``plural`` function is rebuilt
#: from the Plural-Forms header, as its parser builds it).
_KEPT = ("_catalog", "_info", "_charset")
#: A .po changed less than this long (ns) before its state would be written may change again
#: within the file system's time granularity without its times changing: such a state is not
#: written (git's "racily clean" rule), and the digest decides until the .po is older.
_RACY_NS = 2_000_000_000


def _now_ns() -> int:
    """The wall clock (ns) the racy rule compares the .po's times with (tests move it)."""
    import time

    return time.time_ns()


class _State:
    """A checkout's catalogue of one language, unpacked (``marshal``) in the cache folder,
    with the .po's size, mtime, ctime and inode it was read from: while they are the same, the
    .po is the same (an edit changes its ctime, which no tool can set back). Named by the .po's
    path, so that several checkouts on one machine do not replace each other's."""

    def __init__(self, po: Path, lang: str) -> None:
        where = sha256_hex(str(po).encode())[:16]
        self.path = cache_dir() / f"messages-{lang}-{where}.state"

    @staticmethod
    def _key(stat: Any) -> tuple[int, int, int, int]:
        return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)

    def read(self, stat: Any) -> gettext_module.GNUTranslations | None:
        """The catalogue, if a state recorded for exactly this .po exists and is sound."""
        import marshal

        try:
            key, kept = marshal.loads(self.path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if tuple(key) != self._key(stat) or not isinstance(kept, dict):
            return None
        found = gettext_module.GNUTranslations()  # no file: nothing parsed
        vars(found).update({k: v for k, v in kept.items() if k in _KEPT})
        found.plural = lambda n: int(n != 1)  # type: ignore[attr-defined]  # _parse's default
        plural = found.info().get("plural-forms")
        if plural:  # as GNUTranslations._parse reads the header
            expression = plural.split(";")[1].split("plural=")[1]
            found.plural = gettext_module.c2py(expression)  # type: ignore[attr-defined]
        return found

    def write(self, stat: Any, found: gettext_module.GNUTranslations) -> None:
        """Record ``found`` as the catalogue of the .po ``stat`` describes (unless the .po is
        too new to be told apart from its next edit by its times)."""
        import marshal

        if _now_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) < _RACY_NS:
            return
        kept = {k: v for k, v in vars(found).items() if k in _KEPT}
        try:
            data = marshal.dumps((self._key(stat), kept))
        except ValueError:  # pragma: no cover - a catalogue marshal cannot write
            return
        _write_atomically(self.path, data)


def cache_dir() -> Path:
    """Where compiled catalogues are kept: ``$ONBOARDING_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/onboarding``, else ``~/.cache/onboarding``."""
    import os

    if os.environ.get("ONBOARDING_CACHE_DIR"):
        return Path(os.environ["ONBOARDING_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onboarding"


def _keep(compiled: Path, data: bytes) -> None:
    """Write the compiled copy (atomically) and drop older copies of the same language; a
    cache folder that cannot be written just compiles every time."""
    import contextlib

    if not _write_atomically(compiled, data):
        return
    lang_prefix = compiled.name.rsplit("-", 1)[0]
    for old in compiled.parent.glob(f"{lang_prefix}-*.mo"):
        if old != compiled:
            with contextlib.suppress(OSError):
                old.unlink()


def _write_atomically(path: Path, data: bytes) -> bool:
    """Write ``path`` whole or not at all (a reader never sees half a file); False: the cache
    folder cannot be written."""
    import contextlib
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def gettext(lang: str, message: str) -> str:
    return translations(normalise(lang)).gettext(message)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    return translations(normalise(lang)).ngettext(singular, plural, n)


def pgettext(lang: str, context: str, message: str) -> str:
    return translations(normalise(lang)).pgettext(context, message)


# --- the reader's language outside the web page -------------------------------------------------

#: The environment variable naming the language of the command line's human output and of the
#: HTML report (``--lang`` on the root command sets it for one run).
ENV = "ONBOARDING_LANG"
_chosen: list[str] = []


def choose(lang: str | None) -> None:
    """Use ``lang`` for this process's human output (the CLI's ``--lang``); None: forget."""
    _chosen.clear()
    if lang is not None:
        _chosen.append(normalise(lang))


def cli_language() -> str:
    """The language of the command line and the HTML report: ``--lang``, else
    ``ONBOARDING_LANG``, else Danish."""
    import os

    if _chosen:
        return _chosen[0]
    return normalise(os.environ.get(ENV, DEFAULT) or DEFAULT)


# --- sentences that can be said again in another language ---------------------------------------

#: How a date reads per language (one format each: 30.06.2021, 30 Jun 2021).
DATE_FORMATS = {"da": "dd.MM.y", "en": "d MMM y"}
DATETIME_FORMATS = {"da": "dd.MM.y HH:mm", "en": "d MMM y HH:mm"}
#: The Babel locale per language (English with Danish conventions: 24-hour clock).
FORMAT_LOCALE = {"da": "da_DK", "en": "en_DK"}


#: The month names of DATE_FORMATS' "MMM" in English (Babel's en_DK, CLDR: "Sept").
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec")


def fmt_date(day: date, lang: str) -> str:
    """A date as the language writes it: 30.06.2021 / 30 Jun 2021.

    The two patterns of DATE_FORMATS written out, so a command printing one date does not
    import Babel's dates module (issue 14, start-up; a test compares every month and a range
    of years with Babel's ``format_date``)."""
    if normalise(lang) == "da":  # dd.MM.y
        return f"{day.day:02d}.{day.month:02d}.{day.year}"
    return f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"  # d MMM y


def fmt_datetime(moment: datetime, lang: str) -> str:
    """An instant in Copenhagen time as the language writes it: 30.06.2021 17:00 (the
    patterns of DATETIME_FORMATS, written out as in ``fmt_date``)."""
    from onboarding import clock

    local = moment.astimezone(clock.LOCAL)
    return f"{fmt_date(local.date(), lang)} {local.hour:02d}:{local.minute:02d}"


def fmt_number(value: int | float, lang: str) -> str:
    """A number as the language writes it: 1.234 / 1,234."""
    from babel.numbers import format_decimal

    lang = normalise(lang)
    return str(format_decimal(value, locale=FORMAT_LOCALE[lang]))


def genitive(name: str, lang: str) -> str:
    """A name in the genitive as the language writes it. Danish: an s after the name
    ("Vejles"), an apostrophe alone after s, x or z ("Aarhus'", "Tønder" -> "Tønders"), an
    acronym keeps "'s" ("KOMBIT's"); English: "'s", an apostrophe alone after s ("Systems'")."""
    hissing = ("s", "x", "z") if normalise(lang) == "da" else ("s",)
    if name[-1:].lower() in hissing:
        return f"{name}'"
    if normalise(lang) != "da" or name.isupper():
        return f"{name}'s"
    return f"{name}s"


class Term(str):
    """A value inside a message that reads differently per language: a role, a state or a
    field by its label. Its ``str`` is the form the English message has always had (a key, for
    machine readers and old scripts); ``forms`` give what a person reads in each language."""

    forms: Mapping[str, str]

    def __new__(cls, text: str, forms: Mapping[str, str]) -> Term:
        obj = super().__new__(cls, text)
        obj.forms = dict(forms)
        return obj

    def say(self, lang: str) -> str:
        lang = normalise(lang)
        return self.forms.get(lang) or self.forms.get(DEFAULT) or str(self)


class Phrases(tuple[Any, ...]):
    """Several parameters said as one, with a separator ("; " between guard reasons) or a
    word the catalogue translates (``conj="or"``: "a or b", "a eller b")."""

    sep: str
    conj: str | None

    def __new__(cls, items: Iterable[Any], sep: str = ", ", conj: str | None = None) -> Phrases:
        obj = super().__new__(cls, tuple(items))
        obj.sep = sep
        obj.conj = conj
        return obj

    def joiner(self, lang: str | None) -> str:
        if self.conj is None:
            return self.sep
        return f" {self.conj if lang is None else gettext(lang, self.conj)} "


def say(value: Any, lang: str | None) -> str:
    """A message parameter in ``lang`` (None: the stable English form of ``str``)."""
    from datetime import date, datetime

    if lang is None:
        if isinstance(value, Phrases):
            return value.joiner(None).join(say(v, None) for v in value)
        if isinstance(value, datetime):
            from onboarding import clock

            return clock.display(clock.stamp(value))
        if isinstance(value, date):
            return value.isoformat()
        return str(value)
    if isinstance(value, Message | Term):
        return value.say(lang)
    if isinstance(value, Phrases):
        return value.joiner(lang).join(say(v, lang) for v in value)
    if isinstance(value, datetime):
        return fmt_datetime(value, lang)
    if isinstance(value, date):
        return fmt_date(value, lang)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return fmt_number(value, lang)
    return str(value)


class Message(str):
    """A sentence for a person, as a message id (its English text, ``%(name)s`` placeholders)
    with parameters: ``str`` is the English (stable: JSON output and logs read it), ``say(lang)``
    looks the id up in the catalogue and says each parameter in that language. With
    ``plural`` and ``n`` the sentence is chosen by ``ngettext``.

    A ``str`` subclass, so the library can keep handing out sentences where it always has
    (guard reasons, refusals grouped by reason) and a caller that knows its reader's language
    asks for it."""

    msgid: str
    params: Mapping[str, Any]
    plural: str | None
    n: int | None

    def __new__(
        cls,
        msgid: str,
        params: Mapping[str, Any] | None = None,
        *,
        plural: str | None = None,
        n: int | None = None,
        text: str | None = None,
    ) -> Message:
        """``text`` overrides the English ``str`` (a refusal with its command-line hint)."""
        values = dict(params or {})
        if text is None:
            chosen = plural if plural is not None and n is not None and n != 1 else msgid
            text = chosen % {k: say(v, None) for k, v in values.items()} if values else chosen
        obj = super().__new__(cls, text)
        obj.msgid, obj.params, obj.plural, obj.n = msgid, values, plural, n
        return obj

    def say(self, lang: str) -> str:
        lang = normalise(lang)
        cat = translations(lang)
        if self.plural is not None and self.n is not None:
            text = cat.ngettext(self.msgid, self.plural, self.n)
        else:
            text = cat.gettext(self.msgid)
        if not self.params:
            return text
        return text % {k: say(v, lang) for k, v in self.params.items()}


def localise(text: object, lang: str) -> str:
    """Any text the library gave, in ``lang`` when it can be said again (a ``Message``),
    otherwise as it is."""
    if isinstance(text, Message | Term):
        return text.say(lang)
    return "" if text is None else str(text)


def reread(text: str, msgids: Iterable[str]) -> Message | str:
    """A sentence kept as its English text (a database column, a log), as the ``Message`` it
    was made from when it is one of ``msgids`` (its parameters as they were written), so a
    person reads it in their language; any other text as it is."""
    for msgid in msgids:
        found = _pattern(msgid).fullmatch(text)
        if found is not None:
            return Message(msgid, found.groupdict(), text=text)
    return text


@cache
def _pattern(msgid: str) -> Any:
    """A message id as a pattern matching the texts it makes (each placeholder: any text)."""
    import re

    return re.compile(re.sub(r"%\\\(\w+\\\)s", _group, re.escape(msgid)), re.S)


def _group(placeholder: Any) -> str:
    name = placeholder.group(0)[3:-3]  # %\(name\)s
    return f"(?P<{name}>.+?)"
