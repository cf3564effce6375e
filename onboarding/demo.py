"""``onboarding demo``: a whole programme quarter in seconds, from nothing, offline.

The demo builds a fresh database in a folder and fills it the way a coordinator would:

1. the registry (``init``), contacts for every municipality and vendor, and the municipalities'
   contracts for the deck's systems (``registry import``, from CSV files it writes first);
2. the status of 31 December 2020 and of 31 March 2021 through the monthly status import, from
   two status files it writes first (they include ``system-readiness`` rows: a connection step of
   bucket Aftalt needs its system declared ready by then, so the files first take each system
   through pilot and compliance test). The deck's rollout table of 31 March 2021 (Jobcenter and
   ESDH) comes out exactly;
3. a simulated quarter, 1 April to 30 June 2021, one working day at a time: connections move on,
   the GDPR and Systemoverblik KLIK tasks are sent, answered and defaulted, UDK Boligstøtte's wave
   B1 goes live and one municipality changes wave, an EOJ system is declared ready, the goal
   counters are recorded, and every Monday morning ``notifications.runner.send_due`` writes the
   due reminders, notices and escalations as ``.eml`` files to the outbox (never sent: the demo
   builds its own mail settings with no SMTP server, one digest per recipient and day);
4. the rollout report printed (31 March and 30 June) and the HTML report written.

Everything is deterministic: a seeded ``random.Random`` decides who moves when, and the clock is
pinned (``$ONBOARDING_NOW``) to the simulated time while the demo runs, so two runs give the same
database. The demo scripts the shipped definitions without naming their states: where a track
goes next is read from the definition (see ``_forward``).
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import sqlite3
import textwrap
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from onboarding import calendar, clock, definitions, engine, registry, reports, settings
from onboarding.db import Database, connect, initialise
from onboarding.errors import InputError, OnboardingError
from onboarding.status_import import import_status
from workflows.model import Definition, TransitionDef

__all__ = ["DECK_TABLE", "MARKER", "DemoResult", "is_demo_database", "run"]

Echo = Callable[[str], None]

#: The deck's rollout table of 31 March 2021: (vendor, system) -> (I drift, Aftalt, Endnu ikke
#: aftalt). Jobcenter's rows add up to all 98 municipalities; ESDH's to 119 uses.
DECK_TABLE: dict[tuple[str, str], tuple[int, int, int]] = {
    ("KMD", "Momentum"): (12, 22, 9),
    ("Schultz", "Fasit"): (4, 8, 43),
    ("Formpipe", "Acadre"): (3, 4, 22),
    ("Fujitsu", "eDoc"): (3, 6, 9),
    ("KMD", "Nova ESDH"): (10, 15, 2),
    ("Miracle/Convergens", "SBSys"): (2, 15, 23),
    ("Netcompany", "GetOrganized"): (1, 2, 2),
}
JOBCENTER = (("KMD", "Momentum"), ("Schultz", "Fasit"))
#: How many municipalities use each ESDH solution as a second one (21 of 98 use two: 119 uses).
SECOND_ESDH = {
    ("Formpipe", "Acadre"): 6,
    ("Fujitsu", "eDoc"): 4,
    ("KMD", "Nova ESDH"): 5,
    ("Miracle/Convergens", "SBSys"): 5,
    ("Netcompany", "GetOrganized"): 1,
}
#: When each system was declared ready for rollout (S&D), and EOJ systems on their way.
READY_ON = {
    ("KMD", "Nova ESDH"): date(2020, 5, 4),
    ("KMD", "Momentum"): date(2020, 6, 15),
    ("Miracle/Convergens", "SBSys"): date(2020, 8, 17),
    ("Formpipe", "Acadre"): date(2020, 9, 14),
    ("Fujitsu", "eDoc"): date(2020, 10, 5),
    ("Schultz", "Fasit"): date(2020, 11, 16),
    ("Netcompany", "GetOrganized"): date(2021, 1, 18),
}
EOJ_PILOT = (("Systematic", "Cura Omsorg"), "Odense", date(2021, 2, 15))
EOJ_STARTED = (("KMD", "Nexus"), "Vejle", date(2021, 3, 1))
DECEMBER = date(2020, 12, 31)
MARCH = date(2021, 3, 31)
QUARTER_START = date(2021, 4, 1)
QUARTER_END = date(2021, 6, 30)
GDPR_TASK = "Indmeld modtager(e) af GDPR-revisionserklæringer"
SYSTEMOVERBLIK = "Systemoverblik"
#: The deck's GDPR task status on 27 April 2021: done, started, not started.
GDPR_STATUS = (58, 5, 35)
GDPR_STATUS_DAY = date(2021, 4, 27)
GDPR_CLOSES = date(2021, 5, 7)  # the questionnaire was kept open to 7 May
#: Counters the tool cannot derive, as the programme would record them.
COUNTERS = (
    ("sapa-unique-users", 9412, MARCH),
    ("manuelle-sager-cancelled", 47, MARCH),
    ("pladsanvisning-milestones", 1, date(2021, 3, 26)),
    ("pladsanvisning-milestones", 2, date(2021, 6, 24)),
    ("manuelle-sager-cancelled", 58, QUARTER_END),
    ("sapa-unique-users", 10874, QUARTER_END),
)
#: Chance per working day that an open connection takes its next step, by bucket rank.
STEP_CHANCE = (0.018, 0.075)
SEED = 20210331
#: The coordinator sends due reminders every Monday morning ('reminders send-due' from cron).
SEND_WEEKDAY = 0
CONTRACT_MIX = ("ski-02.19-2019", "ski-02.19-2019", "ski-02.19-2014", "eu-tender", "unknown")
#: The roles every municipality has a contact for: all those held for a municipality, so every
#: role a shipped definition mails (``to:`` and ladders) reaches someone.
MUNICIPALITY_CONTACT_ROLES = (
    "programme-lead",
    "municipality-pl",
    "agreement-admin",
    "bob-agreement-admin",
    "sapa-owner",
    "sapa-admin",
    "bob-admin",
)
ACTOR = "demo"
#: Contacts are people: a first and a last name from these, drawn without repetition by a
#: generator of their own (so the simulation's draws stay as they were).
FIRST_NAMES = (
    "Anne",
    "Mette",
    "Kirsten",
    "Hanne",
    "Helle",
    "Susanne",
    "Lene",
    "Maria",
    "Camilla",
    "Louise",
    "Charlotte",
    "Pia",
    "Tina",
    "Marianne",
    "Sofie",
    "Ida",
    "Emma",
    "Julie",
    "Karen",
    "Birgitte",
    "Peter",
    "Jens",
    "Lars",
    "Michael",
    "Henrik",
    "Søren",
    "Thomas",
    "Niels",
    "Jesper",
    "Martin",
    "Rasmus",
    "Anders",
    "Christian",
    "Morten",
    "Mads",
    "Frederik",
    "Jakob",
    "Kasper",
    "Ole",
    "Torben",
)
LAST_NAMES = (
    "Nielsen",
    "Jensen",
    "Hansen",
    "Pedersen",
    "Andersen",
    "Christensen",
    "Larsen",
    "Sørensen",
    "Rasmussen",
    "Jørgensen",
    "Petersen",
    "Madsen",
    "Kristensen",
    "Olsen",
    "Thomsen",
    "Christiansen",
    "Poulsen",
    "Johansen",
    "Møller",
    "Mortensen",
    "Knudsen",
    "Jakobsen",
    "Mikkelsen",
    "Olesen",
    "Frederiksen",
    "Laursen",
    "Henriksen",
    "Lund",
    "Holm",
    "Schmidt",
    "Eriksen",
    "Kristiansen",
    "Nissen",
    "Lauridsen",
    "Clausen",
    "Simonsen",
    "Kjær",
    "Bach",
    "Dam",
    "Winther",
)


@dataclass
class DemoResult:
    directory: Path
    database: Path
    html: Path
    outbox: Path
    data_files: list[Path] = field(default_factory=list)
    emails: int = 0
    steps: int = 0
    credentials: dict[str, str] = field(default_factory=dict)


# --- the clock -----------------------------------------------------------------------------------


@contextmanager
def _pinned() -> Iterator[Callable[[datetime], None]]:
    """Pin ``$ONBOARDING_NOW`` for the demo's duration; the caller moves it forward."""
    before = os.environ.get("ONBOARDING_NOW")

    def move(moment: datetime) -> None:
        os.environ["ONBOARDING_NOW"] = moment.isoformat()

    try:
        yield move
    finally:
        if before is None:
            os.environ.pop("ONBOARDING_NOW", None)
        else:
            os.environ["ONBOARDING_NOW"] = before


def _local(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=clock.LOCAL)


def _working_days(start: date, end: date) -> list[date]:
    days, day = [], start
    while day <= end:
        if calendar.is_working_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


# --- the registry and the input files ------------------------------------------------------------


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


def _plan(db: Database, connection: Definition, rng: random.Random) -> _Plan:
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


def _labels(db: Database) -> dict[tuple[str, str], str]:
    return {(s["vendor"], s["name"]): str(s["label"]) for s in registry.list_systems(db)}


def _contacts_file(db: Database, path: Path) -> Path:
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


def _contracts_file(
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


def _happy_path(defn: Definition) -> list[str]:
    """The states a track passes on its way forward from the start to a good end."""
    path = [defn.initial]
    while not defn.state(path[-1]).final:
        ahead = _forward(defn, path[-1])
        if not ahead:
            break
        path.append(ahead[0].dest)
    return path


def _readiness_rows(
    names: dict[int, str],
    plan: _Plan,
    labels: dict[tuple[str, str], str],
    readiness: Definition,
    until: date,
    after: date | None,
) -> list[list[Any]]:
    """Each system through pilot (120 days before) and compliance test (30 days before) to
    ready; one EOJ system in pilot and one started, as of ``until`` and after ``after``."""
    path = _happy_path(readiness)
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


def _status_file(
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
    month_days = [d for d in _working_days(month_end.replace(day=1), month_end) if d.day <= 26]
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


# --- moving tracks forward -----------------------------------------------------------------------


class _Progress:
    def __init__(self, defn: Definition) -> None:
        self.defn = defn
        self.dist = {defn.initial: 0}
        queue = [defn.initial]
        while queue:
            s = queue.pop(0)
            for t in defn.transitions_from(s):
                if t.dest not in self.dist:
                    self.dist[t.dest] = self.dist[s] + 1
                    queue.append(t.dest)

    def key(self, state: str) -> tuple[int, int]:
        return self.defn.bucket_rank(state), self.dist.get(state, 0)


def _forward(defn: Definition, state: str, max_rank: int | None = None) -> list[TransitionDef]:
    """Transitions that take a track further along, in declared order: to a state of a later
    bucket or further from the start, never to a final state outside the last bucket (a
    cancellation), and never one only the import may fire."""
    p = _Progress(defn)
    out = []
    last = len(defn.buckets) - 1
    for t in defn.transitions_from(state):
        dest = defn.state(t.dest)
        if p.key(t.dest) <= p.key(state):
            continue
        if dest.final and defn.buckets and defn.bucket_rank(t.dest) != last:
            continue
        if dest.final and not defn.buckets and any(f in defn.fields for f in t.requires):
            continue  # a withdrawal with a reason
        if max_rank is not None and defn.bucket_rank(t.dest) > max_rank:
            continue
        if [r for r in t.roles if r != "importer"]:
            out.append(t)
    return out


@dataclass
class _Sim:
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


# --- the demo ------------------------------------------------------------------------------------


#: The setting that marks a database as the demo's own (table ``settings``, written right after
#: the schema): only a database carrying it is replaced by the next run without ``--force``. A
#: marker in the database itself, not a file beside it, so a real database copied into the
#: folder is never mistaken for the demo's.
MARKER = "demo.created"

#: What a demo run writes in its folder: a run replaces exactly these, and only when they are
#: the demo's (``_owner``).
_FILES = ("onboarding.db", "onboarding.db-wal", "onboarding.db-shm")
_FOLDERS = ("onboarding-outbox", "data")


def _present(directory: Path) -> list[Path]:
    """The demo's names that exist in ``directory`` (what a run would replace)."""
    found = [directory / n for n in (*_FILES, *_FOLDERS) if (directory / n).exists()]
    return found + sorted(directory.glob("rollout-*.html"))


def is_demo_database(path: Path) -> bool:
    """True when ``path`` is a database the demo created (it carries ``MARKER``).

    Read with ``immutable=1``: no lock, no journal and no ``-shm`` file, so a file that is not
    ours (another tool's database, a text file) is left byte-identical; anything unreadable is
    not the demo's."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT 1 FROM settings WHERE key = ?", [MARKER]).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None


def _shown(paths: Sequence[Path]) -> str:
    return ", ".join(p.name + ("/" if p.is_dir() else "") for p in paths)


def _prepare(directory: Path, force: bool, echo: Echo) -> None:
    """Make ``directory`` ready for a fresh demo, never losing what is not the demo's.

    An earlier demo's output is replaced, and the run says so. Anything else the demo would
    overwrite (a database it did not create, or its file and folder names without its database)
    is refused with one line, unless ``force``: then it is moved to ``replaced-<time>/`` in the
    same folder first, whole (a database with its ``-wal``), and the run says where.
    """
    present = _present(directory)
    if not present:
        return
    database = directory / "onboarding.db"
    if database.is_file() and is_demo_database(database):
        echo(f"Replacing the earlier demo in {directory}/: {_shown(present)}")
        _clean(present)
        return
    shown = _shown(present)
    if not force:
        if database.exists():
            what = f"{database} is not a demo database (onboarding demo did not create it)"
        else:
            what = f"{directory}/ holds {shown} but no demo database"
        raise InputError(
            f"{what}: the demo replaces only its own output; choose another folder with --dir, "
            f"or add --force to move {shown} to {directory}/replaced-<time>/ first"
        )
    # The wall clock, not $ONBOARDING_NOW: this names a folder, it records nothing.
    kept = _free(directory / f"replaced-{datetime.now(clock.LOCAL):%Y%m%d-%H%M%S}")
    kept.mkdir()
    for path in present:
        path.rename(kept / path.name)  # the same file system: a move, nothing copied or lost
    echo(f"Kept what was in {directory}/ ({shown}) in {kept}/")


def _free(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3`` ... when it exists (two runs in one second)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _clean(present: Sequence[Path]) -> None:
    """Remove an earlier demo's output (only the names ``_present`` found)."""
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


#: The demo's mail settings, stored in its database ('onboarding mail configure') so that every
#: later command on it (reminders preview, send-due, the scheduler, the web page) sends as the
#: demo did. One email per recipient and day (digest), as a coordinator would configure it for a
#: whole programme.
DEMO_MAIL: dict[str, Any] = {
    "mail.from": "KOMBIT onboarding <onboarding@kombit.example>",
    "mail.digest": True,
}


def _mail(db: Database, db_path: Path, outbox_dir: Path) -> Any:
    """Store the demo's sender in its database and read the settings as every command does."""
    from dataclasses import replace

    from notifications.config import load_config, store

    # The demo never uses SMTP, whatever the environment says: its SMTP variables are left out
    # (a half-set one must not stop the demo) and the transport is .eml files below.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_SMTP_")}
    store(db, db_path, DEMO_MAIL, env=env)
    return replace(load_config(db_path, env, db=db), smtp=None, outbox_dir=outbox_dir)


def run(
    directory: str | Path,
    echo: Echo = print,
    send_reminders: bool = True,
    force: bool = False,
) -> DemoResult:
    """Build the demo in ``directory`` (created if needed) and print what happened.

    An earlier demo there is replaced (and the run says so); anything else the demo would
    replace is refused (InputError) unless ``force``, which moves it aside first (``_prepare``).
    ``send_reminders=False`` skips writing the .eml files (the outbox rows are still made):
    the same tracks and history, faster.
    """
    from notifications.runner import send_due

    root = Path(directory)
    _prepare(root, force, echo)
    root.mkdir(parents=True, exist_ok=True)
    db_path = root / "onboarding.db"
    outbox_dir = root / "onboarding-outbox"
    rng = random.Random(SEED)
    result = DemoResult(root, db_path, root / f"rollout-{QUARTER_END.isoformat()}.html", outbox_dir)
    with _pinned() as now:
        now(_local(date(2021, 1, 4), 8))
        db = connect(db_path)
        try:
            initialise(db)  # the settings table first: the sender is stored before any mail
            settings.update(db, {MARKER: clock.stamp(clock.now())})  # first: it is the demo's
            mail = _mail(db, db_path, outbox_dir)
            _build(db, root, result, rng, now, mail, send_due if send_reminders else None, echo)
        finally:
            db.close()
    return result


def _build(
    db: Database,
    root: Path,
    result: DemoResult,
    rng: random.Random,
    now: Callable[[datetime], None],
    mail: Any,
    send_due: Callable[..., Any] | None,
    echo: Echo,
) -> None:
    from onboarding.definitions import register_shipped

    initialise(db)
    registry.seed(db)
    register_shipped(db)
    connection = definitions.get(db, reports.CONNECTION)
    labels = _labels(db)
    plan = _plan(db, connection, rng)
    names = dict(plan.municipalities)
    data = root / "data"
    files = {
        "contacts": _contacts_file(db, data / "contacts.csv"),
        "contracts": _contracts_file(plan, labels, data / "contracts.csv", rng),
    }
    registry.import_contacts(db, files["contacts"])
    registry.import_contracts(db, files["contracts"])
    readiness = definitions.get(db, "system-readiness")
    for key, (picture, end, after) in {
        "december": (plan.december, DECEMBER, None),
        "march": (plan.march, MARCH, DECEMBER),
    }.items():
        files[key] = _status_file(
            plan,
            picture,
            labels,
            end,
            _readiness_rows(names, plan, labels, readiness, end, after),
            connection,
            data / f"status-{end.strftime('%Y-%m')}.csv",
            rng,
        )
    result.data_files = list(files.values())
    echo(f"Building the demo in {root}/")
    echo(
        f"  registry: {len(plan.municipalities)} municipalities, "
        f"{len(registry.list_systems(db))} systems, "
        f"{len(registry.list_contracts(db))} contracts, {len(registry.list_contacts(db))} contacts"
    )
    for key, moment in (
        ("december", _local(date(2021, 1, 4), 10)),
        ("march", _local(QUARTER_START, 8)),
    ):
        now(moment)
        imported = import_status(db, files[key])
        _say(echo, f"import status {files[key].name}: {imported.summary()}")
    for counter, value, day in COUNTERS:
        if day <= MARCH:
            reports.record_counter(db, counter, value, day, ACTOR)
    contacts = {
        (str(c["role"]), c["municipality_code"]): str(c["name"]) for c in registry.list_contacts(db)
    }
    system_ids = {k: int(registry.resolve_system(db, label)["id"]) for k, label in labels.items()}
    pilots = {system_ids[k]: code for k, code in plan.pilots.items()}
    pilots[system_ids[EOJ_STARTED[0]]] = int(
        registry.resolve_municipality(db, EOJ_STARTED[1])["code"]
    )
    vendors = {int(s["id"]): str(s["vendor"]) for s in registry.list_systems(db)}
    sim = _Sim(db, rng, contacts, pilots, vendors)
    _simulate(db, sim, mail, send_due, now, result, system_ids)
    result.steps = sim.steps
    now(_local(QUARTER_END, 17))
    _say(
        echo,
        f"simulated {_day(QUARTER_START)} - {_day(QUARTER_END)} {QUARTER_END.year}: "
        f"{sim.steps} steps by municipalities, vendors and KOMBIT; {result.emails} emails "
        "(reminders, notices, escalations) written to the outbox",
    )
    echo("")
    echo(reports.rollout_text(reports.rollout(db, as_of=MARCH)))
    echo(reports.rollout_text(reports.rollout(db, as_of=QUARTER_END)))
    report = reports.rollout(db, as_of=QUARTER_END)
    result.html.write_text(reports.rollout_html(db, report, today=QUARTER_END), encoding="utf-8")
    _where(result, echo)
    result.credentials = _register_actors(db, echo)


def _simulate(
    db: Database,
    sim: _Sim,
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
    gdpr_days = _working_days(date(2021, 4, 7), GDPR_STATUS_DAY)
    gdpr_plan = {
        code: (rng.choice(gdpr_days), 2 if i < done else 1)
        for i, code in enumerate(gdpr[: done + started])
    }
    overblik = rng.sample(codes, len(codes))
    overblik_plan = {
        code: rng.choice(_working_days(date(2021, 4, 28), date(2021, 5, 21)))
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
    wave_path = _happy_path(wave_defn)
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
                now(_local(day, 10))
                sim.fire(track_id, _local(day, 10), lambda d, s: _forward(d, s))
        if not calendar.is_working_day(day):
            continue
        morning = _local(day, 8)
        now(morning)
        if send_due is not None and (day.weekday() == SEND_WEEKDAY or day == QUARTER_END):
            summary = send_due(db, morning, mail, now=morning)  # the reminders' single call site
            result.emails += int(summary.messages)
        hour = _local(day, 9, rng.randint(0, 50))
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
            sim.fire(_readiness_track(db, cura), hour, lambda d, s: _forward(d, s))
        if day == date(2021, 5, 3):
            sim.fire(_readiness_track(db, nexus), hour, lambda d, s: _forward(d, s))
        if day == date(2021, 6, 15):
            sim.fire(_readiness_track(db, cura), hour, lambda d, s: _forward(d, s))
        # KLIK: the GDPR task as the deck saw it on 27 April, then the default for the rest.
        for code, (when, rank) in gdpr_plan.items():
            if when == day:
                for _ in range(rank):
                    sim.fire(
                        klik_tracks[(GDPR_TASK, code)],
                        hour,
                        lambda d, s, top=rank: _forward(d, s, top),  # type: ignore[misc]
                    )
        if day == GDPR_CLOSES:
            now(_local(day, 16))  # the clock reaches the step first: no act is in the future
            for code in codes:
                sim.fire(klik_tracks[(GDPR_TASK, code)], _local(day, 16), _by_system)
            now(hour)
        for code, when in overblik_plan.items():
            if when == day:
                while sim.fire(
                    klik_tracks[(SYSTEMOVERBLIK, code)], hour, lambda d, s: _forward(d, s)
                ):
                    pass
        if day == date(2021, 5, 25):
            now(_local(day, 16))
            for code in codes:
                sim.fire(klik_tracks[(SYSTEMOVERBLIK, code)], _local(day, 16), _by_system)
            now(hour)
        # Connections: each open one may take its next step today.
        for t in _open_tracks(db, reports.CONNECTION):
            rank = max(0, connection.bucket_rank(str(t["state"])))
            if rng.random() < STEP_CHANCE[min(rank, 1)]:
                moment = _local(day, rng.randint(9, 15), rng.randint(0, 59))
                now(moment)
                sim.fire(t["id"], moment, lambda d, s: _forward(d, s))
    for counter, value, day in COUNTERS:
        if day > MARCH:
            now(_local(day, 16))
            reports.record_counter(db, counter, value, day, ACTOR)


def _by_system(defn: Definition, state: str) -> list[TransitionDef]:
    """The transition the system itself fires (a KLIK task's default answer)."""
    return [t for t in defn.transitions_from(state) if "system" in t.roles]


def _readiness_track(db: Database, system_id: int) -> int:
    row = db.execute(
        "SELECT id FROM tracks WHERE definition = 'system-readiness' AND system_id = ?"
        " ORDER BY final, id DESC LIMIT 1",
        [system_id],
    ).fetchone()
    return int(row[0])


def _change_wave(sim: _Sim, defn: Definition, track_id: int, wave: str, moment: datetime) -> None:
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


def _say(echo: Echo, text: str) -> None:
    """A progress line, wrapped to 80 columns."""
    for line in textwrap.wrap(text, 78, subsequent_indent="  "):
        echo("  " + line)


def _day(day: date) -> str:
    return f"{day.day} {day.strftime('%B')}"


def _on_path() -> list[str]:
    """How to get ``onboarding`` on PATH in a fresh shell: activate the virtual environment
    this demo runs in (a path relative to the current folder when it is inside it)."""
    import sys

    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):  # not in a virtual environment: installed on PATH
        return ["# 'onboarding' is on PATH (installed outside a virtual environment)"]
    try:
        shown = str(venv.relative_to(Path.cwd()))
    except ValueError:
        shown = str(venv)
    return [
        f". {shown}/bin/activate    # puts 'onboarding' on PATH in this shell",
        f"# (or call {shown}/bin/onboarding instead of onboarding)",
    ]


def _where(result: DemoResult, echo: Echo) -> None:
    db = result.database
    eml = len(list(result.outbox.glob("*.eml"))) if result.outbox.is_dir() else 0
    echo("Where everything is:")
    echo(f"  database      {db}")
    echo(f"  HTML report   {result.html}")
    echo("                (open it in a browser: one file, works offline)")
    echo(f"  input files   {result.data_files[0].parent}/")
    echo("                (contacts, contracts and two monthly status files)")
    echo(f"  email outbox  {result.outbox}/ ({eml} .eml files)")
    echo("")
    echo("Try next (the demo's clock stops at 30 June 2021, 17:00):")
    for line in _on_path():
        echo(f"  {line}")
    echo(f"  export ONBOARDING_DB={db}")
    echo("  export ONBOARDING_NOW=2021-06-30T17:00")
    for line in (
        "onboarding report rollout --as-of 2021-03-31",
        "onboarding report goals --year 2021",
        "onboarding report grid --category Jobcenter",
        "onboarding report klik --task GDPR",
        "onboarding report waves",
        "onboarding report overdue",
        "onboarding track list --system Momentum --overdue",
        f"onboarding import status {result.data_files[-1]} --dry-run",
        "onboarding reminders list --pending",
    ):
        echo(f"  {line}")


# --- actors for the web page (issue 5) -----------------------------------------------------------
# Registered last, so the simulation above runs as before (a database with no actor runs open).
# From here on permissions are enforced: 'import' and 'system' may go on importing and
# defaulting; the people below log in to the web page (or act with --actor on the command line).

_Grant = tuple[str, str | None, str | None]  # role, municipality, vendor
#: (name, display name, password, grants): demo credentials only.
DEMO_ACTORS: tuple[tuple[str, str, str | None, tuple[_Grant, ...]], ...] = (
    ("koordinator", "KOMBIT-koordinator", "demo-koordinator", (("coordinator", None, None),)),
    (
        "aarhus",
        "Projektleder, Aarhus Kommune",
        "demo-aarhus",
        tuple((role, "Aarhus", None) for role in MUNICIPALITY_CONTACT_ROLES),
    ),
    ("kmd", "Kundeansvarlig, KMD", "demo-kmd", (("vendor", None, "KMD"),)),
    ("import", "Månedlig statusimport", None, (("importer", None, None),)),
    ("system", "Automatik", None, (("system", None, None),)),
)


def _register_actors(db: Database, echo: Echo) -> dict[str, str]:
    """Register the demo's actors with their roles; print and return the log-ins."""
    from onboarding import actors

    credentials = {}
    for name, display, password, grants in DEMO_ACTORS:
        actors.add(db, name, display_name=display, password=password)
        for role, municipality, vendor in grants:
            actors.grant(db, name, role, municipality=municipality, vendor=vendor)
        if password:
            credentials[name] = password
    echo("")
    echo("Log in (web page, or --actor NAME on the command line); demo passwords only:")
    for name, display, password, grants in DEMO_ACTORS:
        if password:
            scope = grants[0][1] or grants[0][2] or "all"
            echo(f"  {name:<12} {password:<18} {display} ({scope})")
    echo("  Permissions are on in this database: see 'onboarding actor list'.")
    return credentials
