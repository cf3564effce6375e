"""Mail wording: what each template says before, on and after the deadline, in Danish and
English; plurals from the catalogue; the digest's groups; greetings; "no contact" errors."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlite_utils import Database

from notifications.config import Config, load_config
from notifications.render import Rendered, Renderer
from notifications.runner import PrepareError, _prepare, compose
from onboarding import engine, i18n, outbox, registry, roles
from tests.notify_support import (
    act,
    add_contacts,
    connection_to_sapa,
    make_ready,
    rows_by_name,
    t,
)

pytestmark = pytest.mark.usefixtures("no_mail_env")

#: Step 4 (sapa_request) of a connection on 1 September 2021 is due Wednesday 18 August 2021.
DUE = date(2021, 8, 18)
#: Sending moments around it: (label, local time, expected Danish and English phrase).
MOMENTS = {
    "before-2": ("2021-08-16T09:00", "(om 2 arbejdsdage)", "(in 2 working days)"),
    "before-1": ("2021-08-17T09:00", "(om 1 arbejdsdag)", "(in 1 working day)"),
    "on": ("2021-08-18T09:00", "(i dag)", "(today)"),
    "after-1": ("2021-08-19T09:00", "(overskredet med 1 arbejdsdag)", "(overdue by 1 working day)"),
    "after-2": (
        "2021-08-20T09:00",
        "(overskredet med 2 arbejdsdage)",
        "(overdue by 2 working days)",
    ),
}
#: Template -> the row of the Køge track that uses it (notice: no shipped step names it, so the
#: sapa notice's row is rendered with it).
TEMPLATE_ROWS = {
    "reminder": "reminder",
    "escalation": "overdue-1",
    "notice": "sapa-notice",
    "sapa-request": "sapa-notice",
}
SOON = re.compile(r"\b(snart|soon)\b", re.IGNORECASE)


@pytest.fixture
def config(db_path: Path) -> Config:
    return load_config(db_path, env={})


@pytest.fixture
def koege(db: Database, tmp_path: Path) -> int:
    """A connection at step 4 in Køge, with a named SAPA system owner and coordinator."""
    make_ready(db)
    add_contacts(
        db,
        tmp_path,
        [
            {"role": "sapa-owner", "name": "Sofie Holm", "email": "sofie@koege.dk",
             "municipality": "Køge"},
            {"role": "coordinator", "name": "Kim Lund", "email": "kim@kombit.dk"},
        ],
    )
    return connection_to_sapa(db)


def _render(
    db: Database, config: Config, track: int, template: str, at: str, lang: str
) -> Rendered:
    row = rows_by_name(db, track)[TEMPLATE_ROWS[template]]
    data = outbox.message_data(db, row, t(at), lang)
    return Renderer(replace(config, language=lang)).render(template, data)


@pytest.mark.parametrize("lang", ["da", "en"])
@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("template", list(TEMPLATE_ROWS))
def test_mail_wording_says_where_the_deadline_stands(
    db: Database, config: Config, koege: int, template: str, moment: str, lang: str
) -> None:
    """Every template says how far the deadline is (1 or 2 working days, singular and plural
    right), that it is today, or that it has passed and by how much; never "soon"."""
    at, danish, english = MOMENTS[moment]
    rendered = _render(db, config, koege, template, at, lang)
    phrase = danish if lang == "da" else english
    for part in (rendered.text, rendered.html):
        assert phrase in part, (template, moment, lang)
        assert not SOON.search(part)
        assert "1 arbejdsdage" not in part and "1 working days" not in part
    assert not SOON.search(rendered.subject)


SUBJECTS = {
    ("reminder", "da"): ("Påmindelse: ", "Frist i dag: ", "Overskredet frist: "),
    ("reminder", "en"): ("Reminder: ", "Due today: ", "Overdue: "),
    ("escalation", "da"): ("Eskalering (trin 1): ", "Eskalering (trin 1): ",
                           "Overskredet frist (trin 1): "),
    ("escalation", "en"): ("Escalation (level 1): ", "Escalation (level 1): ",
                           "Overdue (level 1): "),
}


@pytest.mark.parametrize("template, lang", list(SUBJECTS))
def test_mail_wording_subject_follows_the_moment(
    db: Database, config: Config, koege: int, template: str, lang: str
) -> None:
    """A reminder's subject is a reminder before the deadline, says "today" on the day and
    "overdue" after it; an escalation sent early is not called overdue."""
    before, on, after = SUBJECTS[(template, lang)]
    subject = {m: _render(db, config, koege, template, MOMENTS[m][0], lang).subject
               for m in MOMENTS}
    assert subject["before-2"].startswith(before) and subject["before-1"].startswith(before)
    assert subject["on"].startswith(on)
    assert subject["after-1"].startswith(after) and subject["after-2"].startswith(after)
    if template == "reminder":
        assert ("today" if lang == "en" else "i dag") in subject["on"].lower()


@pytest.mark.parametrize("lang, intro", [
    ("da", "Fristen for dette trin er overskredet, og trinnet er endnu ikke registreret"),
    ("en", "The deadline for this step has passed, and the step has not been recorded"),
])
def test_mail_wording_late_reminder_says_the_deadline_passed_and_when(
    db: Database, config: Config, koege: int, lang: str, intro: str
) -> None:
    """A reminder sent after the deadline says it has passed, on which date, and by how much."""
    rendered = _render(db, config, koege, "reminder", "2021-08-20T09:00", lang)
    day = "onsdag den 18. august 2021" if lang == "da" else "Wednesday 18 August 2021"
    assert intro in rendered.text
    assert f"{day} {MOMENTS['after-2'][1 if lang == 'da' else 2]}" in rendered.text


def test_mail_wording_overdue_on_a_weekend_without_a_count(
    db: Database, config: Config, tmp_path: Path
) -> None:
    """Sent on the Saturday after a Friday deadline: overdue, by no working day yet."""
    make_ready(db)
    add_contacts(db, tmp_path, [{"role": "sapa-owner", "name": "Sofie Holm",
                                 "email": "sofie@koege.dk", "municipality": "Køge"}])
    track = connection_to_sapa(db, connection_date="2021-09-03")  # step 4 due Fri 20 August
    row = rows_by_name(db, track)["reminder"]
    data = outbox.message_data(db, row, t("2021-08-21T10:00"))
    assert data["due"] == date(2021, 8, 20) and data["overdue"]
    assert data["working_days_overdue"] == 0
    rendered = Renderer(config).render("reminder", data)
    assert "fredag den 20. august 2021 (overskredet)" in rendered.text
    assert rendered.subject.startswith("Overskredet frist")


def test_mail_wording_facts_for_templates(db: Database, koege: int) -> None:
    """message_data gives the moment as facts (documented variables), the old ones kept."""
    row = rows_by_name(db, koege)["reminder"]
    facts = {
        m: {k: outbox.message_data(db, row, t(MOMENTS[m][0]))[k]
            for k in ("working_days_left", "overdue", "due_today", "working_days_overdue")}
        for m in MOMENTS
    }
    assert facts["before-2"] == dict(working_days_left=2, overdue=False, due_today=False,
                                     working_days_overdue=0)
    assert facts["on"] == dict(working_days_left=0, overdue=False, due_today=True,
                               working_days_overdue=0)
    assert facts["after-2"] == dict(working_days_left=-2, overdue=True, due_today=False,
                                    working_days_overdue=2)


# --- the digest --------------------------------------------------------------------------------


def _digest(db: Database, config: Config, tmp_path: Path, lang: str, overdue: int,
            coming: int) -> Any:
    """A digest to the coordinator of ``overdue`` late and ``coming`` early escalations (the
    coming ones first in the list, to show the digest orders them)."""
    make_ready(db)
    add_contacts(db, tmp_path, [{"role": "coordinator", "name": "Kim Lund",
                                 "email": "kim@kombit.dk"}])
    config = replace(config, language=lang, digest=True)
    renderer = Renderer(config)
    at = t("2021-08-25T08:00")  # 5 working days after 18 August
    items = []
    towns = ["Køge", "Greve", "Solrød", "Stevns"]
    # Connection 1 September: step 4 due 18 August, so overdue-2 (to the coordinator) is late.
    # Connection 10 September: due 27 August, two working days after the sending day.
    for i in range(coming):
        tid = connection_to_sapa(db, towns[i], connection_date="2021-09-10")
        items.append(_prepare(db, rows_by_name(db, tid)["overdue-2"], at, renderer))
    for i in range(overdue):
        tid = connection_to_sapa(db, towns[coming + i])
        items.append(_prepare(db, rows_by_name(db, tid)["overdue-2"], at, renderer))
    return compose(items, renderer, config, "tok", at)


@pytest.mark.parametrize("lang, n, subject, headings", [
    ("da", 1, "1 overskredet frist og 1 kommende frist",
     ("OVERSKREDNE FRISTER (1)", "KOMMENDE FRISTER (1)")),
    ("da", 2, "2 overskredne frister og 2 kommende frister",
     ("OVERSKREDNE FRISTER (2)", "KOMMENDE FRISTER (2)")),
    ("en", 1, "1 overdue deadline and 1 deadline coming up", ("OVERDUE (1)", "COMING UP (1)")),
    ("en", 2, "2 overdue deadlines and 2 deadlines coming up", ("OVERDUE (2)", "COMING UP (2)")),
])
def test_mail_wording_digest_groups_overdue_before_coming(
    db: Database, config: Config, tmp_path: Path, lang: str, n: int, subject: str,
    headings: tuple[str, str],
) -> None:
    """A digest lists overdue items first under their own heading, then those coming due,
    each with its wording; the subject counts both with the right plural."""
    msg = _digest(db, config, tmp_path, lang, overdue=n, coming=n)
    assert str(msg["Subject"]).startswith(subject)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    late, coming = text.index(headings[0]), text.index(headings[1])
    assert late < coming
    overdue_phrase = "(overskredet med 5 arbejdsdage)" if lang == "da" else "(overdue by 5 working"
    coming_phrase = "(om 2 arbejdsdage)" if lang == "da" else "(in 2 working days)"
    assert text.count(overdue_phrase) == n and text.count(coming_phrase) == n
    assert late < text.index(overdue_phrase) < coming < text.index(coming_phrase)
    assert [h.upper() for h in re.findall(r"<h2[^>]*>(.*?)</h2>", html)] == list(headings)
    assert not SOON.search(text) and not SOON.search(html)
    assert text.splitlines()[0] == ("Til Kim Lund" if lang == "da" else "To Kim Lund")


def test_mail_wording_digest_of_only_overdue_items_has_no_coming_heading(
    db: Database, config: Config, tmp_path: Path
) -> None:
    """With nothing coming due, the digest has only the overdue group."""
    msg = _digest(db, config, tmp_path, "da", overdue=2, coming=0)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert str(msg["Subject"]).startswith("2 overskredne frister –")
    assert "OVERSKREDNE FRISTER (2)" in text and "KOMMENDE" not in text


# --- people, not keys --------------------------------------------------------------------------


@pytest.mark.parametrize("lang, greeting, responsible", [
    ("da", "Til SAPA-systemejeren i Køge", "SAPA-systemejer"),
    ("en", "To the SAPA system owner in Køge", "SAPA system owner"),
])
def test_mail_wording_greets_by_role_label_when_a_contact_has_no_name(
    db: Database, config: Config, koege: int, lang: str, greeting: str, responsible: str
) -> None:
    """Without a name, a greeting names the role in the message's language with its
    municipality; the responsible role is a label in that language; never a role key."""
    row = rows_by_name(db, koege)["reminder"]
    data = outbox.message_data(db, row, t("2021-08-16T09:00"), lang)
    assert data["track"]["role_label"] == responsible
    data["recipients"] = [{**p, "name": ""} for p in data["recipients"]]
    rendered = Renderer(replace(config, language=lang)).render("reminder", data)
    for part in (rendered.text, rendered.html):
        assert greeting in part
        assert "sapa-owner" not in part


def test_mail_wording_greets_contacts_by_name(db: Database, config: Config, koege: int) -> None:
    """A contact's name is the greeting."""
    rendered = _render(db, config, koege, "reminder", "2021-08-16T09:00", "da")
    assert rendered.text.startswith("Til Sofie Holm\n")


def test_mail_wording_role_labels_come_from_the_catalogue() -> None:
    """Each role's Danish label from the catalogue is the one ROLES shows; the English one is
    English; the addressee forms name the scope."""
    for key, danish in roles.ROLES.items():
        assert roles.label(key, "da") == danish
        assert roles.label(key, "en") == roles.LABELS_EN[key]  # "vendor" is English too
        assert roles.addressee(key, "da") != key and roles.addressee(key, "en") != key
    assert roles.addressee("vendor", "da", vendor="KMD") == "leverandøren, KMD"
    assert roles.addressee("programme-lead", "da", municipality="Frederikssund") == (
        "KOMBIT-programlederen i Frederikssund"
    )


def test_mail_wording_no_contact_names_role_municipality_and_command(
    db: Database, config: Config, tmp_path: Path
) -> None:
    """A role with nobody registered fails naming the role (key and label), the municipality
    and the commands that fix it; the example row it gives, filled in, imports and fixes it."""
    make_ready(db)
    track = connection_to_sapa(db, "Frederikssund")
    row = rows_by_name(db, track)["overdue-3"]  # the programme lead
    with pytest.raises(PrepareError) as caught:
        _prepare(db, row, t("2021-09-02T08:00"), Renderer(config))
    error = str(caught.value)
    assert ("no contact with role programme-lead (kommunens KOMBIT-programleder) for "
            "Frederikssund Municipality") in error
    assert "'onboarding registry import contacts FILE'" in error
    assert "programme-lead,NAME,EMAIL,Frederikssund," in error
    assert f"'onboarding reminders retry {row['id']}'" in error
    example = re.search(r"e\.g\. '([^']+)'", error)
    assert example is not None
    filled = example.group(1).replace("NAME", "Mette Hansen").replace("EMAIL", "mh@fr.dk")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("role,name,email,municipality,vendor\n" + filled + "\n", "utf-8")
    registry.import_contacts(db, contacts)
    item = _prepare(db, row, t("2021-09-02T08:00"), Renderer(config))
    assert item.to == [("Mette Hansen", "mh@fr.dk")]


def test_mail_wording_no_vendor_contact_names_the_vendor(db: Database, config: Config) -> None:
    """A vendor step with no contact at the vendor names the vendor."""
    make_ready(db)
    track = connection_to_sapa(db)
    for hour, trigger in enumerate(("request_display", "open_display", "complete_setup"), 9):
        engine.advance(db, track, trigger, act(f"2021-06-04T{hour:02d}:00"))
    row = rows_by_name(db, track)["reminder"]
    assert row["state"] == "data_load"
    with pytest.raises(PrepareError) as caught:
        _prepare(db, row, t("2021-09-10T08:00"), Renderer(config))
    assert "no contact with role vendor (leverandør) for vendor KMD" in str(caught.value)
    assert "vendor,NAME,EMAIL,,KMD" in str(caught.value)


# --- the catalogue -----------------------------------------------------------------------------


def test_mail_wording_catalogue_translates_every_template_message() -> None:
    """Every gettext/ngettext text in the mail templates has a Danish translation in the one
    catalogue the web page uses too."""
    root = Path(__file__).parent.parent / "notifications" / "templates"
    method_map = [("**.txt", "jinja2"), ("**.html", "jinja2")]
    options = {p: {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}
               for p, _ in method_map}
    keywords = {"gettext": None, "ngettext": (1, 2)}
    messages = {
        m if isinstance(m, str) else m[0]
        for _f, _l, m, _c, _x in extract_from_dir(
            str(root), method_map, options_map=options, keywords=keywords
        )
    }
    assert "%(num)d working day" in messages
    with (i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="da")
    for message in messages:
        entry = catalog.get(message)
        assert entry is not None and all(entry.string), message
    assert i18n.ngettext("da", "%(num)d working day", "%(num)d working days", 1) % {
        "num": 1} == "1 arbejdsdag"
    assert i18n.ngettext("da", "%(num)d working day", "%(num)d working days", 2) % {
        "num": 2} == "2 arbejdsdage"
