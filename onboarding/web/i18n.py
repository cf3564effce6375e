"""Languages of the web page: Danish by default, English per user.

Every text in the templates goes through gettext (Jinja2's i18n extension). Message ids are
English; the Danish is in the project's one catalogue (``onboarding/i18n.py``,
``onboarding/locale/da/LC_MESSAGES/messages.po``), shared with the emails.
Besides the templates' texts the catalog translates a few values the library gives in English:
the phases of the shipped definitions, goal statuses, notification kinds and statuses and the
payment scenarios. A value it does not know is shown as it is.

The language of the request being rendered is a context variable, set by the app around each
request, so one Jinja2 environment serves every user.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime

from babel.numbers import format_decimal

from onboarding import clock
from onboarding.i18n import DEFAULT, LANGUAGES, LOCALE_DIR, normalise, translations

__all__ = [
    "DEFAULT",
    "LANGUAGES",
    "LOCALE_DIR",
    "current",
    "gettext",
    "language",
    "ngettext",
    "normalise",
    "say",
    "say_error",
    "translate_value",
    "translations",
]
#: The Babel locale used to format dates and numbers per language (English with Danish
#: conventions: 30 Jun 2021, 24-hour clock).
FORMAT_LOCALE = {"da": "da_DK", "en": "en_DK"}

_current: ContextVar[str] = ContextVar("onboarding_web_language", default=DEFAULT)


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


def gettext(message: str) -> str:
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


def say(text: object) -> str:
    """A sentence the library gave (a guard reason, a refusal) in the current language."""
    from onboarding.i18n import localise

    return localise(text, current())


def say_error(exc: BaseException) -> str:
    """A user error as the page says it: in the current language, without command-line hints."""
    from onboarding.errors import OnboardingError

    if isinstance(exc, OnboardingError):
        return exc.say(current())
    return str(exc)


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
    """A date (or stored instant) in the language's one format: 30.06.2021 / 30 Jun 2021.
    (``form`` is accepted for old templates; one page has one date format.)"""
    from onboarding.i18n import fmt_date as one_format

    day = _as_date(value)
    if day is None:
        return ""
    return one_format(day, current())


def fmt_datetime(value: object) -> str:
    """A stored instant in Copenhagen time: 30.06.2021 17:00 / 30 Jun 2021 17:00."""
    from onboarding.i18n import fmt_datetime as one_format

    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else clock.unstamp(str(value))
    return one_format(moment, current())


def fmt_number(value: object) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, int | float):
        return format_decimal(value, locale=_locale())
    return str(value)
