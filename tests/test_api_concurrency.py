"""The API under concurrent clients: two real ``onboarding serve`` processes on one database
file, many requests at once for the same track."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from onboarding import tokens
from onboarding.db import open_existing
from tests.web_support import AARHUS, DEMO_NOW, fresh_db, wait_listening

ROOT = Path(__file__).parent.parent
TRACK = 70  # Aarhus / KMD Momentum, version 3 in the demo (see tests/test_api.py)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(db: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "ONBOARDING_NOW": DEMO_NOW, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--db", str(db), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(proc, port)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Path, list[str], str]]:
    db = fresh_db(tmp_path)
    handle = open_existing(db)
    try:
        token, _ = tokens.create(handle, AARHUS)
    finally:
        handle.close()
    procs = [_serve(db) for _ in range(2)]
    try:
        yield db, [url for _, url in procs], token
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM history WHERE track_id = ?",
                                [TRACK]).fetchone()[0])
    finally:
        conn.close()


def _fire(urls: list[str], token: str, keys: list[str]) -> list[httpx.Response]:
    body = {"trigger": "update_dpa", "expect_version": 3}

    def one(i: int) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": keys[i]}
        return httpx.post(f"{urls[i % 2]}/api/v1/tracks/{TRACK}/advance", json=body,
                          headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(len(keys))))


def test_api_concurrency_same_idempotency_key_applies_once(
    servers: tuple[Path, list[str], str],
) -> None:
    """Sixteen copies of one advance with one Idempotency-Key, sent at once to two server
    processes: one history row; every answer is the step's result (first or replayed) or 409
    idempotency_key_in_progress; nothing fails."""
    db, urls, token = servers
    before = _rows(db)
    answers = _fire(urls, token, ["same-key"] * 16)
    assert _rows(db) == before + 1
    kinds = Counter(
        "replayed" if r.headers.get("idempotent-replayed") else
        (str(r.status_code) if r.status_code != 409 else r.json()["error"]["code"])
        for r in answers
    )
    assert kinds["200"] == 1, kinds
    odd = [r.text for r in answers if r.status_code not in (200, 409)]
    assert set(kinds) <= {"200", "replayed", "idempotency_key_in_progress"}, (kinds, odd)
    firsts = [r.json() for r in answers if r.status_code == 200]
    assert all(body == firsts[0] for body in firsts)


def test_api_concurrency_expect_version_lets_one_writer_win(
    servers: tuple[Path, list[str], str],
) -> None:
    """Sixteen different requests advancing the same version at once: exactly one applies, the
    others get 409 stale_version; nothing says "database is locked"."""
    db, urls, token = servers
    before = _rows(db)
    answers = _fire(urls, token, [f"key-{i}" for i in range(16)])
    assert _rows(db) == before + 1
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {200: 1, 409: 15}, [r.text for r in answers if r.status_code != 200][:3]
    assert all(r.json()["error"]["code"] == "stale_version" for r in answers
               if r.status_code == 409)


def test_api_concurrency_reads_and_writes_across_two_servers_never_fail(
    servers: tuple[Path, list[str], str],
) -> None:
    """Four rounds of 96 requests at once to two server processes (reads, and field changes
    each with its own Idempotency-Key at one version): every answer is 200 or 409, never a
    storage fault; each round applies exactly one change. (Before db._OURS, a connection's
    open() and close() of the database file dropped other threads' locks, and the other
    process reset the WAL under them: "disk I/O error".)"""
    db, urls, token = servers
    auth = {"Authorization": f"Bearer {token}"}
    for round_ in range(4):
        version = httpx.get(f"{urls[0]}/api/v1/tracks/{TRACK}", headers=auth).json()["version"]
        before = _rows(db)

        def one(i: int, version: int = version, round_: int = round_) -> httpx.Response:
            url = urls[i % 2]
            if i % 3:
                return httpx.get(f"{url}/api/v1/tracks/{TRACK}", headers=auth, timeout=60)
            body = {"fields": {"kle_numbers": f"{round_}.{i}"}, "expect_version": version}
            return httpx.post(f"{url}/api/v1/tracks/{TRACK}/fields", json=body, timeout=60,
                              headers={**auth, "Idempotency-Key": f"r{round_}-{i}"})

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(one, range(96)))
        odd = [r.text for r in answers if r.status_code not in (200, 409)]
        assert not odd, odd[:3]
        assert _rows(db) == before + 1
