"""The web page over HTTP (Starlette's TestClient) on a real SQLite file: the demo's database."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from babel.messages.catalog import Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from starlette.testclient import TestClient

from onboarding.web import create_app, i18n
from onboarding.web.security import csv_cell
from tests.web_support import COORDINATOR, DEMO_NOW, csrf_of, fresh_db, login

# Sessions are rows now (issue 13): "nothing written" compares every table but the
# page's own bookkeeping (sessions, failed logins).
from tests.web_support import data_snapshot as snapshot


@pytest.fixture
def web_db(tmp_path: Path) -> Path:
    """A private copy of the demo database (with the test actors) for one test."""
    return fresh_db(tmp_path)


@pytest.fixture
def client(web_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A logged-in coordinator, at the moment the demo's quarter ends."""
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    with TestClient(create_app(web_db)) as c:
        login(c)
        yield c


def _one(db: Path, sql: str, params: tuple[object, ...] = ()) -> tuple[object, ...]:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(sql, params).fetchone()
    finally:
        conn.close()
    assert row is not None, sql
    return tuple(row)


def _open_track(db: Path, state: str) -> int:
    return int(
        _one(
            db,
            "SELECT id FROM tracks WHERE definition = 'connection' AND state = ? AND final = 0"
            " ORDER BY id LIMIT 1",
            (state,),
        )[0]
    )


def _history_count(db: Path) -> int:
    return int(_one(db, "SELECT count(*) FROM history")[0])


# --- grid ---------------------------------------------------------------------------------------


def test_web_grid_shows_phase_text_days_and_overdue(client: TestClient, web_db: Path) -> None:
    """Each cell names its phase in words, links to its track and marks overdue steps."""
    page = client.get("/grid")
    assert page.status_code == 200
    html = page.text
    # One date format per language (issue 13): 30.06.2021, never also "30. juni 2021".
    assert "Portefølje" in html and "Tilslutninger pr. 30.06.2021" in html
    track = _open_track(web_db, "date_agreement")
    cell = re.search(rf'<a class="cell ph0[^"]*" href="/tracks/{track}"[^>]*>(.*?)</a>', html, re.S)
    assert cell, "the open track's cell links to it, coloured as its phase"
    assert "Aftale" in cell.group(1)  # the phase as text, not colour alone
    assert re.search(r"\d+ · \d+ d\.", cell.group(1))  # step · working days in it
    assert 'class="cell ph' in html and " late" in html and "forsinket" in html
    assert html.index("Aabenraa") > html.index("Vordingborg")  # Danish order: Aa is Å


def test_web_grid_filters_and_as_of_date(client: TestClient) -> None:
    """Category and phase filters narrow the grid; an earlier as-of date shows fewer tracks."""
    everything = client.get("/grid").text
    esdh = client.get("/grid", params={"category": "ESDH"}).text
    assert "Momentum" in everything and "Momentum" not in esdh and "Acadre" in esdh
    live = client.get("/grid", params={"phase": "live"}).text
    assert "I drift" in live and 'class="cell ph0' not in live

    def count(html: str) -> int:
        match = re.search(r"<strong>(\d+)</strong> spor", html)
        assert match
        return int(match.group(1))

    january = client.get("/grid", params={"as_of": "2021-01-01"}).text
    assert "01.01.2021" in january
    assert count(january) < count(everything)
    bad = client.get("/grid", params={"as_of": "31-13-2021"})
    assert bad.status_code == 400 and "er ikke en dato" in bad.text


# --- track --------------------------------------------------------------------------------------


def test_web_track_page_shows_why_actions_history_and_notifications(
    client: TestClient, web_db: Path
) -> None:
    """The track page explains where it stands and offers the coordinator's possible steps."""
    track = _open_track(web_db, "service_agreements")
    html = client.get(f"/tracks/{track}").text
    assert "Hvorfor sporet står her" in html and "arbejdsdage" in html
    assert "Serviceaftaler godkendt" in html  # an action button (the transition's label)
    assert f'action="/tracks/{track}/advance"' in html and 'name="csrf"' in html
    assert "Historik" in html and "import" in html  # the demo's import steps
    assert "Notifikationer" in html


def test_web_track_advance_records_the_step_with_actor_and_note(
    client: TestClient, web_db: Path
) -> None:
    """Posting an action moves the track through the engine and the history shows who and why."""
    track = _open_track(web_db, "date_agreement")
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
            "field_connection_date": "2021-09-01",
            "note": "aftalt på telefon",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == f"/tracks/{track}"
    after = client.get(f"/tracks/{track}").text
    assert "Udført" in after and "aftalt på telefon" in after and COORDINATOR in after
    (state,) = _one(web_db, "SELECT state FROM tracks WHERE id = ?", (track,))
    assert state == "service_agreements"
    actor, role, note = _one(
        web_db,
        "SELECT actor, role, note FROM history WHERE track_id = ? ORDER BY seq DESC",
        (track,),
    )
    assert (actor, role, note) == (COORDINATOR, "coordinator", "aftalt på telefon")


def test_web_track_refusal_shows_the_engines_reason(client: TestClient, web_db: Path) -> None:
    """A step the engine refuses (a required field missing) shows its reason; nothing written."""
    track = _open_track(web_db, "date_agreement")
    token = csrf_of(client.get(f"/tracks/{track}").text)
    before = snapshot(web_db)
    response = client.post(
        f"/tracks/{track}/advance",
        data={"csrf": token, "trigger": "agree_date", "role": "coordinator"},
    )
    assert response.status_code == 422
    text = unescape(response.text)
    assert "kræver “Aftalt tilslutningsdato”" in text and "Ikke udført" in text
    assert "--set" not in text  # command-line advice stays on the command line
    assert snapshot(web_db) == before


# --- municipality ---------------------------------------------------------------------------------


def test_web_municipality_page_lists_everything_about_it(client: TestClient) -> None:
    """Tracks, contracts with the payment scenario, contacts, KLIK tasks and the wave."""
    html = client.get("/municipalities/751").text  # Aarhus
    assert "<h1>Aarhus" in html
    for heading in (
        "Tilslutninger",
        "Kontrakter og betaling",
        "Kontakter",
        "KLIK-opgaver",
        "Udrulningsbølge",
    ):
        assert heading in html
    assert "Indmeld modtager(e) af GDPR-revisionserklæringer" in html
    assert "Bølge" in html and "Idriftsættelse" in html
    assert client.get("/municipalities/1").status_code == 404


# --- bulk ----------------------------------------------------------------------------------------


def test_web_bulk_preview_names_moving_and_blocked_tracks(client: TestClient, web_db: Path) -> None:
    """The preview lists which tracks would move and which are blocked with the engine's reason,
    offers no apply while any is blocked, and writes nothing."""
    before = snapshot(web_db)
    response = client.get(
        "/bulk",
        params={
            "definition": "connection",
            "state": "date_agreement|service_agreements",
            "trigger": "agree_date",
            "role": "coordinator",
            "sets": "connection_date=2021-09-01",
            "preview": "1",
        },
    )
    html = response.text
    assert response.status_code == 200 and "Forhåndsvis" in html
    assert "Spærret" in html and "Flyttes" in html
    assert (
        "“Tilslutningsdato aftalt” er ikke muligt fra “2. Godkend serviceaftaler med "
        "leverandøren”" in unescape(html)
    )
    assert 'action="/bulk/apply"' not in html
    assert snapshot(web_db) == before


def test_web_bulk_apply_moves_all_selected(client: TestClient, web_db: Path) -> None:
    """Applying a clean preview moves every selected track, each with a history row."""
    (region,) = _one(
        web_db,
        "SELECT m.region FROM tracks t JOIN municipalities m ON m.code = t.municipality_code"
        " WHERE t.definition = 'connection' AND t.state = 'date_agreement' AND t.final = 0"
        " ORDER BY t.id LIMIT 1",
    )
    params = {
        "definition": "connection",
        "state": "date_agreement",
        "region": str(region),
        "trigger": "agree_date",
        "role": "coordinator",
        "sets": "connection_date=2021-09-01",
        "note": "samlet aftale",
        "preview": "1",
    }
    html = client.get("/bulk", params=params).text
    ids = re.search(r'name="ids" value="([\d,]+)"', html)
    assert ids, html
    chosen = [int(x) for x in ids.group(1).split(",")]
    form = {k: v for k, v in params.items() if k != "preview"}
    before = _history_count(web_db)
    response = client.post(
        "/bulk/apply",
        data={**form, "ids": ids.group(1), "csrf": csrf_of(html)},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert f"{len(chosen)} spor flyttet" in response.text
    assert _history_count(web_db) == before + len(chosen)
    marks = ",".join("?" * len(chosen))
    (moved,) = _one(
        web_db,
        f"SELECT count(*) FROM tracks WHERE state = 'service_agreements' AND id IN ({marks})",
        tuple(chosen),
    )
    assert moved == len(chosen)


# --- import --------------------------------------------------------------------------------------


def _status_file(db: Path) -> bytes:
    code, system = _one(
        db,
        "SELECT m.name, v.name || ' ' || s.name FROM tracks t"
        " JOIN municipalities m ON m.code = t.municipality_code"
        " JOIN systems s ON s.id = t.system_id JOIN vendors v ON v.id = s.vendor_id"
        " WHERE t.definition = 'connection' AND t.state = 'date_agreement' AND t.final = 0"
        " ORDER BY t.id LIMIT 1",
    )
    return (
        "municipality;system;status;date;connection_date\n"
        f"{code};{system};service_agreements;2021-06-30;2021-10-01\n"
    ).encode()


def test_web_import_previews_the_difference_then_applies(client: TestClient, web_db: Path) -> None:
    """An upload shows the dry-run difference and writes nothing; apply writes the file."""
    token = csrf_of(client.get("/import").text)
    before = snapshot(web_db)
    preview = client.post(
        "/import",
        data={"csrf": token},
        files={"file": ("status-2021-06.csv", _status_file(web_db), "text/csv")},
    )
    assert preview.status_code == 200, preview.text
    assert "Forskel, hvis du indlæser status-2021-06.csv" in preview.text
    assert "flyttes" in preview.text
    assert snapshot(web_db) == before
    upload = re.search(r'name="token" value="([^"]+)"', preview.text)
    assert upload
    applied = client.post("/import/apply", data={"csrf": token, "token": upload.group(1)})
    assert applied.status_code == 200 and "status-2021-06.csv er indlæst" in applied.text
    (actor,) = _one(web_db, "SELECT actor FROM history ORDER BY id DESC")
    assert actor == COORDINATOR  # the person who uploaded (issue 13), not the import process
    again = client.post("/import/apply", data={"csrf": token, "token": upload.group(1)})
    assert again.status_code == 409  # one preview, applied once


def test_web_import_shows_row_errors_and_writes_nothing(client: TestClient, web_db: Path) -> None:
    """A file with bad rows lists each problem by line and column; nothing is written."""
    token = csrf_of(client.get("/import").text)
    before = snapshot(web_db)
    bad = b"municipality,system,status,date\nAtlantis,KMD Momentum,live,2021-06-30\n"
    response = client.post(
        "/import", data={"csrf": token}, files={"file": ("maj.csv", bad, "text/csv")}
    )
    assert response.status_code == 422
    assert "maj.csv:2: kolonnen municipality" in response.text  # the page is Danish
    assert "/tmp" not in response.text  # the server's upload folder stays private
    assert 'action="/import/apply"' not in response.text
    assert snapshot(web_db) == before


# --- reports -------------------------------------------------------------------------------------


def test_web_reports_render_and_download_as_csv(client: TestClient) -> None:
    """Rollout, goals (with the chart), KLIK and overdue render and download as CSV."""
    rollout = client.get("/reports/rollout", params={"as_of": "2021-03-31"}).text
    assert "KMD – Momentum" in rollout and "I drift" in rollout
    assert '<svg id="rollout-chart"' in client.get("/reports/goals").text
    assert "GDPR" in client.get("/reports/klik").text
    assert client.get("/reports/overdue").status_code == 200
    for name in ("rollout", "goals", "klik", "overdue"):
        response = client.get(f"/reports/{name}.csv", params={"as_of": "2021-03-31"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))
        assert len(rows) > 1
    rollout_rows = list(
        csv.DictReader(io.StringIO(client.get("/reports/rollout.csv?as_of=2021-03-31").text[1:]))
    )
    momentum = next(r for r in rollout_rows if r["system"] == "Momentum")
    assert (momentum["in_operation"], momentum["agreed"], momentum["not_agreed"]) == (
        "12",
        "22",
        "9",
    )  # the deck's numbers


def test_web_csv_neutralises_formula_cells(
    client: TestClient, web_db: Path, tmp_path: Path
) -> None:
    """A cell that a spreadsheet would run as a formula gets an apostrophe; numbers stay."""
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("+45 1234") == "'+45 1234" and csv_cell("-x") == "'-x"
    assert csv_cell(-3) == -3 and csv_cell("Aarhus") == "Aarhus"
    from onboarding import registry
    from onboarding.db import open_existing

    systems = tmp_path / "systems.csv"
    systems.write_text('vendor,system,category\n"=HYPERLINK(""x"")",@evil,ESDH\n')
    contracts = tmp_path / "contracts.csv"
    contracts.write_text("municipality,system,contract\nAarhus,@evil,eu-tender\n")
    db = open_existing(web_db)
    try:
        registry.import_systems(db, systems)
        registry.import_contracts(db, contracts)
    finally:
        db.close()
    text = client.get("/reports/rollout.csv").text
    assert "'=HYPERLINK" in text and "'@evil" in text
    assert not re.search(r'(^|,)"?[=@]', text, re.M)


# --- notifications -------------------------------------------------------------------------------


def test_web_notifications_forecast_and_retry_a_failed_send(
    client: TestClient, web_db: Path
) -> None:
    """The page shows the forecast and the failed sends; retry puts one back in the queue."""
    # The demo's mail all goes out (every role has a contact): fail one row as a mail server's
    # permanent refusal would.
    (row_id,) = _one(web_db, "SELECT id FROM outbox WHERE status = 'pending' ORDER BY id LIMIT 1")
    conn = sqlite3.connect(web_db)
    with conn:
        conn.execute(
            "UPDATE outbox SET status = 'failed', attempts = 1,"
            " last_error = '550 mailbox unavailable' WHERE id = ?",
            [row_id],
        )
    conn.close()
    html = client.get("/notifications").text
    assert "Prognose" in html and "Fejlet" in html
    assert f'action="/notifications/{row_id}/retry"' in html
    response = client.post(
        f"/notifications/{row_id}/retry", data={"csrf": csrf_of(html)}, follow_redirects=True
    )
    assert response.status_code == 200 and f"Notifikation {row_id} sendes igen" in response.text
    (status,) = _one(web_db, "SELECT status FROM outbox WHERE id = ?", (row_id,))
    assert status == "pending"
    everything = client.post(
        "/notifications/retry-failed", data={"csrf": csrf_of(html)}, follow_redirects=True
    )
    assert "sendes igen ved næste kørsel" in everything.text
    (failed,) = _one(web_db, "SELECT count(*) FROM outbox WHERE status = 'failed'")
    assert failed == 0


# --- language ------------------------------------------------------------------------------------


def test_web_language_is_danish_by_default_and_english_on_request(client: TestClient) -> None:
    """Danish texts and dates by default; a user can switch to English for the session."""
    danish = client.get("/grid").text
    assert 'lang="da"' in danish and "Portefølje" in danish and "30.06.2021" in danish
    response = client.post(
        "/language", data={"csrf": csrf_of(danish), "lang": "en", "next": "/grid"}
    )
    english = response.text
    assert 'lang="en"' in english and "Portfolio" in english and "30 Jun 2021" in english
    assert "Portfolio" in client.get("/reports/rollout").text  # kept for the session


def test_web_catalog_translates_every_message() -> None:
    """Every text in the templates and the web code has a Danish translation in the catalog."""
    root = Path(i18n.__file__).parent
    method_map = [("templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2)}
    messages = {
        m if isinstance(m, str) else m[0]
        for _f, _l, m, _c, _x in extract_from_dir(
            str(root), method_map, options_map=options, keywords=keywords
        )
    }
    assert len(messages) > 100
    with (i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="da")
    missing = sorted(
        m for m in messages if catalog.get(m) is None or not all(_strings(catalog.get(m)))
    )
    assert not missing, f"no Danish for: {missing}"


def _strings(message: Message | None) -> list[str]:
    assert message is not None
    value = message.string
    return list(value) if isinstance(value, tuple | list) else [value]
