"""``onboarding scheduler run``: APScheduler 3 as the clock that wakes the sender.

The outbox table is the record of what must be sent; the scheduler keeps nothing that matters.
Its job store is in memory, and it runs two jobs that call the same sweep
(``runner.send_due``):

* ``sweep``: every ``interval`` seconds, starting at once (so a runner that was down catches up);
* ``wake``: a one-off job at the next due notification (or lease expiry), re-planned after each
  sweep, so a reminder due at 08:00 goes out at 08:00 and not up to an interval later.

Both use ``coalesce=True`` (missed runs collapse into one), ``max_instances=1`` and
``misfire_grace_time=None`` (a late run still runs, however late). A lost or duplicated wake-up
is harmless: the claim step is safe on its own, and any number of sweepers may run.
SIGTERM and SIGINT shut down cleanly: the sweep in progress finishes and records its results.
"""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from notifications.config import Config
from notifications.runner import SendSummary, send_due
from onboarding import outbox
from onboarding.db import open_existing

TIMEZONE = ZoneInfo("Europe/Copenhagen")
JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
log = logging.getLogger("onboarding.scheduler")


class Sweeper:
    """The job: open the database, send what is due, plan the next wake-up."""

    def __init__(self, db_path: Path, config: Config, scheduler: BaseScheduler) -> None:
        self.db_path = db_path
        self.config = config
        self.scheduler = scheduler
        self.runs = 0
        self.last: SendSummary | None = None

    def sweep(self) -> SendSummary | None:
        # A fresh connection per run: SQLite connections stay in the thread that made them.
        db = open_existing(self.db_path)
        try:
            self.last = summary = send_due(db, None, self.config)
            self.runs += 1
            if summary.claimed or summary.reclaimed:
                log.info("%s", summary.line())
            trouble = summary.trouble()
            if trouble is not None:  # the next sweep tries again; say why this one fell short
                log.warning("%s", trouble)
            self.plan_wake(outbox.next_due(db))
        except Exception:  # keep the daemon alive; the next sweep tries again
            log.exception("sweep failed")
            return None
        finally:
            db.close()
        return summary

    def plan_wake(self, due: datetime | None) -> None:
        """Schedule the ``wake`` job at ``due`` when that is before the next regular sweep."""
        if due is None:
            return
        now = datetime.now(UTC)
        sweep = self.scheduler.get_job("sweep")
        next_sweep = getattr(sweep, "next_run_time", None) if sweep else None
        if due <= now or (next_sweep is not None and due >= next_sweep):
            return
        self.scheduler.add_job(
            self.sweep,
            "date",
            run_date=due.astimezone(TIMEZONE),
            id="wake",
            name="wake at next due notification",
            replace_existing=True,
        )


def build_scheduler(
    db_path: Path,
    config: Config,
    interval: float = 60.0,
    scheduler_class: type[BaseScheduler] = BlockingScheduler,
) -> tuple[BaseScheduler, Sweeper]:
    """A scheduler (Europe/Copenhagen, in-memory store, one worker) with the sweep job."""
    scheduler = scheduler_class(
        timezone=TIMEZONE,
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults=dict(JOB_DEFAULTS),
    )
    sweeper = Sweeper(db_path, config, scheduler)
    scheduler.add_job(
        sweeper.sweep,
        "interval",
        seconds=interval,
        id="sweep",
        name="send due notifications",
        next_run_time=datetime.now(TIMEZONE),
    )
    return scheduler, sweeper


def run(db_path: Path, config: Config, interval: float = 60.0) -> None:
    """Run until SIGTERM or SIGINT; the sweep in progress finishes first."""
    scheduler, _ = build_scheduler(db_path, config, interval)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        log.info("%s: finishing the current sweep and stopping", signal.Signals(signum).name)
        scheduler.shutdown(wait=True)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("scheduler started: %s; sweeping every %ss", config.describe(), interval)
        scheduler.start()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info("scheduler stopped")


def next_wake(db_path: Path) -> datetime | None:
    """The next time anything in the outbox falls due (for status displays)."""
    db = open_existing(db_path)
    try:
        return outbox.next_due(db)
    finally:
        db.close()


__all__ = ["JOB_DEFAULTS", "TIMEZONE", "Sweeper", "build_scheduler", "next_wake", "run"]
