"""Recovery point and recovery time of continuous replication (issue 15, docs/replication.md).

    .venv/bin/python -m bench.replication                 # both, about 2 minutes
    .venv/bin/python -m bench.replication --rpo-only --trials 10
    .venv/bin/python -m bench.replication --sizes 10000,100000

Recovery point (RPO): a fresh database replicated by ``onboarding replicate`` to a folder while
a writer starts tracks one commit at a time as fast as it can; after a few seconds Litestream
and the writer are killed with SIGKILL at the same instant, the replica is restored, and the
commits the restore lacks are counted, with the age (before the kill) of the oldest lost one.
Run with this tool's folder setting (sync every 250 ms) and with the 1 s a bucket uses.

Recovery time (RTO): restoring from a replica of a ``national`` benchmark database
(``bench.data``: ``n`` tracks, ten history rows each), against restoring a backup of the same
database (``onboarding restore FILE``), both the library calls behind the commands, as a
ratio; with the time of each part (Litestream fetching the pages, our checks, putting it in
place).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(ONBOARDING_ACTOR="bench", PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    return env


def _cli(*args: str, stderr: Path | None = None) -> subprocess.Popen[bytes]:
    err = stderr.open("ab") if stderr else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args], cwd=ROOT, env=_env(),
            stdout=subprocess.DEVNULL, stderr=err,
        )
    finally:
        if stderr:
            err.close()  # type: ignore[union-attr]


def _wait_line(log: Path, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} never appeared in {log}")


def writer(db_path: str, log_path: str) -> None:
    """Start connection tracks, one commit each, as fast as possible; log each committed
    history id with the wall time right after its commit."""
    from onboarding import engine, registry
    from onboarding.db import open_existing

    db = open_existing(db_path)
    municipalities = [str(m["code"]) for m in registry.list_municipalities(db)]
    systems = [str(s["label"]) for s in registry.list_systems(db)]
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        for index in ("sd", "ydelse", "sd,ydelse"):
            for system in systems:
                for municipality in municipalities:
                    subject = engine.Subject(municipality=municipality, system=system, index=index)
                    engine.start(db, "connection", subject, engine.Act("bench", "coordinator"))
                    head = db.execute("SELECT max(id) FROM history").fetchone()[0]
                    log.write(f"{head} {time.time():.6f}\n")


def rpo_trial(folder: Path, sync_interval: str, seconds: float) -> tuple[int, int, float]:
    """One kill: (commits made, commits lost, age in seconds of the oldest lost commit)."""
    import sqlite3

    db, replica, log, out = (folder / "o.db", folder / "replica", folder / "commits.log",
                             folder / "replicate.log")
    subprocess.run([sys.executable, "-m", "cli", "init", "--db", str(db)], cwd=ROOT, env=_env(),
                   check=True, capture_output=True)
    rep = _cli("replicate", "--to", str(replica), "--sync-interval", sync_interval, "--db",
               str(db), stderr=out)
    line = _wait_line(out, "replication started")
    litestream = int(line.rsplit("litestream pid ", 1)[1].rstrip(")"))
    _wait_line(out, "replicating to")
    wr = subprocess.Popen([sys.executable, "-m", "bench.replication", "writer", str(db),
                           str(log)], cwd=ROOT, env=_env())
    time.sleep(seconds)
    os.kill(litestream, signal.SIGKILL)
    os.kill(wr.pid, signal.SIGKILL)
    killed = time.time()
    rep.send_signal(signal.SIGKILL)
    wr.wait()
    rep.wait()
    commits = [(int(a), float(b)) for a, b in (x.split() for x in log.read_text().splitlines())]
    restored = folder / "restored.db"
    subprocess.run([sys.executable, "-m", "cli", "restore", "--from-replica", str(replica),
                    "--db", str(restored)], cwd=ROOT, env=_env(), check=True,
                   capture_output=True)
    conn = sqlite3.connect(restored)
    back = int(conn.execute("SELECT count(*) FROM history").fetchone()[0])
    conn.close()
    lost = [at for head, at in commits if head > back]
    return len(commits), len(lost), (killed - lost[0]) if lost else 0.0


def rpo(trials: int, seconds: float) -> None:
    print("Recovery point: SIGKILL of Litestream and a writer at full speed, then restore")
    print(f"{'sync':>6} {'trials':>6} {'commits/s':>9} {'lost (median, max)':>19} "
          f"{'oldest lost, s (median, max)':>29}")
    for sync in ("250ms", "1s"):
        made, lost, ages = [], [], []
        for _ in range(trials):
            with tempfile.TemporaryDirectory(prefix="bench-rpo-") as tmp:
                n, k, age = rpo_trial(Path(tmp), sync, seconds)
            made.append(n / seconds)
            lost.append(k)
            ages.append(age)
        print(f"{sync:>6} {trials:>6} {statistics.median(made):>9.0f} "
              f"{statistics.median(lost):>9.0f} {max(lost):>9} "
              f"{statistics.median(ages):>14.3f} {max(ages):>14.3f}", flush=True)


def rto(sizes: list[int], repeats: int) -> None:
    from bench import data
    from onboarding import replication
    from onboarding.backup import restore as restore_backup

    print("\nRecovery time: restore --from-replica against restore FILE (same database)")
    print(f"{'tracks':>8} {'history':>9} {'MB':>6} {'replica s':>9} {'backup s':>9} "
          f"{'ratio':>6}  replica, median s: fetch / check / put in place")
    binary = str(replication.litestream_binary())
    for n in sizes:
        source = data.cached("national", n)
        with tempfile.TemporaryDirectory(prefix="bench-rto-") as tmp:
            folder = Path(tmp)
            db = data.copy(source, folder / "o.db")
            replica = folder / "replica"
            subprocess.run([binary, "replicate", "-once", str(db), replica.as_uri()],
                           check=True, capture_output=True)
            backup = folder / "backup.db"
            subprocess.run([sys.executable, "-m", "cli", "backup", str(backup), "--db", str(db)],
                           cwd=ROOT, env=_env(), check=True, capture_output=True)
            from_replica: list[float] = []
            from_backup: list[float] = []
            parts: dict[str, list[float]] = {"fetch": [], "check": [], "put_in_place": []}
            for i in range(repeats):
                target = folder / f"r{i}.db"
                began = time.perf_counter()
                info = replication.restore_from_replica(str(replica), target)
                from_replica.append(time.perf_counter() - began)
                for part, took in info["seconds"].items():
                    parts[part].append(took)
                target.unlink()
                target = folder / f"b{i}.db"
                began = time.perf_counter()
                restore_backup(backup, target)
                from_backup.append(time.perf_counter() - began)
                target.unlink()
            mb = db.stat().st_size / 1e6
            a, b = statistics.median(from_replica), statistics.median(from_backup)
            each = " / ".join(f"{statistics.median(v):.2f}" for v in parts.values())
            print(f"{n:>8} {n * 10:>9} {mb:>6.0f} {a:>9.2f} {b:>9.2f} {a / b:>6.2f}  {each}",
                  flush=True)
            shutil.rmtree(replica, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["writer"]:
        writer(args[1], args[2])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.replication")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rpo-only", action="store_true")
    parser.add_argument("--rto-only", action="store_true")
    opts = parser.parse_args(args)
    if not opts.rto_only:
        rpo(opts.trials, opts.seconds)
    if not opts.rpo_only:
        rto([int(s) for s in opts.sizes.split(",")], opts.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
