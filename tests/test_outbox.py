"""The outbox rows: written with the transition, cancelled on leave, rescheduled, validated."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from onboarding import definitions, engine, outbox
from onboarding.errors import OnboardingError, TransitionRefused
from onboarding.filters import parse_where
from tests.notify_support import (
    act,
    add_contacts,
    connection_to_sapa,
    make_ready,
    rows_by_name,
    t,
)
from workflows.loader import validate_text

PROBE = """
name: probe-mail
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
      - {name: hello, kind: notice, when: on_entry, to: [sapa@kombit.dk], template: notice}
      - name: later
        kind: notice
        when: {after_entry: 2}
        to: coordinator
        template: notice
        time: "13:30"
        on_leave: cancel
      - name: remind
        kind: reminder
        when: {before_due: 2}
        to: municipality-pl
        template: reminder
        on_leave: keep
      - {name: due-day, kind: reminder, when: on_due, to: municipality-pl, template: reminder}
  - name: done
    label: Færdig
    final: true
transitions:
  - {trigger: again, source: open, dest: open, roles: [coordinator], optional: [deadline]}
  - {trigger: finish, source: open, dest: done, roles: [coordinator]}
"""


def _probe(db: Database, tmp_path: Path, deadline: str = "2021-06-30") -> int:
    path = tmp_path / "probe.yaml"
    path.write_text(PROBE, encoding="utf-8")
    definitions.add_file(db, path)
    track = engine.start(
        db,
        "probe-mail",
        engine.Subject(municipality="Aarhus", system="Momentum"),
        act("2021-06-01T10:00"),
        {"deadline": deadline},
    )
    return int(track["id"])


def _stamp(text: str) -> str:
    from onboarding import clock

    return clock.stamp(t(text))


def test_outbox_entering_sapa_request_schedules_notice_reminder_and_ladder(db: Database) -> None:
    """Step 4 gets the sapa@kombit.dk notice on its due date, a reminder and a 3-rung ladder."""
    make_ready(db)
    tid = connection_to_sapa(db)
    rows = {
        n: r for n, r in rows_by_name(db, tid).items() if r["state"] == "sapa_request"
    }
    assert set(rows) == {"sapa-notice", "reminder", "overdue-1", "overdue-2", "overdue-3"}
    notice = rows["sapa-notice"]
    assert notice["kind"] == "notice" and notice["on_leave"] == "keep"
    assert notice["recipients"] == ["sapa@kombit.dk"]
    assert notice["due_date"] == "2021-08-18"
    assert notice["due_at"] == _stamp("2021-08-18T08:00")
    assert rows["reminder"]["due_at"] == _stamp("2021-08-13T08:00")  # 3 working days before
    assert rows["reminder"]["recipients"] == ["sapa-owner"]
    assert [rows[f"overdue-{i}"]["recipients"] for i in (1, 2, 3)] == [
        ["sapa-owner"], ["coordinator"], ["programme-lead"]
    ]
    assert rows["overdue-1"]["due_at"] == _stamp("2021-08-19T08:00")
    assert rows["overdue-3"]["due_at"] == _stamp("2021-09-01T08:00")
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows.values())
    # The entry is the history row that entered the state: the unique key's middle part.
    seq = db.conn.execute(
        "SELECT seq FROM history WHERE track_id = ? AND to_state = 'sapa_request'", [tid]
    ).fetchone()[0]
    assert {r["entry_seq"] for r in rows.values()} == {seq}


def test_outbox_start_schedules_the_initial_state(db: Database) -> None:
    """Starting a track writes its first state's notifications under history seq 1."""
    track = engine.start(
        db, "connection", engine.Subject(municipality="Køge", system="Momentum"),
        act("2021-06-01T09:00"),
    )
    rows = outbox.list_rows(db, track_id=int(track["id"]))
    assert {r["notification"] for r in rows} == {"reminder", "overdue-1", "overdue-2", "overdue-3"}
    assert {r["entry_seq"] for r in rows} == {1}
    assert {r["due_date"] for r in rows} == {track["due"]}


def test_outbox_leaving_a_step_cancels_reminders_but_keeps_the_notice(db: Database) -> None:
    """Recording step 4 done cancels its reminder and escalations; the notice stays pending."""
    make_ready(db)
    tid = connection_to_sapa(db)
    engine.advance(db, tid, "request_display", act("2021-06-04T09:00", "sapa-owner"))
    rows = {r["notification"]: r for r in outbox.list_rows(db, track_id=tid)
            if r["state"] == "sapa_request"}
    assert rows["sapa-notice"]["status"] == "pending"
    assert {rows[n]["status"] for n in ("reminder", "overdue-1", "overdue-2", "overdue-3")} == {
        "cancelled"
    }
    # The next step's own notifications were scheduled in the same transition.
    assert {r["state"] for r in outbox.list_rows(db, ("pending",), track_id=tid)} == {
        "sapa_request", "display_opening"
    }


def test_outbox_cancel_on_trigger_drops_the_kept_notice(db: Database) -> None:
    """A notice kept on leave is still cancelled when the connection itself is cancelled."""
    make_ready(db)
    tid = connection_to_sapa(db)
    engine.advance(db, tid, "cancel", act("2021-06-04T09:00"), {"reason": "vendor gave up"})
    assert outbox.list_rows(db, ("pending", "sending"), track_id=tid) == []
    assert rows_by_name(db, tid)["sapa-notice"]["status"] == "cancelled"


def test_outbox_changing_the_due_date_reschedules_pending_rows(db: Database) -> None:
    """``track set connection_date`` moves every pending row of the step; sent rows stay."""
    make_ready(db)
    tid = connection_to_sapa(db)
    outbox.materialise_all(db.conn)  # planned rows (issue 14) become rows to be poked at
    db.conn.execute(
        "UPDATE outbox SET status = 'sent' WHERE track_id = ? AND notification = 'reminder'"
        " AND state = 'sapa_request'",
        [tid],
    )
    before = rows_by_name(db, tid)
    engine.set_fields(db, tid, {"connection_date": "2021-10-01"}, act("2021-06-05T09:00"))
    after = rows_by_name(db, tid)
    assert after["sapa-notice"]["id"] == before["sapa-notice"]["id"]  # same row, new time
    assert after["sapa-notice"]["due_date"] == "2021-09-17"
    assert after["sapa-notice"]["due_at"] == _stamp("2021-09-17T08:00")
    assert after["sapa-notice"]["next_attempt_at"] == after["sapa-notice"]["due_at"]
    assert after["overdue-1"]["due_at"] == _stamp("2021-09-20T08:00")
    assert after["reminder"]["due_at"] == before["reminder"]["due_at"]  # already sent
    assert after["reminder"]["status"] == "sent"
    # A field change does not enter the state again: no second set of rows.
    n = db.conn.execute(
        "SELECT count(*) FROM outbox WHERE track_id = ? AND state = 'sapa_request'", [tid]
    ).fetchone()[0]
    assert n == 5


def test_outbox_refused_transition_writes_no_rows(db: Database) -> None:
    """A transition refused by a guard (or a refused bulk) leaves the outbox untouched."""
    tid = int(engine.start(
        db, "connection", engine.Subject(municipality="Køge", system="Fasit"),
        act("2021-06-01T09:00"),
    )["id"])
    engine.advance(db, tid, "agree_date", act("2021-06-02T09:00"),
                   {"connection_date": "2021-09-01"})
    before = outbox.list_rows(db)
    with pytest.raises(TransitionRefused):  # Fasit is not ready for rollout
        engine.advance(db, tid, "approve_agreements", act("2021-06-03T09:00", "agreement-admin"))
    with pytest.raises(TransitionRefused):
        engine.bulk_advance(db, parse_where("definition=connection"), "approve_agreements",
                            act("2021-06-03T09:00"))
    assert outbox.list_rows(db) == before


def test_outbox_bulk_advance_schedules_every_track(db: Database) -> None:
    """A bulk transition writes each track's rows in the one transaction."""
    make_ready(db)
    ids = []
    for name in ("Køge", "Greve", "Solrød"):
        ids.append(int(engine.start(
            db, "connection", engine.Subject(municipality=name, system="Momentum"),
            act("2021-06-01T09:00"),
        )["id"]))
    result = engine.bulk_advance(
        db, parse_where("definition=connection"), "agree_date", act("2021-06-02T09:00"),
        {"connection_date": "2021-09-01"},
    )
    assert result.moved == 3
    for tid in ids:
        rows = outbox.list_rows(db, track_id=tid)
        assert {r["state"] for r in rows if r["status"] == "pending"} == {"service_agreements"}
        assert {r["state"] for r in rows if r["status"] == "cancelled"} == {"date_agreement"}


def test_outbox_entry_and_time_rules(db: Database, tmp_path: Path) -> None:
    """on_entry is the entry instant; after_entry counts working days at the declared time."""
    tid = _probe(db, tmp_path)
    rows = rows_by_name(db, tid)
    assert rows["hello"]["due_at"] == _stamp("2021-06-01T10:00")
    assert rows["later"]["due_at"] == _stamp("2021-06-03T13:30")
    assert rows["remind"]["due_at"] == _stamp("2021-06-28T08:00")
    assert rows["due-day"]["due_at"] == _stamp("2021-06-30T08:00")


def test_outbox_a_late_entry_makes_passed_notifications_due_at_entry(
    db: Database, tmp_path: Path
) -> None:
    """A reminder whose time passed before the state was entered is due at the entry."""
    tid = _probe(db, tmp_path, deadline="2021-06-01")
    rows = rows_by_name(db, tid)
    assert rows["remind"]["due_at"] == _stamp("2021-06-01T10:00")
    assert rows["due-day"]["due_at"] == _stamp("2021-06-01T10:00")


def test_outbox_reentering_a_state_is_a_new_entry(db: Database, tmp_path: Path) -> None:
    """A self-transition enters the state again: new rows under the new seq, old ones handled
    by on_leave (kept notice and keep-reminder stay, the rest is cancelled)."""
    tid = _probe(db, tmp_path)
    engine.advance(db, tid, "again", act("2021-06-02T10:00"))
    rows = outbox.list_rows(db, track_id=tid)
    first = {r["notification"]: r["status"] for r in rows if r["entry_seq"] == 1}
    second = {r["notification"]: r["status"] for r in rows if r["entry_seq"] == 2}
    assert first == {"hello": "pending", "later": "cancelled", "remind": "pending",
                     "due-day": "cancelled"}
    assert set(second.values()) == {"pending"} and len(second) == 4
    # The key (track, entry, notification) admits one row only.
    with pytest.raises(sqlite3.IntegrityError):
        db.conn.execute(
            "INSERT INTO outbox (track_id, entry_seq, state, notification, kind, template,"
            " recipients, on_leave, due_at, next_attempt_at, created_at, updated_at)"
            " SELECT track_id, entry_seq, state, notification, kind, template, recipients,"
            " on_leave, due_at, next_attempt_at, created_at, updated_at FROM outbox"
            " WHERE track_id = ? LIMIT 1",
            [tid],
        )


def test_outbox_validator_rejects_unknown_template_role_and_when() -> None:
    """A definition naming an unknown template, role or timing is refused with paths."""
    bad = PROBE.replace("template: notice}", "template: no-such}", 1).replace(
        "to: coordinator", "to: wizard"
    ).replace("when: {before_due: 2}", "when: {before_due: -2}").replace(
        "to: [sapa@kombit.dk]", "to: [not-an-address@]"
    )
    problems = "\n".join(validate_text(bad, "probe.yaml", definitions.known()))
    assert "unknown template 'no-such'" in problems
    assert "unknown role 'wizard'" in problems
    assert "before_due must be a whole number of working days" in problems
    assert "states[0] (open).notifications: [0] (hello).to" in problems
    assert validate_text(PROBE, "probe.yaml", definitions.known()) == []


def test_outbox_validator_checks_kinds_keys_and_ladders() -> None:
    """Unknown kinds, keys, on_leave values and malformed ladders are reported."""
    bad = PROBE.replace("kind: notice, when: on_entry", "kind: shout, when: sometime").replace(
        "on_leave: cancel", "on_leave: maybe\n        colour: red"
    ).replace(
        "      - {name: due-day, kind: reminder, when: on_due, to: municipality-pl, "
        "template: reminder}",
        "      - {name: up, kind: escalation, template: escalation, ladder: [{to: coordinator}]}",
    )
    problems = "\n".join(validate_text(bad, "probe.yaml", definitions.known()))
    assert "(hello).kind: must be one of reminder, notice, escalation" in problems
    assert "(hello).when: must be on_due, on_entry" in problems
    assert "(later).on_leave: must be keep or cancel" in problems
    assert "(later).colour: unknown key" in problems
    assert "(up).ladder[0]: must be a mapping with exactly when and to" in problems


def test_outbox_shipped_templates_have_every_part_in_both_languages() -> None:
    """Each template a definition may name has subject, text and HTML in Danish and English."""
    root = Path(__file__).parent.parent / "notifications" / "templates"
    names = outbox.template_names()
    assert {"reminder", "escalation", "notice", "sapa-request"} <= names
    for lang in ("da", "en"):
        for name in [*names, "_digest"]:
            for suffix in ("subject.txt", "txt", "html"):
                assert (root / lang / f"{name}.{suffix}").is_file(), (lang, name, suffix)


def test_outbox_not_entries_match_the_engine() -> None:
    """The outbox's idea of 'not a state entry' is the engine's NO_REENTRY."""
    assert frozenset(outbox.NOT_ENTRIES) == engine.NO_REENTRY


def test_outbox_retry_requeues_failed_as_due_and_refuses_sent(db: Database) -> None:
    """retry makes a failed row pending again at its due time with fresh attempts."""
    make_ready(db)
    tid = connection_to_sapa(db)
    outbox.materialise_all(db.conn)  # planned rows (issue 14) become rows to be poked at
    rows = rows_by_name(db, tid)
    notice, reminder = rows["sapa-notice"]["id"], rows["reminder"]["id"]
    db.conn.execute(
        "UPDATE outbox SET status = 'failed', attempts = 5, next_attempt_at = ? WHERE id = ?",
        ["2030-01-01T00:00:00.000000Z", notice],
    )
    db.conn.execute("UPDATE outbox SET status = 'sent' WHERE id = ?", [reminder])
    again = outbox.retry(db, notice)
    assert again["status"] == "pending" and again["attempts"] == 0
    assert again["next_attempt_at"] == again["due_at"]
    with pytest.raises(OnboardingError, match="is sent"):
        outbox.retry(db, reminder)
    db.conn.execute("UPDATE outbox SET status = 'failed' WHERE id IN (?, ?)", [notice, reminder])
    assert outbox.retry_failed(db) == 2


def test_outbox_claim_hands_each_row_to_one_runner(db: Database) -> None:
    """Claims are exclusive and in due order, and charge no attempt (only a handover does);
    a lease that ran out is taken back."""
    make_ready(db)
    connection_to_sapa(db)
    at = t("2021-09-30T12:00")
    now = t("2026-01-01T12:00")
    lease = timedelta(minutes=15)
    first = outbox.claim(db, at, now, "a", 2, lease)
    second = outbox.claim(db, at, now, "b", 100, lease)
    assert len(first) == 2 and first[0]["due_at"] <= first[1]["due_at"]
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert all(r["attempts"] == 0 and r["status"] == "sending" for r in first + second)
    assert outbox.claim(db, at, now, "c", 100, lease) == []
    assert outbox.reclaim_stale(db, now + timedelta(minutes=5), 5) == 0
    assert outbox.reclaim_stale(db, now + timedelta(minutes=16), 5) == len(first + second)
    assert outbox.next_due(db) == t("2021-08-13T08:00")


def test_outbox_recipients_resolve_roles_for_the_municipality(
    db: Database, tmp_path: Path
) -> None:
    """A role resolves to that municipality's contacts (coordinators for all); addresses stay."""
    make_ready(db)
    tid = connection_to_sapa(db)
    add_contacts(db, tmp_path, [
        {"role": "sapa-owner", "name": "Sofie", "email": "sofie@koege.dk", "municipality": "Køge"},
        {"role": "sapa-owner", "name": "Other", "email": "o@greve.dk", "municipality": "Greve"},
        {"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"},
    ])
    rows = rows_by_name(db, tid)
    people, missing = outbox.recipients(db, rows["reminder"])
    assert [p["email"] for p in people] == ["sofie@koege.dk"] and missing == []
    people, _ = outbox.recipients(db, rows["overdue-2"])
    assert [p["email"] for p in people] == ["kim@kombit.dk"]
    people, missing = outbox.recipients(db, rows["overdue-3"])
    assert people == [] and missing == ["programme-lead"]
    people, _ = outbox.recipients(db, rows["sapa-notice"])
    assert [p["email"] for p in people] == ["sapa@kombit.dk"]


def test_outbox_a_due_date_set_later_schedules_the_date_rules(
    db: Database, tmp_path: Path
) -> None:
    """A state whose due date is unknown at entry gets its date-based rows when it is set."""
    path = tmp_path / "probe.yaml"
    path.write_text(PROBE, encoding="utf-8")
    definitions.add_file(db, path)
    tid = int(engine.start(
        db, "probe-mail", engine.Subject(municipality="Aarhus", system="Momentum"),
        act("2021-06-01T10:00"),
    )["id"])
    assert set(rows_by_name(db, tid)) == {"hello", "later"}
    engine.set_fields(db, tid, {"deadline": "2021-06-30"}, act("2021-06-02T10:00"))
    rows = rows_by_name(db, tid)
    assert set(rows) == {"hello", "later", "remind", "due-day"}
    assert {r["entry_seq"] for r in rows.values()} == {1}
    assert rows["due-day"]["due_at"] == _stamp("2021-06-30T08:00")


def test_outbox_migration_to_a_renamed_state_carries_the_rows(
    db: Database, tmp_path: Path
) -> None:
    """workflow migrate mapping a track to another state carries the entry's rows there (the
    same rows, not a second set); a same-state migration recomputes the rows in place."""
    tid = _probe(db, tmp_path)
    v2 = PROBE.replace("version: 1", "version: 2").replace("name: open", "name: waiting")
    v2 = v2.replace("initial: open", "initial: waiting").replace("source: open", "source: waiting")
    v2 = v2.replace("dest: open", "dest: waiting")
    (tmp_path / "v2.yaml").write_text(v2, encoding="utf-8")
    definitions.add_file(db, tmp_path / "v2.yaml")
    engine.migrate(db, "probe-mail", 2, {"open": "waiting"}, act("2021-06-02T10:00"))
    rows = outbox.list_rows(db, track_id=tid)
    assert {r["notification"]: (r["state"], r["status"], r["entry_seq"]) for r in rows} == {
        name: ("waiting", "pending", 1) for name in ("hello", "later", "remind", "due-day")
    }
    v3 = v2.replace("version: 2", "version: 3").replace(
        "      - {name: due-day, kind: reminder, when: on_due, to: municipality-pl, "
        "template: reminder}\n", "")
    (tmp_path / "v3.yaml").write_text(v3, encoding="utf-8")
    definitions.add_file(db, tmp_path / "v3.yaml")
    engine.migrate(db, "probe-mail", 3, {}, act("2021-06-03T10:00"))
    after = {r["notification"]: r["status"] for r in outbox.list_rows(db, track_id=tid)
             if r["state"] == "waiting"}
    assert after == {"hello": "pending", "later": "pending", "remind": "pending",
                     "due-day": "cancelled"}


def test_outbox_klik_task_reminds_before_its_end_date(db: Database) -> None:
    """A KLIK task reminds the project lead 5 working days before the task's end date."""
    track = engine.start(
        db, "klik-task",
        engine.Subject(municipality="Aarhus", klik_task="Indmeld modtager(e) af GDPR"),
        act("2021-04-01T09:00"),
    )
    [row] = outbox.list_rows(db, track_id=int(track["id"]))
    assert row["recipients"] == ["municipality-pl"] and row["due_date"] == "2021-04-29"
    assert row["due_at"] == _stamp("2021-04-22T08:00")
