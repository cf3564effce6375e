"""Starting tracks: what a new track is about (``Subject``, its options checked against the
definition's subject declaration and resolved to registry rows, its open-track key), and
``start`` / ``start_in``, which insert the track and its first history row.

Separate because only a start (and the status import, which starts tracks) resolves a
subject; the registry is imported inside the function that needs it, as before.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from onboarding import audit, clock, definitions, outbox, permits, terms
from onboarding.db import Database, immediate
from onboarding.engine.planning import compute_due
from onboarding.engine.rows import _FIELDS_JSON, START, coerce_fields
from onboarding.engine.writing import Act
from onboarding.errors import InputError, OnboardingError
from onboarding.guards import GuardContext
from onboarding.i18n import Message
from onboarding.roles import require_role
from workflows.model import OPTIONAL_PARTS, Definition
from workflows.record import record as dataclass


@dataclass(frozen=True)
class Subject:
    """What a new track is about, as the user named it (one attribute per ``track start``
    option; which apply is the definition's subject declaration)."""

    municipality: str | None = None
    system: str | None = None
    index: str | None = None
    bob: bool = False
    klik_task: str | None = None
    wave: str | None = None
    course: int | None = None
    vendor: str | None = None
    name: str | None = None


#: The ``Subject`` attribute behind each part (``index`` and ``index_set`` share ``--index``).
_PART_ATTR: Mapping[str, str] = {
    "municipality": "municipality",
    "vendor": "vendor",
    "system": "system",
    "index": "index",
    "index_set": "index",
    "bob": "bob",
    "klik_task": "klik_task",
    "wave": "wave",
    "course": "course",
    "name": "name",
}

#: The track's value of each part: its column (``wave`` lives in the fields, as it always has).
_PART_COLUMN: Mapping[str, str] = {
    "municipality": "municipality_code",
    "vendor": "vendor_id",
    "system": "system_id",
    "index": "index_set",
    "index_set": "index_set",
    "klik_task": "klik_task_id",
    "course": "course",
    "name": "subject_name",
}


def _option(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def _given(subject: Subject) -> set[str]:
    given = {
        k
        for k in (
            "municipality",
            "system",
            "index",
            "klik_task",
            "wave",
            "course",
            "vendor",
            "name",
        )
        if getattr(subject, k) is not None
    }
    if subject.bob:
        given.add("bob")
    return given


def _check_options(defn: Definition, subject: Subject) -> None:
    """Refuse an option the subject does not name, and a missing one it requires."""
    decl = defn.subject_parts
    takes = {_PART_ATTR[p] for p in decl.of}
    options = ", ".join(decl.options)
    extra = sorted(_given(subject) - takes)
    if extra:
        raise InputError(
            Message(
                "%(options)s does not apply to %(definition)s (its subject takes %(takes)s; "
                "see 'onboarding workflow show %(definition)s')",
                {
                    "options": ", ".join(map(_option, extra)),
                    "definition": defn.name,
                    "takes": options,
                },
            )
        )
    required = {_PART_ATTR[p] for p in decl.of if p not in OPTIONAL_PARTS}
    missing = sorted(a for a in required if getattr(subject, a) in (None, ""))
    if missing:
        raise InputError(
            Message(
                "%(definition)s tracks are about %(subject)s: give %(options)s",
                {
                    "definition": defn.name,
                    "subject": decl.text,
                    "options": ", ".join(map(_option, missing)),
                },
            )
        )


def _subject_name(text: str) -> str:
    """A free-text name as stored: surrounding and repeated spaces removed."""
    name = " ".join(text.split())
    if not name:
        raise InputError(Message("--name: give the subject's name (not blank)"))
    if len(name) > 200:
        raise InputError(Message("--name: at most 200 characters"))
    return name


def resolve_subject(db: Database, defn: Definition, subject: Subject) -> dict[str, Any]:
    """Resolve the names in a subject to registry rows; the columns of the new track.

    Only the parts the definition's subject declares are read: a track of a subject without an
    index part has no index (KOMBIT's ``sd`` default belongs to the index parts), and BoB is
    only a connection's flag."""
    from onboarding import registry  # here: only a start resolves a subject

    _check_options(defn, subject)
    parts = defn.subject_parts.of
    cols: dict[str, Any] = {"bob": int(subject.bob), "fields": {}}
    if subject.municipality:
        cols["municipality_code"] = int(
            registry.resolve_municipality(db, subject.municipality)["code"]
        )
    if subject.vendor:
        cols["vendor_id"] = int(registry.resolve_vendor(db, subject.vendor)["id"])
    if subject.system:
        cols["system_id"] = int(registry.resolve_system(db, subject.system)["id"])
    if "index" in parts or "index_set" in parts:
        names = (subject.index or "sd").split(",")
        codes = sorted({str(registry.resolve_index(db, n.strip())["code"]) for n in names})
        if "index" in parts and len(codes) != 1:
            what = (
                Message("a system-readiness track")
                if defn.subject == "system"
                else Message("this subject")
            )
            raise InputError(Message("%(what)s is for one index: give one --index", {"what": what}))
        cols["index_set"] = ",".join(codes)
    if subject.klik_task:
        cols["klik_task_id"] = int(registry.resolve_klik_task(db, subject.klik_task)["id"])
    if subject.wave:
        cols["fields"]["wave"] = str(registry.resolve_wave(db, subject.wave)["code"])
    if subject.course is not None:
        if not 1 <= subject.course <= 4:
            raise InputError(
                Message(
                    "--course %(course)s: courses are numbered 1 to 4",
                    {"course": str(subject.course)},
                )
            )
        cols["course"] = subject.course
    if subject.name is not None:
        cols["subject_name"] = _subject_name(subject.name)
    cols["subject_key"] = _subject_key(defn.subject_parts.key, cols)
    return cols


def _subject_key(key: tuple[str, ...], cols: Mapping[str, Any]) -> str:
    """The parts that identify an open track, joined by ':' in the declared key's order (the
    order today's kinds always used, so tracks already stored keep their key). A free-text
    name counts without case and extra spaces."""
    values = []
    for part in key:
        if part == "wave":
            values.append(str(cols["fields"]["wave"]))
        elif part == "name":
            values.append(str(cols["subject_name"]).casefold())
        else:
            values.append(str(cols[_PART_COLUMN[part]]))
    return ":".join(values)


def start(
    db: Database,
    definition: str,
    subject: Subject,
    act: Act,
    sets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a track on the latest version of a definition; the start is its first history row."""
    with immediate(db) as conn:
        return start_in(conn, db, definition, subject, act, sets)


def start_in(
    conn: sqlite3.Connection,
    db: Database,
    definition: str,
    subject: Subject,
    act: Act,
    sets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``start`` inside a write transaction the caller holds (an import applying a whole file)."""
    require_role(act.role, db)
    moment = act.moment()
    defn = definitions.get(db, definition)
    cols = resolve_subject(db, defn, subject)
    permits.authorize(conn, act.actor, act.role, {**cols, "id": None})
    fields = {**cols.pop("fields"), **coerce_fields(db, defn, sets or {}, moment)}
    open_row = conn.execute(
        "SELECT id, state FROM tracks WHERE definition = ? AND subject_key = ? AND final = 0",
        [defn.name, cols["subject_key"]],
    ).fetchone()
    if open_row:
        raise OnboardingError(
            Message(
                "this subject already has an open %(definition)s track: #%(id)s (in %(state)s); "
                "one open track per %(key)s",
                {
                    "definition": defn.name,
                    "id": str(open_row[0]),
                    "state": terms.keyed(terms.state(defn, open_row[1], quoted=False)),
                    "key": ", ".join(defn.subject_parts.key),
                },
            )
        )
    at = clock.stamp(moment)
    recorded = at if act.at is None else clock.stamp(clock.now())  # one reading when no --at
    initial = defn.state(defn.initial)
    ctx = GuardContext(conn, moment)
    due = compute_due(ctx, initial, {**cols, "fields": fields}, moment)
    fields_json = _FIELDS_JSON(fields)
    cur = conn.execute(
        "INSERT INTO tracks (definition, def_version, subject_key, municipality_code,"
        " system_id, index_set, bob, klik_task_id, course, vendor_id, subject_name, state,"
        " final, version, fields, entered_at, due, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
        [
            defn.name,
            defn.version,
            cols["subject_key"],
            cols.get("municipality_code"),
            cols.get("system_id"),
            cols.get("index_set"),
            cols["bob"],
            cols.get("klik_task_id"),
            cols.get("course"),
            cols.get("vendor_id"),
            cols.get("subject_name"),
            initial.name,
            int(initial.final),
            fields_json,
            at,
            due.isoformat() if due else None,
            at,
            at,
        ],
    )
    track_id = int(cur.lastrowid or 0)
    audit.append(
        conn,
        [
            (
                track_id,
                1,
                None,
                initial.name,
                START,
                act.actor,
                act.role,
                act.note,
                at,
                recorded,
                defn.version,
                fields_json,
            )
        ],
    )
    due_text = due.isoformat() if due else None
    outbox.on_start(
        conn, track_id, recorded, entry=(defn.name, defn.version, initial.name, due_text, at)
    )
    # The row as just inserted (TRACK_COLUMNS, as load_track reads it), not read back.
    return {
        "id": track_id,
        "definition": defn.name,
        "def_version": defn.version,
        "subject_key": cols["subject_key"],
        "municipality_code": cols.get("municipality_code"),
        "system_id": cols.get("system_id"),
        "index_set": cols.get("index_set"),
        "bob": cols["bob"],
        "klik_task_id": cols.get("klik_task_id"),
        "course": cols.get("course"),
        "vendor_id": cols.get("vendor_id"),
        "subject_name": cols.get("subject_name"),
        "state": initial.name,
        "final": int(initial.final),
        "version": 1,
        "fields": json.loads(fields_json),
        "entered_at": at,
        "due": due_text,
        "created_at": at,
        "updated_at": at,
    }
