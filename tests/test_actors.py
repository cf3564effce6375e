"""Who may do what: actors, roles and scopes, enforced by the engine (issue 5)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from onboarding import actors, engine
from onboarding.errors import InputError, NotFound, PermissionDenied
from tests.support import make_ready, ok, ok_json, run, snapshot

AT = "2021-04-01T10:00"


def _fed(
    runner: CliRunner, db_path: Path, *args: str, actor: str, input: str, code: int = 0
) -> str:
    """Run the CLI with text on stdin (passwords); return stdout + stderr."""
    env = {"ONBOARDING_ACTOR": actor}
    result = runner.invoke(cli.cli, [*args, "--db", str(db_path)], env=env, input=input)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


def _start(runner: CliRunner, db_path: Path, municipality: str, actor: str = "tester") -> int:
    out = ok(
        runner,
        db_path,
        "track",
        "start", "--quiet",
        "connection",
        "--municipality",
        municipality,
        "--system",
        "Momentum",
        "--at",
        AT,
        actor=actor,
    ).stdout
    return int(out)


def _staff(runner: CliRunner, db_path: Path) -> None:
    """kombit (coordinator for all, the administrator), vejle-pl (municipality-pl for Vejle),
    kmd (vendor for KMD), schultz (vendor for Schultz)."""
    ok(runner, db_path, "actor", "add", "kombit", "--display-name", "KOMBIT-koordinator")
    ok(runner, db_path, "actor", "grant", "kombit", "coordinator", actor="kombit")
    for name, role, scope in (
        ("vejle-pl", "municipality-pl", ("--municipality", "Vejle")),
        ("kmd", "vendor", ("--vendor", "KMD")),
        ("schultz", "vendor", ("--vendor", "Schultz")),
    ):
        ok(runner, db_path, "actor", "add", name, actor="kombit")
        ok(runner, db_path, "actor", "grant", name, role, *scope, actor="kombit")


def _history_rows(db_path: Path) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute("SELECT count(*) FROM history").fetchone()[0])
    finally:
        conn.close()


def test_actors_fresh_database_runs_open_until_the_first_actor(
    runner: CliRunner, db_path: Path, db: Database
) -> None:
    """No actor: any name acts in any role (the README walk); 'actor add' switches checks on."""
    assert not actors.enforcing(db)
    _start(runner, db_path, "Aarhus", actor="whoever")
    added = ok(runner, db_path, "actor", "add", "kombit")
    assert "permission checks are now on" in added.stdout
    assert actors.enforcing(db)
    refused = run(
        runner, db_path, "track", "start", "--quiet", "connection", "--municipality", "Vejle",
        "--system", "Momentum", actor="whoever",
    )
    assert refused.exit_code == 2
    assert "actor 'whoever' is not registered" in refused.stderr


def test_actors_cli_add_grant_list_and_revoke(runner: CliRunner, db_path: Path) -> None:
    """Actors and grants round-trip through the CLI; the listing never shows a password hash."""
    _staff(runner, db_path)
    _fed(
        runner, db_path, "actor", "add", "aarhus-pl", "--email", "pl@aarhus.example",
        "--display-name", "Projektleder  Aarhus", "--password-stdin", actor="kombit",
        input="hemmelig-kode\n",
    )
    ok(runner, db_path, "actor", "grant", "aarhus-pl", "sapa-owner", "--municipality",
       "751", actor="kombit")
    listed = ok(runner, db_path, "actor", "list", "--json")
    assert "scrypt" not in listed.stdout and "hemmelig" not in listed.stdout
    by_name = {a["name"]: a for a in json.loads(listed.stdout)}
    assert set(by_name) == {"kombit", "vejle-pl", "kmd", "schultz", "aarhus-pl"}
    pl = by_name["aarhus-pl"]
    assert (pl["display_name"], pl["email"], pl["has_password"]) == (
        "Projektleder Aarhus",
        "pl@aarhus.example",
        True,
    )
    assert pl["grants"] == [
        {
            "role": "sapa-owner",
            "scope": "municipality",
            "municipality": {"code": 751, "name": "Aarhus"},
            "vendor": None,
            "label": "sapa-owner for Aarhus",
        }
    ]
    assert by_name["kmd"]["grants"][0]["vendor"]["name"] == "KMD"
    table = ok(runner, db_path, "actor", "list").stdout
    assert "coordinator for all" in table and "vendor for vendor KMD" in table
    ok(runner, db_path, "actor", "revoke", "aarhus-pl", "sapa-owner", "--municipality",
       "Aarhus", actor="kombit")
    again = run(runner, db_path, "actor", "revoke", "aarhus-pl", "sapa-owner", "--municipality",
                "Aarhus", actor="kombit")
    assert again.exit_code == 2 and "unknown grant" in again.stderr
    assert ok_json(runner, db_path, "actor", "list")[0]["grants"] == []


def test_actors_password_is_scrypt_hashed_with_a_salt_and_verified(db: Database) -> None:
    """Stored as scrypt$N$r$p$salt$key with a fresh salt; right, wrong and unknown checked."""
    actors.add(db, "a", password="correct horse")
    actors.add(db, "b", password="correct horse")
    stored = dict(db.execute("SELECT name, password_hash FROM actors").fetchall())
    assert stored["a"].startswith("scrypt$16384$8$1$") and stored["a"] != stored["b"]
    assert actors.verify_password(db, "a", "correct horse")
    assert not actors.verify_password(db, "a", "correct horsf")
    assert not actors.verify_password(db, "nobody", "correct horse")
    actors.set_password(db, "a", "battery staple")
    assert not actors.verify_password(db, "a", "correct horse")
    assert actors.verify_password(db, "a", "battery staple")
    actors.set_active(db, "a", False)
    assert not actors.verify_password(db, "a", "battery staple")
    with pytest.raises(InputError, match="at least 8"):
        actors.set_password(db, "b", "short")


def test_actors_set_password_reads_stdin_never_an_argument(
    runner: CliRunner, db_path: Path, db: Database
) -> None:
    """The password comes from stdin (or a hidden prompt); there is no option that takes one."""
    ok(runner, db_path, "actor", "add", "kombit")
    _fed(runner, db_path, "actor", "set-password", "kombit", actor="kombit", input="s3cret-pw\n")
    assert actors.verify_password(db, "kombit", "s3cret-pw")
    assert run(runner, db_path, "actor", "set-password", "kombit", "--password", "x").exit_code == 2
    empty = _fed(runner, db_path, "actor", "set-password", "kombit", actor="kombit", input="",
                 code=2)
    assert "no password" in empty


def test_actors_managing_actors_needs_a_coordinator_for_all_once_one_exists(
    runner: CliRunner, db_path: Path
) -> None:
    """Bootstrap: anyone sets up the first coordinator; after that only such a coordinator."""
    ok(runner, db_path, "actor", "add", "kombit", actor="someone")
    ok(runner, db_path, "actor", "grant", "kombit", "coordinator", actor="someone")
    refused = run(runner, db_path, "actor", "add", "mallory", actor="someone")
    assert refused.exit_code == 2
    assert "actor 'someone' may not manage actors" in refused.stderr
    ok(runner, db_path, "actor", "add", "mallory", actor="kombit")
    ok(runner, db_path, "actor", "grant", "mallory", "vendor", "--vendor", "KMD", actor="kombit")
    self_grant = run(runner, db_path, "actor", "grant", "mallory", "coordinator", actor="mallory")
    assert self_grant.exit_code == 2
    # Anyone may set their own password.
    _fed(runner, db_path, "actor", "set-password", "mallory", actor="mallory", input="my-own-pw\n")


def test_actors_engine_refuses_a_role_the_actor_does_not_hold_and_writes_nothing(
    runner: CliRunner, db_path: Path
) -> None:
    """The refusal is one clear line, exit 2, and the database is byte-for-byte unchanged."""
    tid = _start(runner, db_path, "Vejle")
    _staff(runner, db_path)
    before = snapshot(db_path)
    refused = run(
        runner, db_path, "track", "advance", str(tid), "agree_date", "--set",
        "connection_date=2027-03-01", "--role", "coordinator", actor="vejle-pl",
    )
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "Error: actor 'vejle-pl' does not hold role 'coordinator' (KOMBIT-koordinator); "
        "it holds municipality-pl"
    )
    assert snapshot(db_path) == before


def test_actors_municipality_staff_act_only_on_their_municipality(
    runner: CliRunner, db_path: Path
) -> None:
    """Vejle's project lead advances Vejle's track, and is refused on Aarhus's."""
    aarhus, vejle = _start(runner, db_path, "Aarhus"), _start(runner, db_path, "Vejle")
    _staff(runner, db_path)
    args = ("agree_date", "--set", "connection_date=2027-03-01", "--role", "municipality-pl")
    before = snapshot(db_path)
    refused = run(runner, db_path, "track", "advance", str(aarhus), *args, actor="vejle-pl")
    assert refused.exit_code == 2
    assert (
        f"actor 'vejle-pl' acts as municipality-pl for Vejle; track #{aarhus} is Aarhus's"
        in refused.stderr
    )
    assert snapshot(db_path) == before
    ok(runner, db_path, "track", "advance", str(vejle), *args, actor="vejle-pl")
    # A read with an actor named follows its scope (issue 13): read as Vejle's project lead.
    last = ok_json(runner, db_path, "track", "history", str(vejle), actor="vejle-pl")[-1]
    assert (last["actor"], last["role"], last["trigger"]) == ("vejle-pl", "municipality-pl",
                                                               "agree_date")


def test_actors_vendor_acts_only_on_its_own_systems(runner: CliRunner, db_path: Path) -> None:
    """KMD's vendor moves Momentum's readiness; Schultz's vendor is refused on it."""
    tid = int(
        ok(runner, db_path, "track", "start", "system-readiness", "--system", "KMD Momentum",
           "--at", AT, "--quiet").stdout
    )
    _staff(runner, db_path)
    args = ("start_pilot", "--set", "pilot_municipality=Vejle", "--role", "vendor")
    refused = run(runner, db_path, "track", "advance", str(tid), *args, actor="schultz")
    assert refused.exit_code == 2
    assert f"track #{tid} is vendor KMD's" in refused.stderr
    ok(runner, db_path, "track", "advance", str(tid), *args, actor="kmd")


def test_actors_start_set_and_migrate_are_checked_by_the_engine(
    db: Database, tmp_path: Path
) -> None:
    """Starting (against the new track's subject), setting fields and migrating are refused
    out of scope, through the library as much as through the CLI."""
    actors.add(db, "kombit")
    actors.grant(db, "kombit", "coordinator")
    actors.add(db, "vejle-pl")
    actors.grant(db, "vejle-pl", "municipality-pl", municipality="Vejle")
    actors.grant(db, "vejle-pl", "coordinator", municipality="Vejle")
    at = engine.Act(actor="vejle-pl", role="coordinator", at=engine.clock.parse_time(AT))
    subject = engine.Subject(municipality="Aarhus", system="Momentum")
    with pytest.raises(PermissionDenied, match="the new track is Aarhus's"):
        engine.start(db, "connection", subject, at)
    kombit = engine.Act(actor="kombit", role="coordinator", at=engine.clock.parse_time(AT))
    tid = int(engine.start(db, "connection", subject, kombit)["id"])
    with pytest.raises(PermissionDenied, match=f"track #{tid} is Aarhus's"):
        engine.set_fields(db, tid, {"connection_date": "2027-01-01"}, at)
    source = Path("workflows/definitions/connection.yaml").read_text(encoding="utf-8")
    v2 = tmp_path / "v2.yaml"
    v2.write_text(source.replace("version: 1", "version: 2", 1), encoding="utf-8")
    from onboarding import definitions
    from onboarding.db import immediate

    with immediate(db):
        definitions.add_file(db, v2)
    with pytest.raises(PermissionDenied, match=f"track #{tid} is Aarhus's"):
        engine.migrate(db, "connection", 2, {}, at)
    assert engine.migrate(db, "connection", 2, {}, kombit).moved == 1


def test_actors_bulk_advance_is_all_or_nothing_across_scopes(
    runner: CliRunner, db_path: Path
) -> None:
    """One selected track outside the actor's scope blocks the whole bulk move; the dry run
    says which and why."""
    for name in ("Vejle", "Aarhus"):
        _start(runner, db_path, name)
    _staff(runner, db_path)
    bulk = ("track", "advance", "--where", "definition=connection", "agree_date", "--set",
            "connection_date=2027-03-01", "--role", "municipality-pl")
    before = snapshot(db_path)
    refused = run(runner, db_path, *bulk, actor="vejle-pl")
    assert refused.exit_code == 2
    assert "1 of 2 selected tracks cannot fire" in refused.stderr
    assert "is Aarhus's" in refused.stderr
    dry = json.loads(ok(runner, db_path, *bulk, "--dry-run", "--json", actor="vejle-pl").stdout)
    assert dry["blocked_count"] == 1 and "Aarhus's" in dry["blocked"][0]["reason"]
    assert snapshot(db_path) == before
    ok(runner, db_path, *bulk[:3], "definition=connection municipality=Vejle", *bulk[4:],
       actor="vejle-pl")


def test_actors_status_import_runs_as_a_granted_importer(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """With permissions on, the import's actor 'import' needs role importer covering every
    row's track; a row out of its scope refuses the whole file, naming the line."""
    status = tmp_path / "status.csv"
    status.write_text(
        "municipality,system,status,date\n"
        "Aarhus,Momentum,Endnu ikke aftalt,2021-03-01\n"
        "Vejle,Momentum,Endnu ikke aftalt,2021-03-02\n",
        encoding="utf-8",
    )
    _staff(runner, db_path)
    before = snapshot(db_path)
    refused = run(runner, db_path, "import", "status", str(status))
    assert refused.exit_code == 2 and "actor 'import' is not registered" in refused.stderr
    assert snapshot(db_path) == before
    ok(runner, db_path, "actor", "add", "import", actor="kombit")
    ok(runner, db_path, "actor", "grant", "import", "importer", "--municipality", "Aarhus",
       actor="kombit")
    before = snapshot(db_path)
    refused = run(runner, db_path, "import", "status", str(status))
    assert refused.exit_code == 2
    assert (
        f"{status}:3: column municipality: actor 'import' acts as importer for Aarhus; "
        "the new track is Vejle's"
    ) in refused.stderr
    assert snapshot(db_path) == before
    ok(runner, db_path, "actor", "grant", "import", "importer", actor="kombit")
    assert "started 2 tracks" in ok(runner, db_path, "import", "status", str(status)).stdout


def test_actors_deactivated_or_unknown_actors_are_refused(db: Database) -> None:
    """A deactivated actor may not act; unknown names, roles and scopes are user errors."""
    actors.add(db, "kombit")
    actors.grant(db, "kombit", "coordinator")
    track = {"id": 7, "municipality_code": 751, "system_id": 1}
    actors.authorize(db, "kombit", "coordinator", track)
    actors.set_active(db, "kombit", False)
    with pytest.raises(PermissionDenied, match="deactivated"):
        actors.authorize(db, "kombit", "coordinator", track)
    with pytest.raises(InputError, match="unknown role"):
        actors.grant(db, "kombit", "superuser")
    with pytest.raises(NotFound, match="unknown municipality"):
        actors.grant(db, "kombit", "coordinator", municipality="Atlantis")
    with pytest.raises(NotFound, match="unknown actor"):
        actors.grant(db, "nobody", "coordinator")
    with pytest.raises(InputError, match="not both"):
        actors.grant(db, "kombit", "vendor", municipality="Vejle", vendor="KMD")


def test_actors_roles_for_lists_the_roles_covering_a_track(
    runner: CliRunner, db_path: Path, db: Database
) -> None:
    """roles_for: what the actor may act as on this track (scope taken into account)."""
    make_ready(runner, db_path, "Momentum", pilot="Vejle")
    aarhus, vejle = _start(runner, db_path, "Aarhus"), _start(runner, db_path, "Vejle")
    _staff(runner, db_path)
    actors.grant(db, "vejle-pl", "sapa-owner", municipality="Vejle")
    tracks = {t: engine.load_track(db.conn, t) for t in (aarhus, vejle)}
    assert actors.roles_for(db, "vejle-pl", tracks[vejle]) == ["municipality-pl", "sapa-owner"]
    assert actors.roles_for(db, "vejle-pl", tracks[aarhus]) == []
    assert actors.roles_for(db, "kmd", tracks[aarhus]) == ["vendor"]
    assert actors.roles_for(db, "schultz", tracks[aarhus]) == []
    assert actors.roles_for(db, "kombit", tracks[aarhus]) == ["coordinator"]
    assert _history_rows(db_path) == 4 + 2
