"""Where the browser tests find Debian's chromium: ``$ONBOARDING_CHROMIUM``, else ``chromium``
on PATH, else ``/usr/bin/chromium``. Its absence fails the test with one line (never a skip):
the HTML report's and the web page's promise is that they work in a browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

VARIABLE = "ONBOARDING_CHROMIUM"


def chromium() -> str:
    """The chromium executable to use, or a failed test that says how to get one."""
    explicit = os.environ.get(VARIABLE)
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"${VARIABLE}={explicit}: no such file", pytrace=False)
        return explicit
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
    )
    if found is None:
        pytest.fail(
            "chromium not found: apt-get install -y chromium (Debian; .ci/run does this), "
            f"or set ${VARIABLE} to a chromium executable",
            pytrace=False,
        )
    return found
