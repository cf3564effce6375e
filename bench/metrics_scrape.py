"""What a /metrics scrape costs as the outbox and the tracks grow.

    .venv/bin/python -m bench.metrics_scrape [--sizes 10000,100000,1000000] [--runs 5]

For each size N it makes a fresh database (``onboarding init``), writes N tracks and N outbox
rows with plain SQL (statuses and due times spread like a long-running programme), and times
``onboarding.metrics.counts`` (every figure /metrics reads from the database) against the floor
of reading every row of the same two tables once (a full scan of each, no grouping). It prints
the medians and their ratio. Not a timed test; numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STATUSES = ("sent",) * 14 + ("pending", "failed", "cancelled", "superseded")


def _fill(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = OFF")  # bench data: tracks without registry rows
    stamp = "2021-{:02d}-{:02d}T08:00:00.000000Z"
    conn.executemany(
        "INSERT INTO tracks (id, definition, def_version, subject_key, state, final, version,"
        " entered_at, due, created_at, updated_at) VALUES (?, ?, 1, ?, ?, ?, 1, ?, ?, ?, ?)",
        (
            (
                i,
                ("connection", "system-readiness", "klik-task")[i % 3],
                f"bench-{i}",
                ("agreed", "sapa_request", "connected", "development")[i % 4],
                int(i % 4 == 2),
                stamp.format(1 + i % 12, 1 + i % 28),
                f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}",
                stamp.format(1, 1),
                stamp.format(1, 1),
            )
            for i in range(1, n + 1)
        ),
    )
    conn.executemany(
        "INSERT INTO outbox (track_id, entry_seq, state, notification, kind, template,"
        " recipients, on_leave, due_at, status, next_attempt_at, created_at, updated_at)"
        " VALUES (?, 1, 'agreed', 'reminder', 'reminder', 't', '[]', 'keep', ?, ?, ?, ?, ?)",
        (
            (
                i,
                stamp.format(1 + i % 12, 1 + i % 28),
                STATUSES[i % len(STATUSES)],
                stamp.format(1 + i % 12, 1 + i % 28),
                stamp.format(1, 1),
                stamp.format(1, 1),
            )
            for i in range(1, n + 1)
        ),
    )
    conn.commit()
    conn.close()


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm the page cache: a scrape every 15 s finds it warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _measure(path: Path, runs: int) -> tuple[float, float]:
    """(floor, scrape) medians in ms: reading every row of both tables once, and ``counts``."""
    from onboarding import metrics
    from onboarding.db import open_existing

    db = open_existing(path)
    try:
        floor = _median_ms(
            lambda: (
                db.execute("SELECT max(status), max(due_at) FROM outbox NOT INDEXED").fetchone(),
                db.execute("SELECT max(state), max(due) FROM tracks NOT INDEXED").fetchone(),
            ),
            runs,
        )
        return floor, _median_ms(lambda: metrics.counts(db), runs)
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    from onboarding.db import connect, initialise

    print(f"{'rows':>9}  {'floor ms':>9}  {'counts ms':>9}  {'ratio':>6}")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder:
            path = Path(folder) / "onboarding.db"
            fresh = connect(path)
            initialise(fresh)
            fresh.close()
            _fill(path, n)
            floor, scrape = _measure(path, args.runs)
        print(f"{n:>9}  {floor:>9.1f}  {scrape:>9.1f}  {scrape / floor:>6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
