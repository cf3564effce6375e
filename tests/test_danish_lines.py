"""The last English sentences a person met, in the reader's language: a date far from the step
(CLI and page), a filter's description, why a notification is held, a newer database, a
genitive after a name ending in s, and the lines of commands' normal output. Real CLI on a real
database; Danish by ONBOARDING_LANG=da, and the English as it always was with en."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import date, datetime
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

import cli
from onboarding import clock, i18n
from tests.web_support import DEMO_NOW, csrf_of, fresh_db, login


def _cli(db: Path, lang: str, *args: str) -> Result:
    """``onboarding ARGS --db DB`` in ``lang``, as a process new to the language."""
    i18n.choose(None)
    result = CliRunner().invoke(
        cli.cli, [*args, "--db", str(db)], env={"ONBOARDING_LANG": lang}
    )
    assert result.exit_code == 0, result.output
    return result


def _track(db: Path) -> int:
    out = _cli(
        db, "en", "track", "start", "--quiet", "connection", "--municipality", "Aarhus",
        "--system", "KMD Momentum", "--at", "2021-06-01",
    ).stdout
    return int(out)


# --- a date far from the step -------------------------------------------------------------------


def test_far_date_warning_on_the_cli_is_in_the_cli_language(db_path: Path) -> None:
    """A date field far from the step is kept with one warning line: Danish by the field's
    label and Danish dates ("advarsel: feltet “Aftalt tilslutningsdato” 30.06.2016 ligger mere
    end et år før ..."), and in English the line it has always been."""
    tid = _track(db_path)
    at = ("--at", "2021-06-30T10:00")
    danish = _cli(db_path, "da", "track", "set", str(tid), "connection_date=30-06-2016", *at)
    assert danish.stderr.strip() == (
        "advarsel: feltet “Aftalt tilslutningsdato” 30.06.2016 ligger mere end et år før "
        "skridtet (30.06.2021); godtaget, men tjek, at det ikke er en tastefejl"
    )
    later = _cli(db_path, "da", "track", "set", str(tid), "connection_date=01.07.2027", *at)
    assert "01.07.2027 ligger mere end fem år efter skridtet (30.06.2021)" in later.stderr
    english = _cli(db_path, "en", "track", "set", str(tid), "connection_date=30-06-2016", *at)
    assert english.stderr.strip() == (
        "warning: field connection_date 2016-06-30 is more than a year before the step "
        "(2021-06-30); accepted, but check it is not a typo"
    )


@pytest.fixture
def web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Path]]:
    """A logged-in coordinator on a private copy of the demo database, at the demo's end."""
    from onboarding.web import create_app

    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    db = fresh_db(tmp_path)
    with TestClient(create_app(db)) as client:
        login(client)
        yield client, db


def _agree(client: TestClient, db: Path, day: str) -> str:
    """Record the agreed date ``day`` on an open track waiting for it; the page after."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        (track,) = conn.execute(
            "SELECT id FROM tracks WHERE definition = 'connection' AND state = 'date_agreement'"
            " AND final = 0 ORDER BY id LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    page = client.get(f"/tracks/{track}").text
    version = re.search(r'name="version" value="(\d+)"', page)
    assert version
    response = client.post(
        f"/tracks/{track}/advance",
        data={
            "csrf": csrf_of(page),
            "trigger": "agree_date",
            "role": "coordinator",
            "version": version.group(1),
            "field_connection_date": day,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return unescape(client.get(f"/tracks/{track}").text)


def test_far_date_warning_on_the_page_in_the_readers_language(
    web: tuple[TestClient, Path],
) -> None:
    """The page keeps a far date too and says so beside "done", in the reader's language
    (Danish by default, English after choosing it); a near date says nothing."""
    client, db = web
    danish = _agree(client, db, "01.09.2031")
    assert (
        '<p class="flash warn" role="status">feltet “Aftalt tilslutningsdato” 01.09.2031 ligger '
        "mere end fem år efter skridtet (30.06.2021); godtaget, men tjek, at det ikke er en "
        "tastefejl</p>"
    ) in danish
    token = csrf_of(client.get("/grid").text)
    client.post("/language", data={"csrf": token, "lang": "en", "next": "/grid"})
    english = _agree(client, db, "2016-09-01")
    assert (
        "field connection_date 2016-09-01 is more than a year before the step (2021-06-30); "
        "accepted, but check it is not a typo"
    ) in english
    near = _agree(client, db, "2021-09-01")
    assert "flash warn" not in near


def test_far_date_warning_collected_in_its_own_context_only() -> None:
    """Inside ``clock.far_dates`` a far date is collected (a Message) and no Python warning is
    raised (the page's threads cannot share the process-wide warning filters); outside it,
    the FarDateWarning is raised as before."""
    ref = datetime(2021, 6, 30, 10, tzinfo=clock.UTC)
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        with clock.far_dates() as far:
            clock.warn_if_far(date(2016, 6, 30), ref, "field x")
        assert raised == []
        assert [m.say("da") for m in far] == [
            "field x 30.06.2016 ligger mere end et år før skridtet (30.06.2021); godtaget, "
            "men tjek, at det ikke er en tastefejl"
        ]
        clock.warn_if_far(date(2016, 6, 30), ref, "field x")
    assert [w.category for w in raised] == [clock.FarDateWarning]


# --- what an empty selection selected -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "danish", "english"),
    [
        (
            ["track", "list", "--definition", "connection", "--municipality", "Odense",
             "--state", "display_opening", "--open"],
            "intet åbent spor i “Tilslutning af fagsystem til indeks” for kommunen Odense står "
            "i “5. KOMBIT bestiller åbning af visning i SAPA og BoB”",
            "no open track of connection for municipality Odense is in display_opening",
        ),
        (
            ["track", "list", "--phase", "agreement", "--bucket", "Aftalt", "--vendor", "KMD",
             "--overdue"],
            "intet forsinket spor for leverandøren KMD står i fasen “Aftale”, status 'Aftalt'",
            "no overdue track for vendor KMD is in phase agreement, bucket 'Aftalt'",
        ),
        (
            ["track", "advance", "--where", "region=Midtjylland system=Momentum "
             "state=display_opening|live", "open_display"],
            "intet åbent spor for systemet KMD Momentum i Region Midtjylland står i “5. KOMBIT "
            "bestiller åbning af visning i SAPA og BoB” eller “8. Kommunen viser data i SAPA og "
            "på borger.dk”",
            "no open track for system KMD Momentum in Region Midtjylland is in display_opening "
            "or live",
        ),
    ],
    ids=["track list", "phase and bucket", "advance --where"],
)
def test_filter_description_in_the_cli_language(
    db_path: Path, args: list[str], danish: str, english: str
) -> None:
    """A filter that selects nothing is described in Danish by the workflow's, states' and
    phases' labels (no key), with "eller" between alternatives; in English as before."""
    assert _cli(db_path, "da", *args).stdout.strip() == danish
    assert _cli(db_path, "en", *args).stdout.strip() == english


# --- why a notification was not sent; a newer database; send-due's --at -------------------------


@pytest.mark.usefixtures("no_mail_env")
def test_outbox_reason_said_in_the_cli_language(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row superseded by a higher rung says why in Danish in 'reminders send-due' and
    'reminders list' ("afløst af #N ..."), in English as always; --json keeps the English."""
    import json

    from onboarding.db import open_existing
    from tests.notify_support import add_contacts, make_ready
    from tests.test_supersede import CONTACTS, LATE_ENTRY, _enter_step4_late

    db = open_existing(db_path)
    try:
        make_ready(db)
        add_contacts(db, tmp_path, CONTACTS)
        tid = _enter_step4_late(db)
    finally:
        db.close()
    monkeypatch.setenv("ONBOARDING_NOW", LATE_ENTRY)
    sent = _cli(db_path, "da", "reminders", "send-due").stdout
    assert re.search(r"#\d+ afløst: #\d+ \(\S+\) går til de samme modtagere i stedet", sent)
    listing = ["reminders", "list", "--superseded", "--track", str(tid)]
    danish = _cli(db_path, "da", *listing).stdout
    assert re.search(r"afløst af #\d+ \(\S+\): et højere eskaleringsniveau til de samme", danish)
    assert "superseded by" not in danish
    english = _cli(db_path, "en", *listing).stdout
    assert re.search(r"superseded by #\d+ \(\S+\): a higher rung for the same recipients", english)
    rows = json.loads(_cli(db_path, "da", *listing, "--json").stdout)
    assert rows and all(r["error"].startswith("superseded by #") for r in rows)


def test_outbox_reason_stored_text_is_read_again_as_its_message() -> None:
    """Each reason the tool writes is found again in its English text and said in Danish with
    its parameters; any other text (an SMTP reply) is shown as written."""
    from onboarding.outbox_reasons import said

    assert said("the step was done first", "da") == "trinnet blev udført først"
    assert said("cancelled by 'agree_date' before it was sent", "da") == (
        "annulleret af 'agree_date', før den blev sendt"
    )
    lease = (
        "the runner host:12:34:ab stopped while sending (lease ran out); the message may have "
        "been delivered"
    )
    assert said(lease, "da").startswith("afsenderen host:12:34:ab stoppede under afsendelsen")
    assert said(lease, "en") == lease
    assert said("550 mailbox unavailable", "da") == "550 mailbox unavailable"
    assert said(None, "da") == ""


def test_newer_database_refusal_in_the_cli_language(tmp_path: Path) -> None:
    """A database from a newer version is refused in Danish by default (naming both schema
    versions), in English as it always read."""
    import shutil

    db = tmp_path / "newer.db"
    shutil.copyfile(Path(__file__).parent / "hostile" / "restore" / "newer-version.db", db)
    for lang, said in (
        ("da", "lavet af en nyere version af dette værktøj (skema 999_from_the_future); denne "
               "version (onboarding "),
        ("en", "made by a newer version of this tool (schema 999_from_the_future); this "
               "version (onboarding "),
    ):
        i18n.choose(None)
        result = CliRunner().invoke(
            cli.cli, ["track", "list", "--db", str(db)], env={"ONBOARDING_LANG": lang}
        )
        assert result.exit_code == 2
        assert said in result.stderr, result.stderr


def test_send_due_future_at_says_why_in_the_cli_language(db_path: Path) -> None:
    """'reminders send-due --at' in the future is refused saying why in Danish too."""
    i18n.choose(None)
    args = ["reminders", "send-due", "--at", "2021-06-03T12:00", "--db", str(db_path)]
    env = {"ONBOARDING_NOW": "2021-06-01T12:00"}
    danish = CliRunner().invoke(cli.cli, args, env={**env, "ONBOARDING_LANG": "da"})
    assert danish.exit_code == 2
    assert "send-due sender det, der forfalder nu eller tidligere" in danish.stderr
    i18n.choose(None)
    english = CliRunner().invoke(cli.cli, args, env={**env, "ONBOARDING_LANG": "en"})
    assert "send-due sends what is due now or earlier (at most 5" in english.stderr


# --- the Danish genitive ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "da", "en"),
    [
        ("Aarhus", "Aarhus'", "Aarhus'"),
        ("Vejle", "Vejles", "Vejle's"),
        ("Halsnæs", "Halsnæs'", "Halsnæs'"),
        ("Fax", "Fax'", "Fax's"),
        ("Schultz", "Schultz'", "Schultz's"),
        ("KOMBIT", "KOMBIT's", "KOMBIT's"),
        ("KMD", "KMD's", "KMD's"),
    ],
)
def test_genitive_of_a_name_per_language(name: str, da: str, en: str) -> None:
    """A name's genitive as the language writes it (Danish: an apostrophe alone after s, x or
    z), the same in the mails' ``genitive`` filter (which uses it)."""
    from jinja2 import Environment

    from notifications.render.templates import _genitive

    assert i18n.genitive(name, "da") == da
    assert i18n.genitive(name, "en") == en
    env = Environment()
    env.filters["genitive"] = _genitive
    for lang, said in (("da", da), ("en", en)):
        assert env.from_string("{{ name|genitive }}").render(name=name, lang=lang) == said


def test_genitive_in_a_refusal_after_a_name_ending_in_s(db_path: Path) -> None:
    """Vejle's project lead refused on Aarhus's track reads "spor #N er Aarhus'" in Danish
    (never "Aarhuss"), and "track #N is Aarhus's" in English as before."""
    def run(lang: str, actor: str, *args: str) -> Result:
        i18n.choose(None)
        env = {"ONBOARDING_LANG": lang, "ONBOARDING_ACTOR": actor}
        return CliRunner().invoke(cli.cli, [*args, "--db", str(db_path)], env=env)

    tid = _track(db_path)
    for args, actor in (
        (["actor", "add", "kombit"], "tester"),
        (["actor", "grant", "kombit", "coordinator"], "kombit"),
        (["actor", "add", "vejle-pl"], "kombit"),
        (["actor", "grant", "vejle-pl", "municipality-pl", "--municipality", "Vejle"], "kombit"),
    ):
        assert run("en", actor, *args).exit_code == 0
    step = ["track", "advance", str(tid), "agree_date", "--set", "connection_date=2027-03-01",
            "--role", "municipality-pl"]
    danish = run("da", "vejle-pl", *step)
    assert danish.exit_code == 2
    assert danish.stderr.rstrip().endswith(f"spor #{tid} er Aarhus'"), danish.stderr
    english = run("en", "vejle-pl", *step)
    assert english.stderr.rstrip().endswith(f"track #{tid} is Aarhus's"), english.stderr


# --- commands' normal output --------------------------------------------------------------------


def test_workflow_show_in_the_cli_language(db_path: Path) -> None:
    """'workflow show' reads Danish (how to start a track, headings, column names, phases by
    label, yes/no), and English as it always did."""
    danish = _cli(db_path, "da", "workflow", "show", "connection").stdout
    for text in (
        "connection v1: Tilslutning af fagsystem til indeks (emne: municipality-system)",
        "Start et spor med: --municipality, --system, --index (valgfri), --bob (valgfri)  "
        "(ét åbent spor pr. municipality, system, index_set)",
        "\nTrin:\n",
        "\nSkridt:\n",
        "betegnelse",
        "afsluttende",
        "betingelser",
        "Aftale",
        "ikke includes_bob",
    ):
        assert text in danish, text
    for english in ("Start a track", "States:", "Transitions:", "label", " no\n", "optional"):
        assert english not in danish, english
    english = _cli(db_path, "en", "workflow", "show", "connection").stdout
    assert english.startswith(
        "connection v1: Tilslutning af fagsystem til indeks (subject: municipality-system)\n"
        "Start a track with: --municipality, --system, --index (optional), --bob (optional)  "
        "(one open track per municipality, system, index_set)\n\nStates:\n"
    )
    assert "not includes_bob" in english and "agreement  " in english


def test_table_columns_and_audit_line_in_the_cli_language(db_path: Path) -> None:
    """Tables name their columns in Danish ('registry list vendors': navn, systemer) and
    'audit verify' says its result in Danish; English as before."""
    vendors = _cli(db_path, "da", "registry", "list", "vendors").stdout.splitlines()[0]
    assert vendors.split() == ["id", "navn", "systemer"]
    english = _cli(db_path, "en", "registry", "list", "vendors").stdout.splitlines()[0]
    assert english.split() == ["id", "name", "systems"]
    workflows = _cli(db_path, "da", "workflow", "list").stdout.splitlines()[0]
    assert workflows.split() == ["navn", "version", "emne", "titel"]
    assert _cli(db_path, "da", "audit", "verify").stdout.startswith(
        "revisionssporet er intakt: "
    )
    assert _cli(db_path, "en", "audit", "verify").stdout.startswith("audit trail intact: ")


def test_command_refusal_literal_in_the_cli_language(db_path: Path) -> None:
    """A command's own refusal ('--days must be 0 or more') reads Danish, exit 2, English as
    before; every such literal refusal in the commands has its Danish."""
    import ast

    from babel.messages.pofile import read_po

    args = ["reminders", "forecast", "--days", "-1", "--db", str(db_path)]
    for lang, said in (("da", "Fejl: --days skal være 0 eller mere"),
                       ("en", "Error: --days must be 0 or more")):
        i18n.choose(None)
        result = CliRunner().invoke(cli.cli, args, env={"ONBOARDING_LANG": lang})
        assert result.exit_code == 2 and result.stderr.strip() == said, result.stderr
    with (i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        danish = {m.id for m in read_po(fh) if isinstance(m.id, str) and m.string}
    literal = [
        node.args[0].value
        for path in (Path(cli.__file__).parent / "onboarding" / "commands").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "UserError"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]
    assert len(literal) >= 8
    assert [text for text in literal if text not in danish] == []
