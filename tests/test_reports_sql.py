"""The rollout report counted in SQL equals the per-track replay it replaced, on random histories.

``reports.rollout`` reads a track's state from its row when nothing happened to it after the
date and replays history only for the others (bench/RESULTS.md: 32 s at 10^6 tracks before).
The oracle here is the former implementation: every track replayed from history, each use
counted in Python.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from onboarding import clock, engine, reports
from onboarding.errors import OnboardingError

STEPS = (
    ("agree_date", {"connection_date": "2021-09-01"}),
    ("approve_agreements", {}),
    ("update_dpa", {}),
    ("request_display", {}),
    ("open_display", {}),
    ("complete_setup", {}),
    ("load_complete", {}),
)


def _oracle(db: Database, as_of: date, category: str | None = None) -> dict[str, Any]:
    """The former rollout: replay every track, count every use in Python."""
    stamp = clock.stamp(clock.end_of_local_day(as_of))
    defs = reports._Defs(db)
    uses = reports._rows(
        db,
        """
        SELECT c.municipality_code, c.system_id, s.category FROM contracts c
        JOIN systems s ON s.id = c.system_id
        LEFT JOIN contract_origins o
            ON o.municipality_code = c.municipality_code AND o.system_id = c.system_id
        WHERE o.since IS NULL OR o.since <= ?
        """,
        [stamp],
    )
    best: dict[tuple[int, int], int] = {}
    for t in reports._states_as_of(db, reports.CONNECTION, stamp):
        rank = defs.get(reports.CONNECTION, t["def_version"]).bucket_rank(t["state"])
        key = (t["municipality_code"], t["system_id"])
        best[key] = max(best.get(key, 0), rank)
    counts: dict[int, list[int]] = {}
    distinct: dict[str, set[int]] = {}
    for u in uses:
        if category and u["category"] != category:
            continue
        row = counts.setdefault(u["system_id"], [0, 0, 0])
        row[max(best.get((u["municipality_code"], u["system_id"]), 0), 0)] += 1
        distinct.setdefault(u["category"], set()).add(u["municipality_code"])
    untracked = db.execute(
        """
        SELECT count(DISTINCT t.municipality_code || ':' || t.system_id) FROM tracks t
        JOIN systems s ON s.id = t.system_id
        WHERE t.definition = ? AND (? IS NULL OR s.category = ?)
          AND NOT EXISTS (SELECT 1 FROM contracts c LEFT JOIN contract_origins o
                              ON o.municipality_code = c.municipality_code
                              AND o.system_id = c.system_id
                          WHERE c.municipality_code = t.municipality_code
                          AND c.system_id = t.system_id AND (o.since IS NULL OR o.since <= ?))
          AND EXISTS (SELECT 1 FROM history h WHERE h.track_id = t.id AND h.at <= ?)
        """,
        [reports.CONNECTION, category, category, stamp, stamp],
    ).fetchone()[0]
    return {
        "counts": counts,
        "distinct": {k: len(v) for k, v in distinct.items()},
        "untracked": untracked,
    }


def _summary(db: Database, report: dict[str, Any]) -> dict[str, Any]:
    ids = {
        (r[0], r[1]): r[2]
        for r in db.execute(
            "SELECT v.name, s.name, s.id FROM systems s JOIN vendors v ON v.id = s.vendor_id"
        ).fetchall()
    }
    counts = {
        ids[(r["vendor"], r["system"])]: [r["not_agreed"], r["agreed"], r["in_operation"]]
        for c in report["categories"]
        for r in c["rows"]
    }
    untracked = 0
    for note in report["notes"]:
        untracked = int(note.split()[0])
    return {
        "counts": counts,
        "distinct": {c["category"]: c["distinct_municipalities"] for c in report["categories"]},
        "untracked": untracked,
    }


def _random_history(db: Database, seed: int) -> list[date]:
    """Tracks started, advanced, cancelled and restarted at increasing random times; some
    contracts, some of them recorded later (contract_origins). Returns dates to ask about."""
    rnd = random.Random(seed)
    codes = [r[0] for r in db.execute("SELECT code FROM municipalities ORDER BY code LIMIT 6")]
    systems = [
        r[0] for r in db.execute("SELECT s.name FROM systems s ORDER BY s.id LIMIT 4")
    ]
    system_ids = [r[0] for r in db.execute("SELECT id FROM systems ORDER BY id LIMIT 4")]
    # The systems are ready (their readiness track passed) long before.
    ready_at = datetime(2020, 1, 6, 9, 0, tzinfo=clock.LOCAL)
    for name in systems:
        act = engine.Act("t", "coordinator", at=ready_at)
        t = engine.start(db, "system-readiness", engine.Subject(system=name), act)
        engine.advance(db, t["id"], "start_pilot", act, {"pilot_municipality": str(codes[0])})
        engine.advance(db, t["id"], "complete_pilot", act)
        engine.advance(db, t["id"], "pass_compliance", act)
    for code in codes:
        for sid in system_ids:
            if rnd.random() < 0.7:
                db.execute(
                    "INSERT INTO contracts (municipality_code, system_id, contract)"
                    " VALUES (?, ?, 'ski-02.19-2019')",
                    [code, sid],
                )
                if rnd.random() < 0.3:
                    since = clock.stamp(datetime(2020, 6, rnd.randint(1, 28), tzinfo=clock.LOCAL))
                    db.execute(
                        "INSERT INTO contract_origins VALUES (?, ?, ?, 'import')",
                        [code, sid, since],
                    )
    moment = datetime(2020, 2, 3, 9, 0, tzinfo=clock.LOCAL)
    open_tracks: dict[tuple[int, str], tuple[int, int]] = {}
    for _ in range(160):
        moment += timedelta(hours=rnd.randint(1, 60))
        act = engine.Act("t", "coordinator", at=moment)
        key = (rnd.choice(codes), rnd.choice(systems))
        if key not in open_tracks:
            subject = engine.Subject(municipality=str(key[0]), system=key[1],
                                     bob=rnd.random() < 0.5)
            t = engine.start(db, "connection", subject, act)
            open_tracks[key] = (int(t["id"]), 0)
            continue
        track_id, step = open_tracks[key]
        if rnd.random() < 0.1:
            engine.advance(db, track_id, "cancel", act, {"reason": "restart"})
            del open_tracks[key]
            continue
        trigger, sets = STEPS[step]
        if trigger == "update_dpa" and not engine.load_track(db.conn, track_id)["bob"]:
            step += 1
            trigger, sets = STEPS[step]
        try:
            engine.advance(db, track_id, trigger, act, sets)
        except OnboardingError:
            continue
        if step + 1 >= len(STEPS):
            del open_tracks[key]
        else:
            open_tracks[key] = (track_id, step + 1)
    last = moment.date()
    first = date(2020, 2, 1)
    return [first + (last - first) * k // 7 for k in range(8)] + [last + timedelta(days=30)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollout_sql_equals_the_per_track_replay(db: Database, seed: int, tmp_path: Path) -> None:
    for day in _random_history(db, seed):
        for category in (None, "Jobcenter"):
            got = _summary(db, reports.rollout(db, category=category, as_of=day))
            want = _oracle(db, day, category)
            assert got == want, (day, category)
