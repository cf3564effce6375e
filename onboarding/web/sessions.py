"""Server-side sessions for the page: the cookie holds a random token, the database the rest.

``ServerSessions`` replaces Starlette's ``SessionMiddleware`` (which keeps the whole session in
a signed cookie, so a copied cookie outlives logout) and keeps its interface: handlers read and
write ``request.session`` as a dict. Around each request it loads the session of the cookie's
token (``onboarding.sessions.load``: unknown, ended, expired or idle tokens give an empty
session), and when the response starts it writes back what changed:

* a change of actor (login, logout, a deactivated actor's session cleared) ends the old row and
  starts a new one under a new token, so a token known before login is worthless after it
  (no session fixation) and one copied before logout is refused after it;
* changed data is saved; otherwise the last use is written at most once a minute;
* a session that becomes empty is ended and its cookie deleted.

The cookie is HttpOnly, SameSite=Lax, Path=/, and ``Secure`` when the page is served over
HTTPS (as the server sees it: TLS in uvicorn, or a trusted proxy's ``X-Forwarded-Proto``) or
``secure`` is set (``serve --secure-cookies``).
"""

from __future__ import annotations

import json
from datetime import datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onboarding import clock, sessions
from onboarding.db import connect

COOKIE = "onboarding_session"
#: Paths served without a session (static files need none; this saves a database read each).
SESSIONLESS = ("/static/",)


def is_secure(scope: Scope, secure: bool) -> bool:
    """Whether cookies get ``Secure`` and responses HSTS for this request."""
    return secure or scope.get("scheme") == "https"


class ServerSessions:
    def __init__(
        self,
        app: ASGIApp,
        db_path: Path,
        *,
        secure: bool = False,
        policy: sessions.Policy | None = None,
    ) -> None:
        self.app = app
        self.db_path = db_path
        self.secure = secure
        self.policy = policy or sessions.Policy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(SESSIONLESS):
            if scope["type"] == "http":
                scope["session"] = {}
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        token = connection.cookies.get(COOKIE, "")
        now = clock.now()
        loaded = await run_in_threadpool(self._load, token, now) if token else None
        session: dict[str, Any] = dict(loaded.data) if loaded else {}
        if loaded is not None and loaded.actor:
            session["actor"] = loaded.actor
        before = _dump(session)
        scope["session"] = session
        client = scope.get("client")
        address = str(client[0]) if client else None
        agent = connection.headers.get("user-agent")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = await run_in_threadpool(
                    self._commit, loaded, session, before, bool(token), now, address, agent
                )
                if cookie is not None:
                    MutableHeaders(scope=message).append(
                        "set-cookie", self._cookie(cookie, is_secure(scope, self.secure))
                    )
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    # -- the database side, in a worker thread --

    def _load(self, token: str, now: datetime) -> sessions.Session | None:
        db = connect(self.db_path)
        try:
            return sessions.load(db, token, self.policy, now)
        finally:
            db.close()

    def _commit(
        self,
        loaded: sessions.Session | None,
        session: dict[str, Any],
        before: str,
        had_cookie: bool,
        now: datetime,
        address: str | None,
        agent: str | None,
    ) -> str | None:
        """Write what the request changed; return the cookie's new value ("" deletes it) or
        None to leave it as it is."""
        actor = session.get("actor")
        actor = actor if isinstance(actor, str) and actor else None
        data = {k: v for k, v in session.items() if k != "actor"}
        changed = _dump(session) != before
        if not changed and loaded is None:
            return "" if had_cookie else None  # a dead token: delete the cookie
        db = connect(self.db_path)
        try:
            if loaded is not None and (loaded.actor != actor or not session):
                sessions.end(db, loaded.token_hash)
                loaded = None
            if loaded is not None:
                sessions.save(db, loaded, data if changed else None, now)
                return None
            if not session:
                return ""
            return sessions.create(
                db, actor, data, self.policy, address=address, user_agent=agent, now=now
            )
        finally:
            db.close()

    def _cookie(self, value: str, secure: bool) -> str:
        cookie: SimpleCookie = SimpleCookie()
        cookie[COOKIE] = value
        morsel = cookie[COOKIE]
        morsel["path"] = "/"
        morsel["httponly"] = True
        morsel["samesite"] = "lax"
        morsel["max-age"] = int(self.policy.lifetime.total_seconds()) if value else 0
        if secure:
            morsel["secure"] = True
        return morsel.OutputString()


def _dump(session: dict[str, Any]) -> str:
    return json.dumps(session, sort_keys=True, default=str)
