"""Tracks through the real CLI on a real database file: start, advance, show, history, why."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from tests.support import agree_date, make_ready, ok, ok_json, run, snapshot, start_connection

EIGHT_STEPS = [
    ("agree_date", "municipality-pl", ["--set", "connection_date=2021-09-01"]),
    ("approve_agreements", "agreement-admin", []),
    ("update_dpa", "bob-agreement-admin", []),
    ("request_display", "sapa-owner", []),
    ("open_display", "coordinator", []),
    ("complete_setup", "sapa-admin", ["--set", "kle_numbers=32.18.00"]),
    ("load_complete", "vendor", []),
]


@pytest.fixture
def ready_db(db_path: Path, runner: CliRunner) -> Path:
    """A database where KMD Momentum is ready for rollout (pilot: Aarhus)."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
    return db_path


def test_connection_walks_all_eight_steps_to_live(runner: CliRunner, ready_db: Path) -> None:
    """A BoB connection of a real municipality goes through all eight steps, each in history."""
    tid = int(
        ok(
            runner,
            ready_db,
            "track",
            "start", "--quiet",
            "connection",
            "--municipality",
            "751",
            "--system",
            "Momentum",
            "--bob",
            "--at",
            "2021-04-01T09:00",
        ).stdout
    )
    for day, (trigger, role, extra) in enumerate(EIGHT_STEPS, start=6):
        ok(
            runner,
            ready_db,
            "track",
            "advance",
            str(tid),
            trigger,
            "--role",
            role,
            "--at",
            f"2021-04-{day:02d}T10:00",
            *extra,
            actor=f"{role}@aarhus",
        )
    shown = ok_json(runner, ready_db, "track", "show", str(tid))
    assert shown["state"] == "live"
    assert shown["bucket"] == "I drift"
    assert shown["final"] is True
    assert shown["available"] == []
    history = ok_json(runner, ready_db, "track", "history", str(tid))
    assert [h["to"] for h in history] == [
        "date_agreement",
        "service_agreements",
        "data_processing_agreement",
        "sapa_request",
        "display_opening",
        "sapa_bob_setup",
        "data_load",
        "live",
    ]
    for row, (trigger, role, _) in zip(history[1:], EIGHT_STEPS, strict=True):
        assert row["trigger"] == trigger
        assert row["role"] == role
        assert row["actor"] == f"{role}@aarhus"
    assert history[1]["at"].startswith("2021-04-06T08:00")  # 10:00 Copenhagen (CEST) in UTC
    assert history[6]["fields"] == {"kle_numbers": "32.18.00"}


def test_connection_without_bob_skips_the_data_processing_agreement(
    runner: CliRunner, ready_db: Path
) -> None:
    """Step 3 applies only with BoB display: without it, approval leads to the SAPA request."""
    tid = start_connection(runner, ready_db)
    agree_date(runner, ready_db, tid)
    ok(runner, ready_db, "track", "advance", str(tid), "approve_agreements")
    assert ok_json(runner, ready_db, "track", "show", str(tid))["state"] == "sapa_request"


def test_start_refuses_a_second_open_track_for_the_same_subject(
    runner: CliRunner, db_path: Path
) -> None:
    """One open track per definition and subject: a second start exits 2 naming the first."""
    tid = start_connection(runner, db_path)
    before = snapshot(db_path)
    result = run(
        runner,
        db_path,
        "track",
        "start", "--quiet",
        "connection",
        "--municipality",
        "aarhus",
        "--system",
        "momentum",
    )
    assert result.exit_code == 2
    assert f"#{tid}" in result.stderr
    assert snapshot(db_path) == before


def test_start_requires_the_subject_options_of_the_definition(
    runner: CliRunner, db_path: Path
) -> None:
    """A connection without --municipality is refused with the options it needs."""
    result = run(runner, db_path, "track", "start", "--quiet", "connection", "--system", "Momentum")
    assert result.exit_code == 2
    assert "--municipality" in result.stderr
    result = run(
        runner,
        db_path,
        "track",
        "start", "--quiet",
        "connection",
        "--municipality",
        "Aarhus",
        "--system",
        "Momentum",
        "--wave",
        "B1",
    )
    assert result.exit_code == 2
    assert "--wave does not apply" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["advance", "{tid}", "load_complete"],
            "is not possible from state “1. Aftal tilslutningsdato med leverandøren”",
        ),
        (["advance", "{tid}", "fly_away"], "has no trigger 'fly_away'"),
        (["advance", "99999", "agree_date"], "unknown track '99999'"),
        (
            [
                "advance",
                "{tid}",
                "agree_date",
                "--role",
                "vendor",
                "--set",
                "connection_date=2027-01-01",
            ],
            "role vendor may not fire “Tilslutningsdato aftalt”",
        ),
        (["advance", "{tid}", "agree_date", "--role", "astronaut"], "unknown role 'astronaut'"),
        (["advance", "{tid}", "agree_date"], "needs “Aftalt tilslutningsdato”"),
        (["advance", "{tid}", "agree_date", "--set", "connection_date=soon"], "not a date"),
        (
            [
                "advance",
                "{tid}",
                "agree_date",
                "--set",
                "connection_date=2027-01-01",
                "--expect-version",
                "7",
            ],
            "changed since you read it",
        ),
        (
            [
                "advance",
                "{tid}",
                "agree_date",
                "--set",
                "connection_date=2027-01-01",
                "--at",
                "2020-01-01",
            ],
            "history never goes backwards",
        ),
        (["set", "{tid}", "colour=blue"], "has no field 'colour'"),
        (["show", "nope"], "give the track's number"),
    ],
)
def test_refused_commands_exit_2_and_change_nothing(
    runner: CliRunner, db_path: Path, args: list[str], message: str
) -> None:
    """Invalid trigger, unknown track, wrong role, bad field, stale version: exit 2, no change."""
    tid = start_connection(runner, db_path)
    before = snapshot(db_path)
    result = run(runner, db_path, "track", *[a.format(tid=tid) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, "one clear line on stderr"
    assert snapshot(db_path) == before


def test_guard_blocks_agreement_while_system_is_not_ready(runner: CliRunner, db_path: Path) -> None:
    """A connection cannot be agreed while its system's readiness track is in compliance test."""
    readiness = int(
        ok(runner, db_path, "track", "start", "-q", "system-readiness", "--system", "Momentum")
        .stdout
    )
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(readiness),
        "start_pilot",
        "--set",
        "pilot_municipality=Vejle",
        "--role",
        "vendor",
    )
    ok(runner, db_path, "track", "advance", str(readiness), "complete_pilot", "--role", "vendor")
    tid = start_connection(runner, db_path)
    agree_date(runner, db_path, tid)
    before = snapshot(db_path)
    result = run(runner, db_path, "track", "advance", str(tid), "approve_agreements")
    assert result.exit_code == 2
    assert "KMD Momentum is not yet ready for rollout" in result.stderr
    assert "Compliance test" in result.stderr
    assert snapshot(db_path) == before
    why = ok(runner, db_path, "track", "why", str(tid)).stdout
    assert "approve_agreements" in why and "is blocked" in why
    assert "Compliance test" in why
    shown = ok_json(runner, db_path, "track", "show", str(tid))
    approve = next(a for a in shown["available"] if a["trigger"] == "approve_agreements")
    assert approve["blocked_by"] and "not yet ready" in approve["blocked_by"][0]


def test_guard_lets_the_pilot_municipality_through(runner: CliRunner, db_path: Path) -> None:
    """The system's pilot municipality may agree its connection before the system is ready."""
    readiness = int(
        ok(runner, db_path, "track", "start", "-q", "system-readiness", "--system", "Momentum")
        .stdout
    )
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(readiness),
        "start_pilot",
        "--set",
        "pilot_municipality=Aarhus",
        "--role",
        "vendor",
    )
    tid = start_connection(runner, db_path)
    agree_date(runner, db_path, tid)
    ok(runner, db_path, "track", "advance", str(tid), "approve_agreements")


def test_guard_reads_the_other_track_as_of_the_transition_time(
    runner: CliRunner, db_path: Path
) -> None:
    """A step recorded for a date before the system was ready is refused, a later one passes."""
    make_ready(runner, db_path, "Momentum", pilot="Vejle")  # ready on 2021-03-01
    tid = int(
        ok(
            runner,
            db_path,
            "track",
            "start", "--quiet",
            "connection",
            "--municipality",
            "Aarhus",
            "--system",
            "Momentum",
            "--at",
            "2021-01-05",
        ).stdout
    )
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "agree_date",
        "--set",
        "connection_date=2021-06-01",
        "--at",
        "2021-01-06",
    )
    early = run(
        runner, db_path, "track", "advance", str(tid), "approve_agreements", "--at", "2021-02-15"
    )
    assert early.exit_code == 2
    assert "not yet ready" in early.stderr
    ok(runner, db_path, "track", "advance", str(tid), "approve_agreements", "--at", "2021-03-02")


def test_show_json_has_the_stable_keys(runner: CliRunner, db_path: Path) -> None:
    """``track show --json`` holds id, definition, state, version, due and available details."""
    tid = start_connection(runner, db_path, "--at", "2021-04-01")
    shown = ok_json(runner, db_path, "track", "show", str(tid))
    for key in ("id", "definition", "state", "version", "due", "available", "phase", "bucket"):
        assert key in shown
    assert shown["phase"] == "agreement"
    # 20 working days after Skærtorsdag: Easter and Store Bededag (30 April) are closed.
    assert shown["due"] == "2021-05-04"
    agree = next(a for a in shown["available"] if a["trigger"] == "agree_date")
    assert agree["dest"] == "service_agreements"
    assert "municipality-pl" in agree["roles"]
    assert agree["inputs"] == [
        {
            "name": "connection_date",
            "type": "date",
            "label": "Aftalt tilslutningsdato",
            "options": [],
            "required": True,
            "value": None,
        }
    ]
    assert agree["blocked_by"] == []
    assert shown["payment_scenario"]["contract"] is None


def test_history_json_rows_have_the_stable_keys(runner: CliRunner, db_path: Path) -> None:
    """``track history --json`` rows carry from, to, trigger, actor, role, note and at."""
    tid = start_connection(runner, db_path)
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "agree_date",
        "--note",
        "aftalt pr. mail",
        "--set",
        "connection_date=2027-06-01",
        actor="Mette",
    )
    rows = ok_json(runner, db_path, "track", "history", str(tid))
    assert rows[-1]["from"] == "date_agreement"
    assert rows[-1]["to"] == "service_agreements"
    assert rows[-1]["actor"] == "Mette"
    assert rows[-1]["role"] == "coordinator"
    assert rows[-1]["note"] == "aftalt pr. mail"
    assert {"from", "to", "trigger", "actor", "role", "note", "at"} <= set(rows[0])


def test_global_history_filters_by_actor_and_time(runner: CliRunner, db_path: Path) -> None:
    """``onboarding history`` selects by actor and by a date range that includes the last day."""
    tid = start_connection(runner, db_path, "--at", "2021-03-01T09:00")
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "agree_date",
        "--at",
        "2021-03-31T22:30",
        "--set",
        "connection_date=2021-06-01",
        actor="Mette",
    )
    rows = ok_json(
        runner,
        db_path,
        "history",
        "--actor",
        "Mette",
        "--since",
        "2021-03-01",
        "--until",
        "2021-03-31",
    )
    assert [r["trigger"] for r in rows] == ["agree_date"]
    assert ok_json(runner, db_path, "history", "--until", "2021-02-28") == []


def test_track_list_filters_and_shows_phase(runner: CliRunner, ready_db: Path) -> None:
    """``track list`` filters by definition, system and municipality and shows the phase."""
    start_connection(runner, ready_db)
    ok(
        runner,
        ready_db,
        "track",
        "start", "--quiet",
        "connection",
        "--municipality",
        "Vejle",
        "--system",
        "Fasit",
    )
    rows = ok_json(
        runner, ready_db, "track", "list", "--definition", "connection", "--system", "Momentum"
    )
    assert [r["subject"] for r in rows] == ["Aarhus / KMD Momentum"]
    assert rows[0]["phase"] == "agreement"
    text = ok(runner, ready_db, "track", "list", "--municipality", "Vejle").stdout
    assert "Schultz Fasit" in text and "Agreement" in text


def test_overdue_lists_tracks_past_their_due_date(runner: CliRunner, db_path: Path) -> None:
    """A track whose step fell due before today is listed by --overdue, a fresh one is not."""
    old = start_connection(runner, db_path, "--at", "2021-01-04")
    ok(
        runner,
        db_path,
        "track",
        "start", "--quiet",
        "connection",
        "--municipality",
        "Vejle",
        "--system",
        "Momentum",
    )
    rows = ok_json(runner, db_path, "track", "list", "--overdue")
    assert [r["id"] for r in rows] == [old]


def test_set_records_fields_and_moves_the_due_date(runner: CliRunner, ready_db: Path) -> None:
    """``track set`` records a field in history and recomputes a due date that depends on it."""
    tid = start_connection(runner, ready_db)
    agree_date(runner, ready_db, tid)
    ok(runner, ready_db, "track", "advance", str(tid), "approve_agreements")
    assert ok_json(runner, ready_db, "track", "show", str(tid))["due"] == "2027-05-18"
    ok(
        runner,
        ready_db,
        "track",
        "set",
        str(tid),
        "connection_date=2027-09-01",
        "--note",
        "vendor moved the date",
    )
    shown = ok_json(runner, ready_db, "track", "show", str(tid))
    assert shown["due"] == "2027-08-18"
    assert shown["state"] == "sapa_request"
    last = ok_json(runner, ready_db, "track", "history", str(tid))[-1]
    assert last["trigger"] == "@set"
    assert last["fields"] == {"connection_date": "2027-09-01"}


def test_wave_change_is_audited_and_redates_the_track(runner: CliRunner, db_path: Path) -> None:
    """A municipality moving from wave B2 to B3 is recorded in history and due dates follow."""
    tid = int(
        ok(
            runner,
            db_path,
            "track",
            "start", "--quiet",
            "rollout-wave",
            "--municipality",
            "Odense",
            "--wave",
            "B2",
            "--at",
            "2021-06-01",
        ).stdout
    )
    due_b2 = ok_json(runner, db_path, "track", "show", str(tid))["due"]
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "change_wave",
        "--set",
        "wave=B3",
        "--role",
        "municipality-pl",
        "--note",
        "ønsker bølge 3",
        "--at",
        "2021-06-10",
    )
    shown = ok_json(runner, db_path, "track", "show", str(tid))
    assert shown["fields"]["wave"] == "B3"
    assert shown["due"] > due_b2
    last = ok_json(runner, db_path, "track", "history", str(tid))[-1]
    assert (last["trigger"], last["fields"], last["note"]) == (
        "change_wave",
        {"wave": "B3"},
        "ønsker bølge 3",
    )


def test_klik_task_default_applies_only_after_the_end_date(
    runner: CliRunner, db_path: Path
) -> None:
    """The declared default outcome fires only once the task's end date has passed."""
    tid = int(
        ok(
            runner,
            db_path,
            "track",
            "start", "--quiet",
            "klik-task",
            "--municipality",
            "Aarhus",
            "--klik-task",
            "Indmeld modtager(e) af GDPR-revisionserklæringer",
            "--at",
            "2021-04-01",
        ).stdout
    )
    assert ok_json(runner, db_path, "track", "show", str(tid))["due"] == "2021-04-29"
    early = run(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "apply_default",
        "--role",
        "system",
        "--at",
        "2021-04-29T12:00",
    )
    assert early.exit_code == 2
    assert "has not passed" in early.stderr
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "apply_default",
        "--role",
        "system",
        "--at",
        "2021-04-30T00:30",
    )
    assert ok_json(runner, db_path, "track", "show", str(tid))["bucket"] == "Fuldført"


def test_readiness_failed_compliance_goes_back(runner: CliRunner, db_path: Path) -> None:
    """A failed compliance test sends the system's readiness track back to the pilot."""
    start = ("track", "start", "-q", "system-readiness", "--system", "eDoc")
    tid = int(ok(runner, db_path, *start).stdout)
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "start_pilot",
        "--set",
        "pilot_municipality=Vejle",
        "--role",
        "vendor",
    )
    ok(runner, db_path, "track", "advance", str(tid), "complete_pilot", "--role", "vendor")
    ok(runner, db_path, "track", "advance", str(tid), "fail_compliance")
    assert ok_json(runner, db_path, "track", "show", str(tid))["state"] == "pilot"


def test_database_must_be_initialised(runner: CliRunner, tmp_path: Path) -> None:
    """Commands on a missing database exit 2 and say to run init, creating nothing."""
    path = tmp_path / "missing.db"
    result = run(runner, path, "track", "list")
    assert result.exit_code == 2
    assert "onboarding init" in result.stderr
    assert not path.exists()


def test_init_is_idempotent_and_records_the_schema_version(
    runner: CliRunner, db_path: Path
) -> None:
    """A second init changes nothing and reports the schema as current."""
    before = snapshot(db_path)
    result = ok(runner, db_path, "init")
    assert "already current" in result.stdout
    assert snapshot(db_path)[1] == before[1]
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    conn.close()
    db = Database(db_path)
    assert db["municipalities"].count == 98
    assert {r["name"] for r in db["definitions"].rows} >= {
        "connection",
        "system-readiness",
        "onboarding-course",
        "klik-task",
        "rollout-wave",
    }


def test_cli_track_advance_names_the_step_by_its_label(runner: CliRunner, db_path: Path) -> None:
    """The line after an advance names the new step by its label, not its state key."""
    tid = ok(runner, db_path, "track", "start", "--quiet", "system-readiness", "--system",
             "Momentum", "--at", "2021-01-04T09:00").stdout.strip()
    out = ok(runner, db_path, "track", "advance", tid, "start_pilot", "--set",
             "pilot_municipality=Aarhus", "--role", "vendor", "--at", "2021-01-11T09:00").stdout
    assert out.startswith(f"track #{tid} is now in Pilot i pilotkommunen (version 2")
