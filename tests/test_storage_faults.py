"""Storage faults and files that are not ours (issue 11), through the real CLI on real files.

The matrix runs every command family (init, track, import, report, reminders, audit, backup,
restore, serve) against each fault: a full disk, a read-only file, folder or file system, a
text file, another application's SQLite database, a database from a newer version of this tool
and a missing folder. Each run must exit 0 (a read the fault allows) or 2 with one line on
stderr and no traceback, and leave the database file byte-identical (no journal-mode switch,
no stamp, no table) and no temporary file behind.

Faults are made the way they happen: a full or read-only file system is a small tmpfs (filled,
or remounted read-only), which needs root, so those rows are skipped with the reason elsewhere;
a read-only file or folder is ``chattr +i`` for root (root ignores the mode bits) and
``chmod a-w`` otherwise. A full disk is also reproduced on any machine with the test hook
``ONBOARDING_TEST_MAX_PAGE_COUNT`` (``PRAGMA max_page_count``, onboarding.db).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import cli
from onboarding.db import (
    APPLICATION_ID,
    TEST_MAX_PAGES_ENV,
    current_schema_version,
    migrations,
)

HOSTILE = Path(__file__).parent / "hostile" / "restore"
ENV = {"ONBOARDING_ACTOR": "tester", "ONBOARDING_NOW": "2021-06-01T12:00"}
STATUS_CSV = (
    "municipality,system,status,date,kind,bob,connection_date,note\n"
    "Køge,Momentum,service_agreements,2021-05-20,connection,,2021-09-01,\n"
)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --- the database, built once ----------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    db: Path  # an initialised database with one connection track (#1), WAL folded in
    backup: Path  # a backup of it, for 'restore'
    many: Path  # the same with eleven connection tracks in one state, for bulk advance


def _cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli.cli, args, env={**ENV, **(env or {})})


def _fold_wal(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    folder = tmp_path_factory.mktemp("storage-base")
    db = folder / "base.db"
    assert _cli(["init", "--db", str(db)]).exit_code == 0
    start = ["track", "start", "connection", "--system", "Momentum", "--at", "2021-05-01"]
    assert _cli([*start, "--municipality", "Køge", "--db", str(db)]).exit_code == 0
    backup = folder / "backup.db"
    assert _cli(["backup", str(backup), "--db", str(db)]).exit_code == 0
    many = folder / "many.db"
    shutil.copyfile(db, many)
    for town in ("Aarhus", "Vejle", "Odense", "Aalborg", "Herning", "Horsens", "Randers"):
        assert _cli([*start, "--municipality", town, "--db", str(many)]).exit_code == 0
    for path in (db, many):
        _fold_wal(path)
    return Base(db, backup, many)


# --- making faults ---------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str = "2m") -> Iterator[Path]:
    """A small tmpfs at ``mount_point`` (root only; the test is skipped otherwise)."""
    if not IS_ROOT:
        pytest.skip("a full or read-only file system is made with a tmpfs mount, which needs root")
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of ``folder`` until at most ``leave`` bytes are free."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    block = b"\0" * 4096
    try:
        while True:
            stat = os.statvfs(folder)
            if leave and stat.f_bavail * stat.f_frsize <= leave:
                break
            os.write(fd, block)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def frozen(path: Path) -> Iterator[None]:
    """``path`` (a file or folder) read-only, even for root, until the block ends."""
    if IS_ROOT:
        if not shutil.which("chattr"):
            pytest.skip("root ignores file modes and chattr (e2fsprogs) is not installed")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)


Fault = Callable[[Base, Path], contextlib.AbstractContextManager[Path]]


@contextlib.contextmanager
def disk_full(base: Base, tmp: Path) -> Iterator[Path]:
    with tmpfs(tmp / "disk") as disk:
        shutil.copyfile(base.db, disk / "onboarding.db")
        fill(disk)
        yield disk / "onboarding.db"


@contextlib.contextmanager
def read_only_file(base: Base, tmp: Path) -> Iterator[Path]:
    (tmp / "ro").mkdir()
    db = tmp / "ro" / "onboarding.db"
    shutil.copyfile(base.db, db)
    with frozen(db):
        yield db


@contextlib.contextmanager
def read_only_folder(base: Base, tmp: Path) -> Iterator[Path]:
    (tmp / "ro").mkdir()
    db = tmp / "ro" / "onboarding.db"
    shutil.copyfile(base.db, db)  # no -wal or -shm beside it: SQLite must create them
    with frozen(db.parent):
        yield db


@contextlib.contextmanager
def read_only_filesystem(base: Base, tmp: Path) -> Iterator[Path]:
    with tmpfs(tmp / "disk") as disk:
        shutil.copyfile(base.db, disk / "onboarding.db")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        yield disk / "onboarding.db"


@contextlib.contextmanager
def text_file(base: Base, tmp: Path) -> Iterator[Path]:
    db = tmp / "notes.txt"
    db.write_text("Indkøbsliste\nmælk, brød\n", encoding="utf-8")
    yield db


@contextlib.contextmanager
def other_application(base: Base, tmp: Path) -> Iterator[Path]:
    db = tmp / "other.db"
    shutil.copyfile(HOSTILE / "other-application.db", db)
    yield db


@contextlib.contextmanager
def newer_schema(base: Base, tmp: Path) -> Iterator[Path]:
    db = tmp / "newer.db"
    shutil.copyfile(HOSTILE / "newer-version.db", db)
    yield db


@contextlib.contextmanager
def missing_folder(base: Base, tmp: Path) -> Iterator[Path]:
    yield tmp / "no-such-folder" / "onboarding.db"


#: fault -> (how to make it, whether a command that only reads still works)
FAULTS: dict[str, tuple[Fault, bool]] = {
    "disk-full": (disk_full, False),  # 0 bytes free: even a read cannot create the -shm file
    "read-only-file": (read_only_file, True),
    "read-only-folder": (read_only_folder, False),  # no room for the -wal and -shm files
    "read-only-filesystem": (read_only_filesystem, False),
    "text-file": (text_file, False),
    "other-application": (other_application, False),
    "newer-schema": (newer_schema, False),
    "missing-folder": (missing_folder, False),
}

#: command -> (arguments, whether it writes to the database). {csv}, {out} and {backup} are an
#: input file, a writable output folder and a backup, all outside the faulty folder.
COMMANDS: dict[str, tuple[list[str], bool]] = {
    "init": (["init"], True),
    "track-start": (["track", "start", "connection", "--municipality", "Roskilde", "--system",
                     "Momentum"], True),
    "track-advance": (["track", "advance", "1", "agree_date", "--set",
                       "connection_date=2021-09-01"], True),
    "track-bulk": (["track", "advance", "--where", "state=date_agreement", "agree_date",
                    "--set", "connection_date=2021-09-01"], True),
    "track-list": (["track", "list"], False),
    "import-status": (["import", "status", "{csv}"], True),
    "report-grid": (["report", "grid"], False),
    "report-rollout-html": (["report", "rollout", "--format", "html", "-o", "{out}/r.html"],
                            False),
    "reminders-send-due": (["reminders", "send-due"], True),
    "reminders-list": (["reminders", "list"], False),
    "audit-verify": (["audit", "verify"], False),
    "audit-export": (["audit", "export", "--format", "csv", "-o", "{out}/t.csv"], False),
    "backup": (["backup", "{out}/b.db"], False),
    "restore": (["restore", "{backup}"], True),
    "serve": (["serve", "--port", "9"], False),  # only where it stops before listening
}


def _args(template: list[str], base: Base, tmp: Path) -> list[str]:
    inputs = tmp / "inputs"
    inputs.mkdir(exist_ok=True)
    csv = inputs / "status.csv"
    csv.write_text(STATUS_CSV, encoding="utf-8")
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    values = {"csv": str(csv), "out": str(out), "backup": str(base.backup)}
    return [a.format(**values) for a in template]


def _state(db: Path) -> bytes | None:
    return db.read_bytes() if db.exists() else None


def assert_one_line_error(result: Result, prefix: str = "Error: ") -> str:
    """Exit 2, one 'Error:' line on stderr ('Fejl:' in Danish; after a bulk command's progress
    label, if any), no traceback; the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith(prefix), result.stderr
    assert lines[:-1] in ([], ["advancing"]), result.stderr
    return lines[-1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


CASES = [
    (fault, command)
    for fault in FAULTS
    for command in COMMANDS
    # serve would listen where nothing stops it: only where it must stop at the start
    if not (command == "serve" and FAULTS[fault][1])
]


@pytest.mark.parametrize(("fault", "command"), CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_storage_fault_is_one_line_exit_2_and_changes_nothing(
    base: Base, tmp_path: Path, fault: str, command: str
) -> None:
    """Every command under every fault: exit 2 with one line and no traceback (or exit 0 for
    a read the fault allows), the database byte-identical, no temporary file left."""
    make, reads_work = FAULTS[fault]
    template, writes = COMMANDS[command]
    args = _args(template, base, tmp_path)
    with make(base, tmp_path) as db:
        before = _state(db)
        result = _cli([*args, "--db", str(db)])
        after = _state(db)
        assert after == before  # byte-identical (or still absent)
        if reads_work and not writes:
            assert result.exit_code == 0, (result.output, result.exception)
        else:
            err = assert_one_line_error(result)
            assert str(db) in err or str(db.parent) in err, err
            # never advise 'init' for a file that init must not touch either
            assert "onboarding init" not in err, err
    assert _leftovers(tmp_path) == []
    if fault == "missing-folder":
        assert not db.parent.exists()


#: What each fault's line says of its cause, per language.
SAYS = {
    "en": {
        "disk-full": "is full",
        "read-only-file": "is read-only",
        "read-only-folder": "folder",
        "read-only-filesystem": "read-only file system",
        "text-file": "is not a SQLite database",
        "other-application": "another application's SQLite database",
        "newer-schema": "made by a newer version",
        "missing-folder": "does not exist",
    },
    "da": {
        "disk-full": "er fuld",
        "read-only-file": "er skrivebeskyttet",
        "read-only-folder": "mappen",
        "read-only-filesystem": "skrivebeskyttet filsystem",
        "text-file": "er ikke en SQLite-database",
        "other-application": "et andet programs SQLite-database",
        "newer-schema": "lavet af en nyere version af dette værktøj (skema 999_from_the_future)",
        "missing-folder": "findes ikke",
    },
}


@pytest.mark.parametrize("lang", ["en", "da"])
def test_storage_fault_messages_say_what_is_wrong(base: Base, tmp_path: Path, lang: str) -> None:
    """Each fault's line names its cause and the file, in the CLI's language (Danish by
    default; the English stays the message id for logs and JSON), and a newer schema names
    both versions."""
    prefix = {"en": "Error: ", "da": "Fejl: "}[lang]
    for fault, text in SAYS[lang].items():
        make, _ = FAULTS[fault]
        case = tmp_path / fault
        case.mkdir()
        try:
            with make(base, case) as db:
                args = ["track", "advance", "1", "cancel", "--set", "reason=x", "--db", str(db)]
                err = assert_one_line_error(_cli(args, {"ONBOARDING_LANG": lang}), prefix)
        except pytest.skip.Exception:
            continue
        assert text in err and str(db.parent) in err, (fault, err)
        if fault == "newer-schema":
            ours = migrations._migrations[-1].name  # the newest schema this version knows
            assert "999_from_the_future" in err and ours in err, err


# --- output files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["report", "rollout", "--format", "html", "-o", "{nodir}/r.html"],
        ["report", "rollout", "-o", "{nodir}/r.txt"],
        ["audit", "export", "-o", "{nodir}/t.csv"],
        ["audit", "export", "--format", "csv", "-o", "{nodir}/t.csv"],
        ["backup", "{nodir}/b.db"],
    ],
    ids=["rollout-html", "rollout-text", "audit-jsonl", "audit-csv", "backup"],
)
def test_storage_output_to_missing_folder_is_one_line(
    base: Base, tmp_path: Path, args: list[str]
) -> None:
    """-o (or a backup) into a folder that does not exist: one line, nothing created."""
    db = tmp_path / "onboarding.db"
    shutil.copyfile(base.db, db)
    nodir = tmp_path / "nodir"
    before = db.read_bytes()
    err = assert_one_line_error(
        _cli([*(a.format(nodir=nodir) for a in args), "--db", str(db)])
    )
    assert str(nodir) in err and "does not exist" in err, err
    assert not nodir.exists()
    _fold_wal(db)
    assert db.read_bytes() == before


def test_storage_output_on_full_disk_leaves_no_partial_file(base: Base, tmp_path: Path) -> None:
    """A report, an export or a backup onto a full disk: one line, and neither a partial
    file nor a temporary one (a failed backup used to leave '*.tmp-journal')."""
    db = tmp_path / "onboarding.db"
    shutil.copyfile(base.db, db)
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        # Room to start the copy but not finish it; then room for the copy but not for
        # switching it out of WAL (which used to leave its -wal and -shm files behind).
        for leave in (48 * 1024, db.stat().st_size + 8 * 1024):
            with contextlib.suppress(FileNotFoundError):
                (disk / "filler").unlink()
            fill(disk, leave=leave)
            err = assert_one_line_error(_cli(["backup", f"{disk}/b.db", "--db", str(db)]))
            assert "is full" in err and f"{disk}/b.db" in err, err
            assert sorted(p.name for p in disk.iterdir()) == ["filler"], leave
        fill(disk)  # no room at all
        for args in (
            ["audit", "export", "-o", f"{disk}/t.jsonl"],
            ["report", "rollout", "--format", "html", "-o", f"{disk}/r.html"],
        ):
            err = assert_one_line_error(_cli([*args, "--db", str(db)]))
            assert "is full" in err, err
            assert sorted(p.name for p in disk.iterdir()) == ["filler"], args


# --- a failed transaction says its own cause ------------------------------------------------


def test_storage_bulk_advance_on_full_disk_reports_the_full_disk(
    base: Base, tmp_path: Path
) -> None:
    """Bulk advance whose COMMIT finds the disk full says so (it said "cannot rollback - no
    transaction is active"): SQLite ended the transaction itself and the rollback must not
    hide the cause. Nothing moved."""
    with tmpfs(tmp_path / "disk") as disk:
        db = disk / "onboarding.db"
        shutil.copyfile(base.many, db)
        fill(disk, leave=48 * 1024)
        before = db.read_bytes()
        result = _cli([*COMMANDS["track-bulk"][0], "--db", str(db)])
        err = assert_one_line_error(result)
        assert "is full" in err and "rollback" not in err, err
        assert db.read_bytes() == before


@pytest.mark.parametrize("command", ["track-bulk", "import-status", "track-start"])
def test_storage_page_limit_is_a_full_disk_on_any_machine(
    base: Base, tmp_path: Path, command: str
) -> None:
    """The portable full disk (test hook: PRAGMA max_page_count at the file's size): a write
    that needs a page gives the full-disk line, exit 2, and the database unchanged."""
    db = tmp_path / "onboarding.db"
    shutil.copyfile(base.many, db)
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    before = db.read_bytes()
    args = _args(COMMANDS[command][0], base, tmp_path)
    if command == "track-start":  # a long note needs new pages in any layout
        args += ["--note", "x" * 3900 * 3]
    if command == "import-status":  # many rows: a status file for every municipality
        args = ["import", "status", str(_big_status_csv(tmp_path))]
    result = _cli([*args, "--db", str(db)], env={TEST_MAX_PAGES_ENV: str(pages)})
    err = assert_one_line_error(result)
    assert "is full" in err and "rollback" not in err, err
    _fold_wal(db)
    assert db.read_bytes() == before


def _big_status_csv(tmp: Path) -> Path:
    path = tmp / "big-status.csv"
    towns = [
        "Aarhus", "Vejle", "Odense", "Aalborg", "Herning", "Horsens", "Randers", "Kolding",
        "Esbjerg", "Silkeborg", "Viborg", "Holstebro", "Roskilde", "Næstved", "Slagelse",
    ]
    rows = [f"{t},Momentum,service_agreements,2021-05-20,connection,,2021-09-01," for t in towns]
    path.write_text(
        "municipality,system,status,date,kind,bob,connection_date,note\n" + "\n".join(rows)
        + "\n",
        encoding="utf-8",
    )
    return path


# --- only our files ---------------------------------------------------------------------------


def _app_id(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA application_id").fetchone()[0])
    finally:
        conn.close()


def test_storage_init_stamps_application_id(tmp_path: Path) -> None:
    """A new database carries our application_id ("ONBD"), in the file's header bytes 68-71."""
    db = tmp_path / "new.db"
    assert _cli(["init", "--db", str(db)]).exit_code == 0
    _fold_wal(db)
    assert db.read_bytes()[68:72] == b"ONBD"
    assert _app_id(db) == APPLICATION_ID


def test_storage_database_from_before_application_id_is_recognised_and_stamped_by_init(
    base: Base, tmp_path: Path
) -> None:
    """A database written before the id existed (0, our migrations) works as before; everyday
    commands do not stamp it; init does, and says the schema is current."""
    db = tmp_path / "old.db"
    shutil.copyfile(base.db, db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA application_id = 0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = db.read_bytes()
    assert _cli(["track", "list", "--db", str(db)]).exit_code == 0
    assert db.read_bytes() == before
    result = _cli(["init", "--db", str(db)])
    assert result.exit_code == 0 and "already current" in result.stdout, result.output
    assert _app_id(db) == APPLICATION_ID


def test_storage_empty_file_is_initialised(tmp_path: Path) -> None:
    """An empty file (as 'touch' makes) is new: init creates the database in it."""
    db = tmp_path / "empty.db"
    db.touch()
    assert _cli(["init", "--db", str(db)]).exit_code == 0
    assert _app_id(db) == APPLICATION_ID


def test_storage_other_application_with_its_own_id_is_refused(tmp_path: Path) -> None:
    """A SQLite file with another application_id (even with tables like ours) is refused by
    every kind of command, byte-identical afterwards."""
    db = tmp_path / "foreign.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA application_id = {int.from_bytes(b'GPKG', 'big')}")  # GeoPackage
    conn.execute("CREATE TABLE tracks (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    for args in (["init"], ["track", "list"], ["report", "grid"], ["backup", str(tmp_path / "b")]):
        err = assert_one_line_error(_cli([*args, "--db", str(db)]))
        assert "another application's" in err and "0x47504b47" in err, err
    assert db.read_bytes() == before


def test_storage_newer_user_version_is_refused_naming_both_versions(
    base: Base, tmp_path: Path
) -> None:
    """A database whose schema version is beyond what this version knows is refused by
    reads, writes and init alike, naming its version and ours; it is not changed."""
    db = tmp_path / "newer.db"
    shutil.copyfile(base.db, db)
    conn = sqlite3.connect(db)
    newer = current_schema_version() + 1  # not a constant: every new migration moves it
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = db.read_bytes()
    for args in (["track", "list"], ["init"], ["track", "advance", "1", "cancel", "--set",
                                                "reason=x"]):
        err = assert_one_line_error(_cli([*args, "--db", str(db)]))
        assert "newer version" in err and f"schema version {newer}" in err, err
        assert f"schema version {current_schema_version()}" in err, err
    assert db.read_bytes() == before


# --- the mapping itself ----------------------------------------------------------------------


def test_storage_lock_held_too_long_is_one_line(tmp_path: Path) -> None:
    """A real "database is locked" (another connection holds an exclusive lock) reads as the
    file staying locked, naming it; a bug-shaped SQLite error is left alone (exit 1)."""
    from onboarding.storage import StorageError, describe

    db = tmp_path / "locked.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(db, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as caught:
        other.execute("SELECT * FROM t")
    holder.execute("ROLLBACK")
    holder.close()
    other.close()
    error = describe(caught.value, db)
    assert isinstance(error, StorageError)
    assert str(db) in str(error) and "locked by another process" in str(error)
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as bug:
        conn.execute("SELECT no_such_column FROM sqlite_master")
    assert describe(bug.value, db) is None


def test_storage_stdout_to_full_disk_is_one_line(base: Base, tmp_path: Path) -> None:
    """Output redirected to a file on a full disk (a real process): one line, exit 2."""
    import sys

    db = tmp_path / "onboarding.db"
    shutil.copyfile(base.db, db)
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        fill(disk)
        with open(disk / "trail.jsonl", "wb") as out:
            done = subprocess.run(
                [sys.executable, "-m", "cli", "audit", "export", "--db", str(db)],
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **ENV},
                cwd=Path(__file__).parent.parent,
                timeout=60,
            )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Error: the disk is full") and done.stderr.count("\n") == 1


def test_storage_no_permission_is_one_line(base: Base) -> None:
    """A database the user may not read (mode 000; root reads anything, so as root the
    command runs in a child process that has become 'nobody'): one line, exit 2."""
    import json
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="onboarding-perm-"))  # outside root's 0700 tmp
    try:
        folder.chmod(0o777)
        db = folder / "onboarding.db"
        shutil.copyfile(base.db, db)
        assert _cli(["track", "list", "--db", str(db)]).exit_code == 0  # imports all it needs
        db.chmod(0o000)
        before = (db.stat().st_size, db.stat().st_mtime_ns)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop root, run the command, report, leave at once
            try:
                if IS_ROOT:
                    os.setgid(65534)
                    os.setuid(65534)
                result = _cli(["track", "list", "--db", str(db)])
                report = {"code": result.exit_code, "err": result.stderr}
            except BaseException as exc:  # reported to the parent
                report = {"code": -1, "err": repr(exc)}
            os.write(write, json.dumps(report).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            report = json.loads(pipe.read() or b"{}")
        os.waitpid(pid, 0)
        assert report.get("code") == 2, report
        assert report["err"] == (
            f"Error: no permission to read {db}: check the file's owner and mode\n"
        )
        assert (db.stat().st_size, db.stat().st_mtime_ns) == before
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("room", ["none", "some", "read-only-folder"])
def test_storage_init_of_new_database_that_fails_leaves_nothing(
    tmp_path: Path, room: str
) -> None:
    """'init' of a new database on a full disk (no room, or room for part of it) or in a
    read-only folder: one line, and no half-made database or journal left behind."""
    if room == "read-only-folder":
        folder = tmp_path / "ro"
        folder.mkdir()
        with frozen(folder):
            err = assert_one_line_error(_cli(["init", "--db", str(folder / "new.db")]))
        assert "read-only" in err, err
        assert list(folder.iterdir()) == []
        return
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        fill(disk, leave=0 if room == "none" else 200 * 1024)
        err = assert_one_line_error(_cli(["init", "--db", str(disk / "new.db")]))
        assert "is full" in err, err
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
