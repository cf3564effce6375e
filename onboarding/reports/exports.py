"""The reports as files: the rollout and buckets reports as CSV (cells a spreadsheet would run
as a formula neutralised) and as one self-contained HTML file each (Jinja2, imported only when
HTML is asked for). Its own module because the reports themselves are plain dicts (the
``--json`` shape) and their text; these are the other formats of the same dicts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onboarding import clock, i18n
from onboarding.csvio import safe_row
from onboarding.db import Database
from onboarding.reports.asof import _today
from onboarding.reports.progress import _chart, _rollout_targets, progress_series
from onboarding.reports.quarterly_goals import goals, goals_file
from onboarding.reports.vendor_rollout import _ORDER

if TYPE_CHECKING:
    from jinja2 import Environment

#: onboarding/templates: the package's parent holds it, beside the web's and the mails' own.
TEMPLATES = Path(__file__).parents[1] / "templates"


def rollout_csv(report: Mapping[str, Any]) -> str:
    """One line per vendor solution and per category total (``row`` says which); text cells
    that a spreadsheet would run as a formula are neutralised (``csvio.safe_cell``)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["as_of", "category", "row", "vendor", "system", *_ORDER, "distinct_municipalities"])
    for c in report["categories"]:
        for r in c["rows"]:
            w.writerow(
                safe_row(
                    [report["as_of"], c["category"], "system", r["vendor"], r["system"]]
                    + [r[k] for k in _ORDER]
                    + [""]
                )
            )
        w.writerow(
            safe_row(
                [report["as_of"], c["category"], "total", "", ""]
                + [c["total"][k] for k in _ORDER]
                + [c["distinct_municipalities"]]
            )
        )
    return out.getvalue()


def _environment(lang: str) -> Environment:
    """The HTML reports' Jinja2 environment: their templates, autoescaped, texts from the
    catalogue in ``lang``."""
    from jinja2 import Environment, FileSystemLoader  # here: only an HTML report needs Jinja2

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(lang), newstyle=True
    )
    return env


def rollout_html(
    db: Database, report: Mapping[str, Any], today: date | None = None, lang: str | None = None
) -> str:
    """One self-contained HTML file (no scripts, no external references): the rollout tables,
    the year's goals and an inline SVG chart of rollout progress against quarterly targets.
    In ``lang`` (default: ``--lang``/``ONBOARDING_LANG``, Danish): texts from the catalogue,
    goal names and statuses by their labels, dates and months as the language writes them."""
    lang = i18n.normalise(lang or i18n.cli_language())
    as_of = date.fromisoformat(report["as_of"])
    year = as_of.year
    start = date(year, 1, 1)
    series = progress_series(db, start, as_of) if as_of >= start else {}
    shown = {c["category"] for c in report["categories"]}
    series = {c: pts for c, pts in series.items() if c in shown}
    targets = {c: t for c, t in _rollout_targets(db, year, as_of).items() if c in shown}
    chart = _chart(series, targets, year, as_of, lang)
    goal_report = None
    if goals_file(year) is not None:
        goal_report = goals(db, year, today=min(_today(today), as_of))
    env = _environment(lang)
    env.filters.update(
        say=lambda text: i18n.localise(text, lang),
        num=lambda n: i18n.fmt_number(n, lang) if isinstance(n, int | float) else n,
        goal=lambda text: i18n.pgettext(lang, "goal", str(text)) if text else "",
        status=lambda text: i18n.pgettext(lang, "status", str(text)),
    )
    template = env.get_template("report.html.j2")
    return template.render(
        lang=lang,
        report=report,
        chart=chart,
        goals=goal_report,
        as_of_label=i18n.fmt_date(as_of, lang),
        generated=i18n.fmt_datetime(clock.now(), lang),
        order=_ORDER,
        total_label=i18n.gettext(lang, "Total"),
    )


def buckets_csv(report: Mapping[str, Any]) -> str:
    """One line per group and one total line (``row`` says which); formula cells neutralised."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    keys = [c["key"] for c in report["columns"]]
    w.writerow(
        safe_row(
            [
                "as_of",
                "definition",
                "by",
                "row",
                "group",
                *(c["label"] for c in report["columns"]),
                "total",
            ]
        )
    )
    head = [report["as_of"], report["definition"]["name"], report["by"] or ""]
    for r in report["rows"]:
        w.writerow(
            safe_row([*head, "group", r["label"], *(r["counts"][k] for k in keys), r["total"]])
        )
    total = report["total"]
    w.writerow(safe_row([*head, "total", "", *(total["counts"][k] for k in keys), total["total"]]))
    return out.getvalue()


def buckets_html(report: Mapping[str, Any], lang: str | None = None) -> str:
    """One self-contained HTML file (no scripts, no external references) of the table, in
    ``lang`` (default: ``--lang``/``ONBOARDING_LANG``, Danish)."""
    lang = i18n.normalise(lang or i18n.cli_language())
    return (
        _environment(lang)
        .get_template("buckets.html.j2")
        .render(
            lang=lang,
            report=report,
            keys=[c["key"] for c in report["columns"]],
            as_of_label=i18n.fmt_date(date.fromisoformat(report["as_of"]), lang),
            generated=i18n.fmt_datetime(clock.now(), lang),
            total_label=i18n.gettext(lang, "Total"),
        )
    )
