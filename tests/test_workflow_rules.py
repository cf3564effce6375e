"""Definition rules of issue 12: guards that say what people mean, ``source: "*"``, fields a
transition takes and requires on this firing, and the validator's duplicate keys, syntax hints
and role lists. Driven through the real CLI on real files where a user would meet them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import cli
from onboarding import definitions
from tests.support import make_ready, ok, ok_json, run, snapshot
from workflows.loader import load_text, shipped_files, validate_text

#: A vendor's test report approved by a national authority: not KOMBIT's connection flow.
APPROVAL = """\
name: test-approval
version: 1
title: Godkendelse af testrapport
subject: municipality-system
initial: preparing
fields:
  report_ref: {type: text, label: Testrapportens reference}
  contact: {type: text, label: Kontaktperson, keep: true}
  decision: {type: choice, label: Afgørelse, options: [godkendt, afvist]}
  test_date: {type: date, label: Testdato}
  reason: {type: text, label: Begrundelse}
states:
  - {name: preparing, label: Forberedes}
  - {name: submitted, label: Indsendt}
  - {name: approved, label: Godkendt, final: true}
  - {name: on_hold, label: Sat i bero}
  - {name: withdrawn, label: Trukket tilbage, final: true}
transitions:
  - trigger: submit
    source: preparing
    dest: submitted
    roles: [vendor, coordinator]
    requires: [report_ref, contact]
    optional: [test_date]
  - trigger: decide
    source: submitted
    dest: approved
    roles: [coordinator]
    requires: [decision]
    guards: [{field: decision, equals: godkendt}]
  - trigger: decide
    source: submitted
    dest: preparing
    roles: [coordinator]
    requires: [decision]
    unless: [{field: decision, equals: godkendt}]
  - trigger: test_done
    source: submitted
    dest: approved
    roles: [coordinator]
    guards:
      - date_passed: {date: test_date, on_or_after: true, offset: {working_days: -2}}
  - trigger: hold
    source: {all_except: [on_hold]}
    dest: on_hold
    roles: [coordinator]
    optional: [reason]
  - trigger: resume
    source: on_hold
    dest: preparing
    roles: [coordinator]
  - trigger: withdraw
    source: "*"
    dest: withdrawn
    roles: [coordinator]
    requires: [reason]
"""

#: Only what the format had before issue 12, so the leak tests below also run on the old code.
PLAIN = """\
name: plain
version: 1
title: Enkel
subject: municipality-system
initial: waiting
fields:
  note: {type: text, label: Note}
  due_on: {type: date, label: Frist}
states:
  - {name: waiting, label: Venter}
  - {name: passed, label: Passeret, final: true}
transitions:
  - trigger: go
    source: waiting
    dest: passed
    roles: [coordinator]
    guards:
      - {name: date_passed, date: due_on}
  - trigger: gate
    source: waiting
    dest: passed
    roles: [coordinator]
    guards:
      - {name: requires_track, definition: system-readiness, states: [ready]}
"""

#: One gate per way of choosing which of the system's readiness tracks counts.
GATE = """\
name: gate
version: 1
title: Port
subject: municipality-system
initial: waiting
states:
  - {name: waiting, label: Venter}
  - {name: passed, label: Passeret, final: true}
transitions:
"""
for _which in ("latest", "any", "all"):
    GATE += f"""\
  - trigger: go_{_which}
    source: waiting
    dest: passed
    roles: [coordinator]
    guards:
      - {{name: requires_track, definition: system-readiness, states: [ready], which: {_which}}}
"""


def _cli(runner: CliRunner, *args: str) -> Result:
    """A command without a database (``workflow validate``)."""
    return runner.invoke(cli.cli, list(args))


def _file(tmp_path: Path, text: str, name: str = "def.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _start(runner: CliRunner, db_path: Path, defn: str, at: str, system: str = "Momentum") -> str:
    out = ok(
        runner, db_path, "track", "start", "--quiet",
        defn, "--municipality", "Aarhus", "--system", system,
        "--at", at,
    ).stdout
    return out.strip()


def _advance(
    runner: CliRunner, db_path: Path, tid: str, trigger: str, at: str, *sets: str
) -> Result:
    args = ["track", "advance", tid, trigger, "--at", at]
    for s in sets:
        args += ["--set", s]
    return run(runner, db_path, *args)


def _state(runner: CliRunner, db_path: Path, tid: str) -> str:
    return str(ok_json(runner, db_path, "track", "show", tid)["state"])


# --- fields: requires on this firing, keep, unlisted ------------------------------------------


def _in_compliance_test(runner: CliRunner, db_path: Path) -> str:
    """A shipped system-readiness track sent back once from its compliance test, with a
    reason, and in the compliance test again."""
    tid = ok(runner, db_path, "track", "start", "--quiet",
    "system-readiness", "--system", "Momentum",
             "--at", "2021-01-04T09:00").stdout.strip()
    steps = [
        ("start_pilot", "2021-01-11T09:00", ["pilot_municipality=Aarhus"]),
        ("complete_pilot", "2021-02-01T09:00", []),
        ("fail_compliance", "2021-02-08T09:00", ["reason=Logning mangler"]),
        ("complete_pilot", "2021-02-15T09:00", []),
    ]
    for trigger, at, sets in steps:
        done = _advance(runner, db_path, tid, trigger, at, *sets)
        assert done.exit_code == 0, done.output
    return tid


def test_rules_shipped_withdraw_refuses_the_reason_of_an_earlier_step(
    runner: CliRunner, db_path: Path
) -> None:
    """withdraw requires a reason on this firing: the failed compliance test's reason from an
    earlier step no longer stands in for it (exit 2, nothing written)."""
    tid = _in_compliance_test(runner, db_path)
    before = snapshot(db_path)
    result = _advance(runner, db_path, tid, "withdraw", "2021-02-16T09:00")
    assert result.exit_code == 2, result.output
    assert "“Begrundelse” must be given again on this step" in result.stderr
    assert snapshot(db_path) == before
    ok(runner, db_path, "track", "advance", tid, "withdraw", "--at", "2021-02-16T09:00",
       "--set", "reason=Systemet udgår")
    assert _state(runner, db_path, tid) == "withdrawn"


def test_rules_shipped_transition_refuses_an_unlisted_field(
    runner: CliRunner, db_path: Path
) -> None:
    """pass_compliance takes compliance_ref only: a reason given with it is refused naming the
    allowed field, and nothing is stored."""
    tid = _in_compliance_test(runner, db_path)
    before = snapshot(db_path)
    result = _advance(runner, db_path, tid, "pass_compliance", "2021-02-16T09:00", "reason=ok")
    assert result.exit_code == 2, result.output
    assert (
        "does not take “Begrundelse” (it takes: “Reference til compliancetest”)" in result.stderr
    )
    assert snapshot(db_path) == before


@pytest.fixture
def approval(runner: CliRunner, db_path: Path, tmp_path: Path) -> str:
    """The approval programme added from its file, one track submitted once and sent back."""
    ok(runner, db_path, "workflow", "add", str(_file(tmp_path, APPROVAL)))
    tid = _start(runner, db_path, "test-approval", "2021-03-01T09:00")
    assert _advance(
        runner, db_path, tid, "submit", "2021-03-02T09:00",
        "report_ref=R1", "contact=Anna", "test_date=2021-03-10",
    ).exit_code == 0
    sent_back = _advance(runner, db_path, tid, "decide", "2021-03-03T09:00", "decision=afvist")
    assert sent_back.exit_code == 0, sent_back.output
    assert _state(runner, db_path, tid) == "preparing"
    return tid


def test_rules_requires_refuses_a_stale_value(
    runner: CliRunner, db_path: Path, approval: str
) -> None:
    """A required field from an earlier round does not satisfy a new firing (exit 2, nothing
    written); a field marked keep: true does."""
    before = snapshot(db_path)
    result = _advance(runner, db_path, approval, "submit", "2021-03-04T09:00")
    assert result.exit_code == 2, result.output
    assert "“Testrapportens reference” must be given again on this step" in result.stderr
    assert "contact" not in result.stderr.split("needs", 1)[1].split(":", 1)[0]
    assert snapshot(db_path) == before
    ok(runner, db_path, "track", "advance", approval, "submit", "--at", "2021-03-04T09:00",
       "--set", "report_ref=R2")
    shown = ok_json(runner, db_path, "track", "show", approval)
    assert shown["state"] == "submitted"


def test_rules_unlisted_field_is_refused_naming_the_allowed(
    runner: CliRunner, db_path: Path, approval: str
) -> None:
    """A field the transition does not list is refused with exit 2 naming the ones it takes,
    and nothing is stored."""
    before = snapshot(db_path)
    result = _advance(
        runner, db_path, approval, "submit", "2021-03-04T09:00", "report_ref=R2", "reason=typo"
    )
    assert result.exit_code == 2, result.output
    assert (
        "does not take “Begrundelse” (it takes: “Testrapportens reference”, “Kontaktperson”, "
        "“Testdato”)" in result.stderr
    )
    assert snapshot(db_path) == before


def test_rules_field_guard_picks_the_transition(
    runner: CliRunner, db_path: Path, approval: str
) -> None:
    """A field comparison guard sees the value given on this firing and picks the branch."""
    ok(runner, db_path, "track", "advance", approval, "submit", "--at", "2021-03-04T09:00",
       "--set", "report_ref=R2")
    ok(runner, db_path, "track", "advance", approval, "decide", "--at", "2021-03-04T10:00",
       "--set", "decision=godkendt")
    assert _state(runner, db_path, approval) == "approved"


def test_rules_date_guard_on_or_after_with_working_day_offset(
    runner: CliRunner, db_path: Path, approval: str
) -> None:
    """date_passed with on_or_after and -2 working days: refused the Friday before, allowed on
    the Monday two working days before the Wednesday test date (backdated --at)."""
    ok(runner, db_path, "track", "advance", approval, "submit", "--at", "2021-03-04T09:00",
       "--set", "report_ref=R2")
    early = _advance(runner, db_path, approval, "test_done", "2021-03-05T12:00")
    assert early.exit_code == 2, early.output
    assert "2 working days = 8 Mar 2021 has not come yet" in early.stderr
    ok(runner, db_path, "track", "advance", approval, "test_done", "--at", "2021-03-08T08:00")
    assert _state(runner, db_path, approval) == "approved"


def test_rules_star_source_withdraws_from_any_open_state(
    runner: CliRunner, db_path: Path, approval: str
) -> None:
    """source "*" fires from a state reached through all_except (on_hold)."""
    ok(runner, db_path, "track", "advance", approval, "hold", "--at", "2021-03-04T09:00")
    ok(runner, db_path, "track", "advance", approval, "withdraw", "--at", "2021-03-05T09:00",
       "--set", "reason=Leverandøren trak sig")
    assert _state(runner, db_path, approval) == "withdrawn"


# --- requires_track: which track counts ------------------------------------------------------


def test_rules_requires_track_which_latest_any_all(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """With a ready readiness track and a newer one in development: latest (the default, as
    before) and all block, any lets the step through."""
    make_ready(runner, db_path, "Momentum")
    ok(runner, db_path, "track", "start", "--quiet", "system-readiness", "--system", "Momentum",
       "--at", "2021-04-01T09:00")
    ok(runner, db_path, "workflow", "add", str(_file(tmp_path, GATE)))
    tid = _start(runner, db_path, "gate", "2021-04-02T09:00")
    for which in ("latest", "all"):
        blocked = _advance(runner, db_path, tid, f"go_{which}", "2021-04-05T09:00")
        assert blocked.exit_code == 2, blocked.output
        assert "is blocked" in blocked.stderr
    ok(runner, db_path, "track", "advance", tid, "go_any", "--at", "2021-04-05T09:00")
    assert _state(runner, db_path, tid) == "passed"


def test_rules_requires_track_to_nothing_is_refused_at_add(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A requires_track naming a definition that is not installed, or states it lacks, is an
    error at workflow add (exit 2, nothing stored) and a warning at validate of a lone file."""
    missing = _file(tmp_path, PLAIN.replace("system-readiness", "vendor-audit"), "missing.yaml")
    before = snapshot(db_path)
    added = run(runner, db_path, "workflow", "add", str(missing))
    assert added.exit_code == 2, added.output
    assert "definition 'vendor-audit' is not installed" in added.stderr
    assert snapshot(db_path) == before
    lone = _cli(runner, "workflow", "validate", str(missing))
    assert lone.exit_code == 0, lone.output
    assert "warning:" in lone.stderr and "'vendor-audit' is not shipped" in lone.stderr
    states = _file(tmp_path, PLAIN.replace("[ready]", "[redy]"), "states.yaml")
    refused = run(runner, db_path, "workflow", "add", str(states))
    assert refused.exit_code == 2, refused.output
    assert "system-readiness has no state 'redy'" in refused.stderr
    assert _cli(runner, "workflow", "validate", str(states)).exit_code == 2


# --- the validator: guard types, sources, duplicates, hints, roles ---------------------------


def test_rules_date_guard_on_a_text_field_is_a_validate_error(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """date_passed naming a text field is refused by validate, not left to die at run time."""
    bad = _file(tmp_path, PLAIN.replace("date: due_on", "date: note"))
    result = _cli(runner, "workflow", "validate", str(bad))
    assert result.exit_code == 2, result.output
    assert "'note' (a text field) is not a date field or reference" in result.stderr
    before = snapshot(db_path)
    assert run(runner, db_path, "workflow", "add", str(bad)).exit_code == 2
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("guard", "words"),
    [
        ("{field: decision, equals: maybe}", "'maybe' does not fit field decision (choice)"),
        ("{field: test_date, in: [soon]}", "'soon' does not fit field test_date (date)"),
        ("{field: nosuch, equals: x}", "unknown field 'nosuch'"),
        ("{field: decision, equals: a, in: [b]}", "give exactly one of equals, in, not_in"),
        (
            "{name: date_passed, date: test_date, offset: {weeks: 1}}",
            "{working_days: N} or {calendar_days: N}",
        ),
        ("{name: requires_track, definition: gate, states: [x], which: newest}", "which"),
    ],
)
def test_rules_guard_parameters_are_type_checked(guard: str, words: str) -> None:
    """Each guard parameter is checked against the field or definition it names."""
    text = APPROVAL.replace("guards: [{field: decision, equals: godkendt}]", f"guards: [{guard}]")
    problems = validate_text(text, "probe.yaml", definitions.known())
    assert any(words in p for p in problems), problems


def test_rules_star_and_all_except_expand_against_each_versions_states() -> None:
    """source "*" is every non-final state of the definition itself, so a state added in
    version 2 is covered; all_except leaves the listed ones out."""
    v1 = load_text(APPROVAL, "v1", definitions.known())
    withdraw = next(t for t in v1.transitions if t.trigger == "withdraw")
    hold = next(t for t in v1.transitions if t.trigger == "hold")
    assert withdraw.sources == ("preparing", "submitted", "on_hold")
    assert hold.sources == ("preparing", "submitted")
    v2_text = APPROVAL.replace("version: 1", "version: 2").replace(
        "  - {name: on_hold, label: Sat i bero}\n",
        "  - {name: on_hold, label: Sat i bero}\n  - {name: audit, label: Revision}\n",
    ).replace("    dest: submitted\n", "    dest: audit\n").replace(
        "  - trigger: decide\n    source: submitted\n    dest: approved",
        "  - trigger: audited\n    source: audit\n    dest: submitted\n    roles: [coordinator]\n"
        "  - trigger: decide\n    source: submitted\n    dest: approved",
    )
    v2 = load_text(v2_text, "v2", definitions.known())
    assert "audit" in next(t for t in v2.transitions if t.trigger == "withdraw").sources
    assert "audit" in next(t for t in v2.transitions if t.trigger == "hold").sources


def test_rules_bad_source_forms_are_reported() -> None:
    """all_except naming an unknown state, a '*' inside a list and an empty expansion are
    reported at the transition's source."""
    text = APPROVAL.replace("{all_except: [on_hold]}", "{all_except: [on_hld]}")
    assert any("all_except: unknown state 'on_hld'" in p for p in validate_text(
        text, "p", definitions.known()))
    text = APPROVAL.replace('source: "*"', 'source: ["*"]')
    assert any('"*" stands alone' in p for p in validate_text(text, "p", definitions.known()))
    text = APPROVAL.replace(
        "{all_except: [on_hold]}", "{all_except: [preparing, submitted, on_hold]}"
    )
    assert any("matches no state" in p for p in validate_text(text, "p", definitions.known()))


def test_rules_duplicate_keys_are_errors_with_both_lines(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A key given twice in one mapping is an error naming both line numbers (YAML would keep
    the last one silently)."""
    text = PLAIN.replace("    dest: passed\n", "    dest: passed\n    dest: waiting\n", 1)
    lines = text.splitlines()
    first = lines.index("    dest: passed") + 1
    result = _cli(runner, "workflow", "validate", str(_file(tmp_path, text)))
    assert result.exit_code == 2, result.output
    assert f"line {first + 1}: duplicate key 'dest' (first at line {first})" in result.stderr


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        ("name: x\nstates:\n\t- a\n", "line 3, column 1", "tab"),
        ("name: x\nstates\n  - a\n", "line 4", "without its colon (on line 2)"),
        ("name: x\nwhen: 2021-13-01\n", "line 2, column 7", "YYYY-MM-DD"),
        ("name: x\nstates:\n  - name: a\n   label: b\n", "line 4", "indentation"),
        ("name: x\ntitle: a: b\n", "line 2", "double quotes"),
    ],
)
def test_rules_yaml_syntax_error_has_a_plain_hint(
    runner: CliRunner, tmp_path: Path, text: str, where: str, hint: str
) -> None:
    """A YAML syntax error gives line, column and a plain-words hint."""
    result = _cli(runner, "workflow", "validate", str(_file(tmp_path, text)))
    assert result.exit_code == 2
    line = next(x for x in result.stderr.splitlines() if "YAML syntax" in x)
    assert where in line and "hint:" in line and hint in line, line


def test_rules_unknown_role_lists_the_known_roles(runner: CliRunner, tmp_path: Path) -> None:
    """An unknown role in a definition is reported with the roles that exist, as at run time."""
    text = PLAIN.replace("roles: [coordinator]", "roles: [auditor]", 1)
    result = _cli(runner, "workflow", "validate", str(_file(tmp_path, text)))
    assert result.exit_code == 2
    assert "unknown role 'auditor' (roles: agreement-admin," in result.stderr


def test_rules_stored_version_with_duplicate_keys_still_loads(
    runner: CliRunner, db_path: Path
) -> None:
    """A version stored before duplicate keys were refused keeps loading after the upgrade
    (last one wins, as it did), so its tracks are not stranded."""
    text = PLAIN.replace("title: Enkel\n", "title: Enkel\ntitle: Port igen\n")
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO definitions (name, version, source, registered_at)"
            " VALUES ('plain', 1, ?, '2021-01-01T00:00:00Z')",
            [text],
        )
    conn.close()
    shown = ok_json(runner, db_path, "workflow", "show", "plain")
    assert shown["title"] == "Port igen"


def test_rules_shipped_definitions_keep_their_sources_and_guards() -> None:
    """The shipped definitions build as before: explicit sources unchanged, guards as written."""
    for path in shipped_files().values():
        text = path.read_text(encoding="utf-8")
        assert validate_text(text, str(path), definitions.known()) == []
    conn_def = load_text(
        shipped_files()["connection"].read_text(encoding="utf-8"),
        "connection",
        definitions.known(),
    )
    guard = next(g for g in conn_def.transitions[1].guards if g.name == "requires_track")
    assert dict(guard.params) == {
        "definition": "system-readiness",
        "states": ["ready"],
        "except_field": "pilot_municipality",
        "reason": "system {system} is not yet ready for rollout",
    }
    assert json.dumps(conn_def.to_dict())  # still serialisable for workflow show --json


def test_rules_stored_date_guard_on_a_text_field_refuses_instead_of_dying(
    runner: CliRunner, db_path: Path
) -> None:
    """A version stored before the validator checked guard types (date_passed on a text
    field) no longer kills track show and advance with a traceback: the step is refused."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO definitions (name, version, source, registered_at)"
            " VALUES ('plain', 1, ?, '2021-01-01T00:00:00Z')",
            [PLAIN.replace("date: due_on", "date: note")],
        )
    conn.close()
    tid = _start(runner, db_path, "plain", "2021-03-01T09:00")
    ok(runner, db_path, "track", "set", tid, "note=ikke en dato", "--at", "2021-03-02T09:00")
    ok(runner, db_path, "track", "show", tid)
    refused = _advance(runner, db_path, tid, "go", "2021-03-03T09:00")
    assert refused.exit_code == 2, refused.output
    assert "“Note” ('ikke en dato') is not a date" in refused.stderr
