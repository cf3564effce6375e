"""An ``--as-of`` report never changes after the fact.

``report klik|goals|overdue|rollout --as-of D`` is asked on a real database file after a random
history of engine writes (backdated ``Act`` times, the clock pinned), then again after more
random activity dated after D (advances, finishes, cancels, field and wave changes, contracts an
import records later) and a final sweep that finishes what it can: the answers are identical.
The due dates and overdue flags as of D come from the state, fields and entry time replayed
from history, never from the track row as it is now (a finished track's row has no due date).
"""

from __future__ import annotations

import contextlib
import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from onboarding import clock, definitions, engine, reports, tracks
from onboarding.errors import OnboardingError

#: Later than every write the histories below make (a write may not be dated in the future).
NOW = "2023-01-02T12:00"
KLIK_TASKS = ("GDPR", "Systemoverblik")
WAVES = ("B1", "B2", "B3", "B4")
CONNECTION_STEPS = (
    "agree_date",
    "approve_agreements",
    "update_dpa",
    "request_display",
    "open_display",
    "complete_setup",
    "load_complete",
)


class _History:
    """Random engine writes at increasing backdated times over a few municipalities."""

    def __init__(self, db: Database, seed: int) -> None:
        self.db = db
        self.rnd = random.Random(seed)
        self.codes = [
            str(r[0]) for r in db.execute("SELECT code FROM municipalities ORDER BY code LIMIT 8")
        ]
        self.systems = [
            (int(r[0]), str(r[1]))
            for r in db.execute(
                "SELECT s.id, v.name || ' ' || s.name FROM systems s"
                " JOIN vendors v ON v.id = s.vendor_id ORDER BY s.id LIMIT 5"
            )
        ]
        self.moment = datetime(2021, 1, 4, 9, 0, tzinfo=clock.LOCAL)
        self.open: dict[tuple[str, ...], int] = {}  # subject -> open track id
        self.contracts: set[tuple[str, int]] = set()

    def act(self, role: str = "coordinator") -> engine.Act:
        return engine.Act(actor="t", role=role, at=self.moment)

    def setup(self) -> None:
        """Four systems ready before 2021 (so connections can go live); the fifth's readiness
        is one of the random tracks; contracts for most pairs."""
        ready_at = datetime(2020, 11, 2, 9, 0, tzinfo=clock.LOCAL)
        act = engine.Act("t", "coordinator", at=ready_at)
        for _, name in self.systems[:4]:
            t = engine.start(self.db, "system-readiness", engine.Subject(system=name), act)
            pilot = {"pilot_municipality": self.codes[0]}
            engine.advance(self.db, t["id"], "start_pilot", act, pilot)
            engine.advance(self.db, t["id"], "complete_pilot", act)
            engine.advance(self.db, t["id"], "pass_compliance", act)
        for code in self.codes:
            for sid, _ in self.systems:
                if self.rnd.random() < 0.6:
                    self.add_contract(code, sid, None)

    def add_contract(self, code: str, sid: int, since: datetime | None) -> None:
        """A contract; with ``since``, one the status import recorded on that day."""
        if (code, sid) in self.contracts:
            return
        self.contracts.add((code, sid))
        self.db.execute(
            "INSERT INTO contracts (municipality_code, system_id, contract) VALUES (?, ?, ?)",
            [int(code), sid, "unknown" if since else "ski-02.19-2019"],
        )
        if since is not None:
            self.db.execute(
                "INSERT INTO contract_origins VALUES (?, ?, ?, 'import')",
                [int(code), sid, clock.stamp(since)],
            )

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.moment += timedelta(hours=self.rnd.randint(1, 60))
            step = self.rnd.choice(
                (
                    self.klik,
                    self.klik,
                    self.wave,
                    self.connection,
                    self.connection,
                    self.readiness,
                    self.contract,
                )
            )
            # A guard or a role may say no: nothing is written, and the history goes on.
            with contextlib.suppress(OnboardingError):
                step()

    def _track(self, key: tuple[str, ...], start: Any) -> tuple[int, bool]:
        """(open track for the subject, whether it was started just now)."""
        if key in self.open:
            return self.open[key], False
        tid = int(start()["id"])
        self.open[key] = tid
        return tid, True

    def _fire(
        self,
        key: tuple[str, ...],
        tid: int,
        trigger: str,
        sets: Any = None,
        role: str = "coordinator",
    ) -> None:
        t = engine.advance(self.db, tid, trigger, self.act(role), sets or {})
        if t["final"]:
            del self.open[key]

    def klik(self) -> None:
        code, task = self.rnd.choice(self.codes), self.rnd.choice(KLIK_TASKS)
        key = ("klik", code, task)
        subject = engine.Subject(municipality=code, klik_task=task)
        tid, new = self._track(key, lambda: engine.start(self.db, "klik-task", subject, self.act()))
        if new:
            return
        state = engine.load_track(self.db.conn, tid)["state"]
        r = self.rnd.random()
        if r < 0.15:
            engine.set_fields(self.db, tid, {"answer": f"svar {r:.3f}"}, self.act())
        elif r < 0.5 and state == "not_started":
            self._fire(key, tid, "start", role="municipality-pl")
        elif r < 0.8:
            self._fire(key, tid, "complete", {"answer": "ja"}, role="municipality-pl")
        else:
            self._fire(key, tid, "apply_default")

    def wave(self) -> None:
        code = self.rnd.choice(self.codes)
        key = ("wave", code)
        subject = engine.Subject(municipality=code, wave=self.rnd.choice(WAVES))
        tid, new = self._track(
            key, lambda: engine.start(self.db, "rollout-wave", subject, self.act())
        )
        if new:
            return
        state = engine.load_track(self.db.conn, tid)["state"]
        r = self.rnd.random()
        if r < 0.3:
            self._fire(key, tid, "change_wave", {"wave": self.rnd.choice(WAVES)})
        elif r < 0.45 and state == "preparation":
            engine.set_fields(self.db, tid, {"wave": self.rnd.choice(WAVES)}, self.act())
        elif state == "preparation":
            self._fire(key, tid, "start_rollout")
        else:
            self._fire(key, tid, "go_live")

    def connection(self) -> None:
        code = self.rnd.choice(self.codes)
        _, system = self.rnd.choice(self.systems)
        key = ("connection", code, system)
        subject = engine.Subject(municipality=code, system=system, bob=self.rnd.random() < 0.5)
        tid, new = self._track(
            key, lambda: engine.start(self.db, "connection", subject, self.act())
        )
        if new:
            return
        track = engine.load_track(self.db.conn, tid)
        day = clock.local_date(self.moment) + timedelta(days=self.rnd.randint(10, 90))
        r = self.rnd.random()
        if r < 0.08:
            self._fire(key, tid, "cancel", {"reason": "restart"})
        elif r < 0.25 and track["fields"].get("connection_date"):
            engine.set_fields(self.db, tid, {"connection_date": day.isoformat()}, self.act())
        else:
            defn = definitions.get(self.db, "connection", track["def_version"])
            possible = defn.triggers_from(track["state"])
            trigger = next(t for t in CONNECTION_STEPS if t in possible)
            sets = {"connection_date": day.isoformat()} if trigger == "agree_date" else {}
            self._fire(key, tid, trigger, sets)

    def readiness(self) -> None:
        _, system = self.systems[4]
        key = ("readiness", system)
        subject = engine.Subject(system=system)
        tid, new = self._track(
            key, lambda: engine.start(self.db, "system-readiness", subject, self.act())
        )
        if new:
            return
        state = engine.load_track(self.db.conn, tid)["state"]
        if state == "development":
            self._fire(key, tid, "start_pilot", {"pilot_municipality": self.codes[1]})
        elif state == "pilot":
            self._fire(key, tid, "complete_pilot")
        else:
            self._fire(key, tid, "pass_compliance")

    def contract(self) -> None:
        sid = self.rnd.choice(self.systems)[0]
        self.add_contract(self.rnd.choice(self.codes), sid, self.moment)

    def finish(self) -> None:
        """After everything: finish every open track that can be finished, a day apart."""
        for key, tid in sorted(self.open.items(), key=lambda kv: kv[1]):
            self.moment += timedelta(days=1)
            triggers = {
                "klik": ["complete"],
                "wave": ["start_rollout", "go_live"],
                "connection": ["cancel", *CONNECTION_STEPS[2:]],
                "readiness": ["start_pilot", "complete_pilot", "pass_compliance"],
            }[key[0]]
            for trigger in triggers:
                sets = {"reason": "done"} if trigger == "cancel" else {}
                if trigger == "start_pilot":
                    sets = {"pilot_municipality": self.codes[1]}
                try:
                    self._fire(key, tid, trigger, sets)
                except OnboardingError:
                    continue
                if key not in self.open:
                    break


def _report(runner: CliRunner, path: Path, *args: str) -> Any:
    result = runner.invoke(cli.cli, [*args, "--db", str(path)])
    assert result.exit_code == 0, (args, result.output)
    return result.stdout if "html" in args else json.loads(result.stdout)


def _as_of(runner: CliRunner, path: Path, day: date, html: bool = False) -> dict[str, Any]:
    d = day.isoformat()
    out = {
        "klik": _report(runner, path, "report", "klik", "--as-of", d, "--json"),
        **{
            f"klik {task}": _report(
                runner, path, "report", "klik", "--task", task, "--as-of", d, "--json"
            )
            for task in KLIK_TASKS
        },
        "goals": _report(runner, path, "report", "goals", "--year", "2021", "--as-of", d, "--json"),
        "overdue": _report(runner, path, "report", "overdue", "--as-of", d, "--json"),
        "rollout": _report(runner, path, "report", "rollout", "--as-of", d, "--format", "json"),
    }
    if html:  # tables, goals and the chart (progress and targets) as of D; slower, so not always
        out["rollout html"] = _report(
            runner, path, "report", "rollout", "--as-of", d, "--format", "html"
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_reports_as_of_never_change_after_the_fact(
    db: Database, db_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """klik, goals, overdue and rollout (table and HTML) as of D are the same before and
    after later activity."""
    monkeypatch.setenv("ONBOARDING_NOW", NOW)
    history = _History(db, seed)
    history.setup()
    history.steps(200)
    last = clock.local_date(history.moment) - timedelta(days=1)
    first = date(2021, 1, 4)
    rnd = random.Random(seed)
    days = sorted(
        {first + timedelta(days=rnd.randint(0, (last - first).days)) for _ in range(5)}
        | {d for d in (date(2021, 3, 31), date(2021, 4, 30), date(2021, 5, 21)) if d <= last}
    )
    before = {d: _as_of(runner, db_path, d, html=d == days[-1]) for d in days}
    history.moment = max(history.moment, clock.end_of_local_day(last).astimezone(clock.LOCAL))
    history.steps(150)
    history.finish()
    after = {d: _as_of(runner, db_path, d, html=d == days[-1]) for d in days}
    for d in days:
        for name in before[d]:
            assert after[d][name] == before[d][name], (seed, d.isoformat(), name)
    # The histories are not trivial: something was overdue as of some date.
    assert any(before[d]["overdue"]["tracks"] for d in days)
    assert any(t["overdue"] for d in days for t in before[d]["klik"]["tasks"])


@pytest.mark.parametrize("seed", [5, 6])
def test_reports_as_of_reads_the_replay_of_every_track(
    db: Database, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """The as-of state of a track, read from its row or replayed, is what tracks.replay of
    its history up to then gives: state, fields, entry time and due date."""
    monkeypatch.setenv("ONBOARDING_NOW", NOW)
    history = _History(db, seed)
    history.setup()
    history.steps(250)
    ids = [int(r[0]) for r in db.execute("SELECT id FROM tracks")]
    for day in (date(2021, 2, 15), date(2021, 4, 28), clock.local_date(history.moment)):
        stamp = clock.stamp(clock.end_of_local_day(day))
        got = {t["id"]: t for t in reports._tracks_as_of(db, stamp)}
        want = {}
        for tid in ids:
            rows = db.execute(
                "SELECT count(*) FROM history WHERE track_id = ? AND at <= ?", [tid, stamp]
            ).fetchone()[0]
            if rows:
                want[tid] = tracks.replay(db, tid, upto=stamp)
        assert set(got) == set(want), day
        for tid, t in got.items():
            w = want[tid]
            assert (
                t["state"],
                t["def_version"],
                t["final"],
                t["fields"],
                t["entered_at"],
                t["due"],
            ) == (
                w["state"],
                w["def_version"],
                w["final"],
                w["fields"],
                w["entered_at"],
                w["due"],
            ), (day, tid)
