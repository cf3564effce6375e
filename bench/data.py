"""Benchmark databases: generated with plain SQL, shaped exactly like the engine's rows, cached.

Going through the engine would take longer than the benchmarks themselves at 10^6 tracks, so
the rows are written directly (``INSERT ... SELECT`` over a recursive CTE), with every value the
engine would compute (due dates, outbox due times) computed once per distinct case by the
library's own functions. ``check_shape`` proves the shape: it builds a small database through
the engine and one through this module and compares them row by row, and replays every
generated track from its history (``tracks.replay``).

Kinds (each cached as ``bench/.cache/<kind>-<n>-<fingerprint>.db``; the fingerprint covers the
schema, the shipped definitions, the audit chain's code and ``GENERATOR``, so a schema change
regenerates):

* ``fresh``: ``n`` connection tracks just started (state ``date_agreement``, one ``@start``
  history row each, four pending notifications each: the reminder and the three-rung
  escalation ladder, planned in one ``outbox_plan`` row as the engine writes them since issue
  14), started on four consecutive days. The bulk-advance, single-advance and delivery
  benchmarks start from a copy of it.
* ``national``: ``n`` connection tracks with ten history rows each (``n`` * 10 rows), spread
  over two years in time order (ids interleave across tracks, as real use does): the start, some
  ``@set`` rows, then as many transitions as the track got through (0 to 7, so every state of
  the workflow is populated and 1/8 of the BoB tracks are live). For reports and ``--as-of``.
  It has no outbox rows: neither report reads the outbox.
* ``sweep``: ``n`` pending (planned) notifications (``fresh`` with ``n / 4`` tracks) of which
  ``DUE`` are due at ``SWEEP_AT``, the rest later: the due-sweep benchmark.
* ``due``: ``n`` pending (planned) notifications, every one due at ``SWEEP_AT`` (a backlog:
  ``fresh`` with ``n / 4`` tracks started on ``DUE_DAYS``, so that even the last rung is
  due): the claim and drain benchmarks of a sender catching up (issue 10).
* ``peers``: the registry only (98 municipalities x 103 systems, all ready), for the peer
  comparison that starts 10^4 tracks itself.

Every kind has the shipped registry plus synthetic vendors and systems (``Bench System 00042``;
98 municipalities per system, so ``n`` tracks need ``n / 98`` systems), a contract per
(municipality, system) track, contacts for every role, and a ``system-readiness`` track in state
``ready`` per synthetic system (so the connection workflow's guard passes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"

CONNECTION = "connection"
READINESS = "system-readiness"
ACTOR = "bench"
ROLE = "coordinator"
PER_SYSTEM = 98  # one track per municipality and system
#: ``fresh`` tracks start at 09:00 local on one of these days (round robin by id).
START_DAYS = (date(2021, 3, 1), date(2021, 3, 2), date(2021, 3, 3), date(2021, 3, 4))
#: The bulk advance fires ``agree_date`` at this moment, setting this date.
ADVANCE_AT = "2021-03-10T10:00:00"
CONNECTION_DATE = "2021-09-01"
#: The national history runs from here, over two years.
NATIONAL_FROM = datetime(2020, 1, 6, 8, 0, tzinfo=UTC)
NATIONAL_SPAN = timedelta(days=728)
#: The as-of date of the as-of benchmark: the middle of the national history.
AS_OF = date(2021, 1, 4)
#: The sweep: rows due at SWEEP_AT (the rest fall due from START_DAYS + 17 working days on).
DUE = 100
SWEEP_AT = "2021-03-15T09:00:00"
#: ``due`` tracks start on these 20 working days, so every row (the last rung falls due 30
#: working days after the start) is due at SWEEP_AT, at 80 different times.
DUE_DAYS = tuple(
    date(2020, 11, 2) + timedelta(days=7 * (k // 5) + k % 5) for k in range(20)
)
PEER_SYSTEMS = 103  # 98 * 103 >= 10^4 subjects

BOB_PATH = (
    "date_agreement",
    "service_agreements",
    "data_processing_agreement",
    "sapa_request",
    "display_opening",
    "sapa_bob_setup",
    "data_load",
    "live",
)
PLAIN_PATH = tuple(s for s in BOB_PATH if s != "data_processing_agreement")
TRIGGERS = {
    "service_agreements": "agree_date",
    "data_processing_agreement": "approve_agreements",
    "sapa_request": "*",  # approve_agreements without BoB, update_dpa with it
    "display_opening": "request_display",
    "sapa_bob_setup": "open_display",
    "data_load": "complete_setup",
    "live": "load_complete",
}
HISTORY_ROWS = 10
#: Bump when what this module generates changes (the cache key includes it).
GENERATOR = 2


def stamp(moment: datetime) -> str:
    from onboarding import clock

    return clock.stamp(moment)


def local(text: str) -> datetime:
    from onboarding import clock

    return clock.parse_time(text)


# --- cache --------------------------------------------------------------------------------------


def _schema_and_sources() -> str:
    """What the generated rows depend on: the schema a fresh ``init`` makes, the shipped
    definitions, and this generator."""
    tmp = CACHE / f".fingerprint-{os.getpid()}.db"
    tmp.unlink(missing_ok=True)
    _init(tmp)
    conn = sqlite3.connect(tmp)
    schema = "\n".join(
        r[0]
        for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    )
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    parts = [schema, f"generator {GENERATOR}"]
    parts.append((ROOT / "onboarding" / "audit.py").read_text(encoding="utf-8"))
    for path in sorted((ROOT / "workflows" / "definitions").glob("*.yaml")):
        parts.append(path.read_text(encoding="utf-8"))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


_FINGERPRINT: str | None = None


def fingerprint() -> str:
    global _FINGERPRINT
    if _FINGERPRINT is None:
        CACHE.mkdir(parents=True, exist_ok=True)
        _FINGERPRINT = _schema_and_sources()
    return _FINGERPRINT


def cached(kind: str, n: int, log: Any = None) -> Path:
    """The cached database of this kind and size, generated first if missing."""
    path = CACHE / f"{kind}-{n}-{fingerprint()}.db"
    if path.exists():
        return path
    for old in CACHE.glob(f"{kind}-{n}-*.db"):
        old.unlink()  # an older fingerprint: the schema or the generator changed
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    GENERATORS[kind](tmp, n)
    os.replace(tmp, path)
    if log:
        log(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    return path


def copy(src: Path, dst: Path) -> Path:
    """A private copy of a cached database (the benchmarks that write work on one)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    return dst


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- building blocks ------------------------------------------------------------------------------


def _init(path: Path) -> None:
    """``onboarding init``: schema, shipped registry and definitions (through the library)."""
    from onboarding.db import connect, initialise
    from onboarding.definitions import register_shipped
    from onboarding.registry import seed

    db = connect(path)
    initialise(db)
    seed(db)
    register_shipped(db)
    db.close()


def _open_for_generation(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: the random index inserts stay in memory
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def _finish(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode = WAL")  # what onboarding.db.connect leaves in the file
    conn.close()


def _registry(conn: sqlite3.Connection, n_systems: int) -> int:
    """Synthetic vendors and systems (each ready), contacts for every role; the first system id."""
    from onboarding.registry import CATEGORIES
    from onboarding.roles import MUNICIPALITY_ROLES

    n_vendors = max(1, min(n_systems, 40))
    first_vendor = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM vendors").fetchone()[0]
    conn.executemany(
        "INSERT INTO vendors (id, name) VALUES (?, ?)",
        [(first_vendor + v, f"Bench Leverandør {v:02d}") for v in range(n_vendors)],
    )
    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM systems").fetchone()[0]
    conn.executemany(
        "INSERT INTO systems (id, vendor_id, name, category) VALUES (?, ?, ?, ?)",
        [
            (first + k, first_vendor + k % n_vendors, f"Bench System {k:05d}", CATEGORIES[k % 4])
            for k in range(n_systems)
        ],
    )
    codes = [r[0] for r in conn.execute("SELECT code FROM municipalities ORDER BY code")]
    assert len(codes) == PER_SYSTEM
    contacts: list[tuple[Any, ...]] = [
        ("coordinator", "Bench Koordinator", "koordinator@kombit.bench.example", None, None)
    ]
    for code in codes:
        for role in sorted(MUNICIPALITY_ROLES):
            contacts.append(
                (role, f"{role} {code}", f"{role}.{code}@kommune.bench.example", code, None)
            )
    for v in range(n_vendors):
        contacts.append(
            (
                "vendor",
                f"Leverandør {v:02d}",
                f"support{v:02d}@vendor.bench.example",
                None,
                first_vendor + v,
            )
        )
    conn.executemany(
        "INSERT INTO contacts (role, name, email, municipality_code, vendor_id)"
        " VALUES (?, ?, ?, ?, ?)",
        contacts,
    )
    conn.execute("CREATE TEMP TABLE muni (k INTEGER PRIMARY KEY, code INTEGER NOT NULL)")
    conn.executemany("INSERT INTO temp.muni VALUES (?, ?)", list(enumerate(codes)))
    _readiness(conn, first, n_systems, codes[0])
    return int(first)


def _readiness(conn: sqlite3.Connection, first_system: int, n: int, pilot: int) -> None:
    """A ``system-readiness`` track in ``ready`` per synthetic system, with its four steps."""
    steps = [
        (None, "development", "@start", "{}", "2019-06-03T08:00:00.000000Z"),
        (
            "development",
            "pilot",
            "start_pilot",
            json.dumps({"pilot_municipality": pilot}),
            "2019-08-01T08:00:00.000000Z",
        ),
        ("pilot", "compliance_test", "complete_pilot", "{}", "2019-10-01T08:00:00.000000Z"),
        ("compliance_test", "ready", "pass_compliance", "{}", "2019-11-01T08:00:00.000000Z"),
    ]
    from onboarding import audit

    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM tracks").fetchone()[0]
    fields = json.dumps({"pilot_municipality": pilot}, sort_keys=True)
    conn.executemany(
        "INSERT INTO tracks (id, definition, def_version, subject_key, municipality_code,"
        " system_id, index_set, bob, klik_task_id, course, state, final, version, fields,"
        " entered_at, due, created_at, updated_at)"
        " VALUES (?, ?, 1, ?, NULL, ?, 'sd', 0, NULL, NULL, 'ready', 1, 4, ?, ?, NULL, ?, ?)",
        [
            (
                first + k,
                READINESS,
                f"{first_system + k}:sd",
                first_system + k,
                fields,
                steps[3][4],
                steps[0][4],
                steps[3][4],
            )
            for k in range(n)
        ],
    )
    audit.append(
        conn,
        [
            (first + k, seq, frm, to, trig, ACTOR, ROLE, None, at, at, 1, f)
            for k in range(n)
            for seq, (frm, to, trig, f, at) in enumerate(steps, start=1)
        ],
    )


def _definition(conn: sqlite3.Connection, name: str) -> Any:
    from sqlite_utils import Database

    from onboarding import definitions

    return definitions.get(Database(conn), name, 1)


def _due(
    conn: sqlite3.Connection, state: str, fields: dict[str, Any], entered: datetime
) -> str | None:
    """The due date the engine computes for a state entered at ``entered`` with ``fields``."""
    from onboarding.engine import compute_due
    from onboarding.guards import GuardContext

    defn = _definition(conn, CONNECTION)
    due = compute_due(GuardContext(conn, entered), defn.state(state), {"fields": fields}, entered)
    return due.isoformat() if due else None


def _outbox_rows(
    conn: sqlite3.Connection, state: str, seq: int, due: str | None, entered: str
) -> list[tuple[Any, ...]]:
    """The outbox upsert parameters the engine writes for entering ``state`` (track id 0)."""
    from onboarding import outbox

    defn = _definition(conn, CONNECTION)
    params, _ = outbox._Planner().rows(
        0, seq, state, outbox.rules(defn.state(state)), due, entered, entered
    )
    return params


_TRACK_INSERT = (
    "INSERT INTO tracks (id, definition, def_version, subject_key, municipality_code, system_id,"
    " index_set, bob, klik_task_id, course, state, final, version, fields, entered_at, due,"
    " created_at, updated_at)"
)


class Chain:
    """The audit hash chain (``onboarding.audit``) computed inside an ``INSERT ... SELECT``.

    Registered as the SQL function ``bench_chain(id, rest)``: called once per row in id order,
    where ``rest`` is the row's canonical JSON after the id (``,track_id,seq,...,fields]``,
    built in SQL), it returns ``sha256('["' + prev + '",' + id + rest)``: the text
    ``audit.row_hash`` hashes (``check_shape`` verifies the generated chain with
    ``audit.verify``). ``close`` moves the chain's head as ``audit.append`` does.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        head = conn.execute("SELECT last_id, last_hash FROM audit_head WHERE id = 1").fetchone()
        self.first_id = self.last_id = int(head[0])
        self.prev = str(head[1])
        conn.create_function("bench_chain", 2, self)

    def __call__(self, row_id: int, rest: str) -> str:
        if row_id != self.last_id + 1:
            raise ValueError(f"history ids must follow the chain: {row_id} after {self.last_id}")
        self.prev = hashlib.sha256(f'["{self.prev}",{row_id}{rest}'.encode()).hexdigest()
        self.last_id = row_id
        return self.prev

    def close(self) -> None:
        self.conn.execute(
            "UPDATE audit_head SET last_id = ?, last_hash = ?, rows = rows + ? WHERE id = 1",
            [self.last_id, self.prev, self.last_id - self.first_id],
        )


def _json_rest(cols: list[str]) -> str:
    """SQL for the canonical JSON of ``cols`` after the id: ``,v1,v2,...]``."""
    return " || ".join(["''", *(f"',' || json_quote({c})" for c in cols), "']'"])


def _history_insert(
    conn: sqlite3.Connection, select: str, params: Any = (), rest: str | None = None
) -> None:
    """``INSERT INTO history`` from ``select``, whose columns are ``k`` (1, 2, ... in id order),
    ``audit.COLUMNS`` and, optionally, ``rest`` (see ``Chain``): ids follow the chain's head
    and each row gets its chained hash."""
    from onboarding import audit

    chain = Chain(conn)
    cols = ", ".join(audit.COLUMNS)
    rest = rest or _json_rest(list(audit.COLUMNS))
    conn.execute(
        f"INSERT INTO history (id, {cols}, hash)"
        f" SELECT {chain.last_id} + g.k, {cols}, bench_chain({chain.last_id} + g.k, {rest})"
        f" FROM ({select}) AS g",
        params,
    )
    chain.close()


_COUNT = "WITH RECURSIVE r(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM r WHERE j + 1 < {n}) "


def _contracts(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO contracts (municipality_code, system_id, contract)"
        " SELECT municipality_code, system_id, CASE id % 3 WHEN 0 THEN 'ski-02.19-2019'"
        " WHEN 1 THEN 'ski-02.19-2014' ELSE 'eu-tender' END"
        " FROM tracks WHERE definition = 'connection'"
    )


# --- kinds ----------------------------------------------------------------------------------------


def make_fresh(
    path: Path, n: int, days: tuple[date, ...] = START_DAYS
) -> tuple[int, int]:
    """``n`` connection tracks just started on ``days`` (round robin by id); returns (first
    track id, first system id)."""
    _init(path)
    conn = _open_for_generation(path)
    conn.execute("BEGIN")
    first_system = _registry(conn, -(-n // PER_SYSTEM))
    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM tracks").fetchone()[0]
    conn.execute("CREATE TEMP TABLE starts (k INTEGER PRIMARY KEY, at TEXT, due TEXT)")
    conn.execute(
        "CREATE TEMP TABLE start_outbox (k INTEGER, ord INTEGER, notification TEXT, kind TEXT,"
        " level INTEGER, template TEXT, recipients TEXT, on_leave TEXT, cancel_on TEXT,"
        " due_date TEXT, due_at TEXT, next_attempt_at TEXT, PRIMARY KEY (k, ord))"
    )
    for k, day in enumerate(days):
        moment = local(f"{day.isoformat()}T09:00:00")
        at = stamp(moment)
        due = _due(conn, "date_agreement", {}, moment)
        conn.execute("INSERT INTO temp.starts VALUES (?, ?, ?)", [k, at, due])
        for order, row in enumerate(_outbox_rows(conn, "date_agreement", 1, due, at)):
            conn.execute(
                "INSERT INTO temp.start_outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [k, order, *row[3:13]],
            )
    ks = len(days)
    conn.execute(
        _COUNT.format(n=n) + _TRACK_INSERT + f" SELECT {first} + j, 'connection', 1,"
        f" m.code || ':' || ({first_system} + j / {PER_SYSTEM}) || ':sd', m.code,"
        f" {first_system} + j / {PER_SYSTEM}, 'sd', j % 2, NULL, NULL, 'date_agreement', 0, 1,"
        " '{}', s.at, s.due, s.at, s.at"
        f" FROM r JOIN temp.muni m ON m.k = j % {PER_SYSTEM} JOIN temp.starts s ON s.k = j % {ks}"
    )
    _history_insert(
        conn,
        f"SELECT id - {first} + 1 AS k, id AS track_id, 1 AS seq, NULL AS from_state,"
        " 'date_agreement' AS to_state, '@start' AS trigger, ? AS actor, ? AS role,"
        " NULL AS note, entered_at AS at, entered_at AS recorded_at, 1 AS def_version,"
        " '{}' AS fields FROM tracks WHERE id >= ? ORDER BY id",
        [ACTOR, ROLE, first],
    )
    # As the engine writes a start since issue 14: the state's reminder and escalations are
    # one outbox_plan row per track (no notice fires on entering date_agreement), its id the
    # last of the four outbox ids it holds, and the track row points to it (open).
    per = conn.execute("SELECT count(*) FROM temp.start_outbox WHERE k = 0").fetchone()[0]
    counts = {r[0] for r in conn.execute("SELECT count(*) FROM temp.start_outbox GROUP BY k")}
    keeps = conn.execute("SELECT count(*) FROM temp.start_outbox WHERE on_leave = 'keep'")
    if counts != {per} or keeps.fetchone()[0]:
        raise RuntimeError("every start day must plan the same rows, none kept on leave")
    base = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM outbox), 0),"
        " coalesce((SELECT max(id) FROM outbox_plan), 0))"
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO outbox_plan (id, prev_id, track_id, entry_seq, state, def_version, due_date,"
        " made_at, rows, next_at)"
        f" SELECT {base} + (t.id - {first} + 1) * {per}, NULL, t.id, 1, 'date_agreement', 1,"
        " t.due, t.entered_at,"
        " (SELECT '[' || group_concat('[' || o.id || ',\"' || o.notification || '\",\"'"
        "  || o.due_at || '\"]', ',') || ']' FROM (SELECT"
        f"  {base} + (t.id - {first}) * {per} + o.ord + 1 AS id, o.notification, o.due_at"
        f"  FROM temp.start_outbox o WHERE o.k = (t.id - {first}) % {ks} ORDER BY o.ord) o),"
        " (SELECT min(o.due_at) FROM temp.start_outbox o"
        f"  WHERE o.k = (t.id - {first}) % {ks})"
        " FROM tracks t WHERE t.id >= ? ORDER BY t.id",
        [first],
    )
    conn.execute(
        f"UPDATE tracks SET plan_open = 1, plan_id = {base} + (id - {first} + 1) * {per}"
        " WHERE id >= ?",
        [first],
    )
    _contracts(conn)
    conn.execute("COMMIT")
    _finish(conn)
    return first, first_system


def _national_steps(
    conn: sqlite3.Connection,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Per (bob, progress): the ten history rows, and the track's end (state, final, fields,
    due: a constant or the working-day offset after entry)."""
    defn = _definition(conn, CONNECTION)
    steps: list[tuple[Any, ...]] = []
    ends: list[tuple[Any, ...]] = []
    for bob, path in ((1, BOB_PATH), (0, PLAIN_PATH)):
        for p in range(len(path)):
            sets = HISTORY_ROWS - 1 - p  # @set rows after the start, before the transitions
            rows: list[tuple[Any, ...]] = [(None, path[0], "@start", "{}")]
            fields: dict[str, Any] = {}
            for s in range(sets):
                change = {"kle_numbers": f"KLE {s + 1}"}
                fields.update(change)
                rows.append((path[0], path[0], "@set", json.dumps(change, sort_keys=True)))
            for q in range(1, p + 1):
                trig = TRIGGERS[path[q]]
                if trig == "*":
                    trig = "update_dpa" if bob else "approve_agreements"
                change = {"connection_date": CONNECTION_DATE} if trig == "agree_date" else {}
                fields.update(change)
                rows.append((path[q - 1], path[q], trig, json.dumps(change, sort_keys=True)))
            for seq, (frm, to, trig, f) in enumerate(rows, start=1):
                steps.append((bob, p, seq, frm, to, trig, f))
            state = defn.state(path[p])
            rule = state.due
            after = rule.after_entry if rule is not None and not state.final else None
            const = None
            if after is None:
                const = _due(conn, state.name, fields, NATIONAL_FROM)
            ends.append(
                (
                    bob,
                    p,
                    state.name,
                    int(state.final),
                    json.dumps(fields, ensure_ascii=False, sort_keys=True),
                    const,
                    after,
                )
            )
    return steps, ends


def _working_day_table(conn: sqlite3.Connection, offsets: set[int]) -> None:
    """Local day -> due date n working days later, keyed by the day's first UTC instant."""
    from onboarding import calendar, clock

    conn.execute(
        "CREATE TEMP TABLE wd (off INTEGER, start TEXT, due TEXT, PRIMARY KEY (off, start))"
        " WITHOUT ROWID"
    )
    day = clock.local_date(NATIONAL_FROM) - timedelta(days=1)
    last = clock.local_date(NATIONAL_FROM + NATIONAL_SPAN) + timedelta(days=1)
    rows = []
    while day <= last:
        begin = stamp(clock.local_midnight(day))
        for off in offsets:
            rows.append((off, begin, calendar.add_working_days(day, off).isoformat()))
        day += timedelta(days=1)
    conn.executemany("INSERT INTO temp.wd VALUES (?, ?, ?)", rows)


def make_national(path: Path, n: int) -> None:
    _init(path)
    conn = _open_for_generation(path)
    conn.execute("BEGIN")
    first_system = _registry(conn, -(-n // PER_SYSTEM))
    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM tracks").fetchone()[0]
    steps, ends = _national_steps(conn)
    conn.execute(
        "CREATE TEMP TABLE steps (bob INTEGER, p INTEGER, seq INTEGER, from_state TEXT,"
        " to_state TEXT, trigger TEXT, fields TEXT, json_mid TEXT, json_fields TEXT,"
        " PRIMARY KEY (bob, p, seq)) WITHOUT ROWID"
    )
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    conn.executemany(
        "INSERT INTO temp.steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*st, "," + encode(list(st[2:6]))[1:-1], encode(st[6])) for st in steps],
    )
    conn.execute(
        "CREATE TEMP TABLE ends (bob INTEGER, p INTEGER, state TEXT, final INTEGER, fields TEXT,"
        " due TEXT, after INTEGER, PRIMARY KEY (bob, p)) WITHOUT ROWID"
    )
    conn.executemany("INSERT INTO temp.ends VALUES (?, ?, ?, ?, ?, ?, ?)", ends)
    _working_day_table(conn, {e[6] for e in ends if e[6] is not None})
    # The rollout counts per system and bucket (013_rollout_buckets) are filled after the
    # tracks and contracts, as the migration fills them: their triggers would run once per
    # generated track and contract.
    from onboarding import rollup

    for name in _trigger_names(rollup.TRIGGERS):
        conn.execute(f"DROP TRIGGER {name}")
    rows = n * HISTORY_ROWS
    t0 = int(NATIONAL_FROM.timestamp())
    delta = max(1, int(NATIONAL_SPAN.total_seconds()) // rows)
    at = "strftime('%Y-%m-%dT%H:%M:%S.000000Z', {t0} + ({r}) * {d}, 'unixepoch')"
    progress = f"(j / 2) % (CASE j % 2 WHEN 1 THEN {len(BOB_PATH)} ELSE {len(PLAIN_PATH)} END)"
    created = at.format(t0=t0, r="j", d=delta)
    updated = at.format(t0=t0, r=f"{(HISTORY_ROWS - 1) * n} + j", d=delta)
    conn.execute(
        f"WITH RECURSIVE r(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM r WHERE j + 1 < {n}),"
        f" x AS (SELECT j, {created} AS created, {updated} AS updated, {progress} AS p FROM r) "
        + _TRACK_INSERT
        + f" SELECT {first} + j, 'connection', 1,"
        f" m.code || ':' || ({first_system} + j / {PER_SYSTEM}) || ':sd', m.code,"
        f" {first_system} + j / {PER_SYSTEM}, 'sd', j % 2, NULL, NULL, e.state, e.final,"
        f" {HISTORY_ROWS}, e.fields,"
        " CASE WHEN x.p = 0 THEN created ELSE updated END,"
        " coalesce(e.due, (SELECT wd.due FROM temp.wd WHERE wd.off = e.after"
        "   AND wd.start <= CASE WHEN x.p = 0 THEN created ELSE updated END"
        "   ORDER BY wd.start DESC LIMIT 1)),"
        " created, updated"
        f" FROM x JOIN temp.muni m ON m.k = j % {PER_SYSTEM}"
        " JOIN temp.ends e ON e.bob = j % 2 AND e.p = x.p"
    )
    # Secondary indexes are built once at the end (what CREATE INDEX makes is the same).
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'history'"
        " AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    # The instant is computed once per row, in the recursive CTE; the canonical JSON for the
    # hash chain reuses it and each step's precomputed JSON snippets.
    step = (
        f"s.bob = (x % {n}) % 2 AND s.seq = x / {n} + 1"
        f" AND s.p = ((x % {n}) / 2) % (CASE (x % {n}) % 2 WHEN 1 THEN {len(BOB_PATH)}"
        f" ELSE {len(PLAIN_PATH)} END)"
    )
    _history_insert(
        conn,
        f"WITH RECURSIVE r(x, at) AS (SELECT 0, {at.format(t0=t0, r=0, d=delta)}"
        f" UNION ALL SELECT x + 1, {at.format(t0=t0, r='x + 1', d=delta)} FROM r"
        f" WHERE x + 1 < {rows})"
        f" SELECT x + 1 AS k, {first} + x % {n} AS track_id, x / {n} + 1 AS seq, s.from_state,"
        " s.to_state, s.trigger, 'coordinator-' || ((x % 20) + 1) AS actor,"
        " 'coordinator' AS role, NULL AS note, at, at AS recorded_at, 1 AS def_version,"
        " s.fields, s.json_mid, s.json_fields"
        f" FROM r JOIN temp.steps s ON {step}",
        rest="',' || track_id || json_mid || ',\"' || actor || '\",\"coordinator\",null,\"'"
        " || at || '\",\"' || at || '\",1,' || json_fields || ']'",
    )
    for _, sql in indexes:
        conn.execute(sql)
    _contracts(conn)
    rollup.fill(conn)
    for sql in rollup.TRIGGERS:
        conn.execute(sql)
    conn.execute("COMMIT")
    _finish(conn)


def _trigger_names(sqls: tuple[str, ...]) -> list[str]:
    return [sql.split()[2] for sql in sqls]


def make_sweep(path: Path, n: int) -> None:
    """``n`` pending outbox rows (``n / 4`` fresh tracks), ``DUE`` of them due at SWEEP_AT."""
    make_fresh(path, max(1, n // 4))
    conn = sqlite3.connect(path, isolation_level=None)
    due = stamp(local(SWEEP_AT) - timedelta(hours=1))
    # The earliest reminders of the first tracks became due an hour before the sweep (their
    # step's due date was moved up with 'track set'), everything else is due later.
    conn.execute(
        "UPDATE outbox_plan SET rows = json_replace(rows, '$[0][2]', ?), next_at = ?"
        " WHERE id IN (SELECT id FROM outbox_plan ORDER BY id LIMIT ?)",
        [due, due, DUE],
    )
    conn.close()


def make_due(path: Path, n: int) -> None:
    """``n`` pending outbox rows (``n / 4`` tracks, four rows each), all due at SWEEP_AT."""
    make_fresh(path, max(1, n // 4), DUE_DAYS)


def make_peers(path: Path, n: int) -> None:
    _init(path)
    conn = _open_for_generation(path)
    conn.execute("BEGIN")
    _registry(conn, n)
    conn.execute(
        "INSERT INTO contracts (municipality_code, system_id, contract)"
        " SELECT m.code, s.id, 'ski-02.19-2019' FROM municipalities m"
        " CROSS JOIN systems s WHERE s.name LIKE 'Bench System %'"
    )
    conn.execute("COMMIT")
    _finish(conn)


GENERATORS: dict[str, Callable[[Path, int], Any]] = {
    "fresh": make_fresh,
    "national": make_national,
    "sweep": make_sweep,
    "due": make_due,
    "peers": make_peers,
}


# --- the shape check ----------------------------------------------------------------------------


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql).fetchall()]


def check_shape(workdir: Path) -> list[str]:
    """Problems found comparing generated rows with the engine's own (empty: identical)."""
    from onboarding import clock, engine, tracks
    from onboarding.db import connect

    problems: list[str] = []
    n = 2 * PER_SYSTEM + 7  # three systems, both BoB and not, every start day
    gen = copy(cached("fresh", n), workdir / "shape-gen.db")
    eng = workdir / "shape-engine.db"
    remove(eng)
    _init(eng)
    conn = _open_for_generation(eng)
    conn.execute("BEGIN")
    _registry(conn, -(-n // PER_SYSTEM))
    conn.execute("COMMIT")
    conn.close()
    db = connect(eng)
    codes = [r[0] for r in db.conn.execute("SELECT code FROM municipalities ORDER BY code")]
    saved = os.environ.get("ONBOARDING_NOW")
    try:
        for j in range(n):
            day = START_DAYS[j % len(START_DAYS)]
            moment = f"{day.isoformat()}T09:00:00"
            os.environ["ONBOARDING_NOW"] = moment  # recorded_at and outbox stamps
            subject = engine.Subject(
                municipality=str(codes[j % PER_SYSTEM]),
                system=f"Bench System {j // PER_SYSTEM:05d}",
                bob=bool(j % 2),
            )
            engine.start(
                db, CONNECTION, subject, engine.Act(ACTOR, ROLE, at=clock.parse_time(moment))
            )
    finally:
        if saved is None:
            os.environ.pop("ONBOARDING_NOW", None)
        else:
            os.environ["ONBOARDING_NOW"] = saved
    db.conn.execute(
        "INSERT INTO contracts (municipality_code, system_id, contract)"
        " SELECT municipality_code, system_id, CASE id % 3 WHEN 0 THEN 'ski-02.19-2019'"
        " WHEN 1 THEN 'ski-02.19-2014' ELSE 'eu-tender' END"
        " FROM tracks WHERE definition = 'connection'"
    )
    db.close()
    a, b = sqlite3.connect(gen), sqlite3.connect(eng)
    for table in ("tracks", "history", "outbox", "outbox_plan", "contracts", "systems",
                  "contacts"):
        cols = [r[1] for r in a.execute(f"PRAGMA table_info({table})")]
        sql = f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1, 2, 3"
        ra, rb = _rows(a, sql), _rows(b, sql)
        if ra != rb:
            diff = next(((x, y) for x, y in zip(ra, rb, strict=False) if x != y), None)
            problems.append(
                f"{table}: generated {len(ra)} rows, engine {len(rb)}; first diff {diff}"
            )
    a.close()
    b.close()
    # national: every generated track equals the replay of its history
    nat = cached("national", 3 * PER_SYSTEM)
    db = connect(nat)
    ids = [r[0] for r in db.conn.execute("SELECT id FROM tracks ORDER BY id")]
    keys = ("state", "version", "def_version", "final", "fields", "entered_at", "updated_at", "due")
    for track_id in ids:
        row = engine.load_track(db.conn, track_id)
        want = tracks.replay(db, track_id)
        got = {k: row[k] for k in keys}
        if got != {k: want[k] for k in keys}:
            problems.append(f"national track {track_id}: row {got} != replay {want}")
            break
    states = {
        r[0]
        for r in db.conn.execute(
            "SELECT DISTINCT state FROM tracks WHERE definition = 'connection'"
        )
    }
    if states != set(BOB_PATH):
        problems.append(f"national: states {sorted(states)} do not cover the workflow")
    db.close()
    remove(gen)
    remove(eng)
    return problems


if __name__ == "__main__":
    # ``python -m bench.data KIND N``: generate (or find) one cached database, print its path.
    import sys

    print(cached(sys.argv[1], int(sys.argv[2]), log=lambda t: print(t, file=sys.stderr)))
