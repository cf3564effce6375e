"""The page's own security parts: CSRF tokens, login throttling, safe redirects, CSV cells.

What an actor may *do* is not decided here: the engine decides, and the page shows its reason.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

CSRF_FIELD = "csrf"
#: Failed logins allowed per (name, address) and per address within ``WINDOW`` seconds.
PER_NAME = 5
PER_ADDRESS = 20
WINDOW = 15 * 60


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, created on first use (one per session)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], given: object) -> bool:
    """The form's token is the session's (compared in constant time)."""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def safe_next(target: object, default: str = "/") -> str:
    """A local path to go to after login: never another site (``//host``, ``https:``...)."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(c in target for c in "\r\n\t"):
        return default
    return target


class LoginThrottle:
    """Failed login attempts in memory: at most ``PER_NAME`` per name and address and
    ``PER_ADDRESS`` per address in a sliding window; a success clears the name's count."""

    def __init__(
        self,
        per_name: int = PER_NAME,
        per_address: int = PER_ADDRESS,
        window: float = WINDOW,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_name = per_name
        self.per_address = per_address
        self.window = window
        self._now = now
        self._lock = threading.Lock()
        self._by_name: dict[tuple[str, str], deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}

    def _trim(self, q: deque[float], now: float) -> deque[float]:
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def wait(self, name: str, address: str) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = self._now()
        key = (name.casefold(), address)
        with self._lock:
            waits = [0.0]
            q = self._trim(self._by_name.get(key, deque()), now)
            if len(q) >= self.per_name:
                waits.append(q[0] + self.window - now)
            a = self._trim(self._by_address.get(address, deque()), now)
            if len(a) >= self.per_address:
                waits.append(a[0] + self.window - now)
            return int(max(waits) + 0.999)

    def failed(self, name: str, address: str) -> None:
        now = self._now()
        with self._lock:
            self._by_name.setdefault((name.casefold(), address), deque()).append(now)
            self._by_address.setdefault(address, deque()).append(now)
            if len(self._by_name) > 10_000:  # a flood of names: forget the stale ones
                for k in [k for k, q in self._by_name.items() if not self._trim(q, now)]:
                    del self._by_name[k]

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._by_name.pop((name.casefold(), address), None)


#: First characters that make a spreadsheet read a cell as a formula (OWASP: CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value safe to put in a CSV cell: text that a spreadsheet would run as a formula gets
    an apostrophe in front; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nej"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
