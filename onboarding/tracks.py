"""Reading tracks: show, list, history, what may happen next and why, and replay.

These are the stable shapes behind ``track show --json``, ``track history --json`` and
``track list --json``; scripts and the web page rely on their keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from onboarding import calendar, clock, definitions, i18n
from onboarding.db import Database
from onboarding.engine.planning import _verdicts, compute_due
from onboarding.engine.rows import NO_REENTRY, TRACK_COLUMNS, _row_to_track, load_track
from onboarding.guards import GuardContext
from onboarding.i18n import Message, Phrases, Term
from workflows.model import Definition, TransitionDef

if TYPE_CHECKING:
    from onboarding.filters import TrackFilter


def _subject_labels(db: Database, track: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if track.get("municipality_code") is not None:
        row = db.execute(
            "SELECT name FROM municipalities WHERE code = ?", [track["municipality_code"]]
        ).fetchone()
        out["municipality"] = {"code": track["municipality_code"], "name": row[0] if row else None}
    if track.get("system_id") is not None:
        row = db.execute(
            "SELECT s.name, v.name, s.category FROM systems s JOIN vendors v ON v.id = s.vendor_id"
            " WHERE s.id = ?",
            [track["system_id"]],
        ).fetchone()
        out["system"] = {
            "id": track["system_id"],
            "name": row[0],
            "vendor": row[1],
            "label": f"{row[1]} {row[0]}",
            "category": row[2],
        }
    if track.get("vendor_id") is not None:
        row = db.execute("SELECT name FROM vendors WHERE id = ?", [track["vendor_id"]]).fetchone()
        out["vendor"] = {"id": track["vendor_id"], "name": row[0] if row else None}
    if track.get("subject_name") is not None:
        out["name"] = track["subject_name"]
    if track.get("index_set"):
        out["index"] = track["index_set"].split(",")
    if track.get("klik_task_id") is not None:
        row = db.execute(
            "SELECT name, type, end_date FROM klik_tasks WHERE id = ?", [track["klik_task_id"]]
        ).fetchone()
        out["klik_task"] = {
            "id": track["klik_task_id"],
            "name": row[0],
            "type": row[1],
            "end_date": row[2],
        }
    if track.get("course") is not None:
        out["course"] = track["course"]
    if track["fields"].get("wave"):
        out["wave"] = track["fields"]["wave"]
    out["bob"] = bool(track.get("bob"))
    return out


def subject_text(labels: dict[str, Any]) -> str:
    parts = []
    if "municipality" in labels:
        parts.append(str(labels["municipality"]["name"]))
    if "vendor" in labels:
        parts.append(str(labels["vendor"]["name"]))
    if "system" in labels:
        parts.append(labels["system"]["label"])
    if "klik_task" in labels:
        parts.append(labels["klik_task"]["name"])
    if "wave" in labels:
        parts.append(f"bølge {labels['wave']}")
    if "course" in labels:
        parts.append(f"forløb {labels['course']}")
    if "name" in labels:
        parts.append(str(labels["name"]))
    return " / ".join(parts)


def available(
    db: Database, defn: Definition, track: dict[str, Any], at: datetime | None = None
) -> list[dict[str, Any]]:
    """The triggers possible from the track's state, with inputs and what blocks each at
    ``at`` (default now): a trigger fired at that instant (``track advance --at``) is judged by
    the guards then, and one dated before the track's last step is refused whatever they say."""
    if track["final"]:
        return []
    ctx = GuardContext(db.conn, at or clock.now())
    # The engine refuses a step dated before the last one (history never goes backwards).
    too_early: list[str] = (
        [
            Message(
                "%(at)s is before its last recorded step (%(last)s)",
                {"at": ctx.at, "last": clock.unstamp(track["updated_at"])},
            )
        ]
        if ctx.at_stamp < track["updated_at"]
        else []
    )
    out = []
    for trigger in defn.triggers_from(track["state"]):
        candidates = defn.candidates(track["state"], trigger)
        best: tuple[TransitionDef, list[str]] | None = None
        for t in candidates:
            blocked, _ = _verdicts(ctx, track, t)
            if best is None or len(blocked) < len(best[1]):
                best = (t, blocked)
            if not blocked:
                break
        assert best is not None
        t, blocked = best
        out.append(
            {
                "trigger": trigger,
                "label": t.label,
                "dest": t.dest,
                "dest_label": defn.state(t.dest).label,
                "roles": list(t.roles),
                "inputs": [
                    {
                        "name": name,
                        "type": defn.fields[name].type,
                        "label": defn.fields[name].label,
                        # A client offers a choice field's options as a list to pick from.
                        "options": list(defn.fields[name].options),
                        "required": name in t.requires,
                        "value": track["fields"].get(name),
                    }
                    for name in t.inputs
                ],
                "blocked_by": too_early + blocked,
            }
        )
    return out


def _overdue(track: dict[str, Any], today: date) -> bool:
    return bool(track["due"]) and not track["final"] and track["due"] < today.isoformat()


def describe(
    db: Database, track: dict[str, Any], today: date | None = None, at: datetime | None = None
) -> dict[str, Any]:
    """The full picture of one track (the shape of ``track show --json``).

    With ``at``, what may happen next is judged at that instant (guards, and a step dated
    before the last one), and the working days and overdue flag count to its day: the answer
    ``track advance --at`` would get. The track itself is as it is now.
    """
    defn = definitions.get(db, track["definition"], track["def_version"])
    state = defn.state(track["state"])
    today = today or clock.local_date(at or clock.now())
    entered = clock.local_date(clock.unstamp(track["entered_at"]))
    labels = _subject_labels(db, track)
    out: dict[str, Any] = {
        "id": track["id"],
        "definition": track["definition"],
        "definition_version": track["def_version"],
        "title": defn.title,
        "subject": labels,
        "subject_text": subject_text(labels),
        "state": state.name,
        "state_label": state.label,
        "phase": state.phase,
        "bucket": state.bucket,
        "responsible_role": state.role,
        "final": bool(track["final"]),
        "version": track["version"],
        "fields": track["fields"],
        "entered_at": track["entered_at"],
        "days_in_state": max(0, calendar.working_days_between(entered, today)),
        "due": track["due"],
        "overdue": _overdue(track, today),
        "created_at": track["created_at"],
        "updated_at": track["updated_at"],
        "judged_at": clock.stamp(at or clock.now()),
        "available": available(db, defn, track, at),
    }
    if "municipality" in labels and "system" in labels:
        out["payment_scenario"] = _payment(db, track)
    return out


def _payment(db: Database, track: dict[str, Any]) -> dict[str, Any] | None:
    from onboarding.contracts import payment_scenario  # not the registry: see that module

    row = db.execute(
        "SELECT contract FROM contracts WHERE municipality_code = ? AND system_id = ?",
        [track["municipality_code"], track["system_id"]],
    ).fetchone()
    contract = row[0] if row else "unknown"
    return {"contract": contract if row else None, "scenario": payment_scenario(contract)}


def show(db: Database, track_id: int, at: datetime | None = None) -> dict[str, Any]:
    return describe(db, load_track(db.conn, track_id), at=at)


def iter_tracks(
    db: Database, flt: TrackFilter, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    where, params = flt.to_sql(db)
    sql = f"SELECT {TRACK_COLUMNS} FROM tracks t WHERE {where} ORDER BY t.id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    cur = db.conn.execute(sql, params)
    for row in cur:
        yield _row_to_track(row)


def list_tracks(db: Database, flt: TrackFilter, limit: int | None = None) -> list[dict[str, Any]]:
    """Summaries of the tracks a filter selects (the shape of ``track list --json``)."""
    today = clock.local_date(clock.now())
    out = []
    labels_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
    for t in iter_tracks(db, flt, limit):
        defn = definitions.get(db, t["definition"], t["def_version"])
        state = defn.state(t["state"])
        key = (
            t["municipality_code"],
            t["system_id"],
            t["klik_task_id"],
            t["course"],
            t["fields"].get("wave"),
            t["index_set"],
            t["bob"],
            t["vendor_id"],
            t["subject_name"],
        )
        if key not in labels_cache:
            labels_cache[key] = _subject_labels(db, t)
        labels = labels_cache[key]
        out.append(
            {
                "id": t["id"],
                "definition": t["definition"],
                "subject": subject_text(labels),
                "state": t["state"],
                "state_label": state.label,
                "phase": state.phase,
                "bucket": state.bucket,
                "version": t["version"],
                "due": t["due"],
                "overdue": _overdue(t, today),
                "final": bool(t["final"]),
            }
        )
    return out


def history(db: Database, track_id: int) -> list[dict[str, Any]]:
    """Every history row of a track, oldest first (the shape of ``track history --json``)."""
    load_track(db.conn, track_id)  # NotFound for an unknown track
    return _history_rows(db, "WHERE h.track_id = ?", [track_id])


def global_history(
    db: Database,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    clauses, params = [], []
    if actor:
        clauses.append("h.actor = ?")
        params.append(actor)
    if since:
        clauses.append("h.at >= ?")
        params.append(clock.stamp(since))
    if until:
        clauses.append("h.at <= ?")
        params.append(clock.stamp(until))
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return _history_rows(db, where, params, limit)


def _history_rows(
    db: Database, where: str, params: list[Any], limit: int | None = None
) -> list[dict[str, Any]]:
    sql = (
        "SELECT h.id, h.track_id, h.seq, h.from_state, h.to_state, h.trigger, h.actor, h.role,"
        f" h.note, h.at, h.recorded_at, h.def_version, h.fields FROM history h {where}"
        " ORDER BY h.at, h.id"
    )
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [
        {
            "id": r[0],
            "track": r[1],
            "seq": r[2],
            "from": r[3],
            "to": r[4],
            "trigger": r[5],
            "actor": r[6],
            "role": r[7],
            "note": r[8],
            "at": r[9],
            "recorded_at": r[10],
            "definition_version": r[11],
            "fields": json.loads(r[12]),
        }
        for r in db.execute(sql, params).fetchall()
    ]


def replay(db: Database, track_id: int, upto: str | None = None) -> dict[str, Any]:
    """The track's row as its history says it must be (for checks and audits); with ``upto``
    (a stored instant), as its history up to then says it was."""
    rows = db.execute(
        "SELECT seq, to_state, trigger, at, def_version, fields FROM history"
        " WHERE track_id = ? AND (? IS NULL OR at <= ?) ORDER BY seq",
        [track_id, upto, upto],
    ).fetchall()
    if not rows:
        raise ValueError(f"track {track_id} has no history")
    fields: dict[str, Any] = {}
    entered = rows[0][3]
    for _seq, _to, trigger, at, _v, f in rows:
        fields.update(json.loads(f))
        if trigger not in NO_REENTRY:
            entered = at
    last = rows[-1]
    track = load_track(db.conn, track_id)
    defn = definitions.get(db, track["definition"], last[4])
    state = defn.state(last[1])
    due = compute_due(
        GuardContext(db.conn, clock.unstamp(last[3])),
        state,
        {**track, "fields": fields},
        clock.unstamp(entered),
    )
    return {
        "state": last[1],
        "version": last[0],
        "def_version": last[4],
        "final": int(state.final),
        "fields": fields,
        "entered_at": entered,
        "updated_at": last[3],
        "due": due.isoformat() if due else None,
    }


def why(db: Database, track_id: int, at: datetime | None = None) -> dict[str, Any]:
    """Why the track is where it is, in plain words (what may happen next judged at ``at``).

    ``lines`` are ``Message``s: English as ``str`` (``--json``), said in a reader's language
    with ``say(lang)`` (roles, states and the phase by their labels)."""
    from onboarding import terms

    info = show(db, track_id, at)
    defn = definitions.get(db, info["definition"], info["definition_version"])
    definition = Term(
        info["definition"], {lang: defn.title for lang in i18n.LANGUAGES}
    )
    where = {
        "id": str(info["id"]),
        "definition": definition,
        "subject": info["subject_text"],
        "state": info["state_label"],
        "since": clock.unstamp(info["entered_at"]),
        "days": info["days_in_state"],
    }
    if info["phase"]:
        phase = Term(
            info["phase"],
            {lang: terms.phase(info["phase"], lang) for lang in i18n.LANGUAGES},
        )
        first = Message(
            "Track #%(id)s (%(definition)s: %(subject)s) is in %(state)s, phase %(phase)s, "
            "since %(since)s (%(days)s working day).",
            {**where, "phase": phase},
            plural="Track #%(id)s (%(definition)s: %(subject)s) is in %(state)s, phase "
            "%(phase)s, since %(since)s (%(days)s working days).",
            n=info["days_in_state"],
        )
    else:
        first = Message(
            "Track #%(id)s (%(definition)s: %(subject)s) is in %(state)s, "
            "since %(since)s (%(days)s working day).",
            where,
            plural="Track #%(id)s (%(definition)s: %(subject)s) is in %(state)s, "
            "since %(since)s (%(days)s working days).",
            n=info["days_in_state"],
        )
    lines: list[str] = [first]
    if info["final"]:
        lines.append(Message("It is finished: nothing more can happen to it."))
        return {**info, "lines": lines}
    if info["due"]:
        due = {"due": date.fromisoformat(info["due"])}
        if info["overdue"]:
            lines.append(Message("This step is overdue since %(due)s.", due))
        else:
            lines.append(Message("This step is due %(due)s.", due))
    if info["responsible_role"]:
        lines.append(
            Message(
                "Who must act next: %(role)s.",
                {"role": terms.role(info["responsible_role"], quoted=False)},
            )
        )
    for a in info["available"]:
        needs = [i["name"] for i in a["inputs"] if i["required"] and i["value"] in (None, "")]
        step = {"trigger": a["trigger"], "dest": a["dest_label"]}
        if a["blocked_by"]:
            lines.append(
                Message(
                    "- %(trigger)s (to %(dest)s) is blocked: %(reasons)s.",
                    {**step, "reasons": Phrases(a["blocked_by"], "; ")},
                )
            )
        else:
            need_text = (
                Message("; it needs %(fields)s", {"fields": terms.fields(defn, needs)})
                if needs
                else ""
            )
            lines.append(
                Message(
                    "- %(trigger)s (to %(dest)s) is possible now for %(roles)s%(needs)s.",
                    {**step, "roles": terms.roles(a["roles"]), "needs": need_text},
                )
            )
    return {**info, "lines": lines}
