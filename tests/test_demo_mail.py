"""The demo's mail as its recipients read it: wording that matches the date, people by name.

One demo run for the module; every check parses the ``.eml`` files ``onboarding demo`` wrote and
compares them with the outbox rows that went into them.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from onboarding import clock
from onboarding import demo as demo_module
from onboarding.roles import ROLES


@dataclass
class Mail:
    path: Path
    message: EmailMessage
    text: str
    html: str
    outbox_ids: list[int]


@dataclass
class DemoMail:
    db: Path
    mails: dict[str, Mail]  # by Message-ID

    def rows(self, query: str) -> list[sqlite3.Row]:
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(query).fetchall()
        finally:
            conn.close()


def _parse(path: Path) -> Mail:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None, path
    ids = [int(i) for i in str(msg["X-Onboarding-Outbox"]).split(",")]
    return Mail(path, msg, text_part.get_content(), html_part.get_content(), ids)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoMail:
    """One demo run (with its .eml files) for the module."""
    result = demo_module.run(tmp_path_factory.mktemp("demo-mail") / "out", echo=lambda _: None)
    mails = {}
    for path in sorted(result.outbox.glob("*.eml")):
        mail = _parse(path)
        mails[str(mail.message["Message-ID"])] = mail
    assert len(mails) > 100
    return DemoMail(result.database, mails)


def _sent_late(demo: DemoMail) -> list[tuple[sqlite3.Row, date]]:
    """Sent reminders and escalations whose local sending day is after the step's due date."""
    late = []
    for row in demo.rows(
        "SELECT * FROM outbox WHERE status = 'sent' AND kind IN ('reminder', 'escalation')"
        " AND due_date IS NOT NULL"
    ):
        sent_on = clock.local_date(clock.unstamp(row["sent_at"]))
        if sent_on > date.fromisoformat(row["due_date"]):
            late.append((row, sent_on))
    return late


def test_demo_mail_sent_after_the_deadline_never_says_soon(demo: DemoMail) -> None:
    """No reminder or escalation sent after its deadline says "snart"; each says it has passed."""
    late = _sent_late(demo)
    assert len(late) > 50  # the demo sends on Mondays: many reminders go out late
    wrong = []
    for row, _sent_on in late:
        mail = demo.mails[row["message_id"]]
        assert row["id"] in mail.outbox_ids
        for part in (mail.text, mail.html):
            if re.search(r"\bsnart\b", part, re.IGNORECASE):
                wrong.append((row["id"], row["kind"], mail.path.name))
                break
        else:
            assert "overskredet" in mail.text, mail.path.name
    assert not wrong, f"{len(wrong)} late mails say 'snart', e.g. {wrong[:3]}"


def test_demo_mail_late_reminder_subject_is_not_a_gentle_reminder(demo: DemoMail) -> None:
    """A reminder sent on its own after the deadline has a subject saying the deadline passed."""
    subjects = [
        str(demo.mails[row["message_id"]].message["Subject"])
        for row, _ in _sent_late(demo)
        if row["kind"] == "reminder" and len(demo.mails[row["message_id"]].outbox_ids) == 1
    ]
    assert subjects
    for subject in subjects:
        assert subject.startswith("Overskredet frist"), subject


def test_demo_mail_no_notification_lacks_a_contact(demo: DemoMail) -> None:
    """Every role a shipped definition mails has a contact in the demo: no 'no contact' errors."""
    failed = demo.rows(
        "SELECT id, status, last_error FROM outbox WHERE last_error LIKE '%no contact%'"
        " OR last_error LIKE '%nobody to send to%'"
    )
    assert not failed, f"{len(failed)} rows, e.g. {dict(failed[0])}"
    assert demo.rows("SELECT count(*) FROM outbox WHERE status = 'failed'")[0][0] == 0


def _greeting(text: str) -> str:
    return next(line for line in text.splitlines() if line.strip())


def test_demo_mail_greets_people_by_name_never_by_role_key(demo: DemoMail) -> None:
    """Each mail greets its recipients by the names in To:, contacts' real names; no role key
    appears anywhere in a mail's text or HTML."""
    contacts = {r["name"] for r in demo.rows("SELECT name FROM contacts")}
    keys = re.compile(
        "|".join(rf"(?<![\w@.-]){re.escape(k)}(?![\w@-])" for k in ROLES), re.IGNORECASE
    )
    for mail in demo.mails.values():
        names = [a.display_name for a in mail.message["To"].addresses if a.display_name]
        greeting = _greeting(mail.text)
        assert greeting.startswith("Til "), (mail.path.name, greeting)
        if names:
            assert greeting == "Til " + ", ".join(names), (mail.path.name, greeting)
            assert set(names) <= contacts
        for part in (mail.text, mail.html):
            found = keys.search(part)
            assert found is None, (mail.path.name, found and found.group(0))


def test_demo_mail_contacts_have_person_names(demo: DemoMail) -> None:
    """The demo's contacts are named like people (first and last name), not after role keys."""
    for row in demo.rows("SELECT role, name FROM contacts"):
        parts = row["name"].split()
        assert len(parts) >= 2 and all(p[0].isupper() for p in parts), row["name"]
        assert row["role"] not in row["name"]


def test_demo_mail_plurals_agree_with_their_count(demo: DemoMail) -> None:
    """No mail says "1 arbejdsdage" (and the singular is used where it belongs)."""
    singular_seen = False
    for mail in demo.mails.values():
        for part in (mail.text, mail.html):
            assert not re.search(r"(?<![\d.])1 arbejdsdage\b", part), mail.path.name
            singular_seen = singular_seen or bool(
                re.search(r"(?<![\d.])1 arbejdsdag\b", part)
            )
    assert singular_seen
