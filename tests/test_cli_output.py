"""Output that survives a pipe, and a bulk preview that names tracks, through the real CLI
(issue 16). CliRunner's stdout and stderr are not terminals: what a script or a mail gets."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from onboarding import clock, demo, i18n
from tests.support import make_ready, ok, ok_json, run, snapshot

MUNICIPALITIES = ["Aarhus", "Vejle", "Odense", "Aalborg", "Esbjerg", "Randers"]


@pytest.fixture(autouse=True)
def narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """An 80-column "terminal" size: the width tables were cut to before, piped or not."""
    monkeypatch.setenv("COLUMNS", "80")


def _cut(text: str) -> list[str]:
    return [line for line in text.splitlines() if "…" in line]


def test_output_piped_workflow_show_has_no_cut_cells(runner: CliRunner, db_path: Path) -> None:
    """Piped, 'workflow show connection' prints every label and guard whole."""
    out = ok(runner, db_path, "workflow", "show", "connection").stdout
    assert _cut(out) == []
    assert "6. Opsæt SAPA-roller, Overblik, Advis og Borgerblik-administration" in out
    assert max(len(line) for line in out.splitlines()) > 80  # full width, not fitted


def test_output_piped_reminders_forecast_has_no_cut_cells(
    runner: CliRunner, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Piped, 'reminders forecast' keeps the time column and the subjects whole."""
    for name in ("ONBOARDING_SMTP_HOST", "ONBOARDING_CONFIG", "ONBOARDING_MAIL_FROM"):
        monkeypatch.delenv(name, raising=False)
    make_ready(runner, db_path, "Momentum")
    tid = _start(runner, db_path, "Køge", "KMD Momentum", "2021-06-01T09:00")
    ok(runner, db_path, "track", "advance", str(tid), "agree_date",
       "--set", "connection_date=2021-09-01", "--at", "2021-06-02T09:00")
    ok(runner, db_path, "track", "advance", str(tid), "approve_agreements",
       "--role", "agreement-admin", "--at", "2021-06-03T09:00")
    rows = ok_json(runner, db_path, "reminders", "forecast", "--days", "30",
                   "--at", "2021-08-12T12:00")
    assert rows
    out = ok(runner, db_path, "reminders", "forecast", "--days", "30",
             "--at", "2021-08-12T12:00").stdout
    assert _cut(out) == []
    for r in rows:
        # The table writes the time as the language does (13 Aug 2021 08:00); JSON keeps it.
        local = datetime.strptime(r["when"], "%Y-%m-%d %H:%M").replace(tzinfo=clock.LOCAL)
        when = i18n.fmt_datetime(local, "en")
        assert when in out and r["subject"] in out


def test_output_json_and_a_different_format_are_refused(runner: CliRunner, db_path: Path) -> None:
    """'--json --format csv' is refused (exit 2, one line); '--json --format json' agrees."""
    result = run(runner, db_path, "report", "rollout", "--json", "--format", "csv")
    assert result.exit_code == 2 and result.stdout == ""
    assert "--json and --format csv disagree" in result.stderr
    agreed = ok(runner, db_path, "report", "rollout", "--json", "--format", "json").stdout
    assert json.loads(agreed)["as_of"]
    assert ok(runner, db_path, "report", "rollout", "--format", "csv").stdout.startswith("as_of,")


def test_output_klik_leaves_out_an_empty_open_section(runner: CliRunner, db_path: Path) -> None:
    """'report klik --task' with no open track prints no empty 'Open:' table."""
    out = ok(runner, db_path, "report", "klik", "--task", "GDPR").stdout
    assert "Open:" not in out and "Municipality" not in out
    assert "GDPR" in out


def _start(runner: CliRunner, db_path: Path, municipality: str, system: str, at: str) -> int:
    args = ("track", "start", "--quiet", "connection", "--municipality", municipality,
            "--system", system, "--at", at)
    return int(ok(runner, db_path, *args).stdout)


def _blocked_setup(runner: CliRunner, db_path: Path) -> dict[int, str]:
    """12 connections agreed; the 6 on Fasit (not ready) are blocked at approve_agreements.
    Returns the blocked ids with their municipality."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
    fasit = {}
    for name in MUNICIPALITIES:
        _start(runner, db_path, name, "Momentum", "2021-04-01")
        fasit[_start(runner, db_path, name, "Fasit", "2021-04-01")] = name
    ok(runner, db_path, "track", "advance", "--where", "definition=connection", "agree_date",
       "--set", "connection_date=2021-09-01", "--at", "2021-04-15")
    return fasit


APPROVE = ("track", "advance", "--where", "definition=connection state=service_agreements",
           "approve_agreements", "--at", "2021-04-20")


def test_output_bulk_dry_run_names_every_blocked_track(runner: CliRunner, db_path: Path) -> None:
    """--dry-run lists each blocked track by id and subject under its reason, with a count,
    writes nothing and prints no progress line."""
    fasit = _blocked_setup(runner, db_path)
    before = snapshot(db_path)
    result = ok(runner, db_path, *APPROVE, "--dry-run")
    out = result.stdout
    assert "would move 6 of 12 selected track(s)" in out
    assert "6 blocked:" in out
    [group] = [line for line in out.splitlines() if "Schultz Fasit is not yet ready" in line]
    assert group.split()[0] == "6"
    for tid, name in fasit.items():
        assert f"#{tid:<6} {name} / Schultz Fasit" in out
    assert result.stderr == ""  # no "advancing" with --dry-run
    assert snapshot(db_path) == before
    limited = ok(runner, db_path, *APPROVE, "--dry-run", "--limit", "2").stdout
    assert sum(f"#{tid:<6}" in limited for tid in fasit) == 2
    assert "... and 4 more (--limit 6 lists them, --json lists all)" in limited
    data = ok_json(runner, db_path, *APPROVE, "--dry-run", "--limit", "2")
    assert sorted(b["id"] for b in data["blocked"]) == sorted(fasit)
    subjects = {f"{n} / Schultz Fasit" for n in MUNICIPALITIES}
    assert {b["subject"] for b in data["blocked"]} == subjects
    [g] = data["blocked_groups"]
    assert g["count"] == 6 and len(g["tracks"]) == 6 and "Schultz Fasit" in g["reason"]


def test_output_bulk_refusal_names_the_blocked_tracks(runner: CliRunner, db_path: Path) -> None:
    """The real run is refused naming the blocked tracks by id and subject, grouped, with the
    count, no progress line off a terminal, and nothing written."""
    fasit = _blocked_setup(runner, db_path)
    before = snapshot(db_path)
    result = run(runner, db_path, *APPROVE)
    assert result.exit_code == 2
    err = result.stderr
    assert "6 of 12 selected tracks cannot fire 'approve_agreements'" in err
    assert (
        "\n  6 × “Serviceaftaler godkendt” is blocked: system Schultz Fasit is not yet ready"
        in err
    )
    shown = [tid for tid in fasit if f"#{tid} {fasit[tid]} / Schultz Fasit" in err]
    assert len(shown) == 5 and "and 1 more" in err and "--dry-run' lists them" in err
    assert "advancing" not in err
    assert snapshot(db_path) == before


def test_output_bulk_real_run_prints_no_progress_off_a_terminal(
    runner: CliRunner, db_path: Path
) -> None:
    """A bulk run piped: the result on stdout and nothing on stderr."""
    _start(runner, db_path, "Aarhus", "Momentum", "2021-04-01")
    result = ok(runner, db_path, "track", "advance", "--where", "definition=connection",
                "agree_date", "--set", "connection_date=2021-09-01", "--at", "2021-04-15")
    assert "moved 1 of 1" in result.stdout and result.stderr == ""


def test_output_track_start_names_subject_step_and_due(runner: CliRunner, db_path: Path) -> None:
    """'track start' says which track started, by labels; --quiet prints the id alone;
    --json keeps its keys."""
    out = ok(runner, db_path, "track", "start", "connection", "--municipality", "Aarhus",
             "--system", "Momentum", "--at", "2021-03-01").stdout
    assert out == (
        "track #1 started: Aarhus / KMD Momentum, 1. Aftal tilslutningsdato med leverandøren"
        " (due 29.03.2021)\n"
    )
    quiet = ok(runner, db_path, "track", "start", "--quiet", "connection", "--municipality",
               "Vejle", "--system", "Momentum", "--at", "2021-03-01").stdout
    assert quiet == "2\n"
    data = ok_json(runner, db_path, "track", "start", "connection", "--municipality", "Odense",
                   "--system", "Momentum", "--at", "2021-03-01")
    assert set(data) == {"id", "definition", "state", "version", "due"}


def test_output_grid_as_of_gives_the_past_grid(runner: CliRunner, db_path: Path) -> None:
    """'report grid --as-of' replays history: the step and days in it as they were then."""
    make_ready(runner, db_path, "Momentum")
    tid = _start(runner, db_path, "Aarhus", "Momentum", "2021-04-01")
    ok(runner, db_path, "track", "advance", str(tid), "agree_date",
       "--set", "connection_date=2021-09-01", "--at", "2021-04-15")

    def cell(*extra: str) -> Any:
        data = ok_json(runner, db_path, "report", "grid", *extra)
        [row] = [r for r in data["rows"] if r["municipality"] == "Aarhus"]
        return data["today"], row["cells"]["KMD Momentum"]

    today, then = cell("--as-of", "09-04-2021")
    assert today == "2021-04-09"
    # 1 April 2021 was Maundy Thursday: working days 6-9 April, 4 of them.
    assert (then["track"], then["state"], then["step"]) == (tid, "date_agreement", 1)
    assert then["days"] == 4
    _, now = cell()
    assert now["state"] == "service_agreements"
    text = ok(runner, db_path, "report", "grid", "--as-of", "2021-04-09").stdout
    assert "9 Apr 2021" in text and "1:4" in text
    before = ok(runner, db_path, "report", "grid", "--as-of", "2021-03-01", "--json").stdout
    assert json.loads(before)["rows"] == [] or all(
        c.get("track") is None for r in json.loads(before)["rows"] for c in r["cells"].values()
    )


def test_output_goals_record_takes_a_negative_value(runner: CliRunner, db_path: Path) -> None:
    """'goals record COUNTER -5' reaches the value check (a count is 0 or more), not "no such
    option"; a positive value still records."""
    before = snapshot(db_path)
    result = run(runner, db_path, "goals", "record", "sapa-unique-users", "-5", "--at", "31.3.2021")
    assert result.exit_code == 2
    assert "No such option" not in result.stderr
    assert "sapa-unique-users: -5 is negative (a count is 0 or more)" in result.stderr
    assert snapshot(db_path) == before
    done = ok(runner, db_path, "goals", "record", "sapa-unique-users", "5", "--at", "31-03-2021")
    assert done.stdout == "sapa-unique-users = 5 on 2021-03-31\n"
    assert Database(db_path).execute("SELECT count(*) FROM goal_counters").fetchone()[0] == 1


def test_output_demo_try_next_starts_with_getting_onboarding_on_path(tmp_path: Path) -> None:
    """The demo's "Try next" list starts with the line that puts 'onboarding' on PATH."""
    lines: list[str] = []
    result = SimpleNamespace(
        database=tmp_path / "demo.db",
        html=tmp_path / "rollout.html",
        outbox=tmp_path / "outbox",
        data_files=[tmp_path / "data" / "contacts.csv"],
    )
    demo.where(result, lines.append)  # type: ignore[arg-type]
    first = lines[lines.index(next(x for x in lines if x.startswith("Try next"))) + 1]
    in_venv = os.path.realpath(os.sys.prefix) != os.path.realpath(os.sys.base_prefix)
    if in_venv:
        second = lines[lines.index(first) + 1]
        assert "/bin/activate" in first and "bin/onboarding" in second
    else:
        assert "on PATH" in first


def test_output_piped_reports_cut_no_cell(runner: CliRunner, db_path: Path) -> None:
    """Piped, the text reports keep every cell whole (goal labels, subjects, task names)."""
    _blocked_setup(runner, db_path)
    for args in (
        ("report", "goals", "--year", "2021", "--as-of", "2021-06-30"),
        ("report", "klik"),
        ("report", "overdue", "--as-of", "2021-12-01"),
        ("report", "rollout"),
        ("report", "waves"),
    ):
        out = ok(runner, db_path, *args).stdout
        assert _cut(out) == [], (args, _cut(out))


def test_output_demo_says_where_everything_is_in_danish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the default language the demo's closing lines are Danish (the paths and the command
    lines to try stay as they are); in English they are as before."""
    result = SimpleNamespace(
        database=tmp_path / "demo.db",
        html=tmp_path / "rollout.html",
        outbox=tmp_path / "outbox",
        data_files=[tmp_path / "data" / "contacts.csv"],
    )
    said: dict[str, list[str]] = {}
    for lang in ("da", "en"):
        monkeypatch.setenv("ONBOARDING_LANG", lang)
        said[lang] = []
        demo.where(result, said[lang].append)  # type: ignore[arg-type]
    assert said["da"][0] == "Her ligger det hele:" and said["en"][0] == "Where everything is:"
    assert f"  HTML-rapport  {tmp_path / 'rollout.html'}" in said["da"]
    assert any(line.startswith("Prøv derefter") for line in said["da"])
    assert "  onboarding report rollout --as-of 2021-03-31" in said["da"]
    assert not any("Where" in line or "Try next" in line for line in said["da"])
