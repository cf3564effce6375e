"""The page's own security parts: CSRF tokens, safe redirects, CSV cells.

Login throttling is ``onboarding.logins`` and sessions ``onboarding.sessions`` (both in the
database, so the command line can unlock an account and end its sessions).

What an actor may *do* is not decided here: the engine decides, and the page shows its reason.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

CSRF_FIELD = "csrf"


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
