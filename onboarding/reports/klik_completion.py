"""KLIK completion: per KLIK task, the municipalities in each status bucket (the deck's
Fuldført / Påbegyndt / Ikke påbegyndt) as of a date, and for one task its open municipalities;
with the report's text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from onboarding import registry
from onboarding.db import Database
from onboarding.reports.asof import _Defs, _end_stamp, _today, _tracks_as_of
from onboarding.reports.text import _danish, _lang, _say, _table, _wrap

if TYPE_CHECKING:
    from onboarding.visibility import Scope

KLIK = "klik-task"


def klik(
    db: Database,
    task: str | None = None,
    as_of: date | None = None,
    today: date | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """Per KLIK task, municipalities by status bucket (the deck's Fuldført / Påbegyndt / Ikke
    påbegyndt) as of a date. A municipality with no track for a task counts in the first bucket
    (KLIK tasks go to every municipality). With ``scope`` (onboarding.visibility) the counts
    stay national but a task's open municipalities list only the reader's own (all when the
    portfolio is public)."""
    day = as_of or _today(today)
    defs = _Defs(db)
    defn = defs.get(KLIK)
    buckets = list(defn.buckets)
    tasks = registry.list_klik_tasks(db)
    if task:
        tasks = [registry.resolve_klik_task(db, task)]
    names = {m["code"]: m["name"] for m in registry.list_municipalities(db)}
    # State and due date as of the day, replayed: the current row would lose the due date of
    # a task finished since (and with it the overdue count of that day).
    states = _tracks_as_of(db, _end_stamp(day), KLIK)
    out = []
    for t in tasks:
        counts = dict.fromkeys(buckets[::-1], 0)
        seen: dict[int, dict[str, Any]] = {}
        for s in (s for s in states if s["klik_task_id"] == t["id"]):  # by id: the newest wins
            seen[s["municipality_code"]] = s
        open_rows = []
        overdue_count = 0
        for code, s in seen.items():
            st = defs.get(KLIK, s["def_version"]).state(s["state"])
            bucket = st.bucket or buckets[0]
            counts[bucket] += 1
            due = s["due"] if not st.final else None
            late = bool(due) and not st.final and str(due) < day.isoformat()
            overdue_count += late
            if not st.final:
                open_rows.append(
                    {
                        "code": code,
                        "municipality": names.get(code),
                        "track": s["id"],
                        "state": st.name,
                        "label": st.label,
                        "bucket": bucket,
                        "due": due,
                        "overdue": late,
                    }
                )
        without = len(names) - len(seen)
        counts[buckets[0]] += without
        entry: dict[str, Any] = {
            "task": t["name"],
            "type": t["type"],
            "end_date": t["end_date"],
            "counts": counts,
            "total": sum(counts.values()),
            "without_track": without,
            "overdue": overdue_count,
        }
        if task:
            if scope is not None and not scope.names_public:
                own = scope.track_ids(db, KLIK)
                open_rows = [r for r in open_rows if r["track"] in own]
            entry["open"] = sorted(open_rows, key=lambda r: str(r["municipality"]).casefold())
        out.append(entry)
    return {"as_of": day.isoformat(), "buckets": buckets[::-1], "tasks": out}


def klik_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    lang = _lang(lang)
    buckets = report["buckets"]
    day = _danish(report["as_of"], lang)
    lines = [_say(lang, "KLIK tasks, status per %(day)s (municipalities)", day=day), ""]
    rows: list[Sequence[Any] | None] = [
        [
            t["task"],
            _danish(t["end_date"], lang) if t["end_date"] else "",
            *(t["counts"][b] for b in buckets),
            t["overdue"],
        ]
        for t in report["tasks"]
    ]
    headers = [_say(lang, "Task"), _say(lang, "End date"), *buckets, _say(lang, "Overdue")]
    lines += _table(headers, rows, "ll" + "r" * (len(buckets) + 1))
    for t in report["tasks"]:
        if t["without_track"]:
            lines += _wrap(
                _say(
                    lang,
                    "%(task)s: %(n)s municipalities have no track for it and count as %(bucket)s.",
                    task=t["task"],
                    n=t["without_track"],
                    bucket=buckets[-1],
                )
            )
        if t.get("open"):  # an empty section is left out: the counts above say it
            lines += ["", _say(lang, "Open: %(task)s (%(type)s)", task=t["task"], type=t["type"])]
            lines += _table(
                [_say(lang, "Municipality"), _say(lang, "Status"), _say(lang, "Due")],
                [
                    [
                        r["municipality"],
                        r["label"],
                        (_danish(r["due"], lang) if r["due"] else "")
                        + (" !" if r["overdue"] else ""),
                    ]
                    for r in t["open"]
                ],
                "lll",
            )
    return "\n".join(lines) + "\n"
