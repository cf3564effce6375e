"""``onboarding report buckets DEF``: any definition's tracks per bucket as of any date, from the
same replay as the rollout report (issue 12)."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from onboarding import clock, definitions, engine, reports, tracks
from tests.support import ok, run
from tests.test_reports_asof import NOW, _History

CUSTOM = Path(__file__).parent / "data" / "custom-definition.yaml"


def _buckets(runner: CliRunner, db_path: Path, *args: str) -> Any:
    return json.loads(ok(runner, db_path, "report", "buckets", *args, "--format", "json").stdout)


def _at(text: str) -> engine.Act:
    moment = datetime.fromisoformat(text).replace(tzinfo=clock.LOCAL)
    return engine.Act("t", "coordinator", at=moment)


CONNECTION_PATH = (
    ("agree_date", {"connection_date": "2021-09-01"}),
    ("approve_agreements", {}),
    ("update_dpa", {}),
    ("request_display", {}),
    ("open_display", {}),
    ("complete_setup", {"kle_numbers": "32.18.00"}),
    ("load_complete", {}),
)


def _connections(db: Database) -> tuple[int, list[int]]:
    """Momentum ready; six municipalities with a contract for it and one connection track each,
    advanced 0, 1, 2, 3, 7 and 7 steps (a day apart from 1 March 2021, all before 1 April)."""
    act = _at("2021-01-04T09:00")
    ready = engine.start(db, "system-readiness", engine.Subject(system="Momentum"), act)
    engine.advance(db, ready["id"], "start_pilot", act, {"pilot_municipality": "751"})
    engine.advance(db, ready["id"], "complete_pilot", act)
    engine.advance(db, ready["id"], "pass_compliance", act)
    system_id = int(db.execute("SELECT id FROM systems WHERE name = 'Momentum'").fetchone()[0])
    codes = [int(r[0]) for r in db.execute("SELECT code FROM municipalities ORDER BY code LIMIT 6")]
    ids = []
    for i, (code, steps) in enumerate(zip(codes, (0, 1, 2, 3, 7, 7), strict=True)):
        db.execute(
            "INSERT INTO contracts (municipality_code, system_id, contract) VALUES (?, ?, ?)",
            [code, system_id, "ski-02.19-2019"],
        )
        moment = f"2021-03-{1 + i:02d}T09:00"
        subject = engine.Subject(municipality=str(code), system="Momentum", bob=True)
        tid = int(engine.start(db, "connection", subject, _at(moment))["id"])
        for trigger, sets in CONNECTION_PATH[:steps]:
            engine.advance(db, tid, trigger, _at(moment.replace("09:00", "10:00")), sets)
        ids.append(tid)
    return system_id, ids


def test_report_buckets_connection_equals_rollout_counts(
    runner: CliRunner, db: Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where both count the same thing (one track per contract), buckets per system as of D are
    the rollout's counts, and stay so after later activity."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-06-01T12:00")
    _, ids = _connections(db)

    def both(day: str) -> tuple[dict[str, int], dict[str, int]]:
        got = _buckets(runner, db_path, "connection", "--by", "system", "--as-of", day)
        (row,) = [r for r in got["rows"] if r["label"] == "KMD Momentum"]
        rollout = json.loads(
            ok(runner, db_path, "report", "rollout", "--as-of", day, "--format", "json").stdout
        )
        (want,) = [r for c in rollout["categories"] for r in c["rows"] if r["system"] == "Momentum"]
        labels = rollout["bucket_labels"]
        mine = {k: row["counts"][labels[k]] for k in ("not_agreed", "agreed", "in_operation")}
        theirs = {k: want[k] for k in ("not_agreed", "agreed", "in_operation")}
        return {**mine, "total": row["total"]}, {**theirs, "total": want["total"]}

    mine, theirs = both("2021-03-31")
    assert mine == theirs == {"not_agreed": 2, "agreed": 2, "in_operation": 2, "total": 6}
    before = _buckets(runner, db_path, "connection", "--by", "system", "--as-of", "2021-03-31")
    # Later activity: every open track moves on in April; as of 31 March nothing changes.
    for tid in ids[:4]:
        track = engine.load_track(db.conn, tid)
        defn = definitions.get(db, "connection", track["def_version"])
        trigger, sets = next(
            (t, s) for t, s in CONNECTION_PATH if t in defn.triggers_from(track["state"])
        )
        engine.advance(db, tid, trigger, _at("2021-04-15T09:00"), sets)
    after = _buckets(runner, db_path, "connection", "--by", "system", "--as-of", "2021-03-31")
    assert after == before
    mine, theirs = both("2021-04-30")
    assert mine == theirs and mine["not_agreed"] == 1


@pytest.mark.parametrize("seed", [7, 8])
def test_report_buckets_as_of_never_changes_after_the_fact(
    db: Database, db_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """For random histories, buckets as of D (every --by) are the replay's states then, and the
    same after later activity."""
    monkeypatch.setenv("ONBOARDING_NOW", NOW)
    history = _History(db, seed)
    history.setup()
    history.steps(150)
    last = clock.local_date(history.moment) - timedelta(days=1)
    rnd = random.Random(seed)
    days = sorted({date(2021, 1, 4) + timedelta(days=rnd.randint(0, (last - date(2021, 1, 4)).days))
                   for _ in range(3)} | {last})
    names = ("connection", "klik-task", "rollout-wave", "system-readiness")

    def report_all() -> dict[tuple[str, str | None, date], Any]:
        return {
            (name, by, d): reports.buckets(db, name, by, d)
            for name in names
            for by in (None, *reports.BUCKET_BY)
            for d in days
        }

    before = report_all()
    for d in days:  # the same replay as tracks.replay of each track's history up to then
        stamp = clock.stamp(clock.end_of_local_day(d))
        for name in names:
            want: dict[str, int] = {}
            for (tid,) in db.execute("SELECT id FROM tracks WHERE definition = ?", [name]):
                if db.execute(
                    "SELECT 1 FROM history WHERE track_id = ? AND at <= ?", [tid, stamp]
                ).fetchone() is None:
                    continue
                r = tracks.replay(db, tid, upto=stamp)
                state = definitions.get(db, name, r["def_version"]).state(r["state"])
                key = state.bucket if state.bucket is not None else state.name
                want[key] = want.get(key, 0) + 1
            got = before[(name, None, d)]["total"]["counts"]
            assert {k: v for k, v in got.items() if v} == want, (name, d)
    history.moment = max(history.moment, clock.end_of_local_day(last).astimezone(clock.LOCAL))
    history.steps(100)
    history.finish()
    assert report_all() == before
    assert any(before[("connection", None, d)]["total"]["total"] for d in days)


def test_report_buckets_of_a_custom_definition(
    runner: CliRunner, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worked example's tracks get a buckets report as of two dates, in every format."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-07-01T12:00")
    ok(runner, db_path, "workflow", "add", str(CUSTOM))
    tids = []
    for code in ("751", "101", "461"):
        tids.append(
            ok(
                runner, db_path, "track", "start", "--quiet",
                "dpo-approval", "--municipality", code,
                "--system", "Momentum", "--at", "2021-05-03T09:00",
            ).stdout.strip()
        )
    for tid in tids[:2]:
        ok(
            runner, db_path, "track", "advance", tid, "submit", "--set",
            "dpo_deadline=2021-05-20", "--role", "municipality-pl", "--at", "2021-05-04T09:00",
        )
    ok(
        runner, db_path, "track", "advance", tids[0], "approve", "--set", "decision=godkendt",
        "--role", "municipality-pl", "--at", "2021-06-10T09:00",
    )
    by = ("dpo-approval", "--by", "municipality", "--as-of")
    may = _buckets(runner, db_path, *by, "2021-05-31")
    june = _buckets(runner, db_path, *by, "2021-06-30")
    assert [c["key"] for c in may["columns"]] == ["Ikke godkendt", "Godkendt"]
    assert may["total"] == {"counts": {"Ikke godkendt": 3, "Godkendt": 0}, "total": 3}
    assert june["total"] == {"counts": {"Ikke godkendt": 2, "Godkendt": 1}, "total": 3}
    aarhus = next(r for r in june["rows"] if r["label"] == "Aarhus")
    assert aarhus["counts"] == {"Ikke godkendt": 0, "Godkendt": 1}
    assert {r["label"] for r in june["rows"]} == {"Aarhus", "København", "Odense"}
    before = _buckets(runner, db_path, "dpo-approval", "--as-of", "2021-05-31")
    assert before["rows"] == [] and before["total"] == may["total"]

    text = ok(runner, db_path, "report", "buckets", "dpo-approval", "--as-of", "2021-06-30").stdout
    assert "Ikke godkendt" in text and "Godkendt" in text and "Total" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    csv_text = ok(
        runner, db_path, "report", "buckets", "dpo-approval", "--by", "region", "--format", "csv"
    ).stdout
    assert csv_text.splitlines()[0] == (
        "as_of,definition,by,row,group,Ikke godkendt,Godkendt,total"
    )
    assert csv_text.splitlines()[-1].endswith(",total,,2,1,3")
    html = ok(
        runner, db_path, "report", "buckets", "dpo-approval", "--by", "vendor", "--format", "html"
    ).stdout
    assert "<table" in html and "KMD" in html
    assert "<script" not in html and "http" not in html.replace('charset="utf-8"', "")


def test_report_buckets_without_buckets_counts_states(
    runner: CliRunner, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A definition that declares no buckets is counted per state, columns labelled."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-07-01T12:00")
    ok(runner, db_path, "track", "start", "--quiet", "system-readiness", "--system", "Momentum")
    data = _buckets(runner, db_path, "system-readiness", "--by", "system")
    assert data["columns_are"] == "state"
    assert data["columns"][0] == {"key": "development", "label": data["columns"][0]["label"]}
    (row,) = data["rows"]
    assert row["label"] == "KMD Momentum" and row["counts"]["development"] == 1


def test_report_buckets_refuses_unknown_definition_and_by(
    runner: CliRunner, db_path: Path
) -> None:
    """An unknown definition or --by is one line on stderr and exit 2."""
    result = run(runner, db_path, "report", "buckets", "nope")
    assert result.exit_code == 2 and "unknown definition 'nope'" in result.stderr
    result = run(runner, db_path, "report", "buckets", "connection", "--by", "colour")
    assert result.exit_code == 2 and "--by" in result.stderr


# --- the web grid's definition selector (over HTTP, on the demo's database) ----------------------


@pytest.fixture
def web_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Path]]:
    """A logged-in coordinator on a private copy of the demo database, the worked example added
    with one track (Aarhus, approved) and one still in review."""
    from starlette.testclient import TestClient

    from onboarding.web import create_app
    from tests.web_support import DEMO_NOW, fresh_db, login

    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    path = fresh_db(tmp_path)
    runner = CliRunner()
    ok(runner, path, "workflow", "add", str(CUSTOM), actor="test-koordinator")
    for code in ("751", "101"):
        tid = ok(
            runner, path, "track", "start", "--quiet",
            "dpo-approval", "--municipality", code, "--system",
            "Momentum", "--at", "2021-06-01T09:00", actor="test-koordinator",
        ).stdout.strip()
        ok(
            runner, path, "track", "advance", tid, "submit", "--set", "dpo_deadline=2021-06-20",
            "--at", "2021-06-02T09:00", actor="test-koordinator",
        )
    ok(
        runner, path, "track", "advance", tid, "approve", "--set", "decision=godkendt",
        "--at", "2021-06-10T09:00", actor="test-koordinator",
    )
    with TestClient(create_app(path)) as client:
        login(client)
        yield client, path


def test_web_grid_definition_selector_offers_every_definition(
    web_client: tuple[Any, Path],
) -> None:
    """The grid offers every definition, connection chosen by default."""
    client, _ = web_client
    html = client.get("/grid").text
    select = re.search(r'<select name="definition".*?</select>', html, re.S)
    assert select, "the grid has a definition selector"
    names = re.findall(r'<option value="([^"]+)"', select.group(0))
    assert set(names) == {
        "connection", "dpo-approval", "klik-task", "onboarding-course", "rollout-wave",
        "system-readiness",
    }
    assert re.search(r'<option value="connection" selected>', select.group(0))
    assert "Tilslutninger pr. 30.06.2021" in html


def test_web_grid_shows_a_custom_definitions_tracks_and_buckets(
    web_client: tuple[Any, Path],
) -> None:
    """A custom definition's grid: its tracks by municipality and system, its buckets counted;
    an earlier date shows the earlier picture."""
    client, path = web_client
    page = client.get("/grid", params={"definition": "dpo-approval"})
    assert page.status_code == 200
    html = unescape(page.text)
    assert "DPO-godkendelse før tilslutning pr. 30.06.2021" in html
    assert re.search(r'<option value="dpo-approval" selected>', html)
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT id FROM tracks WHERE definition = 'dpo-approval'"
        ids = [r[0] for r in conn.execute(sql)]
    finally:
        conn.close()
    for tid in ids:
        assert f'href="/tracks/{tid}"' in html
    assert "I rapporterne" in html
    counts = dict(re.findall(r"<li>([^<]+?) <span class=\"count\">(\d+)</span></li>", html))
    assert counts["Ikke godkendt"] == "1" and counts["Godkendt"] == "1"
    assert "kontrakt" not in html.split("<ul class=\"legend\"", 1)[1].split("</ul>", 1)[0]
    june5 = unescape(client.get("/grid", params={"definition": "dpo-approval",
                                                 "as_of": "2021-06-05"}).text)
    counts = dict(re.findall(r"<li>([^<]+?) <span class=\"count\">(\d+)</span></li>", june5))
    assert counts["Ikke godkendt"] == "2" and counts["Godkendt"] == "0"


def test_web_grid_of_system_and_klik_definitions(web_client: tuple[Any, Path]) -> None:
    """A system definition's grid has a row per system; a KLIK grid a column per task; an
    unknown definition falls back to the connection grid."""
    client, path = web_client
    conn = sqlite3.connect(path)
    try:
        ready = conn.execute(
            "SELECT id FROM tracks WHERE definition = 'system-readiness' LIMIT 1"
        ).fetchone()
        sql = "SELECT id FROM tracks WHERE definition = 'klik-task' LIMIT 1"
        klik = conn.execute(sql).fetchone()
    finally:
        conn.close()
    html = client.get("/grid", params={"definition": "system-readiness"}).text
    assert ready and f'href="/tracks/{ready[0]}"' in html
    assert '<th class="muni" scope="col">System</th>' in html
    html = client.get("/grid", params={"definition": "klik-task"}).text
    assert klik and f'href="/tracks/{klik[0]}"' in html and "KLIK-opgave pr." in html
    fallback = client.get("/grid", params={"definition": "nope"})
    assert fallback.status_code == 200 and "Tilslutninger pr." in fallback.text


@pytest.mark.parametrize(
    ("lang", "by", "none", "total", "html_says"),
    [
        ("en", "Municipality", "(no municipality)", "Total", "status as of"),
        ("da", "Kommune", "(uden kommune)", "I alt", "status pr."),
    ],
)
def test_report_buckets_speaks_the_cli_language(
    runner: CliRunner,
    db: Database,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lang: str,
    by: str,
    none: str,
    total: str,
    html_says: str,
) -> None:
    """The heading of --by, the row of tracks without a municipality and the total row are
    said in the CLI's language, in the text, JSON and HTML forms."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-06-01T12:00")
    monkeypatch.setenv("ONBOARDING_LANG", lang)
    _connections(db)  # a system-readiness track (no municipality) and six connections
    args = ("report", "buckets", "system-readiness", "--by", "municipality")
    text = ok(runner, db_path, *args).stdout  # narrow columns wrap: the title and total row
    assert f" {by.lower()} " in text.split("\n\n")[0].replace("\n", " ") and total in text, text
    data = json.loads(ok(runner, db_path, *args, "--format", "json").stdout)
    assert data["by_label"] == by and [r["label"] for r in data["rows"]] == [none]
    html = unescape(ok(runner, db_path, *args, "--format", "html").stdout)
    assert f'<html lang="{lang}">' in html and html_says in html
    assert f">{by}</th>" in html and f"<td>{none}</td>" in html and f"<td>{total}</td>" in html
