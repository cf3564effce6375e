"""``onboarding workflow`` commands and a user-written definition that runs without Python."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.support import ok, ok_json, run, snapshot

CUSTOM = Path(__file__).parent / "data" / "custom-definition.yaml"


def test_workflow_show_json_has_the_stable_keys(runner: CliRunner, db_path: Path) -> None:
    """``workflow show --json`` holds name, version, initial, states and transitions."""
    data = ok_json(runner, db_path, "workflow", "show", "connection")
    assert (data["name"], data["version"], data["initial"]) == ("connection", 1, "date_agreement")
    live = next(s for s in data["states"] if s["name"] == "live")
    assert {"name", "label", "final", "bucket"} <= set(live)
    assert live["final"] is True and live["bucket"] == "I drift"
    agree = next(t for t in data["transitions"] if t["trigger"] == "agree_date")
    assert agree["source"] == ["date_agreement"] and agree["dest"] == "service_agreements"
    assert "municipality-pl" in agree["roles"]


def test_every_connection_state_names_bucket_and_phase(runner: CliRunner, db_path: Path) -> None:
    """Each connection state carries a report bucket and a phase in the coordinators' words."""
    data = ok_json(runner, db_path, "workflow", "show", "connection")
    assert all(s["bucket"] in ("Endnu ikke aftalt", "Aftalt", "I drift") for s in data["states"])
    phases = {s["phase"] for s in data["states"]}
    assert {"agreement", "data opened in SAPA/BoB", "loaded", "live"} <= phases


def test_workflow_list_names_the_five_shipped_definitions(runner: CliRunner, db_path: Path) -> None:
    """A fresh database runs the five shipped definitions."""
    names = {d["name"] for d in ok_json(runner, db_path, "workflow", "list")}
    assert names == {
        "connection",
        "system-readiness",
        "onboarding-course",
        "klik-task",
        "rollout-wave",
    }


def test_workflow_validate_lists_every_problem_and_exits_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    """An invalid file gets every problem on stderr, each with its path, and exit code 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: broken\nversion: 1\ntitle: t\nsubject: system\ninitial: a\n"
        "states:\n  - {name: a, label: A, role: wizard}\n  - {name: b, label: B}\n"
        "  - {name: c, label: C, final: true}\n"
        "transitions:\n  - {trigger: go, source: a, dest: c, roles: [vendor], guards: [magic]}\n",
        encoding="utf-8",
    )
    result = runner_invoke(runner, "workflow", "validate", str(bad))
    assert result.exit_code == 2
    assert "states[0] (a).role: unknown role 'wizard'" in result.stderr
    assert "unknown guard 'magic'" in result.stderr
    assert "states[1] (b): unreachable" in result.stderr
    assert "states[1] (b): dead end" in result.stderr


def test_workflow_validate_accepts_the_shipped_definitions(runner: CliRunner) -> None:
    """Every shipped definition file validates."""
    for path in Path("workflows/definitions").glob("*.yaml"):
        result = runner_invoke(runner, "workflow", "validate", str(path))
        assert result.exit_code == 0, result.output


def test_workflow_diagram_prints_mermaid(runner: CliRunner, db_path: Path) -> None:
    """``workflow diagram`` prints a Mermaid state diagram with the transitions."""
    text = ok(runner, db_path, "workflow", "diagram", "connection").stdout
    assert text.startswith("stateDiagram-v2")
    assert "date_agreement --> service_agreements" in text


def test_user_written_definition_loads_and_runs(runner: CliRunner, db_path: Path) -> None:
    """The documented example definition is added and a track runs through it, no Python."""
    ok(runner, db_path, "workflow", "add", str(CUSTOM))
    tid = int(
        ok(
            runner,
            db_path,
            "track",
            "start", "--quiet",
            "dpo-approval",
            "--municipality",
            "Aarhus",
            "--system",
            "Momentum",
        ).stdout
    )
    ok(
        runner,
        db_path,
        "track",
        "advance",
        str(tid),
        "submit",
        "--set",
        "dpo_deadline=2027-03-01",
        "--role",
        "municipality-pl",
    )
    ok(runner, db_path, "track", "advance", str(tid), "approve", "--set", "decision=godkendt")
    shown = ok_json(runner, db_path, "track", "show", str(tid))
    assert (shown["state"], shown["final"]) == ("approved", True)


def test_workflow_add_refuses_an_invalid_file(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """``workflow add`` of a broken file exits 2 and stores nothing."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\n", encoding="utf-8")
    before = snapshot(db_path)
    result = run(runner, db_path, "workflow", "add", str(bad))
    assert result.exit_code == 2
    assert "missing initial state" in result.stderr
    assert snapshot(db_path) == before


def runner_invoke(runner: CliRunner, *args: str):  # type: ignore[no-untyped-def]
    import cli

    return runner.invoke(cli.cli, list(args))
