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

Each sweep records a heartbeat in the database before it starts and what it did when it
finishes (``onboarding.health``): the web page's ``/readyz`` and ``/metrics`` run in another
process and learn from these rows that reminders are flowing. Each sweep logs its events
(``claim``, ``send``, ``failure``) through ``onboarding.logs``.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from notifications.config import Config
from notifications.runner import Outcome, SendSummary, send_due
from onboarding import health, outbox
from onboarding.db import open_existing
from onboarding.logs import event

TIMEZONE = ZoneInfo("Europe/Copenhagen")
JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
log = logging.getLogger("onboarding.scheduler")


class Sweeper:
    """The job: open the database, send what is due, plan the next wake-up."""

    def __init__(
        self, db_path: Path, config: Config, scheduler: BaseScheduler, interval: float = 60.0
    ) -> None:
        self.db_path = db_path
        self.config = config
        self.scheduler = scheduler
        self.interval = interval
        #: Held while a sweep runs, so stopping can wait for it (``stop``).
        self.busy = threading.Lock()
        self.runs = 0
        self.last: SendSummary | None = None

    def sweep(self) -> SendSummary | None:
        with self.busy:
            return self._sweep()

    def _sweep(self) -> SendSummary | None:
        # A fresh connection per run: SQLite connections stay in the thread that made them.
        db = open_existing(self.db_path)
        try:
            # Alive before the work: a sweep that hangs on a slow server still beat once.
            health.beat(db, self.interval)
            self.last = summary = send_due(db, None, self.config)
            self.runs += 1
            self.log_summary(summary)
            health.record_sweep(db, _sweep_counts(summary))
            self.plan_wake(outbox.next_due(db))
        except Exception as exc:  # keep the daemon alive; the next sweep tries again
            event(log, "failure", logging.ERROR, exc_info=True, what="sweep", error=repr(exc))
            return None
        finally:
            db.close()
        return summary

    def log_summary(self, summary: SendSummary) -> None:
        """One event for the claim, one per message sent or failed, one for trouble."""
        if summary.claimed or summary.reclaimed:
            event(log, "claim", claimed=summary.claimed, reclaimed=summary.reclaimed)
        for outcome in summary.outcomes:
            _log_outcome(outcome)
        trouble = summary.trouble()
        if trouble is not None:  # the next sweep tries again; say why this one fell short
            event(log, "failure", logging.WARNING, what="sweep", error=trouble)
        if summary.claimed or summary.reclaimed:
            event(log, "sweep", summary=summary.line())

    def plan_wake(self, due: datetime | None) -> None:
        """Schedule the ``wake`` job at ``due`` when that is before the next regular sweep."""
        if due is None or self.scheduler.state == STATE_STOPPED:
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


def _sweep_counts(summary: SendSummary) -> dict[str, int]:
    return {
        "sent": summary.sent,
        "retrying": summary.retrying,
        "failed": summary.failed,
        "cancelled": summary.cancelled,
        "superseded": summary.superseded,
    }


def _log_outcome(outcome: Outcome) -> None:
    # The number of recipients, not their addresses: logs travel further than the database.
    fields: dict[str, Any] = {
        "row": outcome.id,
        "status": outcome.status,
        "recipients": len(outcome.to),
    }
    # A row left pending or failed after an attempt (a cancelled row's error is its reason).
    if outcome.status in ("failed", "pending", "lost") and outcome.error:
        event(log, "failure", logging.WARNING, what="send", error=outcome.error, **fields)
    else:
        event(log, "send", message_id=outcome.message_id, reason=outcome.error, **fields)


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
    sweeper = Sweeper(db_path, config, scheduler, interval)
    scheduler.add_job(
        sweeper.sweep,
        "interval",
        seconds=interval,
        id="sweep",
        name="send due notifications",
        next_run_time=datetime.now(TIMEZONE),
    )
    return scheduler, sweeper


def stop(scheduler: BaseScheduler, sweeper: Sweeper) -> None:
    """Stop the scheduler and wait for the sweep in progress to finish and record itself.

    Not ``shutdown(wait=True)``: APScheduler 3 holds its job store lock while it waits for the
    running jobs, and a sweep that then plans its wake-up (``get_job``) waits for that lock:
    a deadlock until SIGKILL. So: no new sweeps, then wait on the sweep's own lock."""
    if scheduler.state != STATE_STOPPED:
        scheduler.shutdown(wait=False)
    with sweeper.busy:
        pass


def run(db_path: Path, config: Config, interval: float = 60.0) -> None:
    """Run until SIGTERM or SIGINT; the sweep in progress finishes first."""
    scheduler, sweeper = build_scheduler(db_path, config, interval)
    stopper: threading.Thread | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # The handler interrupts the main thread wherever it is, perhaps holding a lock that
        # stopping needs (the executor's, the job store's): another thread does the stopping.
        nonlocal stopper
        if stopper is None:
            event(log, "stop", signal=signal.Signals(signum).name, message="finishing the sweep")
            stopper = threading.Thread(target=stop, args=(scheduler, sweeper), name="stop")
            stopper.start()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        event(log, "start", mail=config.describe(), interval=interval)
        scheduler.start()  # returns once stopped
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if stopper is not None:
            stopper.join()
        stop(scheduler, sweeper)  # also after an error in start(); waits for the sweep
    event(log, "stop", message="scheduler stopped")


def next_wake(db_path: Path) -> datetime | None:
    """The next time anything in the outbox falls due (for status displays)."""
    db = open_existing(db_path)
    try:
        return outbox.next_due(db)
    finally:
        db.close()


__all__ = [
    "JOB_DEFAULTS",
    "TIMEZONE",
    "Sweeper",
    "build_scheduler",
    "next_wake",
    "run",
    "stop",
]
