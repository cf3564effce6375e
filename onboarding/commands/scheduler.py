"""``onboarding scheduler``: the long-running clock that sends due notifications."""

from __future__ import annotations

import sys

import click

from onboarding.commands.common import (
    Group,
    _mail_config,
    database,
    db_option,
)


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
@db_option
def scheduler_run(interval: float, db_path: str | None) -> None:
    """Run the scheduler until SIGTERM or Ctrl-C (the sweep in progress finishes first).

    Safe next to a cron 'reminders send-due' and after downtime: overdue notifications go out
    once each, in due order.

    Example:

        onboarding scheduler run --db onboarding.db --interval 60
    """
    import logging

    from notifications.scheduler import run
    from onboarding.db import resolve_path

    with database(db_path) as db:  # fails early on a missing or old database
        config = _mail_config(db_path, db)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    click.echo(f"scheduler: {config.describe()}", err=True)
    run(resolve_path(db_path), config, interval)
