"""The reports that regenerate the deck's tables from the tool's own data, as of any date.

* ``rollout``: per vendor solution (from contracts), municipalities in operation / agreed / not
  agreed / total, a total per category computed from its rows, and the distinct municipalities;
* ``goals``: the quarterly targets of a goals file against the actual numbers at each quarter's
  end, with the counters the tool cannot derive recorded by ``record_counter``;
* ``grid``: municipality by system, each cell the current step and working days in it;
* ``klik``, ``overdue``, ``waves``;
* ``buckets``: any definition's tracks per bucket (or state), in total or per municipality,
  vendor, system or region.

"As of" always means *replayed from history*: a track's state at the end of that day is the
``to_state`` of its last history row at or before that instant, and its due date then is the
engine's due rule applied to its fields and entry time then (``_tracks_as_of``), so a past date
gives the past picture however much has happened since (tests/test_reports_asof.py).
Buckets come from the definitions (the ``connection`` definition's three buckets are the
rollout columns, in its declared order); no state of a shipped definition is named here. Each
report is a plain dict (the ``--json`` shape) with a ``*_text`` function that lays it out in 80
columns; ``rollout_csv`` and ``rollout_html`` give the other formats. See docs/reports.md.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import statistics
import textwrap
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onboarding import calendar, clock, definitions, i18n, registry
from onboarding.csvio import safe_row
from onboarding.db import Database, immediate
from onboarding.errors import InputError, NotFound
from onboarding.i18n import Message
from workflows.model import Definition

if TYPE_CHECKING:
    from onboarding.visibility import Scope

__all__ = [
    "BUCKET_BY",
    "CONNECTION",
    "COUNT_KEYS",
    "buckets",
    "buckets_csv",
    "buckets_html",
    "buckets_text",
    "goals",
    "goals_file",
    "goals_text",
    "grid",
    "grid_text",
    "klik",
    "klik_text",
    "list_counters",
    "load_goals",
    "overdue",
    "overdue_text",
    "progress_series",
    "record_counter",
    "rollout",
    "rollout_csv",
    "rollout_html",
    "rollout_text",
    "waves",
    "waves_text",
]

CONNECTION = "connection"
KLIK = "klik-task"
WAVE = "rollout-wave"
#: The rollout report's count keys, for the connection definition's buckets in declared order.
COUNT_KEYS = ("not_agreed", "agreed", "in_operation")
TOTAL_LABEL = "I alt"
WIDTH = 80
DATA = Path(__file__).parent / "data"
TEMPLATES = Path(__file__).parent / "templates"
QUARTER_ENDS = {1: (3, 31), 2: (6, 30), 3: (9, 30), 4: (12, 31)}
#: Chart colours per category (others cycle through the rest).
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


# --- shared -------------------------------------------------------------------------------------


def _today(today: date | None) -> date:
    return today or clock.local_date(clock.now())


def _end_stamp(day: date) -> str:
    """The last instant of a Copenhagen day, stored form: 'as of 31 March' includes all of it."""
    return clock.stamp(clock.end_of_local_day(day))


def _rows(
    db: Database, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> list[dict[str, Any]]:
    cur = db.conn.execute(sql, params)
    keys = [d[0] for d in cur.description]
    return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


class _Defs:
    """Definitions by (name, version), read once per report."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[tuple[str, int | None], Definition] = {}

    def get(self, name: str, version: int | None = None) -> Definition:
        key = (name, version)
        if key not in self._cache:
            self._cache[key] = definitions.get(self.db, name, version)
        return self._cache[key]


def _states_as_of(db: Database, definition: str, stamp: str) -> list[dict[str, Any]]:
    """Every track of ``definition`` that existed at ``stamp``, with its state then."""
    return _rows(
        db,
        """
        WITH last AS (
            SELECT h.track_id, max(h.seq) AS seq FROM history h
            JOIN tracks t ON t.id = h.track_id
            WHERE t.definition = ? AND h.at <= ?
            GROUP BY h.track_id
        )
        SELECT t.id, t.municipality_code, t.system_id, t.index_set, t.klik_task_id,
               h.to_state AS state, h.def_version
        FROM last
        JOIN history h ON h.track_id = last.track_id AND h.seq = last.seq
        JOIN tracks t ON t.id = last.track_id
        ORDER BY t.id
        """,
        [definition, stamp],
    )


#: The columns of a track that never change after it starts: its subject.
_SUBJECT_COLUMNS = (
    "t.id, t.definition, t.municipality_code, t.system_id, t.index_set, t.bob, t.klik_task_id,"
    " t.course, t.vendor_id"
)


def _tracks_as_of(
    db: Database,
    stamp: str,
    definition: str | None = None,
    open_due_before: str | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Every track (of ``definition``, or of all) that existed at ``stamp``, as it was then.

    Each has its subject columns and, as of ``stamp``: ``state``, ``def_version``, ``final``,
    ``fields``, ``entered_at`` and ``due``. With ``open_due_before`` (an ISO date) only the
    tracks open then whose due date then is earlier are returned: the overdue ones.

    A track's row is the replay of its whole history (``tracks.replay``; the audit checks it),
    and its ``updated_at`` is the instant of its last history row, so a track not changed
    after ``stamp`` is read from its row, due date included (the same fast path as the rollout
    report). Only the tracks changed after ``stamp`` have their history up to then replayed:
    fields merged, the entry time of the last row that entered a state, and the due date
    computed by the engine's rule (``engine.compute_due``) from those. Never is a column of
    such a track's current row used for its state then: a finished track's row has no due date.
    """
    where = " AND t.definition = :d" if definition else ""
    if scope is not None and not scope.everything:
        where += f" AND {scope.tracks('t')}"  # need-to-know: onboarding.visibility
    params: dict[str, Any] = {"d": definition, "at": stamp, "day": open_due_before}
    late = " AND t.final = 0 AND t.due < :day" if open_due_before else ""
    out = [
        {**r, "fields": json.loads(r["fields"])}
        for r in _rows(
            db,
            f"SELECT {_SUBJECT_COLUMNS}, t.state, t.def_version, t.final, t.fields,"
            f" t.entered_at, t.due FROM tracks t WHERE t.updated_at <= :at{where}{late}",
            params,
        )
    ]
    if db.execute("SELECT 1 FROM history WHERE at > ? LIMIT 1", [stamp]).fetchone():
        out += _replayed(db, stamp, where, params, open_due_before)
    out.sort(key=lambda t: t["id"])
    return out


def _replayed(
    db: Database, stamp: str, where: str, params: dict[str, Any], open_due_before: str | None
) -> list[dict[str, Any]]:
    """The tracks changed after ``stamp`` (but started by then), replayed up to it."""
    from onboarding.engine import NO_REENTRY, compute_due
    from onboarding.guards import GuardContext

    defs = _Defs(db)
    ctx = GuardContext(db.conn, clock.unstamp(stamp))
    # History is appended in time order per track (a step is never dated before the one
    # before it), so the rows at or before the instant are a prefix of each track's history.
    # CROSS JOIN keeps the tracks the outer loop: only the changed tracks' history is read
    # (through its (track_id, seq) key), not every history row with a lookup of its track.
    cur = db.conn.execute(
        f"SELECT {_SUBJECT_COLUMNS}, h.to_state, h.trigger, h.at, h.def_version, h.fields"
        " FROM tracks t CROSS JOIN history h ON h.track_id = t.id"
        f" WHERE t.updated_at > :at AND t.created_at <= :at{where} AND h.at <= :at"
        " ORDER BY t.id, h.seq",
        params,
    )
    n = len(_SUBJECT_COLUMNS.split(","))
    keys = [d[0] for d in cur.description][:n]
    out = []
    for _, rows in groupby(cur, key=lambda r: r[0]):
        history = list(rows)
        track: dict[str, Any] = dict(zip(keys, history[0][:n], strict=True))
        fields: dict[str, Any] = {}
        entered = history[0][n + 2]
        for _to, trigger, at, _v, changed in (r[n:] for r in history):
            if changed != "{}":
                fields.update(json.loads(changed))
            if trigger not in NO_REENTRY:
                entered = at
        state_name, def_version = history[-1][n], history[-1][n + 3]
        state = defs.get(track["definition"], def_version).state(state_name)
        due = None
        if state.due is not None and not state.final:
            # fromisoformat reads the stored form exactly as clock.unstamp does, 10x faster.
            moment = datetime.fromisoformat(entered)
            due = compute_due(ctx, state, {**track, "fields": fields}, moment)
        track.update(
            state=state_name,
            def_version=def_version,
            final=int(state.final),
            fields=fields,
            entered_at=entered,
            due=due.isoformat() if due else None,
        )
        if open_due_before and (state.final or not due or track["due"] >= open_due_before):
            continue
        out.append(track)
    return out


def _category(db: Database, text: str | None) -> str | None:
    """A category as the registry spells it (case-insensitive), or None for all."""
    if not text:
        return None
    known = list(registry.CATEGORIES) + [
        r[0]
        for r in db.execute("SELECT DISTINCT category FROM systems ORDER BY category").fetchall()
    ]
    for name in known:
        if name.casefold() == text.strip().casefold():
            return str(name)
    raise InputError(
        Message(
            "unknown category %(category)s: expected %(expected)s",
            {"category": repr(text), "expected": ", ".join(dict.fromkeys(known))},
        )
    )


def _category_order(name: str) -> tuple[int, str]:
    cats = registry.CATEGORIES
    return (cats.index(name) if name in cats else len(cats), name)


def _bucket_keys(defn: Definition) -> dict[str, str]:
    if len(defn.buckets) != len(COUNT_KEYS):
        raise InputError(
            Message(
                "%(definition)s v%(version)s declares %(n)s buckets; the rollout report needs "
                "%(needed)s (not agreed, agreed, in operation, in that order)",
                {
                    "definition": defn.name,
                    "version": str(defn.version),
                    "n": str(len(defn.buckets)),
                    "needed": str(len(COUNT_KEYS)),
                },
            )
        )
    return dict(zip(defn.buckets, COUNT_KEYS, strict=True))


# --- text tables ----------------------------------------------------------------------------------


def _cell_lines(text: str, width: int) -> list[str]:
    """A cell as the lines it takes in a column ``width`` wide: wrapped, never cut, so a
    report piped into a mail or a file keeps every word."""
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_long_words=True) or [""]


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any] | None],
    align: str,
    width: int = WIDTH,
    min_widths: Sequence[int] | None = None,
) -> list[str]:
    """Lines of an aligned table that fits ``width``; a ``None`` row is a rule line.

    ``align`` has one letter per column, ``l`` or ``r``; left-aligned columns are narrowed
    when the table would be too wide, and a cell longer than its column wraps onto more lines.
    """
    cells = [None if r is None else ["" if v is None else str(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        if r is not None:
            widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    if min_widths:
        widths = [max(w, m) for w, m in zip(widths, min_widths, strict=True)]
    budget = width - 2 * (len(headers) - 1)
    while sum(widths) > budget:
        cuttable = [i for i, a in enumerate(align) if a == "l" and widths[i] > 6]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1

    def block(values: Sequence[str]) -> list[str]:
        if all(len(v) <= w for v, w in zip(values, widths, strict=True)):
            # One line (nearly every row): the same line as below, without the wrapping
            # machinery (half the text's time for a 10^4-row rollout table).
            return [
                "  ".join(
                    v.rjust(w) if a == "r" else v.ljust(w)
                    for v, w, a in zip(values, widths, align, strict=True)
                ).rstrip()
            ]
        parts = [_cell_lines(v, w) for v, w in zip(values, widths, strict=True)]
        out = []
        for i in range(max(len(p) for p in parts)):
            row = []
            for p, w, a in zip(parts, widths, align, strict=True):
                v = p[i] if i < len(p) else ""
                row.append(v.rjust(w) if a == "r" else v.ljust(w))
            out.append("  ".join(row).rstrip())
        return out

    rule = "  ".join("-" * w for w in widths)
    lines = [*block(headers), rule]
    for r in cells:
        lines += [rule] if r is None else block(r)
    return lines


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent) or [""]


# --- rollout ------------------------------------------------------------------------------------


def rollout(
    db: Database, category: str | None = None, as_of: date | None = None, *, kept: bool = True
) -> dict[str, Any]:
    """The deck's rollout table as of a date (default today), in the ``--json`` shape.

    One row per vendor solution some municipality uses (a contract on record, and for a
    contract the status import recorded, recorded by that date), grouped by category. Each
    municipality counts in the bucket of its most advanced connection track for that system as
    of the date; with no track it counts as not agreed. Category totals are sums of the rows.
    ``kept=False`` counts from the tracks even where the kept counts could be read (the tests
    compare the two).
    """
    day = as_of or _today(None)
    stamp = _end_stamp(day)
    cat = _category(db, category)
    defs = _Defs(db)
    latest = defs.get(CONNECTION)
    keys = _bucket_keys(latest)
    uses, ranked, uncounted = _use_counts(db, defs, stamp, kept)
    by_system: dict[int, dict[str, Any]] = {}
    for u in uses:
        if cat and u["category"] != cat:
            continue
        counts = ranked.get(u["system_id"], {})
        by_system[u["system_id"]] = {
            "category": u["category"],
            "vendor": u["vendor"],
            "system": u["system"],
            "in_operation": counts.get(2, 0),
            "agreed": counts.get(1, 0),
            "not_agreed": u["n"] - counts.get(1, 0) - counts.get(2, 0),
            "total": u["n"],
        }
    distinct = {
        r["category"]: r["n"]
        for r in _rows(
            db,
            # Per municipality and category, one probe that stops at the first use (reading
            # every contract and counting distinct codes took 0.5 s at 10^6 contracts).
            """
            SELECT k.category, count(*) AS n
            FROM municipalities m
            CROSS JOIN (SELECT DISTINCT category FROM systems) k
            WHERE EXISTS (
                SELECT 1 FROM contracts c
                JOIN systems s ON s.id = c.system_id
                LEFT JOIN contract_origins o
                    ON o.municipality_code = c.municipality_code AND o.system_id = c.system_id
                WHERE c.municipality_code = m.code AND s.category = k.category
                  AND (o.since IS NULL OR o.since <= ?)
            )
            GROUP BY k.category
            """,
            [stamp],
        )
        if not cat or r["category"] == cat
    }
    categories = []
    for name in sorted(distinct, key=_category_order):
        rows = sorted(
            (r for r in by_system.values() if r["category"] == name),
            key=lambda r: (r["vendor"].casefold(), r["system"].casefold()),
        )
        total = {k: sum(r[k] for r in rows) for k in (*COUNT_KEYS[::-1], "total")}
        n = distinct[name]
        note = None
        if n != total["total"]:
            note = Message(
                "%(uses)s uses across %(n)s distinct municipalities: some municipalities "
                "use more than one %(category)s solution.",
                {"uses": total["total"], "n": n, "category": name},
            )
        categories.append(
            {
                "category": name,
                "rows": [
                    {
                        "vendor": r["vendor"],
                        "system": r["system"],
                        "in_operation": r["in_operation"],
                        "agreed": r["agreed"],
                        "not_agreed": r["not_agreed"],
                        "total": r["total"],
                    }
                    for r in rows
                ],
                "total": total,
                "distinct_municipalities": n,
                "note": note,
            }
        )
    notes = []
    untracked = sum(
        n for system_id, n in uncounted.items() if not cat or _system_category(db, system_id) == cat
    )
    if untracked:
        notes.append(
            Message(
                "%(n)s connection track is for a municipality and system with no contract on "
                "record and not counted: record the contracts with 'onboarding registry import "
                "contracts'.",
                {"n": untracked},
                plural="%(n)s connection tracks are for a municipality and system with no "
                "contract on record and not counted: record the contracts with 'onboarding "
                "registry import contracts'.",
                n=untracked,
            )
        )
    return {
        "as_of": day.isoformat(),
        "definition": {"name": latest.name, "version": latest.version},
        "bucket_labels": {k: b for b, k in keys.items()},
        "categories": categories,
        "notes": notes,
    }


def _use_counts(
    db: Database, defs: _Defs, stamp: str, kept: bool
) -> tuple[list[dict[str, Any]], dict[int, dict[int, int]], dict[int, int]]:
    """Per system: its uses (category, vendor, system, ``n`` municipalities with a contract on
    record by ``stamp``); how many uses have their most advanced connection track in each
    bucket rank (0, 1, 2); how many pairs with a connection track have no contract then.

    Read from the counts kept per system and bucket (``onboarding.rollup``, O(systems)) when
    they are the answer: nothing recorded after ``stamp`` (no history row, no contract the
    status import recorded later) and every connection version's ranks stored. Otherwise
    counted from the tracks and history (``_best_buckets``).
    """
    if kept and _counts_kept(db, stamp):
        uses: dict[int, dict[str, Any]] = {}
        ranked: dict[int, dict[int, int]] = {}
        uncounted: dict[int, int] = {}
        for sid, category, vendor, system, rank, contracted, n in db.conn.execute(
            "SELECT c.system_id, s.category, v.name, s.name, c.rank, c.contracted, c.n"
            " FROM rollout_count c LEFT JOIN systems s ON s.id = c.system_id"
            " LEFT JOIN vendors v ON v.id = s.vendor_id WHERE c.n != 0"
        ):
            if not contracted:
                if rank >= 0:  # a pair with a track and no contract: noted, not counted
                    uncounted[sid] = uncounted.get(sid, 0) + n
                continue
            if system is not None and vendor is not None:
                use = uses.setdefault(
                    sid,
                    {
                        "system_id": sid,
                        "category": category,
                        "vendor": vendor,
                        "system": system,
                        "n": 0,
                    },
                )
                use["n"] += n
            if rank > 0:
                counts = ranked.setdefault(sid, {})
                counts[rank] = counts.get(rank, 0) + n
        return list(uses.values()), ranked, uncounted
    # Counted in SQL (bench/RESULTS.md: a Python loop over every track took 30 s at 10^6):
    # per system, how many municipalities use it, and how many of those have their most
    # advanced connection track in each bucket as of the date.
    rows = _rows(
        db,
        """
        SELECT u.system_id, s.category, v.name AS vendor, s.name AS system, u.n
        FROM (
            SELECT c.system_id, count(*) AS n FROM contracts c
            LEFT JOIN contract_origins o
                ON o.municipality_code = c.municipality_code AND o.system_id = c.system_id
            WHERE o.since IS NULL OR o.since <= ?
            GROUP BY c.system_id
        ) u
        JOIN systems s ON s.id = u.system_id
        JOIN vendors v ON v.id = s.vendor_id
        """,
        [stamp],
    )
    ranked, uncounted = _best_buckets(db, defs, stamp)
    return rows, ranked, uncounted


def _counts_kept(db: Database, stamp: str) -> bool:
    """Whether the kept counts are the report as of ``stamp``: nothing recorded after it."""
    later = db.execute(
        "SELECT EXISTS (SELECT 1 FROM history WHERE at > :at)"
        " OR EXISTS (SELECT 1 FROM contract_origins WHERE since > :at)"
        " OR EXISTS (SELECT 1 FROM definitions d WHERE d.name = :d AND NOT EXISTS"
        "  (SELECT 1 FROM rollout_rank r WHERE r.definition = d.name"
        "   AND r.def_version = d.version))",
        {"at": stamp, "d": CONNECTION},
    ).fetchone()[0]
    return not later


def _system_category(db: Database, system_id: int) -> str | None:
    row = db.execute("SELECT category FROM systems WHERE id = ?", [system_id]).fetchone()
    return str(row[0]) if row else None


def rank_case(db: Database, defs: _Defs, params: dict[str, Any]) -> str:
    """SQL for the bucket rank (0, 1, 2) of a connection track from its ``v`` (definition
    version) and ``state``; the state names go into ``params``."""
    versions = [
        int(r[0])
        for r in db.execute("SELECT version FROM definitions WHERE name = ?", [CONNECTION])
    ]
    cases = []
    for version in versions:
        defn = defs.get(CONNECTION, version)
        for rank in (1, 2):
            names = [st.name for st in defn.states if defn.bucket_rank(st.name) == rank]
            if names:
                keys = []
                for name in names:
                    params[f"s{len(params)}"] = name
                    keys.append(f":s{len(params) - 1}")
                cases.append(f"WHEN v = {version} AND state IN ({', '.join(keys)}) THEN {rank}")
    return f"CASE {' '.join(cases)} ELSE 0 END" if cases else "0"


def _best_buckets(
    db: Database, defs: _Defs, stamp: str
) -> tuple[dict[int, dict[int, int]], dict[int, int]]:
    """Per system: how many (municipality, system) uses have their most advanced connection
    track in each bucket rank (0, 1, 2) as of ``stamp``; and per system, how many
    (municipality, system) pairs with a connection track have no contract on record.

    A track's state as of ``stamp`` is its ``to_state`` of its last history row at or before
    then. Every track's row equals the replay of its history, and its ``created_at`` and
    ``updated_at`` are the instants of its first and last history rows, so only the tracks
    changed after ``stamp`` need their history read; the rest are counted from the track rows.
    """
    params: dict[str, Any] = {"d": CONNECTION, "at": stamp}
    rank_sql = rank_case(db, defs, params)
    later = db.execute("SELECT 1 FROM history WHERE at > ? LIMIT 1", [stamp]).fetchone()
    # Full scans, not the (definition, state) index: every connection track is read, and
    # in table order that is sequential (through the index it was 3x slower at 10^6).
    states = (
        "SELECT municipality_code AS m, system_id AS s, def_version AS v, state"
        " FROM tracks NOT INDEXED"
        " WHERE definition = :d AND created_at <= :at AND updated_at <= :at"
    )
    if later:
        # Tracks changed after the date: their last history row at or before it (the bare
        # columns of max() come from that row). One sequential pass over the history and one
        # sort beat reading it per track or through the history_at index (2x at 10^7 rows).
        states += (
            " UNION ALL"
            " SELECT t.municipality_code, t.system_id, h.def_version, h.to_state"
            " FROM (SELECT track_id, max(seq) AS seq, to_state, def_version FROM history"
            "       NOT INDEXED WHERE at <= :at GROUP BY +track_id) h"
            " JOIN tracks t ON t.id = h.track_id AND t.definition = :d AND t.updated_at > :at"
        )
    cur = db.conn.execute(
        f"""
        WITH best AS (
            SELECT m, s, max({rank_sql}) AS r FROM ({states}) GROUP BY m, s
        )
        SELECT b.s, b.r,
               (SELECT CASE WHEN o.since IS NULL OR o.since <= :at THEN 2 ELSE 1 END
                FROM contracts c LEFT JOIN contract_origins o
                    ON o.municipality_code = c.municipality_code AND o.system_id = c.system_id
                WHERE c.municipality_code = b.m AND c.system_id = b.s) AS contract,
               count(*)
        FROM best b WHERE b.s IS NOT NULL
        GROUP BY 1, 2, 3
        """,
        params,
    )
    ranked: dict[int, dict[int, int]] = {}
    uncounted: dict[int, int] = {}
    for system_id, rank, contract, n in cur.fetchall():
        if contract == 2:  # a use on record by then: counted in its bucket
            counts = ranked.setdefault(system_id, {})
            counts[rank] = counts.get(rank, 0) + n
        else:  # no contract on record by then (none, or one an import recorded later): noted
            uncounted[system_id] = uncounted.get(system_id, 0) + n
    return ranked, uncounted


def _danish(day: str, lang: str = i18n.DEFAULT) -> str:
    """A report's day as the language writes it (30.06.2021, 30 Jun 2021)."""
    return i18n.fmt_date(date.fromisoformat(day), lang)


def _lang(lang: str | None) -> str:
    """The language of a text report: given, else ``--lang``/``ONBOARDING_LANG``, else da."""
    return i18n.normalise(lang or i18n.cli_language())


def _say(lang: str, msgid: str, **params: Any) -> str:
    text = i18n.gettext(lang, msgid)
    return text % params if params else text


def _num(value: Any, lang: str) -> str:
    return i18n.fmt_number(value, lang) if isinstance(value, int) else str(value)


def rollout_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    """The rollout report as the deck lays it out, in 80 columns (in ``lang``)."""
    lang = _lang(lang)
    total_label = _say(lang, "Total")
    labels = report["bucket_labels"]
    headers_tail = [labels["in_operation"], labels["agreed"], labels["not_agreed"], total_label]
    lines = [
        _say(
            lang,
            "Rollout per vendor solution, status per %(day)s (counted in municipalities)",
            day=_danish(report["as_of"], lang),
        ),
        "",
    ]
    if not report["categories"]:
        lines.append(
            _say(lang, "(no contracts on record: import them with 'onboarding registry import')")
        )
    label_width = max(
        [len(c["category"]) for c in report["categories"]]
        + [len(f"{r['vendor']} - {r['system']}") for c in report["categories"] for r in c["rows"]]
        + [len(total_label)]
    )
    for c in report["categories"]:
        body: list[Sequence[Any] | None] = [
            [f"{r['vendor']} - {r['system']}", *(r[k] for k in _ORDER)] for r in c["rows"]
        ]
        body += [None, [total_label, *(c["total"][k] for k in _ORDER)]]
        lines += _table(
            [c["category"], *headers_tail],
            body,
            "lrrrr",
            min_widths=[label_width, 0, 0, 0, 0],
        )
        distinct = c["distinct_municipalities"]
        if c["note"]:
            lines += _wrap("* " + i18n.localise(c["note"], lang))
        else:
            lines.append(_say(lang, "%(n)s distinct municipalities.", n=distinct))
        lines.append("")
    for note in report.get("notes", []):
        lines += _wrap(_say(lang, "Note: %(note)s", note=i18n.localise(note, lang)))
    return "\n".join(lines).rstrip() + "\n"


_ORDER = ("in_operation", "agreed", "not_agreed", "total")


def rollout_csv(report: Mapping[str, Any]) -> str:
    """One line per vendor solution and per category total (``row`` says which); text cells
    that a spreadsheet would run as a formula are neutralised (``csvio.safe_cell``)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["as_of", "category", "row", "vendor", "system", *_ORDER, "distinct_municipalities"])
    for c in report["categories"]:
        for r in c["rows"]:
            w.writerow(
                safe_row(
                    [report["as_of"], c["category"], "system", r["vendor"], r["system"]]
                    + [r[k] for k in _ORDER]
                    + [""]
                )
            )
        w.writerow(
            safe_row(
                [report["as_of"], c["category"], "total", "", ""]
                + [c["total"][k] for k in _ORDER]
                + [c["distinct_municipalities"]]
            )
        )
    return out.getvalue()


# --- progress over time and the HTML report -----------------------------------------------------


def progress_series(
    db: Database, start: date, end: date, step_days: int = 7
) -> dict[str, list[tuple[str, int]]]:
    """Per category, the distinct municipalities with a connection in operation (the last
    bucket) at the end of each ``step_days`` from ``start`` to ``end`` (both included)."""
    defs = _Defs(db)
    hist: dict[int, tuple[list[str], list[int]]] = {}
    meta: dict[int, tuple[int, str]] = {}
    for r in _rows(
        db,
        """
        SELECT h.track_id, h.at, h.to_state, h.def_version, t.municipality_code, s.category
        FROM history h JOIN tracks t ON t.id = h.track_id JOIN systems s ON s.id = t.system_id
        WHERE t.definition = ? ORDER BY h.track_id, h.seq
        """,
        [CONNECTION],
    ):
        defn = defs.get(CONNECTION, r["def_version"])
        live = int(defn.bucket_rank(r["to_state"]) == len(defn.buckets) - 1)
        times, flags = hist.setdefault(r["track_id"], ([], []))
        times.append(r["at"])
        flags.append(live)
        meta[r["track_id"]] = (r["municipality_code"], r["category"])
    days = []
    day = start
    while day < end:
        days.append(day)
        day += timedelta(days=step_days)
    days.append(end)
    series: dict[str, list[tuple[str, int]]] = {}
    categories = sorted({c for _, c in meta.values()}, key=_category_order)
    for cat in categories:
        points = []
        for d in days:
            stamp = _end_stamp(d)
            municipalities = set()
            for track_id, (times, flags) in hist.items():
                if meta[track_id][1] != cat:
                    continue
                i = bisect_right(times, stamp)
                if i and flags[i - 1]:
                    municipalities.add(meta[track_id][0])
            points.append((d.isoformat(), len(municipalities)))
        series[cat] = points
    return series


def _chart(
    series: Mapping[str, list[tuple[str, int]]],
    targets: Mapping[str, list[tuple[str, int, str]]],
    year: int,
    as_of: date,
    lang: str = i18n.DEFAULT,
) -> dict[str, Any]:
    """Coordinates for the inline SVG: lines per category, target markers, axes (month names
    in ``lang``)."""
    width, height = 760, 340
    left, right, top, bottom = 48, 150, 20, 40
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    start, end = date(year, 1, 1), date(year, 12, 31)
    values = [v for pts in series.values() for _, v in pts] + [
        v for ts in targets.values() for _, v, _ in ts
    ]
    top_value = max([10, *values])
    step = 10 if top_value <= 100 else 50 if top_value <= 500 else 100
    y_max = ((top_value + step - 1) // step) * step
    span = (end - start).days

    def x(day: date) -> float:
        return round(x0 + (x1 - x0) * (day - start).days / span, 1)

    def y(value: int) -> float:
        return round(y0 - (y0 - y1) * value / y_max, 1)

    colours = {
        c: COLOURS[i % len(COLOURS)] for i, c in enumerate(sorted(set(series) | set(targets)))
    }
    lines = []
    for cat, pts in series.items():
        coords = [
            (x(date.fromisoformat(d)), y(v))
            for d, v in pts
            if start <= date.fromisoformat(d) <= end
        ]
        if not coords:
            continue
        last = pts[-1][1]
        lines.append(
            {
                "category": cat,
                "colour": colours[cat],
                "points": " ".join(f"{a},{b}" for a, b in coords),
                "end": coords[-1],
                "last": last,
            }
        )
    markers = []
    # Categories often share targets (30 / 70 / all): side by side, each diamond stays visible.
    cats = sorted(targets, key=_category_order)
    for cat, ts in targets.items():
        shift = (cats.index(cat) - (len(cats) - 1) / 2) * 9
        for d, v, label in ts:
            px, py = round(x(date.fromisoformat(d)) + shift, 1), y(v)
            markers.append(
                {
                    "category": cat,
                    "colour": colours[cat],
                    "x": px,
                    "y": py,
                    "value": v,
                    "label": label,
                    "path": f"M{px},{py - 6} L{px + 6},{py} L{px},{py + 6} L{px - 6},{py} Z",
                }
            )
    return {
        "width": width,
        "height": height,
        "x0": x0,
        "x1": x1,
        "y0": y0,
        "y1": y1,
        "yticks": [(y(v), v) for v in range(0, y_max + 1, step if y_max <= 100 else step * 2)],
        "months": [(x(date(year, m, 1)), _month(m, lang)) for m in range(1, 13)],
        "quarters": [(x(date(year, m, d)), f"Q{q}") for q, (m, d) in QUARTER_ENDS.items()],
        "as_of": x(min(max(as_of, start), end)) if as_of.year == year else None,
        "as_of_label": i18n.fmt_date(as_of, lang),
        "lines": lines,
        "markers": markers,
        "legend": [
            {"category": c, "colour": colours[c], "y": y1 + 18 * i}
            for i, c in enumerate(sorted(set(series) | set(targets), key=_category_order))
        ],
    }


def _rollout_targets(
    db: Database, year: int, as_of: date | None = None
) -> dict[str, list[tuple[str, int, str]]]:
    """Quarterly targets counted in municipalities, per category, from the year's goals; an
    ``all`` target counts the uses on record at the quarter's end, or at ``as_of`` if earlier
    (as the goals report does)."""
    path = goals_file(year)
    if path is None:
        return {}
    spec = load_goals(path)
    out: dict[str, list[tuple[str, int, str]]] = {}
    for g in spec["goals"]:
        m = g.get("measure", {})
        if m.get("count") != "municipalities" or len(m.get("categories", [])) != 1:
            continue
        cat = m["categories"][0]
        for q, target in g["targets"].items():
            end = _quarter_end(year, int(q[1]))
            value = _target_value(db, g, target["value"], min(end, as_of or end))
            label = Message("%(q)s target %(value)s", {"q": q, "value": value})
            out.setdefault(cat, []).append((end.isoformat(), value, label))
    return out


def rollout_html(
    db: Database, report: Mapping[str, Any], today: date | None = None, lang: str | None = None
) -> str:
    """One self-contained HTML file (no scripts, no external references): the rollout tables,
    the year's goals and an inline SVG chart of rollout progress against quarterly targets.
    In ``lang`` (default: ``--lang``/``ONBOARDING_LANG``, Danish): texts from the catalogue,
    goal names and statuses by their labels, dates and months as the language writes them."""
    from jinja2 import Environment, FileSystemLoader

    lang = i18n.normalise(lang or i18n.cli_language())
    as_of = date.fromisoformat(report["as_of"])
    year = as_of.year
    start = date(year, 1, 1)
    series = progress_series(db, start, as_of) if as_of >= start else {}
    shown = {c["category"] for c in report["categories"]}
    series = {c: pts for c, pts in series.items() if c in shown}
    targets = {c: t for c, t in _rollout_targets(db, year, as_of).items() if c in shown}
    chart = _chart(series, targets, year, as_of, lang)
    goal_report = None
    if goals_file(year) is not None:
        goal_report = goals(db, year, today=min(_today(today), as_of))
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(lang), newstyle=True
    )
    env.filters.update(
        say=lambda text: i18n.localise(text, lang),
        num=lambda n: i18n.fmt_number(n, lang) if isinstance(n, int | float) else n,
        goal=lambda text: i18n.pgettext(lang, "goal", str(text)) if text else "",
        status=lambda text: i18n.pgettext(lang, "status", str(text)),
    )
    template = env.get_template("report.html.j2")
    return template.render(
        lang=lang,
        report=report,
        chart=chart,
        goals=goal_report,
        as_of_label=i18n.fmt_date(as_of, lang),
        generated=i18n.fmt_datetime(clock.now(), lang),
        order=_ORDER,
        total_label=i18n.gettext(lang, "Total"),
    )


def _month(month: int, lang: str) -> str:
    """A month's short name in ``lang`` (jan., Jan)."""
    from babel.dates import get_month_names

    return str(get_month_names("abbreviated", locale=i18n.FORMAT_LOCALE[lang])[month])


# --- goals --------------------------------------------------------------------------------------


def goals_file(year: int) -> Path | None:
    """The shipped goals file for a year (``data/goals-YEAR.yaml``), if there is one."""
    path = DATA / f"goals-{year}.yaml"
    return path if path.exists() else None


def _shipped_counters() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(DATA.glob("goals-*.yaml")):
        out.update(load_goals(path)["counters"])
    return out


def load_goals(path: str | Path) -> dict[str, Any]:
    """Read and check a goals file; targets become ``{"Q1": {"value": .., "label": ..}}``."""
    import yaml  # here: only the goals reports read a goals file

    try:
        spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            Message(
                "%(path)s: cannot read goals: %(reason)s", {"path": str(path), "reason": str(exc)}
            )
        ) from None
    problems: list[str] = []
    if not isinstance(spec, dict) or not isinstance(spec.get("year"), int):
        raise InputError(
            Message(
                "%(path)s: a goals file needs 'year' (a number) and 'goals' (a list)",
                {"path": str(path)},
            )
        )
    counters = spec.get("counters") or {}
    if not isinstance(counters, dict):
        problems.append(Message("counters: must map counter names to labels"))
        counters = {}
    goal_list = spec.get("goals")
    if not isinstance(goal_list, list):
        raise InputError(Message("%(path)s: 'goals' must be a list", {"path": str(path)}))
    for i, g in enumerate(goal_list):
        where = f"goals[{i}]"
        if not isinstance(g, dict) or not g.get("name") or not g.get("label"):
            problems.append(Message("%(where)s: needs name and label", {"where": where}))
            continue
        where = f"goals[{i}] ({g['name']})"
        m = g.get("measure")
        if not isinstance(m, dict):
            problems.append(Message("%(where)s.measure: missing", {"where": where}))
            continue
        if "counter" in m:
            if m["counter"] not in counters:
                problems.append(
                    Message(
                        "%(where)s.measure.counter: %(counter)s is not in counters",
                        {"where": where, "counter": repr(m["counter"])},
                    )
                )
        else:
            if m.get("count") not in ("municipalities", "systems"):
                problems.append(
                    Message("%(where)s.measure.count: municipalities or systems", {"where": where})
                )
            if not m.get("definition"):
                problems.append(Message("%(where)s.measure.definition: missing", {"where": where}))
            if not (m.get("states") or m.get("buckets")):
                problems.append(
                    Message("%(where)s.measure: give states or buckets", {"where": where})
                )
            if not m.get("categories"):
                problems.append(Message("%(where)s.measure.categories: missing", {"where": where}))
        targets = g.get("targets")
        if not isinstance(targets, dict) or not targets:
            problems.append(
                Message(
                    "%(where)s.targets: map Q1-Q4 to a number, 'all' or {value, label}",
                    {"where": where},
                )
            )
            continue
        norm = {}
        for q, t in targets.items():
            if q not in ("Q1", "Q2", "Q3", "Q4"):
                problems.append(
                    Message("%(where)s.targets.%(q)s: quarters are Q1-Q4", {"where": where, "q": q})
                )
                continue
            value, label = (t.get("value"), t.get("label")) if isinstance(t, dict) else (t, None)
            if not (value == "all" or (isinstance(value, int) and value >= 0)):
                problems.append(
                    Message(
                        "%(where)s.targets.%(q)s: a whole number or 'all'", {"where": where, "q": q}
                    )
                )
            norm[q] = {"value": value, "label": label}
        g["targets"] = dict(sorted(norm.items()))
    if problems:
        raise InputError(
            Message(
                "%(path)s: %(problems)s",
                {"path": str(path), "problems": i18n.Phrases(problems, sep="; ")},
            )
        )
    spec["counters"] = counters
    return spec


def _quarter_end(year: int, quarter: int) -> date:
    m, d = QUARTER_ENDS[quarter]
    return date(year, m, d)


def _target_value(db: Database, goal: Mapping[str, Any], value: Any, day: date) -> int:
    """A target's number; ``all`` counts the uses on record at the end of ``day`` (a contract
    the status import recorded counts from its row's date, as in the rollout report)."""
    if value != "all":
        return int(value)
    m = goal["measure"]
    cats = list(m["categories"])
    marks = ",".join("?" * len(cats))
    on_record = (
        " LEFT JOIN contract_origins o ON o.municipality_code = c.municipality_code"
        f" AND o.system_id = c.system_id WHERE s.category IN ({marks})"
        " AND (o.since IS NULL OR o.since <= ?)"
    )
    params = [*cats, _end_stamp(day)]
    if m["count"] == "municipalities":
        n = db.execute(
            "SELECT count(DISTINCT c.municipality_code) FROM contracts c"
            f" JOIN systems s ON s.id = c.system_id{on_record}",
            params,
        ).fetchone()[0]
        return int(n) or int(db.execute("SELECT count(*) FROM municipalities").fetchone()[0])
    n = db.execute(
        "SELECT count(DISTINCT c.system_id) FROM contracts c"
        f" JOIN systems s ON s.id = c.system_id{on_record}",
        params,
    ).fetchone()[0]
    if n:
        return int(n)
    return int(
        db.execute(f"SELECT count(*) FROM systems WHERE category IN ({marks})", cats).fetchone()[0]
    )


def _measure(db: Database, defs: _Defs, goal: Mapping[str, Any], day: date) -> int | None:
    m = goal["measure"]
    stamp = _end_stamp(day)
    if "counter" in m:
        row = db.execute(
            "SELECT value FROM goal_counters WHERE counter = ? AND at <= ?"
            " ORDER BY at DESC, id DESC LIMIT 1",
            [m["counter"], day.isoformat()],
        ).fetchone()
        return None if row is None else int(row[0])
    cats = set(m["categories"])
    system_cats = {
        int(r[0]): str(r[1]) for r in db.execute("SELECT id, category FROM systems").fetchall()
    }
    states = set(m.get("states") or [])
    buckets = set(m.get("buckets") or [])
    seen = set()
    for t in _states_as_of(db, m["definition"], stamp):
        if system_cats.get(t["system_id"]) not in cats:
            continue
        if m.get("index") and t["index_set"] != m["index"]:
            continue
        st = defs.get(m["definition"], t["def_version"]).state(t["state"])
        if st.name in states or (st.bucket is not None and st.bucket in buckets):
            seen.add(t["municipality_code"] if m["count"] == "municipalities" else t["system_id"])
    return len(seen)


def goals(
    db: Database,
    year: int,
    quarter: int | None = None,
    today: date | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Each goal's quarterly targets against the actual number at the quarter's end.

    A quarter not yet ended is measured as of today and is ``open`` (or ``on track`` when the
    target is already reached); an ended one is ``met`` or ``missed``, or ``not recorded`` when
    a counter has no value recorded by then.
    """
    if quarter is not None and quarter not in QUARTER_ENDS:
        raise InputError(
            Message("--quarter %(quarter)s: quarters are 1 to 4", {"quarter": str(quarter)})
        )
    source = Path(path) if path else goals_file(year)
    if source is None:
        shipped = ", ".join(p.stem for p in sorted(DATA.glob("goals-*.yaml")))
        raise NotFound("goals file for year", str(year), [shipped] if shipped else [])
    spec = load_goals(source)
    if spec["year"] != year:
        raise InputError(
            Message(
                "%(path)s: holds the goals of %(year)s, not %(wanted)s",
                {"path": str(source), "year": str(spec["year"]), "wanted": str(year)},
            )
        )
    day = _today(today)
    defs = _Defs(db)
    out = []
    for g in spec["goals"]:
        for q, target in g["targets"].items():
            qn = int(q[1])
            if quarter is not None and qn != quarter:
                continue
            end = _quarter_end(year, qn)
            measured_on = min(end, day)
            actual = _measure(db, defs, g, measured_on)
            value = _target_value(db, g, target["value"], measured_on)
            if actual is None:
                status = "not recorded"
            elif end > day:
                status = "on track" if actual >= value else "open"
            else:
                status = "met" if actual >= value else "missed"
            out.append(
                {
                    "goal": g["name"],
                    "label": g["label"],
                    "quarter": q,
                    "quarter_end": end.isoformat(),
                    "measured_on": measured_on.isoformat(),
                    "target": value,
                    "target_spec": target["value"],
                    "target_label": target["label"],
                    "actual": actual,
                    "status": status,
                }
            )
    out.sort(key=lambda r: (r["quarter"], _goal_index(spec, r["goal"])))
    return {"year": year, "today": day.isoformat(), "file": str(source), "goals": out}


def _goal_index(spec: Mapping[str, Any], name: str) -> int:
    return next(i for i, g in enumerate(spec["goals"]) if g["name"] == name)


def goals_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    lang = _lang(lang)
    day = _danish(report["today"], lang)
    lines = [_say(lang, "Goals %(year)s, as of %(day)s", year=report["year"], day=day), ""]
    rows: list[Sequence[Any] | None] = []
    for r in report["goals"]:
        label = i18n.pgettext(lang, "goal", r["label"])
        if r["target_label"]:
            label += ": " + i18n.pgettext(lang, "goal", r["target_label"])
        actual = "-" if r["actual"] is None else _num(r["actual"], lang)
        status = i18n.pgettext(lang, "status", r["status"])
        rows.append([r["quarter"], label, _num(r["target"], lang), actual, status])
    if not rows:
        lines.append(_say(lang, "(no goals for that quarter)"))
    else:
        headers = [_say(lang, h) for h in ("Quarter", "Goal", "Target", "Actual", "Status")]
        lines += _table(headers, rows, "llrrl")
    return "\n".join(lines) + "\n"


def record_counter(
    db: Database, counter: str, value: int, at: date, actor: str, note: str | None = None
) -> dict[str, Any]:
    """Record a counter the tool cannot derive (append-only; the latest on or before a date
    counts for that date)."""
    known = _shipped_counters()
    if counter not in known:
        close = [k for k in known if counter.casefold() in k] or difflib.get_close_matches(
            counter, list(known), n=3, cutoff=0.4
        )
        raise NotFound("counter", counter, close or sorted(known))
    if value < 0:
        raise InputError(
            Message(
                "counter %(counter)s: %(value)s is negative (a count is 0 or more)",
                {"counter": counter, "value": str(value)},
            )
        )
    if at > _today(None):
        raise InputError(
            Message(
                "--at %(at)s is in the future: now is %(now)s",
                {"at": str(at), "now": clock.show_instant(clock.now())},
            )
        )
    recorded = clock.stamp(clock.now())
    with immediate(db) as conn:
        cur = conn.execute(
            "INSERT INTO goal_counters (counter, value, at, actor, note, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [counter, value, at.isoformat(), actor, note, recorded],
        )
        row_id = int(cur.lastrowid or 0)
    return {
        "id": row_id,
        "counter": counter,
        "label": known[counter],
        "value": value,
        "at": at.isoformat(),
        "actor": actor,
        "note": note,
    }


def list_counters(db: Database) -> list[dict[str, Any]]:
    """Every counter a shipped goals file names, with each value recorded (oldest first)."""
    out = []
    for name, label in _shipped_counters().items():
        values = _rows(
            db,
            "SELECT value, at, actor, note FROM goal_counters WHERE counter = ? ORDER BY at, id",
            [name],
        )
        out.append({"counter": name, "label": label, "values": values})
    return out


# --- grid ---------------------------------------------------------------------------------------


@dataclass
class _Cell:
    track: int
    state: str
    step: int
    days: int
    final: bool
    live: bool
    overdue: bool
    outlier: bool = False

    def text(self) -> str:
        if self.final:
            return "ok" if self.live else "x"
        return (
            f"{self.step}:{self.days}"
            + ("*" if self.outlier else "")
            + ("!" if self.overdue else "")
        )


def grid(
    db: Database,
    category: str | None = None,
    today: date | None = None,
    as_of: date | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """Municipality by system: each connection's current step, working days in it, outliers.

    With ``scope`` (onboarding.visibility) only the reader's own cells are listed (all of them
    when the portfolio is public); outliers and the overdue count stay national.

    An open track is an outlier when its working days in the step lie above the upper Tukey
    fence (Q3 + 1.5 IQR) of all open tracks in the same step, with at least four of them.
    With ``as_of`` the grid is the one at the end of that day, replayed from history
    (``_tracks_as_of``: state, entry time and due date then).
    """
    day = as_of or _today(today)
    cat = _category(db, category)
    defs = _Defs(db)
    if as_of is None:
        tracks = _rows(
            db,
            """
            SELECT t.id, t.municipality_code, t.system_id, t.state, t.def_version, t.final,
                   t.entered_at, t.due
            FROM tracks t JOIN systems s ON s.id = t.system_id
            WHERE t.definition = ? AND (? IS NULL OR s.category = ?)
            ORDER BY t.final, t.id
            """,
            [CONNECTION, cat, cat],
        )
    else:
        in_category = {
            r["id"]
            for r in _rows(db, "SELECT id FROM systems WHERE ? IS NULL OR category = ?", [cat, cat])
        }
        tracks = sorted(
            (
                t
                for t in _tracks_as_of(db, _end_stamp(as_of), CONNECTION)
                if t["system_id"] in in_category
            ),
            key=lambda t: (t["final"], t["id"]),  # as the query above orders them
        )
    contracts = _rows(
        db,
        "SELECT c.municipality_code, c.system_id FROM contracts c JOIN systems s"
        " ON s.id = c.system_id WHERE (? IS NULL OR s.category = ?)",
        [cat, cat],
    )
    cells: dict[tuple[int, int], _Cell] = {}
    for t in tracks:
        key = (t["municipality_code"], t["system_id"])
        if key in cells and not cells[key].final:
            continue  # an open track wins over a finished one; the newest open one wins
        defn = defs.get(CONNECTION, t["def_version"])
        state = defn.state(t["state"])
        entered = clock.local_date(clock.unstamp(t["entered_at"]))
        cells[key] = _Cell(
            track=t["id"],
            state=state.name,
            step=[s.name for s in defn.states].index(state.name) + 1,
            days=max(0, calendar.working_days_between(entered, day)),
            final=bool(t["final"]),
            live=defn.bucket_rank(state.name) == len(defn.buckets) - 1,
            overdue=bool(t["due"]) and not t["final"] and t["due"] < day.isoformat(),
        )
    by_step: dict[str, list[int]] = {}
    for c in cells.values():
        if not c.final:
            by_step.setdefault(c.state, []).append(c.days)
    fences = {}
    for step_name, days in by_step.items():
        if len(days) >= 4:
            q1, _, q3 = statistics.quantiles(days, n=4, method="inclusive")
            fences[step_name] = q3 + 1.5 * (q3 - q1)
    for c in cells.values():
        if not c.final and c.state in fences and c.days > fences[c.state]:
            c.outlier = True
    shown, contracts = _own_cells(db, scope, cells, contracts)
    used = {k for k in shown} | {(c["municipality_code"], c["system_id"]) for c in contracts}
    with_contract = {(c["municipality_code"], c["system_id"]) for c in contracts}
    systems = {s["id"]: s for s in registry.list_systems(db) if s["id"] in {k[1] for k in used}}
    system_order = sorted(
        systems.values(), key=lambda s: (_category_order(s["category"]), s["label"].casefold())
    )
    names = {m["code"]: m["name"] for m in registry.list_municipalities(db)}
    rows = []
    for code in sorted({k[0] for k in used}, key=lambda c: names[c].casefold()):
        row_cells: dict[str, Any] = {}
        for s in system_order:
            key = (code, s["id"])
            cell = shown.get(key)
            if cell is not None:
                row_cells[s["label"]] = {
                    "track": cell.track,
                    "state": cell.state,
                    "step": cell.step,
                    "days": cell.days,
                    "overdue": cell.overdue,
                    "outlier": cell.outlier,
                    "final": cell.final,
                    "text": cell.text(),
                }
            elif key in with_contract:
                row_cells[s["label"]] = {"track": None, "text": "-"}
        rows.append({"code": code, "municipality": names[code], "cells": row_cells})
    return {
        "today": day.isoformat(),
        "category": cat,
        "systems": [
            {"label": s["label"], "name": s["name"], "category": s["category"]}
            for s in system_order
        ],
        "rows": rows,
        "outliers": sum(1 for c in cells.values() if c.outlier),
        "overdue": sum(1 for c in cells.values() if c.overdue),
    }


def _own_cells(
    db: Database,
    scope: Scope | None,
    cells: dict[tuple[int, int], _Cell],
    contracts: list[dict[str, Any]],
) -> tuple[dict[tuple[int, int], _Cell], list[dict[str, Any]]]:
    """The grid cells and contracts a reader sees: its own unless the portfolio is public."""
    if scope is None or scope.names_public:
        return cells, contracts
    own = scope.track_ids(db, CONNECTION)
    own_contracts = {
        (int(r[0]), int(r[1]))
        for r in db.conn.execute(
            f"SELECT c.municipality_code, c.system_id FROM contracts c WHERE {scope.contracts('c')}"
        )
    }
    return (
        {k: c for k, c in cells.items() if c.track in own},
        [c for c in contracts if (c["municipality_code"], c["system_id"]) in own_contracts],
    )


def grid_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    """The grid in blocks of systems that fit 80 columns, with a legend."""
    lang = _lang(lang)
    municipality = _say(lang, "Municipality")
    lines = [
        _say(
            lang,
            "Connections by municipality and system, %(day)s",
            day=_danish(report["today"], lang),
        )
        + (f" ({report['category']})" if report["category"] else ""),
        "",
    ]
    systems = report["systems"]
    if not systems:
        return "\n".join([*lines, _say(lang, "(no connections or contracts)")]) + "\n"
    name_width = min(
        17, max(len(municipality), *(len(r["municipality"]) for r in report["rows"]))
    )
    widths = []
    for s in systems:
        cell_width = max(
            [len(r["cells"].get(s["label"], {}).get("text", "")) for r in report["rows"]] + [4]
        )
        widths.append(max(cell_width, min(len(s["name"]), 9)))
    blocks: list[list[int]] = [[]]
    used = name_width
    for i, w in enumerate(widths):
        if blocks[-1] and used + 2 + w > WIDTH:
            blocks.append([])
            used = name_width
        blocks[-1].append(i)
        used += 2 + w
    for block in blocks:
        headers = [municipality, *(systems[i]["name"] for i in block)]
        body: list[Sequence[Any] | None] = [
            [
                r["municipality"],
                *(r["cells"].get(systems[i]["label"], {}).get("text", "") for i in block),
            ]
            for r in report["rows"]
        ]
        lines += _table(
            headers,
            body,
            "l" + "r" * len(block),
            min_widths=[name_width, *(widths[i] for i in block)],
        )
        lines.append("")
    legend = _say(
        lang,
        "Cell: step:working days in it (steps as in 'onboarding workflow show connection'); "
        "ok = in operation; x = ended without going live; - = contract but no track; "
        "* = outlier for its step (%(outliers)s); ! = overdue (%(overdue)s).",
        outliers=report["outliers"],
        overdue=report["overdue"],
    )
    lines += _wrap(legend)
    return "\n".join(lines) + "\n"


# --- KLIK ---------------------------------------------------------------------------------------


def klik(
    db: Database,
    task: str | None = None,
    as_of: date | None = None,
    today: date | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """Per KLIK task, municipalities by status bucket (the deck's Fuldført / Påbegyndt / Ikke
    påbegyndt) as of a date. A municipality with no track for a task counts in the first bucket
    (KLIK tasks go to every municipality). With ``scope`` (onboarding.visibility) the counts
    stay national but a task's open municipalities list only the reader's own (all when the
    portfolio is public)."""
    day = as_of or _today(today)
    defs = _Defs(db)
    defn = defs.get(KLIK)
    buckets = list(defn.buckets)
    tasks = registry.list_klik_tasks(db)
    if task:
        tasks = [registry.resolve_klik_task(db, task)]
    names = {m["code"]: m["name"] for m in registry.list_municipalities(db)}
    # State and due date as of the day, replayed: the current row would lose the due date of
    # a task finished since (and with it the overdue count of that day).
    states = _tracks_as_of(db, _end_stamp(day), KLIK)
    out = []
    for t in tasks:
        counts = dict.fromkeys(buckets[::-1], 0)
        seen: dict[int, dict[str, Any]] = {}
        for s in (s for s in states if s["klik_task_id"] == t["id"]):  # by id: the newest wins
            seen[s["municipality_code"]] = s
        open_rows = []
        overdue_count = 0
        for code, s in seen.items():
            st = defs.get(KLIK, s["def_version"]).state(s["state"])
            bucket = st.bucket or buckets[0]
            counts[bucket] += 1
            due = s["due"] if not st.final else None
            late = bool(due) and not st.final and str(due) < day.isoformat()
            overdue_count += late
            if not st.final:
                open_rows.append(
                    {
                        "code": code,
                        "municipality": names.get(code),
                        "track": s["id"],
                        "state": st.name,
                        "label": st.label,
                        "bucket": bucket,
                        "due": due,
                        "overdue": late,
                    }
                )
        without = len(names) - len(seen)
        counts[buckets[0]] += without
        entry: dict[str, Any] = {
            "task": t["name"],
            "type": t["type"],
            "end_date": t["end_date"],
            "counts": counts,
            "total": sum(counts.values()),
            "without_track": without,
            "overdue": overdue_count,
        }
        if task:
            if scope is not None and not scope.names_public:
                own = scope.track_ids(db, KLIK)
                open_rows = [r for r in open_rows if r["track"] in own]
            entry["open"] = sorted(open_rows, key=lambda r: str(r["municipality"]).casefold())
        out.append(entry)
    return {"as_of": day.isoformat(), "buckets": buckets[::-1], "tasks": out}


def klik_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    lang = _lang(lang)
    buckets = report["buckets"]
    day = _danish(report["as_of"], lang)
    lines = [_say(lang, "KLIK tasks, status per %(day)s (municipalities)", day=day), ""]
    rows: list[Sequence[Any] | None] = [
        [
            t["task"],
            _danish(t["end_date"], lang) if t["end_date"] else "",
            *(t["counts"][b] for b in buckets),
            t["overdue"],
        ]
        for t in report["tasks"]
    ]
    headers = [_say(lang, "Task"), _say(lang, "End date"), *buckets, _say(lang, "Overdue")]
    lines += _table(headers, rows, "ll" + "r" * (len(buckets) + 1))
    for t in report["tasks"]:
        if t["without_track"]:
            lines += _wrap(
                _say(
                    lang,
                    "%(task)s: %(n)s municipalities have no track for it and count as "
                    "%(bucket)s.",
                    task=t["task"],
                    n=t["without_track"],
                    bucket=buckets[-1],
                )
            )
        if t.get("open"):  # an empty section is left out: the counts above say it
            lines += ["", _say(lang, "Open: %(task)s (%(type)s)", task=t["task"], type=t["type"])]
            lines += _table(
                [_say(lang, "Municipality"), _say(lang, "Status"), _say(lang, "Due")],
                [
                    [
                        r["municipality"],
                        r["label"],
                        (_danish(r["due"], lang) if r["due"] else "")
                        + (" !" if r["overdue"] else ""),
                    ]
                    for r in t["open"]
                ],
                "lll",
            )
    return "\n".join(lines) + "\n"


# --- overdue ------------------------------------------------------------------------------------


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


# --- waves --------------------------------------------------------------------------------------


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


# --- buckets of any definition ------------------------------------------------------------------

#: What ``report buckets --by`` may group a definition's tracks by.
BUCKET_BY = ("municipality", "vendor", "system", "region")
#: The row headings of ``--by``, in the users' words.
BY_LABELS = {
    "municipality": "Kommune",
    "vendor": "Leverandør",
    "system": "System",
    "region": "Region",
}
#: The row of a track whose subject has no such part (a system track grouped by municipality).
_NONE_LABEL = {
    "municipality": "(uden kommune)",
    "vendor": "(uden leverandør)",
    "system": "(uden system)",
    "region": "(uden region)",
}


def _bucket_columns(defs: _Defs, defn: Definition) -> tuple[str, list[dict[str, str]]]:
    """("bucket", the declared buckets) or, for a definition that declares none, ("state",
    its states): the columns a track is counted in, earliest first."""
    if defn.buckets:
        return "bucket", [{"key": b, "label": b} for b in defn.buckets]
    return "state", [{"key": s.name, "label": s.label} for s in defn.states]


def _row_key(
    by: str | None,
    track: Mapping[str, Any],
    places: Mapping[int, Mapping[str, Any]],
    systems: Mapping[int, Mapping[str, Any]],
    vendors: Mapping[int, str],
) -> str:
    if by is None:
        return TOTAL_LABEL
    code, system_id = track.get("municipality_code"), track.get("system_id")
    if by == "vendor" and track.get("vendor_id") is not None:  # a vendor-only subject
        return vendors.get(int(track["vendor_id"])) or _NONE_LABEL[by]
    if by in ("municipality", "region"):
        place = places.get(int(code)) if code is not None else None
        value = place and (place["name"] if by == "municipality" else place["region"])
    else:
        system = systems.get(int(system_id)) if system_id is not None else None
        value = system and (system["label"] if by == "system" else system["vendor"])
    return str(value) if value else _NONE_LABEL[by]


#: The row that counts the municipalities a reader may not name (``buckets`` with a scope).
OTHER_MUNICIPALITIES = "(andre kommuner)"


def buckets(
    db: Database,
    definition: str,
    by: str | None = None,
    as_of: date | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """A definition's tracks counted per bucket as of a date (default today), in total or per
    municipality, vendor, system or region: the ``report buckets --json`` shape.

    Each track that existed at the end of the day counts once, in the bucket of its state then
    (replayed from history as for every report: ``_tracks_as_of``), read in the definition
    version it ran then. A definition that declares no buckets is counted per state. Columns
    follow the latest version; a bucket or state only an older version has comes after them.
    With ``scope`` (onboarding.visibility) and ``by="municipality"``, municipalities the reader
    does not read are counted together in one row (unless the portfolio is public).
    """
    if by is not None and by not in BUCKET_BY:
        raise InputError(
            Message(
                "--by %(by)s: expected one of %(expected)s",
                {"by": repr(by), "expected": ", ".join(BUCKET_BY)},
            )
        )
    day = as_of or _today(None)
    defs = _Defs(db)
    latest = defs.get(definition)
    kind, columns = _bucket_columns(defs, latest)
    keys = [c["key"] for c in columns]
    places = {int(m["code"]): m for m in registry.list_municipalities(db)}
    systems = {int(s["id"]): s for s in registry.list_systems(db)}
    vendors = {int(v["id"]): str(v["name"]) for v in registry.list_vendors(db)}
    rows: dict[str, dict[str, int]] = {}
    hide: set[int] = set()
    if by == "municipality" and scope is not None and not scope.names_public:
        readable = {
            int(r[0])
            for r in db.conn.execute(
                f"SELECT m.code FROM municipalities m WHERE {scope.municipalities('m.code')}"
            )
        }
        hide = set(places) - readable
    for t in _tracks_as_of(db, _end_stamp(day), definition):
        state = defs.get(definition, int(t["def_version"])).state(str(t["state"]))
        if kind == "bucket":
            column, label = state.bucket or "", state.bucket or ""
        else:
            column, label = state.name, state.label
        if column not in keys:  # only an older version has it
            keys.append(column)
            columns.append({"key": column, "label": label or "(ingen)"})
        code = t["municipality_code"]
        row_key = (
            OTHER_MUNICIPALITIES
            if code is not None and int(code) in hide
            else _row_key(by, t, places, systems, vendors)
        )
        counts = rows.setdefault(row_key, {})
        counts[column] = counts.get(column, 0) + 1
    out_rows: list[dict[str, Any]] = [
        {
            "label": label,
            "counts": {k: counts.get(k, 0) for k in keys},
            "total": sum(counts.values()),
        }
        for label, counts in sorted(
            rows.items(),
            key=lambda kv: (
                kv[0] in _NONE_LABEL.values() or kv[0] == OTHER_MUNICIPALITIES,
                kv[0].casefold(),
            ),
        )
    ]
    total = {k: sum(r["counts"][k] for r in out_rows) for k in keys}
    return {
        "as_of": day.isoformat(),
        "definition": {"name": latest.name, "version": latest.version, "title": latest.title},
        "by": by,
        "by_label": BY_LABELS[by] if by else None,
        "columns_are": kind,
        "columns": columns,
        "rows": out_rows if by else [],
        "total": {"counts": total, "total": sum(total.values())},
    }


def buckets_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    """The buckets report in 80 columns: one row per group and a total row."""
    lang = _lang(lang)
    d = report["definition"]
    by = _say(lang, " per %(by)s", by=report["by_label"].lower()) if report["by"] else ""
    title = _say(
        lang,
        "%(title)s (%(name)s), status per %(day)s%(by)s (counted in tracks)",
        title=d["title"],
        name=d["name"],
        day=_danish(report["as_of"], lang),
        by=by,
    )
    lines = [*_wrap(title), ""]
    keys = [c["key"] for c in report["columns"]]
    total_label = _say(lang, "Total")
    headers = [report["by_label"] or "", *(c["label"] for c in report["columns"]), total_label]
    body: list[Sequence[Any] | None] = [
        [r["label"], *(r["counts"][k] for k in keys), r["total"]] for r in report["rows"]
    ]
    if body:
        body.append(None)
    total = report["total"]
    body.append([total_label, *(total["counts"][k] for k in keys), total["total"]])
    lines += _table(headers, body, "l" + "r" * (len(keys) + 1))
    return "\n".join(lines).rstrip() + "\n"


def buckets_csv(report: Mapping[str, Any]) -> str:
    """One line per group and one total line (``row`` says which); formula cells neutralised."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    keys = [c["key"] for c in report["columns"]]
    w.writerow(
        safe_row(
            [
                "as_of",
                "definition",
                "by",
                "row",
                "group",
                *(c["label"] for c in report["columns"]),
                "total",
            ]
        )
    )
    head = [report["as_of"], report["definition"]["name"], report["by"] or ""]
    for r in report["rows"]:
        w.writerow(
            safe_row([*head, "group", r["label"], *(r["counts"][k] for k in keys), r["total"]])
        )
    total = report["total"]
    w.writerow(safe_row([*head, "total", "", *(total["counts"][k] for k in keys), total["total"]]))
    return out.getvalue()


def buckets_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML file (no scripts, no external references) of the table."""
    from jinja2 import Environment, FileSystemLoader

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("buckets.html.j2").render(
        report=report,
        keys=[c["key"] for c in report["columns"]],
        as_of_label=_danish(report["as_of"]),
        generated=clock.display(clock.stamp(clock.now())),
        total_label=TOTAL_LABEL,
    )
