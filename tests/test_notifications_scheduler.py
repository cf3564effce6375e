"""The scheduler is only a clock: its settings, its wake-up planning, and a clean daemon stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlite_utils import Database

from notifications.config import load_config
from notifications.scheduler import build_scheduler
from onboarding import clock, outbox
from tests.notify_support import connection_to_sapa, make_ready, statuses

pytestmark = pytest.mark.usefixtures("no_mail_env")
ROOT = Path(__file__).resolve().parent.parent


def test_scheduler_is_a_clock_with_safe_job_settings(db_path: Path) -> None:
    """Europe/Copenhagen, an in-memory store, and a sweep that coalesces missed runs, never
    overlaps itself and is never dropped for being late."""
    config = load_config(db_path, env={})
    scheduler, _ = build_scheduler(db_path, config, interval=60)
    assert isinstance(scheduler, BlockingScheduler)
    assert scheduler.timezone == ZoneInfo("Europe/Copenhagen")
    assert isinstance(scheduler._jobstores["default"], MemoryJobStore)
    # The same settings, started paused in the background so the job gets its final form.
    background, _ = build_scheduler(db_path, config, 60, scheduler_class=BackgroundScheduler)
    background.start(paused=True)
    try:
        job = background.get_job("sweep")
        assert job is not None
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval == timedelta(seconds=60)
        assert job.next_run_time <= datetime.now(UTC)  # the first sweep runs at once
    finally:
        background.shutdown(wait=False)


def test_scheduler_wakes_at_the_next_due_notification(db: Database, db_path: Path) -> None:
    """After a sweep, a one-off wake-up is planned at the earliest pending row when that comes
    before the next regular sweep (nothing runs here: the scheduler is paused)."""
    make_ready(db)
    tid = connection_to_sapa(db)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    outbox.materialise_all(db.conn)  # planned rows (issue 14) become rows to be poked at
    db.conn.execute("UPDATE outbox SET next_attempt_at = '2999-01-01T00:00:00.000000Z'")
    db.conn.execute(
        "UPDATE outbox SET next_attempt_at = ? WHERE track_id = ? AND notification = 'reminder'"
        " AND state = 'sapa_request'",
        [clock.stamp(soon), tid],
    )
    scheduler, sweeper = build_scheduler(
        db_path, load_config(db_path, env={}), interval=3600, scheduler_class=BackgroundScheduler
    )
    scheduler.start(paused=True)
    try:
        # As when the scheduler runs the sweep: the job's next run has already moved on.
        scheduler.modify_job("sweep", next_run_time=datetime.now(UTC) + timedelta(hours=1))
        summary = sweeper.sweep()
        assert summary is not None and summary.claimed == 0
        wake = scheduler.get_job("wake")
        assert wake is not None and wake.next_run_time == soon
        assert outbox.next_due(db) == soon
        # Nothing due before the next sweep: no wake-up job is planned.
        scheduler.remove_job("wake")
        sweeper.plan_wake(datetime.now(UTC) + timedelta(hours=2))
        assert scheduler.get_job("wake") is None
    finally:
        scheduler.shutdown(wait=False)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_scheduler_run_sends_what_is_due_and_stops_cleanly(
    db: Database, db_path: Path, signum: int
) -> None:
    """'scheduler run' sweeps at once (a runner that was down catches up), sends each due row
    once, and exits 0 on SIGTERM or SIGINT after finishing the sweep."""
    make_ready(db)
    connection_to_sapa(db)
    due = len(outbox.list_rows(db, ("pending",), until=datetime.now(UTC)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "scheduler", "run", "--db", str(db_path),
         "--interval", "30"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # blocks until the daemon reports its first sweep
            lines.append(line)
            if "sent " in line:
                break
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert "scheduler stopped" in log
    done = statuses(db)
    assert done.get("sent", 0) + done.get("failed", 0) + done.get("superseded", 0) == due
    eml = list((db_path.parent / "onboarding-outbox").glob("*.eml"))
    assert len(eml) == statuses(db)["sent"] >= 1
