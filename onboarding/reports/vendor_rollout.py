"""The rollout report per vendor solution (the deck's table) as of a date, and its text.

One row per vendor solution some municipality uses (from contracts): municipalities in
operation / agreed / not agreed / total, a total per category computed from its rows, and the
distinct municipalities. The ``connection`` definition's three buckets are the columns, in its
declared order. Today's report reads the counts kept per system and bucket
(``onboarding.rollup``); any other is counted from the tracks and history in SQL
(``_best_buckets``), with ``rank_case`` giving a state's bucket rank both ways.
Its CSV and HTML forms are in ``exports``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from onboarding import i18n
from onboarding.db import Database
from onboarding.errors import InputError
from onboarding.i18n import Message
from onboarding.reports.asof import (
    CONNECTION,
    _category,
    _category_order,
    _Defs,
    _end_stamp,
    _rows,
    _today,
)
from onboarding.reports.text import _danish, _lang, _say, _table, _wrap
from workflows.model import Definition

#: The rollout report's count keys, for the connection definition's buckets in declared order.
COUNT_KEYS = ("not_agreed", "agreed", "in_operation")


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
