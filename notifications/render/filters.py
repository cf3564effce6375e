"""The language of the message being rendered, and the filters and gettext templates call.

``long_date``, ``genitive`` and ``lines`` are installed on the environment
(``notifications.render.environment``); they and the catalogue's gettext/ngettext read the
message's language from a context variable set per render, so one environment serves every
language.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from onboarding import i18n

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
