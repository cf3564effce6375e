"""Rollout progress over a year, for the HTML report's chart and the web page's: per category,
the municipalities with a connection in operation at the end of each week
(``progress_series``, from history), the year's quarterly targets in municipalities
(``_rollout_targets``), and the inline SVG's coordinates (``_chart``).
Its own module because it reads one report across many dates at once, and both faces draw it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from onboarding import i18n
from onboarding.db import Database
from onboarding.i18n import Message
from onboarding.reports.asof import CONNECTION, _category_order, _Defs, _end_stamp, _rows
from onboarding.reports.quarterly_goals import (
    QUARTER_ENDS,
    _quarter_end,
    _target_value,
    goals_file,
    load_goals,
)

#: Chart colours per category (others cycle through the rest).
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def progress_series(
    db: Database, start: date, end: date, step_days: int = 7
) -> dict[str, list[tuple[str, int]]]:
    """Per category, the distinct municipalities with a connection in operation (the last
    bucket) at the end of each ``step_days`` from ``start`` to ``end`` (both included)."""
    defs = _Defs(db)
    hist: dict[int, tuple[list[str], list[int]]] = {}
    meta: dict[int, tuple[int, str]] = {}
    for r in _rows(
        db,
        """
        SELECT h.track_id, h.at, h.to_state, h.def_version, t.municipality_code, s.category
        FROM history h JOIN tracks t ON t.id = h.track_id JOIN systems s ON s.id = t.system_id
        WHERE t.definition = ? ORDER BY h.track_id, h.seq
        """,
        [CONNECTION],
    ):
        defn = defs.get(CONNECTION, r["def_version"])
        live = int(defn.bucket_rank(r["to_state"]) == len(defn.buckets) - 1)
        times, flags = hist.setdefault(r["track_id"], ([], []))
        times.append(r["at"])
        flags.append(live)
        meta[r["track_id"]] = (r["municipality_code"], r["category"])
    days = []
    day = start
    while day < end:
        days.append(day)
        day += timedelta(days=step_days)
    days.append(end)
    series: dict[str, list[tuple[str, int]]] = {}
    categories = sorted({c for _, c in meta.values()}, key=_category_order)
    for cat in categories:
        points = []
        for d in days:
            stamp = _end_stamp(d)
            municipalities = set()
            for track_id, (times, flags) in hist.items():
                if meta[track_id][1] != cat:
                    continue
                i = bisect_right(times, stamp)
                if i and flags[i - 1]:
                    municipalities.add(meta[track_id][0])
            points.append((d.isoformat(), len(municipalities)))
        series[cat] = points
    return series


def _chart(
    series: Mapping[str, list[tuple[str, int]]],
    targets: Mapping[str, list[tuple[str, int, str]]],
    year: int,
    as_of: date,
    lang: str = i18n.DEFAULT,
) -> dict[str, Any]:
    """Coordinates for the inline SVG: lines per category, target markers, axes (month names
    in ``lang``)."""
    width, height = 760, 340
    left, right, top, bottom = 48, 150, 20, 40
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    start, end = date(year, 1, 1), date(year, 12, 31)
    values = [v for pts in series.values() for _, v in pts] + [
        v for ts in targets.values() for _, v, _ in ts
    ]
    top_value = max([10, *values])
    step = 10 if top_value <= 100 else 50 if top_value <= 500 else 100
    y_max = ((top_value + step - 1) // step) * step
    span = (end - start).days

    def x(day: date) -> float:
        return round(x0 + (x1 - x0) * (day - start).days / span, 1)

    def y(value: int) -> float:
        return round(y0 - (y0 - y1) * value / y_max, 1)

    colours = {
        c: COLOURS[i % len(COLOURS)] for i, c in enumerate(sorted(set(series) | set(targets)))
    }
    lines = []
    for cat, pts in series.items():
        coords = [
            (x(date.fromisoformat(d)), y(v))
            for d, v in pts
            if start <= date.fromisoformat(d) <= end
        ]
        if not coords:
            continue
        last = pts[-1][1]
        lines.append(
            {
                "category": cat,
                "colour": colours[cat],
                "points": " ".join(f"{a},{b}" for a, b in coords),
                "end": coords[-1],
                "last": last,
            }
        )
    markers = []
    # Categories often share targets (30 / 70 / all): side by side, each diamond stays visible.
    cats = sorted(targets, key=_category_order)
    for cat, ts in targets.items():
        shift = (cats.index(cat) - (len(cats) - 1) / 2) * 9
        for d, v, label in ts:
            px, py = round(x(date.fromisoformat(d)) + shift, 1), y(v)
            markers.append(
                {
                    "category": cat,
                    "colour": colours[cat],
                    "x": px,
                    "y": py,
                    "value": v,
                    "label": label,
                    "path": f"M{px},{py - 6} L{px + 6},{py} L{px},{py + 6} L{px - 6},{py} Z",
                }
            )
    return {
        "width": width,
        "height": height,
        "x0": x0,
        "x1": x1,
        "y0": y0,
        "y1": y1,
        "yticks": [(y(v), v) for v in range(0, y_max + 1, step if y_max <= 100 else step * 2)],
        "months": [(x(date(year, m, 1)), _month(m, lang)) for m in range(1, 13)],
        "quarters": [(x(date(year, m, d)), f"Q{q}") for q, (m, d) in QUARTER_ENDS.items()],
        "as_of": x(min(max(as_of, start), end)) if as_of.year == year else None,
        "as_of_label": i18n.fmt_date(as_of, lang),
        "lines": lines,
        "markers": markers,
        "legend": [
            {"category": c, "colour": colours[c], "y": y1 + 18 * i}
            for i, c in enumerate(sorted(set(series) | set(targets), key=_category_order))
        ],
    }


def _rollout_targets(
    db: Database, year: int, as_of: date | None = None
) -> dict[str, list[tuple[str, int, str]]]:
    """Quarterly targets counted in municipalities, per category, from the year's goals; an
    ``all`` target counts the uses on record at the quarter's end, or at ``as_of`` if earlier
    (as the goals report does)."""
    path = goals_file(year)
    if path is None:
        return {}
    spec = load_goals(path)
    out: dict[str, list[tuple[str, int, str]]] = {}
    for g in spec["goals"]:
        m = g.get("measure", {})
        if m.get("count") != "municipalities" or len(m.get("categories", [])) != 1:
            continue
        cat = m["categories"][0]
        for q, target in g["targets"].items():
            end = _quarter_end(year, int(q[1]))
            value = _target_value(db, g, target["value"], min(end, as_of or end))
            label = Message("%(q)s target %(value)s", {"q": q, "value": value})
            out.setdefault(cat, []).append((end.isoformat(), value, label))
    return out


def _month(month: int, lang: str) -> str:
    """A month's short name in ``lang`` (jan., Jan)."""
    from babel.dates import get_month_names

    return str(get_month_names("abbreviated", locale=i18n.FORMAT_LOCALE[lang])[month])
