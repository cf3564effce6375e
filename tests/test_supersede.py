"""One message per recipient per step: the ladder from entry, superseded rungs, the catch-up.

Issue 10 ("Bursts"): a track entering a step already past its deadline, or a sender back after
a week, sent the reminder and every escalation rung in the same minute. Now a step entered late
climbs its ladder from the moment of entry, and a reminder or lower rung due together with a
higher rung for the same recipients is recorded ``superseded`` and never sent.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from email import message_from_bytes, policy
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

import cli
from notifications.runner import send_due
from onboarding import calendar, clock, definitions, engine, i18n, outbox
from tests.mailserver import MailServer
from tests.notify_support import (
    SAPA_DUE,
    act,
    add_contacts,
    connection_to_sapa,
    eml_config,
    make_ready,
    smtp_config,
    t,
)

pytestmark = pytest.mark.usefixtures("no_mail_env")

CONTACTS = [
    {"role": "sapa-owner", "name": "Sofie Sapa", "email": "sofie@koege.dk", "municipality": "Køge"},
    {"role": "coordinator", "name": "Kim Koordinator", "email": "kim@kombit.dk"},
    {"role": "programme-lead", "name": "Pia", "email": "pia@koege.dk", "municipality": "Køge"},
    {"role": "sapa-owner", "name": "Gert", "email": "gert@greve.dk", "municipality": "Greve"},
    {"role": "programme-lead", "name": "Gry", "email": "gry@greve.dk", "municipality": "Greve"},
]
#: Step 4 (sapa_request, due 18 August 2021) entered 12 working days after its deadline.
LATE_ENTRY = "2021-09-03T10:15"


def _stamp(text: str) -> str:
    return clock.stamp(t(text))


def _enter_step4_late(db: Database) -> int:
    """A Køge connection whose step 4 is entered on 3 September, 12 working days late."""
    track = engine.start(
        db, "connection", engine.Subject(municipality="Køge", system="Momentum"),
        act("2021-06-01T09:00"),
    )
    tid = int(track["id"])
    engine.advance(db, tid, "agree_date", act("2021-06-02T09:00"),
                   {"connection_date": "2021-09-01"})
    engine.advance(db, tid, "approve_agreements", act(LATE_ENTRY, "agreement-admin"))
    return tid


def _step4(db: Database, tid: int) -> dict[str, dict[str, Any]]:
    return {
        r["notification"]: r
        for r in outbox.list_rows(db, track_id=tid)
        if r["state"] == "sapa_request"
    }


def _eml_recipients(folder: Path) -> Counter[str]:
    """How many .eml messages each address received (from the written To headers)."""
    seen: Counter[str] = Counter()
    for path in folder.glob("*.eml"):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        for _, address in getaddresses([str(msg["To"])]):
            seen[address] += 1
    return seen


def test_supersede_late_entry_sends_one_message_per_recipient_then_climbs_from_entry(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    """Entering step 4 twelve working days late: at entry the SAPA owner gets rung 1 only (the
    reminder is superseded) and sapa@kombit.dk its notice; rungs 2 and 3 follow the ladder from
    the moment of entry (4 and 9 working days later), one message each, never a burst."""
    make_ready(db)
    add_contacts(db, tmp_path, CONTACTS)
    tid = _enter_step4_late(db)
    late = clock.local_date(t(LATE_ENTRY))
    assert calendar.working_days_between(clock.parse_date(SAPA_DUE), late) == 12
    rows = _step4(db, tid)
    entry = _stamp(LATE_ENTRY)
    assert rows["reminder"]["due_at"] == entry
    assert rows["overdue-1"]["due_at"] == entry
    assert rows["overdue-2"]["due_at"] == _stamp("2021-09-09T08:00")  # entry + (5 - 1) wd
    assert rows["overdue-3"]["due_at"] == _stamp("2021-09-16T08:00")  # entry + (10 - 1) wd
    assert rows["sapa-notice"]["due_at"] == entry

    config = eml_config(db_path)
    first = send_due(db, t(LATE_ENTRY), config)
    assert (first.sent, first.superseded, first.messages) == (2, 1, 2)
    rows = _step4(db, tid)
    assert rows["reminder"]["status"] == "superseded"
    assert f"#{rows['overdue-1']['id']}" in rows["reminder"]["last_error"]
    assert rows["reminder"]["sent_at"] is None and rows["reminder"]["message_id"] is None
    assert rows["overdue-1"]["status"] == "sent" and rows["overdue-1"]["sent_to"] == [
        "sofie@koege.dk"
    ]
    assert _eml_recipients(config.outbox_dir) == {"sofie@koege.dk": 1, "sapa@kombit.dk": 1}

    assert send_due(db, t("2021-09-09T07:59"), config).claimed == 0
    assert send_due(db, t("2021-09-09T08:00"), config).sent == 1
    assert send_due(db, t("2021-09-16T07:59"), config).claimed == 0
    assert send_due(db, t("2021-09-16T08:00"), config).sent == 1
    assert _eml_recipients(config.outbox_dir) == {
        "sofie@koege.dk": 1, "sapa@kombit.dk": 1, "kim@kombit.dk": 1, "pia@koege.dk": 1
    }
    assert {n: r["status"] for n, r in _step4(db, tid).items()} == {
        "sapa-notice": "sent", "reminder": "superseded", "overdue-1": "sent",
        "overdue-2": "sent", "overdue-3": "sent",
    }


def test_supersede_sender_down_a_week_catches_up_one_message_per_recipient_per_entry(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """A sender down from before the reminders until every rung is due sends, per track and
    state entry, one message to each recipient (the highest rung due for them), across
    batches of two; the reminders are superseded; a second run sends nothing."""
    make_ready(db)
    add_contacts(db, tmp_path, CONTACTS)
    koege = connection_to_sapa(db, "Køge", connection_date="2021-09-01")
    greve = connection_to_sapa(db, "Greve", connection_date="2021-09-03")
    config = smtp_config(smtp_server, db_path, batch_size=2)
    assert send_due(db, t("2021-08-12T09:00"), config).claimed == 0  # the last run before
    back = t("2021-09-06T12:00")  # every rung of both tracks is due by now
    summary = send_due(db, back, config)
    per: Counter[tuple[int, int, str]] = Counter()
    for tid in (koege, greve):
        for row in _step4(db, tid).values():
            if row["status"] == "sent":
                for address in row["sent_to"]:
                    per[(tid, row["entry_seq"], address)] += 1
    assert set(per.values()) == {1}, per
    assert summary.superseded == 2 and summary.failed == 0
    assert {a for (_, _, a) in per} == {
        "sapa@kombit.dk", "sofie@koege.dk", "gert@greve.dk", "kim@kombit.dk", "pia@koege.dk",
        "gry@greve.dk",
    }
    for tid in (koege, greve):
        rows = _step4(db, tid)
        assert rows["reminder"]["status"] == "superseded"
        assert {rows[f"overdue-{k}"]["status"] for k in (1, 2, 3)} == {"sent"}
    # What the server received: per track, each address once.
    received = Counter((m.message["X-Onboarding-Outbox"], a) for m in smtp_server.messages
                       for a in m.rcpt_tos)
    assert len(smtp_server.messages) == summary.messages == 8 and set(received.values()) == {1}
    assert send_due(db, back, config).claimed == 0


LADDER = """
name: probe-ladder
version: 1
title: Probe
subject: municipality-system
initial: open
fields:
  deadline: {type: date, label: Frist}
states:
  - name: open
    label: Åben
    role: municipality-pl
    due: {date: deadline}
    notifications:
      - {name: remind, kind: reminder, when: {before_due: 2}, to: municipality-pl,
         template: reminder}
      - name: late
        kind: escalation
        template: escalation
        ladder:
          - {when: {after_due: 1}, to: municipality-pl}
          - {when: {after_due: 3}, to: [municipality-pl, coordinator]}
          - {when: {after_due: 6}, to: [coordinator]}
  - name: done
    label: Færdig
    final: true
transitions:
  - {trigger: finish, source: open, dest: done, roles: [coordinator]}
"""


def test_supersede_a_higher_rung_to_the_same_people_replaces_every_lower_one(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    """Caught up after rung 2 (to the project lead and the coordinator) fell due: it alone goes
    out; the reminder and rung 1 (project lead only) are superseded by it. Rung 3 (coordinator
    only) does not supersede rung 2, whose recipients it lacks."""
    path = tmp_path / "ladder.yaml"
    path.write_text(LADDER, encoding="utf-8")
    definitions.add_file(db, path)
    add_contacts(db, tmp_path, [
        {"role": "municipality-pl", "name": "Lis", "email": "lis@aarhus.dk",
         "municipality": "Aarhus"},
        {"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"},
    ])
    tid = int(engine.start(
        db, "probe-ladder", engine.Subject(municipality="Aarhus", system="Momentum"),
        act("2021-06-01T10:00"), {"deadline": "2021-06-30"},
    )["id"])
    config = eml_config(db_path, batch_size=1)  # one row per claim: supersede across claims
    summary = send_due(db, t("2021-07-06T09:00"), config)  # rung 2 due 5 July, rung 3 not yet
    rows = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)}
    assert {n: r["status"] for n, r in rows.items()} == {
        "remind": "superseded", "late-1": "superseded", "late-2": "sent", "late-3": "pending",
    }
    assert summary.messages == 1
    assert rows["late-2"]["sent_to"] == ["lis@aarhus.dk", "kim@kombit.dk"]
    assert f"#{rows['late-2']['id']}" in rows["late-1"]["last_error"]
    assert send_due(db, t("2021-07-08T09:00"), config).sent == 1  # rung 3: the coordinator
    assert [r["status"] for r in outbox.list_rows(db, track_id=tid)
            if r["notification"] == "late-3"] == ["sent"]


def test_supersede_ladder_rule_keeps_natural_times_when_entered_on_time(db: Database) -> None:
    """Entered before rung 1's time: every rung at its own time. Entered 3 working days late:
    rung 1 at entry, rung 2 four working days after entry (later than its own time), rung 3
    at its own time when that is later still."""
    state = definitions.get(db, "connection").state("sapa_request")
    rules = {r.name: r for r in outbox.rules(state)}
    assert rules["overdue-1"].ladder_start == 1 and rules["reminder"].ladder_start is None
    due = clock.parse_date(SAPA_DUE)  # Wednesday 18 August 2021
    on_time = t("2021-08-02T09:00")
    assert rules["overdue-2"].due_at(due, on_time) == t("2021-08-25T08:00")
    late = t("2021-08-23T11:00")  # Monday, 3 working days after the deadline
    assert rules["reminder"].due_at(due, late) == late
    assert rules["overdue-1"].due_at(due, late) == late
    assert rules["overdue-2"].due_at(due, late) == t("2021-08-27T08:00")  # not 25 August
    assert rules["overdue-3"].due_at(due, late) == t("2021-09-03T08:00")  # 23 Aug + 9 wd
    assert rules["sapa-notice"].due_at(due, late) == late


def test_supersede_lookup_is_one_indexed_search_per_row(db: Database) -> None:
    """The superseding lookup searches the outbox by its (track, entry) key: O(batch) per
    claim, never a scan of the backlog."""
    plan = [
        r[3]
        for r in db.conn.execute(
            "EXPLAIN QUERY PLAN SELECT id, notification, level, recipients FROM outbox"
            " WHERE track_id = ? AND entry_seq = ? AND level > ?"
            " AND kind IN ('reminder', 'escalation')"
            " AND status IN ('pending', 'sending', 'sent')"
            " AND next_attempt_at <= ? ORDER BY level DESC, id",
            [1, 1, 0, "2021"],
        )
    ]
    assert any(p.startswith("SEARCH outbox USING INDEX") for p in plan), plan
    assert not any(p.startswith("SCAN outbox") for p in plan), plan


def _cli(runner: CliRunner, db_path: Path, *args: str) -> Any:
    # A wide terminal, so that table cells are not cut to fit 80 columns.
    result = runner.invoke(cli.cli, [*args, "--db", str(db_path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout


def test_supersede_forecast_shows_the_ladder_and_the_rows_it_will_supersede(
    db: Database, db_path: Path, tmp_path: Path, runner: CliRunner
) -> None:
    """'reminders forecast' after a late entry: the reminder is expected superseded by rung 1,
    rungs 2 and 3 come at their ladder-from-entry times, with the step's deadline; its help
    states the rule."""
    make_ready(db)
    add_contacts(db, tmp_path, CONTACTS)
    tid = _enter_step4_late(db)
    rows = _step4(db, tid)
    shown = json.loads(_cli(runner, db_path, "reminders", "forecast", "--at", LATE_ENTRY,
                            "--days", "14", "--json"))
    by_id = {r["id"]: r for r in shown}
    assert by_id[rows["reminder"]["id"]]["superseded_by"] == rows["overdue-1"]["id"]
    for name in ("overdue-1", "overdue-2", "overdue-3", "sapa-notice"):
        assert by_id[rows[name]["id"]]["superseded_by"] is None
        assert by_id[rows[name]["id"]]["deadline"] == SAPA_DUE
    assert by_id[rows["overdue-2"]["id"]]["due_at"] == _stamp("2021-09-09T08:00")
    text = _cli(runner, db_path, "reminders", "forecast", "--at", LATE_ENTRY, "--days", "14")
    assert f"not sent: superseded by #{rows['overdue-1']['id']}" in text
    assert "escalation 3" in text
    helptext = _cli(runner, db_path, "reminders", "forecast", "--help")
    assert "superseded" in helptext and "ladder from the moment of entry" in " ".join(
        helptext.split()
    )


def test_supersede_reminders_list_shows_deadline_and_superseded_rows(
    db: Database, db_path: Path, tmp_path: Path, runner: CliRunner
) -> None:
    """'reminders list --json' rows carry the step's deadline beside the send time; superseded
    rows are listed by default and alone with --superseded; the table has a deadline column."""
    make_ready(db)
    add_contacts(db, tmp_path, CONTACTS)
    tid = _enter_step4_late(db)
    send_due(db, t(LATE_ENTRY), eml_config(db_path))
    reminder = _step4(db, tid)["reminder"]
    listed = json.loads(_cli(runner, db_path, "reminders", "list", "--track", str(tid), "--json"))
    mine = {r["id"]: r for r in listed}
    assert mine[reminder["id"]]["status"] == "superseded"
    assert mine[reminder["id"]]["deadline"] == SAPA_DUE
    assert mine[reminder["id"]]["due"] == "2021-09-03 10:15"
    assert {r["deadline"] for r in listed if r["state"] == "sapa_request"} == {SAPA_DUE}
    only = json.loads(_cli(runner, db_path, "reminders", "list", "--superseded", "--json"))
    assert [r["id"] for r in only] == [reminder["id"]]
    assert "superseded by #" in only[0]["error"]
    table = _cli(runner, db_path, "reminders", "list", "--superseded")
    # The table writes the deadline as the language does (18 Aug 2021); --json keeps ISO.
    shown = i18n.fmt_date(date.fromisoformat(SAPA_DUE), "en")
    assert "deadline" in table.splitlines()[0] and shown in table and "superseded" in table
