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
