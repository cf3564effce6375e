"""What is waiting on me: the open tracks whose next action lies with one of my roles.

"Who must act next" on a track is its state's ``role`` in the definition (what ``track show``
and ``track why`` say). An actor's work list is every open track whose state's role is a role
the actor holds, in the scope the actor holds it: a role held for all covers every track, one
held for a municipality that municipality's tracks, one held for a vendor the tracks of that
vendor's systems (and tracks about the vendor itself), as ``actors`` decides for writes.

Overdue tracks come first (the longest overdue first), then the others by deadline (none last),
then by track number. Each item carries the step, its working days so far and the steps the
responsible role may take from it, so a page can offer the action in one click.

The web page's "My work", ``onboarding track mine`` and the HTTP API all read this list.
No state or role of a shipped definition is named here: everything comes from the definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from onboarding import actors, calendar, clock, definitions
from onboarding.db import Database
from onboarding.engine.rows import TRACK_COLUMNS, _row_to_track
from onboarding.tracks import _subject_labels, subject_text
from workflows.model import Definition

__all__ = ["Reach", "reach_of", "work_list"]


@dataclass
class Reach:
    """Where one role of an actor reaches: all tracks, or some municipalities and vendors."""

    role: str
    all: bool = False
    municipalities: set[int] = field(default_factory=set)
    vendors: set[int] = field(default_factory=set)

    def sql(self) -> tuple[str, list[Any]]:
        """A condition over ``tracks t`` for the tracks this reach covers."""
        if self.all:
            return "1 = 1", []
        clauses, params = [], []
        if self.municipalities:
            clauses.append(f"t.municipality_code IN ({', '.join('?' * len(self.municipalities))})")
            params.extend(sorted(self.municipalities))
        if self.vendors:
            marks = ", ".join("?" * len(self.vendors))
            # A vendor subject names its vendor itself; otherwise it is the system's vendor.
            clauses.append(
                f"(t.vendor_id IN ({marks}) OR t.system_id IN"
                f" (SELECT id FROM systems WHERE vendor_id IN ({marks})))"
            )
            params.extend(sorted(self.vendors) * 2)
        return "(" + (" OR ".join(clauses) or "0") + ")", params


def reach_of(db: Database, actor: str) -> list[Reach]:
    """The roles ``actor`` holds and where (``NotFound`` for an unknown actor; nothing for a
    deactivated one)."""
    info = actors.get(db, actor)
    if not info.get("active", True):
        return []
    by_role: dict[str, Reach] = {}
    for g in info["grants"]:
        reach = by_role.setdefault(g["role"], Reach(g["role"]))
        if g["scope"] == "all":
            reach.all = True
        elif g["scope"] == "municipality" and g["municipality"]:
            reach.municipalities.add(int(g["municipality"]["code"]))
        elif g["scope"] == "vendor" and g["vendor"]:
            reach.vendors.add(int(g["vendor"]["id"]))
    return list(by_role.values())


#: The columns that make a track's subject text (with its wave, a field).
_SUBJECT_KEYS = (
    "municipality_code",
    "system_id",
    "klik_task_id",
    "course",
    "index_set",
    "bob",
    "vendor_id",
    "subject_name",
)


@lru_cache(maxsize=4096)
def _working_days(start: date, end: date) -> int:
    return max(0, calendar.working_days_between(start, end))


def _waiting_states(
    db: Database, defs: Mapping[tuple[str, int], Definition], roles: Iterable[str]
) -> dict[str, list[tuple[str, int, str]]]:
    """Per role: the (definition, version, state) of open tracks whose next action is its."""
    wanted = set(roles)
    out: dict[str, list[tuple[str, int, str]]] = {}
    for (name, version), defn in defs.items():
        for s in defn.states:
            if not s.final and s.role in wanted:
                out.setdefault(str(s.role), []).append((name, version, s.name))
    return out


def _definitions_in_use(db: Database) -> dict[tuple[str, int], Definition]:
    rows = db.conn.execute(
        "SELECT DISTINCT definition, def_version FROM tracks WHERE final = 0"
    ).fetchall()
    return {(str(n), int(v)): definitions.get(db, str(n), int(v)) for n, v in rows}


def _select(
    db: Database, reach: list[Reach], waiting: Mapping[str, list[tuple[str, int, str]]]
) -> list[dict[str, Any]]:
    """The open tracks in a waiting state of a role, within that role's reach (one query)."""
    clauses: list[str] = []
    params: list[Any] = []
    for r in reach:
        triples = waiting.get(r.role)
        if not triples:
            continue
        scope, scope_params = r.sql()
        rows = ", ".join("(?, ?, ?)" for _ in triples)
        clauses.append(f"((t.definition, t.def_version, t.state) IN (VALUES {rows}) AND {scope})")
        params.extend(v for triple in triples for v in triple)
        params.extend(scope_params)
    if not clauses:
        return []
    cols = ", ".join(f"t.{c.strip()}" for c in TRACK_COLUMNS.split(","))
    cur = db.conn.execute(
        f"SELECT {cols} FROM tracks t WHERE t.final = 0 AND ({' OR '.join(clauses)}) ORDER BY t.id",
        params,
    )
    return [_row_to_track(row) for row in cur.fetchall()]


def _actions(defn: Definition, state: str, role: str | None) -> list[dict[str, Any]]:
    """The steps ``role`` may take from ``state``, one per trigger (alternatives share it)."""
    out: dict[str, dict[str, Any]] = {}
    for tr in defn.transitions_from(state):
        if role in tr.roles and tr.trigger not in out:
            out[tr.trigger] = {
                "trigger": tr.trigger,
                "label": tr.label or tr.trigger,
                "to": tr.dest,
            }
    return list(out.values())


def work_list(db: Database, actor: str, today: date | None = None) -> list[dict[str, Any]]:
    """Every open track whose next action lies with one of ``actor``'s roles in its scope,
    overdue first (longest overdue first), then by deadline, then by track number.

    Each item: ``track``, ``definition``, ``title``, ``subject``, ``state``, ``step`` (the
    state's label), ``step_number``, ``role`` (who must act), ``entered_at``,
    ``days_in_step`` (working days), ``due``, ``overdue``, ``working_days_late`` and
    ``actions`` (the steps that role may take from here: ``trigger``, ``label``, ``to``).
    """
    day = today or clock.local_date(clock.now())
    reach = reach_of(db, actor)
    defs = _definitions_in_use(db)
    waiting = _waiting_states(db, defs, (r.role for r in reach))
    labels: dict[tuple[Any, ...], str] = {}
    out = []
    for t in _select(db, reach, waiting):
        defn = defs[(t["definition"], t["def_version"])]
        state = defn.state(t["state"])
        key = (*(t[k] for k in _SUBJECT_KEYS), t["fields"].get("wave"))
        if key not in labels:
            labels[key] = subject_text(_subject_labels(db, t))
        entered = clock.local_date(clock.unstamp(t["entered_at"]))
        due = t["due"]
        overdue = bool(due) and str(due) < day.isoformat()
        out.append(
            {
                "track": t["id"],
                "definition": t["definition"],
                "title": defn.title,
                "subject": labels[key],
                "state": state.name,
                "step": state.label,
                "step_number": [s.name for s in defn.states].index(state.name) + 1,
                "role": state.role,
                "entered_at": t["entered_at"],
                "days_in_step": _working_days(entered, day),
                "due": due,
                "overdue": overdue,
                "working_days_late": _working_days(date.fromisoformat(due), day) if overdue else 0,
                "version": t["version"],
                "actions": _actions(defn, state.name, state.role),
            }
        )
    out.sort(key=lambda w: (not w["overdue"], w["due"] or "9999-12-31", w["track"]))
    return out
