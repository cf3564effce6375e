"""The reports as pages and CSV files."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from typing import Any

from starlette.responses import Response

from onboarding import reports, visibility
from onboarding.db import Database
from onboarding.errors import NotFound
from onboarding.reports import progress
from onboarding.web import portfolio
from onboarding.web.core import NO_STORE, WEB, BadRequest, Page, _parse_day
from onboarding.web.security import csv_cell


def _csv_response(name: str, header: list[str], rows: Iterable[Iterable[Any]]) -> Response:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([csv_cell(h) for h in header])
    for r in rows:
        w.writerow([csv_cell(v) for v in r])
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
    )


REPORTS = ("rollout", "goals", "klik", "overdue")


def _report_data(page: Page, name: str) -> dict[str, Any]:
    as_of, problem = _parse_day(page.query("as_of"), page.today)
    as_of = min(as_of, page.today)
    data: dict[str, Any] = {"as_of": as_of, "problem": problem, "name": name}
    if name == "rollout":
        category = page.query("category")
        cats = portfolio.filter_options(page.db)["categories"]
        data["category"] = category if category in cats else ""
        data["categories"] = cats
        data["report"] = reports.rollout(page.db, data["category"] or None, as_of)
    elif name == "goals":
        year = as_of.year
        data["year"] = year
        data["report"] = (
            reports.goals(page.db, year, today=as_of) if reports.goals_file(year) else None
        )
        data["chart"] = _chart(page.db, as_of)
    elif name == "klik":
        data["report"] = reports.klik(page.db, as_of=as_of)
    else:
        data.update(_overdue_filters(page))
        # A list of tracks: only the reader's own (the other reports are aggregate counts).
        scope = visibility.of(page.db, page.actor)
        data["report"] = reports.overdue(
            page.db,
            today=as_of,
            role=data["role"] or None,
            vendor=data["vendor"] or None,
            scope=scope,
        )
    return data


def _overdue_filters(page: Page) -> dict[str, Any]:
    """The overdue report's filters (responsible role, vendor) from the URL; a value that is
    not offered is ignored, as on the grid. ``filter_query`` carries them to the CSV link."""
    from urllib.parse import urlencode

    from onboarding import definitions, registry

    roles: list[str] = []
    for name, version in definitions.names(page.db):
        for r in portfolio.roles_waited_on(definitions.get(page.db, name, version)):
            if r not in roles:
                roles.append(r)
    vendors = sorted((str(v["name"]) for v in registry.list_vendors(page.db)), key=str.casefold)
    role = page.query("role") if page.query("role") in roles else ""
    vendor = page.query("vendor") if page.query("vendor") in vendors else ""
    chosen = {k: v for k, v in (("role", role), ("vendor", vendor)) if v}
    return {
        "role": role,
        "vendor": vendor,
        "roles": roles,
        "vendors": vendors,
        "filter_query": ("&" + urlencode(chosen)) if chosen else "",
    }


def _chart(db: Database, as_of: date) -> dict[str, Any]:
    """The rollout chart of the HTML report: municipalities in operation against targets."""
    year = as_of.year
    start = date(year, 1, 1)
    series = progress.progress_series(db, start, as_of) if as_of >= start else {}
    targets = progress._rollout_targets(db, year, as_of)
    return progress._chart(series, targets, year, as_of)


def report_page(page: Page) -> Response:
    name = page.request.path_params.get("name", "rollout")
    if name not in REPORTS:
        raise NotFound("report", name)
    return WEB(page).render(page, "reports.html", reports=REPORTS, **_report_data(page, name))


def report_csv(page: Page) -> Response:
    name = page.request.path_params["name"]
    if name not in REPORTS:
        raise NotFound("report", name)
    data = _report_data(page, name)
    if data["problem"]:  # a file "as of" another day than asked would mislead
        raise BadRequest(data["problem"])
    r = data["report"]
    day = data["as_of"].isoformat()
    if name == "rollout":
        keys = ("in_operation", "agreed", "not_agreed", "total")
        rows: list[list[Any]] = []
        for c in r["categories"]:
            for row in c["rows"]:
                rows.append(
                    [r["as_of"], c["category"], "system", row["vendor"], row["system"]]
                    + [row[k] for k in keys]
                    + [""]
                )
            rows.append(
                [r["as_of"], c["category"], "total", "", ""]
                + [c["total"][k] for k in keys]
                + [c["distinct_municipalities"]]
            )
        return _csv_response(
            f"rollout-{day}.csv",
            ["as_of", "category", "row", "vendor", "system", *keys, "distinct_municipalities"],
            rows,
        )
    if name == "goals":
        goal_rows = r["goals"] if r else []
        return _csv_response(
            f"goals-{day}.csv",
            [
                "year",
                "quarter",
                "goal",
                "label",
                "target_label",
                "target",
                "actual",
                "status",
                "measured_on",
            ],
            [
                [
                    r["year"],
                    g["quarter"],
                    g["goal"],
                    g["label"],
                    g["target_label"] or "",
                    g["target"],
                    "" if g["actual"] is None else g["actual"],
                    g["status"],
                    g["measured_on"],
                ]
                for g in goal_rows
            ],
        )
    if name == "klik":
        buckets = r["buckets"]
        return _csv_response(
            f"klik-{day}.csv",
            ["as_of", "task", "type", "end_date", *buckets, "total", "overdue"],
            [
                [
                    r["as_of"],
                    t["task"],
                    t["type"],
                    t["end_date"],
                    *(t["counts"][b] for b in buckets),
                    t["total"],
                    t["overdue"],
                ]
                for t in r["tasks"]
            ],
        )
    return _csv_response(
        f"overdue-{day}.csv",
        [
            "today",
            "track",
            "definition",
            "subject",
            "state",
            "label",
            "role",
            "due",
            "working_days_late",
        ],
        [
            [
                r["today"],
                t["track"],
                t["definition"],
                t["subject"],
                t["state"],
                t["label"],
                t["role"] or "",
                t["due"],
                t["working_days_late"],
            ]
            for t in r["tracks"]
        ],
    )
