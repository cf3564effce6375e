"""The second example programme of docs/workflows.md (issue 12): a vendor's onboarding to a
national agency's test environment, added from its YAML and template files only
(docs/examples/agency-test.yaml and agency-test.templates/), with its own roles, subject,
templates, guards, loop, ``source: "*"`` withdrawal and report buckets. Everything through the
real CLI on a real database file, so the example in the docs cannot rot."""

from __future__ import annotations

import json
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support import ok, ok_json, run

pytestmark = pytest.mark.usefixtures("no_mail_env")

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLE = DOCS / "examples" / "agency-test.yaml"
SIGNATURE = "Styrelsen for Test\\nTeam Leverandørtest"


def _state(runner: CliRunner, db_path: Path, tid: str) -> str:
    # permissions are on: read as the coordinator (a named reader is scoped, issue 13)
    return str(ok_json(runner, db_path, "track", "show", tid, actor="kombit")["state"])


def _advance(
    runner: CliRunner,
    db_path: Path,
    actor: str,
    tid: str,
    trigger: str,
    role: str,
    at: str,
    *sets: str,
) -> str:
    """Fire TRIGGER on track TID as ACTOR in ROLE at AT; return the state it reached."""
    args = [a for s in sets for a in ("--set", s)]
    ok(
        runner,
        db_path,
        "track",
        "advance",
        tid,
        trigger,
        "--role",
        role,
        "--at",
        at,
        *args,
        actor=actor,
    )
    return _state(runner, db_path, tid)


def _refused(
    runner: CliRunner,
    db_path: Path,
    actor: str,
    tid: str,
    trigger: str,
    role: str,
    at: str,
    *sets: str,
) -> str:
    """Fire TRIGGER expecting a refusal (exit 2); return its message."""
    args = [a for s in sets for a in ("--set", s)]
    result = run(
        runner,
        db_path,
        "track",
        "advance",
        tid,
        trigger,
        "--role",
        role,
        "--at",
        at,
        *args,
        actor=actor,
    )
    assert result.exit_code == 2, (trigger, result.output)
    return result.stderr


def _mails(outbox: Path) -> list[EmailMessage]:
    out = []
    for eml in sorted(outbox.glob("*.eml")):
        msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def _buckets(runner: CliRunner, db_path: Path, day: str) -> Any:
    """``report buckets agency-test --as-of DAY --format json``."""
    result = ok(
        runner,
        db_path,
        *("report", "buckets", "agency-test", "--as-of", day, "--format", "json"),
        actor="kombit",
    )
    return json.loads(result.stdout)


def test_example_programme_runs_from_its_files_through_the_cli(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """The agency-test example is added from its files, its own roles act on a vendor's track
    through every state (with the reject/resubmit loop, a date guard refusing then allowing, a
    stale report reference refused), a second track is withdrawn from an open state by
    ``source: "*"``, its own template reaches the declared role's contact with the configured
    signature, and its report buckets are as expected on two dates."""
    ok(
        runner,
        db_path,
        "mail",
        "configure",
        "--organisation",
        "Styrelsen for Test",
        "--signature",
        SIGNATURE,
    )
    added = ok(runner, db_path, "workflow", "add", str(EXAMPLE))
    assert "6 template file(s)" in added.stdout, added.stdout
    shown = ok_json(runner, db_path, "workflow", "show", "agency-test")
    assert [r["key"] for r in shown["roles"]] == ["agency", "test-lead"]

    # Actors in the programme's own roles: the first is the coordinator who grants the rest.
    ok(runner, db_path, "actor", "add", "kombit", actor="kombit")
    ok(runner, db_path, "actor", "grant", "kombit", "coordinator", actor="kombit")
    ok(runner, db_path, "actor", "add", "sara", actor="kombit")
    ok(runner, db_path, "actor", "grant", "sara", "agency", actor="kombit")
    for name, vendor in (("tom", "KMD"), ("nina", "Netcompany")):
        ok(runner, db_path, "actor", "add", name, actor="kombit")
        ok(runner, db_path, "actor", "grant", name, "test-lead", "--vendor", vendor, actor="kombit")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "role,name,email,municipality,vendor\n"
        "test-lead,Tom Test,tom@kmd.example,,KMD\n"
        "test-lead,Nina Net,nina@netcompany.example,,Netcompany\n",
        encoding="utf-8",
    )
    ok(runner, db_path, "registry", "import", "contacts", str(contacts))

    kmd = ok(
        runner,
        db_path,
        "track",
        "start",
        "--quiet",
        "agency-test",
        "--vendor",
        "KMD",
        "--role",
        "agency",
        "--at",
        "2021-03-01T09:00",
        actor="sara",
    ).stdout.strip()
    net = ok(
        runner,
        db_path,
        "track",
        "start",
        "--quiet",
        "agency-test",
        "--role",
        "agency",
        "--vendor",
        "Netcompany",
        "--at",
        "2021-03-02T09:00",
        actor="sara",
    ).stdout.strip()
    assert _state(runner, db_path, kmd) == "applied"

    # Only the agency grants access, and it must say when the environment opens.
    assert "Styrelsen" in _refused(
        runner,
        db_path,
        "tom",
        kmd,
        "grant_access",
        "agency",
        "2021-03-03T10:00",
        "environment_opens=2021-03-08",
    )
    assert "--set environment_opens=" in _refused(
        runner, db_path, "sara", kmd, "grant_access", "agency", "2021-03-03T10:00"
    )
    assert (
        _advance(
            runner,
            db_path,
            "sara",
            kmd,
            "grant_access",
            "agency",
            "2021-03-03T10:00",
            "environment_opens=2021-03-08",
        )
        == "access_granted"
    )
    assert (
        _advance(
            runner,
            db_path,
            "sara",
            net,
            "grant_access",
            "agency",
            "2021-03-04T10:00",
            "environment_opens=2021-03-08",
        )
        == "access_granted"
    )

    # The date guard: not on the opening day (Monday 8 March), from the working day after.
    assert "9 Mar 2021 has not come yet" in _refused(
        runner, db_path, "tom", kmd, "start_testing", "test-lead", "2021-03-08T09:00"
    )
    assert (
        _advance(runner, db_path, "tom", kmd, "start_testing", "test-lead", "2021-03-09T09:00")
        == "testing"
    )
    assert (
        _advance(
            runner,
            db_path,
            "tom",
            kmd,
            "submit_report",
            "test-lead",
            "2021-03-22T09:00",
            "report_ref=TR-1",
        )
        == "report_review"
    )

    # The loop: sent back, and the resubmission needs a new reference (round 1's is stale).
    assert (
        _advance(
            runner,
            db_path,
            "sara",
            kmd,
            "decide",
            "agency",
            "2021-03-24T09:00",
            "verdict=afvist",
            "reason=Mangler test af fejlscenarier",
        )
        == "rework"
    )
    assert "an earlier value does not count" in _refused(
        runner, db_path, "tom", kmd, "resubmit", "test-lead", "2021-03-29T09:00"
    )
    assert (
        _advance(
            runner,
            db_path,
            "tom",
            kmd,
            "resubmit",
            "test-lead",
            "2021-03-29T10:00",
            "report_ref=TR-2",
        )
        == "report_review"
    )
    assert (
        _advance(
            runner, db_path, "sara", kmd, "decide", "agency", "2021-04-06T09:00", "verdict=godkendt"
        )
        == "approved"
    )

    # "*": the other vendor withdraws from an open step; a vendor cannot touch another's track.
    assert "Netcompany" in _refused(
        runner, db_path, "tom", net, "withdraw", "test-lead", "2021-03-15T09:00", "reason=x"
    )
    assert (
        _advance(
            runner,
            db_path,
            "nina",
            net,
            "withdraw",
            "test-lead",
            "2021-03-15T09:00",
            "reason=Testen udskydes til næste år",
        )
        == "withdrawn"
    )

    # The notices of access, in the definition's own template, to each vendor's test lead.
    # Every state of the programme was reached, the loop's two states twice.
    path = [h["to"] for h in ok_json(runner, db_path, "track", "history", kmd, actor="kombit")]
    assert path == [
        "applied",
        "access_granted",
        "testing",
        "report_review",
        "rework",
        "report_review",
        "approved",
    ]
    withdrawn = [h["to"] for h in ok_json(runner, db_path, "track", "history", net, actor="kombit")]
    assert {s["name"] for s in shown["states"]} == set(path) | set(withdrawn)

    ok(runner, db_path, "reminders", "send-due", "--at", "2021-04-06T12:00")
    mails = {str(m["To"]): m for m in _mails(db_path.parent / "onboarding-outbox")}
    assert set(mails) == {"Tom Test <tom@kmd.example>", "Nina Net <nina@netcompany.example>"}
    msg = mails["Tom Test <tom@kmd.example>"]
    assert str(msg["Subject"]) == "Testadgang hos Styrelsen for Test: KMD"
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    body = text.get_content()
    assert "KMD har fået adgang til Styrelsens testmiljø." in body
    assert "mandag den 8. marts 2021" in body
    assert "Venlig hilsen\nStyrelsen for Test\nTeam Leverandørtest" in body
    assert "Styrelsen for Test<br>Team Leverandørtest" in html.get_content()
    assert "KOMBIT" not in body

    # The report counts the programme's own buckets as the tracks stood on each date.
    early = _buckets(runner, db_path, "2021-03-10")
    assert [c["key"] for c in early["columns"]] == [
        "Ansøgt",
        "I test",
        "Til vurdering",
        "Godkendt",
        "Trukket tilbage",
    ]
    assert early["total"] == {
        "counts": {
            "Ansøgt": 0,
            "I test": 2,
            "Til vurdering": 0,
            "Godkendt": 0,
            "Trukket tilbage": 0,
        },
        "total": 2,
    }
    late = _buckets(runner, db_path, "2021-04-30")
    assert late["total"] == {
        "counts": {
            "Ansøgt": 0,
            "I test": 0,
            "Til vurdering": 0,
            "Godkendt": 1,
            "Trukket tilbage": 1,
        },
        "total": 2,
    }


def test_example_programme_docs_show_the_files_the_test_runs() -> None:
    """docs/workflows.md's second example shows exactly the YAML and Danish template files the
    test above adds and runs, so the page cannot drift from what works."""
    page = (DOCS / "workflows.md").read_text(encoding="utf-8")
    section = page[page.index("## A second example") :]
    blocks = re.findall(r"```[a-z]*\n(.*?)```", section, re.S)
    templates = EXAMPLE.with_suffix(".templates") / "da"
    for path in (
        EXAMPLE,
        templates / "test-access.txt",
        templates / "test-access.subject.txt",
        templates / "test-access.html",
    ):
        assert path.read_text(encoding="utf-8") in blocks, path
