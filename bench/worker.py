"""One measurement in a fresh process: ``python -m bench.worker CASE JSON-ARGS``.

Prints one JSON object: the timings (seconds, measured around the operation only, after
imports and setup), ``rss_before`` (resident set after setup, KiB) and ``rss_peak`` (the
process's high-water mark, KiB), plus what the case reports. A fresh process per measurement
keeps the peak memory the operation's own.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import data


def _rss_now() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss // 1024)


def _peak() -> int:
    """This process's peak resident set (KiB): ``VmHWM``, which starts afresh at exec; the
    rusage figure would start from the high-water mark of the process that forked us."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- 1. bulk advance --------------------------------------------------------------------------


def bulk(args: dict[str, Any]) -> dict[str, Any]:
    """The engine: ``track advance --where "definition=connection state=date_agreement"
    agree_date --set connection_date=...`` on every fresh track, as a library call."""
    from onboarding import clock, engine
    from onboarding.db import connect
    from onboarding.filters import TrackFilter

    db = connect(args["db"])
    flt = TrackFilter(definition=data.CONNECTION, state="date_agreement")
    act = engine.Act(data.ACTOR, data.ROLE, at=clock.parse_time(data.ADVANCE_AT))
    sets = {"connection_date": data.CONNECTION_DATE}
    before = _rss_now()
    started = time.perf_counter()
    if args.get("profile"):
        from pyinstrument import Profiler

        prof = Profiler(interval=0.001)
        prof.start()
    result = engine.bulk_advance(db, flt, "agree_date", act, sets)
    seconds = time.perf_counter() - started
    if args.get("profile"):
        prof.stop()
        Path(args["profile"]).write_text(prof.output_text(unicode=False, color=False))
    db.close()
    if result.moved != args["n"]:
        raise RuntimeError(f"moved {result.moved} of {args['n']}")
    return {"times": [seconds], "rss_before": before, "moved": result.moved}


class _Floor:
    """The storage floors of one ``agree_date`` advance (date_agreement -> service_agreements)
    as plain ``sqlite3`` statements. ``rows="same"``: exactly the rows the engine writes (the
    track, a hash-chained history row, the audit head, the new entry's plan with its four
    outbox ids, the track's pointer to it); ``rows="state"``: only the track's state and
    one history row (the floor of any durable workflow engine: issue 14's target)."""

    def __init__(self, conn: sqlite3.Connection, rows: str) -> None:
        import hashlib

        from onboarding import calendar, clock, outbox

        self.conn, self.rows = conn, rows
        moment = clock.parse_time(data.ADVANCE_AT)
        self.at = clock.stamp(moment)
        # What entering service_agreements means: due 10 working days after entry; its
        # reminder and three escalation rungs planned (none fires on entry).
        self.due = calendar.add_working_days(clock.local_date(moment), 10).isoformat()
        rules = outbox.rules(data._definition(conn, data.CONNECTION).state("service_agreements"))
        planned, _ = outbox._PLANNER.rows(
            0, 0, "service_agreements", rules, self.due, self.at, self.at
        )
        self.planned = [(p[3], p[11]) for p in planned]
        self.sets = json.dumps({"connection_date": data.CONNECTION_DATE}, sort_keys=True)
        self.encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self.sha = hashlib.sha256

    def tracks(
        self, limit: int | None = None, step: int = 1, offset: int = 0
    ) -> list[tuple[Any, ...]]:
        rows = self.conn.execute(
            "SELECT id, version, fields FROM tracks WHERE definition = 'connection'"
            " AND state = 'date_agreement' AND final = 0 ORDER BY id"
        ).fetchall()
        return rows[offset::step][:limit]  # read before any is moved: disjoint by offset

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        """Write the advance of every track in ``batch`` (inside the caller's transaction)."""
        conn, at = self.conn, self.at
        heads = [None] * len(batch) if self.rows == "state" else self._plans(batch)
        tracks, history = [], []
        for (track_id, version, fields), head in zip(batch, heads, strict=True):
            f = json.loads(fields)
            f["connection_date"] = data.CONNECTION_DATE
            tracks.append(
                (
                    json.dumps(f, ensure_ascii=False, sort_keys=True),
                    at,
                    self.due,
                    at,
                    head,
                    track_id,
                    version,
                )
            )
            history.append(
                (
                    track_id,
                    version + 1,
                    "date_agreement",
                    "service_agreements",
                    "agree_date",
                    data.ACTOR,
                    data.ROLE,
                    None,
                    at,
                    at,
                    1,
                    self.sets,
                )
            )
        pointer = "" if self.rows == "state" else ", plan_id = ?, plan_open = 1"
        # No ``final = 0`` (it does not change): SETting it would rewrite the track's entry
        # in the partial index ``tracks_open_subject``, a page the engine does not write.
        conn.executemany(
            "UPDATE tracks SET state = 'service_agreements', version = version + 1,"
            f" fields = ?, entered_at = ?, due = ?, def_version = 1, updated_at = ?{pointer}"
            " WHERE id = ? AND version = ?",
            [t if pointer else t[:4] + t[5:] for t in tracks],
        )
        cols = (
            "track_id, seq, from_state, to_state, trigger, actor, role, note, at,"
            " recorded_at, def_version, fields"
        )
        if self.rows == "state":
            conn.executemany(
                f"INSERT INTO history ({cols}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " '')",
                history,
            )
            return
        last_id, prev = conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
        chained = []
        for values in history:
            last_id += 1
            prev = self.sha(self.encode([prev, last_id, *values]).encode("utf-8")).hexdigest()
            chained.append((last_id, *values, prev))
        conn.executemany(
            f"INSERT INTO history (id, {cols}, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            chained,
        )
        conn.execute(
            "UPDATE audit_head SET last_id = ?, last_hash = ?, rows = rows + ? WHERE id = 1",
            [last_id, prev, len(chained)],
        )

    def _plans(self, batch: list[tuple[Any, ...]]) -> list[int]:
        """The entered state's reminder and escalations: one plan appended per track, its id
        the last of its four outbox ids, linked to the track's plan so far; the track row then
        points to it. Leaving the old state writes nothing more. Returns the plan ids."""
        per = len(self.planned)
        first = (
            self.conn.execute(
                "SELECT max(coalesce((SELECT max(id) FROM outbox), 0),"
                " coalesce((SELECT max(id) FROM outbox_plan), 0))"
            ).fetchone()[0]
            + 1
        )
        plans, heads = [], []
        for i, (track_id, version, _) in enumerate(batch):
            ids = range(first + i * per, first + (i + 1) * per)
            text = (
                "["
                + ",".join(
                    f'[{j},"{name}","{due_at}"]'
                    for j, (name, due_at) in zip(ids, self.planned, strict=True)
                )
                + "]"
            )
            plans.append(
                (
                    ids[-1],
                    track_id,
                    version + 1,
                    self.due,
                    self.at,
                    text,
                    min(d for _, d in self.planned),
                    track_id,
                )
            )
            heads.append(ids[-1])
        self.conn.executemany(
            "INSERT INTO outbox_plan (id, prev_id, track_id, entry_seq, state, def_version,"
            " due_date, made_at, rows, next_at) SELECT ?, plan_id, ?, ?, 'service_agreements',"
            " 1, ?, ?, ?, ? FROM tracks WHERE id = ?",
            plans,
        )
        return heads


def bulk_floor(args: dict[str, Any]) -> dict[str, Any]:
    """The storage floor of the bulk advance: ``_Floor`` with ``executemany`` in one
    transaction. It knows what this one transition writes; everything general (guards,
    roles, definitions) is the engine's cost."""
    from onboarding.db import connect

    db = connect(args["db"])  # the same pragmas as the engine's connection
    conn = db.conn
    before = _rss_now()
    started = time.perf_counter()
    floor = _Floor(conn, args.get("rows", "same"))
    conn.execute("BEGIN IMMEDIATE")
    rows = floor.tracks()
    for i in range(0, len(rows), 2000):
        floor.write(rows[i : i + 2000])
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    if len(rows) != args["n"]:
        raise RuntimeError(f"moved {len(rows)} of {args['n']}")
    return {"times": [seconds], "rss_before": before, "moved": len(rows)}


# --- 1b. single advance, in process ------------------------------------------------------------


def single(args: dict[str, Any]) -> dict[str, Any]:
    """``engine.advance`` (agree_date) on ``k`` tracks spread over the table, one transaction
    each, as a library call, interleaved with the two floors writing other tracks one commit
    each: ``_Floor`` "same" on the same database (it keeps the hash chain), ``_Floor``
    "state" on a copy (``db2``). Interleaved, so the machine's load weighs on all three
    alike. Per-advance times of each."""
    from onboarding import clock, engine
    from onboarding.db import connect

    db, db2 = connect(args["db"]), connect(args["db2"])
    k = args["k"]
    step = max(3, args["n"] // k)  # three disjoint sets of tracks: offsets 0, 1, 2
    same, state = _Floor(db.conn, "same"), _Floor(db2.conn, "state")
    engine_tracks = same.tracks(k, step, 0)
    same_tracks = same.tracks(k, step, 1)
    state_tracks = state.tracks(k, step, 2)
    act = engine.Act(data.ACTOR, data.ROLE, at=clock.parse_time(data.ADVANCE_AT))
    sets = {"connection_date": data.CONNECTION_DATE}
    before = _rss_now()
    times: dict[str, list[float]] = {"engine": [], "same": [], "state": []}
    for e, f, g in zip(engine_tracks, same_tracks, state_tracks, strict=False):
        started = time.perf_counter()
        engine.advance(db, e[0], "agree_date", act, sets)
        times["engine"].append(time.perf_counter() - started)
        for floor, track, key in ((same, f, "same"), (state, g, "state")):
            started = time.perf_counter()
            floor.conn.execute("BEGIN IMMEDIATE")
            floor.write([track])
            floor.conn.execute("COMMIT")
            times[key].append(time.perf_counter() - started)
    db.close()
    db2.close()
    return {
        "times": times["engine"],
        "same": times["same"],
        "state": times["state"],
        "rss_before": before,
        "moved": len(times["engine"]),
    }


# --- 4. due sweep -------------------------------------------------------------------------------


def sweep(args: dict[str, Any]) -> dict[str, Any]:
    """Claim one batch (50) of the due rows, as ``send-due`` does; put the rows back (untimed)
    and repeat. Also ``next_due`` (the scheduler's wake-up) and the claim's query plan."""
    from onboarding import clock, outbox
    from onboarding.db import connect

    db = connect(args["db"])
    at = clock.parse_time(data.SWEEP_AT)
    lease = timedelta(minutes=15)
    pending = outbox.counts(db.conn).get("pending", 0)  # planned rows included (issue 14)
    due = db.conn.execute(
        "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?)"
        " + (SELECT count(*) FROM outbox_plan p JOIN tracks t ON t.plan_id = p.id"
        " AND t.plan_open, json_each(p.rows) j WHERE p.next_at <= ? AND j.value ->> 2 <= ?)",
        [clock.stamp(at)] * 3,
    ).fetchone()[0]
    plan = [
        r[3]
        for r in db.conn.execute(
            # The claim's own SELECT (outbox.claim), in the partial index's order.
            "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE status = 'pending'"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
            [clock.stamp(at), 50],
        )
    ]
    before = _rss_now()
    times, wake, supersede = [], [], []
    for _ in range(args["reps"]):
        started = time.perf_counter()
        rows = outbox.claim(db, at, at, "bench", 50, lease)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        outbox.next_due(db)
        wake.append(time.perf_counter() - started)
        if len(rows) != 50:
            raise RuntimeError(f"claimed {len(rows)}")
        # What send_due does next with the batch: drop the rows a higher rung supersedes.
        started = time.perf_counter()
        outbox.supersede_claimed(db, rows, at, "bench", at)
        supersede.append(time.perf_counter() - started)
        db.conn.executemany(
            "UPDATE outbox SET status = 'pending', claimed_by = NULL, lease_until = NULL,"
            " last_error = NULL, attempts = 0 WHERE id = ?",
            [(r["id"],) for r in rows],
        )
    db.close()
    return {
        "times": times,
        "wake": wake,
        "supersede": supersede,
        "rss_before": before,
        "pending": pending,
        "due": due,
        "plan": plan,
    }


def drain(args: dict[str, Any]) -> dict[str, Any]:
    """``reminders send-due`` on a backlog where every row is due, to the ``.eml`` transport:
    claim, supersede, render, write a file, record, batch after batch until none is left."""
    from dataclasses import replace

    from notifications.config import load_config
    from notifications.runner import send_due
    from onboarding import clock
    from onboarding.db import connect

    at = clock.parse_time(data.SWEEP_AT)
    env = {"ONBOARDING_MAIL_FROM": "KOMBIT onboarding <onboarding@kombit.bench.example>"}
    config = replace(load_config(Path(args["db"]), env=env), outbox_dir=Path(args["out"]))
    assert config.smtp is None
    db = connect(args["db"])
    from onboarding import outbox

    rows = len(outbox.list_rows(db, ("pending",), until=at))  # planned rows included
    before = _rss_now()
    started = time.perf_counter()
    summary = send_due(db, at, config)
    seconds = time.perf_counter() - started
    left = outbox.counts(db.conn).get("pending", 0)
    db.close()
    files = sum(1 for _ in Path(args["out"]).glob("*.eml"))
    if summary.failed or left or summary.sent + summary.superseded != rows:
        raise RuntimeError(f"drained {rows} rows: {summary.line()}; {left} left pending")
    if files != summary.messages:
        raise RuntimeError(f"{files} .eml files for {summary.messages} messages")
    return {
        "times": [seconds],
        "rss_before": before,
        "rows": rows,
        "messages": summary.messages,
        "superseded": summary.superseded,
    }


# --- 5. delivery --------------------------------------------------------------------------------


def _delivery_setup(path: str) -> int:
    """Leave the reminders pending and due (escalations aside); returns how many."""
    from onboarding import outbox

    conn = sqlite3.connect(path, isolation_level=None)
    outbox.materialise_all(conn)  # planned rows (issue 14) become rows, to be sent
    conn.execute(
        "UPDATE outbox SET status = 'cancelled' WHERE status = 'pending' AND kind != 'reminder'"
    )
    n = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    conn.close()
    return int(n)


def _mail_config(port: int) -> Any:
    from notifications.config import load_config

    env = {
        "ONBOARDING_SMTP_HOST": "127.0.0.1",
        "ONBOARDING_SMTP_PORT": str(port),
        "ONBOARDING_SMTP_SECURITY": "none",
        "ONBOARDING_MAIL_FROM": "KOMBIT onboarding <onboarding@kombit.bench.example>",
    }
    return load_config(None, env=env)


def deliver(args: dict[str, Any]) -> dict[str, Any]:
    """``reminders send-due``: claim, render (Jinja2, .ics), send over SMTP, record."""
    from notifications.runner import send_due
    from onboarding import clock
    from onboarding.db import connect

    n = _delivery_setup(args["db"])
    config = _mail_config(args["port"])
    db = connect(args["db"])
    at = clock.parse_time(args["at"])
    before = _rss_now()
    started = time.perf_counter()
    cpu = time.process_time()
    if args.get("profile"):
        from pyinstrument import Profiler

        prof = Profiler(interval=0.001)
        prof.start()
    summary = send_due(db, at, config)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if args.get("profile"):
        prof.stop()
        Path(args["profile"]).write_text(prof.output_text(unicode=False, color=False))
    db.close()
    if summary.sent != n or summary.messages != n:
        raise RuntimeError(f"sent {summary.sent} of {n}: {summary.line()}")
    return {"times": [seconds], "rss_before": before, "messages": summary.messages, "cpu": cpu}


def deliver_raw(args: dict[str, Any]) -> dict[str, Any]:
    """The same messages, as the engine's run delivered them (recorded by the SMTP server,
    so already rendered), sent with plain ``smtplib`` over one connection.

    With ``db`` (a copy of the delivery database), the floor of a sender that records
    anything: each message is also preceded by one commit marking its outbox row handed over
    (``BEGIN IMMEDIATE``, one ``UPDATE`` by id, ``COMMIT``), the one commit a message that
    ``send-due`` cannot do without (exactly once: the handover is durable before the send)."""
    import smtplib

    messages = []
    with open(args["record"], encoding="utf-8") as f:
        for line in f:
            sender, to, content = json.loads(line)
            body = content.encode("utf-8", "surrogateescape").replace(b"\r\n", b"\n")
            row = re.search(rb"^X-Onboarding-Outbox: (\d+)", body, re.M)
            messages.append((sender, to, body.replace(b"\n", b"\r\n"), int(row[1]) if row else 0))
    conn = None
    if args.get("db"):
        from onboarding.db import connect

        _delivery_setup(args["db"])  # the rows written out, as for the engine's run
        conn = connect(args["db"]).conn  # the engine's pragmas (WAL, synchronous, timeout)
    before = _rss_now()
    started = time.perf_counter()
    cpu = time.process_time()
    smtp = smtplib.SMTP("127.0.0.1", args["port"])
    smtp.ehlo()
    for sender, to, body, row_id in messages:
        if conn is not None:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, handed_at = ? WHERE id = ?",
                ["2021-03-31T12:00:00", row_id],
            )
            conn.execute("COMMIT")
            if cur.rowcount != 1:
                raise RuntimeError(f"no outbox row {row_id} in the floor's database")
        smtp.sendmail(sender, to, body)
    smtp.quit()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {"times": [seconds], "rss_before": before, "messages": len(messages), "cpu": cpu}


# --- 6. reports -----------------------------------------------------------------------------------


def report(args: dict[str, Any]) -> dict[str, Any]:
    """``report rollout [--as-of DAY]`` as a library call (the report and its text table)."""
    from datetime import date

    from onboarding import reports
    from onboarding.db import connect

    db = connect(args["db"])
    as_of = date.fromisoformat(args["as_of"]) if args.get("as_of") else None
    before = _rss_now()
    times = []
    text = ""
    for _ in range(args["reps"]):
        started = time.perf_counter()
        rep = reports.rollout(db, as_of=as_of)
        text = reports.rollout_text(rep)
        times.append(time.perf_counter() - started)
    totals = _report_totals(rep)
    db.close()
    return {"times": times, "rss_before": before, "totals": totals, "lines": text.count("\n")}


def _report_totals(rep: dict[str, Any]) -> dict[str, int]:
    out = {"in_operation": 0, "agreed": 0, "not_agreed": 0}
    for c in rep["categories"]:
        for k in out:
            out[k] += c["total"][k]
    return out


def report_floor(args: dict[str, Any]) -> dict[str, Any]:
    """The floor: the SQL the report cannot do without, hand-written with the definition's
    buckets as constants, and nothing else (no Python per row, no text): the state of each
    track then (its row, or its last history row at or before the date), the most advanced per
    (municipality, system), per system how many uses fall in each bucket, and how many uses
    each system has. Two statements."""
    from onboarding import clock
    from onboarding.db import connect

    db = connect(args["db"])
    conn = db.conn
    defn = data._definition(conn, data.CONNECTION)
    by_rank = {r: [s.name for s in defn.states if defn.bucket_rank(s.name) == r] for r in (1, 2)}
    rank = "CASE WHEN state IN ({}) THEN 2 WHEN state IN ({}) THEN 1 ELSE 0 END".format(
        ", ".join(f"'{n}'" for n in by_rank[2]), ", ".join(f"'{n}'" for n in by_rank[1])
    )
    if args.get("as_of"):
        from datetime import date

        stamp = clock.stamp(clock.end_of_local_day(date.fromisoformat(args["as_of"])))
        states = (
            "SELECT t.municipality_code AS m, t.system_id AS s, h.to_state AS state"
            " FROM (SELECT track_id, max(seq), to_state FROM history WHERE at <= :at"
            " GROUP BY +track_id) h JOIN tracks t ON t.id = h.track_id"
            " WHERE t.definition = 'connection'"
        )
    else:
        stamp = clock.stamp(clock.now())
        states = (
            "SELECT municipality_code AS m, system_id AS s, state FROM tracks NOT INDEXED"
            " WHERE definition = 'connection'"
        )
    buckets = (
        f"WITH best AS (SELECT m, s, max({rank}) AS r FROM ({states}) GROUP BY m, s)"
        " SELECT b.s, b.r, count(*) FROM best b WHERE EXISTS (SELECT 1 FROM contracts c"
        " WHERE c.municipality_code = b.m AND c.system_id = b.s) GROUP BY b.s, b.r"
    )
    uses = "SELECT system_id, count(*) FROM contracts GROUP BY system_id"
    before = _rss_now()
    times = []
    for _ in range(args["reps"]):
        started = time.perf_counter()
        ranked = conn.execute(buckets, {"at": stamp}).fetchall()
        per_system = conn.execute(uses).fetchall()
        times.append(time.perf_counter() - started)
    totals = {
        "in_operation": sum(n for _, r, n in ranked if r == 2),
        "agreed": sum(n for _, r, n in ranked if r == 1),
    }
    totals["not_agreed"] = sum(n for _, n in per_system) - totals["in_operation"] - totals["agreed"]
    db.close()
    return {"times": times, "rss_before": before, "totals": totals}


def design_read(args: dict[str, Any]) -> dict[str, Any]:
    """The report's read at each design (``bench.designs``), on one copy of a national
    database turned from one variant into the next: kept, summary, none, index. ``kept`` is
    what today's report reads now (the counts per system and bucket); the others the bucket
    query over per-state summary rows or track rows."""
    from bench import designs
    from onboarding import clock, reports
    from onboarding.db import connect

    db = connect(args["db"])
    stamp = clock.stamp(clock.end_of_local_day(clock.local_date(clock.now())))
    params: dict[str, Any] = {"d": data.CONNECTION, "at": stamp}
    rank_sql = reports.rank_case(db, reports._Defs(db), params)
    out: dict[str, Any] = {"times": [], "rss_before": _rss_now()}
    results = {}
    for variant in ("kept", "summary", "none", "index"):
        started = time.perf_counter()
        designs.apply(db.conn, variant)
        out[f"setup_{variant}"] = time.perf_counter() - started
        if variant == "kept":
            sql, p, shape = designs.KEPT_QUERY, {}, designs.kept_as_buckets
        else:
            sql, p, shape = designs.bucket_query(variant, rank_sql), params, sorted
        db.conn.execute(sql, p).fetchall()  # warm the cache alike for each
        out[variant] = designs.timed(lambda q=sql, p=p: db.conn.execute(q, p).fetchall(), 3)
        results[variant] = shape(db.conn.execute(sql, p).fetchall())
    db.close()
    if not results["index"] == results["none"] == results["summary"] == results["kept"]:
        raise RuntimeError("the designs give different buckets")
    return out


def design_write(args: dict[str, Any]) -> dict[str, Any]:
    """Single advances (``engine.advance``, one commit each) on one fresh database per
    design, the designs taking turns advance by advance, ``per`` tracks each, ``rounds`` times:
    each track first fires ``agree_date`` (stays in its bucket), then ``approve_agreements``
    (moves to the next bucket), timed apart."""
    from bench import designs
    from onboarding import clock, engine
    from onboarding.db import connect

    act = engine.Act(data.ACTOR, data.ROLE, at=clock.parse_time(data.ADVANCE_AT))
    sets = {"connection_date": data.CONNECTION_DATE}
    dbs = {}
    for variant, path in args["dbs"].items():
        db = connect(path)
        designs.apply(db.conn, variant)
        first = db.conn.execute(
            "SELECT min(id) FROM tracks WHERE definition = 'connection'"
            " AND state = 'date_agreement'"
        ).fetchone()[0]
        dbs[variant] = (db, first)
    steps = (("same", "agree_date", sets), ("moves", "approve_agreements", {}))
    times: dict[str, list[float]] = {f"{v}:{k}": [] for v in dbs for k, _, _ in steps}
    before = _rss_now()
    n = 0
    order = list(dbs.items())
    for r in range(args["rounds"]):
        for kind, trigger, given in steps:
            for k in range(args["per"]):
                # Advance by advance, the designs in turn (the first one rotating), so that
                # the machine's load falls on every design alike.
                turn = (k + r) % len(order)
                for variant, (db, first) in order[turn:] + order[:turn]:
                    started = time.perf_counter()
                    engine.advance(db, first + n + k, trigger, act, given)
                    times[f"{variant}:{kind}"].append(time.perf_counter() - started)
        n += args["per"]
    for db, _ in dbs.values():
        db.close()
    return {"times": [], "rss_before": before, **times}


# --- 7. peers -------------------------------------------------------------------------------------


def peer(args: dict[str, Any]) -> dict[str, Any]:
    from bench import peers

    before = _rss_now()
    out = peers.run(args["peer"], Path(args["db"]), args["n"], args["mode"])
    return {"times": [out["seconds"]], "rss_before": before, "completed": out["completed"]}


def peer_memory(args: dict[str, Any]) -> dict[str, Any]:
    from bench import peers

    before = _rss_now()
    started = time.perf_counter()
    n = peers.transitions_memory(args["n"])
    return {"times": [time.perf_counter() - started], "rss_before": before, "objects": n}


def shape(args: dict[str, Any]) -> dict[str, Any]:
    problems = data.check_shape(Path(args["dir"]))
    return {"times": [], "rss_before": 0, "problems": problems}


CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "bulk": bulk,
    "bulk_floor": bulk_floor,
    "single": single,
    "sweep": sweep,
    "deliver": deliver,
    "drain": drain,
    "deliver_raw": deliver_raw,
    "report": report,
    "report_floor": report_floor,
    "design_read": design_read,
    "design_write": design_write,
    "peer": peer,
    "peer_memory": peer_memory,
    "shape": shape,
}


def main() -> None:
    case, raw = sys.argv[1], sys.argv[2]
    args = json.loads(raw)
    os.environ.setdefault("ONBOARDING_NOW", args.get("now", data.ADVANCE_AT))
    out = CASES[case](args)
    out["rss_peak"] = _peak()
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip tearing down what was measured (10^5 machines take seconds to free)


if __name__ == "__main__":
    main()
