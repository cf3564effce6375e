"""The reminders and scheduler commands end to end: the issue's 'Done when' through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import cli
from onboarding import clock
from onboarding.db import open_existing
from tests.mailserver import MailServer
from tests.notify_support import add_contacts, connection_to_sapa
from tests.notify_support import make_ready as make_ready_lib
from tests.support import make_ready

pytestmark = pytest.mark.usefixtures("no_mail_env")
ROOT = Path(__file__).resolve().parent.parent


def run(
    runner: CliRunner, db_path: Path, *args: str, env: dict[str, str] | None = None
) -> Result:
    full = {"ONBOARDING_ACTOR": "coordinator-anna", **(env or {})}
    return runner.invoke(cli.cli, [*args, "--db", str(db_path)], env=full)


def ok(runner: CliRunner, db_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    result = run(runner, db_path, *args, env=env)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def ok_json(runner: CliRunner, db_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(ok(runner, db_path, *args, "--json", env=env).stdout)


def _to_sapa_request(runner: CliRunner, db_path: Path, contacts: bool = True) -> int:
    """Through the CLI: a ready system, a Køge connection agreed and approved (step 4)."""
    make_ready(runner, db_path, "Momentum")
    if contacts:
        csv = db_path.parent / "contacts.csv"
        csv.write_text(
            "role,name,email,municipality,vendor\n"
            "sapa-owner,Sofie Sapa,sofie@koege.dk,Køge,\n",
            encoding="utf-8",
        )
        ok(runner, db_path, "registry", "import", "contacts", str(csv))
    tid = int(ok(runner, db_path, "track", "start", "connection", "--municipality", "Køge",
                 "--system", "KMD Momentum", "--at", "2021-06-01T09:00", "--quiet").stdout)
    ok(runner, db_path, "track", "advance", str(tid), "agree_date",
       "--set", "connection_date=2021-09-01", "--at", "2021-06-02T09:00")
    ok(runner, db_path, "track", "advance", str(tid), "approve_agreements",
       "--role", "agreement-admin", "--at", "2021-06-03T09:00")
    return tid


def _notice(runner: CliRunner, db_path: Path) -> dict[str, Any]:
    rows = ok_json(runner, db_path, "reminders", "list")
    [row] = [r for r in rows if r["notification"] == "sapa-notice"]
    return dict(row)


def test_cli_reminders_sapa_notice_is_delivered_exactly_once(
    runner: CliRunner, db_path: Path, smtp_server: MailServer
) -> None:
    """Done when 1: advance a connection to step 4, send-due --at its due time: one message to
    sapa@kombit.dk naming municipality and system, the date in its body; again: nothing."""
    tid = _to_sapa_request(runner, db_path)
    notice = _notice(runner, db_path)
    assert notice["status"] == "pending" and notice["due"] == "2021-08-18 08:00"
    out = ok(runner, db_path, "reminders", "send-due", "--at", notice["due"],
             env=smtp_server.env()).stdout
    assert "sent 2," in out and "sapa@kombit.dk" in out
    [mail] = smtp_server.to("sapa@kombit.dk")
    assert mail.rcpt_tos == ["sapa@kombit.dk"]
    assert "Køge" in mail.subject and "KMD Momentum" in mail.subject
    assert "18. august 2021" in mail.text()
    assert f"spor #{tid}" in mail.text()
    again = ok(runner, db_path, "reminders", "send-due", "--at", notice["due"],
               env=smtp_server.env()).stdout
    assert "sent 0," in again
    later = ok(runner, db_path, "reminders", "send-due", "--at", "2021-08-18T12:00",
               env=smtp_server.env()).stdout
    assert "sent 0," in later
    assert len(smtp_server.to("sapa@kombit.dk")) == 1
    sent = ok_json(runner, db_path, "reminders", "list", "--sent")
    assert {r["notification"] for r in sent} == {"sapa-notice", "reminder"}
    assert [r["message_id"] for r in sent if r["notification"] == "sapa-notice"] == [
        mail.message_id
    ]


def test_cli_reminders_refused_while_steps_recorded_then_retry_delivers_once(
    runner: CliRunner, db_path: Path, smtp_server: MailServer
) -> None:
    """Done when 2: SMTP refuses while the coordinator records every later step to live; the
    notice fails after its attempts and is listed; retry --failed and send-due deliver it once."""
    tid = _to_sapa_request(runner, db_path)
    smtp_server.mode = "451"
    start = clock.parse_time("2021-08-18T08:00")

    def send(offset_minutes: int, code: int = 3) -> str:
        # The backoff runs from the wall clock: it is pinned to the run's time (--at).
        at = (start + timedelta(minutes=offset_minutes)).astimezone(clock.LOCAL).isoformat()
        result = run(runner, db_path, "reminders", "send-due", "--at", at,
                     env={**smtp_server.env(), "ONBOARDING_NOW": at})
        assert result.exit_code == code, (at, result.output)
        if code == 3:
            assert result.stderr.startswith("send-due: not everything due was sent")
        return str(result.stdout)

    assert "retrying 2" in send(0)
    for hour, trigger in enumerate(
        ("request_display", "open_display", "complete_setup", "load_complete"), start=9
    ):
        ok(runner, db_path, "track", "advance", str(tid), trigger, "--at",
           f"2021-08-18T{hour:02d}:00")
    assert ok_json(runner, db_path, "track", "show", str(tid))["state"] == "live"
    # The reminder for the step now done was cancelled; the notice keeps being retried.
    for minutes in (300, 311, 332, 373):  # after each backoff (10, 20, 40 minutes)
        send(minutes)
    failed = ok_json(runner, db_path, "reminders", "list", "--failed")
    assert [r["notification"] for r in failed] == ["sapa-notice"]
    assert failed[0]["attempts"] == 5 and "451" in failed[0]["error"]
    table = ok(runner, db_path, "reminders", "list", "--failed").stdout
    assert "sapa-notice" in table and "451 4.3.0 mailbox busy" in table
    assert smtp_server.messages == [] and smtp_server.handler.refused == 6
    smtp_server.mode = "accept"
    assert "requeued 1 failed" in ok(runner, db_path, "reminders", "retry", "--failed").stdout
    assert "sent 1," in send(400, 0)
    assert "sent 0," in send(400, 0)
    assert "sent 0," in send(60 * 24 * 30, 0)  # a month on: nothing else was ever due
    assert [m.rcpt_tos for m in smtp_server.messages] == [["sapa@kombit.dk"]]
    assert "Køge" in smtp_server.messages[0].subject


def test_cli_reminders_eml_default_with_no_configuration(
    runner: CliRunner, db_path: Path
) -> None:
    """Done when 4: with no config file and no environment, send-due writes .eml files next
    to the database, and says where."""
    _to_sapa_request(runner, db_path, contacts=False)
    result = run(runner, db_path, "reminders", "send-due", "--at", "2021-08-18T08:00")
    # The reminder had nobody to go to (below): exit 3, one line on stderr.
    assert result.exit_code == 3
    assert result.stderr == "send-due: not everything due was sent: 1 failed\n"
    out = result.stdout
    folder = db_path.parent / "onboarding-outbox"
    assert f"messages written to {folder}" in out
    [eml] = list(folder.glob("*.eml"))
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert str(msg["To"]) == "sapa@kombit.dk"
    assert str(msg["Subject"]) == "Åbning af visning i SAPA: Køge – KMD Momentum"
    assert msg.get_body(preferencelist=("html",)) is not None
    assert [p.get_content_type() for p in msg.iter_attachments()] == ["text/calendar"]
    # The SAPA owner's reminder had nobody to go to: failed, and listed with the reason.
    [failed] = ok_json(runner, db_path, "reminders", "list", "--failed")
    assert "no contact with role sapa-owner (SAPA-systemejer) for Køge Municipality" in (
        failed["error"]
    )


def test_cli_reminders_forecast_preview_and_list(runner: CliRunner, db_path: Path) -> None:
    """forecast says what goes to whom in the coming days; preview renders without sending;
    list filters by status."""
    _to_sapa_request(runner, db_path)
    rows = ok_json(runner, db_path, "reminders", "forecast", "--days", "6",
                   "--at", "2021-08-12T12:00")
    assert [(r["notification"], r["to"]) for r in rows] == [
        ("reminder", ["sofie@koege.dk"]), ("sapa-notice", ["sapa@kombit.dk"])
    ]
    assert rows[1]["subject"] == "Åbning af visning i SAPA: Køge – KMD Momentum"
    table = ok(runner, db_path, "reminders", "forecast", "--days", "30",
               "--at", "2021-08-12T12:00").stdout
    assert "no contact for coordinator" in table or "(nobody)" in table
    notice = _notice(runner, db_path)
    shown = ok(runner, db_path, "reminders", "preview", str(notice["id"])).stdout
    assert "To: sapa@kombit.dk" in shown and "Subject: Åbning af visning i SAPA" in shown
    assert "1. september 2021" in shown
    html = ok(runner, db_path, "reminders", "preview", str(notice["id"]), "--html").stdout
    assert "<strong>onsdag den 1. september 2021</strong>" in html
    assert _notice(runner, db_path)["status"] == "pending"  # preview sent nothing
    pending = ok_json(runner, db_path, "reminders", "list", "--pending")
    assert {r["status"] for r in pending} == {"pending"}
    assert ok_json(runner, db_path, "reminders", "list", "--sent") == []
    assert len(ok_json(runner, db_path, "reminders", "list", "--cancelled")) == 8


def test_cli_reminders_retry_needs_one_id_or_failed(runner: CliRunner, db_path: Path) -> None:
    """retry takes an ID or --failed; an unknown or sent notification is a user error."""
    _to_sapa_request(runner, db_path)
    assert run(runner, db_path, "reminders", "retry").exit_code == 2
    assert run(runner, db_path, "reminders", "retry", "1", "--failed").exit_code == 2
    missing = run(runner, db_path, "reminders", "retry", "999")
    assert missing.exit_code == 2 and "unknown notification '999'" in missing.stderr
    notice = _notice(runner, db_path)
    ok(runner, db_path, "reminders", "send-due", "--at", "2021-08-18T08:00")
    sent = run(runner, db_path, "reminders", "retry", str(notice["id"]))
    assert sent.exit_code == 2 and "is sent" in sent.stderr


def test_cli_reminders_two_processes_at_once_send_each_once(
    db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """Two 'reminders send-due' processes started together on one database (a cron run next
    to another runner) deliver every due notification exactly once."""
    db = open_existing(db_path)
    make_ready_lib(db)
    towns = ["Køge", "Greve", "Solrød", "Roskilde", "Holbæk", "Ringsted"]
    add_contacts(db, tmp_path, [
        {"role": "sapa-owner", "name": f"Ejer {m}", "email": f"sapa{i}@kommune.dk",
         "municipality": m} for i, m in enumerate(towns)
    ])
    for town in towns:
        connection_to_sapa(db, town)
    db.close()
    (db_path.parent / "onboarding.toml").write_text("[delivery]\nbatch_size = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(smtp_server.env())
    cmd = [sys.executable, "-m", "cli", "reminders", "send-due", "--at", "2021-08-18T08:00",
           "--db", str(db_path), "--json"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    sent = [json.loads(o)["sent"] for o in outputs]
    ids = [m.message_id for m in smtp_server.messages]
    assert len(ids) == len(set(ids)) == sum(sent) == 2 * len(towns)


def _commands(group: click.Group) -> list[click.Command]:
    out: list[click.Command] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        out.append(command)
        if isinstance(command, click.Group):
            out.extend(_commands(command))
    return out


def test_cli_reminders_smtp_settings_never_come_from_the_command_line() -> None:
    """No reminders or scheduler option takes a host, user or password: those live in the
    config file and the environment only."""
    ctx = click.Context(cli.cli)
    groups = [cli.cli.get_command(ctx, "reminders"), cli.cli.get_command(ctx, "scheduler")]
    names = [
        opt
        for group in groups
        if isinstance(group, click.Group)
        for command in _commands(group)
        for param in command.params
        for opt in getattr(param, "opts", [])
    ]
    assert names and not [n for n in names if any(
        word in n for word in ("smtp", "host", "user", "password", "port")
    )]


def test_cli_reminders_list_names_roles_by_label(runner: CliRunner, db_path: Path) -> None:
    """The table shows whom a row goes to by the role's label ("SAPA-systemejer" in Danish),
    never the role key; --json keeps the keys for programs."""
    _to_sapa_request(runner, db_path)
    table = ok(
        runner, db_path, "reminders", "list", "--pending",
        env={"COLUMNS": "200", "ONBOARDING_LANG": "da"},
    ).stdout
    assert "SAPA-systemejer" in table
    for line in table.splitlines()[2:]:
        assert "sapa-owner" not in line and "coordinator" not in line, line
    rows = ok_json(runner, db_path, "reminders", "list", "--pending")
    assert any(r["to"] == ["sapa-owner"] for r in rows)
