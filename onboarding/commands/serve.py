"""``onboarding serve``: the web page."""

from __future__ import annotations

import os

import click

from onboarding.commands.common import (
    db_option,
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
@replicate_to_option
@db_option
def serve_cmd(host: str, port: int, replicate_to: str | None, db_path: str | None) -> None:
    """Start the coordinators' web page over the database (login with an actor's password).

    The page uses the same engine as these commands: grid, tracks, bulk actions, imports,
    reports and notifications. Log in as an actor with a password
    ('onboarding actor add NAME --password-stdin').
    Sessions are signed with $ONBOARDING_WEB_SECRET, else a random secret per start.

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
    from onboarding.replication import supervising

    with supervising(path, replicate_to, events=echo_event):
        click.echo(f"Serving {path} on http://{host}:{port}/ (Ctrl+C stops)")
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
