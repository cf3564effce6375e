"""``onboarding serve``: the web page."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import click

from onboarding.commands.common import (
    UserError,
    db_option,
    log_format_option,
    t,
)
from onboarding.commands.replicate import echo_event, replicate_to_option


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def plain_http_warning(host: str, port: int) -> str:
    return (
        f"warning: serving plain HTTP on {host}:{port}, reachable from other machines: "
        "passwords and session cookies cross the network unencrypted. Put a TLS proxy in "
        "front and give --behind-proxy (with --secure-cookies, and --forwarded-allow-ips "
        "PROXY so throttling sees the real clients), or give --ssl-certfile and --ssl-keyfile "
        "(docs/web.md, 'Serving it')."
    )


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback by default: only this machine can connect).",
)
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="ADDRESSES",
    help=(
        "Comma-separated addresses (or networks) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed. Default: none, the client is the socket's peer."
    ),
)
@click.option(
    "--behind-proxy",
    is_flag=True,
    help="A proxy that terminates TLS is in front (silences the plain-HTTP warning).",
)
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Mark the session cookie Secure and send HSTS (set anyway when served over HTTPS).",
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS with this certificate (PEM; with --ssl-keyfile).",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The certificate's private key (PEM).",
)
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
    forwarded_allow_ips: str | None,
    behind_proxy: bool,
    secure_cookies: bool,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    replicate_to: str | None,
    db_path: str | None,
) -> None:
    """Start the coordinators' web page over the database (login with an actor's password).

    The page uses the same engine as these commands: grid, tracks, bulk actions, imports,
    reports and notifications. Log in as an actor with a password
    ('onboarding actor add NAME --password-stdin'). Sessions are kept in the database: they
    survive a restart and end at logout or with 'onboarding actor revoke-sessions NAME'.

    /healthz, /readyz and /metrics need no login; /metrics answers other machines only with
    'Authorization: Bearer $ONBOARDING_METRICS_TOKEN' (docs/operations.md).

    Example:

    \b
        onboarding serve --db demo-output/onboarding.db --port 8000
        onboarding serve --db /srv/data/onboarding.db --replicate-to /srv/replica/onboarding

    Behind a TLS proxy on this machine:

    \b
        onboarding serve --behind-proxy --secure-cookies --forwarded-allow-ips 127.0.0.1
    """
    import uvicorn

    from onboarding.db import resolve_path
    from onboarding.web import create_app

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise UserError("give --ssl-certfile and --ssl-keyfile together")
    tls = ssl_certfile is not None
    path = resolve_path(db_path)
    app = create_app(path, secure_cookies=secure_cookies)
    fmt = _configure_ops(app, scheduler_max_age, log_format)
    from onboarding import logs

    if not is_loopback(host) and not tls and not behind_proxy:
        _warn(fmt, plain_http_warning(host, port))
    scheme = "https" if tls else "http"
    from onboarding.replication import supervising

    events = echo_event if fmt == "text" else logs.line_events("onboarding.replication")
    with supervising(path, replicate_to, events=events):
        address = f"{scheme}://{host}:{port}/"
        click.echo(t("Serving %(db)s on %(address)s (Ctrl+C stops)", db=path, address=address))
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            server_header=False,
            ssl_certfile=str(Path(ssl_certfile)) if ssl_certfile else None,
            ssl_keyfile=str(Path(ssl_keyfile)) if ssl_keyfile else None,
            # uvicorn's defaults trust X-Forwarded-For and X-Forwarded-Proto from 127.0.0.1
            # (or from $FORWARDED_ALLOW_IPS): anyone reaching a local proxy, or the page from
            # this machine, could choose the address the login throttle counts. Proxy headers
            # are read only from the addresses the operator names.
            proxy_headers=bool(forwarded_allow_ips),
            forwarded_allow_ips=forwarded_allow_ips or "",
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


def _warn(fmt: str, text: str) -> None:
    """A warning on stderr: a line, or in JSON logs an event like every other line."""
    if fmt == "text":
        click.echo(text, err=True)
        return
    import logging

    from onboarding.logs import event

    event(logging.getLogger("onboarding.web"), "warning", logging.WARNING, message=text)
