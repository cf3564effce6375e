"""Crash safety: the real CLI killed with SIGKILL at random points, many times (issue 5).

Each test runs the command once to the end for reference, then again and again on a fresh copy
of the same database, killing it after a random delay spread over its whole run (start-up,
the work, the commit; sometimes it has just finished). After every kill: ``PRAGMA
integrity_check`` is ok, every track equals the replay of its history, the chain verifies
(``reliability.check_consistent``). Then the same command is run again: it finishes the work,
and the database holds exactly what the uninterrupted run wrote (no duplicate history rows;
for reminders, every notification sent once and one .eml file per message).

Bounded for CI: ``KILLS`` kills per command, at most 1,500 tracks or 120 rows each.
"""

from __future__ import annotations

import csv
import random
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from notifications.send import eml_name
from onboarding import registry
from onboarding.db import open_existing
from tests import reliability as rel

KILLS = 10
BULK_TRACKS = 1500
REMINDER_TRACKS = 25
IMPORT_ROWS = 120
SEND_AT = "2021-06-01T12:00"
#: The re-run of send-due comes after the killed runner's claims (15 min leases) ran out.
LATER = "2021-06-01T13:00"


def _kill_runs(
    base: Path, folder: Path, args: tuple[str, ...], took: float, seed: int
) -> list[tuple[Path, int]]:
    """Start ``args`` on fresh copies of ``base`` and SIGKILL each at a random moment within
    the reference run's time (start-up, work, commit); (database, return code) each."""
    rng = random.Random(seed)
    out = []
    for k in range(KILLS):
        work = rel.copy_db(base, folder / f"kill{k}.db")
        proc = rel.cli_process(work, *args)
        time.sleep(rng.uniform(0.1 * took, 0.95 * took))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        out.append((work, proc.returncode))
    return out


def _rerun(work: Path, *args: str, now: str = rel.NOW) -> str:
    """The same command again, to the end (in-process, the same CLI code, pinned clock)."""
    env = {"ONBOARDING_NOW": now, "ONBOARDING_ACTOR": "tester", "ONBOARDING_CONFIG": ""}
    result = CliRunner().invoke(cli.cli, [*args, "--db", str(work)], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _reference(base: Path, folder: Path, args: tuple[str, ...]) -> tuple[Path, float]:
    """The uninterrupted run's database and its time: the shorter of two runs, so that a
    slow first run (cold caches, a busy machine) does not put the kills after the end."""
    took = []
    for n in range(2):
        ref = rel.copy_db(base, folder / f"reference{n}.db")
        started = time.monotonic()
        code, output = rel.cli_run(ref, *args)
        assert code == 0, output
        took.append(time.monotonic() - started)
    return ref, min(took)


@pytest.fixture(scope="module")
def bulk_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 connection tracks waiting for their date agreement."""
    path = tmp_path_factory.mktemp("bulk") / "base.db"
    rel.init(path)
    rel.start_connections(path, BULK_TRACKS)
    return path


def test_crash_bulk_advance_killed_anywhere_is_all_or_nothing(
    bulk_base: Path, tmp_path: Path
) -> None:
    """A bulk advance killed at any point leaves all 1,500 moves or none, a sound file and an
    intact chain; running it again gives exactly the uninterrupted run's tracks and history."""
    args = ("track", "advance", "--where", "definition=connection state=date_agreement",
            "agree_date", "--set", "connection_date=2027-01-01", "--at", "2021-05-03T10:00")
    ref, took = _reference(bulk_base, tmp_path, args)
    expected = rel.tracks_and_history(ref)
    killed = 0
    for work, code in _kill_runs(bulk_base, tmp_path, args, took, seed=5):
        killed += code == -signal.SIGKILL
        state = rel.check_consistent(work)
        assert state["history"] in (BULK_TRACKS, 2 * BULK_TRACKS)  # all or nothing
        _rerun(work, *args)
        assert rel.tracks_and_history(work) == expected
    assert killed >= KILLS // 3  # kills hit a running process (not only a finished one)


@pytest.fixture(scope="module")
def import_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An initialised database and a status file of 120 rows (two steps for half of them)."""
    folder = tmp_path_factory.mktemp("import")
    base = folder / "base.db"
    rel.init(base)
    db = open_existing(base)
    try:
        names = [str(m["name"]) for m in registry.list_municipalities(db)]
        systems = [str(s["label"]) for s in registry.list_systems(db)]
    finally:
        db.close()
    path = folder / "status-2021-03.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["municipality", "system", "status", "date", "note"])
        for i in range(IMPORT_ROWS):
            status = ("Endnu ikke aftalt", "service_agreements")[i % 2]
            w.writerow([names[i % 98], systems[i // 98], status, f"2021-03-{1 + i % 28:02d}",
                        "Aftale på vej – æøå"])
    return base, path


def test_crash_status_import_killed_anywhere_is_whole_file_or_nothing(
    import_file: tuple[Path, Path], tmp_path: Path
) -> None:
    """A status import killed at any point has imported the whole file or nothing; importing
    it again gives exactly the uninterrupted import's tracks and history."""
    base, path = import_file
    args = ("import", "status", str(path))
    ref, took = _reference(base, tmp_path, args)
    expected = rel.tracks_and_history(ref)
    steps = len(expected[1])
    for work, _code in _kill_runs(base, tmp_path, args, took, seed=7):
        state = rel.check_consistent(work)
        assert (state["tracks"], state["history"]) in ((0, 0), (IMPORT_ROWS, steps))
        _rerun(work, *args)
        assert rel.tracks_and_history(work) == expected


@pytest.fixture(scope="module")
def reminder_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 connection tracks started on 1 April: by 1 June each has a reminder and three
    escalations due (75 messages: rung 1 supersedes the reminder to the same person), with a
    contact for every role they name."""
    path = tmp_path_factory.mktemp("remind") / "base.db"
    rel.init(path)
    rel.add_contacts(path)
    rel.start_connections(path, REMINDER_TRACKS)
    return path


def _emails(work: Path) -> list[str]:
    return sorted(p.name for p in work.with_name(f"{work.stem}-outbox").glob("*.eml"))


def test_crash_reminder_run_killed_anywhere_sends_each_message_once(
    reminder_base: Path, tmp_path: Path
) -> None:
    """A send-due run killed at any point leaves a sound database; running it again (after
    the dead runner's claims expired) sends the rest: every notification sent once, one .eml
    file per message (the message in flight at the kill is rewritten under the same name)."""
    args = ("reminders", "send-due", "--at", SEND_AT)
    ref, took = _reference(reminder_base, tmp_path, args)
    ref_state = rel.check_consistent(ref)
    total = ref_state["outbox"]["sent"]
    assert total == 3 * REMINDER_TRACKS and len(_emails(ref)) == total
    assert ref_state["outbox"]["superseded"] == REMINDER_TRACKS
    for work, _code in _kill_runs(reminder_base, tmp_path, args, took, seed=11):
        state = rel.check_consistent(work)
        assert sum(state["outbox"].values()) == total + REMINDER_TRACKS
        assert set(state["outbox"]) <= {"pending", "sending", "sent", "superseded"}
        before = rel.counts(state["outbox"], "sent")[0]
        assert len(_emails(work)) >= before  # a message is written before it is recorded
        _rerun(work, *args, now=LATER)
        after = rel.check_consistent(work)
        assert after["outbox"] == {"sent": total, "superseded": REMINDER_TRACKS}
        sent_ids = rel.table_dump(work, "SELECT message_id FROM outbox WHERE status = 'sent'")
        assert len({m for (m,) in sent_ids}) == total
        assert _emails(work) == sorted(eml_name(m) for (m,) in sent_ids)
        assert rel.tracks_and_history(work) == rel.tracks_and_history(ref)
