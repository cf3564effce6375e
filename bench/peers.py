"""The same eight-step connection workflow in other engines, written the way their docs show.

Every peer runs ``n`` instances to completion (start, then the seven steps of a BoB connection:
date agreed, agreements approved, DPA updated, SAPA told, display opened, set up, data loaded),
step by step across all instances, and makes each step durable in SQLite (WAL,
``synchronous=NORMAL``, like ours) before it counts. Two ways to commit:

* ``single``: every step of every instance is its own transaction, as when people click one
  track at a time (SpiffWorkflow then loads the workflow, completes the task and saves it);
* ``bulk``: one transaction per step across all instances (ours: ``track advance --where``;
  SpiffWorkflow keeps the workflows in memory and saves each after its step).

Peers:

* ``ours``: the onboarding engine (``engine.start``/``advance``, or ``start_in`` in one
  transaction and ``bulk_advance``), writing tracks, history (hash-chained) and outbox rows;
* ``raw``: plain ``sqlite3`` writing a state row and a history row per step (the floor);
* ``transitions``: pytransitions with one ``Machine`` per object (its README's first example,
  ``auto_transitions=False``), objects kept in memory, state and history row written per step;
* ``spiff``: SpiffWorkflow's BPMN engine (``bench/connection.bpmn``) with its
  ``BpmnWorkflowSerializer``; the spec is stored once and each instance's serialization in a
  row, as the SQLite serializer of its docs' example application does.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BPMN = HERE / "connection.bpmn"
STEPS = (
    ("agree_date", "date_agreement", "service_agreements", {"connection_date": "2021-09-01"}),
    ("approve_agreements", "service_agreements", "data_processing_agreement", {}),
    ("update_dpa", "data_processing_agreement", "sapa_request", {}),
    ("request_display", "sapa_request", "display_opening", {}),
    ("open_display", "display_opening", "sapa_bob_setup", {}),
    ("complete_setup", "sapa_bob_setup", "data_load", {}),
    ("load_complete", "data_load", "live", {}),
)
STATES = (
    "date_agreement",
    "service_agreements",
    "data_processing_agreement",
    "sapa_request",
    "display_opening",
    "sapa_bob_setup",
    "data_load",
    "live",
    "cancelled",
)
AT = "2021-03-10T10:00:00.000000Z"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


_RAW_SCHEMA = """
CREATE TABLE instance (id INTEGER PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL,
                       bob INTEGER NOT NULL, fields TEXT NOT NULL DEFAULT '{}');
CREATE TABLE history (id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL, seq INTEGER NOT NULL,
                      from_state TEXT, to_state TEXT NOT NULL, trigger TEXT NOT NULL,
                      at TEXT NOT NULL, fields TEXT NOT NULL, UNIQUE (instance_id, seq));
"""


class _Tables:
    """Where a peer makes an instance durable: a state row and history rows. ``schema="peer"``:
    the two small tables above, created empty (the peers' own, as their docs' examples keep
    them). ``schema="ours"``: our ``tracks`` and ``history`` tables in a copy of the ``peers``
    database (the engine's), with every index and trigger they carry (the open-subject key,
    state, due, municipality, system and vendor indexes, history's ``(track_id, seq)``, ``at``
    and ``actor`` indexes, the append-only and rollout-summary triggers); the history hash
    is left empty, no audit head, no notifications. The same rows in the two schemas, so the
    difference between them is what our schema's indexes and triggers cost a commit."""

    def __init__(self, path: Path, schema: str) -> None:
        self.conn = conn = _connect(path)
        self.schema = schema
        if schema == "peer":
            conn.executescript(_RAW_SCHEMA)
            self.first = 1
            return
        codes = [r[0] for r in conn.execute("SELECT code FROM municipalities ORDER BY code")]
        systems = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM systems WHERE name LIKE 'Bench System %' ORDER BY name"
            )
        ]
        self.first = int(conn.execute("SELECT coalesce(max(id), 0) FROM tracks").fetchone()[0])
        self.first += 1
        # The subjects ``ours`` starts (municipality i mod 98, system i div 98, index sd).
        self.subject = lambda i: (codes[i % len(codes)], systems[i // len(codes)])

    def ids(self, n: int) -> list[int]:
        return list(range(self.first, self.first + n))

    def start_rows(
        self, ids: list[int], state: str
    ) -> tuple[str, list[tuple[Any, ...]], str, list[tuple[Any, ...]]]:
        """(instance insert, its parameters, history insert, its parameters) for new ids."""
        if self.schema == "peer":
            return (
                "INSERT INTO instance VALUES (?, ?, 1, 1, '{}')",
                [(i, state) for i in ids],
                _HISTORY["peer"],
                [(i, 1, None, state, "@start", AT, "{}") for i in ids],
            )
        rows = []
        for k, i in enumerate(ids):
            code, system = self.subject(k)
            rows.append((i, f"{code}:{system}:sd", code, system, state))
        return (
            "INSERT INTO tracks (id, definition, def_version, subject_key, municipality_code,"
            " system_id, index_set, bob, state, final, version, fields, entered_at, created_at,"
            f" updated_at) VALUES (?, 'connection', 1, ?, ?, ?, 'sd', 1, ?, 0, 1, '{{}}', '{AT}',"
            f" '{AT}', '{AT}')",
            rows,
            _HISTORY["ours"],
            [(i, 1, None, state, "@start", AT, "{}") for i in ids],
        )

    @property
    def update(self) -> str:
        """Parameters: state, version, fields, id, the state it must be in."""
        table = "instance" if self.schema == "peer" else "tracks"
        return f"UPDATE {table} SET state = ?, version = ?, fields = ? WHERE id = ? AND state = ?"

    @property
    def history(self) -> str:
        """Parameters: id, seq, from, to, trigger, at, fields."""
        return _HISTORY[self.schema]

    def completed(self, ids: list[int]) -> int:
        table = "instance" if self.schema == "peer" else "tracks"
        row = self.conn.execute(
            f"SELECT count(*) FROM {table} WHERE state = 'live' AND id BETWEEN ? AND ?",
            [ids[0], ids[-1]],
        ).fetchone()
        return int(row[0])


_HISTORY = {
    "peer": "INSERT INTO history (instance_id, seq, from_state, to_state, trigger, at, fields)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "ours": "INSERT INTO history (track_id, seq, from_state, to_state, trigger, at, fields,"
    f" actor, role, recorded_at, def_version, hash) VALUES (?, ?, ?, ?, ?, ?, ?, 'bench',"
    f" 'coordinator', '{AT}', 1, '')",
}


# --- raw sqlite3: the floor ---------------------------------------------------------------------


def raw(path: Path, n: int, mode: str, schema: str = "peer") -> int:
    tables = _Tables(path, schema)
    conn = tables.conn
    ids = tables.ids(n)
    single = mode == "single"
    insert, rows, insert_history, history = tables.start_rows(ids, "date_agreement")
    if single:
        for row, hist in zip(rows, history, strict=True):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, row)
            conn.execute(insert_history, hist)
            conn.execute("COMMIT")
    else:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows)
        conn.executemany(insert_history, history)
        conn.execute("COMMIT")
    update, insert_history = tables.update, tables.history
    fields: dict[str, Any] = {}
    for seq, (trigger, src, dst, sets) in enumerate(STEPS, start=2):
        fields.update(sets)
        values, step = json.dumps(fields), json.dumps(sets)
        if single:
            for i in ids:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(update, [dst, seq, values, i, src])
                conn.execute(insert_history, [i, seq, src, dst, trigger, AT, step])
                conn.execute("COMMIT")
        else:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(update, [(dst, seq, values, i, src) for i in ids])
            conn.executemany(insert_history, [(i, seq, src, dst, trigger, AT, step) for i in ids])
            conn.execute("COMMIT")
    done = tables.completed(ids)
    conn.close()
    return done


def raw_ours(path: Path, n: int, mode: str) -> int:
    """``raw`` writing the same state and history rows into our schema (``_Tables``)."""
    return raw(path, n, mode, "ours")


# --- pytransitions, one Machine per object --------------------------------------------------------


class Connection:
    """A connection as a pytransitions model: the machine binds triggers onto it."""

    state: str

    def __init__(self, ident: int, bob: bool) -> None:
        self.id = ident
        self.bob = bob
        self.version = 1
        self.fields: dict[str, Any] = {}

    def includes_bob(self, **_: Any) -> bool:
        return self.bob


def _transitions_table() -> list[dict[str, Any]]:
    table = []
    for trigger, src, dst, _ in STEPS:
        t: dict[str, Any] = {"trigger": trigger, "source": src, "dest": dst}
        if trigger == "approve_agreements":
            t["conditions"] = "includes_bob"
        table.append(t)
    table.append(
        {
            "trigger": "approve_agreements",
            "source": "service_agreements",
            "dest": "sapa_request",
            "unless": "includes_bob",
        }
    )
    table.append({"trigger": "cancel", "source": list(STATES[:7]), "dest": "cancelled"})
    return table


def transitions_per_object(path: Path, n: int, mode: str, schema: str = "peer") -> int:
    from transitions import Machine

    table = _transitions_table()
    tables = _Tables(path, schema)
    conn = tables.conn
    ids = tables.ids(n)
    single = mode == "single"
    objects: dict[int, Connection] = {}
    insert, rows, insert_history, history = tables.start_rows(ids, "date_agreement")
    if not single:
        conn.execute("BEGIN IMMEDIATE")
    for i, row, hist in zip(ids, rows, history, strict=True):
        obj = Connection(i, bob=True)
        Machine(
            model=obj,
            states=list(STATES),
            transitions=table,
            initial="date_agreement",
            auto_transitions=False,
        )
        objects[i] = obj
        if single:
            conn.execute("BEGIN IMMEDIATE")
        conn.execute(insert, row)
        conn.execute(insert_history, hist)
        if single:
            conn.execute("COMMIT")
    if not single:
        conn.execute("COMMIT")
    update, insert_history = tables.update, tables.history
    for trigger, _, _, sets in STEPS:
        fields = json.dumps(sets)
        if not single:
            conn.execute("BEGIN IMMEDIATE")
        for obj in objects.values():
            before = obj.state
            if not getattr(obj, trigger)():  # a failing guard returns False
                raise RuntimeError(f"{trigger} refused for {obj.id}")
            obj.fields.update(sets)
            obj.version += 1
            if single:
                conn.execute("BEGIN IMMEDIATE")
            conn.execute(update, [obj.state, obj.version, json.dumps(obj.fields), obj.id, before])
            conn.execute(
                insert_history, [obj.id, obj.version, before, obj.state, trigger, AT, fields]
            )
            if single:
                conn.execute("COMMIT")
        if not single:
            conn.execute("COMMIT")
    done = sum(1 for o in objects.values() if o.state == "live")
    if done != tables.completed(ids):
        raise RuntimeError("pytransitions' objects and its rows disagree")
    conn.close()
    return done


def transitions_ours(path: Path, n: int, mode: str) -> int:
    """``transitions_per_object`` making its state and history durable in our schema."""
    return transitions_per_object(path, n, mode, "ours")


def transitions_memory(n: int) -> int:
    """Only the live objects (one Machine each), for memory at sizes where running the whole
    workflow would not fit the time budget: the resident set is the objects'."""
    from transitions import Machine

    table = _transitions_table()
    objects = []
    for i in range(n):
        obj = Connection(i, bob=True)
        Machine(
            model=obj,
            states=list(STATES),
            transitions=table,
            initial="date_agreement",
            auto_transitions=False,
        )
        objects.append(obj)
    return len(objects)


# --- SpiffWorkflow --------------------------------------------------------------------------------


class SpiffStore:
    """Workflow specs stored once, instances as one serialization row each (the shape of the
    SQLite serializer in SpiffWorkflow's example application)."""

    def __init__(self, path: Path) -> None:
        from SpiffWorkflow.bpmn.parser import BpmnParser
        from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer

        parser = BpmnParser()
        parser.add_bpmn_file(str(BPMN))
        self.spec = parser.get_spec("connection")
        self.serializer = BpmnWorkflowSerializer()
        self.conn = _connect(path)
        self.conn.executescript(
            "CREATE TABLE spec (id INTEGER PRIMARY KEY, serialization TEXT NOT NULL);"
            "CREATE TABLE workflow (id INTEGER PRIMARY KEY, spec_id INTEGER NOT NULL"
            " REFERENCES spec(id), completed INTEGER NOT NULL DEFAULT 0,"
            " serialization TEXT NOT NULL);"
        )
        spec_dict = self.serializer.to_dict(self.spec)
        self.conn.execute("INSERT INTO spec VALUES (1, ?)", [json.dumps(spec_dict)])
        self.spec_json = self.conn.execute(
            "SELECT serialization FROM spec WHERE id = 1"
        ).fetchone()[0]

    def new(self) -> Any:
        from SpiffWorkflow.bpmn import BpmnWorkflow

        wf = BpmnWorkflow(self.spec)
        wf.do_engine_steps()
        return wf

    def dump(self, wf: Any) -> str:
        dct = self.serializer.to_dict(wf)
        dct.pop("spec")
        dct.pop("subprocess_specs", None)
        dct[self.serializer.VERSION_KEY] = self.serializer.VERSION
        return json.dumps(dct)

    def load(self, ident: int) -> Any:
        text = self.conn.execute(
            "SELECT serialization FROM workflow WHERE id = ?", [ident]
        ).fetchone()[0]
        dct = json.loads(text)
        dct["spec"] = json.loads(self.spec_json)
        dct["subprocess_specs"] = {}
        self.serializer.migrate(dct)
        return self.serializer.from_dict(dct)

    def save(self, ident: int, wf: Any, insert: bool = False) -> None:
        if insert:
            self.conn.execute(
                "INSERT INTO workflow (id, spec_id, completed, serialization) VALUES (?, 1, ?, ?)",
                [ident, int(wf.is_completed()), self.dump(wf)],
            )
        else:
            self.conn.execute(
                "UPDATE workflow SET serialization = ?, completed = ? WHERE id = ?",
                [self.dump(wf), int(wf.is_completed()), ident],
            )


def _spiff_step(wf: Any, name: str, sets: dict[str, Any]) -> None:
    from SpiffWorkflow.util.task import TaskState

    task = wf.get_next_task(state=TaskState.READY, manual=True)
    if task is None or task.task_spec.name != name:
        raise RuntimeError(f"expected {name}, got {task and task.task_spec.name}")
    task.data.update(sets)
    task.run()
    wf.do_engine_steps()


def spiff(path: Path, n: int, mode: str) -> int:
    store = SpiffStore(path)
    conn = store.conn
    single = mode == "single"
    live: dict[int, Any] = {}
    if not single:
        conn.execute("BEGIN IMMEDIATE")
    for i in range(1, n + 1):
        wf = store.new()
        if single:
            conn.execute("BEGIN IMMEDIATE")
        store.save(i, wf, insert=True)
        if single:
            conn.execute("COMMIT")
        else:
            live[i] = wf
    if not single:
        conn.execute("COMMIT")
    for trigger, src, _, sets in STEPS:
        data = {**sets, "bob": True} if trigger == "agree_date" else sets
        if not single:
            conn.execute("BEGIN IMMEDIATE")
        for i in range(1, n + 1):
            if single:
                conn.execute("BEGIN IMMEDIATE")
                wf = store.load(i)
            else:
                wf = live[i]
            _spiff_step(wf, src, data)
            store.save(i, wf)
            if single:
                conn.execute("COMMIT")
        if not single:
            conn.execute("COMMIT")
    done = conn.execute("SELECT count(*) FROM workflow WHERE completed = 1").fetchone()[0]
    conn.close()
    return int(done)


# --- ours -----------------------------------------------------------------------------------------


def ours(path: Path, n: int, mode: str) -> int:
    """``path`` is a copy of the ``peers`` database (registry, systems ready)."""
    from onboarding import clock, engine
    from onboarding.db import connect
    from onboarding.filters import TrackFilter

    db = connect(path)
    codes = [r[0] for r in db.conn.execute("SELECT code FROM municipalities ORDER BY code")]
    act = engine.Act("bench", "coordinator", at=clock.parse_time("2021-03-10T10:00"))
    subjects = [
        engine.Subject(
            municipality=str(codes[i % len(codes)]),
            system=f"Bench System {i // len(codes):05d}",
            bob=True,
        )
        for i in range(n)
    ]
    ids: list[int] = []
    if mode == "single":
        for subject in subjects:
            ids.append(int(engine.start(db, "connection", subject, act)["id"]))
        for trigger, _, _, sets in STEPS:
            for track_id in ids:
                engine.advance(db, track_id, trigger, act, sets)
    else:
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for subject in subjects:
                engine.start_in(conn, db, "connection", subject, act)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        for trigger, src, _, sets in STEPS:
            flt = TrackFilter(definition="connection", state=src)
            engine.bulk_advance(db, flt, trigger, act, sets)
    done = db.conn.execute(
        "SELECT count(*) FROM tracks WHERE definition = 'connection' AND state = 'live'"
    ).fetchone()[0]
    db.close()
    return int(done)


PEERS = {
    "ours": ours,
    "raw": raw,
    "raw_ours": raw_ours,
    "transitions": transitions_per_object,
    "transitions_ours": transitions_ours,
    "spiff": spiff,
}
#: The peers that run in a copy of the ``peers`` database (our schema, registry, systems).
IN_OUR_SCHEMA = ("ours", "raw_ours", "transitions_ours")


def run(peer: str, path: Path, n: int, mode: str) -> dict[str, Any]:
    started = time.perf_counter()
    done = PEERS[peer](path, n, mode)
    seconds = time.perf_counter() - started
    if done != n:
        raise RuntimeError(f"{peer}: {done} of {n} instances completed")
    return {"seconds": seconds, "completed": done}
