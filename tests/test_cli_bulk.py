"""Bulk advance (``track advance --where``) and definition migration through the real CLI."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlite_utils import Database

from tests.support import agree_date, make_ready, ok, ok_json, run, snapshot

MUNICIPALITIES = ["Aarhus", "Vejle", "Odense", "Aalborg", "Esbjerg", "Randers"]


def _connections(runner: CliRunner, db_path: Path, system: str = "Momentum") -> list[int]:
    ids = []
    for name in MUNICIPALITIES:
        tid = int(
            ok(
                runner,
                db_path,
                "track",
                "start", "--quiet",
                "connection",
                "--municipality",
                name,
                "--system",
                system,
                "--at",
                "2021-04-01",
            ).stdout
        )
        ids.append(tid)
    return ids


def test_bulk_advance_moves_every_selected_track(runner: CliRunner, db_path: Path) -> None:
    """All connections of one system in one state fire one trigger together, each audited."""
    ids = _connections(runner, db_path)
    result = ok(
        runner,
        db_path,
        "track",
        "advance",
        "--where",
        "definition=connection system=KMD Momentum state=date_agreement",
        "agree_date",
        "--set",
        "connection_date=2021-09-01",
        "--at",
        "2021-04-15",
    )
    assert "moved 6 of 6" in result.stdout
    db = Database(db_path)
    states = {r["state"] for r in db["tracks"].rows_where("definition = 'connection'")}
    assert states == {"service_agreements"}
    for tid in ids:
        last = db.execute(
            "SELECT trigger, fields FROM history WHERE track_id = ? ORDER BY seq DESC LIMIT 1",
            [tid],
        ).fetchone()
        assert last == ("agree_date", '{"connection_date": "2021-09-01"}')


def test_bulk_advance_is_all_or_nothing(runner: CliRunner, db_path: Path) -> None:
    """If one selected track is blocked by a guard, none moves and the reason is shown."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
    _connections(runner, db_path, "Momentum")
    _connections(runner, db_path, "Fasit")  # Fasit has no readiness track: blocked
    ok(
        runner,
        db_path,
        "track",
        "advance",
        "--where",
        "definition=connection",
        "agree_date",
        "--set",
        "connection_date=2021-09-01",
        "--at",
        "2021-04-15",
    )
    before = snapshot(db_path)
    result = run(
        runner,
        db_path,
        "track",
        "advance",
        "--where",
        "definition=connection state=service_agreements",
        "approve_agreements",
        "--at",
        "2021-04-20",
    )
    assert result.exit_code == 2
    assert "6 of 12 selected tracks cannot fire" in result.stderr
    assert "Schultz Fasit is not yet ready" in result.stderr
    assert snapshot(db_path) == before


def test_bulk_dry_run_lists_moves_and_blocked_without_writing(
    runner: CliRunner, db_path: Path
) -> None:
    """--dry-run reports what would move and what is blocked, and writes nothing."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
    _connections(runner, db_path, "Momentum")
    _connections(runner, db_path, "Fasit")
    ok(
        runner,
        db_path,
        "track",
        "advance",
        "--where",
        "definition=connection",
        "agree_date",
        "--set",
        "connection_date=2021-09-01",
        "--at",
        "2021-04-15",
    )
    before = snapshot(db_path)
    report = ok_json(
        runner,
        db_path,
        "track",
        "advance",
        "--where",
        "definition=connection",
        "approve_agreements",
        "--dry-run",
        "--at",
        "2021-04-20",
    )
    assert report["moved"] == 6
    assert report["blocked_count"] == 6
    assert report["moves"] == [{"from": "service_agreements", "to": "sapa_request", "count": 6}]
    assert all("Fasit" in b["reason"] for b in report["blocked"])
    assert snapshot(db_path) == before


def test_bulk_where_rejects_unknown_keys(runner: CliRunner, db_path: Path) -> None:
    """A filter with an unknown key exits 2 and lists the keys."""
    result = run(runner, db_path, "track", "advance", "--where", "colour=red", "agree_date")
    assert result.exit_code == 2
    assert "unknown key 'colour'" in result.stderr


def test_bulk_refuses_a_wrong_role_for_every_track(runner: CliRunner, db_path: Path) -> None:
    """A role that may not fire the trigger blocks the bulk operation, nothing written."""
    _connections(runner, db_path)
    before = snapshot(db_path)
    result = run(
        runner,
        db_path,
        "track",
        "advance",
        "--where",
        "definition=connection",
        "agree_date",
        "--role",
        "vendor",
        "--set",
        "connection_date=2021-09-01",
    )
    assert result.exit_code == 2
    assert "role vendor may not fire “Tilslutningsdato aftalt”" in result.stderr
    assert snapshot(db_path) == before


def _write_v2(tmp_path: Path) -> Path:
    """connection v2: step 4 renamed (sapa_request -> notify_sapa)."""
    source = Path("workflows/definitions/connection.yaml").read_text(encoding="utf-8")
    v2 = source.replace("version: 1", "version: 2", 1).replace("sapa_request", "notify_sapa")
    path = tmp_path / "connection-v2.yaml"
    path.write_text(v2, encoding="utf-8")
    return path


def test_migrate_moves_open_tracks_with_an_explicit_mapping(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Tracks stay on v1 until migrate maps their states to v2; each move is in history."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
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
        ).stdout
    )
    agree_date(runner, db_path, tid)
    ok(runner, db_path, "track", "advance", str(tid), "approve_agreements")
    ok(runner, db_path, "workflow", "add", str(_write_v2(tmp_path)))
    shown = ok_json(runner, db_path, "track", "show", str(tid))
    assert (shown["definition_version"], shown["state"]) == (1, "sapa_request")
    before = snapshot(db_path)
    unmapped = run(runner, db_path, "workflow", "migrate", "connection")
    assert unmapped.exit_code == 2
    assert "sapa_request" in unmapped.stderr and "--map" in unmapped.stderr
    assert snapshot(db_path) == before
    ok(runner, db_path, "workflow", "migrate", "connection", "--map", "sapa_request=notify_sapa")
    shown = ok_json(runner, db_path, "track", "show", str(tid))
    assert (shown["definition_version"], shown["state"]) == (2, "notify_sapa")
    last = ok_json(runner, db_path, "track", "history", str(tid))[-1]
    assert (last["trigger"], last["from"], last["to"], last["definition_version"]) == (
        "@migrate",
        "sapa_request",
        "notify_sapa",
        2,
    )
    ok(runner, db_path, "track", "advance", str(tid), "request_display")


def test_changed_definition_needs_a_new_version(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Adding different content under an existing version number is refused."""
    source = Path("workflows/definitions/connection.yaml").read_text(encoding="utf-8")
    path = tmp_path / "changed.yaml"
    path.write_text(
        source.replace("due: {after_entry: 20}", "due: {after_entry: 5}"), encoding="utf-8"
    )
    result = run(runner, db_path, "workflow", "add", str(path))
    assert result.exit_code == 2
    assert "new version" in result.stderr
