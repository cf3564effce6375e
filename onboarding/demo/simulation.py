"""The simulated quarter: a pinned clock moved one working day at a time, and tracks moved on
the way the shipped definitions allow (where a track goes next is read from the definition).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from onboarding import calendar, clock, definitions, engine, registry, reports
from onboarding.db import Database
from onboarding.demo.result import DemoResult
from onboarding.demo.scenario import (
    ACTOR,
    COUNTERS,
    EOJ_PILOT,
    EOJ_STARTED,
    GDPR_CLOSES,
    GDPR_STATUS,
    GDPR_STATUS_DAY,
    GDPR_TASK,
    MARCH,
    QUARTER_END,
    QUARTER_START,
    SEND_WEEKDAY,
    STEP_CHANCE,
    SYSTEMOVERBLIK,
)
from onboarding.demo.steps import by_system, forward, happy_path
from onboarding.demo.timeline import local, working_days
from onboarding.errors import OnboardingError
from workflows.model import Definition, TransitionDef


@dataclass
class Sim:
    db: Database
    rng: random.Random
    contacts: dict[tuple[str, int | None], str]
    pilots: dict[int, int]  # system id -> pilot municipality code
    vendors: dict[int, str]  # system id -> vendor name
    steps: int = 0

    def actor(self, role: str, track: dict[str, Any]) -> str:
        if role == "vendor" and track.get("system_id") in self.vendors:
            return f"Kundeansvarlig, {self.vendors[track['system_id']]}"
        found = self.contacts.get((role, track.get("municipality_code")))
        return found or self.contacts.get((role, None)) or role

    def fire(
        self,
        track_id: int,
        moment: datetime,
        choose: Callable[[Definition, str], Sequence[TransitionDef]],
    ) -> bool:
        """Fire the first of ``choose``'s transitions whose guards let it; True when one did."""
        track = engine.load_track(self.db.conn, track_id)
        if track["final"]:
            return False
        defn = definitions.get(self.db, track["definition"], track["def_version"])
        for t in choose(defn, track["state"]):
            state = defn.state(track["state"])
            roles = [r for r in t.roles if r != "importer"]
            role = state.role if state.role in roles else roles[0]
            sets = self._values(defn, t, track, moment)
            act = engine.Act(actor=self.actor(role, track), role=role, at=moment)
            try:
                engine.advance(self.db, track_id, t.trigger, act, sets)
            except OnboardingError:
                continue  # a guard: the system is not ready, the date has not passed
            self.steps += 1
            return True
        return False

    def _values(
        self, defn: Definition, t: TransitionDef, track: dict[str, Any], moment: datetime
    ) -> dict[str, str]:
        sets = {}
        for name in t.requires:
            if track["fields"].get(name) not in (None, ""):
                continue
            ftype = defn.fields[name].type
            if ftype == "date":
                day = calendar.add_working_days(clock.local_date(moment), self.rng.randint(25, 55))
                sets[name] = day.isoformat()
            elif ftype == "municipality":
                sets[name] = str(self.pilots.get(track["system_id"], ""))
            elif ftype == "text":
                sets[name] = "demo"
        return sets


def _open_tracks(db: Database, definition: str) -> list[dict[str, Any]]:
    return [
        {"id": r[0], "municipality_code": r[1], "system_id": r[2], "state": r[3], "fields": r[4]}
        for r in db.execute(
            "SELECT id, municipality_code, system_id, state, fields FROM tracks"
            " WHERE definition = ? AND final = 0 ORDER BY id",
            [definition],
        ).fetchall()
    ]


def _start(
    db: Database,
    definition: str,
    subject: engine.Subject,
    moment: datetime,
    sets: dict[str, str] | None = None,
) -> int:
    act = engine.Act(actor="KOMBIT-koordinator", role="coordinator", at=moment)
    return int(engine.start(db, definition, subject, act, sets)["id"])


def simulate(
    db: Database,
    sim: Sim,
    mail: Any,
    send_due: Callable[..., Any] | None,
    now: Callable[[datetime], None],
    result: DemoResult,
    system_ids: dict[tuple[str, str], int],
) -> None:
    rng = sim.rng
    connection = definitions.get(db, reports.CONNECTION)
    wave_defn = definitions.get(db, "rollout-wave")
    codes = [int(m["code"]) for m in registry.list_municipalities(db)]
    gdpr = rng.sample(codes, len(codes))
    done, started = GDPR_STATUS[0], GDPR_STATUS[1]
    gdpr_days = working_days(date(2021, 4, 7), GDPR_STATUS_DAY)
    gdpr_plan = {
        code: (rng.choice(gdpr_days), 2 if i < done else 1)
        for i, code in enumerate(gdpr[: done + started])
    }
    overblik = rng.sample(codes, len(codes))
    overblik_plan = {
        code: rng.choice(working_days(date(2021, 4, 28), date(2021, 5, 21)))
        for code in overblik[:81]
    }
    waves = {str(w["code"]): w for w in registry.list_waves(db)}
    wave_of = {}
    sizes = (("B1", 8), ("B2", 18), ("B3", 18), ("B4", 18), ("B5", 18), ("B6", 18))
    order = rng.sample(codes, len(codes))
    for wave, n in sizes:
        for code in order[:n]:
            wave_of[code] = wave
        order = order[n:]
    klik_tracks: dict[tuple[str, int], int] = {}
    wave_tracks: dict[int, int] = {}
    mover = next(c for c in sorted(wave_of) if wave_of[c] == "B2")
    cura = system_ids[EOJ_PILOT[0]]
    nexus = system_ids[EOJ_STARTED[0]]
    wave_path = happy_path(wave_defn)
    day = QUARTER_START - timedelta(days=1)
    while day < QUARTER_END:
        day += timedelta(days=1)
        # Waves: rollout starts and goes live on the wave's own dates, holidays included (B1
        # went live on Whit Monday, 24 May 2021).
        for track_id in wave_tracks.values():
            track = engine.load_track(db.conn, track_id)
            w = waves[str(track["fields"].get("wave")).upper()]
            step = wave_path.index(track["state"]) if track["state"] in wave_path else -1
            dates = [w["rollout_start"], w["go_live"]]
            if 0 <= step < len(dates) and dates[step] == day.isoformat():
                now(local(day, 10))
                sim.fire(track_id, local(day, 10), lambda d, s: forward(d, s))
        if not calendar.is_working_day(day):
            continue
        morning = local(day, 8)
        now(morning)
        if send_due is not None and (day.weekday() == SEND_WEEKDAY or day == QUARTER_END):
            summary = send_due(db, morning, mail, now=morning)  # the reminders' single call site
            result.emails += int(summary.messages)
        hour = local(day, 9, rng.randint(0, 50))
        now(hour)
        if day == date(2021, 4, 6):
            for code in codes:
                subject = engine.Subject(municipality=str(code), klik_task=GDPR_TASK)
                klik_tracks[(GDPR_TASK, code)] = _start(db, "klik-task", subject, hour)
        if day == date(2021, 4, 27):
            for code in codes:
                subject = engine.Subject(municipality=str(code), klik_task=SYSTEMOVERBLIK)
                klik_tracks[(SYSTEMOVERBLIK, code)] = _start(db, "klik-task", subject, hour)
        if day == date(2021, 4, 12):
            for code in codes:
                subject = engine.Subject(municipality=str(code), wave=wave_of[code])
                wave_tracks[code] = _start(db, "rollout-wave", subject, hour)
        if day == date(2021, 4, 20):
            _change_wave(sim, wave_defn, wave_tracks[mover], "B3", hour)
            sim.fire(_readiness_track(db, cura), hour, lambda d, s: forward(d, s))
        if day == date(2021, 5, 3):
            sim.fire(_readiness_track(db, nexus), hour, lambda d, s: forward(d, s))
        if day == date(2021, 6, 15):
            sim.fire(_readiness_track(db, cura), hour, lambda d, s: forward(d, s))
        # KLIK: the GDPR task as the deck saw it on 27 April, then the default for the rest.
        for code, (when, rank) in gdpr_plan.items():
            if when == day:
                for _ in range(rank):
                    sim.fire(
                        klik_tracks[(GDPR_TASK, code)],
                        hour,
                        lambda d, s, top=rank: forward(d, s, top),  # type: ignore[misc]
                    )
        if day == GDPR_CLOSES:
            now(local(day, 16))  # the clock reaches the step first: no act is in the future
            for code in codes:
                sim.fire(klik_tracks[(GDPR_TASK, code)], local(day, 16), by_system)
            now(hour)
        for code, when in overblik_plan.items():
            if when == day:
                while sim.fire(
                    klik_tracks[(SYSTEMOVERBLIK, code)], hour, lambda d, s: forward(d, s)
                ):
                    pass
        if day == date(2021, 5, 25):
            now(local(day, 16))
            for code in codes:
                sim.fire(klik_tracks[(SYSTEMOVERBLIK, code)], local(day, 16), by_system)
            now(hour)
        # Connections: each open one may take its next step today.
        for t in _open_tracks(db, reports.CONNECTION):
            rank = max(0, connection.bucket_rank(str(t["state"])))
            if rng.random() < STEP_CHANCE[min(rank, 1)]:
                moment = local(day, rng.randint(9, 15), rng.randint(0, 59))
                now(moment)
                sim.fire(t["id"], moment, lambda d, s: forward(d, s))
    for counter, value, day in COUNTERS:
        if day > MARCH:
            now(local(day, 16))
            reports.record_counter(db, counter, value, day, ACTOR)


def _readiness_track(db: Database, system_id: int) -> int:
    row = db.execute(
        "SELECT id FROM tracks WHERE definition = 'system-readiness' AND system_id = ?"
        " ORDER BY final, id DESC LIMIT 1",
        [system_id],
    ).fetchone()
    return int(row[0])


def _change_wave(sim: Sim, defn: Definition, track_id: int, wave: str, moment: datetime) -> None:
    """A municipality asks to move to another wave: the step that stays put and sets a wave."""
    track = engine.load_track(sim.db.conn, track_id)
    for t in defn.transitions_from(track["state"]):
        if t.dest == track["state"] and any(defn.fields[f].type == "wave" for f in t.requires):
            role = defn.state(track["state"]).role or t.roles[0]
            act = engine.Act(
                actor=sim.actor(role, track), role=role, at=moment, note="ønsker senere bølge"
            )
            engine.advance(sim.db, track_id, t.trigger, act, {f: wave for f in t.requires})
            sim.steps += 1
            return
