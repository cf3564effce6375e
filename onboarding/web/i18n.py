"""Languages of the web page: Danish by default, English per user.

Every text in the templates goes through gettext (Jinja2's i18n extension). Message ids are
English; ``locale/da/LC_MESSAGES/messages.po`` holds the Danish. The ``.po`` file is compiled in
memory with Babel when the app starts, so a fresh clone needs nothing but ``pip install -e .``.
Besides the templates' texts the catalog translates a few values the library gives in English:
the phases of the shipped definitions, goal statuses, notification kinds and statuses and the
payment scenarios. A value it does not know is shown as it is.

The language of the request being rendered is a context variable, set by the app around each
request, so one Jinja2 environment serves every user.
"""

from __future__ import annotations

import gettext as gettext_module
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.messages import mofile, pofile
from babel.numbers import format_decimal

from onboarding import clock

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "da"
#: Language code -> its name in that language, in menu order.
LANGUAGES = {"da": "Dansk", "en": "English"}
#: The Babel locale used to format dates and numbers per language (English with Danish
#: conventions: 30 Jun 2021, 24-hour clock).
FORMAT_LOCALE = {"da": "da_DK", "en": "en_DK"}

_current: ContextVar[str] = ContextVar("onboarding_web_language", default=DEFAULT)


def normalise(lang: object) -> str:
    """A supported language code (anything else gives the default)."""
    return lang if isinstance(lang, str) and lang in LANGUAGES else DEFAULT


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Render in ``lang`` inside the block."""
    token = _current.set(normalise(lang))
    try:
        yield
    finally:
        _current.reset(token)


def current() -> str:
    return _current.get()


@cache
def translations(lang: str) -> gettext_module.NullTranslations:
    """The compiled catalog of a language (English: the message ids themselves)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext_module.NullTranslations()
    with po.open("rb") as fh:
        catalog = pofile.read_po(fh, locale=lang)
    buf = io.BytesIO()
    mofile.write_mo(buf, catalog)
    buf.seek(0)
    return gettext_module.GNUTranslations(buf)


def gettext(message: str) -> str:
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


def translate_value(value: object, kind: str) -> str:
    """A library value in the current language, or as it is: ``kind`` is the catalog context
    (``phase``, ``status``, ``kind``, ``outcome``, ``payment``), since one English word may be
    two Danish ones ("cancelled": a connection is *opgivet*, a notification *annulleret*)."""
    if value is None:
        return ""
    text = str(value)
    return translations(current()).pgettext(kind, text) if text else text


# --- formatting -------------------------------------------------------------------------------


def _locale() -> str:
    return FORMAT_LOCALE[current()]


def _as_date(value: object) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return clock.local_date(value)
    if isinstance(value, date):
        return value
    text = str(value)
    if len(text) > 10:
        return clock.local_date(clock.unstamp(text))
    return date.fromisoformat(text)


def fmt_date(value: object, form: str = "short") -> str:
    """A date (or stored instant) as the language writes it: 30.06.2021 / 30. jun. 2021."""
    day = _as_date(value)
    if day is None:
        return ""
    return format_date(day, form, locale=_locale())


def fmt_datetime(value: object) -> str:
    """A stored instant in Copenhagen time: 30.06.2021 17:00."""
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else clock.unstamp(str(value))
    local = moment.astimezone(clock.LOCAL)
    return format_datetime(local, "dd.MM.y HH:mm", locale=_locale())


def fmt_number(value: object) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, int | float):
        return format_decimal(value, locale=_locale())
    return str(value)
