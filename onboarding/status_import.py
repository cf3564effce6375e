"""The monthly status import: ``onboarding import status FILE.csv [--dry-run]``.

Municipalities report each month where their connections stand. This module turns such a file
into tracks and history without retyping (the file format is in docs/reports.md):

* The whole file is read and every row checked first (municipality, system, status, date,
  fields); any problem raises ``InputError`` naming ``FILE:LINE: column X``, and nothing is
  written. Then every row is applied inside one ``BEGIN IMMEDIATE`` transaction: a row that
  cannot be applied (a backwards move, a step a guard blocks) rolls the whole file back.
* Rows apply in a canonical order, not file order: ``system-readiness`` rows first (a connection
  step of bucket Aftalt needs its system declared ready at that time), then by date, then by
  subject. A shuffled or re-encoded file therefore gives the same database.
* Before anything is written, every row is checked against the database: the importer's scope
  (``actor import``, role ``importer``) must cover the row's track, or the track it would start,
  whatever the row then does (it may record a contract); and the status is resolved against the
  definition version of that track (a new track: the latest version). All problems are reported
  at once and nothing is written.
* A row moves its track forward along the shortest path the import may take (breadth-first over
  the definition, with the transitions' guards judged for this track at the row's moment). Each
  step is an ordinary history row with actor ``import``, role ``importer`` (or the person and
  role ``Importer`` names: the web page records who uploaded, the file's name and its sha256
  digest in the note) and the row's moment as its time. A required field the row lacks is
  recorded as not reported (``None``).
* A row's moment is its time, or for a date alone the start of that day (local midnight): the
  moment its steps are recorded and the moment its track's history is compared with. Guards that
  read other tracks (is the system ready?) see a date-only row's day as it stood at its end (or
  now, for today): "ready on 31 March" means ready by the end of that day.
* What a row means for a track that already exists (see docs/reports.md, "What a row does"):
  *in* the reported state now, or at the row's moment: unchanged (or left as it is); reported
  state ahead and nothing recorded after the row's moment: moved; history shows the track
  already further along **at the row's moment**: a backwards move, a row error (unless the
  definition declares a transition the import may fire, which the path search then finds); the
  track got past the reported state only after the row's moment: left as it is (an older
  report). A finished track is never started again. So a file that was accepted once imports
  again with no change, however much happened since.
* A connection row for a municipality and system with no contract on record records contract
  ``unknown`` (and when: ``contract_origins``), so the rollout report counts it.

No state of a shipped definition is named here: targets, paths and progress are all read from
the definition.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from onboarding import actors, clock, definitions, engine, registry, terms
from onboarding.csvio import PathLike, read_csv_all, row_error
from onboarding.db import Database, begin_immediate, rollback
from onboarding.errors import Ambiguous, InputError, NotFound, OnboardingError, PermissionDenied
from onboarding.guards import GuardContext
from onboarding.i18n import Message, Phrases
from workflows.model import Definition, TransitionDef

__all__ = ["ACTOR", "KINDS", "ROLE", "ImportResult", "Importer", "RowOutcome", "import_status"]

#: Who the import acts as in history.
ACTOR = "import"
ROLE = "importer"
#: Row kinds (the ``kind`` column) are definition names, in the order rows are applied.
READINESS = "system-readiness"
CONNECTION = "connection"
KINDS = (READINESS, CONNECTION)


@dataclass(frozen=True)
class Importer:
    """Who the import acts as in history: by default the ``import`` process in role
    ``importer``; the web page names the logged-in person and the role they act in. ``source``
    is added to every step's note (which uploaded file, and its digest)."""

    actor: str = ACTOR
    role: str = ROLE
    source: str | None = None

    def note(self, row_note: str | None) -> str | None:
        parts = [p for p in (row_note, self.source) if p]
        return "; ".join(parts) or None


def upload_source(name: str, data: bytes) -> str:
    """The note naming an uploaded status file: its name and the sha256 digest of its bytes,
    so the history says exactly which file moved a track."""
    return f"status file {name} (sha256 {hashlib.sha256(data).hexdigest()})"


REQUIRED = ("municipality", "system", "status", "date")
OPTIONAL = ("index", "note", "kind", "bob")
#: At most this many row problems are listed in one error.
MAX_ERRORS = 20

_YES = {"1", "yes", "ja", "true", "y", "j", "x"}
_NO = {"0", "no", "nej", "false", "n", ""}


@dataclass(frozen=True)
class _Row:
    line: int
    kind: str
    defn: Definition  # the latest version until _prepare sets the version of the row's track
    subject: engine.Subject
    subject_key: str
    municipality_code: int | None
    system_id: int
    text: str  # "Aarhus / KMD Momentum (sd)", for messages and results
    status: str  # as written
    moment: datetime  # recorded and compared with history: the time, or the day's start
    judged: datetime  # other tracks are read as of this: the time, or the day's end (or now)
    day_only: bool  # the date column gave a date without a time
    bob: bool | None
    fields: dict[str, Any]
    note: str | None
    # Set by _prepare, against ``defn``:
    state: str | None = None  # a state name, or
    bucket: str | None = None  # a bucket label (the earliest state of it this track can reach)


@dataclass
class RowOutcome:
    """What one row did: started / moved / unchanged / past / finished."""

    line: int
    subject: str
    track: int | None
    outcome: str
    from_state: str | None
    to_state: str | None
    steps: int = 0
    not_reported: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "subject": self.subject,
            "track": self.track,
            "outcome": self.outcome,
            "from": self.from_state,
            "to": self.to_state,
            "steps": self.steps,
            "not_reported": self.not_reported,
        }


@dataclass
class ImportResult:
    file: str
    dry_run: bool = False
    rows: int = 0
    started: int = 0
    moved: int = 0
    steps: int = 0
    unchanged: int = 0
    contracts_recorded: int = 0
    not_reported: int = 0
    outcomes: list[RowOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "tracks_started": self.started,
            "tracks_moved": self.moved,
            "steps": self.steps,
            "unchanged": self.unchanged,
            "contracts_recorded": self.contracts_recorded,
            "fields_not_reported": self.not_reported,
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    def summary(self, lang: str | None = None) -> str:
        """One line of what the import did: English by default (logs, tests), or in ``lang``
        (the command line's and the demo's human output)."""
        from onboarding import i18n

        def n(singular: str, plural: str, count: int, **more: object) -> str:
            chosen = (
                i18n.ngettext(lang, singular, plural, count)
                if lang
                else (singular if count == 1 else plural)
            )
            return chosen % {"n": count, **more}

        started = (
            ("would start %(n)d track", "would start %(n)d tracks")
            if self.dry_run
            else ("started %(n)d track", "started %(n)d tracks")
        )
        steps = n("%(n)d step", "%(n)d steps", self.steps)
        parts = [
            n("%(n)d row", "%(n)d rows", self.rows),
            n(*started, self.started),
            n(
                "moved %(n)d track (%(steps)s)",
                "moved %(n)d tracks (%(steps)s)",
                self.moved,
                steps=steps,
            ),
            n("%(n)d unchanged", "%(n)d unchanged", self.unchanged),
        ]
        if self.contracts_recorded:
            parts.append(
                n(
                    "%(n)d contract recorded as unknown",
                    "%(n)d contracts recorded as unknown",
                    self.contracts_recorded,
                )
            )
        if self.not_reported:
            parts.append(
                n(
                    "%(n)d required field not reported",
                    "%(n)d required fields not reported",
                    self.not_reported,
                )
            )
        return ", ".join(parts)


# --- reading and checking the file --------------------------------------------------------------


def import_status(
    db: Database, path: PathLike, dry_run: bool = False, by: Importer | None = None
) -> ImportResult:
    """Apply a monthly status file: every row or, if any row is bad, none (see module doc).

    ``by`` says who acts (its scope is checked for every row) and what each step's note adds;
    by default the ``import`` process in role ``importer``.
    """
    by = by or Importer()
    defs = {kind: definitions.get(db, kind) for kind in KINDS}
    field_columns = sorted(
        {f for d in defs.values() for f in d.fields} - set(REQUIRED) - set(OPTIONAL)
    )
    records = read_csv_all(
        path, REQUIRED, [*OPTIONAL, *field_columns], aliases=_field_labels(defs, field_columns)
    )
    rows: list[_Row] = []
    errors: list[tuple[int, str]] = []
    seen: dict[tuple[str, str, str], int] = {}
    now = clock.now()
    for line, record in records:
        try:
            row = _parse(db, path, line, record, defs, field_columns, now)
            key = (row.kind, row.subject_key, clock.stamp(row.moment))
            if key in seen:
                raise row_error(
                    path,
                    line,
                    Message(
                        "repeats the %(kind)s subject and date of line %(line)s",
                        {"kind": row.kind, "line": str(seen[key])},
                    ),
                )
            seen[key] = line
            rows.append(row)
        except InputError as exc:
            errors.append((line, exc.sentence()))
    rows.sort(
        key=lambda r: (
            KINDS.index(r.kind),
            clock.stamp(r.moment),
            r.municipality_code or 0,
            r.system_id,
            r.subject_key,
            r.line,
        )
    )
    result = ImportResult(file=str(path), dry_run=dry_run, rows=len(rows))
    conn = db.conn
    begin_immediate(conn)  # bounded retry (onboarding.db)
    try:
        # Every row is checked against the database (scope, status) before any row is applied.
        rows, problems, denied = _prepare(conn, db, path, rows, by)
        if denied:
            raise _combined(path, [*errors, *problems, *denied], PermissionDenied)
        if errors or problems:
            raise _combined(path, [*errors, *problems])
        for row in rows:
            try:
                _apply(conn, db, path, row, result, by)
            except PermissionDenied as exc:  # pragma: no cover - _prepare checked every row
                raise PermissionDenied(
                    Message(
                        "%(path)s:%(line)s: %(error)s",
                        {"path": str(path), "line": str(row.line), "error": exc.sentence()},
                    )
                ) from None
        result.outcomes.sort(key=lambda o: o.line)
    except BaseException:
        rollback(conn)
        raise
    try:
        conn.execute("ROLLBACK" if dry_run else "COMMIT")
    except BaseException:
        rollback(conn)  # a failed COMMIT (full disk) reports its own cause
        raise
    return result


def _field_labels(defs: Mapping[str, Definition], columns: list[str]) -> dict[str, list[str]]:
    """A field column may also be headed by its label ("Aftalt tilslutningsdato"): the label a
    municipality sees in the tool. A label two fields share names neither."""
    owners: dict[str, set[str]] = {}
    for defn in defs.values():
        for name in columns:
            fdef = defn.fields.get(name)
            if fdef is not None and fdef.label:
                owners.setdefault(fdef.label, set()).add(name)
    out: dict[str, list[str]] = {}
    for label, names in owners.items():
        if len(names) == 1:
            out.setdefault(next(iter(names)), []).append(label)
    return out


def _combined(
    path: PathLike,
    problems: list[tuple[int, str]],
    kind: type[OnboardingError] = InputError,
) -> OnboardingError:
    """One error listing every row problem, in line order."""
    errors = [text for _, text in sorted(problems, key=lambda p: p[0])]
    if len(errors) == 1:
        return kind(errors[0])
    shown = errors[:MAX_ERRORS]
    more = len(errors) - len(shown)
    tail = Message("\n(and %(more)s more)", {"more": str(more)}) if more else ""
    return kind(
        Message(
            "%(rows)s%(tail)s\n%(path)s: %(n)s rows have problems; nothing was imported",
            {
                "rows": Phrases(shown, sep="\n"),
                "tail": tail,
                "path": str(path),
                "n": str(len(errors)),
            },
        )
    )


def _prepare(
    conn: sqlite3.Connection, db: Database, path: PathLike, rows: list[_Row], by: Importer
) -> tuple[list[_Row], list[tuple[int, str]], list[tuple[int, str]]]:
    """Check every row against the database before anything is written: the rows with their
    status resolved, the status problems, and the rows outside the importer's scope.

    The scope is checked for every row, whatever it will do: a row that leaves its track as it
    is may still record a contract (registry data), and an importer scoped to one municipality
    must not touch another's. The status is resolved against the definition version of the
    row's track (a track that is not there yet starts on the latest version)."""
    check = actors.checker(conn, by.actor, by.role)  # raises at once for an unknown importer
    prepared: list[_Row] = []
    problems: list[tuple[int, str]] = []
    denied: list[tuple[int, str]] = []
    for row in rows:
        track = _find_track(conn, row)
        defn = row.defn
        if track is not None:
            defn = definitions.get(db, track["definition"], track["def_version"])
        if check is not None:
            subject = track or {
                "id": None,
                "municipality_code": row.municipality_code,
                "system_id": row.system_id,
            }
            try:
                check(subject)
            except PermissionDenied as exc:
                column = _scope_column(conn, row, by)
                refused = row_error(path, row.line, exc.sentence(), column)
                denied.append((row.line, refused.sentence()))
        try:
            older = track if defn.version != row.defn.version else None
            state, bucket = _status(path, row.line, defn, row.status, older)
        except InputError as exc:
            problems.append((row.line, exc.sentence()))
            continue
        prepared.append(replace(row, defn=defn, state=state, bucket=bucket))
    return prepared, problems, denied


def _scope_column(conn: sqlite3.Connection, row: _Row, by: Importer) -> str:
    """The column that puts a row outside the importer's scope: its municipality when the
    importer is scoped by municipality and the row has one, else its system (vendor)."""
    kinds = {
        r[0]
        for r in conn.execute(
            "SELECT scope_kind FROM actor_grants WHERE actor = ? AND role = ?", [by.actor, by.role]
        ).fetchall()
    }
    if "municipality" in kinds and row.municipality_code is not None:
        return "municipality"
    return "system"


def _parse(
    db: Database,
    path: PathLike,
    line: int,
    rec: Mapping[str, str],
    defs: Mapping[str, Definition],
    field_columns: list[str],
    now: datetime,
) -> _Row:
    kind = (rec["kind"] or CONNECTION).strip().lower()
    if kind not in defs:
        expected = ", ".join(KINDS)
        raise row_error(
            path,
            line,
            Message(
                "unknown kind %(kind)s: expected %(expected)s",
                {"kind": repr(rec["kind"]), "expected": expected},
            ),
            "kind",
        )
    defn = defs[kind]
    system_text = rec["system"]
    if not system_text:
        raise row_error(path, line, Message("is empty"), "system")
    system = _resolve(path, line, "system", registry.resolve_system, db, system_text)
    municipality = None
    if rec["municipality"]:
        municipality = _resolve(
            path, line, "municipality", registry.resolve_municipality, db, rec["municipality"]
        )
    elif defn.subject == "municipality-system":
        raise row_error(path, line, Message("is empty"), "municipality")
    moment, judged = _moment(path, line, rec["date"], now)
    index_codes = _indices(path, line, db, rec["index"])
    if defn.subject == "system" and len(index_codes) != 1:
        raise row_error(
            path, line, Message("a %(kind)s row is for one index", {"kind": kind}), "index"
        )
    bob = _bob(path, line, rec["bob"])
    if defn.subject == "system" and bob:
        raise row_error(
            path,
            line,
            Message("BoB display is about connections, not %(kind)s", {"kind": kind}),
            "bob",
        )
    if not rec["status"]:
        raise row_error(path, line, Message("is empty"), "status")
    values: dict[str, Any] = {}
    for name in field_columns:
        text = rec.get(name, "")
        if not text:
            continue
        fdef = defn.fields.get(name)
        if fdef is None:
            raise row_error(path, line, Message("is not a field of %(kind)s", {"kind": kind}), name)
        try:
            values[name] = engine.coerce_field(db, fdef, text)
        except OnboardingError as exc:
            raise row_error(path, line, exc.sentence(), name) from None
    code = int(municipality["code"]) if municipality else None
    if defn.subject == "system":
        # A readiness row's municipality is the system's pilot municipality: the definition's
        # municipality field.
        subject = engine.Subject(system=str(system["label"]), index=index_codes[0])
        pilot_fields = [f.name for f in defn.fields.values() if f.type == "municipality"]
        if code is not None and pilot_fields:
            given = values.get(pilot_fields[0])
            if given is not None and given != code:
                raise row_error(
                    path, line, Message("differs from the municipality column"), pilot_fields[0]
                )
            values[pilot_fields[0]] = code
        text = f"{system['label']} ({index_codes[0]})"
    else:
        subject = engine.Subject(
            municipality=str(code),
            system=str(system["label"]),
            index=",".join(index_codes),
            bob=bool(bob),
        )
        text = f"{municipality['name'] if municipality else ''} / {system['label']}"
        if index_codes != ["sd"]:
            text += f" ({','.join(index_codes)})"
    try:
        cols = engine.resolve_subject(db, defn, subject)
    except OnboardingError as exc:  # pragma: no cover - the checks above make this unreachable
        raise row_error(path, line, exc.sentence()) from None
    return _Row(
        line=line,
        kind=kind,
        defn=defn,
        subject=subject,
        subject_key=str(cols["subject_key"]),
        municipality_code=code if defn.subject != "system" else None,
        system_id=int(system["id"]),
        text=text,
        status=rec["status"],
        moment=moment,
        judged=judged,
        day_only=len(rec["date"]) == 10,
        bob=bob,
        fields=values,
        note=rec["note"] or None,
    )


def _resolve(
    path: PathLike,
    line: int,
    column: str,
    resolve: Callable[[Database, str], dict[str, Any]],
    db: Database,
    text: str,
) -> dict[str, Any]:
    try:
        return resolve(db, text)
    except (NotFound, Ambiguous) as exc:
        raise row_error(path, line, exc.sentence(), column) from None


def _moment(path: PathLike, line: int, text: str, now: datetime) -> tuple[datetime, datetime]:
    """(moment, judged): a time is both; a date alone is recorded at its start and judges other
    tracks as they stood at its end, or now for today (see the module doc)."""
    if not text:
        raise row_error(path, line, Message("is empty"), "date")
    try:
        day, given = clock.parse_when(text)
        if given is None:
            moment = clock.local_midnight(day)
            judged = min(clock.end_of_local_day(day), now)
        else:
            moment = judged = given
    except InputError:
        raise row_error(
            path,
            line,
            Message(
                "%(value)s is not a date (use %(formats)s)",
                {"value": repr(text), "formats": clock.ACCEPTED_TIMES},
            ),
            "date",
        ) from None
    if moment > now:
        raise row_error(
            path,
            line,
            Message(
                "%(value)s is in the future: now is %(now)s",
                {"value": text, "now": clock.show_instant(now)},
            ),
            "date",
        )
    return moment, judged


def _indices(path: PathLike, line: int, db: Database, text: str) -> list[str]:
    if not text:
        return ["sd"]
    codes = set()
    for name in text.replace(";", ",").split(","):
        if name.strip():
            row = _resolve(path, line, "index", registry.resolve_index, db, name.strip())
            codes.add(str(row["code"]))
    return sorted(codes) or ["sd"]


def _bob(path: PathLike, line: int, text: str) -> bool | None:
    value = text.strip().lower()
    if not value:
        return None
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise row_error(path, line, Message("%(value)s is not yes/no", {"value": repr(text)}), "bob")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _status(
    path: PathLike,
    line: int,
    defn: Definition,
    text: str,
    older: Mapping[str, Any] | None = None,
) -> tuple[str | None, str | None]:
    """(state, None) for a state name, (None, bucket) for a bucket label, in ``defn``: the
    version of the row's track (``older`` when that is not the latest), or the latest."""
    for state in defn.states:
        if _norm(state.name) == _norm(text):
            return state.name, None
    for bucket in defn.buckets:
        if _norm(bucket) == _norm(text):
            return None, bucket
    expected = ", ".join([*defn.buckets, *(s.name for s in defn.states)])
    which: str = defn.name
    if older is not None:
        which = Message(
            "%(definition)s version %(version)s (the version track #%(id)s runs)",
            {"definition": defn.name, "version": str(defn.version), "id": str(older["id"])},
        )
    raise row_error(
        path,
        line,
        Message(
            "unknown status %(status)s for %(which)s: expected one of %(expected)s",
            {"status": repr(text), "which": which, "expected": expected},
        ),
        "status",
    )


# --- applying rows --------------------------------------------------------------------------------


def _apply(
    conn: sqlite3.Connection,
    db: Database,
    path: PathLike,
    row: _Row,
    result: ImportResult,
    by: Importer,
) -> None:
    if row.kind == CONNECTION:
        _record_contract(conn, path, row, result)
    track = _find_track(conn, row)
    ctx = GuardContext(conn, row.moment, related_at=row.judged)
    if track is None:
        _start_and_move(conn, db, path, row, ctx, result, by)
        return
    defn = row.defn  # the track's own version (_prepare)
    outcome = RowOutcome(row.line, row.text, track["id"], "unchanged", track["state"], None)
    result.outcomes.append(outcome)
    if row.bob is not None and bool(track["bob"]) != row.bob:
        raise row_error(
            path,
            row.line,
            Message(
                "track #%(id)s was started with BoB display; the row says otherwise"
                if track["bob"]
                else "track #%(id)s was started without BoB display; the row says otherwise",
                {"id": str(track["id"])},
            ),
            "bob",
        )
    if _is_in(defn, track["state"], row):
        outcome.to_state = track["state"]
        result.unchanged += 1
        return
    # Judged at the row's own moment: the states the track held then (the one it was in, and
    # any it entered at that very instant, such as this row's own steps on an earlier import).
    held = _held(conn, db, track, row.moment)
    if any(_is_in(d, s, row) for s, d in held):
        _leave(track, outcome, result)  # history agrees with the row; the track moved on later
        return
    later = clock.stamp(row.moment) < track["updated_at"]  # steps recorded after the row
    found = _shortest_path(ctx, defn, _view(track, row), track["state"], _goal(defn, row), by.role)
    if found.path is not None and not later:
        _walk(conn, path, defn, track, found.path, row, ctx, outcome, result, by)
        return
    if held and _beyond(held[-1], row):
        then, then_defn = held[-1]
        since = (
            "" if later else Message(" since %(at)s", {"at": clock.display(track["entered_at"])})
        )
        raise row_error(
            path,
            row.line,
            Message(
                "%(row)s: a backwards move: %(when)s track #%(id)s was already in %(state)s "
                "(%(label)s)%(since)s, past %(status)s, and %(definition)s declares no step "
                "back the import may take",
                {
                    "row": row.text,
                    "when": _when(row),
                    "id": str(track["id"]),
                    "state": terms.keyed(terms.state(then_defn, then, quoted=False)),
                    "label": then_defn.state(then).label,
                    "since": since,
                    "status": repr(row.status),
                    "definition": defn.name,
                },
            ),
            "status",
        )
    if track["final"]:
        _leave(track, outcome, result)
        return
    if _ahead(row, (track["state"], defn)):
        if found.path is not None:
            raise row_error(
                path,
                row.line,
                Message(
                    "%(row)s: the date is before track #%(id)s's last recorded step (%(at)s); "
                    "history never goes backwards",
                    {
                        "row": row.text,
                        "id": str(track["id"]),
                        "at": clock.display(track["updated_at"]),
                    },
                ),
                "date",
            )
        raise row_error(path, row.line, _unreachable(row, found), "status")
    _leave(track, outcome, result)


def _unreachable(row: _Row, found: Any) -> Message:
    return Message("%(row)s: %(problem)s", {"row": row.text, "problem": found.explain(row.status)})


def _when(row: _Row) -> Message:
    """The row's moment as the file gave it: 'on 2021-03-31' or 'at 2021-03-31 14:00'."""
    if row.day_only:
        return Message("on %(day)s", {"day": clock.local_date(row.moment).isoformat()})
    return Message("at %(at)s", {"at": clock.display(clock.stamp(row.moment))})


def _leave(track: Mapping[str, Any], outcome: RowOutcome, result: ImportResult) -> None:
    """The row leaves its track as it is: finished, or already past what the row reports."""
    outcome.outcome = "finished" if track["final"] else "past"
    outcome.to_state = track["state"]
    result.unchanged += 1


def _record_contract(
    conn: sqlite3.Connection, path: PathLike, row: _Row, result: ImportResult
) -> None:
    cur = conn.execute(
        "INSERT OR IGNORE INTO contracts (municipality_code, system_id, contract)"
        " VALUES (?, ?, 'unknown')",
        [row.municipality_code, row.system_id],
    )
    if cur.rowcount:
        conn.execute(
            "INSERT OR REPLACE INTO contract_origins (municipality_code, system_id, since, source)"
            " VALUES (?, ?, ?, ?)",
            [
                row.municipality_code,
                row.system_id,
                clock.stamp(row.moment),
                f"status import {Path(path).name} line {row.line}",
            ],
        )
        result.contracts_recorded += 1


def _find_track(conn: sqlite3.Connection, row: _Row) -> dict[str, Any] | None:
    """The subject's track at the row's moment (the newest started by then), else its open
    track, else its newest finished one (never started again).

    A row is about the track that existed at its moment: after a track was cancelled and a new
    one started, last month's file still speaks of the old one."""
    found = conn.execute(
        "SELECT id FROM tracks WHERE definition = ? AND subject_key = ? AND created_at <= ?"
        " ORDER BY id DESC LIMIT 1",
        [row.kind, row.subject_key, clock.stamp(row.moment)],
    ).fetchone()
    if found is None:
        found = conn.execute(
            "SELECT id FROM tracks WHERE definition = ? AND subject_key = ?"
            " ORDER BY final = 0 DESC, id DESC LIMIT 1",
            [row.kind, row.subject_key],
        ).fetchone()
    return engine.load_track(conn, int(found[0])) if found else None


def _start_and_move(
    conn: sqlite3.Connection,
    db: Database,
    path: PathLike,
    row: _Row,
    ctx: GuardContext,
    result: ImportResult,
    by: Importer,
) -> None:
    defn = row.defn
    cols = engine.resolve_subject(db, defn, row.subject)
    hypothetical = {
        **cols,
        "id": None,
        "state": defn.initial,
        "fields": dict(cols.get("fields") or {}),
        "final": 0,
        "version": 0,
        "updated_at": "",
    }
    steps: list[tuple[str, TransitionDef]] = []
    if not _is_in(defn, defn.initial, row):
        found = _shortest_path(
            ctx, defn, _view(hypothetical, row), defn.initial, _goal(defn, row), by.role
        )
        if found.path is None:
            raise row_error(path, row.line, _unreachable(row, found), "status")
        steps = found.path
    act = engine.Act(actor=by.actor, role=by.role, note=by.note(row.note), at=row.moment)
    track = engine.start_in(conn, db, defn.name, row.subject, act)
    outcome = RowOutcome(row.line, row.text, track["id"], "started", None, track["state"])
    result.outcomes.append(outcome)
    result.started += 1
    if steps:
        _walk(conn, path, defn, track, steps, row, ctx, outcome, result, by, count_moved=False)


def _walk(
    conn: sqlite3.Connection,
    path: PathLike,
    defn: Definition,
    track: dict[str, Any],
    steps: list[tuple[str, TransitionDef]],
    row: _Row,
    ctx: GuardContext,
    outcome: RowOutcome,
    result: ImportResult,
    by: Importer,
    count_moved: bool = True,
) -> None:
    """Fire each trigger of the path through the engine, one history row per step."""
    actors.authorize(conn, by.actor, by.role, track)
    for trigger, transition in steps:
        sets = {k: v for k, v in row.fields.items() if k in transition.inputs}
        try:
            move = engine.plan(ctx, defn, track, trigger, by.role, sets, unreported_ok=True)
        except OnboardingError as exc:  # pragma: no cover - the path search checked the same
            raise row_error(path, row.line, exc.sentence(), "status") from None
        unreported = sorted(k for k, v in move.fields_set.items() if v is None and k not in sets)
        note = row.note
        if unreported:
            marker = "not reported: " + ", ".join(unreported)
            note = f"{note}; {marker}" if note else marker
        act = engine.Act(actor=by.actor, role=by.role, note=by.note(note), at=row.moment)
        engine.write_moves(conn, [move], act, ctx.at_stamp)
        track = engine.load_track(conn, track["id"])
        outcome.steps += 1
        outcome.not_reported.extend(unreported)
        result.steps += 1
        result.not_reported += len(unreported)
    outcome.to_state = track["state"]
    if count_moved:
        outcome.outcome = "moved"
        result.moved += 1


def _view(track: Mapping[str, Any], row: _Row) -> dict[str, Any]:
    """The track as guards should see it along the path: with the row's field values."""
    return {**track, "fields": {**track["fields"], **row.fields}}


def _is_in(defn: Definition, state: str, row: _Row) -> bool:
    if row.state is not None:
        return state == row.state
    return defn.state(state).bucket == row.bucket


def _goal(defn: Definition, row: _Row) -> Callable[[str], bool]:
    if row.state is not None:
        target = row.state
        return lambda s: s == target
    bucket = row.bucket
    return lambda s: defn.state(s).bucket == bucket


#: A state with the definition version it belongs to (history may span a migration).
_Held = tuple[str, Definition]


def _held(
    conn: sqlite3.Connection, db: Database, track: Mapping[str, Any], moment: datetime
) -> list[_Held]:
    """The states the track held at ``moment``, from history: the one it was in just before,
    then each it entered at that instant, in order ([] when it had not started)."""
    at = clock.stamp(moment)
    before = conn.execute(
        "SELECT to_state, def_version FROM history WHERE track_id = ? AND at < ?"
        " ORDER BY seq DESC LIMIT 1",
        [track["id"], at],
    ).fetchall()
    during = conn.execute(
        "SELECT to_state, def_version FROM history WHERE track_id = ? AND at = ? ORDER BY seq",
        [track["id"], at],
    ).fetchall()
    held: list[_Held] = []
    for state, version in [*before, *during]:
        defn = definitions.get(db, track["definition"], int(version))
        if state in defn.by_name:
            held.append((str(state), defn))
    return held


# --- paths and progress ---------------------------------------------------------------------------


@dataclass
class _Found:
    path: list[tuple[str, TransitionDef]] | None
    blocked: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)

    def explain(self, status: str) -> Message:
        if self.blocked:
            return Message(
                "cannot reach %(status)s: %(reasons)s",
                {"status": repr(status), "reasons": Phrases(dict.fromkeys(self.blocked), sep="; ")},
            )
        return Message(
            "cannot reach %(status)s: no step the import may take leads there",
            {"status": repr(status)},
        )


def _choose(
    ctx: GuardContext, defn: Definition, view: Mapping[str, Any], state: str, trigger: str
) -> tuple[TransitionDef | None, list[str]]:
    """The transition ``engine.plan`` would choose for this trigger, or why none passes."""
    reasons: list[str] | None = None
    for t in defn.candidates(state, trigger):
        blocked, _ = engine.planning._verdicts(ctx, view, t)
        if not blocked:
            return t, []
        if reasons is None or len(blocked) < len(reasons):
            reasons = blocked
    return None, reasons or []


def _shortest_path(
    ctx: GuardContext,
    defn: Definition,
    view: Mapping[str, Any],
    start: str,
    goal: Callable[[str], bool],
    role: str = ROLE,
) -> _Found:
    """Breadth-first search over the steps the import may take (those role ``importer`` may
    fire, and ``role`` too when someone acts in another role); of the goal states nearest to
    ``start``, the one declared first wins (the earliest state of a bucket)."""
    found = _Found(path=None)
    came: dict[str, tuple[str, str, TransitionDef] | None] = {start: None}
    frontier = deque([start])
    order = {s.name: i for i, s in enumerate(defn.states)}
    while frontier:
        level = list(frontier)
        frontier.clear()
        hits: list[str] = []
        for state in level:
            for trigger in defn.triggers_from(state):
                chosen, reasons = _choose(ctx, defn, view, state, trigger)
                if chosen is None:
                    found.blocked.extend(f"{trigger!r} is blocked: {r}" for r in reasons)
                    continue
                if ROLE not in chosen.roles or role not in chosen.roles:
                    continue
                if chosen.dest in came:
                    continue
                came[chosen.dest] = (state, trigger, chosen)
                frontier.append(chosen.dest)
                if goal(chosen.dest):
                    hits.append(chosen.dest)
        if hits:
            best = min(hits, key=lambda s: order[s])
            path: list[tuple[str, TransitionDef]] = []
            node = best
            while (prev := came[node]) is not None:
                path.append((prev[1], prev[2]))
                node = prev[0]
            found.path = path[::-1]
            return found
    return found


def _distances(defn: Definition) -> dict[str, int]:
    """Each state's distance (in transitions) from the initial state."""
    dist: dict[str, int] = {defn.initial: 0}
    queue = deque([defn.initial])
    while queue:
        s = queue.popleft()
        for t in defn.transitions_from(s):
            if t.dest not in dist:
                dist[t.dest] = dist[s] + 1
                queue.append(t.dest)
    return dist


def _rank(defn: Definition, state: str) -> tuple[int, int]:
    """How far along a state is: its bucket's rank, then its distance from the initial state."""
    return defn.bucket_rank(state), _distances(defn).get(state, 0)


def _compare(held: _Held, row: _Row) -> int:
    """-1, 0 or 1 as the held state is behind, level with or further along than the row's
    status (each ranked in its own definition version; a bucket label by its bucket)."""
    state, defn = held
    if row.state is not None:
        mine, theirs = _rank(defn, state), _rank(row.defn, row.state)
    else:
        assert row.bucket is not None
        mine, theirs = (defn.bucket_rank(state), 0), (row.defn.buckets.index(row.bucket), 0)
    return (mine > theirs) - (mine < theirs)


def _beyond(held: _Held, row: _Row) -> bool:
    """Was the track (in ``held``) further along than what the row reports?"""
    return _compare(held, row) > 0


def _ahead(row: _Row, held: _Held) -> bool:
    """Does the row report something further along than ``held``?"""
    return _compare(held, row) < 0
