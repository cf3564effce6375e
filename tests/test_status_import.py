"""The monthly status import (library): paths, history, not-reported fields, contracts, rules."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from onboarding import clock, engine, tracks
from onboarding.db import open_existing
from onboarding.errors import InputError
from onboarding.status_import import import_status
from tests import deckdata
from tests.support import snapshot

HEADER = "municipality,system,status,date,kind,bob,connection_date,note\n"


@pytest.fixture(scope="module")
def deck_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the deck's contracts and March status imported (built once)."""
    path = tmp_path_factory.mktemp("deck") / "deck.db"
    return deckdata.build(CliRunner(), path)


@pytest.fixture
def deck(deck_file: Path, tmp_path: Path) -> Iterator[Database]:
    """A private copy of the deck database, open."""
    db = open_existing(deckdata.copy_db(deck_file, tmp_path / "deck.db"))
    yield db
    db.close()


def _csv(tmp_path: Path, body: str, name: str = "status.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def _track(db: Database, municipality: str, system: str, definition: str = "connection") -> int:
    from onboarding import registry

    code = registry.resolve_municipality(db, municipality)["code"] if municipality else None
    sid = registry.resolve_system(db, system)["id"]
    row = db.execute(
        "SELECT id FROM tracks WHERE definition = ? AND municipality_code IS ? AND system_id = ?"
        " ORDER BY id DESC",
        [definition, code if definition == "connection" else None, sid],
    ).fetchone()
    assert row, (municipality, system)
    return int(row[0])


def _ready(db: Database, tmp_path: Path, system: str = "Momentum", pilot: str = "Aarhus") -> None:
    import_status(
        db, _csv(tmp_path, f"{pilot},{system},ready,2021-01-04,system-readiness,,,\n", "r.csv")
    )


# --- what a row does ------------------------------------------------------------------------------


def test_import_status_records_each_step_as_import_at_row_date(deck: Database) -> None:
    """Every step of the shortest path is a history row by actor import at the row's date."""
    # deck-status-2021-03.csv: København,Momentum,I drift,01-03-2021 (BoB, connection date given)
    rows = tracks.history(deck, _track(deck, "København", "Momentum"))
    assert [r["to"] for r in rows] == [
        "date_agreement",
        "service_agreements",
        "data_processing_agreement",
        "sapa_request",
        "display_opening",
        "sapa_bob_setup",
        "data_load",
        "live",
    ]
    midnight = clock.stamp(clock.parse_time("2021-03-01"))
    assert {(r["actor"], r["role"], r["at"]) for r in rows} == {("import", "importer", midnight)}
    assert rows[1]["fields"] == {"connection_date": "2021-02-01"}


def test_import_status_marks_missing_required_field_not_reported(deck: Database) -> None:
    """A required field the row lacks is recorded as None with a note, not refused."""
    # Frederiksberg,Momentum,I drift,2021-03-02 has no connection_date
    tid = _track(deck, "Frederiksberg", "Momentum")
    agree = next(r for r in tracks.history(deck, tid) if r["trigger"] == "agree_date")
    assert agree["fields"] == {"connection_date": None}
    assert agree["note"] == "not reported: connection_date"
    assert engine.load_track(deck.conn, tid)["fields"] == {"connection_date": None}


def test_import_status_keeps_replay_equal_to_track_rows(deck: Database) -> None:
    """Replaying each imported track's history gives exactly its stored row."""
    columns = ("state", "version", "def_version", "final", "entered_at", "updated_at", "due")
    ids = [r[0] for r in deck.execute("SELECT id FROM tracks").fetchall()]
    assert len(ids) == 171  # 164 connections and 7 systems
    for tid in ids:
        row = engine.load_track(deck.conn, tid)
        replayed = tracks.replay(deck, tid)
        assert {c: row[c] for c in columns} | {"fields": row["fields"]} == {
            c: replayed[c] for c in (*columns, "fields")
        }, tid


def test_import_status_bucket_label_means_earliest_reachable_state(deck: Database) -> None:
    """'Aftalt' is the first Aftalt state this track can reach: the DPA step only with BoB."""
    # Rødovre,Momentum,Aftalt (BoB) and Brøndby,Acadre,Aftalt (no BoB)
    assert engine.load_track(deck.conn, _track(deck, "Rødovre", "Momentum"))["state"] == (
        "data_processing_agreement"
    )
    assert engine.load_track(deck.conn, _track(deck, "Brøndby", "Acadre"))["state"] == (
        "sapa_request"
    )


def test_import_status_records_unknown_contract_when_none_on_record(deck: Database) -> None:
    """The five pairs missing from the contracts file get contract 'unknown', dated by the row."""
    rows = deck.execute(
        "SELECT m.name, c.contract, o.since FROM contract_origins o"
        " JOIN contracts c USING (municipality_code, system_id)"
        " JOIN municipalities m ON m.code = o.municipality_code ORDER BY m.name"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("Faxe", "unknown"),
        ("Næstved", "unknown"),
        ("Stevns", "unknown"),
        ("Tønder", "unknown"),
        ("Ærø", "unknown"),
    ]
    assert all(clock.local_date(clock.unstamp(r[2])).strftime("%Y-%m") == "2021-03" for r in rows)


def test_import_status_second_time_changes_nothing(deck: Database, tmp_path: Path) -> None:
    """Importing the same file again starts nothing, moves nothing, writes no history."""
    before = deckdata.tracks_and_history(
        Path(deck.conn.execute("PRAGMA database_list").fetchone()[2])
    )
    result = import_status(deck, deckdata.MARCH)
    assert (result.started, result.moved, result.steps, result.contracts_recorded) == (0, 0, 0, 0)
    assert result.unchanged == result.rows == 172
    after = deckdata.tracks_and_history(
        Path(deck.conn.execute("PRAGMA database_list").fetchone()[2])
    )
    assert after == before


def test_import_status_older_file_after_newer_leaves_tracks_as_they_are(deck: Database) -> None:
    """December's file after March's: every track already past its December status stays."""
    history_rows = deck.execute("SELECT count(*) FROM history").fetchone()[0]
    result = import_status(deck, deckdata.DECEMBER_FILE)
    assert (result.started, result.moved) == (0, 0)
    assert {o.outcome for o in result.outcomes} <= {"unchanged", "past", "finished"}
    assert any(o.outcome == "past" for o in result.outcomes)
    assert deck.execute("SELECT count(*) FROM history").fetchone()[0] == history_rows


def test_import_status_backwards_move_is_row_error(deck: Database, tmp_path: Path) -> None:
    """A later-dated row saying a live connection is not agreed names its line, column status."""
    path = _csv(
        tmp_path,
        "Ballerup,Momentum,Aftalt,2021-04-15,,ja,,\n"
        "København,Momentum,Endnu ikke aftalt,2021-04-15,,ja,,\n",
    )
    with pytest.raises(InputError) as info:
        import_status(deck, path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: column status: ")
    assert "backwards" in message and "live" in message


def test_import_status_backwards_within_one_file_names_the_later_line(
    db: Database, tmp_path: Path
) -> None:
    """Two rows for one connection: the later date with the earlier status is the bad line."""
    _ready(db, tmp_path)
    path = _csv(
        tmp_path,
        "Aarhus,Momentum,I drift,2021-03-15,,,2021-03-01,\n"
        "Aarhus,Momentum,Aftalt,2021-03-31,,,,\n"
        "Odense,Momentum,Aftalt,2021-03-31,,,,\n",
    )
    tracks_before = db.execute("SELECT count(*) FROM tracks").fetchone()[0]
    with pytest.raises(InputError, match=rf"^{path}:3: column status: .*backwards"):
        import_status(db, path)
    assert db.execute("SELECT count(*) FROM tracks").fetchone()[0] == tracks_before


def test_import_status_refuses_agreed_before_system_is_ready(db: Database, tmp_path: Path) -> None:
    """Without a ready system-readiness track the engine's guard blocks Aftalt: a row error."""
    path = _csv(tmp_path, "Odense,Fasit,Aftalt,2021-03-31,,,,\n")
    with pytest.raises(InputError) as info:
        import_status(db, path)
    assert str(info.value).startswith(f"{path}:2: column status: ")
    assert "not yet ready for rollout" in str(info.value)
    assert db.execute("SELECT count(*) FROM tracks").fetchone()[0] == 0


def test_import_status_readiness_row_makes_system_ready_with_pilot(
    db: Database, tmp_path: Path
) -> None:
    """A system-readiness row walks the system to ready; its municipality is the pilot."""
    path = _csv(
        tmp_path,
        "Odense,Fasit,Aftalt,2021-03-31,,,2021-06-01,\n"
        "Vejle,Fasit,ready,2021-02-01,system-readiness,,,\n",
    )
    import_status(db, path)
    readiness = engine.load_track(db.conn, _track(db, "", "Fasit", "system-readiness"))
    assert readiness["state"] == "ready"
    assert readiness["fields"]["pilot_municipality"] == 630  # Vejle
    assert engine.load_track(db.conn, _track(db, "Odense", "Fasit"))["state"] == "sapa_request"


def test_import_status_pilot_municipality_may_agree_before_ready(
    db: Database, tmp_path: Path
) -> None:
    """The pilot municipality's connection passes the readiness guard while in pilot."""
    path = _csv(
        tmp_path,
        "Vejle,Fasit,pilot,2021-01-04,system-readiness,,,\n"
        "Vejle,Fasit,Aftalt,2021-02-01,,,2021-04-01,\n",
    )
    import_status(db, path)
    assert engine.load_track(db.conn, _track(db, "Vejle", "Fasit"))["state"] == "sapa_request"


def test_import_status_finished_track_is_never_started_again(db: Database, tmp_path: Path) -> None:
    """A cancelled connection stays cancelled when a row reports progress: no new track."""
    _ready(db, tmp_path)
    import_status(db, _csv(tmp_path, "Odense,Momentum,Endnu ikke aftalt,2021-02-01,,,,\n"))
    tid = _track(db, "Odense", "Momentum")
    act = engine.Act("coordinator-1", "coordinator", at=clock.parse_time("2021-02-10"))
    engine.advance(db, tid, "cancel", act, {"reason": "system replaced"})
    result = import_status(db, _csv(tmp_path, "Odense,Momentum,Aftalt,2021-03-31,,,,\n", "b.csv"))
    assert [o.outcome for o in result.outcomes] == ["finished"]
    assert (
        db.execute("SELECT count(*) FROM tracks WHERE definition = 'connection'").fetchone()[0] == 1
    )


def test_import_status_row_dated_before_last_step_is_refused(db: Database, tmp_path: Path) -> None:
    """A move dated before the track's last recorded step is a row error on the date column."""
    _ready(db, tmp_path)
    import_status(db, _csv(tmp_path, "Odense,Momentum,Endnu ikke aftalt,2021-02-01,,,,\n"))
    act = engine.Act("pl", "municipality-pl", at=clock.parse_time("2021-03-20"))
    engine.advance(
        db, _track(db, "Odense", "Momentum"), "agree_date", act, {"connection_date": "2021-05-03"}
    )
    path = _csv(tmp_path, "Odense,Momentum,Aftalt,2021-03-10,,,,\n", "late.csv")
    with pytest.raises(InputError, match=rf"^{path}:2: column date: .*history never goes back"):
        import_status(db, path)


# --- the file as a whole --------------------------------------------------------------------------


def test_import_status_dry_run_writes_nothing(db_path: Path, tmp_path: Path) -> None:
    """A dry run checks and counts every row but leaves the database file byte for byte."""
    before = snapshot(db_path)
    db = open_existing(db_path)
    try:
        result = import_status(db, deckdata.MARCH, dry_run=True)
    finally:
        db.close()
    assert result.dry_run and result.started == 171 and result.steps > 400
    assert snapshot(db_path) == before


def test_import_status_lists_every_bad_row(db: Database, tmp_path: Path) -> None:
    """All row problems are reported at once, each with its physical line and column."""
    path = _csv(
        tmp_path,
        "Atlantis,Momentum,Aftalt,2021-03-31,,,,\n"
        "Odense,Momentum,Aftalt,2021-03-31,,,,\n"
        'Odense,Fasit,"I\ndrift",2021-03-31,,,,\n'
        "Vejle,Momentum,done,2021-03-31,,,,\n",
    )
    with pytest.raises(InputError) as info:
        import_status(db, path)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{path}:2: column municipality: unknown municipality 'Atlantis'")
    assert lines[1].startswith(f"{path}:6: column status: unknown status 'done'")
    assert lines[-1] == f"{path}: 2 rows have problems; nothing was imported"


def test_import_status_rejects_unknown_column_on_the_header_line(
    db: Database, tmp_path: Path
) -> None:
    """A column that is neither a known column nor a workflow field is refused (line 1)."""
    path = tmp_path / "s.csv"
    path.write_text("municipality,system,status,date,colour\nOdense,Fasit,Aftalt,2021-03-31,red\n")
    with pytest.raises(InputError, match=rf"^{path}:1: column colour: unknown column"):
        import_status(db, path)


def test_import_status_rejects_a_field_of_the_other_workflow(db: Database, tmp_path: Path) -> None:
    """A connection row may not carry a readiness field."""
    path = tmp_path / "s.csv"
    path.write_text(
        "municipality,system,status,date,pilot_municipality\nOdense,Fasit,Aftalt,2021-03-31,Vejle\n"
    )
    with pytest.raises(InputError, match=rf"^{path}:2: column pilot_municipality: is not a field"):
        import_status(db, path)


def test_import_status_rejects_a_future_date(db: Database, tmp_path: Path) -> None:
    """A row dated after today is refused on its date column."""
    path = _csv(tmp_path, "Odense,Fasit,Endnu ikke aftalt,2999-01-01,,,,\n")
    with pytest.raises(InputError, match=rf"^{path}:2: column date: 2999-01-01 is in the future"):
        import_status(db, path)


def test_import_status_rejects_bad_field_value(db: Database, tmp_path: Path) -> None:
    """A field column's value is checked by the field's type."""
    path = _csv(tmp_path, "Odense,Fasit,Endnu ikke aftalt,2021-03-01,,,soon,\n")
    with pytest.raises(InputError, match=rf"^{path}:2: column connection_date: "):
        import_status(db, path)


def test_import_status_repeated_subject_and_date_is_refused(db: Database, tmp_path: Path) -> None:
    """Two rows for one connection on one date would depend on row order: refused."""
    path = _csv(
        tmp_path,
        "Odense,Fasit,Endnu ikke aftalt,2021-03-01,,,,\n461,Schultz Fasit,Aftalt,01-03-2021,,,,\n",
    )
    with pytest.raises(InputError, match=rf"^{path}:3: repeats the connection subject and date"):
        import_status(db, path)


def test_import_status_outbox_rows_roll_back_with_a_bad_file(db_path: Path, tmp_path: Path) -> None:
    """A file that fails half way leaves no track, history or outbox row behind."""
    path = tmp_path / "bad.csv"
    rows = deckdata.read_rows(deckdata.MARCH)
    rows.append(["København", "Momentum", "Endnu ikke aftalt", "2021-03-31", "", "ja", "", ""])
    deckdata.write_rows(path, rows)
    before = snapshot(db_path)
    db = open_existing(db_path)
    try:
        with pytest.raises(InputError, match=rf"^{path}:{len(rows)}: column status: .*backwards"):
            import_status(db, path)
    finally:
        db.close()
    assert snapshot(db_path) == before
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT count(*) FROM tracks").fetchone()[0] == 0
    finally:
        conn.close()


def test_import_status_result_json_shape(db: Database, tmp_path: Path) -> None:
    """The result lists each row's outcome by line (the shape of import status --json)."""
    _ready(db, tmp_path)
    result = import_status(db, _csv(tmp_path, "Odense,Momentum,Aftalt,2021-03-31,,,,\n"))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["tracks_started"] == 1 and data["fields_not_reported"] == 1
    assert data["outcomes"] == [
        {
            "line": 2,
            "subject": "Odense / KMD Momentum",
            "track": data["outcomes"][0]["track"],
            "outcome": "started",
            "from": None,
            "to": "sapa_request",
            "steps": 2,
            "not_reported": ["connection_date"],
        }
    ]
