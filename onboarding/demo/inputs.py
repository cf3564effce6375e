"""The registry and the input files the demo writes first (contacts, contracts, two monthly
status files), planned from the deck's figures.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from onboarding import registry
from onboarding.db import Database
from onboarding.demo.scenario import (
    CONTRACT_MIX,
    DECK_TABLE,
    EOJ_PILOT,
    EOJ_STARTED,
    FIRST_NAMES,
    JOBCENTER,
    LAST_NAMES,
    MUNICIPALITY_CONTACT_ROLES,
    READY_ON,
    SECOND_ESDH,
    SEED,
)
from onboarding.demo.steps import happy_path
from onboarding.demo.timeline import working_days
from workflows.model import Definition


def _slug(name: str) -> str:
    text = name.lower()
    for a, b in (("æ", "ae"), ("ø", "oe"), ("å", "aa")):
        text = text.replace(a, b)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


@dataclass
class _Plan:
    """Who uses what, and where each connection stands in December and March."""

    municipalities: list[tuple[int, str]]
    users: dict[tuple[str, str], list[int]]
    march: dict[tuple[tuple[str, str], int], str]
    december: dict[tuple[tuple[str, str], int], str]
    pilots: dict[tuple[str, str], int]


def make_plan(db: Database, connection: Definition, rng: random.Random) -> _Plan:
    municipalities = [(int(m["code"]), str(m["name"])) for m in registry.list_municipalities(db)]
    codes = [c for c, _ in municipalities]
    order = codes[:]
    rng.shuffle(order)
    users: dict[tuple[str, str], list[int]] = {}
    momentum = sum(DECK_TABLE[JOBCENTER[0]])
    users[JOBCENTER[0]] = sorted(order[:momentum])
    users[JOBCENTER[1]] = sorted(order[momentum:])
    # ESDH: everyone has one; 21 have a second, different one.
    esdh = [k for k in DECK_TABLE if k not in JOBCENTER]
    primary_slots = [k for k in esdh for _ in range(sum(DECK_TABLE[k]) - SECOND_ESDH[k])]
    order = codes[:]
    rng.shuffle(order)
    primary = dict(zip(order, primary_slots, strict=True))
    second: dict[int, tuple[str, str]] = {}
    candidates = order[:]
    rng.shuffle(candidates)
    for k in esdh:
        for _ in range(SECOND_ESDH[k]):
            code = next(c for c in candidates if c not in second and primary[c] != k)
            second[code] = k
    for k in esdh:
        users[k] = sorted([c for c in codes if primary[c] == k or second.get(c) == k])
    # March and December status per connection, consistent with the deck and with readiness.
    first = [s.name for s in connection.states if s.bucket == connection.buckets[0] and not s.final]
    middle = [s.name for s in connection.states if s.bucket == connection.buckets[1]]
    not_agreed, agreed, live = connection.buckets
    march: dict[tuple[tuple[str, str], int], str] = {}
    december: dict[tuple[tuple[str, str], int], str] = {}
    pilots: dict[tuple[str, str], int] = {}
    for k, (n_live, n_agreed, _n_not) in DECK_TABLE.items():
        ms = users[k][:]
        rng.shuffle(ms)
        pilots[k] = ms[0]
        ready_before_december = READY_ON[k] < date(2020, 12, 1)
        for i, code in enumerate(ms):
            if i < n_live:
                march[(k, code)] = live
                early = ready_before_december and READY_ON[k] < date(2020, 10, 1)
                december[(k, code)] = (
                    live
                    if early and rng.random() < 0.5
                    else agreed
                    if ready_before_december
                    else first[-1]
                )
                if i == 0:
                    december[(k, code)] = live if ready_before_december else agreed
            elif i < n_live + n_agreed:
                # The earliest Aftalt state may apply only with BoB display: name a later one.
                march[(k, code)] = rng.choice([agreed, agreed, *middle[1:]])
                roll = rng.random()
                if ready_before_december and roll < 0.4:
                    december[(k, code)] = agreed
                elif roll < 0.75:
                    december[(k, code)] = first[-1]
            else:
                roll = rng.random()
                if roll < 0.3:
                    march[(k, code)] = first[-1]
                    december[(k, code)] = not_agreed
                elif roll < 0.6:
                    march[(k, code)] = not_agreed
    return _Plan(municipalities, users, march, december, pilots)


def system_labels(db: Database) -> dict[tuple[str, str], str]:
    return {(s["vendor"], s["name"]): str(s["label"]) for s in registry.list_systems(db)}


def contacts_file(db: Database, path: Path) -> Path:
    """A contact (a named person) for the coordinator, every municipality role in every
    municipality and every vendor."""
    municipalities = registry.list_municipalities(db)
    vendors = registry.list_vendors(db)
    count = 1 + len(municipalities) * len(MUNICIPALITY_CONTACT_ROLES) + len(vendors)
    people = iter(_person_names(count))

    def person(domain: str) -> tuple[str, str]:
        first, last = next(people)
        return f"{first} {last}", f"{_slug(first)}.{_slug(last)}@{domain}"

    name, email = person("kombit.example")
    rows: list[list[Any]] = [["coordinator", name, email, "", ""]]
    for m in municipalities:
        domain = f"{_slug(str(m['name']))}.kommune.example"
        for role in MUNICIPALITY_CONTACT_ROLES:
            name, email = person(domain)
            rows.append([role, name, email, m["code"], ""])
    for v in vendors:
        name, email = person(f"{_slug(str(v['name']))}.example")
        rows.append(["vendor", name, email, "", v["name"]])
    return _write_csv(path, ["role", "name", "email", "municipality", "vendor"], rows)


def _person_names(count: int) -> list[tuple[str, str]]:
    """``count`` different (first, last) names, the same on every run."""
    everyone = [(first, last) for first in FIRST_NAMES for last in LAST_NAMES]
    return random.Random(SEED).sample(everyone, count)


def contracts_file(
    plan: _Plan, labels: dict[tuple[str, str], str], path: Path, rng: random.Random
) -> Path:
    rows = []
    for k, codes in plan.users.items():
        for code in codes:
            rows.append([code, labels[k], rng.choice(CONTRACT_MIX)])
    return _write_csv(path, ["municipality", "system", "contract"], rows)


STATUS_HEADER = (
    "municipality",
    "system",
    "status",
    "date",
    "kind",
    "bob",
    "connection_date",
    "note",
)


def readiness_rows(
    names: dict[int, str],
    plan: _Plan,
    labels: dict[tuple[str, str], str],
    readiness: Definition,
    until: date,
    after: date | None,
) -> list[list[Any]]:
    """Each system through pilot (120 days before) and compliance test (30 days before) to
    ready; one EOJ system in pilot and one started, as of ``until`` and after ``after``."""
    path = happy_path(readiness)
    rows: list[list[Any]] = []

    def add(municipality: str, label: str, status: str, day: date) -> None:
        if day <= until and (after is None or day > after):
            rows.append([municipality, label, status, day.isoformat(), readiness.name, "", "", ""])

    for k, ready in READY_ON.items():
        add(names[plan.pilots[k]], labels[k], path[1], ready - timedelta(days=120))
        add(names[plan.pilots[k]], labels[k], path[-2], ready - timedelta(days=30))
        add(names[plan.pilots[k]], labels[k], path[-1], ready)
    add(EOJ_PILOT[1], labels[EOJ_PILOT[0]], path[1], EOJ_PILOT[2])
    add(EOJ_STARTED[1], labels[EOJ_STARTED[0]], path[0], EOJ_STARTED[2])
    return rows


def status_file(
    plan: _Plan,
    picture: dict[tuple[tuple[str, str], int], str],
    labels: dict[tuple[str, str], str],
    month_end: date,
    readiness: list[list[Any]],
    connection: Definition,
    path: Path,
    rng: random.Random,
) -> Path:
    names = dict(plan.municipalities)
    rows = list(readiness)
    not_agreed, _agreed, live = connection.buckets
    month_days = [d for d in working_days(month_end.replace(day=1), month_end) if d.day <= 26]
    for (k, code), status in sorted(picture.items(), key=lambda kv: (labels[kv[0][0]], kv[0][1])):
        day = rng.choice(month_days)
        rank = (
            connection.buckets.index(status)
            if status in connection.buckets
            else (connection.bucket_rank(status))
        )
        if rank > 0 and READY_ON[k] > day and code != plan.pilots[k]:
            continue  # not ready yet: this month's report would not have it agreed
        bob = "ja" if k in JOBCENTER else ""
        connection_date = ""
        # Some municipalities leave the date out: it is recorded as not reported.
        if status not in (not_agreed, connection.initial) and rng.random() < 0.8:
            target = day + timedelta(days=rng.randint(20, 85))
            if status == live:
                target = day - timedelta(days=rng.randint(5, 40))
            connection_date = target.isoformat()
        date_text = day.isoformat() if rng.random() < 0.7 else day.strftime("%d-%m-%Y")
        note = "Aftale underskrevet, afventer leverandør" if rng.random() < 0.05 else ""
        rows.append([names[code], labels[k], status, date_text, "", bob, connection_date, note])
    return _write_csv(path, STATUS_HEADER, rows)
