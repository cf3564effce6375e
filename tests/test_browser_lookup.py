"""The browser tests find chromium through $ONBOARDING_CHROMIUM or PATH, and fail (never skip)
with one line that says how to install it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import browser


def test_browser_lookup_uses_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$ONBOARDING_CHROMIUM names the executable to use."""
    exe = tmp_path / "my-chromium"
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setenv(browser.VARIABLE, str(exe))
    assert browser.chromium() == str(exe)


def test_browser_lookup_fails_with_one_line_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable naming nothing fails the test with the variable and the path in one line."""
    monkeypatch.setenv(browser.VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(pytest.fail.Exception) as failed:
        browser.chromium()
    message = str(failed.value)
    assert "\n" not in message and "ONBOARDING_CHROMIUM" in message and "nowhere" in message


def test_browser_lookup_finds_chromium_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the variable, ``chromium`` on PATH is used."""
    exe = tmp_path / "chromium"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.delenv(browser.VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert browser.chromium() == str(exe)
