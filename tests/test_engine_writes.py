"""What ``engine.start`` and ``engine.advance`` hand back and store when they write less
(issue 14, per-advance speed): a start returns the row it inserted without reading it back,
and an advance leaves ``final`` (and the open-subject key) alone unless the step changes it."""

from __future__ import annotations

import pytest
from sqlite_utils import Database

from onboarding import engine
from onboarding.errors import OnboardingError
from tests.notify_support import act, make_ready


def test_engine_start_returns_the_row_as_stored(db: Database) -> None:
    """The track a start returns equals the row read back, for every kind of subject."""
    make_ready(db)
    at = act("2021-03-01T09:00")
    started = [
        engine.start(db, "connection", engine.Subject(municipality="Aarhus", system="Momentum",
                                                      bob=True), at),
        engine.start(db, "connection", engine.Subject(municipality="Vejle", system="Momentum"),
                     at, {"connection_date": "2021-09-01"}),
        engine.start(db, "klik-task", engine.Subject(municipality="Aarhus",
                                                     klik_task="Systemoverblik"), at),
        engine.start(db, "rollout-wave", engine.Subject(municipality="Odense", wave="B1"), at),
    ]
    for track in started:
        assert track == engine.load_track(db.conn, int(track["id"]))


def test_engine_advance_sets_final_only_when_the_step_changes_it(db: Database) -> None:
    """A step between open states keeps the track open (its subject still taken); a step into
    a final state stores ``final`` and frees the subject for a new track."""
    make_ready(db)
    subject = engine.Subject(municipality="Aarhus", system="Momentum", bob=True)
    tid = int(engine.start(db, "connection", subject, act("2021-03-01T09:00"))["id"])
    moved = engine.advance(db, tid, "agree_date", act("2021-03-02T09:00"),
                           {"connection_date": "2021-09-01"})
    assert moved == engine.load_track(db.conn, tid)
    assert moved["final"] == 0
    with pytest.raises(OnboardingError, match="already has an open"):
        engine.start(db, "connection", subject, act("2021-03-03T09:00"))
    done = engine.advance(db, tid, "cancel", act("2021-03-04T09:00"), {"reason": "opgivet"})
    assert done == engine.load_track(db.conn, tid)
    assert (done["state"], done["final"]) == ("cancelled", 1)
    again = engine.start(db, "connection", subject, act("2021-03-05T09:00"))
    assert again["final"] == 0 and again["id"] != tid
