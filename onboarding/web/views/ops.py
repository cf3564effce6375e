"""For the operator's machines: ``/healthz``, ``/readyz``, ``/metrics`` and the request log.

* ``/healthz``: the process answers (no database access): for a supervisor's liveness probe.
* ``/readyz``: the database is readable and its schema current and, when a limit is configured
  (``serve --scheduler-max-age``), the scheduler's heartbeat is no older than it: 200 or 503,
  with a JSON body naming each check. For a load balancer and for alerts.
* ``/metrics``: Prometheus text format (``onboarding.metrics`` and request latency). Clients on
  the loopback address get it without more; anyone else needs ``Authorization: Bearer TOKEN``
  with the token given in ``$ONBOARDING_METRICS_TOKEN`` (never stored in the database). A
  request that carries proxy headers (``X-Forwarded-For``, ``Forwarded``) came through a proxy
  and is never taken for a loopback client, whatever its socket says.

None of them needs a login or touches a session; these are plain Starlette routes, so the
app's security headers middleware still applies. ``install`` adds the middleware that times
every request (the latency histogram) and logs it as a ``request`` event (``onboarding.logs``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onboarding import health
from onboarding.db import connect
from onboarding.logs import event
from onboarding.metrics import DatabaseCollector
from onboarding.web.core import NO_STORE, WebState

log = logging.getLogger("onboarding.web")

METRICS_TOKEN_ENV = "ONBOARDING_METRICS_TOKEN"
PROBES = ("/healthz", "/readyz", "/metrics")
PROXY_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")


@dataclass(frozen=True)
class OpsSettings:
    """What the operator configures for these routes (``onboarding serve`` options)."""

    #: ``/readyz`` fails when the scheduler's heartbeat is older (None: not checked).
    heartbeat_limit: timedelta | None = None
    #: The bearer token that opens ``/metrics`` to clients other than loopback ones.
    metrics_token: str | None = None


class OpsState:
    """Per app: the settings and a Prometheus registry of its own (an app per test, too)."""

    def __init__(self, web: WebState, settings: OpsSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.registry.register(DatabaseCollector(web.db_path))
        ProcessCollector(registry=self.registry)
        self.latency = Histogram(
            "onboarding_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )


def install(app: Starlette, settings: OpsSettings | None = None) -> None:
    """Give ``app`` (from ``create_app``) its ops state and the request-timing middleware."""
    app.state.ops = OpsState(app.state.web, settings or OpsSettings())
    app.add_middleware(RequestMetrics)


def configure(app: Starlette, settings: OpsSettings) -> None:
    """Replace the settings (``onboarding serve`` calls this with its options)."""
    app.state.ops.settings = settings


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _ops(request: Request) -> OpsState:
    state: OpsState = request.app.state.ops
    return state


async def healthz(request: Request) -> Response:
    """The process is up and answering."""
    return JSONResponse({"ok": True}, headers=NO_STORE)


def _readiness(request: Request) -> dict[str, Any]:
    web: WebState = request.app.state.web
    if not web.db_path.is_file():  # connect() would create an empty file in its place
        return {"ok": False, "checks": {"database": {"ok": False, "error": "missing"}}}
    try:
        db = connect(web.db_path)
    except Exception as exc:  # not ours, newer, unreadable: not ready, said in the answer
        return {"ok": False, "checks": {"database": {"ok": False, "error": type(exc).__name__}}}
    try:
        return health.readiness(db, _ops(request).settings.heartbeat_limit).to_dict()
    finally:
        db.close()


async def readyz(request: Request) -> Response:
    """Database readable, schema current, scheduler heartbeat recent (when configured)."""
    body = await run_in_threadpool(_readiness, request)
    return JSONResponse(body, status_code=200 if body["ok"] else 503, headers=NO_STORE)


def is_loopback_client(scope: Scope) -> bool:
    """A client on this machine that did not come through a proxy."""
    if any(name in PROXY_HEADERS for name, _ in scope.get("headers", [])):
        return False
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(str(client[0])).is_loopback
    except ValueError:
        return False


def _token_ok(request: Request, expected: str | None) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if expected is None or scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


async def metrics(request: Request) -> Response:
    """Prometheus text format: loopback clients, or others with the metrics token."""
    ops = _ops(request)
    if not is_loopback_client(request.scope) and not _token_ok(
        request, ops.settings.metrics_token
    ):
        if ops.settings.metrics_token is None:
            return JSONResponse(
                {
                    "error": "forbidden",
                    "detail": f"/metrics answers loopback clients only; set ${METRICS_TOKEN_ENV}"
                    " to let others scrape with 'Authorization: Bearer TOKEN'",
                },
                status_code=403,
                headers=NO_STORE,
            )
        return JSONResponse(
            {"error": "unauthorized", "detail": "send 'Authorization: Bearer TOKEN'"},
            status_code=401,
            headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body = await run_in_threadpool(generate_latest, ops.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


class RequestMetrics:
    """Times each HTTP request into the latency histogram and logs it as a ``request`` event
    (method, route, path without query, status, milliseconds; never headers or bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers

        async def keep_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, keep_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = str(scope.get("method", ""))
        app = scope.get("app")
        ops: OpsState | None = getattr(getattr(app, "state", None), "ops", None)
        if ops is not None:
            ops.latency.labels(method, route, str(status)).observe(seconds)
        path = str(scope.get("path", ""))
        # Probes come every few seconds: only at debug level, so they do not drown the log.
        level = logging.DEBUG if path in PROBES and status < 400 else logging.INFO
        client = scope.get("client")
        event(
            log,
            "request",
            level,
            method=method,
            route=route,
            path=path,
            status=status,
            ms=round(seconds * 1000, 1),
            client=str(client[0]) if client else None,
        )


__all__ = [
    "METRICS_TOKEN_ENV",
    "OpsSettings",
    "OpsState",
    "RequestMetrics",
    "configure",
    "install",
    "is_loopback_client",
    "routes",
]
