"""The portfolio grid: municipality by system, each cell a connection's phase as of a date.

Like the reports, "as of" is replayed from history: a track's state, fields and the moment it
entered its step are those of its history rows up to the end of that day, so a past date shows
the past picture. The due date is the track's own when nothing has happened to it since;
otherwise it is computed from the replayed step the way the engine computes it. No state of a
shipped definition is named here: phases, their order and the "in operation" bucket come from
the definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from sqlite_utils import Database

from onboarding import calendar, clock, definitions, registry
from onboarding.engine import NO_REENTRY, compute_due
from onboarding.guards import GuardContext
from workflows.model import Definition

CONNECTION = "connection"


@dataclass(frozen=True)
class GridFilter:
    category: str = ""
    vendor: str = ""
    region: str = ""
    phase: str = ""


@lru_cache(maxsize=8192)
def _working_days(start: date, end: date) -> int:
    return max(0, calendar.working_days_between(start, end))


_DANISH = str.maketrans({"æ": "{", "ø": "|", "å": "}", "ä": "{", "ö": "|"})


def danish_key(name: str) -> str:
    """Sort key in Danish alphabetical order: Æ, Ø, Å after Z, and Aa as Å (Aabenraa)."""
    return name.casefold().replace("aa", "å").translate(_DANISH)


def phases(defn: Definition) -> list[str]:
    """The definition's phases in the order its states first reach them."""
    out: list[str] = []
    for s in defn.states:
        if s.phase and s.phase not in out:
            out.append(s.phase)
    return out


def _live(defn: Definition, state: str) -> bool:
    return defn.bucket_rank(state) == len(defn.buckets) - 1


def _replay(db: Database, stamp: str) -> dict[int, dict[str, Any]]:
    """Every connection track that existed at ``stamp``, folded from its history up to then."""
    out: dict[int, dict[str, Any]] = {}
    cur = db.conn.execute(
        "SELECT h.track_id, h.seq, h.to_state, h.trigger, h.at, h.def_version, h.fields,"
        " t.municipality_code, t.system_id, t.index_set, t.bob, t.version, t.due,"
        " t.klik_task_id, t.course"
        " FROM history h JOIN tracks t ON t.id = h.track_id"
        " WHERE t.definition = ? AND h.at <= ? ORDER BY h.track_id, h.seq",
        [CONNECTION, stamp],
    )
    for (
        tid,
        seq,
        to_state,
        trigger,
        at,
        ver,
        fields,
        code,
        sid,
        idx,
        bob,
        version,
        due,
        klik,
        course,
    ) in cur:
        t = out.get(tid)
        if t is None:
            t = out[tid] = {
                "id": tid,
                "municipality_code": code,
                "system_id": sid,
                "index_set": idx,
                "bob": bob,
                "klik_task_id": klik,
                "course": course,
                "fields": {},
                "entered_at": at,
                "current_version": version,
                "current_due": due,
            }
        t["fields"].update(json.loads(fields))
        t["state"] = to_state
        t["def_version"] = ver
        t["seq"] = seq
        t["at"] = at
        if trigger not in NO_REENTRY:
            t["entered_at"] = at
    return out


def _due(db: Database, defn: Definition, t: Mapping[str, Any]) -> str | None:
    if t["seq"] == t["current_version"]:
        return str(t["current_due"]) if t["current_due"] else None
    state = defn.state(t["state"])
    ctx = GuardContext(db.conn, clock.unstamp(t["at"]))
    due = compute_due(ctx, state, t, clock.unstamp(t["entered_at"]))
    return due.isoformat() if due else None


def grid(db: Database, as_of: date, flt: GridFilter = GridFilter()) -> dict[str, Any]:
    """Rows of municipalities, columns of systems, cells of connection tracks as of a date.

    A municipality and system with a contract but no track has an empty cell; an open track
    wins over a finished one, a newer one over an older one.
    """
    stamp = clock.stamp(clock.end_of_local_day(as_of))
    latest = definitions.get(db, CONNECTION)
    defs: dict[int, Definition] = {latest.version: latest}
    phase_order = phases(latest)
    systems = [
        s
        for s in registry.list_systems(db)
        if (not flt.category or s["category"] == flt.category)
        and (not flt.vendor or s["vendor"] == flt.vendor)
    ]
    system_ids = {int(s["id"]) for s in systems}
    municipalities = {
        int(m["code"]): m
        for m in registry.list_municipalities(db)
        if not flt.region or m["region"] == flt.region
    }
    contracts = {
        (int(r[0]), int(r[1]))
        for r in db.conn.execute(
            "SELECT c.municipality_code, c.system_id FROM contracts c"
            " LEFT JOIN contract_origins o ON o.municipality_code = c.municipality_code"
            " AND o.system_id = c.system_id WHERE o.since IS NULL OR o.since <= ?",
            [stamp],
        )
    }
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for t in _replay(db, stamp).values():
        key = (int(t["municipality_code"]), int(t["system_id"]))
        if key[1] not in system_ids or key[0] not in municipalities:
            continue
        ver = int(t["def_version"])
        if ver not in defs:
            defs[ver] = definitions.get(db, CONNECTION, ver)
        defn = defs[ver]
        state = defn.state(t["state"])
        old = cells.get(key)
        if old is not None and (not old["final"], old["track"]) > (not state.final, t["id"]):
            continue
        due = None if state.final else _due(db, defn, t)
        entered = clock.local_date(clock.unstamp(t["entered_at"]))
        phase = state.phase or ""
        cells[key] = {
            "track": t["id"],
            "state": state.name,
            "label": state.label,
            "phase": phase,
            "phase_index": phase_order.index(phase) if phase in phase_order else -1,
            "step": [s.name for s in defn.states].index(state.name) + 1,
            "days": 0 if state.final else _working_days(entered, as_of),
            "entered": entered.isoformat(),
            "due": due,
            "overdue": bool(due) and not state.final and str(due) < as_of.isoformat(),
            "final": state.final,
            "live": _live(defn, state.name),
        }
    if flt.phase:
        cells = {k: c for k, c in cells.items() if c["phase"] == flt.phase}
        used = set(cells)
    else:
        used = set(cells) | {k for k in contracts if k[1] in system_ids and k[0] in municipalities}
    shown_systems = [s for s in systems if any(k[1] == s["id"] for k in used)]
    shown_systems.sort(
        key=lambda s: (
            registry.CATEGORIES.index(s["category"])
            if s["category"] in registry.CATEGORIES
            else len(registry.CATEGORIES),
            str(s["label"]).casefold(),
        )
    )
    rows = []
    for code in sorted({k[0] for k in used}, key=lambda c: danish_key(municipalities[c]["name"])):
        m = municipalities[code]
        row_cells = []
        for s in shown_systems:
            key = (code, int(s["id"]))
            cell = cells.get(key)
            if cell is None and key in contracts and not flt.phase:
                cell = {"track": None}
            row_cells.append(cell)
        rows.append({"code": code, "name": m["name"], "region": m["region"], "cells": row_cells})
    groups: list[dict[str, Any]] = []
    for s in shown_systems:
        if groups and groups[-1]["category"] == s["category"]:
            groups[-1]["span"] += 1
        else:
            groups.append({"category": s["category"], "span": 1})
    counts = {p: 0 for p in phase_order}
    for c in cells.values():
        if c["phase"] in counts:
            counts[c["phase"]] += 1
    return {
        "as_of": as_of.isoformat(),
        "filter": flt,
        "systems": shown_systems,
        "groups": groups,
        "rows": rows,
        "phases": phase_order,
        "phase_counts": counts,
        "tracks": len(cells),
        "open": sum(1 for c in cells.values() if not c["final"]),
        "overdue": sum(1 for c in cells.values() if c["overdue"]),
    }


def filter_options(db: Database) -> dict[str, list[str]]:
    """The values the grid's filters offer."""
    systems = registry.list_systems(db)
    categories = [c for c in registry.CATEGORIES if any(s["category"] == c for s in systems)]
    categories += sorted({str(s["category"]) for s in systems} - set(categories))
    return {
        "categories": categories,
        "vendors": sorted({str(s["vendor"]) for s in systems}, key=str.casefold),
        "regions": sorted(
            {str(m["region"]) for m in registry.list_municipalities(db) if m["region"]}
        ),
        "phases": phases(definitions.get(db, CONNECTION)),
    }
