"""The grid: municipality by system, each connection's current step and working days in it,
with outliers (above the Tukey fence of its step) and overdue flags, today or replayed as of a
date; and its text in blocks of systems that fit 80 columns.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from onboarding import calendar, clock, registry
from onboarding.db import Database
from onboarding.reports.asof import (
    CONNECTION,
    _category,
    _category_order,
    _Defs,
    _end_stamp,
    _rows,
    _today,
    _tracks_as_of,
)
from onboarding.reports.text import WIDTH, _danish, _lang, _say, _table, _wrap

if TYPE_CHECKING:
    from onboarding.visibility import Scope


@dataclass
class _Cell:
    track: int
    state: str
    step: int
    days: int
    final: bool
    live: bool
    overdue: bool
    outlier: bool = False

    def text(self) -> str:
        if self.final:
            return "ok" if self.live else "x"
        return (
            f"{self.step}:{self.days}"
            + ("*" if self.outlier else "")
            + ("!" if self.overdue else "")
        )


def grid(
    db: Database,
    category: str | None = None,
    today: date | None = None,
    as_of: date | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """Municipality by system: each connection's current step, working days in it, outliers.

    With ``scope`` (onboarding.visibility) only the reader's own cells are listed (all of them
    when the portfolio is public); outliers and the overdue count stay national.

    An open track is an outlier when its working days in the step lie above the upper Tukey
    fence (Q3 + 1.5 IQR) of all open tracks in the same step, with at least four of them.
    With ``as_of`` the grid is the one at the end of that day, replayed from history
    (``asof._tracks_as_of``: state, entry time and due date then).
    """
    day = as_of or _today(today)
    cat = _category(db, category)
    defs = _Defs(db)
    if as_of is None:
        tracks = _rows(
            db,
            """
            SELECT t.id, t.municipality_code, t.system_id, t.state, t.def_version, t.final,
                   t.entered_at, t.due
            FROM tracks t JOIN systems s ON s.id = t.system_id
            WHERE t.definition = ? AND (? IS NULL OR s.category = ?)
            ORDER BY t.final, t.id
            """,
            [CONNECTION, cat, cat],
        )
    else:
        in_category = {
            r["id"]
            for r in _rows(db, "SELECT id FROM systems WHERE ? IS NULL OR category = ?", [cat, cat])
        }
        tracks = sorted(
            (
                t
                for t in _tracks_as_of(db, _end_stamp(as_of), CONNECTION)
                if t["system_id"] in in_category
            ),
            key=lambda t: (t["final"], t["id"]),  # as the query above orders them
        )
    contracts = _rows(
        db,
        "SELECT c.municipality_code, c.system_id FROM contracts c JOIN systems s"
        " ON s.id = c.system_id WHERE (? IS NULL OR s.category = ?)",
        [cat, cat],
    )
    cells: dict[tuple[int, int], _Cell] = {}
    for t in tracks:
        key = (t["municipality_code"], t["system_id"])
        if key in cells and not cells[key].final:
            continue  # an open track wins over a finished one; the newest open one wins
        defn = defs.get(CONNECTION, t["def_version"])
        state = defn.state(t["state"])
        entered = clock.local_date(clock.unstamp(t["entered_at"]))
        cells[key] = _Cell(
            track=t["id"],
            state=state.name,
            step=[s.name for s in defn.states].index(state.name) + 1,
            days=max(0, calendar.working_days_between(entered, day)),
            final=bool(t["final"]),
            live=defn.bucket_rank(state.name) == len(defn.buckets) - 1,
            overdue=bool(t["due"]) and not t["final"] and t["due"] < day.isoformat(),
        )
    by_step: dict[str, list[int]] = {}
    for c in cells.values():
        if not c.final:
            by_step.setdefault(c.state, []).append(c.days)
    fences = {}
    for step_name, days in by_step.items():
        if len(days) >= 4:
            q1, _, q3 = statistics.quantiles(days, n=4, method="inclusive")
            fences[step_name] = q3 + 1.5 * (q3 - q1)
    for c in cells.values():
        if not c.final and c.state in fences and c.days > fences[c.state]:
            c.outlier = True
    shown, contracts = _own_cells(db, scope, cells, contracts)
    used = {k for k in shown} | {(c["municipality_code"], c["system_id"]) for c in contracts}
    with_contract = {(c["municipality_code"], c["system_id"]) for c in contracts}
    systems = {s["id"]: s for s in registry.list_systems(db) if s["id"] in {k[1] for k in used}}
    system_order = sorted(
        systems.values(), key=lambda s: (_category_order(s["category"]), s["label"].casefold())
    )
    names = {m["code"]: m["name"] for m in registry.list_municipalities(db)}
    rows = []
    for code in sorted({k[0] for k in used}, key=lambda c: names[c].casefold()):
        row_cells: dict[str, Any] = {}
        for s in system_order:
            key = (code, s["id"])
            cell = shown.get(key)
            if cell is not None:
                row_cells[s["label"]] = {
                    "track": cell.track,
                    "state": cell.state,
                    "step": cell.step,
                    "days": cell.days,
                    "overdue": cell.overdue,
                    "outlier": cell.outlier,
                    "final": cell.final,
                    "text": cell.text(),
                }
            elif key in with_contract:
                row_cells[s["label"]] = {"track": None, "text": "-"}
        rows.append({"code": code, "municipality": names[code], "cells": row_cells})
    return {
        "today": day.isoformat(),
        "category": cat,
        "systems": [
            {"label": s["label"], "name": s["name"], "category": s["category"]}
            for s in system_order
        ],
        "rows": rows,
        "outliers": sum(1 for c in cells.values() if c.outlier),
        "overdue": sum(1 for c in cells.values() if c.overdue),
    }


def _own_cells(
    db: Database,
    scope: Scope | None,
    cells: dict[tuple[int, int], _Cell],
    contracts: list[dict[str, Any]],
) -> tuple[dict[tuple[int, int], _Cell], list[dict[str, Any]]]:
    """The grid cells and contracts a reader sees: its own unless the portfolio is public."""
    if scope is None or scope.names_public:
        return cells, contracts
    own = scope.track_ids(db, CONNECTION)
    own_contracts = {
        (int(r[0]), int(r[1]))
        for r in db.conn.execute(
            f"SELECT c.municipality_code, c.system_id FROM contracts c WHERE {scope.contracts('c')}"
        )
    }
    return (
        {k: c for k, c in cells.items() if c.track in own},
        [c for c in contracts if (c["municipality_code"], c["system_id"]) in own_contracts],
    )


def grid_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    """The grid in blocks of systems that fit 80 columns, with a legend."""
    lang = _lang(lang)
    municipality = _say(lang, "Municipality")
    lines = [
        _say(
            lang,
            "Connections by municipality and system, %(day)s",
            day=_danish(report["today"], lang),
        )
        + (f" ({report['category']})" if report["category"] else ""),
        "",
    ]
    systems = report["systems"]
    if not systems:
        return "\n".join([*lines, _say(lang, "(no connections or contracts)")]) + "\n"
    name_width = min(17, max(len(municipality), *(len(r["municipality"]) for r in report["rows"])))
    widths = []
    for s in systems:
        cell_width = max(
            [len(r["cells"].get(s["label"], {}).get("text", "")) for r in report["rows"]] + [4]
        )
        widths.append(max(cell_width, min(len(s["name"]), 9)))
    blocks: list[list[int]] = [[]]
    used = name_width
    for i, w in enumerate(widths):
        if blocks[-1] and used + 2 + w > WIDTH:
            blocks.append([])
            used = name_width
        blocks[-1].append(i)
        used += 2 + w
    for block in blocks:
        headers = [municipality, *(systems[i]["name"] for i in block)]
        body: list[Sequence[Any] | None] = [
            [
                r["municipality"],
                *(r["cells"].get(systems[i]["label"], {}).get("text", "") for i in block),
            ]
            for r in report["rows"]
        ]
        lines += _table(
            headers,
            body,
            "l" + "r" * len(block),
            min_widths=[name_width, *(widths[i] for i in block)],
        )
        lines.append("")
    legend = _say(
        lang,
        "Cell: step:working days in it (steps as in 'onboarding workflow show connection'); "
        "ok = in operation; x = ended without going live; - = contract but no track; "
        "* = outlier for its step (%(outliers)s); ! = overdue (%(overdue)s).",
        outliers=report["outliers"],
        overdue=report["overdue"],
    )
    lines += _wrap(legend)
    return "\n".join(lines) + "\n"
