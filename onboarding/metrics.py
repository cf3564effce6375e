"""What ``/metrics`` reports, counted from the database, and its Prometheus families.

Every figure here is read from the database at scrape time, not counted in a process: the web
page, the scheduler and cron's ``reminders send-due`` are separate processes, and only the
database sees all of their work. ``counts`` is the plain library answer (also usable from a
test or a script); ``DatabaseCollector`` turns it into Prometheus gauges. Labels carry
definition, state and status *keys*: a metric is read by a machine, never shown to a person.

A scrape reads each of the two tables once; ``bench/metrics_scrape.py`` measures it against
scanning both (docs/operations.md has the figures: 18 ms at 10^4 rows each, seconds at 10^6).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from onboarding import clock, health
from onboarding.db import Database, connect

#: Every outbox status, so a status with no rows still reports 0 (an alert on "failed > 0"
#: needs the series to exist).
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "cancelled", "superseded")


@dataclass
class Counts:
    """One reading of the database."""

    tracks: dict[tuple[str, str], int] = field(default_factory=dict)
    overdue: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    #: Seconds since the oldest pending (or in-flight) notification fell due; 0 when none is.
    oldest_pending_age: float = 0.0
    #: Pending notifications whose last attempt failed and that wait for a retry.
    retrying: int = 0
    heartbeat_at: datetime | None = None
    last_sweep: health.Sweep | None = None


def counts(db: Database, now: datetime | None = None) -> Counts:
    """Tracks by definition and state, open overdue tracks by definition, outbox rows by status,
    the oldest due notification's age, and the scheduler's last heartbeat and sweep."""
    moment = now or clock.now()
    today = clock.local_date(moment).isoformat()
    out = Counts()
    # One pass over each table (bench/metrics_scrape.py): the overdue count rides along with
    # the count by state instead of looking up every open track's definition by its due date.
    rows = db.execute(
        "SELECT definition, state, count(*), sum(final = 0 AND due IS NOT NULL AND due < ?)"
        " FROM tracks GROUP BY 1, 2",
        [today],
    ).fetchall()
    for definition, state, n, late in rows:
        out.tracks[(definition, state)] = n
        if late:
            out.overdue[definition] = out.overdue.get(definition, 0) + late
    out.outbox = dict.fromkeys(OUTBOX_STATUSES, 0)
    oldest: str | None = None
    rows = db.execute(
        "SELECT status, count(*),"
        " min(CASE WHEN status IN ('pending', 'sending') AND due_at <= ? THEN due_at END),"
        " sum(status = 'pending' AND attempts > 0 AND last_error IS NOT NULL)"
        " FROM outbox GROUP BY 1",
        [clock.stamp(moment)],
    ).fetchall()
    for status, n, due, retrying in rows:
        out.outbox[status] = n
        out.retrying += retrying or 0
        if due is not None and (oldest is None or due < oldest):
            oldest = due
    if oldest:
        out.oldest_pending_age = max(0.0, (moment - clock.unstamp(oldest)).total_seconds())
    beat = health.last_beat(db)
    out.heartbeat_at = beat.at if beat else None
    out.last_sweep = health.last_sweep(db)
    return out


def families(c: Counts) -> Iterator[Metric]:
    """The Prometheus families of one reading (names prefixed ``onboarding_``)."""
    tracks = GaugeMetricFamily(
        "onboarding_tracks", "Tracks by definition and state.", labels=["definition", "state"]
    )
    for (definition, state), n in sorted(c.tracks.items()):
        tracks.add_metric([definition, state], n)
    yield tracks
    overdue = GaugeMetricFamily(
        "onboarding_tracks_overdue",
        "Open tracks whose due date has passed, by definition.",
        labels=["definition"],
    )
    for definition in sorted({d for d, _ in c.tracks} | set(c.overdue)):
        overdue.add_metric([definition], c.overdue.get(definition, 0))
    yield overdue
    outbox = GaugeMetricFamily(
        "onboarding_outbox_rows", "Notifications in the outbox by status.", labels=["status"]
    )
    for status, n in sorted(c.outbox.items()):
        outbox.add_metric([status], n)
    yield outbox
    yield GaugeMetricFamily(
        "onboarding_outbox_oldest_pending_age_seconds",
        "Seconds since the oldest notification still waiting to be sent fell due (0: none).",
        value=c.oldest_pending_age,
    )
    yield GaugeMetricFamily(
        "onboarding_outbox_retrying",
        "Notifications whose last attempt failed, waiting for a retry.",
        value=c.retrying,
    )
    yield from _scheduler_families(c)


def _scheduler_families(c: Counts) -> Iterator[Metric]:
    # Absent (no sample) rather than 0 when never recorded: 0 would read as "1970".
    beat = GaugeMetricFamily(
        "onboarding_scheduler_heartbeat_timestamp_seconds",
        "When the scheduler last showed it was alive (Unix time).",
    )
    if c.heartbeat_at is not None:
        beat.add_metric([], c.heartbeat_at.timestamp())
    yield beat
    sweep = GaugeMetricFamily(
        "onboarding_scheduler_last_sweep_timestamp_seconds",
        "When the scheduler last finished a sweep (Unix time).",
    )
    outcomes = GaugeMetricFamily(
        "onboarding_scheduler_last_sweep_notifications",
        "What the last finished sweep did, by outcome (failed: send failures given up;"
        " retrying: send failures to retry).",
        labels=["outcome"],
    )
    if c.last_sweep is not None:
        sweep.add_metric([], c.last_sweep.at.timestamp())
        for outcome, n in sorted(c.last_sweep.counts.items()):
            outcomes.add_metric([outcome], n)
    yield sweep
    yield outcomes


class DatabaseCollector(Collector):
    """A Prometheus collector that reads the database at ``path`` at every scrape."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        # A connection per scrape: scrapes run in worker threads, and SQLite connections stay
        # in the thread that made them.
        db = connect(self.path)
        try:
            reading = counts(db)
        finally:
            db.close()
        yield from families(reading)


__all__ = ["OUTBOX_STATUSES", "Counts", "DatabaseCollector", "counts", "families"]
