"""``onboarding replicate``, and the ``--replicate-to`` option of ``serve`` and ``scheduler run``
(continuous replication with Litestream: onboarding.replication, docs/replication.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from onboarding.commands.common import db_option

F = TypeVar("F", bound=Callable[..., Any])

TARGET_HELP = (
    "a folder (file:///FOLDER) or s3://BUCKET/PATH[?endpoint=URL&region=R] for any "
    "S3-compatible store, with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
)


def replicate_to_option(func: F) -> F:
    """``--replicate-to``: run Litestream beside a long-running command."""
    return click.option(
        "--replicate-to",
        "replicate_to",
        envvar="ONBOARDING_REPLICATE_TO",
        default=None,
        metavar="URL_OR_DIR",
        help="Replicate the database continuously while this runs (restarted if it dies, "
        f"stopped with it): {TARGET_HELP}. Default: $ONBOARDING_REPLICATE_TO.",
    )(func)


def echo_event(line: str) -> None:
    click.echo(line, err=True)


@click.command("replicate")
@click.option(
    "--to", "to", required=True, metavar="URL_OR_DIR", help=f"The replica: {TARGET_HELP}."
)
@click.option(
    "--sync-interval",
    default=None,
    metavar="DURATION",
    help="How often Litestream ships new commits to the replica (Go duration: 250ms, 1s, 10s). "
    "Default: 250ms to a folder, 1s to S3 (each sync is one request).",
)
@click.option(
    "--retention",
    default="168h",
    show_default=True,
    metavar="DURATION",
    help="How far back a point-in-time restore (restore --from-replica --at) can reach.",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the Litestream configuration this would run with, and exit.",
)
@db_option
def replicate_cmd(
    to: str, sync_interval: str | None, retention: str, print_config: bool, db_path: str | None
) -> None:
    """Replicate the database continuously to a folder or an S3 bucket, until SIGTERM or Ctrl-C.

    Runs Litestream (shipped with this tool) with a generated configuration; if it dies it is
    started again. About a quarter of a second of commits is at risk to a folder, a second to
    S3; see docs/replication.md. Restore with 'onboarding restore --from-replica'.

    Example:

        onboarding replicate --to /srv/replica/onboarding --db /srv/data/onboarding.db
    """
    from onboarding import replication
    from onboarding.db import resolve_path

    path = resolve_path(db_path)
    target = replication.replica_target(to)
    if print_config:
        click.echo(
            replication.config_text(path, target, sync_interval=sync_interval, retention=retention),
            nl=False,
        )
        return
    supervisor = replication.Supervisor(
        path, target, sync_interval=sync_interval, retention=retention, events=echo_event
    )
    # The supervisor says "replication started: DB -> REPLICA (litestream pid N)" once it runs.
    replication.run_until_stopped(supervisor)
    sys.stderr.flush()
