"""``onboarding serve``: the web page."""

from __future__ import annotations

import os
import sys

import click

from onboarding.commands.common import (
    db_option,
    log_format_option,
)
from onboarding.commands.replicate import echo_event, replicate_to_option


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback by default: only this machine can connect).",
)
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--scheduler-max-age",
    type=click.FloatRange(min=1),
    envvar="ONBOARDING_SCHEDULER_MAX_AGE",
    default=None,
    metavar="SECONDS",
    help="/readyz fails when the scheduler's last heartbeat is older than this (default: the"
    " scheduler is not checked). Give a few times its --interval.",
)
@log_format_option
@replicate_to_option
@db_option
def serve_cmd(
    host: str,
    port: int,
    scheduler_max_age: float | None,
    log_format: str,
    replicate_to: str | None,
    db_path: str | None,
) -> None:
    """Start the coordinators' web page over the database (login with an actor's password).

    The page uses the same engine as these commands: grid, tracks, bulk actions, imports,
    reports and notifications. Log in as an actor with a password
    ('onboarding actor add NAME --password-stdin').
    Sessions are signed with $ONBOARDING_WEB_SECRET, else a random secret per start.

    /healthz, /readyz and /metrics need no login; /metrics answers other machines only with
    'Authorization: Bearer $ONBOARDING_METRICS_TOKEN' (docs/operations.md).

    Example:

    \b
        onboarding serve --db demo-output/onboarding.db --port 8000
        onboarding serve --db /srv/data/onboarding.db --replicate-to /srv/replica/onboarding
    """
    import uvicorn

    from onboarding.db import resolve_path
    from onboarding.web import create_app

    path = resolve_path(db_path)
    app = create_app(path, secret=os.environ.get("ONBOARDING_WEB_SECRET") or None)
    fmt = _configure_ops(app, scheduler_max_age, log_format)
    from onboarding import logs
    from onboarding.replication import supervising

    events = echo_event if fmt == "text" else logs.line_events("onboarding.replication")
    with supervising(path, replicate_to, events=events):
        click.echo(f"Serving {path} on http://{host}:{port}/ (Ctrl+C stops)")
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            server_header=False,
            log_config=None,  # uvicorn's own records go through our handler (onboarding.logs)
        )


def _configure_ops(app: object, scheduler_max_age: float | None, log_format: str) -> str:
    """Logging on stderr in the chosen format, and the health and metrics settings; returns
    the format."""
    from datetime import timedelta

    from onboarding import logs
    from onboarding.web.views import ops

    fmt = logs.FORMATS[logs.FORMATS.index(log_format)]
    logs.setup(fmt, stream=sys.stderr)
    limit = timedelta(seconds=scheduler_max_age) if scheduler_max_age else None
    token = os.environ.get(ops.METRICS_TOKEN_ENV) or None
    ops.configure(app, ops.OpsSettings(heartbeat_limit=limit, metrics_token=token))  # type: ignore[arg-type]
    return fmt
