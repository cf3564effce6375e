"""What every API handler shares: bearer-token authentication, JSON bodies, error bodies with
stable codes, idempotency keys, and the one seam that says what an actor may read.

No cookie, no session, no CSRF: a request is authenticated by its ``Authorization: Bearer``
header alone (``onboarding.tokens``), so a browser's ambient credentials never act here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from onboarding import clock, i18n, tokens, visibility
from onboarding.db import Database, DatabaseBusy, connect, immediate
from onboarding.errors import (
    InputError,
    NotFound,
    OnboardingError,
    PermissionDenied,
    StaleVersion,
    TransitionRefused,
)
from onboarding.storage import StorageError, describe
from onboarding.visibility import Scope

log = logging.getLogger("onboarding.api")

#: The largest request body taken (a status file is the largest thing sent).
MAX_BODY = 5 * 1024 * 1024
#: How long an idempotency key is remembered.
KEY_TTL = timedelta(hours=24)
MAX_KEY = 200
NO_STORE = {"Cache-Control": "no-store"}


class ApiError(Exception):
    """A refusal of the API itself: an HTTP status, a stable code, a sentence."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def _lang(request: Request) -> str:
    """The reader's language from ``Accept-Language`` (Danish unless English comes first)."""
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in i18n.LANGUAGES:
            return code
    return i18n.DEFAULT


def _tr(lang: str) -> Callable[[str], str]:
    """gettext in ``lang``, called as ``_("...")`` so Babel extracts the message."""
    return lambda message: i18n.gettext(lang, message)


def error_body(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = {"error": {"status": status, "code": code, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=NO_STORE)


#: Library errors -> (HTTP status, stable code). The first match wins (subclasses first).
_MAPPING: tuple[tuple[type[BaseException], int, str], ...] = (
    (PermissionDenied, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (StaleVersion, 409, "stale_version"),
    (TransitionRefused, 422, "transition_refused"),
    (DatabaseBusy, 503, "database_busy"),
    (StorageError, 503, "storage_fault"),
    (InputError, 400, "invalid_input"),
    (OnboardingError, 422, "refused"),
)


def status_and_code(exc: OnboardingError) -> tuple[int, str]:
    for kind, status, code in _MAPPING:
        if isinstance(exc, kind):
            return status, code
    return 422, "refused"  # pragma: no cover - OnboardingError is last in _MAPPING


# --- who may read what (the seam) -------------------------------------------------------------


def read_scope(db: Database, actor: str | None) -> Scope:
    """What the request's actor may read: the library's need-to-know rules
    (``onboarding.visibility``), the same as the web pages and the command line. A request
    without an actor (the public OpenAPI document) reads no track."""
    if actor is None:
        return Scope(actor=None, everything=False)
    return visibility.of(db, actor)


def require_track(db: Database, scope: Scope, track_id: int) -> None:
    """``NotFound`` (the same answer as an unknown id) unless ``scope`` reads the track: an
    API client learns nothing about tracks outside its scope, not even that they exist."""
    visibility.require_track(db, scope, track_id)


# --- a call -----------------------------------------------------------------------------------


@dataclass
class Call:
    """What a handler gets: the request, its connection, the token's actor and scope, the body."""

    request: Request
    db: Database
    actor: str
    scope: Scope
    body: Any
    raw: bytes
    lang: str

    def _(self, message: str) -> str:
        return i18n.gettext(self.lang, message)

    def query(self, name: str) -> str | None:
        value = self.request.query_params.get(name)
        return value.strip() if value is not None else None

    def path_int(self, name: str) -> int:
        value = int(self.request.path_params[name])
        if value > 2**63 - 1:  # more than SQLite can store: no such thing (not a crash)
            raise NotFound(name.removesuffix("_id"), str(value))
        return value


Result = tuple[int, Any]
Handler = Callable[[Call], Result]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def _read_body(request: Request, lang: str) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large(lang)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large(lang)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(lang: str) -> ApiError:
    _ = _tr(lang)
    return ApiError(
        413,
        "body_too_large",
        _("The request body is larger than %(mb)d MB.")
        % {"mb": MAX_BODY // 2**20},
    )


def _parse_json(raw: bytes, lang: str) -> dict[str, Any]:
    _ = _tr(lang)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: deep nesting
        raise ApiError(
            400, "malformed_json", _("The request body is not valid JSON.")
        ) from None
    if not isinstance(body, dict):
        raise ApiError(
            400, "malformed_body", _("The request body must be a JSON object.")
        )
    return body


def endpoint(
    handler: Handler, *, write: bool = False, body: str = "none", public: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: token, body (``json``, ``raw`` or ``none``), idempotency on writes, the
    handler in a worker thread, and every error as a JSON body with its code."""

    @wraps(handler)
    async def run(request: Request) -> Response:
        lang = _lang(request)
        _ = _tr(lang)
        try:
            token = _bearer(request)
            if token is None and not public:
                raise ApiError(
                    401,
                    "unauthenticated",
                    _("Send an API token: 'Authorization: Bearer TOKEN'."),
                )
            raw = await _read_body(request, lang) if body != "none" else b""
            parsed = _parse_json(raw, lang) if body == "json" else None
            return await run_in_threadpool(
                _run_sync, handler, request, token, raw, parsed, lang, write
            )
        except ApiError as exc:
            return _api_error(exc)

    return run


def _api_error(exc: ApiError) -> JSONResponse:
    response = error_body(exc.status, exc.code, exc.message, **exc.extra)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="onboarding"'
    return response


def _db_path(request: Request) -> Path:
    path: Path = request.app.state.web.db_path
    return path


def _run_sync(
    handler: Handler,
    request: Request,
    token: str | None,
    raw: bytes,
    parsed: Any,
    lang: str,
    write: bool,
) -> Response:
    _ = _tr(lang)
    try:
        db = connect(_db_path(request))
    except OnboardingError as exc:
        status, code = status_and_code(exc)
        return error_body(status, code, exc.say(lang))
    try:
        actor = tokens.authenticate(db, token) if token is not None else None
        if token is not None and actor is None:
            raise ApiError(
                401,
                "invalid_token",
                _("The API token is unknown, revoked, or its actor inactive."),
            )
        scope = read_scope(db, actor)
        call = Call(request, db, actor or "", scope, parsed, raw, lang)
        key = request.headers.get("idempotency-key")
        if write and key is not None:
            status, data, replayed = idempotent(call, key, lambda: handler(call))
        else:
            status, data = handler(call)
            replayed = False
        headers = dict(NO_STORE)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(data, status_code=status, headers=headers)
    except ApiError as exc:
        return _api_error(exc)
    except OnboardingError as exc:
        status, code = status_and_code(exc)
        lines = exc.say(lang).splitlines()  # the engine's sentence, in the reader's language
        extra = {"lines": lines} if len(lines) > 1 else {}
        return error_body(status, code, lines[0] if lines else code, **extra)
    except (sqlite3.Error, OSError) as exc:
        # A storage fault no library call named (a full disk, a read-only file system): said
        # in one sentence, as the command line says it; anything else is a bug.
        fault = describe(exc, _db_path(request))
        if fault is None:
            log.exception("API request failed: %s %s", request.method, request.url.path)
            return error_body(500, "internal_error", _("Internal error."))
        return error_body(503, "storage_fault", str(fault))
    except Exception:
        # A bug: logged with its traceback, answered without one (exit 1's counterpart).
        log.exception("API request failed: %s %s", request.method, request.url.path)
        return error_body(500, "internal_error", _("Internal error."))
    finally:
        db.close()


# --- idempotency keys -------------------------------------------------------------------------


def fingerprint(request: Request, raw: bytes) -> str:
    """What makes two requests "the same": method, path, query and the exact body bytes."""
    h = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        h.update(part.encode("utf-8") + b"\0")
    h.update(raw)
    return h.hexdigest()


def _check_key(key: str, lang: str) -> str:
    _ = _tr(lang)
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(
            400,
            "malformed_idempotency_key",
            _("Idempotency-Key: 1 to %(n)d printable ASCII characters.")
            % {"n": MAX_KEY},
        )
    return key


def idempotent(call: Call, key: str, run: Callable[[], Result]) -> tuple[int, Any, bool]:
    """Run a write once per (actor, key): a repeated request with the same key and the same
    request gets the first answer and writes nothing; the same key with another request is
    refused (422). The key is reserved before the write, so two copies sent at once cannot
    both write (the second is told 409 while the first runs).

    A key is kept only for a write that succeeded: a refused request wrote nothing, so its key
    may be sent again. If the process dies after the write committed and before its answer was
    stored, the key stays reserved: a repeat is refused (409), never applied twice."""
    key = _check_key(key, call.lang)
    print_ = fingerprint(call.request, call.raw)
    now = clock.now()
    with immediate(call.db) as conn:
        conn.execute(
            "DELETE FROM api_idempotency WHERE created_at < ?", [clock.stamp(now - KEY_TTL)]
        )
        row = conn.execute(
            "SELECT fingerprint, status, response FROM api_idempotency WHERE actor = ? AND key = ?",
            [call.actor, key],
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO api_idempotency (actor, key, fingerprint, created_at)"
                " VALUES (?, ?, ?, ?)",
                [call.actor, key, print_, clock.stamp(now)],
            )
    if row is not None:
        if row[0] != print_:
            raise ApiError(
                422,
                "idempotency_key_reused",
                call._("This Idempotency-Key was used for a different request."),
            )
        if row[1] is None:
            raise ApiError(
                409,
                "idempotency_key_in_progress",
                call._("A request with this Idempotency-Key is still being processed."),
            )
        return int(row[1]), json.loads(row[2]), True
    try:
        status, data = run()
    except BaseException:
        _release(call, key)
        raise
    with immediate(call.db) as conn:
        conn.execute(
            "UPDATE api_idempotency SET status = ?, response = ? WHERE actor = ? AND key = ?",
            [status, json.dumps(data, ensure_ascii=False), call.actor, key],
        )
    return status, data, False


def _release(call: Call, key: str) -> None:
    with contextlib.suppress(sqlite3.Error, OnboardingError), immediate(call.db) as conn:
        conn.execute(
            "DELETE FROM api_idempotency WHERE actor = ? AND key = ? AND status IS NULL",
            [call.actor, key],
        )


# --- reading bodies ---------------------------------------------------------------------------


def fields_of(call: Call, allowed: Mapping[str, tuple[type, ...]], required: set[str]) -> None:
    """Refuse (400) a JSON body with an unknown member, a missing required one or one of the
    wrong type, naming the member: nothing is written for a malformed body."""
    body: dict[str, Any] = call.body
    for name in body:
        if name not in allowed:
            raise ApiError(
                400,
                "unknown_member",
                call._("Unknown member %(name)r in the body (known: %(known)s).")
                % {"name": name, "known": ", ".join(sorted(allowed))},
                member=name,
            )
    for name in sorted(required):
        if body.get(name) is None:
            raise ApiError(
                400,
                "missing_member",
                call._("The body needs %(name)r.") % {"name": name},
                member=name,
            )
    for name, kinds in allowed.items():
        value = body.get(name)
        if value is None:
            continue
        wrong = isinstance(value, bool) and bool not in kinds
        if wrong or not isinstance(value, kinds):
            raise ApiError(
                400,
                "invalid_member",
                call._("%(name)r has the wrong type (expected %(type)s).")
                % {"name": name, "type": " or ".join(_JSON_TYPES[k] for k in kinds)},
                member=name,
            )


_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
}
