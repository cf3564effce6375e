"""Bulk advance: one trigger fired on every open track a filter selects, all or none, and
its result (``BulkResult``: what moved, what is blocked, grouped by reason).

Set-based: the selection goes into a temporary table and is read in batches, guards read
through one cached ``GuardContext``, and writes go out with ``executemany`` in batches, all
inside one transaction. Separate because no single-track path needs any of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from onboarding import outbox, permits
from onboarding.db import Database, begin_immediate, rollback
from onboarding.engine.planning import plan
from onboarding.engine.rows import TRACK_COLUMNS, _row_to_track, coerce_fields
from onboarding.engine.writing import Act, _log, write_moves
from onboarding.errors import PermissionDenied, TransitionRefused
from onboarding.guards import GuardContext
from onboarding.i18n import Message, Phrases
from onboarding.roles import require_role
from workflows.model import Definition
from workflows.record import field
from workflows.record import record as dataclass

if TYPE_CHECKING:
    from onboarding.filters import TrackFilter

BATCH = 2000


@dataclass
class BlockedGroup:
    """The selected tracks blocked for one reason: how many, and the first few by id."""

    reason: str
    count: int = 0
    #: ``{"id": ..., "subject": "Aarhus / KMD Momentum"}``, at most ``per_reason`` of them.
    tracks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BulkResult:
    selected: int = 0
    moved: int = 0
    blocked: list[tuple[int, str]] = field(default_factory=list)
    blocked_count: int = 0
    by_move: dict[tuple[str, str], int] = field(default_factory=dict)
    dry_run: bool = False
    #: The blocked tracks grouped by reason, in the order the reasons were first met.
    groups: dict[str, BlockedGroup] = field(default_factory=dict)

    def note_blocked(
        self, db: Database, track: Mapping[str, Any], reason: str, keep: int, per_reason: int | None
    ) -> None:
        """Count a blocked track in its reason's group (its id and subject kept while the group
        has fewer than ``per_reason``; None: all)."""
        from onboarding.tracks import _subject_labels, subject_text

        self.blocked_count += 1
        if len(self.blocked) < keep:
            self.blocked.append((track["id"], reason))
        # The reason without the track's own label, so the same cause groups together.
        general = _general(reason, track["id"])
        group = self.groups.setdefault(general, BlockedGroup(general))
        group.count += 1
        if per_reason is None or len(group.tracks) < per_reason:
            subject = subject_text(_subject_labels(db, dict(track)))
            group.tracks.append({"id": track["id"], "subject": subject})

    def refusal(self, trigger: str, shown: int = 5) -> Message:
        """Why a real bulk run moved nothing: a summary line, then per reason its count and
        a line naming the first tracks by id and subject (a ``Message``: English as ``str``)."""
        lines: list[Any] = [
            Message(
                "%(n)s of %(selected)s selected tracks cannot fire %(trigger)s, so none was moved:",
                {
                    "n": str(self.blocked_count),
                    "selected": str(self.selected),
                    "trigger": repr(trigger),
                },
            )
        ]
        for g in self.groups.values():
            named = ", ".join(f"#{t['id']} {t['subject']}".rstrip() for t in g.tracks[:shown])
            more = g.count - min(shown, len(g.tracks))
            tail = Message(" and %(more)s more", {"more": str(more)}) if more > 0 else ""
            lines += [
                Message("  %(count)s × %(reason)s", {"count": str(g.count), "reason": g.reason}),
                Message("      %(named)s%(tail)s", {"named": named, "tail": tail}),
            ]
        lines.append(
            Message("  'track advance --where ... --dry-run' lists them by reason (--json: all)")
        )
        return Message("%(lines)s", {"lines": Phrases(lines, "\n")})


def _general(reason: str, track_id: int) -> str:
    """A blocked track's reason without its own "track #N: ", still said in a language."""
    text = reason.removeprefix(f"track #{track_id}: ")
    if isinstance(reason, Message) and reason.msgid.startswith("%(track)s: "):
        params = {k: v for k, v in reason.params.items() if k != "track"}
        plural = reason.plural.removeprefix("%(track)s: ") if reason.plural else None
        msgid = reason.msgid.removeprefix("%(track)s: ")
        return Message(msgid, params, plural=plural, n=reason.n, text=text)
    return text


Progress = Callable[[int], None]


def _select_into_temp(conn: sqlite3.Connection, db: Database, flt: TrackFilter) -> int:
    where, params = flt.to_sql(db)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS bulk_selection (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM bulk_selection")
    conn.execute(
        f"INSERT INTO bulk_selection SELECT id FROM tracks t WHERE {where} AND t.final = 0",
        params,
    )
    return int(conn.execute("SELECT count(*) FROM bulk_selection").fetchone()[0])


def _chunks(conn: sqlite3.Connection) -> Iterator[list[dict[str, Any]]]:
    """The selected tracks in id order, a batch at a time (memory stays flat)."""
    last = 0
    cols = ", ".join(f"t.{c.strip()}" for c in TRACK_COLUMNS.split(","))
    while True:
        cur = conn.execute(
            f"SELECT {cols} FROM bulk_selection s JOIN tracks t ON t.id = s.id"
            " WHERE s.id > ? ORDER BY s.id LIMIT ?",
            [last, BATCH],
        )
        rows = [_row_to_track(r) for r in cur.fetchall()]
        if not rows:
            return
        last = rows[-1]["id"]
        yield rows


def bulk_advance(
    db: Database,
    flt: TrackFilter,
    trigger: str,
    act: Act,
    sets: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    keep_blocked: int = 50,
    per_reason: int | None = 20,
) -> BulkResult:
    """Fire ``trigger`` on every open track the filter selects: all of them, or none.

    A dry run checks everything and writes nothing. Otherwise any track that cannot fire
    makes the whole operation fail with the reasons, and nothing is written. The blocked
    tracks are grouped by reason (``BulkResult.groups``), with the id and subject of at most
    ``per_reason`` tracks each (None: all).
    """
    require_role(act.role, db)
    moment = act.moment()
    result = BulkResult(dry_run=dry_run)
    conn = db.conn
    begin_immediate(conn)  # bounded retry (onboarding.db)
    try:
        result.selected = _select_into_temp(conn, db, flt)
        allowed = permits.checker(conn, act.actor, act.role)  # None: the database runs open
        ctx = GuardContext(conn, moment)
        at = ctx.at_stamp
        values_by_def: dict[tuple[str, int], dict[str, Any]] = {}
        defs: dict[tuple[str, int], Definition] = {}
        for chunk in _chunks(conn):
            moves = []
            for track in chunk:
                key = (track["definition"], track["def_version"])
                if key not in defs:
                    defs[key] = outbox.definition(conn, *key)
                    values_by_def[key] = coerce_fields(db, defs[key], sets or {}, moment)
                defn = defs[key]
                try:
                    if allowed is not None:
                        allowed(track)
                    move = plan(ctx, defn, track, trigger, act.role, values_by_def[key])
                except (TransitionRefused, PermissionDenied) as exc:
                    result.note_blocked(db, track, exc.sentence(), keep_blocked, per_reason)
                    continue
                moves.append(move)
                pair = (track["state"], move.to_state)
                result.by_move[pair] = result.by_move.get(pair, 0) + 1
            if not dry_run and not result.blocked_count:
                write_moves(conn, moves, act, at)
            result.moved += len(moves)
            if progress:
                progress(len(chunk))
        if dry_run or result.blocked_count:
            conn.execute("ROLLBACK")
        else:
            conn.execute("COMMIT")
    except BaseException:
        rollback(conn)  # never hides the cause (a full disk ends the transaction itself)
        raise
    if result.blocked_count and not dry_run:
        raise TransitionRefused(result.refusal(trigger))
    if not dry_run and result.moved:  # one event for the bulk, not one per track
        _log(
            "transition",
            trigger=trigger,
            tracks=result.moved,
            actor=act.actor,
            role=act.role,
            bulk=True,
        )
    return result
