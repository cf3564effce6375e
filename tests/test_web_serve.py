"""``onboarding serve`` as a real process (uvicorn), where proxy headers and the listening
address matter (issue 13): a forged ``X-Forwarded-For`` does not reset the login throttle,
a proxy the operator names is believed, ``--secure-cookies`` marks the cookie Secure, and a
plain-HTTP page reachable from other machines is warned about.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.web_support import COORDINATOR, DEMO_NOW, PASSWORD, csrf_of, fresh_db, wait_listening

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def web_db(tmp_path: Path) -> Path:
    return fresh_db(tmp_path)


def _command(db: Path, port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "cli", "serve", "--db", str(db), "--port", str(port), *options]


def _env() -> dict[str, str]:
    env = {**os.environ, "ONBOARDING_NOW": DEMO_NOW, "PYTHONPATH": str(ROOT)}
    env.pop("FORWARDED_ALLOW_IPS", None)
    return env


@contextmanager
def _serving(db: Path, *options: str) -> Iterator[httpx.Client]:
    """``onboarding serve`` on a free loopback port; a client for it."""
    port = _free_port()
    proc = subprocess.Popen(
        _command(db, port, *options),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_listening(proc, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _login(client: httpx.Client, name: str, password: str, forwarded: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_of(client.get("/login", headers=headers).text)
    return client.post(
        "/login",
        data={"csrf": token, "name": name, "password": password},
        headers=headers,
    )


def test_web_serve_forged_forwarded_for_does_not_reset_throttling(web_db: Path) -> None:
    """Without --forwarded-allow-ips a client cannot pick its address: five failures, each
    from a "new" forged X-Forwarded-For, still make the right password wait."""
    with _serving(web_db) as client:
        for i in range(5):
            wrong = _login(client, COORDINATOR, "forkert-kode", f"203.0.113.{i}")
            assert wrong.status_code == 401
        right = _login(client, COORDINATOR, PASSWORD, "198.51.100.77")
        assert right.status_code == 429


def test_web_serve_named_proxy_is_believed(web_db: Path) -> None:
    """With --forwarded-allow-ips 127.0.0.1 (a proxy on this machine) each forwarded client
    is counted on its own: another client's failures do not make this one wait, and the
    proxy's X-Forwarded-Proto: https makes the cookie Secure."""
    with _serving(web_db, "--forwarded-allow-ips", "127.0.0.1") as client:
        for _ in range(5):
            assert _login(client, COORDINATOR, "forkert-kode", "203.0.113.9").status_code == 401
        assert _login(client, COORDINATOR, PASSWORD, "203.0.113.9").status_code == 429
        assert _login(client, COORDINATOR, PASSWORD, "198.51.100.7").status_code == 303
        client.cookies.clear()
        page = client.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in page.headers["set-cookie"]
        assert page.headers["strict-transport-security"] == "max-age=31536000"


def test_web_serve_secure_cookies_flag(web_db: Path) -> None:
    """serve --secure-cookies: the session cookie is Secure (and HttpOnly, SameSite=Lax) and
    every response carries HSTS, though the server itself speaks plain HTTP behind a proxy."""
    with _serving(web_db, "--secure-cookies", "--behind-proxy") as client:
        page = client.get("/login")
        cookie = page.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert page.headers["strict-transport-security"] == "max-age=31536000"


def _first_output(db: Path, *options: str) -> str:
    """What ``serve`` prints before it listens: the port is taken on every interface, so the
    server stops at once and nothing is ever served to the network."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        port = int(taken.getsockname()[1])
        result = subprocess.run(
            _command(db, port, *options),
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    return result.stdout + result.stderr


def test_web_serve_warns_about_plain_http_beyond_loopback(web_db: Path) -> None:
    """--host 0.0.0.0 without TLS or --behind-proxy warns that passwords and cookies cross the
    network unencrypted; on loopback or --behind-proxy it does not."""
    warning = "warning: serving plain HTTP on 0.0.0.0"
    assert warning in _first_output(web_db, "--host", "0.0.0.0")
    assert "warning" not in _first_output(web_db, "--host", "0.0.0.0", "--behind-proxy")
    assert "warning" not in _first_output(web_db)
