"""Property: whatever triggers are fired, valid or not, each track's row equals its history."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from onboarding import definitions, engine, tracks
from onboarding.db import connect, initialise
from onboarding.errors import OnboardingError
from onboarding.registry import seed
from onboarding.roles import ROLES

START = datetime(2021, 1, 4, 8, tzinfo=UTC)
ROLE_NAMES = sorted(ROLES)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised database with one readiness track and four connections to copy."""
    path = tmp_path_factory.mktemp("prop") / "template.db"
    db = connect(path)
    initialise(db)
    seed(db)
    definitions.register_shipped(db)
    act = engine.Act("setup", "coordinator", at=START)
    engine.start(db, "system-readiness", engine.Subject(system="Momentum"), act)
    for name, bob in (("Aarhus", True), ("Vejle", False), ("Odense", True), ("Ærø", False)):
        engine.start(
            db, "connection", engine.Subject(municipality=name, system="Momentum", bob=bob), act
        )
    engine.start(
        db, "klik-task", engine.Subject(municipality="Aarhus", klik_task="Systemoverblik"), act
    )
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def _triggers() -> list[str]:
    names = set()
    for path in Path("workflows/definitions").glob("*.yaml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("- trigger:"):
                names.add(line.split(":", 1)[1].strip())
    return sorted(names | {"no_such_trigger"})


FIELD_VALUES = {
    "connection_date": st.sampled_from(["2021-06-01", "2021-09-15", "not-a-date"]),
    "pilot_municipality": st.sampled_from(["Aarhus", "Vejle", "Atlantis"]),
    "reason": st.sampled_from(["", "out of budget"]),
    "kle_numbers": st.just("32.18.00"),
}

action = st.tuples(
    st.integers(min_value=1, max_value=6),  # track id (6 is the KLIK task)
    st.sampled_from(_triggers()),
    st.sampled_from(ROLE_NAMES),
    st.dictionaries(st.sampled_from(sorted(FIELD_VALUES)), st.just(None), max_size=2),
    st.integers(min_value=-2, max_value=30),  # days after the previous step (negative: earlier)
    st.one_of(st.none(), st.integers(min_value=0, max_value=12)),  # expected version
)


def _assert_rows_equal_replay(db: Database) -> None:
    for (tid,) in db.execute("SELECT id FROM tracks").fetchall():
        row = engine.load_track(db.conn, tid)
        replayed = tracks.replay(db, tid)
        actual = {k: row[k] for k in replayed}
        assert actual == replayed, f"track {tid}"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=st.lists(action, min_size=1, max_size=25), data=st.data())
def test_engine_track_row_always_equals_replay_of_history(
    template: Path, tmp_path: Path, actions: list[Any], data: st.DataObject
) -> None:
    """Random valid and invalid triggers never make a track row disagree with its history."""
    path = tmp_path / f"run-{id(actions)}.db"
    shutil.copy(template, path)
    db = connect(path)
    try:
        moment = START
        applied = 0
        for tid, trigger, role, field_names, days, expected in actions:
            moment = moment + timedelta(days=days, hours=1)
            sets = {name: data.draw(FIELD_VALUES[name]) for name in field_names}
            act = engine.Act("prop", role, at=moment)
            try:
                engine.advance(db, tid, trigger, act, sets, expected_version=expected)
                applied += 1
            except OnboardingError:
                pass
            _assert_rows_equal_replay(db)
        history_rows = db.execute("SELECT count(*) FROM history").fetchone()[0]
        assert history_rows == 6 + applied
    finally:
        db.close()
