"""Calendar entries that follow the deadline: one UID per (track, state entry), a SEQUENCE that
grows when the deadline moves, and a withdrawal (METHOD:CANCEL) when the track ends first."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from sqlite_utils import Database

from notifications.render import due_calendar
from notifications.runner import send_due
from onboarding import engine, outbox
from tests.mailserver import MailServer, Received
from tests.notify_support import (
    act,
    add_contacts,
    connection_to_sapa,
    make_ready,
    rows_by_name,
    smtp_config,
    t,
)
from tests.test_notifications_render import _icalendar_reference

pytestmark = pytest.mark.usefixtures("no_mail_env")

CONTACTS = [
    {"role": "sapa-owner", "name": "Sofie Sapa", "email": "sofie@koege.dk", "municipality": "Køge"},
    {"role": "coordinator", "name": "Kim Koordinator", "email": "kim@kombit.dk"},
    {"role": "programme-lead", "name": "Pia", "email": "pia@koege.dk", "municipality": "Køge"},
    {"role": "vendor", "name": "Vera", "email": "vera@kmd.dk", "vendor": "KMD"},
]
#: Step 4 of a Køge connection on 1 September is due Wednesday 18 August; its reminder to the
#: SAPA owner falls due at 08:00 on Friday 13 August.
REMINDER_AT = "2021-08-13T08:00"


@dataclass(frozen=True)
class Event:
    uid: str
    sequence: int
    start: date
    method: str
    status: str | None
    part_method: str | None
    organizer: str | None


def _events(mail: Received) -> list[Event]:
    out = []
    for part in mail.message.iter_attachments():
        if part.get_content_type() != "text/calendar":
            continue
        cal = icalendar.Calendar.from_ical(part.get_content())
        for ev in cal.walk("VEVENT"):
            out.append(
                Event(
                    uid=str(ev["uid"]),
                    sequence=int(ev.get("sequence", 0)),
                    start=ev.decoded("dtstart"),
                    method=str(cal["method"]),
                    status=str(ev["status"]) if "status" in ev else None,
                    part_method=part.get_param("method"),
                    organizer=str(ev["organizer"]) if "organizer" in ev else None,
                )
            )
    return out


@pytest.fixture
def sapa(db: Database, tmp_path: Path) -> int:
    """A Køge connection of KMD Momentum in step 4, with a contact for every role it mails."""
    make_ready(db)
    add_contacts(db, tmp_path, CONTACTS)
    return connection_to_sapa(db)


def test_mail_calendar_moved_deadline_keeps_the_uid_and_raises_the_sequence(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """Reminder sent, then ``track set connection_date`` moves the deadline: the next mail for
    the same step carries the same UID, a higher SEQUENCE and the new date."""
    config = smtp_config(smtp_server, db_path)
    send_due(db, t(REMINDER_AT), config)
    [reminder] = smtp_server.to("sofie@koege.dk")
    [first] = _events(reminder)
    assert first.start == date(2021, 8, 18) and first.method == "PUBLISH"
    assert first.part_method == "PUBLISH" and first.organizer == "mailto:onboarding@kombit.test"
    engine.set_fields(db, sapa, {"connection_date": "2021-09-15"}, act("2021-08-16T09:00"))
    send_due(db, t("2021-09-01T08:00"), config)  # the sapa@kombit.dk notice, now due 1 Sep
    [notice] = smtp_server.to("sapa@kombit.dk")
    [moved] = _events(notice)
    assert moved.uid == first.uid
    assert moved.sequence > first.sequence
    assert moved.start == date(2021, 9, 1)
    send_due(db, t("2021-09-02T08:00"), config)  # the first escalation, same step
    [escalation] = smtp_server.to("sofie@koege.dk")[1:]
    [again] = _events(escalation)
    assert again.uid == first.uid and again.sequence == moved.sequence
    sent = len(smtp_server.messages)
    engine.set_fields(db, sapa, {"connection_date": "2021-09-22"}, act("2021-09-02T09:00"))
    send_due(db, t("2021-09-15T08:00"), config)  # overdue-2 to the coordinator, due 15 Sep
    later = [e for m in smtp_server.messages[sent:] for e in _events(m)]
    assert later and {e.uid for e in later} == {first.uid}
    assert all(e.sequence > moved.sequence and e.start == date(2021, 9, 8) for e in later)


def test_mail_calendar_uid_is_per_step_entry_not_per_notification(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """A reminder and an escalation for the same step share one UID; another step (a new
    state entry) gets another."""
    config = smtp_config(smtp_server, db_path)
    send_due(db, t("2021-08-13T08:00"), config)  # the reminder, 3 working days before
    send_due(db, t("2021-08-19T08:00"), config)  # the notice and overdue-1
    uids = {e.uid for m in smtp_server.messages for e in _events(m)}
    assert len(smtp_server.messages) == 3 and len(uids) == 1
    engine.advance(db, sapa, "request_display", act("2021-08-19T09:00"))
    send_due(db, t("2021-08-30T08:00"), config)  # step 5's reminder
    step5 = [e.uid for m in smtp_server.messages[3:] for e in _events(m)]
    assert step5 and uids.isdisjoint(step5)


def test_mail_calendar_digest_has_one_event_per_step_entry(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """In a digest every event has its own UID: items of the same step entry share one event,
    items of different tracks have one each."""
    make_ready(db)
    add_contacts(db, tmp_path, CONTACTS)
    # Entered step 4 already past its deadline: everything of the step is due at once.
    for town in ("Køge", "Greve"):
        connection_to_sapa(db, town, connection_date="2021-06-10")
    config = smtp_config(smtp_server, db_path, digest=True)
    send_due(db, t("2021-06-03T12:00"), config)
    for mail in smtp_server.messages:
        events = _events(mail)
        ids = [int(i) for i in str(mail.message["X-Onboarding-Outbox"]).split(",")]
        rows = [outbox.get_row(db, i) for i in ids]
        entries = {(r["track_id"], r["entry_seq"]) for r in rows if r["due_date"]}
        assert len(events) == len({e.uid for e in events}) == len(entries), mail.subject
    to_sofie = [e for m in smtp_server.to("sofie@koege.dk") for e in _events(m)]
    assert len(to_sofie) == 1
    # The ladder climbs from the moment of entry: the coordinator's rung comes 4 working
    # days later, for both tracks in one digest.
    assert smtp_server.to("kim@kombit.dk") == []
    send_due(db, t("2021-06-10T12:00"), config)
    to_kim = smtp_server.to("kim@kombit.dk")
    assert len(to_kim) == 1 and len({e.uid for e in _events(to_kim[0])}) == 2


def test_mail_calendar_step_done_before_its_deadline_sends_nothing_further(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """Once the step is recorded done, its reminders and escalations never go; only the kept
    sapa@kombit.dk notice does, and nobody gets a withdrawal (the track goes on)."""
    config = smtp_config(smtp_server, db_path)
    send_due(db, t(REMINDER_AT), config)
    [reminder] = smtp_server.messages
    [event] = _events(reminder)
    engine.advance(db, sapa, "request_display", act("2021-08-16T09:00"))
    send_due(db, t("2021-08-31T12:00"), config)
    step4 = [e for m in smtp_server.messages[1:] for e in _events(m) if e.uid == event.uid]
    assert [m.rcpt_tos for m in smtp_server.messages[1:] if event.uid in
            {e.uid for e in _events(m)}] == [["sapa@kombit.dk"]]
    assert all(e.method == "PUBLISH" for e in step4)
    statuses = {r["notification"]: r["status"] for r in outbox.list_rows(db, track_id=sapa)
                if r["state"] == "sapa_request"}
    assert statuses == {"reminder": "sent", "sapa-notice": "sent", "overdue-1": "cancelled",
                        "overdue-2": "cancelled", "overdue-3": "cancelled"}


def test_mail_calendar_cancelled_track_withdraws_its_open_event(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """A connection cancelled before step 4's deadline: the SAPA owner, who got the step's
    event with the reminder, gets one notice with METHOD:CANCEL for the same UID, a higher
    SEQUENCE and STATUS:CANCELLED, saying why; nothing else is sent for the step."""
    config = smtp_config(smtp_server, db_path)
    send_due(db, t(REMINDER_AT), config)
    [reminder] = smtp_server.messages
    [event] = _events(reminder)
    engine.advance(db, sapa, "cancel", act("2021-08-16T09:00"), {"reason": "opgivet"})
    [row] = [r for r in outbox.list_rows(db, ("pending",), track_id=sapa)]
    assert row["kind"] == "notice" and row["recipients"] == ["sofie@koege.dk"]
    assert row["state"] == "sapa_request" and row["entry_seq"] == rows_by_name(db, sapa)[
        "reminder"]["entry_seq"]
    send_due(db, t("2021-08-16T09:05"), config)
    send_due(db, t("2021-12-31T12:00"), config)
    [withdrawal] = smtp_server.messages[1:]
    assert withdrawal.rcpt_tos == ["sofie@koege.dk"]
    [cancel] = _events(withdrawal)
    assert cancel.uid == event.uid and cancel.sequence > event.sequence
    assert cancel.method == "CANCEL" and cancel.part_method == "CANCEL"
    assert cancel.status == "CANCELLED" and cancel.start == date(2021, 8, 18)
    assert "Frist aflyst" in withdrawal.subject and "Køge" in withdrawal.subject
    text = withdrawal.text()
    assert "opgivet" in text and "18. august 2021" in text and "gælder ikke længere" in text
    assert "sapa_request" not in text + withdrawal.html()
    # The withdrawal goes to a plain address, yet greets the registry's name for it.
    greeting = text.splitlines()[0]
    assert greeting.startswith("Til ") and "sofie@koege.dk" not in greeting


def test_mail_calendar_finished_track_withdraws_in_english_when_configured(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """The last step recorded done before its deadline: its event is withdrawn with a notice
    saying the track was completed (English with language = en)."""
    config = replace(smtp_config(smtp_server, db_path), language="en")
    for hour, trigger in enumerate(("request_display", "open_display", "complete_setup"), 9):
        engine.advance(db, sapa, trigger, act(f"2021-06-04T{hour:02d}:00"))
    send_due(db, t("2021-09-10T08:00"), config)  # data_load (due 15 Sep): reminder to KMD
    [reminder] = smtp_server.to("vera@kmd.dk")
    [event] = _events(reminder)
    assert event.start == date(2021, 9, 15)
    engine.advance(db, sapa, "load_complete", act("2021-09-13T09:00"))
    send_due(db, t("2021-09-13T09:05"), config)
    [withdrawal] = smtp_server.to("vera@kmd.dk")[1:]
    [cancel] = _events(withdrawal)
    assert cancel.uid == event.uid and cancel.method == "CANCEL"
    assert cancel.sequence > event.sequence
    assert withdrawal.subject.startswith("Deadline cancelled")
    assert "completed" in withdrawal.text() and "15 September 2021" in withdrawal.text()


def test_mail_calendar_no_withdrawal_when_nothing_was_sent_or_the_date_passed(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """A track cancelled before any deadline mail, or after the step's date has passed,
    sends no withdrawal."""
    make_ready(db)
    add_contacts(db, tmp_path, CONTACTS)
    early = connection_to_sapa(db, "Køge")
    engine.advance(db, early, "cancel", act("2021-08-01T09:00"), {"reason": "opgivet"})
    late = connection_to_sapa(db, "Greve", at="2021-06-01T10:00")
    config = smtp_config(smtp_server, db_path)
    add_contacts(db, tmp_path, [*CONTACTS, {"role": "sapa-owner", "name": "Gert",
                                            "email": "gert@greve.dk", "municipality": "Greve"}])
    send_due(db, t("2021-08-19T08:00"), config)
    assert smtp_server.to("gert@greve.dk")
    engine.advance(db, late, "cancel", act("2021-08-19T09:00"), {"reason": "opgivet"})
    assert outbox.list_rows(db, ("pending", "sending")) == []


@pytest.mark.parametrize(
    "extra",
    [
        {"sequence": 3},
        {"sequence": 4, "method": "CANCEL", "organizer": "onboarding@kombit.test"},
        {"sequence": 0, "organizer": "x.y-z@kommune.example.dk"},
    ],
)
def test_mail_calendar_ics_bytes_equal_the_icalendar_package(extra: dict[str, Any]) -> None:
    """SEQUENCE, METHOD:CANCEL with STATUS:CANCELLED and ORGANIZER are written byte for byte as
    the icalendar package writes them."""
    kw: dict[str, Any] = dict(uid="t2.e3.deadline.0a1b@kombit.test", summary="Frist aflyst: Ærø",
                              description="Fristen gælder ikke længere;\nforløbet er opgivet",
                              due=date(2021, 8, 18), stamp=t("2021-08-18T08:00"), lang="da",
                              **extra)
    data = due_calendar(**kw)
    assert data == _icalendar_reference(**kw)
    event = icalendar.Calendar.from_ical(data).walk("VEVENT")[0]
    assert int(event["sequence"]) == kw["sequence"]
    assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(days=1)
