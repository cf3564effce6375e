"""Helpers for the outbox and notification tests: tracks driven through the real engine."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from notifications.config import Config, load_config
from onboarding import clock, engine, outbox, registry
from tests.mailserver import MailServer

#: The connection date used throughout: step 4 (sapa_request) is then due 10 working days
#: earlier, on Wednesday 18 August 2021.
CONNECTION_DATE = "2021-09-01"
SAPA_DUE = "2021-08-18"
#: 08:00 in Copenhagen on the due date: when the sapa@kombit.dk notice falls due.
SAPA_NOTICE_AT = "2021-08-18T08:00"


def t(text: str) -> datetime:
    """An instant from ISO text (local time when no offset is given)."""
    return clock.parse_time(text)


def act(at: str, role: str = "coordinator") -> engine.Act:
    return engine.Act(actor="tester", role=role, at=t(at))


def make_ready(db: Database, system: str = "Momentum", pilot: str = "Aarhus") -> int:
    """Take a system through readiness (development -> pilot -> compliance test -> ready)."""
    track = engine.start(
        db, "system-readiness", engine.Subject(system=system, index="sd"), act("2021-01-04T09:00")
    )
    tid = int(track["id"])
    engine.advance(db, tid, "start_pilot", act("2021-01-11T09:00", "vendor"),
                   {"pilot_municipality": pilot})
    engine.advance(db, tid, "complete_pilot", act("2021-02-01T09:00", "vendor"))
    engine.advance(db, tid, "pass_compliance", act("2021-03-01T09:00"))
    return tid


def connection_to_sapa(
    db: Database,
    municipality: str = "Køge",
    system: str = "Momentum",
    connection_date: str = CONNECTION_DATE,
    at: str = "2021-06-01T09:00",
) -> int:
    """Start a connection track and advance it to step 4 (sapa_request); return its id."""
    track = engine.start(
        db, "connection", engine.Subject(municipality=municipality, system=system), act(at)
    )
    tid = int(track["id"])
    engine.advance(db, tid, "agree_date", act("2021-06-02T09:00"),
                   {"connection_date": connection_date})
    engine.advance(db, tid, "approve_agreements", act("2021-06-03T09:00", "agreement-admin"))
    return tid


def finish_connection(db: Database, tid: int, day: str = "2021-06-04") -> None:
    """Record every step after sapa_request, to live (as a coordinator catching up would)."""
    triggers = ("request_display", "open_display", "complete_setup", "load_complete")
    for hour, trigger in enumerate(triggers, start=9):
        engine.advance(db, tid, trigger, act(f"{day}T{hour:02d}:00"))


def add_contacts(db: Database, folder: Path, rows: list[dict[str, str]]) -> None:
    """Import contacts (role, name, email, municipality, vendor) through the registry."""
    path = folder / "contacts.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["role", "name", "email", "municipality", "vendor"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"municipality": "", "vendor": "", **row})
    registry.import_contacts(db, path)


def smtp_config(server: MailServer, db_path: Path, **delivery: Any) -> Config:
    """Settings pointing at the test server (through the same loader the CLI uses)."""
    config = load_config(db_path, env=server.env())
    return _with(config, **delivery)


def eml_config(db_path: Path, **delivery: Any) -> Config:
    return _with(load_config(db_path, env={}), **delivery)


def _with(config: Config, **changes: Any) -> Config:
    from dataclasses import replace

    return replace(config, **changes)


def rows_by_name(db: Database, track_id: int) -> dict[str, dict[str, Any]]:
    """The track's outbox rows by notification name (latest entry wins)."""
    return {r["notification"]: r for r in outbox.list_rows(db, track_id=track_id)}


def statuses(db: Database) -> dict[str, int]:
    return outbox.counts(db.conn)  # planned rows included (issue 14)
