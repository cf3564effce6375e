"""The claim-render-send-record loop against a real SMTP server: the issue's guarantees."""

from __future__ import annotations

import threading
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import icalendar
import pytest
from sqlite_utils import Database

from notifications.config import Config
from notifications.runner import send_due
from notifications.send import SmtpTransport
from onboarding import clock, engine, outbox
from onboarding.db import open_existing
from tests.mailserver import MailServer
from tests.notify_support import (
    SAPA_NOTICE_AT,
    act,
    add_contacts,
    connection_to_sapa,
    finish_connection,
    make_ready,
    rows_by_name,
    smtp_config,
    statuses,
    t,
)

pytestmark = pytest.mark.usefixtures("no_mail_env")

KOEGE_CONTACTS = [
    {"role": "sapa-owner", "name": "Sofie Sapa", "email": "sofie@koege.dk", "municipality": "Køge"},
    {"role": "coordinator", "name": "Kim Koordinator", "email": "kim@kombit.dk"},
    {"role": "programme-lead", "name": "Pia", "email": "pia@koege.dk", "municipality": "Køge"},
]


@pytest.fixture
def sapa(db: Database, tmp_path: Path) -> int:
    """A Køge connection of KMD Momentum in step 4, with contacts for every role it names."""
    make_ready(db)
    add_contacts(db, tmp_path, KOEGE_CONTACTS)
    return connection_to_sapa(db)


def _ids(server: MailServer) -> list[int]:
    return [int(m.message["X-Onboarding-Outbox"]) for m in server.messages]


def test_runner_sends_the_sapa_notice_once_at_its_due_time(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """Due at 08:00 on 18 August: one message to sapa@kombit.dk naming municipality, system
    and dates, with an .ics for the due date; a second run sends nothing."""
    config = smtp_config(smtp_server, db_path)
    early = send_due(db, t("2021-08-18T07:59"), config)
    assert smtp_server.to("sapa@kombit.dk") == []
    assert early.sent == 1  # the reminder to the SAPA owner (due 13 August)
    summary = send_due(db, t(SAPA_NOTICE_AT), config)
    assert summary.sent == 1
    [mail] = smtp_server.to("sapa@kombit.dk")
    assert mail.rcpt_tos == ["sapa@kombit.dk"]
    assert mail.mail_from == "onboarding@kombit.test"
    assert "Køge" in mail.subject and "KMD Momentum" in mail.subject
    assert "18. august 2021" in mail.text() and "1. september 2021" in mail.text()
    assert "Køge" in mail.html() and mail.html().lstrip().startswith("<!DOCTYPE html>")
    [ics] = [p for p in mail.message.iter_attachments() if p.get_content_type() == "text/calendar"]
    event = icalendar.Calendar.from_ical(ics.get_content()).walk("VEVENT")[0]
    assert event.decoded("dtstart").isoformat() == "2021-08-18"
    row = rows_by_name(db, sapa)["sapa-notice"]
    assert row["status"] == "sent" and row["sent_to"] == ["sapa@kombit.dk"]
    assert row["message_id"] == mail.message_id
    assert mail.message_id.startswith(f"<t{sapa}.e{row['entry_seq']}.sapa-notice.")
    again = send_due(db, t(SAPA_NOTICE_AT), config)
    assert again.claimed == 0 and len(smtp_server.to("sapa@kombit.dk")) == 1


def test_runner_step_done_before_its_reminder_sends_nothing_for_it(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """Step 4 recorded (and all later steps) before any reminder fell due: only the kept
    sapa@kombit.dk notice is ever sent, however late the runner looks."""
    finish_connection(db, sapa, day="2021-06-10")
    summary = send_due(db, t("2021-12-31T12:00"), smtp_config(smtp_server, db_path))
    assert [m.rcpt_tos for m in smtp_server.messages] == [["sapa@kombit.dk"]]
    assert summary.sent == 1 and summary.failed == 0
    assert outbox.list_rows(db, ("pending", "sending", "failed")) == []


def test_runner_down_for_a_week_sends_overdue_once_each_in_due_order(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """After a week with no runner, one run sends every overdue notification once, in due
    order, except the reminders that the first escalation rung (same recipient) supersedes,
    and the next run sends nothing."""
    make_ready(db)
    add_contacts(db, tmp_path, [
        *KOEGE_CONTACTS,
        {"role": "sapa-owner", "name": "Gert", "email": "gert@greve.dk", "municipality": "Greve"},
        {"role": "programme-lead", "name": "Gry", "email": "gry@greve.dk", "municipality": "Greve"},
    ])
    connection_to_sapa(db, "Køge", connection_date="2021-09-01")
    connection_to_sapa(db, "Greve", connection_date="2021-09-03")
    week_later = t("2021-08-27T12:00")
    due = [r["id"] for r in outbox.list_rows(db, ("pending",), until=week_later)]
    assert len(due) == 8  # per track: reminder, notice, overdue-1, overdue-2
    reminders = {r["id"] for r in outbox.list_rows(db, ("pending",), until=week_later)
                 if r["kind"] == "reminder"}
    config = smtp_config(smtp_server, db_path, batch_size=3)
    summary = send_due(db, week_later, config)
    sent = [i for i in due if i not in reminders]
    assert summary.sent == len(sent) == len(smtp_server.messages) == 6
    assert summary.superseded == len(reminders) == 2
    assert _ids(smtp_server) == sent  # list_rows is in due order
    assert len({m.message_id for m in smtp_server.messages}) == len(sent)
    assert send_due(db, week_later, config).claimed == 0
    assert len(smtp_server.messages) == len(sent)


def test_runner_two_runners_at_once_send_each_notification_once(
    db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """Two runners on separate connections sweeping the same database at the same moment
    deliver every notification exactly once between them."""
    setup = open_existing(db_path)
    make_ready(setup)
    towns = ["Køge", "Greve", "Solrød", "Roskilde", "Holbæk", "Ringsted", "Faxe", "Stevns"]
    add_contacts(setup, tmp_path, [
        {"role": "sapa-owner", "name": f"Ejer {m}", "email": f"sapa{i}@kommune.dk",
         "municipality": m} for i, m in enumerate(towns)
    ])
    for town in towns:
        connection_to_sapa(setup, town)
    at = t(SAPA_NOTICE_AT)
    due = len(outbox.list_rows(setup, ("pending",), until=at))
    setup.close()
    assert due == 2 * len(towns)
    config = smtp_config(smtp_server, db_path, batch_size=2)
    barrier = threading.Barrier(2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        db = open_existing(db_path)
        try:
            barrier.wait()
            results.append(send_due(db, at, config))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert errors == []
    ids = _ids(smtp_server)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == due
    assert sum(r.sent for r in results) == due
    check = open_existing(db_path)
    assert statuses(check).get("sent") == due
    check.close()


def test_runner_restart_after_a_crash_mid_batch_sends_each_once(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """Rows claimed by a runner that died are left alone while its lease holds, then taken
    back and sent once by the next runner."""
    at = t(SAPA_NOTICE_AT)
    now = t("2026-03-02T10:00")
    config = smtp_config(smtp_server, db_path)
    dead = outbox.claim(db, at, now, "dead-runner", 10, config.lease)
    assert len(dead) == 2
    assert send_due(db, at, config, now=now + timedelta(minutes=1)).claimed == 0
    assert smtp_server.messages == []
    later = send_due(db, at, config, now=now + config.lease + timedelta(seconds=1))
    assert later.reclaimed == 2 and later.sent == 2
    assert sorted(_ids(smtp_server)) == sorted(r["id"] for r in dead)
    assert send_due(db, at, config).claimed == 0


class _CrashAfterSend(SmtpTransport):
    """Hands the message to SMTP, then 'crashes' before the runner can record it."""

    def send(self, msg: Any, recipients: list[str]) -> dict[str, str]:
        refused = super().send(msg, recipients)
        raise KeyboardInterrupt("killed between SMTP accept and recording")
        return refused  # pragma: no cover


def test_runner_crash_between_accept_and_record_resends_with_the_same_message_id(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """The one duplicate window: killed after SMTP accepted but before recording, the message
    goes again after the lease, with the same Message-ID so the receiver can drop it."""
    at = t(SAPA_NOTICE_AT)
    config = smtp_config(smtp_server, db_path)
    assert config.smtp is not None
    now = clock.now()
    with pytest.raises(KeyboardInterrupt):
        send_due(db, at, config, now=now,
                 transport=_CrashAfterSend(config.smtp, config.envelope_from))
    assert len(smtp_server.messages) == 1
    first = smtp_server.messages[0]
    # Both rows of the crashed batch stay claimed until the lease runs out.
    assert send_due(db, at, config, now=now).claimed == 0
    summary = send_due(db, at, config, now=now + config.lease + timedelta(seconds=1))
    assert summary.reclaimed == 2 and summary.sent == 2
    copies = [m for m in smtp_server.messages if m.message_id == first.message_id]
    assert len(copies) == 2
    assert len(smtp_server.messages) == 3


def test_runner_smtp_451_retries_with_backoff_then_fails_after_bounded_attempts(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """A refusing server: pending with doubling backoff, failed after max_attempts, nothing
    lost; requeued once the server is back, it is delivered exactly once."""
    smtp_server.mode = "451"
    config = smtp_config(smtp_server, db_path, max_attempts=3, backoff_seconds=300)
    start = t(SAPA_NOTICE_AT)

    def run(minutes: int) -> Any:
        # The backoff runs from the wall clock, so the wall clock moves with the run's time.
        moment = start + timedelta(minutes=minutes)
        return send_due(db, moment, config, now=moment)

    def retry_in(minutes: int) -> timedelta:
        return clock.unstamp(rows_by_name(db, sapa)["sapa-notice"]["next_attempt_at"]) - (
            start + timedelta(minutes=minutes)
        )

    first = run(0)
    assert first.retrying == 2 and first.sent == 0
    row = rows_by_name(db, sapa)["sapa-notice"]
    assert row["status"] == "pending" and row["attempts"] == 1
    assert timedelta(minutes=5) <= retry_in(0) < timedelta(minutes=5, seconds=10)
    assert "451" in row["last_error"]
    assert run(4).claimed == 0  # backoff holds
    assert run(6).retrying == 2
    assert timedelta(minutes=10) <= retry_in(6) < timedelta(minutes=10, seconds=10)
    third = run(17)
    assert third.failed == 2
    failed = outbox.list_rows(db, ("failed",))
    assert {r["notification"] for r in failed} == {"sapa-notice", "reminder"}
    assert smtp_server.handler.refused == 6 and smtp_server.messages == []
    smtp_server.mode = "accept"
    back = start + timedelta(hours=12)  # before the first escalation falls due
    assert send_due(db, back, config).claimed == 0  # a failed row stays failed
    assert outbox.retry_failed(db) == 2
    assert send_due(db, back, config).sent == 2
    assert send_due(db, back, config).claimed == 0
    assert len(smtp_server.to("sapa@kombit.dk")) == 1


def test_runner_smtp_550_fails_at_once(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """A permanent refusal (5xx) fails the row on the first attempt, with the reply kept."""
    smtp_server.mode = "550"
    summary = send_due(db, t(SAPA_NOTICE_AT), smtp_config(smtp_server, db_path))
    assert summary.failed == 2 and summary.retrying == 0
    row = rows_by_name(db, sapa)["sapa-notice"]
    assert row["status"] == "failed" and row["attempts"] == 1 and "550" in row["last_error"]


def test_runner_dropped_connection_is_retried_later(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """A server that drops the connection mid-message: one reconnect, then a retry later."""
    smtp_server.mode = "drop"
    config = smtp_config(smtp_server, db_path)
    at = t(SAPA_NOTICE_AT)
    first = send_due(db, at, config, now=at)
    assert first.retrying == 2 and smtp_server.handler.dropped >= 2
    assert "connection lost" in rows_by_name(db, sapa)["sapa-notice"]["last_error"]
    smtp_server.mode = "accept"
    later = at + timedelta(hours=1)
    assert send_due(db, later, config, now=later).sent == 2
    assert len(smtp_server.to("sapa@kombit.dk")) == 1


def test_runner_unreachable_server_keeps_every_row_pending(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """Nobody listening: the first failure stops the run; every claimed row stays pending
    with no attempt charged (not the message's fault) and is delivered once the server
    answers."""
    config = smtp_config(smtp_server, db_path)
    smtp_server.stop()
    summary = send_due(db, t(SAPA_NOTICE_AT), config)
    assert summary.retrying == 0 and summary.sent == 0 and summary.held == 2
    assert "cannot reach" in (summary.stopped or "")
    assert all("cannot reach" in (o.error or "") for o in summary.outcomes)
    rows = [r for r in outbox.list_rows(db, track_id=sapa) if r["state"] == "sapa_request"]
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)
    server = MailServer()
    try:
        later = send_due(db, t(SAPA_NOTICE_AT) + timedelta(hours=1),
                         smtp_config(server, db_path))
        assert later.sent == 2 and len(server.to("sapa@kombit.dk")) == 1
    finally:
        server.stop()


def test_runner_reuses_one_smtp_connection_for_a_run(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """Several messages in several batches go over one SMTP connection."""
    make_ready(db)
    for town in ("Køge", "Greve", "Solrød"):
        connection_to_sapa(db, town)
    config = smtp_config(smtp_server, db_path, batch_size=1)
    assert config.smtp is not None
    transport = SmtpTransport(config.smtp, config.envelope_from)
    try:
        summary = send_due(db, t(SAPA_NOTICE_AT), config, transport=transport)
    finally:
        transport.close()
    assert len(smtp_server.to("sapa@kombit.dk")) == 3
    assert summary.messages == 3 and transport.connections == 1


def test_runner_cancels_a_stale_claim_whose_step_was_done(
    db: Database, db_path: Path, sapa: int, smtp_server: MailServer
) -> None:
    """A reminder claimed by a runner that died, whose step was then recorded done, is
    cancelled (by the advance: it was never handed over) instead of sent; the kept notice
    still goes."""
    config = smtp_config(smtp_server, db_path)
    now = clock.now()
    outbox.claim(db, t(SAPA_NOTICE_AT), now, "dead", 10, config.lease)
    engine.advance(db, sapa, "request_display", act("2021-08-18T09:00", "sapa-owner"))
    summary = send_due(db, t(SAPA_NOTICE_AT), config, now=now + config.lease * 2)
    assert summary.reclaimed == 1 and summary.sent == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [["sapa@kombit.dk"]]
    [reminder] = [r for r in outbox.list_rows(db, track_id=sapa)
                  if r["state"] == "sapa_request" and r["notification"] == "reminder"]
    assert reminder["status"] == "cancelled"


def test_runner_without_a_contact_fails_with_a_reason(
    db: Database, db_path: Path, smtp_server: MailServer
) -> None:
    """A role with nobody registered for the municipality fails at once, saying what to do."""
    make_ready(db)
    tid = connection_to_sapa(db)
    summary = send_due(db, t("2021-08-13T08:00"), smtp_config(smtp_server, db_path))
    assert summary.failed == 1 and smtp_server.messages == []
    error = rows_by_name(db, tid)["reminder"]["last_error"]
    assert "no contact with role sapa-owner (SAPA-systemejer) for Køge Municipality" in error
    assert "registry import contacts FILE" in error and "reminders retry" in error


def test_runner_digest_sends_one_message_per_recipient_and_day(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """With the digest on, a coordinator's escalations due the same day arrive as one email;
    notices still go one by one. Off by default."""
    make_ready(db)
    add_contacts(db, tmp_path, [{"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"}])
    for town in ("Køge", "Greve"):
        connection_to_sapa(db, town)
    at = t("2021-08-25T08:00")  # overdue-2 (to the coordinator) for both tracks
    config = smtp_config(smtp_server, db_path, digest=True)
    assert smtp_config(smtp_server, db_path).digest is False
    summary = send_due(db, at, config)
    to_kim = smtp_server.to("kim@kombit.dk")
    assert len(to_kim) == 1
    assert summary.sent == summary.claimed - summary.failed - summary.superseded
    digest = to_kim[0]
    assert digest.subject.startswith("2 overskredne frister")
    assert digest.text().count("Overskredet frist (trin 2)") == 2
    assert len(list(digest.message.iter_attachments())) == 2
    assert len(smtp_server.to("sapa@kombit.dk")) == 2


def test_runner_eml_default_writes_one_file_per_message(
    db: Database, db_path: Path, sapa: int
) -> None:
    """With no SMTP configured, each message is an .eml file in <db stem>-outbox/."""
    from notifications.config import load_config

    config: Config = load_config(db_path, env={})
    assert config.smtp is None and config.outbox_dir == db_path.parent / "onboarding-outbox"
    summary = send_due(db, t(SAPA_NOTICE_AT), config)
    files = sorted(config.outbox_dir.glob("*.eml"))
    assert summary.sent == 2 and len(files) == 2
    parsed = [message_from_bytes(f.read_bytes()) for f in files]
    assert sorted(str(p["To"]) for p in parsed) == [
        "Sofie Sapa <sofie@koege.dk>", "sapa@kombit.dk"
    ]
    assert send_due(db, t(SAPA_NOTICE_AT), config).claimed == 0
    assert len(list(config.outbox_dir.glob("*.eml"))) == 2
