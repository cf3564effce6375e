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
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

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
    if not po.exists():
        return gettext_module.NullTranslations()
    source = po.read_bytes()
    # The command line speaks Danish by default, so nearly every command reads the catalogue:
    # compiling it with Babel costs ~100 ms, reading a compiled copy well under 1 ms. The copy
    # is named by the .po's digest, so an edited (or merged) .po is never read stale. It is
    # kept in the user's cache folder, never in the installed package (which may be read-only
    # or shared by several users).
    # (SHA-256 without OpenSSL's module: workflows.digest)
    digest = sha256_hex(source)[:16]
    compiled = cache_dir() / f"messages-{lang}-{digest}.mo"
    try:
        return gettext_module.GNUTranslations(io.BytesIO(compiled.read_bytes()))
    except (OSError, ValueError):
        pass
    # Babel is imported here, not at the top: with a compiled copy it is not needed at all.
    from babel.messages import mofile, pofile

    catalog = pofile.read_po(io.BytesIO(source), locale=lang)
    buf = io.BytesIO()
    mofile.write_mo(buf, catalog)
    _keep(compiled, buf.getvalue())
    buf.seek(0)
    return gettext_module.GNUTranslations(buf)


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
    import os

    tmp = compiled.with_name(f".{compiled.name}.{os.getpid()}.tmp")
    try:
        compiled.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, compiled)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return
    lang_prefix = compiled.name.rsplit("-", 1)[0]
    for old in compiled.parent.glob(f"{lang_prefix}-*.mo"):
        if old != compiled:
            with contextlib.suppress(OSError):
                old.unlink()


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
