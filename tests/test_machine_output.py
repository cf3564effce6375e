"""Machine-readable output: ``workflow show --json`` carries the whole definition, ``track show
--json --at`` judges at the given time and lists choice options, a one-track ``--dry-run``
writes nothing, and the diagram shows guards (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from onboarding import outbox
from onboarding.db import open_existing
from tests.support import make_ready, ok, ok_json, run, snapshot
from workflows.loader import shipped_dir

CUSTOM = Path(__file__).parent / "data" / "custom-definition.yaml"


@pytest.fixture
def dpo_db(db_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worked example added, the clock pinned to 1 June 2021."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-06-01T12:00:00+02:00")
    ok(runner, db_path, "workflow", "add", str(CUSTOM))
    return db_path


def _dpo_track_in_review(runner: CliRunner, db_path: Path, deadline: str) -> int:
    tid = int(
        ok(
            runner, db_path, "track", "start", "--quiet", "dpo-approval", "--municipality", "751",
            "--system", "Momentum", "--at", "2021-05-03T09:00",
        ).stdout
    )
    ok(
        runner, db_path, "track", "advance", str(tid), "submit", "--set",
        f"dpo_deadline={deadline}", "--role", "municipality-pl", "--at", "2021-05-04T09:00",
    )
    return tid


def _next(info: dict[str, Any], trigger: str) -> dict[str, Any]:
    return next(a for a in info["available"] if a["trigger"] == trigger)


# --- track show --json ------------------------------------------------------------------------


def test_track_show_json_lists_a_choice_fields_options(runner: CliRunner, dpo_db: Path) -> None:
    """A choice field among a next step's inputs carries its options, so a client can offer them."""
    tid = _dpo_track_in_review(runner, dpo_db, "2021-05-20")
    info = ok_json(runner, dpo_db, "track", "show", str(tid))
    decision = next(i for i in _next(info, "approve")["inputs"] if i["name"] == "decision")
    assert decision["type"] == "choice" and decision["required"] is True
    assert decision["options"] == ["godkendt", "godkendt med forbehold"]


def test_track_show_at_judges_blocked_by_at_that_time(runner: CliRunner, dpo_db: Path) -> None:
    """``--at`` judges guards then: before the deadline ``lapse`` is blocked, after it is not."""
    tid = _dpo_track_in_review(runner, dpo_db, "2021-05-20")
    now = _next(ok_json(runner, dpo_db, "track", "show", str(tid)), "lapse")
    assert now["blocked_by"] == []  # 1 June: the deadline has passed
    before = ok_json(runner, dpo_db, "track", "show", str(tid), "--at", "2021-05-12T10:00")
    lapse = _next(before, "lapse")
    assert lapse["blocked_by"] == ["dpo_deadline (2021-05-20) has not passed yet"]
    after = ok_json(runner, dpo_db, "track", "show", str(tid), "--at", "2021-05-21T10:00")
    assert _next(after, "lapse")["blocked_by"] == []
    # What track advance --at would be told, with the same reason.
    refused = run(
        runner, dpo_db, "track", "advance", str(tid), "lapse", "--role", "coordinator",
        "--at", "2021-05-12T10:00",
    )
    assert refused.exit_code == 2 and "has not passed yet" in refused.stderr


def test_track_show_at_before_the_last_step_says_so(runner: CliRunner, dpo_db: Path) -> None:
    """A time before the track's last step blocks every next step, as advance would refuse it."""
    tid = _dpo_track_in_review(runner, dpo_db, "2021-05-20")
    info = ok_json(runner, dpo_db, "track", "show", str(tid), "--at", "2021-05-03T12:00")
    assert all(
        any("before its last recorded step" in r for r in a["blocked_by"])
        for a in info["available"]
    )


# --- track advance ID TRIGGER --dry-run -------------------------------------------------------


def test_track_advance_dry_run_one_track_writes_nothing(
    runner: CliRunner, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One track's ``--dry-run`` shows the move, due date and notifications, writes nothing, and
    says exactly what the real advance then does."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-04-10T12:00:00+02:00")
    make_ready(runner, db_path, "Momentum")
    tid = ok(
        runner, db_path, "track", "start", "--quiet",
        "connection", "--municipality", "751", "--system",
        "Momentum", "--at", "2021-04-01T09:00",
    ).stdout.strip()
    args = (
        "track", "advance", tid, "agree_date", "--set", "connection_date=2021-09-01",
        "--role", "municipality-pl", "--at", "2021-04-06T09:00",
    )
    before = snapshot(db_path)
    preview = ok_json(runner, db_path, *args, "--dry-run")
    text = ok(runner, db_path, *args, "--dry-run").stdout
    assert snapshot(db_path) == before  # byte-identical file, same dump
    assert (preview["from"], preview["to"], preview["dry_run"]) == (
        "date_agreement",
        "service_agreements",
        True,
    )
    assert "would move" in text and preview["due"] in text and "reminder" in text
    assert preview["notifications"], "the step declares notifications"

    row = ok_json(runner, db_path, *args)
    assert (row["state"], row["due"]) == (preview["to"], preview["due"])
    # What the advance scheduled, as the outbox lists it (planned rows included, issue 14).
    db = open_existing(db_path)
    try:
        scheduled = sorted(
            (r["notification"], r["kind"], r["template"], r["recipients"], r["due_at"])
            for r in outbox.list_rows(db, track_id=int(tid))
            if r["state"] == "service_agreements"
        )
        scheduled.sort(key=lambda r: (r[4], r[0]))
    finally:
        db.close()
    assert [(n, k, t, due_at) for n, k, t, _r, due_at in scheduled] == [
        (n["name"], n["kind"], n["template"], n["at"]) for n in preview["notifications"]
    ]


def test_track_advance_dry_run_refuses_what_advance_refuses(
    runner: CliRunner, dpo_db: Path
) -> None:
    """A dry run of a blocked step fails as the step would (exit 2), and writes nothing."""
    tid = _dpo_track_in_review(runner, dpo_db, "2021-05-20")
    before = snapshot(dpo_db)
    result = run(
        runner, dpo_db, "track", "advance", str(tid), "lapse", "--role", "coordinator",
        "--at", "2021-05-12T10:00", "--dry-run",
    )
    assert result.exit_code == 2 and "has not passed yet" in result.stderr
    assert snapshot(dpo_db) == before


# --- workflow show --json ---------------------------------------------------------------------


def _guards(raw: Any) -> list[dict[str, Any]]:
    """A YAML guard list as ``workflow show --json`` lays it out."""
    items = raw if isinstance(raw, list) else [raw] if raw else []
    return [
        {"name": g, "params": {}}
        if isinstance(g, str)
        else {"name": g["name"], "params": {k: v for k, v in g.items() if k != "name"}}
        for g in items
    ]


def _listed(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else [] if raw is None else [raw]


@pytest.mark.parametrize(
    "file",
    [
        *(shipped_dir() / f"{stem}.yaml" for stem in (
            "connection", "system-readiness", "rollout-wave", "klik-task", "onboarding-course"
        )),
        CUSTOM,
    ],
    ids=lambda p: p.stem,
)
def test_workflow_show_json_round_trips_every_yaml_key(
    runner: CliRunner, db_path: Path, file: Path
) -> None:
    """Every key of every state and transition of the YAML is in ``workflow show --json``."""
    spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    if file == CUSTOM:
        ok(runner, db_path, "workflow", "add", str(file))
    data = ok_json(runner, db_path, "workflow", "show", spec["name"])
    for key in ("name", "version", "title", "subject", "initial", "description"):
        assert data[key] == spec.get(key), key
    assert data["buckets"] == spec.get("buckets", [])
    fields = {f["name"]: f for f in data["fields"]}
    for name, fspec in (spec.get("fields") or {}).items():
        for key, value in fspec.items():
            assert fields[name][key] == value, (name, key)
    assert len(data["states"]) == len(spec["states"])
    for got, want in zip(data["states"], spec["states"], strict=True):
        for key, value in want.items():
            assert got[key] == value, (want["name"], key)
    assert len(data["transitions"]) == len(spec["transitions"])
    for got, want in zip(data["transitions"], spec["transitions"], strict=True):
        for key, value in want.items():
            if key in ("guards", "unless"):
                assert got[key] == _guards(value), (want["trigger"], key)
            elif key in ("source", "roles", "requires", "optional"):
                assert got[key] == _listed(value), (want["trigger"], key)
            else:
                assert got[key] == value, (want["trigger"], key)
        # The fields a transition takes, with what a client needs to ask for them.
        taken = _listed(want.get("requires")) + _listed(want.get("optional"))
        assert [f["name"] for f in got["fields"]] == taken
        for f in got["fields"]:
            assert f["required"] == (f["name"] in _listed(want.get("requires")))
            assert f["type"] == spec["fields"][f["name"]]["type"]


def test_workflow_show_json_guard_parameters_of_the_custom_example(
    runner: CliRunner, dpo_db: Path
) -> None:
    """A guard's parameters and a choice field's options reach the JSON of a custom definition."""
    data = ok_json(runner, dpo_db, "workflow", "show", "dpo-approval")
    lapse = next(t for t in data["transitions"] if t["trigger"] == "lapse")
    assert lapse["guards"] == [{"name": "date_passed", "params": {"date": "dpo_deadline"}}]
    approve = next(t for t in data["transitions"] if t["dest"] == "approved")
    assert approve["unless"] == [{"name": "includes_bob", "params": {}}]
    assert approve["fields"][0]["options"] == ["godkendt", "godkendt med forbehold"]
    review = next(s for s in data["states"] if s["name"] == "dpo_review")
    assert review["due"] == {"date": "dpo_deadline"} and review["due_text"] == "dpo_deadline"


# --- workflow diagram -------------------------------------------------------------------------


def test_workflow_diagram_shows_guards_and_tells_same_trigger_apart(
    runner: CliRunner, dpo_db: Path
) -> None:
    """Edges carry their guards with parameters; two ``approve`` edges read apart."""
    text = ok(runner, dpo_db, "workflow", "diagram", "dpo-approval").stdout
    assert "dpo_review --> bob_review: approve [includes_bob]" in text
    assert "dpo_review --> approved: approve [not includes_bob]" in text
    assert "dpo_review --> prepare: lapse [date_passed(date=dpo_deadline)]" in text
    assert ";" not in text.split("\n", 1)[1]


# --- docs -------------------------------------------------------------------------------------

DOCS = Path(__file__).parent.parent / "docs"


def test_docs_workflows_links_notifications_and_names_the_pinned_clock() -> None:
    """workflows.md links notifications.md, no longer says to leave notifications out, and
    tells a reader about ONBOARDING_NOW."""
    text = (DOCS / "workflows.md").read_text(encoding="utf-8")
    assert "(notifications.md" in text
    assert "unless your installation documents it" not in text
    assert "ONBOARDING_NOW" in text
    assert "report buckets" in text and "--dry-run" in text


def test_track_start_help_says_how_to_start_a_new_definitions_track(runner: CliRunner) -> None:
    """``track start --help`` points to the subject of any definition, not only shipped ones."""
    import cli

    text = " ".join(runner.invoke(cli.cli, ["track", "start", "--help"]).stdout.split())
    assert "workflow show NAME" in text and "workflow add" in text
    assert "municipality-system" in text and "--set NAME=VALUE" in text
