"""``onboarding scheduler``: the long-running clock that sends due notifications."""

from __future__ import annotations

import sys

import click

from onboarding.commands.common import (
    Group,
    _mail_config,
    database,
    db_option,
    log_format_option,
    say,
)
from onboarding.commands.replicate import echo_event, replicate_to_option


@click.group(cls=Group)
def scheduler() -> None:
    """The long-running sender: wakes when a notification falls due and sends it.

    Example:

        onboarding scheduler run --db onboarding.db
    """


@scheduler.command("run")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds between regular sweeps (it also wakes at the next due notification).",
)
@log_format_option
@replicate_to_option
@db_option
def scheduler_run(
    interval: float, log_format: str, replicate_to: str | None, db_path: str | None
) -> None:
    """Run the scheduler until SIGTERM or Ctrl-C (the sweep in progress finishes first).

    Safe next to a cron 'reminders send-due' and after downtime: overdue notifications go out
    once each, in due order.

    Example:

    \b
        onboarding scheduler run --db onboarding.db --interval 60
        onboarding scheduler run --db onboarding.db --replicate-to s3://backups/onboarding
    """
    import logging

    from notifications.scheduler import run
    from onboarding import logs
    from onboarding.db import resolve_path

    with database(db_path) as db:  # fails early on a missing or old database
        config = _mail_config(db_path, db)
    fmt = logs.FORMATS[logs.FORMATS.index(log_format)]
    logs.setup(fmt, stream=sys.stderr)
    # APScheduler says "Running job ..." at every sweep; our own events say what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    from onboarding.replication import supervising

    path = resolve_path(db_path)
    events = echo_event if fmt == "text" else logs.line_events("onboarding.replication")
    with supervising(path, replicate_to, events=events):
        if fmt == "text":  # in JSON every line on stderr is an event (the start event says this)
            click.echo(f"scheduler: {say(config.describe())}", err=True)
        run(path, config, interval)
