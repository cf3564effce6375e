"""Roles in data (issue 12): a definition declares its own roles (key, Danish and English label,
scope kind); actors are granted them, the engine checks them as it checks the shipped ones, and
notifications reach the registry's contacts in them. Everything through the real CLI on a real
database file."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from tests.support import ok, ok_json, run

pytestmark = pytest.mark.usefixtures("no_mail_env")

AT = "2026-03-02T09:00"

#: A programme that is not KOMBIT's: a national agency approves a vendor's test report. The
#: agency is no shipped role; the definition declares it.
DEFINITION = """\
name: test-approval
version: 1
title: Godkendelse af testrapport
subject: system
initial: submitted

roles:
  - key: agency
    label: {da: Styrelsen, en: The agency}
    scope: national
  - key: test-lead
    label: {da: leverandørens testansvarlige, en: the vendor's test lead}
    scope: vendor

states:
  - name: submitted
    label: Testrapport indsendt
    role: agency
    notifications:
      - name: review
        kind: notice
        when: on_entry
        to: [agency]
        template: notice
  - name: approved
    label: Godkendt
    final: true

transitions:
  - trigger: approve
    label: Godkend testrapporten
    source: submitted
    dest: approved
    roles: [agency]
"""


def _write(tmp_path: Path, text: str, name: str = "test-approval.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _sent(outbox: Path, before: set[Path]) -> list[EmailMessage]:
    out = []
    for eml in sorted(set(outbox.glob("*.eml")) - before):
        msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def test_declared_roles_grant_check_and_mail_through_the_cli(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A definition's own role is granted to an actor, lets that actor fire its transition,
    refuses one without it (exit 2, naming the role by its label), and its contacts get the
    state's notification."""
    ok(runner, db_path, "workflow", "add", str(_write(tmp_path, DEFINITION)))
    shown = ok_json(runner, db_path, "workflow", "show", "test-approval")
    assert [r["key"] for r in shown["roles"]] == ["agency", "test-lead"]

    ok(runner, db_path, "actor", "add", "kombit", actor="kombit")
    ok(runner, db_path, "actor", "grant", "kombit", "coordinator", actor="kombit")
    ok(runner, db_path, "actor", "add", "styrelsen", actor="kombit")
    granted = ok(runner, db_path, "actor", "grant", "styrelsen", "agency", actor="kombit")
    assert "agency" in granted.stdout
    ok(runner, db_path, "actor", "add", "kmd", actor="kombit")
    ok(runner, db_path, "actor", "grant", "kmd", "test-lead", "--vendor", "KMD", actor="kombit")
    # The scope kind decides the grant's scope: a vendor's role is held for one vendor.
    unscoped = run(runner, db_path, "actor", "grant", "kmd", "test-lead", actor="kombit")
    assert unscoped.exit_code == 2, unscoped.output
    assert "--vendor" in unscoped.stderr and "testansvarlige" in unscoped.stderr
    listed = ok_json(runner, db_path, "actor", "list")
    assert {g["role"] for a in listed if a["name"] == "styrelsen" for g in a["grants"]} == {
        "agency"
    }

    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "role,name,email,municipality,vendor\n"
        "agency,Sara Styrelse,sara@styrelsen.example,,\n"
        "test-lead,Tom Test,tom@kmd.example,,KMD\n",
        encoding="utf-8",
    )
    ok(runner, db_path, "registry", "import", "contacts", str(contacts))

    tid = ok(
        runner, db_path, "track", "start", "--quiet", "test-approval", "--system", "Momentum",
        "--index", "sd", "--at", AT, actor="kombit",
    ).stdout.strip()

    outbox = db_path.parent / "onboarding-outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    ok(runner, db_path, "reminders", "send-due", "--at", AT)
    [msg] = _sent(outbox, before)
    assert "sara@styrelsen.example" in str(msg["To"])

    for who in ("kombit", "kmd"):
        refused = run(
            runner, db_path, "track", "advance", tid, "approve", "--role", "agency",
            "--at", "2026-03-03T09:00", actor=who,
        )
        assert refused.exit_code == 2, refused.output
        assert "Styrelsen" in refused.stderr, refused.stderr
    assert ok_json(runner, db_path, "track", "show", tid, actor="kombit")["state"] == "submitted"
    ok(
        runner, db_path, "track", "advance", tid, "approve", "--role", "agency",
        "--at", "2026-03-03T09:00", actor="styrelsen",
    )
    assert ok_json(runner, db_path, "track", "show", tid, actor="kombit")["state"] == "approved"


def test_declared_roles_unknown_before_the_definition_is_added(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A role no shipped file or added definition declares is refused by grant and by the
    contacts import (exit 2), naming the roles that exist."""
    ok(runner, db_path, "actor", "add", "kombit", actor="kombit")
    refused = run(runner, db_path, "actor", "grant", "kombit", "agency", actor="kombit")
    assert refused.exit_code == 2 and "unknown role 'agency'" in refused.stderr
    assert "coordinator" in refused.stderr
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("role,name,email\nagency,Sara,sara@styrelsen.example\n", "utf-8")
    bad = run(runner, db_path, "registry", "import", "contacts", str(contacts))
    assert bad.exit_code == 2 and "unknown role 'agency'" in bad.stderr, bad.output


def test_declared_roles_one_scope_per_key_in_a_database(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A second definition declaring an added definition's role with another scope kind is
    refused at ``workflow add`` (exit 2, at its path, naming where the role was declared)."""
    ok(runner, db_path, "workflow", "add", str(_write(tmp_path, DEFINITION)))
    other = DEFINITION.replace("name: test-approval", "name: other-approval").replace(
        "    label: {da: Styrelsen, en: The agency}\n    scope: national",
        "    label: {da: Styrelsen, en: The agency}\n    scope: municipality",
    )
    refused = run(runner, db_path, "workflow", "add", str(_write(tmp_path, other, "o.yaml")))
    assert refused.exit_code == 2, refused.output
    assert "roles[0] (agency).scope" in refused.stderr
    assert "definition test-approval v1" in refused.stderr


@pytest.mark.parametrize(
    ("roles", "path", "words"),
    [
        (
            "  - key: agency\n    label: {da: Styrelsen, en: The agency}\n    scope: region\n",
            "roles[0] (agency).scope",
            "national, municipality, vendor, subject",
        ),
        (
            "  - key: agency\n    label: {da: Styrelsen, en: The agency}\n    scope: national\n"
            "  - key: agency\n    label: {da: Styrelsen, en: The agency}\n    scope: national\n",
            "roles[1] (agency).key",
            "declared twice",
        ),
        (
            "  - key: agency\n    label: {da: Styrelsen}\n    scope: national\n",
            "roles[0] (agency).label",
            "en",
        ),
        (
            "  - key: vendor\n    label: {da: Leverandør, en: Vendor}\n    scope: national\n",
            "roles[0] (vendor).scope",
            "vendor",
        ),
    ],
    ids=["unknown-scope", "duplicate-key", "missing-label", "shipped-other-scope"],
)
def test_declared_roles_invalid_fail_validate_with_the_path(
    runner: CliRunner, tmp_path: Path, roles: str, path: str, words: str
) -> None:
    """A declared role with an unknown scope kind, a key declared twice, a missing label or a
    shipped key with another scope fails ``workflow validate`` (exit 2) at its path."""
    start, end = DEFINITION.index("roles:\n"), DEFINITION.index("\nstates:")
    text = DEFINITION[:start] + "roles:\n" + roles + DEFINITION[end:]
    result = runner.invoke(cli.cli, ["workflow", "validate", str(_write(tmp_path, text))])
    assert result.exit_code == 2, result.output
    line = next((x for x in result.output.splitlines() if path in x), None)
    assert line is not None, result.output
    assert words in line, line


def test_declared_roles_definition_added_after_one_with_own_templates(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A definition is added (its roles checked against the installed ones) in a process that
    has not read an installed definition with its own templates: that one's stored version
    parses with its template names, not as unknown templates."""
    from onboarding import definitions
    from tests.test_definition_templates import write_definition

    ok(runner, db_path, "workflow", "add", str(write_definition(tmp_path / "cert")))
    definitions._by_digest.clear()  # a new process: nothing parsed yet
    ok(runner, db_path, "workflow", "add", str(_write(tmp_path, DEFINITION)))
