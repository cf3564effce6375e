"""Rendering: Danish and English templates, overrides, escaping, sandbox, safe headers, .ics."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import icalendar
import jinja2
import pytest
from jinja2.exceptions import SecurityError
from sqlite_utils import Database

from notifications.config import Config, load_config
from notifications.render import Renderer, build_message, due_calendar, one_line
from notifications.runner import PrepareError, preview
from onboarding import outbox
from tests.notify_support import (
    add_contacts,
    connection_to_sapa,
    make_ready,
    rows_by_name,
    t,
)

pytestmark = pytest.mark.usefixtures("no_mail_env")


@pytest.fixture
def config(db_path: Path) -> Config:
    return load_config(db_path, env={})


@pytest.fixture
def sapa(db: Database) -> int:
    make_ready(db)
    return connection_to_sapa(db)


def _context(db: Database, row_id: int) -> dict[str, object]:
    return outbox.message_data(db, outbox.get_row(db, row_id), t("2021-08-18T08:00"))


def test_render_danish_by_default_english_when_configured(
    db: Database, config: Config, sapa: int
) -> None:
    """The same notice renders in Danish by default and in English with language = en."""
    row = rows_by_name(db, sapa)["sapa-notice"]
    da = Renderer(config).render("sapa-request", _context(db, row["id"]))
    en = Renderer(replace(config, language="en")).render("sapa-request", _context(db, row["id"]))
    assert da.subject == "Åbning af visning i SAPA: Køge – KMD Momentum"
    assert en.subject == "Open display in SAPA: Køge – KMD Momentum"
    assert "onsdag den 1. september 2021" in da.text and "18. august 2021" in da.text
    assert "Wednesday 1 September 2021" in en.text and "18 August 2021" in en.text
    assert "<strong>onsdag den 1. september 2021</strong>" in da.html


def test_render_escapes_names_in_html_but_not_in_text(
    db: Database, config: Config, sapa: int, tmp_path: Path
) -> None:
    """A contact's name is HTML-escaped in the HTML part and kept as written in plain text."""
    add_contacts(db, tmp_path, [{"role": "sapa-owner", "name": "Ib <b>&</b> Co",
                                 "email": "ib@koege.dk", "municipality": "Køge"}])
    row = rows_by_name(db, sapa)["reminder"]
    rendered = Renderer(config).render("reminder", _context(db, row["id"]))
    assert "Til Ib <b>&</b> Co" in rendered.text
    assert "Til Ib &lt;b&gt;&amp;&lt;/b&gt; Co" in rendered.html
    assert "<b>&</b>" not in rendered.html


def test_render_user_template_overrides_the_shipped_one(
    db: Database, config: Config, sapa: int, tmp_path: Path
) -> None:
    """A file of the same name in the configured folder wins; the others stay shipped."""
    folder = tmp_path / "my-templates" / "da"
    folder.mkdir(parents=True)
    (folder / "sapa-request.subject.txt").write_text(
        "Visning: {{ municipality.name }} / {{ system.name }}", encoding="utf-8"
    )
    renderer = Renderer(replace(config, templates_dir=tmp_path / "my-templates"))
    row = rows_by_name(db, sapa)["sapa-notice"]
    rendered = renderer.render("sapa-request", _context(db, row["id"]))
    assert rendered.subject == "Visning: Køge / Momentum"
    assert "Tilslutningsdato" in rendered.text  # body still the shipped one


def test_render_misspelt_variable_is_an_error_not_blank(
    db: Database, config: Config, sapa: int, tmp_path: Path
) -> None:
    """StrictUndefined: a template naming a missing variable fails; preview says so."""
    folder = tmp_path / "tpl" / "da"
    folder.mkdir(parents=True)
    (folder / "notice.subject.txt").write_text("{{ municipalty.name }}", encoding="utf-8")
    renderer = Renderer(replace(config, templates_dir=tmp_path / "tpl"))
    row = rows_by_name(db, sapa)["reminder"]
    with pytest.raises(jinja2.UndefinedError):
        renderer.render("notice", _context(db, row["id"]))
    (folder / "sapa-request.txt").write_text("{{ nope }}", encoding="utf-8")
    with pytest.raises(PrepareError, match="UndefinedError"):
        preview(db, rows_by_name(db, sapa)["sapa-notice"]["id"],
                replace(config, templates_dir=tmp_path / "tpl"))


def test_render_user_templates_are_sandboxed(config: Config, tmp_path: Path) -> None:
    """An edited template cannot reach Python internals."""
    folder = tmp_path / "tpl" / "da"
    folder.mkdir(parents=True)
    (folder / "notice.subject.txt").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8"
    )
    renderer = Renderer(replace(config, templates_dir=tmp_path / "tpl"))
    with pytest.raises(SecurityError):
        renderer.render("notice", {})


def test_render_no_header_injection_from_names_or_subjects(config: Config) -> None:
    """CR/LF in a name or subject never becomes a header: names and subjects are one line."""
    rendered = Renderer(config).env.from_string("x")  # the environment exists once
    assert rendered is not None
    from notifications.render import Rendered

    msg = build_message(
        Rendered(subject=one_line("Hej\r\nBcc: evil@example.com"), text="t", html="<p>t</p>"),
        mail_from="onboarding@kombit.test",
        to=[("Mallory\r\nBcc: evil@example.com", "m@kombit.test")],
        message_id="<a@kombit.test>",
        date_sent=t("2021-08-18T08:00"),
    )
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None
    assert str(parsed["Subject"]) == "Hej Bcc: evil@example.com"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["m@kombit.test"]
    with pytest.raises(ValueError):
        msg["X-Test"] = "a\r\nBcc: evil@example.com"


def test_render_ics_is_an_all_day_event_on_the_due_date(config: Config) -> None:
    """The .ics attachment holds one all-day event on the due date with a stable UID."""
    data = due_calendar(uid="t2.e3.sapa-notice.x@kombit.test", summary="Frist",
                        description="Tekst", due=date(2021, 8, 18),
                        stamp=t("2021-08-18T08:00"), lang="da")
    cal = icalendar.Calendar.from_ical(data)
    [event] = cal.walk("VEVENT")
    assert event.decoded("dtstart") == date(2021, 8, 18)
    assert event.decoded("dtend") == date(2021, 8, 19)
    assert str(event["uid"]) == "t2.e3.sapa-notice.x@kombit.test"
    assert str(cal["method"]) == "PUBLISH"


def test_render_preview_builds_the_message_without_sending(
    db: Database, config: Config, sapa: int
) -> None:
    """preview renders subject, text, HTML and the .ics name, and changes nothing."""
    row = rows_by_name(db, sapa)["sapa-notice"]
    shown = preview(db, row["id"], config)
    assert shown["to"] == ["sapa@kombit.dk"]
    assert shown["attachments"] == [f"frist-{sapa}-sapa-notice.ics"]
    assert shown["message_id"].startswith(f"<t{sapa}.e")
    assert outbox.get_row(db, row["id"])["status"] == "pending"


def _icalendar_reference(**kw: Any) -> bytes:
    """The same event built with the icalendar package (what due_calendar used to call)."""
    cal = icalendar.Calendar()
    cal.add("prodid", f"-//KOMBIT//onboarding//{kw['lang'].upper()}")
    cal.add("version", "2.0")
    cal.add("method", kw.get("method", "PUBLISH"))
    event = icalendar.Event()
    event.add("uid", kw["uid"])
    event.add("dtstamp", kw["stamp"])
    event.add("dtstart", kw["due"])
    event.add("dtend", kw["due"] + timedelta(days=1))
    event.add("summary", kw["summary"])
    event.add("description", kw["description"])
    event.add("transp", "TRANSPARENT")
    event.add("sequence", kw.get("sequence", 0))
    if kw.get("organizer"):
        event.add("organizer", f"mailto:{kw['organizer']}")
    if kw.get("method") == "CANCEL":
        event.add("status", "CANCELLED")
    cal.add_component(event)
    return bytes(cal.to_ical())


@pytest.mark.parametrize(
    "summary, description",
    [
        ("Frist", "Tekst"),
        ("Påmindelse: 1. Aftal tilslutningsdato med leverandøren – Herlev · KMD Momentum "
         "(frist 29. marts 2021)", "Til Ib\n\nDette er; en, påmindelse \\ om et trin.\r\nSlut"),
        ("x" * 74, "y" * 75 + "ø" * 40 + "\\" * 30 + ";," * 40 + "^" * 80),
        ("æøå" * 60, "a\rb\\Nc" + "€" * 50),
    ],
)
def test_render_ics_bytes_equal_the_icalendar_package(summary: str, description: str) -> None:
    """due_calendar writes the event itself, byte for byte what icalendar writes."""
    kw: dict[str, Any] = dict(uid="t2.e3.sapa-notice.0a1b@kombit.test", summary=summary,
                              description=description, due=date(2021, 8, 18),
                              stamp=t("2021-08-18T08:00"), lang="da")
    assert due_calendar(**kw) == _icalendar_reference(**kw)


def test_render_template_cache_picks_up_overrides(config: Config, tmp_path: Path) -> None:
    """Environments are shared between renderers, yet an override added, edited or removed
    later is what the next render uses."""
    folder = tmp_path / "tpl"
    first = Renderer(replace(config, templates_dir=folder))
    shipped = first.env.get_template("da/notice.subject.txt").render(_notice_context())
    assert Renderer(replace(config, templates_dir=folder)).env is first.env  # compiled once
    target = folder / "da" / "notice.subject.txt"
    target.parent.mkdir(parents=True)
    target.write_text("Ny: {{ subject_label }}", encoding="utf-8")
    again = Renderer(replace(config, templates_dir=folder))
    assert again.env.get_template("da/notice.subject.txt").render(_notice_context()) == "Ny: X"
    target.write_text("Rettet: {{ subject_label }}", encoding="utf-8")
    os.utime(target, (1, 1))  # a different modification time, however fast the test runs
    assert again.env.get_template("da/notice.subject.txt").render(_notice_context()) == (
        "Rettet: X"
    )
    target.unlink()
    assert again.env.get_template("da/notice.subject.txt").render(_notice_context()) == shipped
    other = Renderer(replace(config, templates_dir=tmp_path / "other"))
    assert other.env is not first.env


def _notice_context() -> dict[str, Any]:
    return {
        "subject_label": "X",
        "track": {"step": "Trin", "definition_title": "T", "id": 1},
        "notification": {"kind": "notice", "level": 0},
        "due": date(2021, 8, 18),
        "lang": "da",
    }
