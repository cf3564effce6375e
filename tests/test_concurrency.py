"""Concurrency: several processes advance the same tracks and send reminders at once (issue 5).

Four worker processes each try to fire ``agree_date`` on the same 40 tracks (in different
orders) with ``--expect-version 1``, while two more run ``reminders send-due`` over and over.
Every transition applies at most once (exactly one winner per track), every loser gets the
stale-version error (exit 2), nothing dies of "database is locked" (WAL, a 30 s busy timeout
and ``BEGIN IMMEDIATE`` for every read-modify-write), each notification is sent at most once,
and afterwards the file, the replay of every track and the hash chain are sound.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import reliability as rel

TRACKS = 40
ADVANCERS = 4
SENDERS = 2
SEND_AT = "2021-06-01T12:00"


def _spawn(folder: Path, name: str, commands: list[list[str]], db_path: Path) -> tuple[
    subprocess.Popen[bytes], Path
]:
    job = folder / f"{name}.json"
    job.write_text(json.dumps({"go": str(folder / "go"), "commands": commands}), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.workers", str(job)],
        cwd=rel.ROOT,
        env=rel.env(db_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, job


@pytest.fixture
def busy_db(tmp_path: Path) -> tuple[Path, list[int]]:
    path = tmp_path / "busy.db"
    rel.init(path)
    rel.add_contacts(path)
    return path, rel.start_connections(path, TRACKS)


def test_concurrency_each_transition_applies_once_and_losers_get_stale_version(
    busy_db: tuple[Path, list[int]], tmp_path: Path
) -> None:
    """Overlapping advances with --expect-version and concurrent reminder runs: one winner
    per track, stale-version errors for the rest, no "database is locked", no double send."""
    db_path, ids = busy_db
    db = ["--db", str(db_path)]
    workers = []
    for w in range(ADVANCERS):
        order = ids[:]
        random.Random(w).shuffle(order)
        commands = [
            ["track", "advance", str(t), "agree_date", "--expect-version", "1", "--set",
             f"connection_date=2027-0{w + 1}-01", "--actor", f"worker-{w}", *db]
            for t in order
        ]
        workers.append(_spawn(tmp_path, f"advance-{w}", commands, db_path))
    for s in range(SENDERS):
        commands = [["reminders", "send-due", "--at", SEND_AT, "--json", *db]] * 6
        workers.append(_spawn(tmp_path, f"send-{s}", commands, db_path))
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.ready"))) < len(workers) and time.monotonic() < deadline:
        time.sleep(0.01)  # every worker has imported everything: start them together
    (tmp_path / "go").touch()
    results: dict[str, list[dict[str, Any]]] = {}
    for proc, job in workers:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        results[job.stem] = json.loads(Path(f"{job}.out").read_text(encoding="utf-8"))
    every = [r for rs in results.values() for r in rs]
    assert not [r for r in every if "locked" in r["stdout"] + r["stderr"]]
    assert not [r for r in every if r["exception"]]
    winners: dict[int, list[str]] = {t: [] for t in ids}
    for w in range(ADVANCERS):
        for r in results[f"advance-{w}"]:
            track = int(r["args"][2])
            if r["code"] == 0:
                winners[track].append(f"worker-{w}")
            else:
                assert r["code"] == 2, r
                assert f"track #{track} changed since you read it" in r["stderr"], r
    assert all(len(w) == 1 for w in winners.values()), winners
    state = rel.check_consistent(db_path)
    assert state["history"] == 2 * TRACKS
    rows = rel.table_dump(db_path, "SELECT track_id, actor, fields FROM history WHERE seq = 2")
    assert {t: [a] for t, a, _ in rows} == winners
    # Reminders: what the runs say they sent is what the outbox holds, each once.
    sent_by_runs = [
        o["id"]
        for s in range(SENDERS)
        for r in results[f"send-{s}"]
        for o in json.loads(r["stdout"])["outcomes"]
        if o["status"] == "sent"
    ]
    assert all(r["code"] == 0 for s in range(SENDERS) for r in results[f"send-{s}"])
    assert len(sent_by_runs) == len(set(sent_by_runs))
    sent = {i for (i,) in rel.table_dump(db_path, "SELECT id FROM outbox WHERE status = 'sent'")}
    assert set(sent_by_runs) == sent
    outbox = db_path.with_name(f"{db_path.stem}-outbox")
    assert len(list(outbox.glob("*.eml"))) == len(sent)
    assert "sending" not in state["outbox"]


def test_concurrency_a_writer_that_never_lets_go_gives_a_clear_error(db_path: Path) -> None:
    """BEGIN IMMEDIATE is retried a bounded number of times (each waiting the busy timeout,
    here shortened), then refused in words, not with "database is locked"."""
    import sqlite3

    from onboarding.db import LOCK_ATTEMPTS, DatabaseBusy, begin_immediate

    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(db_path, timeout=0.05, isolation_level=None)
    try:
        with pytest.raises(DatabaseBusy, match="stayed busy") as caught:
            begin_immediate(waiter)
        assert "locked" in str(caught.value.__cause__)
        assert not waiter.in_transaction
        holder.execute("COMMIT")
        begin_immediate(waiter)  # free again: the first attempt succeeds
        assert waiter.in_transaction and LOCK_ATTEMPTS >= 2
        waiter.execute("ROLLBACK")
    finally:
        holder.close()
        waiter.close()
