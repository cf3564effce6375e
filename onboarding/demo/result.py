"""What a demo run gives back (``DemoResult``) and how it reports progress (``Echo``, ``t``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

Echo = Callable[[str], None]


def t(msgid: str, **params: object) -> str:
    """A line the demo prints, in the CLI's language (``--lang`` / ``ONBOARDING_LANG``, Danish
    by default): the English is the message id."""
    from onboarding import i18n

    text = i18n.gettext(i18n.cli_language(), msgid)
    return text % params if params else text


def day_month(day: date) -> str:
    """'1 April' / '1. april': a day of the simulated quarter as the CLI's language writes it."""
    from babel.dates import format_date

    from onboarding import i18n

    lang = i18n.cli_language()
    pattern = "d. MMMM" if lang == "da" else "d MMMM"
    return str(format_date(day, pattern, locale=i18n.FORMAT_LOCALE[lang]))


@dataclass
class DemoResult:
    directory: Path
    database: Path
    html: Path
    outbox: Path
    data_files: list[Path] = field(default_factory=list)
    emails: int = 0
    steps: int = 0
    credentials: dict[str, str] = field(default_factory=dict)
