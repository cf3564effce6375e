"""The workflow definition validator (workflows.loader), the shipped definitions and mermaid()."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from onboarding import outbox
from onboarding.roles import ROLES
from workflows.diagram import mermaid
from workflows.errors import DefinitionInvalid
from workflows.loader import GuardSignature, Known, load_text, shipped_files, validate_text
from workflows.model import Definition

ROOT = Path(__file__).resolve().parent.parent
CUSTOM = ROOT / "tests" / "data" / "custom-definition.yaml"

KNOWN = Known(
    templates=outbox.template_names(),
    check_notifications=outbox.check_notifications,
    roles=frozenset(ROLES),
    guards={
        "includes_bob": GuardSignature(doc="the connection includes BoB display"),
        "requires_track": GuardSignature(
            required=frozenset({"definition", "states"}),
            optional=frozenset({"except_field", "reason"}),
            doc="the related track is in one of the states",
        ),
        "date_passed": GuardSignature(
            required=frozenset({"date"}), doc="the transition's date is after the date"
        ),
    },
)

#: A small valid definition; each test changes one thing in a copy of it.
BASE: dict[str, Any] = {
    "name": "probe",
    "version": 1,
    "title": "Probe",
    "subject": "municipality-klik",
    "initial": "open",
    "fields": {
        "deadline": {"type": "date", "label": "Frist"},
        "reason": {"type": "text", "label": "Begrundelse"},
    },
    "states": [
        {"name": "open", "label": "Åben", "role": "municipality-pl", "due": {"after_entry": 5}},
        {"name": "doing", "label": "I gang", "due": {"date": "deadline", "offset": -2}},
        {"name": "done", "label": "Færdig", "final": True},
        {"name": "dropped", "label": "Opgivet", "final": True},
    ],
    "transitions": [
        {
            "trigger": "begin",
            "source": "open",
            "dest": "doing",
            "roles": ["municipality-pl"],
            "requires": ["deadline"],
        },
        {"trigger": "finish", "source": "doing", "dest": "done", "roles": ["coordinator"]},
        {
            "trigger": "drop",
            "source": ["open", "doing"],
            "dest": "dropped",
            "roles": ["coordinator"],
            "requires": ["reason"],
        },
    ],
}


def _base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def _problems(data: dict[str, Any]) -> list[str]:
    return validate_text(yaml.safe_dump(data, allow_unicode=True), "probe.yaml", KNOWN)


def _one(problems: list[str], path: str, words: str) -> None:
    """Exactly one problem starts with ``path: `` and it contains ``words``."""
    hits = [p for p in problems if p.startswith(f"{path}: ")]
    assert len(hits) == 1, problems
    assert words in hits[0], problems


def _states(data: dict[str, Any]) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = data["states"]
    return states


def _transitions(data: dict[str, Any]) -> list[dict[str, Any]]:
    transitions: list[dict[str, Any]] = data["transitions"]
    return transitions


# --- the base ---------------------------------------------------------------------------------


def test_validate_base_definition_has_no_problems() -> None:
    """The probe definition the other tests change is itself valid."""
    assert _problems(_base()) == []


# --- states and the graph ---------------------------------------------------------------------


def test_validate_unknown_source_state_names_transition() -> None:
    """A transition leaving from an undeclared state is reported at its source."""
    data = _base()
    _transitions(data)[1]["source"] = ["doing", "nowhere"]
    _one(_problems(data), "transitions[1] (finish).source", "unknown state 'nowhere'")


def test_validate_unknown_dest_state_names_transition() -> None:
    """A transition going to an undeclared state is reported at its dest."""
    data = _base()
    _transitions(data)[1]["dest"] = "finished"
    _one(_problems(data), "transitions[1] (finish).dest", "unknown state 'finished'")


@pytest.mark.parametrize(
    ("where", "path", "words"),
    [
        ("dest", "transitions[1] (finish).dest", "unknown state ['done']"),
        ("source", "transitions[1] (finish).source", "unknown state ['doing']"),
        ("role", "states[0] (open).role", "unknown role ['municipality-pl']"),
        ("initial", "initial", "unknown state ['open']"),
        ("subject", "subject", "must be one of"),
        ("type", "fields.deadline.type", "must be one of"),
    ],
)
def test_validate_list_in_place_of_name_is_reported(where: str, path: str, words: str) -> None:
    """A list where one name belongs is a reported problem, not a crash."""
    data = _base()
    if where == "dest":
        _transitions(data)[1]["dest"] = ["done"]
    elif where == "source":
        _transitions(data)[1]["source"] = [["doing"]]
    elif where == "role":
        _states(data)[0]["role"] = ["municipality-pl"]
    elif where == "type":
        data["fields"]["deadline"]["type"] = ["date"]
    else:
        data[where] = [data[where]]
    _one(_problems(data), path, words)


def test_validate_unreachable_state_names_state() -> None:
    """A state no transition leads to from the initial state is reported."""
    data = _base()
    _states(data).append({"name": "limbo", "label": "Limbo", "final": True})
    _one(_problems(data), "states[4] (limbo)", "unreachable from the initial state 'open'")


def test_validate_non_final_dead_end_names_state() -> None:
    """A state that is not final and has no way out is reported as a dead end."""
    data = _base()
    _states(data)[2]["final"] = False
    _one(_problems(data), "states[2] (done)", "dead end")


def test_validate_self_loop_only_is_a_dead_end() -> None:
    """A non-final state whose only transition loops back to itself is a dead end."""
    data = _base()
    _states(data)[2]["final"] = False
    _transitions(data).append(
        {"trigger": "again", "source": "done", "dest": "done", "roles": ["coordinator"]}
    )
    _one(_problems(data), "states[2] (done)", "dead end")


def test_validate_no_final_state_is_reported() -> None:
    """A definition without any final state is reported under states."""
    data = _base()
    for s in _states(data):
        s.pop("final", None)
    assert any(p.startswith("states: no final state") for p in _problems(data))


def test_validate_missing_initial_is_reported() -> None:
    """A definition without an initial state is reported at initial."""
    data = _base()
    del data["initial"]
    _one(_problems(data), "initial", "missing initial state")


def test_validate_unknown_initial_is_reported() -> None:
    """An initial state that is not declared is reported at initial."""
    data = _base()
    data["initial"] = "start"
    _one(_problems(data), "initial", "unknown state 'start'")


# --- triggers ---------------------------------------------------------------------------------


def test_validate_same_trigger_twice_from_one_source_names_both() -> None:
    """The same trigger declared twice from one state, unguarded, is reported with both paths."""
    data = _base()
    _transitions(data).append(
        {"trigger": "finish", "source": "doing", "dest": "dropped", "roles": ["coordinator"]}
    )
    _one(
        _problems(data),
        "transitions[1] (finish), transitions[3] (finish)",
        "trigger 'finish' is declared more than once from state 'doing'",
    )


def test_validate_same_trigger_twice_with_guards_and_unless_passes() -> None:
    """The same guard once under guards and once under unless makes the pair valid."""
    data = _base()
    _transitions(data)[1]["guards"] = ["includes_bob"]
    _transitions(data).append(
        {
            "trigger": "finish",
            "source": "doing",
            "dest": "dropped",
            "roles": ["coordinator"],
            "unless": ["includes_bob"],
        }
    )
    assert _problems(data) == []


def test_validate_same_trigger_twice_with_different_guard_params_is_reported() -> None:
    """A guard/unless pair only exempts when the guard's parameters are the same."""
    data = _base()
    _transitions(data)[1]["guards"] = [{"name": "date_passed", "date": "deadline"}]
    _transitions(data).append(
        {
            "trigger": "finish",
            "source": "doing",
            "dest": "dropped",
            "roles": ["coordinator"],
            "unless": [{"name": "date_passed", "date": "klik_task.end_date"}],
        }
    )
    _one(
        _problems(data),
        "transitions[1] (finish), transitions[3] (finish)",
        "declared more than once",
    )


def test_validate_same_trigger_from_different_sources_passes() -> None:
    """One trigger name may leave from several states without guards."""
    data = _base()
    _transitions(data).append(
        {"trigger": "begin", "source": "doing", "dest": "doing", "roles": ["coordinator"]}
    )
    assert _problems(data) == []


# --- roles ------------------------------------------------------------------------------------


def test_validate_unknown_role_on_state_is_reported() -> None:
    """A state's role that the engine does not define is reported at the state's role."""
    data = _base()
    _states(data)[0]["role"] = "dpo"
    _one(_problems(data), "states[0] (open).role", "unknown role 'dpo'")


def test_validate_unknown_role_on_transition_is_reported() -> None:
    """A transition role that the engine does not define is reported at its roles."""
    data = _base()
    _transitions(data)[0]["roles"] = ["municipality-pl", "mayor"]
    _one(_problems(data), "transitions[0] (begin).roles", "unknown role 'mayor'")


def test_validate_transition_without_roles_is_reported() -> None:
    """A transition nobody may fire is reported at its roles."""
    data = _base()
    del _transitions(data)[0]["roles"]
    _one(_problems(data), "transitions[0] (begin).roles", "required")


# --- guards -----------------------------------------------------------------------------------


def test_validate_unknown_guard_is_reported() -> None:
    """A guard the engine does not define is reported at its position in the list."""
    data = _base()
    _transitions(data)[1]["guards"] = ["includes_bob", "full_moon"]
    _one(_problems(data), "transitions[1] (finish).guards[1]", "unknown guard 'full_moon'")


def test_validate_unknown_guard_under_unless_is_reported() -> None:
    """Guards under unless are checked like those under guards."""
    data = _base()
    _transitions(data)[1]["unless"] = ["full_moon"]
    _one(_problems(data), "transitions[1] (finish).unless[0]", "unknown guard 'full_moon'")


def test_validate_guard_missing_param_is_reported() -> None:
    """A guard without one of its required parameters is reported with the parameter."""
    data = _base()
    _transitions(data)[1]["guards"] = [{"name": "requires_track", "definition": "connection"}]
    _one(
        _problems(data),
        "transitions[1] (finish).guards[0]",
        "guard 'requires_track' needs parameter 'states'",
    )


def test_validate_guard_extra_param_is_reported() -> None:
    """A parameter a guard does not take is reported with the parameter."""
    data = _base()
    _transitions(data)[1]["guards"] = [{"name": "includes_bob", "strict": True}]
    _one(
        _problems(data),
        "transitions[1] (finish).guards[0]",
        "guard 'includes_bob' has no parameter 'strict'",
    )


def test_validate_guard_optional_params_pass() -> None:
    """A guard with its required and optional parameters is valid."""
    data = _base()
    _transitions(data)[1]["guards"] = [
        {
            "name": "requires_track",
            "definition": "system-readiness",
            "states": ["ready"],
            "except_field": "pilot_municipality",
            "reason": "system {system} is not ready",
        }
    ]
    assert _problems(data) == []


def test_validate_malformed_guard_entry_is_reported() -> None:
    """A guard written as neither a name nor a mapping with name is reported."""
    data = _base()
    _transitions(data)[1]["guards"] = [{"date": "deadline"}]
    _one(_problems(data), "transitions[1] (finish).guards[0]", "a guard is a name or")


# --- due rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "path", "words"),
    [
        ({"after_entry": 5, "date": "deadline"}, "states[1] (doing).due", "exactly one"),
        ({}, "states[1] (doing).due", "exactly one"),
        ({"after_entry": -1}, "states[1] (doing).due.after_entry", "0 or more"),
        ({"after_entry": "soon"}, "states[1] (doing).due.after_entry", "whole number"),
        ({"date": "wave.go_live"}, "states[1] (doing).due.date", "'wave.go_live' is not a date"),
        ({"date": "reason"}, "states[1] (doing).due.date", "'reason' is not a date"),
        ({"after_entry": 5, "offset": 2}, "states[1] (doing).due.offset", "goes with date"),
        ({"date": "deadline", "offset": "late"}, "states[1] (doing).due.offset", "whole number"),
        ({"date": "deadline", "within": 3}, "states[1] (doing).due.within", "unknown key"),
        (10, "states[1] (doing).due", "must be {after_entry: N}"),
    ],
)
def test_validate_malformed_due_rule_names_path(due: Any, path: str, words: str) -> None:
    """Each malformed due rule is reported at the due rule or its key."""
    data = _base()
    _states(data)[1]["due"] = due
    _one(_problems(data), path, words)


@pytest.mark.parametrize(
    "due",
    [
        {"after_entry": 0},
        {"date": "deadline"},
        {"date": "deadline", "offset": -10},
        {"date": "klik_task.end_date"},
    ],
)
def test_validate_well_formed_due_rule_passes(due: dict[str, Any]) -> None:
    """Entry-relative, date-field and subject-reference due rules are valid."""
    data = _base()
    _states(data)[1]["due"] = due
    assert _problems(data) == []


# --- unknown keys -----------------------------------------------------------------------------


def test_validate_unknown_top_level_key_is_reported() -> None:
    """A top-level key the format does not have is reported by its name."""
    data = _base()
    data["colour"] = "blue"
    _one(_problems(data), "colour", "unknown key")


def test_validate_unknown_state_key_is_reported() -> None:
    """A state key the format does not have is reported under the state."""
    data = _base()
    _states(data)[0]["colour"] = "blue"
    _one(_problems(data), "states[0] (open).colour", "unknown key")


def test_validate_unknown_transition_key_is_reported() -> None:
    """A transition key the format does not have is reported under the transition."""
    data = _base()
    _transitions(data)[0]["target"] = "doing"
    _one(_problems(data), "transitions[0] (begin).target", "unknown key")


def test_validate_unknown_field_in_requires_is_reported() -> None:
    """A transition requiring an undeclared field is reported at requires."""
    data = _base()
    _transitions(data)[0]["requires"] = ["deadline", "budget"]
    _one(_problems(data), "transitions[0] (begin).requires", "unknown field 'budget'")


def test_validate_missing_bucket_when_buckets_declared_is_reported() -> None:
    """With buckets declared, a state without one is reported at its bucket."""
    data = _base()
    data["buckets"] = ["Åben", "Lukket"]
    for s in _states(data):
        s["bucket"] = "Lukket" if s.get("final") else "Åben"
    del _states(data)[1]["bucket"]
    _one(_problems(data), "states[1] (doing).bucket", "required when buckets are declared")


# --- YAML and reporting -----------------------------------------------------------------------


def test_validate_yaml_syntax_error_reports_line() -> None:
    """A YAML syntax error is one problem that gives its line."""
    text = "name: probe\nversion: 1\nstates:\n  - name: a\n   label: A\n"
    problems = validate_text(text, "bad.yaml", KNOWN)
    assert len(problems) == 1
    assert re.match(r"line 5, column \d+: YAML syntax", problems[0]), problems


def test_validate_not_a_mapping_is_reported() -> None:
    """A file that is not a mapping gets one problem saying what a definition is."""
    assert validate_text("- a\n- b\n", "list.yaml", KNOWN) == [
        "a definition must be a mapping with name, version, states, transitions"
    ]


def test_validate_reports_all_problems_at_once() -> None:
    """Five distinct problems in one file are all reported in one run."""
    data = _base()
    data["colour"] = "blue"
    _states(data)[0]["role"] = "dpo"
    _states(data)[1]["due"] = {"after_entry": -3}
    _transitions(data)[1]["dest"] = "finished"
    _transitions(data)[2]["guards"] = ["full_moon"]
    problems = _problems(data)
    assert len(problems) >= 5, problems
    for path in (
        "colour",
        "states[0] (open).role",
        "states[1] (doing).due.after_entry",
        "transitions[1] (finish).dest",
        "transitions[2] (drop).guards[0]",
    ):
        assert any(p.startswith(f"{path}: ") for p in problems), (path, problems)


def test_load_text_raises_with_every_problem() -> None:
    """load_text refuses an invalid definition and its error lists every problem."""
    data = _base()
    data["colour"] = "blue"
    _states(data)[0]["role"] = "dpo"
    with pytest.raises(DefinitionInvalid) as info:
        load_text(yaml.safe_dump(data), "probe.yaml", KNOWN)
    assert len(info.value.problems) == 2
    assert "probe.yaml: colour: unknown key" in str(info.value)


def test_load_text_builds_definition() -> None:
    """load_text turns a valid definition into a Definition with its states and transitions."""
    defn = load_text(yaml.safe_dump(_base(), allow_unicode=True), "probe.yaml", KNOWN)
    assert [s.name for s in defn.states] == ["open", "doing", "done", "dropped"]
    assert defn.final_states() == ["done", "dropped"]
    assert [t.trigger for t in defn.candidates("doing", "drop")] == ["drop"]
    due = defn.state("doing").due
    assert due is not None
    assert due.describe() == "deadline - 2 working days"


# --- shipped and documented definitions ------------------------------------------------------


def _load(path: Path) -> Definition:
    return load_text(path.read_text(encoding="utf-8"), str(path), KNOWN)


def test_shipped_definitions_are_the_five_expected() -> None:
    """The package ships the five definitions the engine relies on."""
    assert set(shipped_files()) == {
        "connection",
        "system-readiness",
        "onboarding-course",
        "klik-task",
        "rollout-wave",
    }


@pytest.mark.parametrize("stem", sorted(shipped_files()))
def test_shipped_definition_validates_without_problems(stem: str) -> None:
    """Each shipped definition has no problems and its name matches its file."""
    path = shipped_files()[stem]
    assert validate_text(path.read_text(encoding="utf-8"), str(path), KNOWN) == []
    assert _load(path).name == stem


@pytest.mark.parametrize("stem", sorted(shipped_files()))
def test_mermaid_of_shipped_definition_mentions_every_state(stem: str) -> None:
    """The diagram of each shipped definition names every one of its states."""
    defn = _load(shipped_files()[stem])
    text = mermaid(defn)
    assert text.startswith("stateDiagram-v2\n")
    assert f"[*] --> {defn.initial}" in text
    for state in defn.states:
        assert re.search(rf"\b{re.escape(state.name)}\b", text), state.name
    for final in defn.final_states():
        assert f"{final} --> [*]" in text


def test_custom_definition_validates_without_problems() -> None:
    """The documented example definition is valid."""
    assert validate_text(CUSTOM.read_text(encoding="utf-8"), str(CUSTOM), KNOWN) == []
    assert _load(CUSTOM).name == "dpo-approval"


def test_docs_worked_example_is_the_custom_definition_file() -> None:
    """docs/workflows.md shows exactly the YAML of tests/data/custom-definition.yaml."""
    doc = (ROOT / "docs" / "workflows.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert CUSTOM.read_text(encoding="utf-8") in blocks


# --- mermaid ----------------------------------------------------------------------------------


def test_mermaid_lists_edges_once_in_declared_order() -> None:
    """Edges follow declaration order, one line per (source, dest, trigger and guards): the
    same trigger to the same state under opposite guards is two edges told apart."""
    data = _base()
    _transitions(data)[2]["guards"] = ["includes_bob"]
    _transitions(data).append(dict(_transitions(data)[2], guards=[], unless=["includes_bob"]))
    defn = load_text(yaml.safe_dump(data, allow_unicode=True), "probe.yaml", KNOWN)
    edges = [line.strip() for line in mermaid(defn).splitlines() if ": " in line]
    assert edges == [
        "open --> doing: begin",
        "doing --> done: finish",
        "open --> dropped: drop [includes_bob]",
        "doing --> dropped: drop [includes_bob]",
        "open --> dropped: drop [not includes_bob]",
        "doing --> dropped: drop [not includes_bob]",
    ]
    assert mermaid(defn) == mermaid(defn)


def test_mermaid_escapes_quotes_in_labels() -> None:
    """A double quote in a state label cannot end the Mermaid string."""
    data = _base()
    _states(data)[0]["label"] = 'Åben "ny"'
    defn = load_text(yaml.safe_dump(data, allow_unicode=True), "probe.yaml", KNOWN)
    assert '    state "Åben #quot;ny#quot;" as open' in mermaid(defn).splitlines()


def test_mermaid_replaces_dash_in_state_ids() -> None:
    """State names with '-' get Mermaid-safe ids that do not clash with other states."""
    data = _base()
    data["initial"] = "to-do"
    _states(data)[0]["name"] = "to-do"
    _states(data)[1]["name"] = "to_do"
    for t in _transitions(data):
        t["source"] = [
            {"open": "to-do", "doing": "to_do"}.get(s, s)
            for s in ([t["source"]] if isinstance(t["source"], str) else t["source"])
        ]
        t["dest"] = {"doing": "to_do"}.get(t["dest"], t["dest"])
    defn = load_text(yaml.safe_dump(data, allow_unicode=True), "probe.yaml", KNOWN)
    text = mermaid(defn)
    assert "to-do" not in text
    assert 'state "Åben" as to_do_2' in text
    assert "[*] --> to_do_2" in text
    assert "to_do_2 --> to_do: begin" in text
