"""Health and metrics (issue 15): /healthz, /readyz with the scheduler's heartbeat, /metrics.

Real database files, a real ``onboarding scheduler run`` process for the heartbeat, clocks
pinned with ``$ONBOARDING_NOW`` (never slept on), and Prometheus's own parser for /metrics.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

from onboarding import clock, health
from onboarding.db import open_existing
from onboarding.web import create_app
from onboarding.web.views import ops
from tests.notify_support import connection_to_sapa, make_ready
from tests.web_support import DEMO_NOW, fresh_db

ROOT = Path(__file__).parent.parent
T0 = "2026-03-02T09:00:00+00:00"
LOOPBACK = ("127.0.0.1", 40000)


def _app(db_path: Path, **settings: object) -> Starlette:
    app = create_app(db_path)
    ops.configure(app, ops.OpsSettings(**settings))  # type: ignore[arg-type]
    return app


def _later(seconds: float) -> str:
    return (clock.parse_time(T0) + timedelta(seconds=seconds)).isoformat()


def _run_scheduler_once(db_path: Path, now: str) -> None:
    """A real ``onboarding scheduler run`` at the pinned time ``now``: wait for its first
    heartbeat, then SIGTERM it (it finishes its sweep and exits 0)."""
    before = _beat_at(db_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(ONBOARDING_NOW=now, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "scheduler", "run", "--db", str(db_path),
         "--interval", "60"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _beat_at(db_path) == before:  # the first sweep beats at once
            assert proc.poll() is None and time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert _beat_at(db_path) == clock.parse_time(now)


def _beat_at(db_path: Path) -> object:
    db = open_existing(db_path)
    try:
        beat = health.last_beat(db)
        return beat.at if beat else None
    finally:
        db.close()


def test_healthz_answers_without_login_or_session(db_path: Path) -> None:
    """/healthz answers 200 to anyone, with the security headers and no session cookie."""
    with TestClient(_app(db_path)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in response.headers


def test_readyz_ready_without_login_when_no_heartbeat_limit(db_path: Path) -> None:
    """/readyz is 200 on a current database when no scheduler limit is configured."""
    with TestClient(_app(db_path)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert set(body["checks"]) == {"database", "schema"}


def test_readyz_unready_when_schema_is_behind(db_path: Path) -> None:
    """/readyz answers 503 naming the schema when a migration is missing from the file."""
    app = _app(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute(
        "DELETE FROM _sqlite_migrations WHERE rowid = (SELECT max(rowid) FROM _sqlite_migrations)"
    )
    conn.commit()
    conn.close()
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["schema"]["ok"] is False


def test_readyz_unready_when_the_database_file_is_gone(db_path: Path) -> None:
    """/readyz answers 503 when the database file has disappeared, and creates none."""
    app = _app(db_path)
    moved = db_path.with_name("moved.db")
    db_path.rename(moved)
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "missing"}
    assert not db_path.exists()


def test_readyz_follows_the_scheduler_heartbeat(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a limit configured, /readyz is 503 before any heartbeat, 200 while the scheduler's
    heartbeat is younger than the limit, 503 once it is older, 200 again when it resumes."""
    app = _app(db_path, heartbeat_limit=timedelta(minutes=2))
    with TestClient(app) as client:
        monkeypatch.setenv("ONBOARDING_NOW", T0)
        never = client.get("/readyz")
        assert never.status_code == 503
        assert never.json()["checks"]["scheduler"]["error"] == "no scheduler heartbeat recorded"

        _run_scheduler_once(db_path, T0)
        monkeypatch.setenv("ONBOARDING_NOW", _later(60))
        fresh = client.get("/readyz")
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["checks"]["scheduler"]["age_seconds"] == 60

        monkeypatch.setenv("ONBOARDING_NOW", _later(121))
        stale = client.get("/readyz")
        assert stale.status_code == 503
        scheduler = stale.json()["checks"]["scheduler"]
        assert scheduler["ok"] is False
        assert scheduler["age_seconds"] == 121
        assert scheduler["limit_seconds"] == 120

        _run_scheduler_once(db_path, _later(600))
        monkeypatch.setenv("ONBOARDING_NOW", _later(610))
        resumed = client.get("/readyz")
        assert resumed.status_code == 200, resumed.text


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo database (built once per run by tests.web_support)."""
    return fresh_db(tmp_path_factory.mktemp("ops-demo"))


@pytest.fixture
def demo_client(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    with TestClient(_app(demo_db), client=LOOPBACK) as client:
        yield client


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def _sql(db_path: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def test_metrics_parse_and_show_the_demo_counts(demo_client: TestClient, demo_db: Path) -> None:
    """/metrics parses with prometheus_client's parser and reports the demo database's tracks by
    definition and state, overdue tracks, outbox rows by status, the oldest due notification's
    age, and the latency of the requests answered before."""
    assert demo_client.get("/healthz").status_code == 200
    response = demo_client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    tracks = {(lb["definition"], lb["state"]): v for lb, v in samples["onboarding_tracks"]}
    expected = _sql(demo_db, "SELECT definition, state, count(*) FROM tracks GROUP BY 1, 2")
    assert tracks == {(d, s): float(n) for d, s, n in expected}  # type: ignore[arg-type]
    assert sum(tracks.values()) > 100

    today = clock.local_date(clock.parse_time(DEMO_NOW)).isoformat()
    overdue = {lb["definition"]: v for lb, v in samples["onboarding_tracks_overdue"]}
    rows = _sql(
        demo_db,
        "SELECT definition, count(*) FROM tracks WHERE final = 0 AND due < ? GROUP BY 1",
        today,
    )
    assert {d: v for d, v in overdue.items() if v} == {d: float(n) for d, n in rows}  # type: ignore[misc]
    assert sum(overdue.values()) > 0

    outbox = {lb["status"]: v for lb, v in samples["onboarding_outbox_rows"]}
    by_status = dict(_sql(demo_db, "SELECT status, count(*) FROM outbox GROUP BY 1"))
    assert {s: v for s, v in outbox.items() if v} == {
        s: float(n) for s, n in by_status.items()  # type: ignore[arg-type]
    }
    assert outbox["failed"] == by_status.get("failed", 0)  # present even when 0

    oldest = _sql(
        demo_db,
        "SELECT min(due_at) FROM outbox WHERE status IN ('pending', 'sending') AND due_at <= ?",
        clock.stamp(clock.parse_time(DEMO_NOW)),
    )[0][0]
    (_, age), = samples["onboarding_outbox_oldest_pending_age_seconds"]
    if oldest is None:
        assert age == 0
    else:
        assert age == pytest.approx(
            (clock.parse_time(DEMO_NOW) - clock.unstamp(str(oldest))).total_seconds()
        )

    latency = {
        (lb["route"], lb["status"]): v
        for lb, v in samples["onboarding_http_request_duration_seconds_count"]
    }
    assert latency[("/healthz", "200")] >= 1
    assert "onboarding_scheduler_heartbeat_timestamp_seconds" not in samples  # never ran


def test_metrics_show_the_last_sweep_and_heartbeat(
    demo_client: TestClient, demo_db: Path
) -> None:
    """After a sweep, /metrics shows its time, the heartbeat's and what it did."""
    db = open_existing(demo_db)
    try:
        health.beat(db, 60.0, now=clock.parse_time(T0))
        health.record_sweep(db, {"sent": 3, "failed": 1}, now=clock.parse_time(_later(2)))
    finally:
        db.close()
    samples = _samples(demo_client.get("/metrics").text)
    (_, beat), = samples["onboarding_scheduler_heartbeat_timestamp_seconds"]
    assert beat == clock.parse_time(T0).timestamp()
    (_, sweep), = samples["onboarding_scheduler_last_sweep_timestamp_seconds"]
    assert sweep == clock.parse_time(_later(2)).timestamp()
    outcomes = samples["onboarding_scheduler_last_sweep_notifications"]
    assert {lb["outcome"]: v for lb, v in outcomes} == {"sent": 3, "failed": 1}


def test_metrics_refuse_other_clients_without_the_token(db_path: Path) -> None:
    """/metrics: a client that is not on loopback gets 403 when no token is set, 401 without
    or with a wrong token, 200 with it; a loopback request carrying proxy headers counts as
    remote."""
    with TestClient(_app(db_path)) as remote:
        refused = remote.get("/metrics")
        assert refused.status_code == 403
        assert ops.METRICS_TOKEN_ENV in refused.json()["detail"]
    with TestClient(_app(db_path, metrics_token="s3cret-metrics")) as remote:
        assert remote.get("/metrics").status_code == 401
        wrong = remote.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        right = remote.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert right.status_code == 200
        assert "onboarding_outbox_rows" in right.text
    with TestClient(_app(db_path), client=LOOPBACK) as local:
        assert local.get("/metrics").status_code == 200
        proxied = local.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403


def test_serve_options_reach_readyz_and_metrics(db_path: Path, tmp_path: Path) -> None:
    """``serve --scheduler-max-age`` and $ONBOARDING_METRICS_TOKEN configure a real server:
    /readyz checks the heartbeat, /metrics takes the token from a non-proxied client."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(PYTHONPATH=str(ROOT), ONBOARDING_METRICS_TOKEN="tok-123")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--db", str(db_path), "--port", str(port),
         "--scheduler-max-age", "30"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["scheduler"]["limit_seconds"] == 30
        proxied = {"X-Forwarded-For": "198.51.100.7"}
        assert httpx.get(base + "/metrics", headers=proxied).status_code == 401
        ok = httpx.get(base + "/metrics", headers={**proxied, "Authorization": "Bearer tok-123"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_scheduler_stop_waits_for_the_sweep_without_deadlock(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping while a sweep runs waits for it to finish, record itself and plan its wake-up;
    APScheduler's shutdown(wait=True) held the job store lock that the wake-up needs, and the
    daemon hung until SIGKILL."""
    from apscheduler.schedulers.background import BackgroundScheduler

    import notifications.scheduler as sched
    from notifications.config import load_config

    entered, gate = threading.Event(), threading.Event()
    real = sched.send_due

    def slow_send_due(*args: object, **kwargs: object) -> object:
        entered.set()
        assert gate.wait(30)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sched, "send_due", slow_send_due)
    # Notifications due after the pinned clock: the sweep then plans a wake-up (get_job).
    db = open_existing(db_path)
    try:
        make_ready(db)
        connection_to_sapa(db)
    finally:
        db.close()
    monkeypatch.setenv("ONBOARDING_NOW", "2021-06-03T12:00")
    scheduler, sweeper = sched.build_scheduler(
        db_path, load_config(db_path, env={}), 60, BackgroundScheduler
    )
    scheduler.start()
    assert entered.wait(30)
    stopper = threading.Thread(target=sched.stop, args=(scheduler, sweeper), daemon=True)
    stopper.start()
    deadline = time.monotonic() + 10
    while scheduler.state != 0 and time.monotonic() < deadline:  # 0: STATE_STOPPED
        time.sleep(0.01)
    time.sleep(0.2)  # let the stopper reach its wait, as a signal would
    gate.set()
    stopper.join(15)
    assert not stopper.is_alive(), "stopping deadlocked with the sweep"
    assert sweeper.runs == 1
    db = open_existing(db_path)
    try:
        assert health.last_sweep(db) is not None
    finally:
        db.close()
