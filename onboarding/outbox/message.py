"""What a message is about: its recipients now and the data its template may show.

Plain data for ``notifications.render`` (no rendering here): the track, its subject, the step,
the deadline as the sending day sees it, and the people each recipient role resolves to
through the registry. Only building a message needs it, so the registry and roles are imported
where they are used.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from onboarding import calendar, clock, definitions
from onboarding.db import Database
from workflows.model import StateDef


def recipients(db: Database, row: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The people (name, email, role) a row goes to now, and the roles with nobody to reach.

    A role is resolved through the registry's contacts by its scope kind (shipped or declared by
    a definition): for the track's municipality (municipality), its system's vendor (vendor),
    either (the track's subject) or for all (national).
    """
    from onboarding import registry, roles

    track = db.conn.execute(
        "SELECT t.municipality_code, coalesce(t.vendor_id, s.vendor_id) FROM tracks t"
        " LEFT JOIN systems s ON s.id = t.system_id WHERE t.id = ?",
        [row["track_id"]],
    ).fetchone()
    code, vendor = (track[0], track[1]) if track else (None, None)
    people: list[dict[str, Any]] = []
    missing: list[str] = []
    seen: set[str] = set()
    for item in row["recipients"]:
        if "@" in item:
            # A plain address (a notice to sapa@kombit.dk, a calendar withdrawal to the people
            # who got the event): greet by the registry's name for it when it has one.
            known = db.conn.execute(
                "SELECT name FROM contacts WHERE email = ? COLLATE NOCASE ORDER BY id LIMIT 1",
                [item],
            ).fetchone()
            found = [{"name": known[0] if known else "", "email": item.lower(), "role": None}]
        elif _unreachable(roles.scope_of(item, db), code, vendor):
            found = []
        else:
            found = [
                {"name": c["name"], "email": c["email"], "role": item}
                for c in registry.contacts_for(db, item, code, vendor)
            ]
        if not found:
            missing.append(item)
        for person in found:
            if person["email"] not in seen:
                seen.add(person["email"])
                people.append(person)
    return people, missing


def _unreachable(scope: str | None, code: int | None, vendor: int | None) -> bool:
    """A role held for a municipality (or vendor, or either) on a track that names none."""
    return (
        (scope == "municipality" and code is None)
        or (scope == "vendor" and vendor is None)
        or (scope == "subject" and code is None and vendor is None)
    )


def message_data(
    db: Database, row: Mapping[str, Any], at: datetime, lang: str = "da"
) -> dict[str, Any]:
    """Everything a template may show about a row's track (plain data, no rendering), with
    role labels in ``lang``, the language of the message."""
    from onboarding import roles

    conn = db.conn
    cur = conn.execute(
        "SELECT t.id, t.definition, t.def_version, t.state, t.final, t.fields, t.due,"
        " t.entered_at, t.index_set, t.bob, t.course, t.municipality_code, t.system_id,"
        " t.klik_task_id, t.vendor_id, t.subject_name FROM tracks t WHERE t.id = ?",
        [row["track_id"]],
    )
    t = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    fields = json.loads(t["fields"])
    defn = definitions.get(db, t["definition"], t["def_version"])
    state = defn.by_name.get(row["state"]) or _state_elsewhere(db, defn.name, row["state"])
    municipality = None
    if t["municipality_code"] is not None:
        m = conn.execute(
            "SELECT code, name, region FROM municipalities WHERE code = ?", [t["municipality_code"]]
        ).fetchone()
        municipality = {"code": m[0], "name": m[1], "region": m[2]}
    system = None
    if t["system_id"] is not None:
        s = conn.execute(
            "SELECT s.id, s.name, v.name, s.category FROM systems s"
            " JOIN vendors v ON v.id = s.vendor_id WHERE s.id = ?",
            [t["system_id"]],
        ).fetchone()
        system = {
            "id": s[0],
            "name": s[1],
            "vendor": s[2],
            "category": s[3],
            "label": f"{s[2]} {s[1]}",
        }
    indices = []
    for code in (t["index_set"] or "").split(","):
        if code:
            r = conn.execute("SELECT name FROM indices WHERE code = ?", [code]).fetchone()
            indices.append(r[0] if r else code)
    klik_task = None
    if t["klik_task_id"] is not None:
        k = conn.execute(
            "SELECT name, type, end_date FROM klik_tasks WHERE id = ?", [t["klik_task_id"]]
        ).fetchone()
        klik_task = {"name": k[0], "type": k[1], "end_date": date.fromisoformat(k[2])}
    wave = None
    if fields.get("wave"):
        w = conn.execute(
            "SELECT code, name, go_live FROM waves WHERE code = ?", [fields["wave"]]
        ).fetchone()
        if w:
            wave = {"code": w[0], "name": w[1], "go_live": date.fromisoformat(w[2])}
    parts = [
        p
        for p in (
            municipality["name"] if municipality else None,
            system["label"] if system else None,
            klik_task["name"] if klik_task else None,
            wave["name"] if wave else None,
            f"forløb {t['course']}" if t["course"] else None,
            _vendor_name(conn, t["vendor_id"]),  # a vendor subject (not a system's vendor)
            t["subject_name"],  # a free-text subject
        )
        if p
    ]
    due = date.fromisoformat(row["due_date"]) if row["due_date"] else None
    today = clock.local_date(at)
    role = state.role if state else None
    date_fields = {
        name: date.fromisoformat(value)
        for name, value in fields.items()
        if name in defn.fields and defn.fields[name].type == "date" and value
    }
    people, missing = recipients(db, row)
    for person in people:
        # Whom a greeting names when the contact has no name: the role, never its key.
        person["role_label"] = roles.label(person["role"], lang) if person["role"] else None
        person["addressee"] = (
            roles.addressee(
                person["role"],
                lang,
                municipality=municipality["name"] if municipality else None,
                vendor=system["vendor"] if system else None,
            )
            if person["role"]
            else None
        )
    return {
        "notification": {
            "id": row["id"],
            "name": row["notification"],
            "kind": row["kind"],
            "template": row["template"],
            "level": _level(row["notification"]),
        },
        "track": {
            "id": t["id"],
            "definition": t["definition"],
            "definition_title": defn.title,
            "state": row["state"],
            "step": state.label if state else row["state"],
            "phase": state.phase if state else None,
            "role": role,
            "role_label": roles.label(role, lang) if role else "",
            "current_state": t["state"],
            "finished": bool(t["final"]),
            "entered": clock.local_date(clock.unstamp(t["entered_at"])),
            "fields": fields,
            "dates": date_fields,
            "bob": bool(t["bob"]),
        },
        "subject_label": " · ".join(parts) or f"#{t['id']}",
        "municipality": municipality,
        "system": system,
        "indices": indices,
        "klik_task": klik_task,
        "wave": wave,
        "due": due,
        "today": today,
        **_deadline_facts(due, today),
        "recipients": people,
        "missing_roles": missing,
    }


def _deadline_facts(due: date | None, today: date) -> dict[str, Any]:
    """Where the sending day stands against the step's deadline, for the wording: before it
    (``working_days_left`` > 0), on the day itself (``due_today``) or after it (``overdue``, by
    ``working_days_overdue``). A Saturday after a Friday deadline is overdue by 0 working days."""
    if due is None:
        return {
            "working_days_left": None,
            "overdue": False,
            "due_today": False,
            "working_days_overdue": 0,
        }
    left = calendar.working_days_between(today, due)
    return {
        "working_days_left": left,
        "overdue": today > due,
        "due_today": today == due,
        "working_days_overdue": max(-left, 0) if today > due else 0,
    }


def _state_elsewhere(db: Database, name: str, state: str) -> StateDef | None:
    """The state in the newest stored version of the definition that has it: a kept notice of
    a state a migration renamed still shows the step's label, never its raw name."""
    versions = db.conn.execute(
        "SELECT version FROM definitions WHERE name = ? ORDER BY version DESC", [name]
    ).fetchall()
    for (version,) in versions:
        found = definitions.get(db, name, int(version)).by_name.get(state)
        if found is not None:
            return found
    return None


def _level(name: str) -> int:
    tail = name.rsplit("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


def _vendor_name(conn: sqlite3.Connection, vendor_id: int | None) -> str | None:
    if vendor_id is None:
        return None
    found = conn.execute("SELECT name FROM vendors WHERE id = ?", [vendor_id]).fetchone()
    return str(found[0]) if found else None
