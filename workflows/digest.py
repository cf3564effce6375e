"""SHA-256 without loading OpenSSL at start (issue 14, start-up).

``import hashlib`` loads OpenSSL's ``_hashlib`` (about 2.5 ms a process here, a tenth of a
bare interpreter's start) though a command only hashes a few short texts: the roles file it
checks against its twin, a definition's text, the audit chain's rows. CPython's own SHA-256
(``_sha256`` in 3.11, ``_sha2`` from 3.12) gives the same digests, and is as fast or faster on
inputs this short (measured: 1.1 us against 1.9 us for 300 bytes). ``hashlib`` is the fallback
where neither exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _constructor() -> Callable[[bytes], Any]:
    for name in ("_sha256", "_sha2"):  # CPython 3.11, 3.12+
        try:
            module = __import__(name)
        except ImportError:  # pragma: no cover - another Python
            continue
        found: Callable[[bytes], Any] = module.sha256
        return found
    import hashlib  # pragma: no cover - another Python

    return hashlib.sha256  # pragma: no cover


_sha256 = _constructor()


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits (``hashlib.sha256(data).hexdigest()``)."""
    return str(_sha256(data).hexdigest())
