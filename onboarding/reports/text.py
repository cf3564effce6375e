"""How the text reports are laid out: aligned tables that fit 80 columns (a long cell wraps,
never cut), wrapped paragraphs, and the language helpers every ``*_text`` function uses (a
day, a number and a sentence from the catalogue in the reader's language).
Its own module because every report's text uses it and it knows no report.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import date
from typing import Any

from onboarding import i18n

WIDTH = 80


def _cell_lines(text: str, width: int) -> list[str]:
    """A cell as the lines it takes in a column ``width`` wide: wrapped, never cut, so a
    report piped into a mail or a file keeps every word."""
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_long_words=True) or [""]


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any] | None],
    align: str,
    width: int = WIDTH,
    min_widths: Sequence[int] | None = None,
) -> list[str]:
    """Lines of an aligned table that fits ``width``; a ``None`` row is a rule line.

    ``align`` has one letter per column, ``l`` or ``r``; left-aligned columns are narrowed
    when the table would be too wide, and a cell longer than its column wraps onto more lines.
    """
    cells = [None if r is None else ["" if v is None else str(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        if r is not None:
            widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    if min_widths:
        widths = [max(w, m) for w, m in zip(widths, min_widths, strict=True)]
    budget = width - 2 * (len(headers) - 1)
    while sum(widths) > budget:
        cuttable = [i for i, a in enumerate(align) if a == "l" and widths[i] > 6]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1

    def block(values: Sequence[str]) -> list[str]:
        if all(len(v) <= w for v, w in zip(values, widths, strict=True)):
            # One line (nearly every row): the same line as below, without the wrapping
            # machinery (half the text's time for a 10^4-row rollout table).
            return [
                "  ".join(
                    v.rjust(w) if a == "r" else v.ljust(w)
                    for v, w, a in zip(values, widths, align, strict=True)
                ).rstrip()
            ]
        parts = [_cell_lines(v, w) for v, w in zip(values, widths, strict=True)]
        out = []
        for i in range(max(len(p) for p in parts)):
            row = []
            for p, w, a in zip(parts, widths, align, strict=True):
                v = p[i] if i < len(p) else ""
                row.append(v.rjust(w) if a == "r" else v.ljust(w))
            out.append("  ".join(row).rstrip())
        return out

    rule = "  ".join("-" * w for w in widths)
    lines = [*block(headers), rule]
    for r in cells:
        lines += [rule] if r is None else block(r)
    return lines


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent) or [""]


def _danish(day: str, lang: str = i18n.DEFAULT) -> str:
    """A report's day as the language writes it (30.06.2021, 30 Jun 2021)."""
    return i18n.fmt_date(date.fromisoformat(day), lang)


def _lang(lang: str | None) -> str:
    """The language of a text report: given, else ``--lang``/``ONBOARDING_LANG``, else da."""
    return i18n.normalise(lang or i18n.cli_language())


def _say(lang: str, msgid: str, **params: Any) -> str:
    text = i18n.gettext(lang, msgid)
    return text % params if params else text


def _num(value: Any, lang: str) -> str:
    return i18n.fmt_number(value, lang) if isinstance(value, int) else str(value)
