"""The rollout waves: each wave's dates and its municipalities by step (the rollout-wave
tracks as they are today), with the report's text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from onboarding import registry
from onboarding.db import Database
from onboarding.reports.asof import _Defs, _rows, _today
from onboarding.reports.text import _danish, _lang, _say, _table

WAVE = "rollout-wave"


def waves(db: Database, today: date | None = None) -> dict[str, Any]:
    """Each rollout wave's dates and its municipalities by step (rollout-wave tracks)."""
    day = _today(today)
    defs = _Defs(db)
    defn = defs.get(WAVE)
    labels = [s.label for s in defn.states]
    counts: dict[str, dict[str, int]] = {}
    late: dict[str, int] = {}
    for t in _rows(
        db,
        "SELECT id, state, def_version, fields, final, due FROM tracks WHERE definition = ?",
        [WAVE],
    ):
        wave = str(json.loads(t["fields"]).get("wave") or "")
        st = defs.get(WAVE, t["def_version"]).state(t["state"])
        bucket = counts.setdefault(wave.upper(), dict.fromkeys(labels, 0))
        bucket[st.label] = bucket.get(st.label, 0) + 1
        if t["due"] and not t["final"] and t["due"] < day.isoformat():
            late[wave.upper()] = late.get(wave.upper(), 0) + 1
    out = []
    for w in registry.list_waves(db):
        c = counts.get(w["code"].upper(), dict.fromkeys(labels, 0))
        out.append(
            {
                **w,
                "municipalities": sum(c.values()),
                "by_step": c,
                "overdue": late.get(w["code"].upper(), 0),
            }
        )
    return {"today": day.isoformat(), "steps": labels, "waves": out}


def waves_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    lang = _lang(lang)
    steps = report["steps"]
    day = _danish(report["today"], lang)
    lines = [_say(lang, "Rollout waves, %(day)s (municipalities)", day=day), ""]
    lines += _table(
        [
            _say(lang, "Wave"),
            _say(lang, "Go-live"),
            _say(lang, "Municipalities"),
            *steps,
            _say(lang, "Overdue"),
        ],
        [
            [
                w["code"],
                _danish(w["go_live"], lang) if w["go_live"] else "",
                w["municipalities"],
                *(w["by_step"][s] for s in steps),
                w["overdue"],
            ]
            for w in report["waves"]
        ],
        "ll" + "r" * (len(steps) + 2),
    )
    return "\n".join(lines) + "\n"
