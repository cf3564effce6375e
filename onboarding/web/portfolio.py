"""The portfolio grid: municipality by system, each cell a track's phase as of a date.

Any definition can be shown (the connection definition by default); its tracks are laid out by
their subject (``grid``).

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

from onboarding import calendar, clock, definitions, registry, visibility
from onboarding.db import Database
from onboarding.engine import NO_REENTRY, compute_due
from onboarding.guards import GuardContext
from workflows.model import Definition, StateDef

CONNECTION = "connection"


@dataclass(frozen=True)
class GridFilter:
    category: str = ""
    vendor: str = ""
    region: str = ""
    phase: str = ""
    #: Only cells overdue as of the grid's date.
    overdue: bool = False
    #: Only cells whose next action lies with this role (the state's ``role``).
    role: str = ""


@lru_cache(maxsize=8192)
def _working_days(start: date, end: date) -> int:
    return max(0, calendar.working_days_between(start, end))


_DANISH = str.maketrans({"æ": "{", "ø": "|", "å": "}", "ä": "{", "ö": "|"})


def danish_key(name: str) -> str:
    """Sort key in Danish alphabetical order: Æ, Ø, Å after Z, and Aa as Å (Aabenraa)."""
    return name.casefold().replace("aa", "å").translate(_DANISH)


def _phase(state: StateDef) -> str:
    """What a cell is coloured and named by: the state's phase, else its bucket, else its
    label (a definition need not declare phases)."""
    return state.phase or state.bucket or state.label


def phases(defn: Definition) -> list[str]:
    """The definition's phases in the order its states first reach them."""
    out: list[str] = []
    for s in defn.states:
        if _phase(s) not in out:
            out.append(_phase(s))
    return out


def _live(defn: Definition, state: str) -> bool:
    return defn.bucket_rank(state) == len(defn.buckets) - 1


def _replay(db: Database, stamp: str, definition: str = CONNECTION) -> dict[int, dict[str, Any]]:
    """Every track of ``definition`` that existed at ``stamp``, folded from its history then."""
    out: dict[int, dict[str, Any]] = {}
    cur = db.conn.execute(
        "SELECT h.track_id, h.seq, h.to_state, h.trigger, h.at, h.def_version, h.fields,"
        " t.municipality_code, t.system_id, t.index_set, t.bob, t.version, t.due,"
        " t.klik_task_id, t.course"
        " FROM history h JOIN tracks t ON t.id = h.track_id"
        " WHERE t.definition = ? AND h.at <= ? ORDER BY h.track_id, h.seq",
        [definition, stamp],
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


#: A row or column of the grid: (kind, id). Kinds: "m" municipality, "s" system, "k" KLIK
#: task, "c" course, "i" index set, "d" the definition itself (one column), "t" a track.
_Key = tuple[str, Any]


def _row_col(t: Mapping[str, Any], definition: str) -> tuple[_Key, _Key]:
    """Where a track sits: a municipality's row when it has one (else its system's, else its
    own), and the column of what else its subject names (system, KLIK task, course, index)."""
    code, system = t.get("municipality_code"), t.get("system_id")
    if code is not None:
        row: _Key = ("m", int(code))
    elif system is not None:
        row = ("s", int(system))
    else:
        row = ("t", int(t["id"]))
    if code is not None and system is not None:
        col: _Key = ("s", int(system))
    elif t.get("klik_task_id") is not None:
        col = ("k", int(t["klik_task_id"]))
    elif t.get("course") is not None:
        col = ("c", int(t["course"]))
    elif system is not None and t.get("index_set"):
        col = ("i", str(t["index_set"]))
    else:
        col = ("d", definition)
    return row, col


def _columns(
    db: Database, keys: set[_Key], systems: Mapping[int, Mapping[str, Any]], title: str
) -> list[dict[str, Any]]:
    """The grid's columns in order: systems by category and name, then the others by name."""
    klik = {int(r[0]): str(r[1]) for r in db.conn.execute("SELECT id, name FROM klik_tasks")}
    out = []
    for kind, ident in keys:
        if kind == "s":
            s = systems[ident]
            out.append(
                {
                    "key": (kind, ident),
                    "id": ident,
                    "name": s["name"],
                    "vendor": s["vendor"],
                    "category": s["category"],
                    "label": s["label"],
                }
            )
            continue
        name = {"k": klik.get(ident, str(ident)), "c": f"{ident}", "i": str(ident)}.get(kind, title)
        out.append(
            {
                "key": (kind, ident),
                "id": None,
                "name": name,
                "vendor": "",
                "category": title if kind != "k" else "KLIK",
                "label": name,
            }
        )
    out.sort(
        key=lambda c: (
            c["key"][0] != "s",
            registry.CATEGORIES.index(c["category"])
            if c["category"] in registry.CATEGORIES
            else len(registry.CATEGORIES),
            str(c["label"]).casefold(),
        )
    )
    return out


def grid(
    db: Database,
    as_of: date,
    flt: GridFilter = GridFilter(),
    definition: str = CONNECTION,
    scope: visibility.Scope = visibility.FULL,
) -> dict[str, Any]:
    """Rows of municipalities, columns of systems, cells of a definition's tracks as of a date.

    For the connection definition a municipality and system with a contract but no track has
    an empty cell. Any other definition is laid out by its subject: a municipality's row when
    its tracks have one (else the system's), a column per system, KLIK task, course or index
    set (or one column). An open track wins over a finished one, a newer one over an older one.
    Cells are coloured by phase (a definition without phases: by bucket, else by state), and
    the cells are counted per bucket.

    Need-to-know (``scope``, onboarding.visibility): the totals (tracks, open, overdue, phase
    and bucket counts) are the national aggregate; a reader who does not read everything gets
    its own figures as ``mine`` and only the rows and cells of its own tracks, unless the
    portfolio is public: then every row is shown, and a cell or row it may not open carries
    ``readable: False`` (no link).
    """
    stamp = clock.stamp(clock.end_of_local_day(as_of))
    latest = definitions.get(db, definition)
    defs: dict[int, Definition] = {latest.version: latest}
    phase_order = phases(latest)
    systems = {
        int(s["id"]): s
        for s in registry.list_systems(db)
        if (not flt.category or s["category"] == flt.category)
        and (not flt.vendor or s["vendor"] == flt.vendor)
    }
    every_system = {int(s["id"]): s for s in registry.list_systems(db)}
    places = {int(m["code"]): m for m in registry.list_municipalities(db)}
    municipalities = {
        code: m for code, m in places.items() if not flt.region or m["region"] == flt.region
    }
    contracts: set[tuple[int, int]] = set()
    if definition == CONNECTION:
        contracts = {
            (int(r[0]), int(r[1]))
            for r in db.conn.execute(
                "SELECT c.municipality_code, c.system_id FROM contracts c"
                " LEFT JOIN contract_origins o ON o.municipality_code = c.municipality_code"
                " AND o.system_id = c.system_id WHERE o.since IS NULL OR o.since <= ?",
                [stamp],
            )
        }
    narrowed = bool(flt.category or flt.vendor)
    cells: dict[tuple[_Key, _Key], dict[str, Any]] = {}
    for t in _replay(db, stamp, definition).values():
        sid, code = t["system_id"], t["municipality_code"]
        if (sid is not None and int(sid) not in systems) or (sid is None and narrowed):
            continue
        if (code is not None and int(code) not in municipalities) or (code is None and flt.region):
            continue
        key = _row_col(t, definition)
        ver = int(t["def_version"])
        if ver not in defs:
            defs[ver] = definitions.get(db, definition, ver)
        defn = defs[ver]
        state = defn.state(t["state"])
        old = cells.get(key)
        if old is not None and (not old["final"], old["track"]) > (not state.final, t["id"]):
            continue
        due = None if state.final else _due(db, defn, t)
        entered = clock.local_date(clock.unstamp(t["entered_at"]))
        phase = _phase(state)
        cells[key] = {
            "track": t["id"],
            "state": state.name,
            "label": state.label,
            "bucket": state.bucket,
            "phase": phase,
            "phase_index": phase_order.index(phase) if phase in phase_order else -1,
            "step": [s.name for s in defn.states].index(state.name) + 1,
            "days": 0 if state.final else _working_days(entered, as_of),
            "entered": entered.isoformat(),
            "due": due,
            "overdue": bool(due) and not state.final and str(due) < as_of.isoformat(),
            "final": state.final,
            "live": _live(defn, state.name),
            "role": state.role,
            "readable": True,
        }
    if _narrows_cells(flt):
        cells = {
            k: c
            for k, c in cells.items()
            if (not flt.phase or c["phase"] == flt.phase)
            and (not flt.overdue or c["overdue"])
            and (not flt.role or c["role"] == flt.role)
        }
    national = dict(cells)  # the totals are national aggregates, whoever reads
    contract_keys = {
        (("m", m), ("s", s)) for m, s in contracts if s in systems and m in municipalities
    }
    mine = None
    if not scope.everything:
        cells, contract_keys, mine = _scoped(db, scope, definition, cells, contract_keys)
    used = set(cells) if _narrows_cells(flt) else set(cells) | contract_keys
    columns = _columns(db, {k[1] for k in used}, every_system, latest.title)
    rows = []

    def row_order(key: _Key) -> tuple[int, str]:
        kind, ident = key
        if kind == "m":
            return (0, danish_key(places[ident]["name"]))
        if kind == "s":
            return (1, str(every_system[ident]["label"]).casefold())
        return (2, f"{ident:012d}")

    for row_key in sorted({k[0] for k in used}, key=row_order):
        kind, ident = row_key
        row_cells = []
        for col in columns:
            cell = cells.get((row_key, col["key"]))
            if cell is None and (row_key, col["key"]) in used and not _narrows_cells(flt):
                cell = {"track": None}
            row_cells.append(cell)
        if kind == "m":
            m = places[ident]
            row = {"code": ident, "name": m["name"], "region": m["region"]}
        elif kind == "s":
            row = {"code": None, "name": every_system[ident]["label"], "region": None}
        else:
            row = {"code": None, "name": f"#{ident}", "region": None}
        rows.append({**row, "cells": row_cells})
    groups: list[dict[str, Any]] = []
    for col in columns:
        if groups and groups[-1]["category"] == col["category"]:
            groups[-1]["span"] += 1
        else:
            groups.append({"category": col["category"], "span": 1})
    readable_rows = _readable_rows(db, scope, {k[0] for k in used})
    for r in rows:
        r["readable"] = r["code"] is None or r["code"] in readable_rows
    cells = national
    counts = {p: 0 for p in phase_order}
    for c in cells.values():
        if c["phase"] in counts:
            counts[c["phase"]] += 1
    bucket_counts = {b: 0 for b in latest.buckets}
    for c in cells.values():
        if c["bucket"] in bucket_counts:
            bucket_counts[c["bucket"]] += 1
    return {
        "as_of": as_of.isoformat(),
        "definition": {"name": latest.name, "title": latest.title, "version": latest.version},
        "rows_are": "municipality"
        if any(r["code"] is not None for r in rows) or not rows
        else "system",
        "filter": flt,
        "systems": columns,
        "groups": groups,
        "rows": rows,
        "phases": phase_order,
        "phase_counts": counts,
        "bucket_counts": bucket_counts,
        "tracks": len(cells),
        "open": sum(1 for c in cells.values() if not c["final"]),
        "overdue": sum(1 for c in cells.values() if c["overdue"]),
        "mine": mine,
    }


def _narrows_cells(flt: GridFilter) -> bool:
    """A filter on the cells themselves (not rows or columns): contract-only cells go."""
    return bool(flt.phase or flt.overdue or flt.role)


def roles_waited_on(defn: Definition) -> list[str]:
    """The roles the definition's open states wait on, in the order the states come."""
    out: list[str] = []
    for s in defn.states:
        if s.role and not s.final and s.role not in out:
            out.append(s.role)
    return out


def _scoped(
    db: Database,
    scope: visibility.Scope,
    definition: str,
    cells: dict[tuple[_Key, _Key], dict[str, Any]],
    contract_keys: set[tuple[_Key, _Key]],
) -> tuple[dict[tuple[_Key, _Key], dict[str, Any]], set[tuple[_Key, _Key]], dict[str, int]]:
    """The cells and contract-only cells a scoped reader sees, and its own counts."""
    own = scope.track_ids(db, definition)
    for cell in cells.values():
        cell["readable"] = cell["track"] in own
    own_contracts = {
        (("m", int(r[0])), ("s", int(r[1])))
        for r in db.conn.execute(
            f"SELECT c.municipality_code, c.system_id FROM contracts c WHERE {scope.contracts('c')}"
        )
    }
    mine_cells = [c for c in cells.values() if c["readable"]]
    mine = {
        "tracks": len(mine_cells),
        "open": sum(1 for c in mine_cells if not c["final"]),
        "overdue": sum(1 for c in mine_cells if c["overdue"]),
    }
    if scope.names_public:
        return cells, contract_keys, mine
    return (
        {k: c for k, c in cells.items() if c["readable"]},
        contract_keys & own_contracts,
        mine,
    )


def _readable_rows(db: Database, scope: visibility.Scope, keys: set[_Key]) -> set[int]:
    """The municipality rows whose page the reader may open."""
    codes = [int(ident) for kind, ident in keys if kind == "m"]
    if scope.everything:
        return set(codes)
    return {
        int(r[0])
        for r in db.conn.execute(
            f"SELECT m.code FROM municipalities m WHERE {scope.municipalities('m.code')}"
        )
    } & set(codes)


def filter_options(db: Database, definition: str = CONNECTION) -> dict[str, Any]:
    """The values the grid's filters offer (phases of ``definition``), and the definitions."""
    systems = registry.list_systems(db)
    categories = [c for c in registry.CATEGORIES if any(s["category"] == c for s in systems)]
    categories += sorted({str(s["category"]) for s in systems} - set(categories))
    return {
        "categories": categories,
        "vendors": sorted({str(s["vendor"]) for s in systems}, key=str.casefold),
        "regions": sorted(
            {str(m["region"]) for m in registry.list_municipalities(db) if m["region"]}
        ),
        "phases": phases(definitions.get(db, definition)),
        "roles": roles_waited_on(definitions.get(db, definition)),
        "definitions": [
            {"name": name, "title": definitions.get(db, name, version).title}
            for name, version in definitions.names(db)
        ],
    }
