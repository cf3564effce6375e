"""The shortcuts the benchmarks added (bench/RESULTS.md) answer exactly as the long way does."""

from __future__ import annotations

import pytest
import yaml
from sqlite_utils import Database

from onboarding import definitions, outbox, registry
from onboarding.errors import Ambiguous, NotFound
from workflows import loader


def test_resolve_system_exact_names_and_the_general_path(db: Database) -> None:
    """An exact name (any case), "vendor name" and "vendor - name" are found by the SQL path;
    a prefix, a non-ASCII name and an ambiguous name behave as before."""
    momentum = registry.resolve_system(db, "Momentum")
    assert momentum["label"] == "KMD Momentum"
    for text in ("momentum", " KMD MOMENTUM ", "kmd - momentum", "Momen"):
        assert registry.resolve_system(db, text)["id"] == momentum["id"]
    vendor = db.execute("INSERT INTO vendors (name) VALUES ('Ærø Data')").lastrowid
    db.execute(
        "INSERT INTO systems (vendor_id, name, category) VALUES (?, 'Momentum', 'Jobcenter')",
        [vendor],
    )
    with pytest.raises(Ambiguous):
        registry.resolve_system(db, "momentum")  # two systems named Momentum now
    assert registry.resolve_system(db, "kmd momentum")["id"] == momentum["id"]
    assert registry.resolve_system(db, "ærø data momentum")["vendor"] == "Ærø Data"
    with pytest.raises(NotFound):
        registry.resolve_system(db, "No Such System")


def test_fast_yaml_loader_reads_what_the_pure_loader_reads() -> None:
    """libyaml (when present) gives the same documents; a syntax error is still located."""
    for path in sorted(loader.shipped_dir().glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert loader.parse_yaml(text, str(path)) == (yaml.safe_load(text), [])
    data, problems = loader.parse_yaml("name: x\nstates: [a, b\n", "bad.yaml")
    assert data is None
    assert problems and problems[0].startswith("line ")


def test_definitions_are_parsed_once_per_text(db: Database) -> None:
    first = definitions.get(db, "connection")
    assert definitions.get(db, "connection", first.version) is first


def test_state_rules_are_cached_per_definition(db: Database) -> None:
    defn = definitions.get(db, "connection")
    rules = outbox.state_rules(defn, "sapa_request")
    assert rules == outbox.rules(defn.state("sapa_request"))
    assert outbox.state_rules(defn, "sapa_request") is rules
    assert outbox.state_rules(defn, "no_such_state") == ()
