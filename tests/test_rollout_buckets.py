"""The rollout counts kept per system and bucket (schema 013_rollout_buckets, onboarding/rollup.py)
always equal a recount from scratch, and today's rollout report read from them equals the
report counted from the tracks, after any sequence of starts, advances, cancels, migrations to a
version with other buckets, contract imports and deletions."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from onboarding import clock, definitions, engine, registry, reports, rollup
from onboarding.db import Database, open_existing
from onboarding.errors import OnboardingError

NOW = "2023-01-02T12:00"
STEPS = (
    "agree_date",
    "approve_agreements",
    "update_dpa",
    "request_display",
    "open_display",
    "complete_setup",
    "load_complete",
)
CODES = ("101", "147", "751")


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """One initialised database with three systems ready and a connection v2 stored whose
    second state counts as agreed (v1: not agreed), copied for every example."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.db"
        result = CliRunner().invoke(cli.cli, ["init", "--db", str(path)])
        assert result.exit_code == 0, result.output
        db = open_existing(path)
        act = engine.Act("t", "coordinator", at=datetime(2020, 11, 2, 9, tzinfo=clock.LOCAL))
        for name in _systems(db):
            t = engine.start(db, "system-readiness", engine.Subject(system=name), act)
            engine.advance(db, t["id"], "start_pilot", act, {"pilot_municipality": CODES[0]})
            engine.advance(db, t["id"], "complete_pilot", act)
            engine.advance(db, t["id"], "pass_compliance", act)
        source = definitions.get(db, "connection", 1).source
        first, rest = source.split("bucket: Endnu ikke aftalt", 1)
        v2 = (
            first
            + "bucket: Endnu ikke aftalt"
            + rest.replace("bucket: Endnu ikke aftalt", "bucket: Aftalt", 1)
        )
        v2 = v2.replace("version: 1", "version: 2", 1)
        with db.conn:
            definitions.register(db, definitions.parse(v2, "connection v2 (test)"))
        db.close()
        yield path


def _systems(db: Database) -> list[str]:
    return [
        str(r[0])
        for r in db.execute(
            "SELECT v.name || ' ' || s.name FROM systems s JOIN vendors v ON v.id = s.vendor_id"
            " ORDER BY s.id LIMIT 3"
        )
    ]


class _Run:
    """Operations on one database, each taken modulo what exists so any draw is meaningful."""

    def __init__(self, db: Database, folder: Path) -> None:
        self.db = db
        self.folder = folder
        self.systems = _systems(db)
        self.ids = [int(r[0]) for r in db.execute("SELECT id FROM systems ORDER BY id LIMIT 3")]
        self.moment = datetime(2021, 1, 4, 9, tzinfo=clock.LOCAL)

    def act(self) -> engine.Act:
        self.moment += timedelta(hours=5)
        return engine.Act("t", "coordinator", at=self.moment)

    def open_tracks(self) -> list[int]:
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT id FROM tracks WHERE definition = 'connection' AND final = 0 ORDER BY id"
            )
        ]

    def start(self, a: int, b: int) -> None:
        subject = engine.Subject(
            municipality=CODES[a % 3], system=self.systems[b % 3], bob=bool(a & 4)
        )
        engine.start(self.db, "connection", subject, self.act())

    def advance(self, a: int, b: int) -> None:
        open_ = self.open_tracks()
        if not open_:
            return
        tid = open_[a % len(open_)]
        track = engine.load_track(self.db.conn, tid)
        defn = definitions.get(self.db, "connection", track["def_version"])
        possible = [t for t in STEPS if t in defn.triggers_from(track["state"])]
        if possible:
            day = clock.local_date(self.moment) + timedelta(days=30)
            trigger = possible[b % len(possible)]
            sets = {"connection_date": day.isoformat()} if trigger == "agree_date" else {}
            engine.advance(self.db, tid, trigger, self.act(), sets)

    def cancel(self, a: int, b: int) -> None:
        open_ = self.open_tracks()
        if open_:
            engine.advance(self.db, open_[a % len(open_)], "cancel", self.act(), {"reason": "x"})

    def migrate(self, a: int, b: int) -> None:
        engine.migrate(self.db, "connection", 2 if a % 2 == 0 else 1, {}, self.act())

    def import_contracts(self, a: int, b: int) -> None:
        path = self.folder / "contracts.csv"
        lines = ["municipality,system,contract"] + [
            f"{CODES[(a + k) % 3]},{self.systems[(b + k) % 3]},unknown" for k in range(1 + b % 3)
        ]
        path.write_text("\n".join(dict.fromkeys(lines)) + "\n", encoding="utf-8")
        registry.import_contracts(self.db, path)

    def delete_contract(self, a: int, b: int) -> None:
        with self.db.conn:
            self.db.execute(
                "DELETE FROM contracts WHERE municipality_code = ? AND system_id = ?",
                [int(CODES[a % 3]), self.ids[b % 3]],
            )


OPS = (
    "start",
    "start",
    "advance",
    "advance",
    "advance",
    "cancel",
    "migrate",
    "import_contracts",
    "delete_contract",
)


def kept_and_recounted(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    return conn.execute(rollup.COUNTS).fetchall(), conn.execute(rollup.RECOUNT).fetchall()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 7), st.integers(0, 7)), max_size=30)
)
def test_rollout_buckets_equal_a_recount_after_any_writes(
    template: Path, monkeypatch: pytest.MonkeyPatch, ops: list[tuple[str, int, int]]
) -> None:
    """After any sequence of engine writes and contract changes, the counts per system and
    bucket equal a recount from scratch, and today's report read from them equals the report
    counted from the tracks (JSON and text)."""
    monkeypatch.setenv("ONBOARDING_NOW", NOW)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.db"
        for suffix in ("", ".audit-key"):
            shutil.copy(str(template) + suffix, str(path) + suffix)
        db = open_existing(path)
        try:
            run = _Run(db, Path(folder))
            for kind, a, b in ops:
                # A guard or a rule may say no: nothing is written, and the sequence goes on.
                with contextlib.suppress(OnboardingError):
                    getattr(run, kind)(a, b)
            kept, recounted = kept_and_recounted(db.conn)
            assert kept == recounted
            assert reports._counts_kept(db, reports._end_stamp(reports._today(None)))
            fast, slow = reports.rollout(db), reports.rollout(db, kept=False)
            assert fast == slow
            assert reports.rollout_text(fast) == reports.rollout_text(slow)
        finally:
            db.close()


def test_rollout_buckets_give_way_to_history_after_the_date(db: Database) -> None:
    """A report as of a day before later history (or before a contract the status import
    recorded later) is not read from the kept counts, which are today's."""
    stamp = reports._end_stamp(datetime(2021, 1, 4).date())
    assert reports._counts_kept(db, stamp)
    with db.conn:
        db.execute(
            "INSERT INTO contract_origins VALUES (101, 1, '2021-06-01T00:00:00.000000Z', 'x')"
        )
    assert not reports._counts_kept(db, stamp)


def test_rollout_buckets_filled_by_the_migration_equal_a_recount(db: Database) -> None:
    """``rollup.fill`` (the migration's fill) gives the counts the triggers keep."""
    run = _Run(db, Path(tempfile.gettempdir()))
    for k in range(6):
        with contextlib.suppress(OnboardingError):
            run.start(k, k + 1)
            run.advance(k, 0)
    before = kept_and_recounted(db.conn)
    with db.conn:
        rollup.fill(db.conn)
    assert kept_and_recounted(db.conn) == before
    assert before[0] == before[1]
