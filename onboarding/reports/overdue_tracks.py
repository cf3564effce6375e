"""The overdue report: the open tracks of every definition past their due date as of the end
of a day, longest overdue first, narrowed by role, vendor and the reader's scope; with its
text. The one report that lists tracks rather than counting them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from onboarding import calendar, registry
from onboarding.db import Database
from onboarding.reports.asof import _Defs, _end_stamp, _rows, _today, _tracks_as_of
from onboarding.reports.text import _danish, _lang, _say, _table

if TYPE_CHECKING:
    from onboarding.visibility import Scope


def overdue(
    db: Database,
    today: date | None = None,
    role: str | None = None,
    vendor: str | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """Open tracks of every definition past their due date, the longest overdue first, as of
    the end of ``today`` (default: the real today): state and due date replayed from history,
    so a past date lists the tracks late then, however they went on.

    ``role`` keeps the tracks whose step then waited on that role (the state's responsible
    role); ``vendor`` (a name, resolved like everywhere) the tracks of its systems and about
    the vendor itself. An unknown role or vendor is refused (``InputError``/``NotFound``).
    With ``scope``, only the tracks it may read (``onboarding.visibility``).
    """
    from onboarding.roles import require_role
    from onboarding.tracks import _subject_labels, subject_text

    if role:
        require_role(role, db)
    vendor_row = registry.resolve_vendor(db, vendor) if vendor else None
    vendor_id = int(vendor_row["id"]) if vendor_row else None
    vendor_of = {
        int(s["id"]): int(s["vendor_id"]) for s in _rows(db, "SELECT id, vendor_id FROM systems")
    }
    day = _today(today)
    defs = _Defs(db)
    labels: dict[tuple[Any, ...], str] = {}
    lateness: dict[str, int] = {}

    def late(due: str) -> int:
        # Counted day by day: once per distinct due date, not once per track.
        if due not in lateness:
            lateness[due] = calendar.working_days_between(date.fromisoformat(due), day)
        return lateness[due]

    out = []
    for t in _tracks_as_of(db, _end_stamp(day), open_due_before=day.isoformat(), scope=scope):
        defn = defs.get(t["definition"], t["def_version"])
        st = defn.state(t["state"])
        if role and st.role != role:
            continue
        if vendor_id is not None:
            own = t.get("vendor_id")
            system = t.get("system_id")
            theirs = own if own is not None else vendor_of.get(system) if system else None
            if theirs != vendor_id:
                continue
        key = (
            t["municipality_code"],
            t["system_id"],
            t["klik_task_id"],
            t["course"],
            t["fields"].get("wave"),
            t["index_set"],
            t["bob"],
        )
        if key not in labels:
            labels[key] = subject_text(_subject_labels(db, t))
        out.append(
            {
                "track": t["id"],
                "definition": t["definition"],
                "subject": labels[key],
                "state": st.name,
                "label": st.label,
                "role": st.role,
                "due": t["due"],
                "working_days_late": late(t["due"]),
            }
        )
    out.sort(key=lambda r: (r["due"], r["track"]))
    return {
        "today": day.isoformat(),
        "filter": {"role": role or None, "vendor": vendor_row["name"] if vendor_row else None},
        "tracks": out,
    }


def overdue_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    lang = _lang(lang)
    rows = report["tracks"]
    day = _danish(report["today"], lang)
    narrowed = report.get("filter") or {}
    only = []
    if narrowed.get("role"):
        from onboarding.roles import label

        only.append(_say(lang, "role %(role)s", role=label(narrowed["role"], lang)))
    if narrowed.get("vendor"):
        only.append(_say(lang, "vendor %(vendor)s", vendor=narrowed["vendor"]))
    title = _say(
        lang,
        "Overdue tracks, %(day)s%(only)s: %(n)s",
        day=day,
        only=f" ({', '.join(only)})" if only else "",
        n=len(rows),
    )
    lines = [title, ""]
    if rows:
        headers = ["#", *(_say(lang, h) for h in ("Workflow", "Subject", "Step", "Due", "Late"))]
        lines += _table(
            headers,
            [
                [
                    r["track"],
                    r["definition"],
                    r["subject"],
                    r["label"],
                    _danish(r["due"], lang),
                    r["working_days_late"],
                ]
                for r in rows
            ],
            "rllllr",
        )
        lines.append(
            _say(lang, "Late = working days past due. 'onboarding track why N' explains a track.")
        )
    return "\n".join(lines) + "\n"
