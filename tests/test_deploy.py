"""Service units and the container (issue 15): deploy/ checked by systemd-analyze where it is
available, its hardening read from the files, and the container's supervisor run for real."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
INSTALLED = "/opt/onboarding/venv/bin/onboarding"
VENV_BIN = Path(sys.executable).parent


def _settings(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_deploy_units_exist_for_serve_and_scheduler() -> None:
    """deploy/ has one unit for the web page and one for the scheduler."""
    commands = {_settings(u)["ExecStart"][0].split()[1] for u in UNITS}
    assert commands == {"serve", "scheduler"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_deploy_unit_is_hardened(unit: Path) -> None:
    """Each unit runs as a dedicated (or dynamic) user, with the system read-only except the
    data folder that holds $ONBOARDING_DB, restarts on failure and logs JSON."""
    s = _settings(unit)
    assert s.get("User") == ["onboarding"] or s.get("DynamicUser") == ["yes"]
    assert s["ProtectSystem"] == ["strict"]
    [data] = s["ReadWritePaths"]
    env = dict(e.split("=", 1) for e in s["Environment"])
    assert Path(env["ONBOARDING_DB"]).parent == Path(data)
    assert s["Restart"] == ["on-failure"]
    assert s["NoNewPrivileges"] == ["yes"] and s["CapabilityBoundingSet"] == [""]
    command = shlex.split(s["ExecStart"][0])
    assert command[0] == INSTALLED
    assert command[command.index("--log-format") + 1] == "json"
    if command[1] == "serve":
        assert command[command.index("--host") + 1] == "127.0.0.1"  # the TLS proxy is in front


def test_deploy_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts both units without a warning (the install path of
    ExecStart pointed at this checkout's command, which verify requires to exist)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (not a systemd system)")
    command = VENV_BIN / "onboarding"
    assert command.exists()
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text(encoding="utf-8").replace(INSTALLED, str(command)))
        copies.append(str(copy))
    result = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=120
    )
    if "Failed to connect" in result.stderr or "System has not been booted" in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()}")
    # verify exits 0 on settings it ignores: any output at all is a finding.
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_containerfile_copies_what_exists_and_starts_the_supervisor() -> None:
    """Every file the Containerfile copies exists, and it runs deploy/container-start.sh,
    which is valid bash."""
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    sources = [
        part
        for line in text.splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    ]
    assert "deploy/container-start.sh" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
    assert 'CMD ["/usr/local/bin/onboarding-start"]' in text
    subprocess.run(["bash", "-n", str(DEPLOY / "container-start.sh")], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _start_supervisor(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        ONBOARDING_DB=str(tmp_path / "data" / "onboarding.db"),
        ONBOARDING_HOST="127.0.0.1",
        ONBOARDING_PORT=str(port),
        ONBOARDING_INTERVAL="1",
        ONBOARDING_SCHEDULER_MAX_AGE="30",
    )
    (tmp_path / "data").mkdir()
    proc = subprocess.Popen(
        ["bash", str(DEPLOY / "container-start.sh")],
        cwd=tmp_path / "data", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen[bytes], base: str) -> None:
    """Until /readyz says ready: the page answers and the scheduler's heartbeat is there."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "the supervisor ended early"
        assert time.monotonic() < deadline, "never ready"
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def test_container_supervisor_runs_both_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """deploy/container-start.sh initialises the database, runs the page and the scheduler
    (/readyz is ready only with the scheduler's heartbeat), and on SIGTERM stops both and
    exits 0."""
    proc, base = _start_supervisor(tmp_path)
    try:
        _wait_ready(proc, base)
        children = _children(proc.pid)
        assert len(children) == 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)


def test_container_supervisor_stops_the_pair_when_one_dies(tmp_path: Path) -> None:
    """When the scheduler dies (SIGKILL), the supervisor stops the page too and exits non-zero,
    so the container's restart policy starts a whole pair again."""
    proc, base = _start_supervisor(tmp_path)
    try:
        _wait_ready(proc, base)
        children = _children(proc.pid)
        scheduler = next(
            pid for pid in children
            if b"scheduler" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        os.kill(scheduler, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, err.decode()
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
