"""Danish throughout (issue 13): no Danish page, Danish HTML report or Danish CLI output of the
shipped flows shows a raw key (a state, role, bucket, contract or phase key of the shipped
definitions) or an English engine message, over the demo database.

The scan reads what a person reads: the text of the page without tags, attribute values, URLs,
scripts and styles. A key that is also a Danish word of the catalogue or of a definition label
("pilot") cannot be told apart from the word and is not searched for.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

import cli
from onboarding import i18n, registry
from onboarding.db import open_existing
from onboarding.errors import TransitionRefused
from onboarding.web.app import create_app
from tests.web_support import DEMO_NOW, demo_template, fresh_db, login
from workflows.model import Definition
from workflows.roles import shipped_roles

#: Fixed English parts of the engine's messages (refusals, guard reasons, "why"): none may
#: reach a Danish reader.
ENGLISH = (
    "is blocked",
    "may not fire",
    "is not possible from",
    "possible now",
    "needs ",
    "give --set",
    "is not ready",
    "not yet ready",
    "has not passed",
    "has passed",
    "is not set",
    "working days",
    "working day",
    "Who must act next",
    "is now in",
    "track #",
    "Track #",
    "is finished",
    "changed since you read it",
    "history never goes backwards",
    "uses across",
    "distinct municipalities",
    "connection track",
    "is possible now",
    "on track",
    "missed",
    " target ",
    "add one with",
    "onboarding registry import",
)


@cache
def _definitions() -> tuple[Definition, ...]:
    """Every definition the demo database holds (the shipped ones, every version)."""
    from onboarding import definitions

    db = open_existing(demo_template())
    try:
        return tuple(definitions.stored(db))
    finally:
        db.close()


@cache
def _danish_words() -> frozenset[str]:
    """Every word of the Danish catalogue and of the shipped definitions' labels."""
    texts: list[str] = []
    for m in _catalogue():
        strings = m.string if isinstance(m.string, tuple | list) else (m.string,)
        texts += [t for t in strings if isinstance(t, str)]
    for defn in _definitions():
        texts += [defn.title] + [s.label for s in defn.states]
        texts += [f.label for f in defn.fields.values()]
        texts += [t.label or "" for t in defn.transitions] + list(defn.buckets)
    texts += [r.label["da"] for r in shipped_roles().values()]
    return frozenset(w for t in texts for w in re.findall(r"[\w-]+", t))


def _catalogue() -> list[Any]:
    from babel.messages import pofile

    with (i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return list(pofile.read_po(fh, locale="da"))


@cache
def raw_keys() -> frozenset[str]:
    """State, role, bucket, contract and phase keys of the shipped definitions that are not
    also Danish words."""
    keys: set[str] = set(shipped_roles()) | set(registry.CONTRACTS)
    keys |= {"in_operation", "agreed", "not_agreed"}  # the rollout report's bucket keys
    for defn in _definitions():
        keys |= {s.name for s in defn.states} | {r.key for r in defn.roles}
        keys |= {s.phase for s in defn.states if s.phase}
    return frozenset(k for k in keys if k not in _danish_words())


def visible_text(page: str) -> str:
    """What a person reads on a page: no scripts, styles, tags or attribute values."""
    page = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<!--.*?-->", " ", page)
    page = re.sub(r"(?s)<[^>]*>", " ", page)
    return html.unescape(page)


def offences(text: str) -> list[str]:
    """Raw keys and English engine phrases in ``text``."""
    found = [
        f"raw key {k!r}"
        for k in sorted(raw_keys())
        if re.search(rf"(?<![\w/.@-]){re.escape(k)}(?![\w@-]|\.\w)", text)
    ]
    found += [f"English {p!r}" for p in ENGLISH if p in text]
    # One date format per language: an ISO date (2021-05-26) beside 26.05.2021 is a second.
    found += [f"ISO date {d!r}" for d in sorted(set(re.findall(r"\b\d{4}-\d{2}-\d{2}\b", text)))]
    found += [f"English {w!r}" for w in ("met", "open") if re.search(rf"\b{w}\b", text)]
    return found


def _context(text: str, offence: str) -> str:
    word = offence.split(" ", 2)[-1].strip("'")
    i = text.find(word)
    return " ".join(text[max(0, i - 80) : i + 80].split())


def problems(where: str, text: str) -> list[str]:
    return [f"{where}: {o} in “{_context(text, o)}”" for o in offences(text)]


def assert_danish(where: str, text: str) -> None:
    bad = problems(where, text)
    assert not bad, "\n".join(bad)


# --- the page ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_db(tmp_path_factory.mktemp("danish"))


@pytest.fixture(scope="module")
def client(demo_db: Path) -> Iterator[TestClient]:
    mp = pytest.MonkeyPatch()
    mp.setenv("ONBOARDING_NOW", DEMO_NOW)
    with TestClient(create_app(demo_db)) as c:
        login(c)
        yield c
    mp.undo()


def _some_tracks(demo_db: Path) -> list[int]:
    """One open and one finished track of every shipped definition, and blocked ones."""
    db = open_existing(demo_db)
    try:
        ids = [
            row[0]
            for row in db.execute(
                "SELECT MIN(id) FROM tracks GROUP BY definition, final, state"
            ).fetchall()
        ]
    finally:
        db.close()
    return sorted(ids)


def page_urls(demo_db: Path) -> list[str]:
    urls = ["/work", "/grid", "/grid?definition=system-readiness", "/grid?overdue=1"]
    urls += ["/bulk", "/import", "/notifications", "/reports/overdue?role=coordinator"]
    urls += ["/reports"] + [
        f"/reports/{name}" for name in ("rollout", "goals", "overdue", "klik", "waves", "grid")
    ]
    urls += ["/municipalities/751", "/municipalities/101"]
    urls += [f"/tracks/{i}" for i in _some_tracks(demo_db)]
    urls += ["/bulk?definition=connection&state=service_agreements&trigger=approve_agreements"
             "&preview=1"]
    return urls


def test_pages_danish_no_raw_keys_or_english(client: TestClient, demo_db: Path) -> None:
    """Every page type, as a coordinator in Danish, names states, roles, phases, buckets and
    contracts by their labels and shows no English engine message."""
    bad = []
    for url in page_urls(demo_db):
        response = client.get(url)
        assert response.status_code < 500, url
        bad += problems(url, visible_text(response.text))
    assert not bad, "\n".join(bad)


def test_pages_grid_overdue_count_is_plural(client: TestClient) -> None:
    """The grid's overdue count agrees in number: "64 forsinkede", not "64 forsinket"."""
    text = " ".join(visible_text(client.get("/grid").text).split())
    assert re.search(r"\b\d+ forsinkede\b", text), text[:400]
    assert not re.search(r"\b(?!1 )\d+ forsinket\b", text)


def test_pages_english_phase_and_dates_by_label(demo_db: Path) -> None:
    """In English the phase badge is a label ("Agreement"), not the key, and dates read
    30 Jun 2021 throughout."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ONBOARDING_NOW", DEMO_NOW)
    try:
        with TestClient(create_app(demo_db)) as c:
            login(c)
            token = re.search(r'name="csrf" value="([^"]+)"', c.get("/grid").text)
            assert token
            c.post("/language", data={"csrf": token.group(1), "lang": "en", "next": "/grid"})
            db = open_existing(demo_db)
            track = db.execute(
                "SELECT id FROM tracks WHERE state = 'service_agreements' AND final = 0"
            ).fetchone()[0]
            db.close()
            text = visible_text(c.get(f"/tracks/{track}").text)
    finally:
        mp.undo()
    assert "Agreement" in text
    # "agreement administrator" is a role's English label; the phase key alone is not.
    assert not re.search(r"\bagreement\b(?! administrator)", text)
    for other in (r"\b\d{4}-\d{2}-\d{2}\b", r"\b\d{2}\.\d{2}\.\d{4}\b", r"\b\d+/\d+/\d{4}\b"):
        assert not re.search(other, text), re.search(other, text)


def test_pages_refusal_in_danish_without_cli_hint(client: TestClient, demo_db: Path) -> None:
    """A refused step on the page reads in Danish, by labels, without command-line advice."""
    db = open_existing(demo_db)
    try:
        track = db.execute(
            "SELECT id, version FROM tracks WHERE state = 'date_agreement' AND final = 0"
        ).fetchone()
    finally:
        db.close()
    page = client.get(f"/tracks/{track[0]}").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    response = client.post(
        f"/tracks/{track[0]}/advance",
        data={
            "csrf": token.group(1),
            "trigger": "agree_date",
            "role": "coordinator",
            "version": str(track[1]),
        },
    )
    assert response.status_code == 422
    text = visible_text(response.text)
    assert "kræver “Aftalt tilslutningsdato”" in text
    assert "--set" not in text
    assert_danish("refused step", text)


def test_pages_import_preview_names_steps_by_label(client: TestClient, demo_db: Path) -> None:
    """The import preview names the steps a row moves between by their labels, not keys."""
    db = open_existing(demo_db)
    try:
        name, system = db.execute(
            "SELECT m.name, v.name || ' ' || s.name FROM tracks t"
            " JOIN municipalities m ON m.code = t.municipality_code"
            " JOIN systems s ON s.id = t.system_id JOIN vendors v ON v.id = s.vendor_id"
            " WHERE t.definition = 'connection' AND t.state = 'date_agreement' AND t.final = 0"
            " ORDER BY t.id LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    sheet = (
        "municipality;system;status;date;connection_date\n"
        f"{name};{system};service_agreements;2021-06-30;2021-10-01\n"
    ).encode()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/import").text)
    assert token
    response = client.post(
        "/import",
        data={"csrf": token.group(1)},
        files={"file": ("status-2021-06.csv", sheet, "text/csv")},
    )
    assert response.status_code == 200, response.text
    text = visible_text(response.text)
    assert "2. Godkend serviceaftaler med leverandøren" in text
    assert_danish("import preview", text)


# --- the HTML report --------------------------------------------------------------------------


def test_html_report_danish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Danish HTML rollout report has Danish goal names, statuses and months."""
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    monkeypatch.delenv("ONBOARDING_LANG", raising=False)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli.cli,
        ["report", "rollout", "--db", str(demo_template()), "--format", "html", "--output",
         str(out)],
    )
    assert result.exit_code == 0, result.output
    text = visible_text(out.read_text(encoding="utf-8"))
    assert "Jobcenter udbredt (kommuner)" in text and "nået" in text
    assert " maj " in text and "30.06.2021" in text
    for english in ("rolled out", "Jun", "missed", "open"):
        assert english not in text, english
    assert_danish("HTML report", text)


# --- the command line -------------------------------------------------------------------------


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli.cli, [*args, "--db", str(demo_template())])
    assert result.exit_code in (0, 2), result.output
    return result.output


def cli_outputs(demo_db: Path) -> Iterator[tuple[str, str]]:
    for i in _some_tracks(demo_db):
        for sub in ("show", "why", "history"):
            yield f"track {sub} {i}", _cli("track", sub, str(i))
    yield "track list", _cli("track", "list", "--overdue")
    yield "track mine", _cli("track", "mine", "--actor", "test-koordinator")
    bulk = ["track", "advance", "--where", "definition=connection state=service_agreements",
            "approve_agreements", "--actor", "test-koordinator", "--role", "coordinator"]
    yield "bulk dry run", _cli(*bulk, "--dry-run")
    # A real run that every track refuses (the step takes no reason): on the module's copy.
    refused = CliRunner().invoke(cli.cli, [*bulk, "--set", "reason=x", "--db", str(demo_db)])
    assert refused.exit_code == 2, refused.output
    yield "bulk refused", refused.output
    yield "report overdue --role", _cli("report", "overdue", "--role", "coordinator")
    yield "track list state", _cli("track", "list", "--definition", "system-readiness")
    for name in ("rollout", "goals", "overdue", "klik", "waves", "grid", "buckets"):
        yield f"report {name}", _cli("report", name)
    yield "reminders list", _cli("reminders", "list", "--pending")
    yield "reminders forecast", _cli("reminders", "forecast")


def test_cli_danish_no_raw_keys_or_english(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Danish human output of track show/why/history/list, the reports and the reminders
    names everything by its label and has no English engine message."""
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    monkeypatch.delenv("ONBOARDING_LANG", raising=False)
    bad = [p for what, text in cli_outputs(demo_db) for p in problems(what, text)]
    assert not bad, "\n".join(bad)


def test_cli_advance_refusal_danish_with_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused advance on the Danish CLI names the step and field by label and keeps the
    command-line hint; with --lang en it reads as before."""
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    monkeypatch.delenv("ONBOARDING_LANG", raising=False)
    path = fresh_db(tmp_path)
    db = open_existing(path)
    track = db.execute(
        "SELECT id FROM tracks WHERE state = 'date_agreement' AND final = 0"
    ).fetchone()[0]
    db.close()
    args = ["track", "advance", str(track), "agree_date", "--db", str(path), "--actor",
            "test-koordinator", "--role", "coordinator"]
    da = CliRunner().invoke(cli.cli, args)
    assert da.exit_code == 2
    assert (
        f"spor #{track}: “Tilslutningsdato aftalt” kræver “Aftalt tilslutningsdato”: "
        "angiv --set connection_date=<date>" in da.stderr
    )
    en = CliRunner().invoke(cli.cli, ["--lang", "en", *args])
    assert en.exit_code == 2 and "give --set connection_date=<date>" in en.stderr


def test_cli_advance_names_step_and_who_acts_in_danish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'track advance' and 'track why' name the new step and the role by their labels."""
    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    monkeypatch.delenv("ONBOARDING_LANG", raising=False)
    path = fresh_db(tmp_path)
    db = open_existing(path)
    track = db.execute(
        "SELECT id FROM tracks WHERE state = 'date_agreement' AND final = 0"
    ).fetchone()[0]
    db.close()
    common = ["--db", str(path), "--actor", "test-koordinator", "--role", "coordinator"]
    moved = CliRunner().invoke(
        cli.cli,
        ["track", "advance", str(track), "agree_date", "--set", "connection_date=2021-09-01",
         *common],
    )
    assert moved.exit_code == 0, moved.output
    assert f"spor #{track} er nu i 2. Godkend serviceaftaler med leverandøren" in moved.stdout
    assert "service_agreements" not in moved.stdout
    why = CliRunner().invoke(cli.cli, ["track", "why", str(track), "--db", str(path)])
    assert "Næste handling ligger hos: aftaleadministrator for fagsystemet." in why.stdout
    assert "agreement-admin" not in why.stdout


def test_message_english_str_stable_and_danish_said() -> None:
    """A refusal keeps its English text (with the CLI hint) as str, and says itself in Danish
    by labels without the hint on the page."""
    exc = TransitionRefused(
        i18n.Message("%(ref)s is not set", {"ref": "x"}),
        hint=i18n.Message("give %(hints)s", {"hints": "--set x=1"}),
    )
    assert str(exc) == "x is not set: give --set x=1"
    assert exc.say("da") == "x er ikke udfyldt"
    assert exc.say("da", cli=True) == "x er ikke udfyldt: angiv --set x=1"
