"""Start-up (issue 14): what a command imports, and definitions stored pre-parsed.

The import-list tests run the real command in a fresh process with ``python -X importtime``
and assert on the list of modules it imported, never on time (time is for ``make bench``).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from onboarding import definitions
from onboarding.db import connect, current_schema_version, initialise, migrations, open_existing
from tests.support import ok, run
from workflows import loader, roles
from workflows.loader import document_json, load_document

ROOT = Path(__file__).resolve().parent.parent
NOW = "2021-03-01T10:00"
#: What no advance or show may import: sqlite-utils (migrations and registry imports only),
#: PyYAML (definitions are read pre-parsed), Jinja2 (mail rendering only).
FORBIDDEN = ("sqlite_utils", "yaml", "jinja2")
_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")


def imported(
    *args: str, db_path: Path, entry_point: bool = False, actor: str | None = "tester"
) -> list[str]:
    """The modules ``onboarding ARGS`` imports, read from ``-X importtime`` (the command must
    succeed); ``actor`` is ``$ONBOARDING_ACTOR`` (None: unset)."""
    head = [str(Path(sys.executable).parent / "onboarding")] if entry_point else ["-m", "cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(ONBOARDING_NOW=NOW)
    if actor is not None:
        env.update(ONBOARDING_ACTOR=actor)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *head, *args, "--db", str(db_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [m.group(1) for line in proc.stderr.splitlines() if (m := _IMPORTED.match(line))]


#: The parts of the engine, outbox and definition loader packages an advance does not use
#: (workflows.lazy): starting, bulk and amending tracks; claiming, listing and describing
#: mail; validating a definition (a stored version is built pre-parsed).
NOT_ADVANCING = (
    "onboarding.engine.bulk",
    "onboarding.engine.starting",
    "onboarding.engine.amending",
    "onboarding.outbox.claims",
    "onboarding.outbox.listing",
    "onboarding.outbox.message",
    "workflows.loader.loading",
    "workflows.loader.states",
)


def forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in FORBIDDEN]


@pytest.fixture
def started(db_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database with one connection track, ready for 'agree_date'."""
    monkeypatch.setenv("ONBOARDING_NOW", NOW)
    ok(runner, db_path, "track", "start", "connection", "--municipality", "Aarhus", "--system",
       "Momentum")
    return db_path


@pytest.mark.parametrize("entry_point", [False, True], ids=["python -m cli", "onboarding"])
def test_startup_advance_imports_no_sqlite_utils_yaml_or_jinja2(
    started: Path, entry_point: bool
) -> None:
    """'onboarding track advance' moves the track without importing sqlite_utils, yaml or
    jinja2."""
    modules = imported(
        "track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
        "--role", "municipality-pl", db_path=started, entry_point=entry_point,
    )
    assert "onboarding.engine.writing" in modules  # the list is real: the advance ran
    assert forbidden(modules) == []
    assert [m for m in modules if m in NOT_ADVANCING] == []
    with sqlite3.connect(started) as conn:
        assert conn.execute("SELECT state FROM tracks WHERE id = 1").fetchone()[0] != (
            "date_agreement"
        )


def test_startup_show_json_imports_no_sqlite_utils_yaml_or_jinja2(started: Path) -> None:
    """'onboarding track show --json' imports neither sqlite_utils, yaml nor jinja2."""
    modules = imported("track", "show", "1", "--json", db_path=started)
    assert "onboarding.tracks" in modules
    assert forbidden(modules) == []


#: What neither an advance nor a show imports since the fast path (onboarding.commands.fast):
#: click (the command line is parsed from the same spec without it), Babel (dates are written
#: from the language's pattern), OpenSSL's hashlib (workflows.digest hashes what is hashed).
LEAN = ("click", "babel", "hashlib", "_hashlib")


@pytest.mark.parametrize("entry_point", [False, True], ids=["python -m cli", "onboarding"])
@pytest.mark.parametrize(
    "args",
    [
        ("track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
         "--role", "municipality-pl"),
        ("track", "show", "1", "--json"),
        ("track", "show", "1"),
    ],
    ids=["advance", "show --json", "show"],
)
def test_startup_advance_and_show_import_no_click_babel_or_hashlib(
    started: Path, entry_point: bool, args: tuple[str, ...]
) -> None:
    """'track advance' and 'track show' import neither click, Babel nor hashlib."""
    modules = imported(*args, db_path=started, entry_point=entry_point)
    assert "onboarding.tracks" in modules or "onboarding.engine" in modules
    assert [m for m in modules if m.split(".")[0] in LEAN] == []


#: What a plain advance or show on a database without actors does not need: who may read
#: (visibility), actors and their grants, the registry and its CSV readers.
RARE = ("onboarding.visibility", "onboarding.actors", "onboarding.registry", "onboarding.csvio")


@pytest.mark.parametrize("actor", [None, "tester"], ids=["no actor", "$ONBOARDING_ACTOR"])
def test_startup_show_json_on_open_database_imports_no_visibility_actors_or_registry(
    started: Path, actor: str | None
) -> None:
    """'track show --json' on a database without actors (with or without a reader named)
    imports neither onboarding.visibility, onboarding.actors nor onboarding.registry."""
    modules = imported("track", "show", "1", "--json", db_path=started, actor=actor)
    assert "onboarding.tracks" in modules
    assert [m for m in modules if m in RARE] == []


def test_startup_advance_on_open_database_imports_no_actors_or_visibility(started: Path) -> None:
    """'track advance' on a database without actors checks that with one SELECT and imports
    neither onboarding.actors, onboarding.visibility nor onboarding.registry."""
    modules = imported(
        "track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
        "--role", "municipality-pl", db_path=started,
    )
    assert "onboarding.engine" in modules
    assert [m for m in modules if m in RARE] == []


def test_startup_advance_and_show_build_no_dataclasses(started: Path) -> None:
    """The records on the advance and show paths are workflows.record records: no class on
    them is built by dataclasses (which compiles methods at import)."""
    for args in (
        ("track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
         "--role", "municipality-pl"),
        ("track", "show", "1", "--json"),
    ):
        assert "dataclasses" not in imported(*args, db_path=started), args


def test_startup_actors_still_checked_where_actors_exist(
    started: Path, runner: CliRunner
) -> None:
    """Once an actor exists, a reader outside its scope is still refused (the open-database
    shortcut does not skip the check)."""
    ok(runner, started, "actor", "add", "kombit")
    ok(runner, started, "actor", "grant", "kombit", "coordinator", actor="kombit")
    ok(runner, started, "actor", "add", "vejle-pl", actor="kombit")
    ok(runner, started, "actor", "grant", "vejle-pl", "municipality-pl", "--municipality",
       "Vejle", actor="kombit")
    result = run(runner, started, "track", "show", "1", "--json", actor="vejle-pl")
    assert result.exit_code == 2 and "unknown track" in result.stderr
    modules = imported("track", "show", "1", "--json", db_path=started, actor="kombit")
    assert "onboarding.visibility" in modules


def test_startup_advance_builds_no_transitions_machine(started: Path) -> None:
    """An advance does not import the transitions library (which triggers leave a state is
    read from the definition's transitions)."""
    modules = imported(
        "track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
        "--role", "municipality-pl", db_path=started,
    )
    assert [m for m in modules if m.split(".")[0] == "transitions"] == []


def _shipped_texts() -> list[tuple[str, str]]:
    paths = [*loader.shipped_files().values(), ROOT / "docs" / "examples" / "agency-test.yaml"]
    return [(p.read_text(encoding="utf-8"), str(p)) for p in paths]


def test_definitions_document_builds_the_definition_the_yaml_builds() -> None:
    """A definition built from its stored JSON document equals the one built from its YAML,
    for every shipped definition and the documented example."""
    for text, source in _shipped_texts():
        from_yaml = definitions.parse(text, source, frozenset({"test-access"}))
        document = document_json(text, source)
        assert document is not None, source
        assert load_document(document, text) == from_yaml, source


def test_definitions_document_keeps_yaml_dates() -> None:
    """A date in a definition (YAML has dates, JSON has none) comes back a date."""
    text = "name: x\nextra: {day: 2021-09-01, at: 2021-09-01 10:00:00}\n"
    data, _ = loader.parse_yaml(text, "x")
    document = document_json(text, "x")
    assert document is not None
    import json

    assert json.loads(document, object_hook=loader._decode) == data


def test_definitions_triggers_are_the_machines(db_path: Path) -> None:
    """The triggers leaving each state, read from the transitions, are exactly (and in the
    order) what the transitions machine answers, for every stored definition."""
    db = open_existing(db_path)
    try:
        for defn in definitions.stored(db):
            for state in defn.states:
                assert defn.triggers_from(state.name) == defn.machine.get_triggers(state.name)
    finally:
        db.close()


def test_definitions_second_read_selects_only_the_digest(db_path: Path) -> None:
    """A version built once in this process is found again by one small read (its digest),
    never by reading its text or document again."""
    db = open_existing(db_path)
    try:
        first = definitions.get(db, "connection", 1)
        seen: list[str] = []
        db.conn.set_trace_callback(seen.append)
        assert definitions.get(db, "connection", 1) is first
        db.conn.set_trace_callback(None)
        assert len(seen) == 1 and "SELECT digest FROM definitions" in seen[0]
    finally:
        db.close()


def test_definitions_row_without_document_reads_its_yaml(db_path: Path) -> None:
    """A version stored without a document (written by hand, say) is still read, from its
    YAML."""
    text = (ROOT / "workflows" / "definitions" / "connection.yaml").read_text(encoding="utf-8")
    text = text.replace("version: 1", "version: 7", 1)
    db = open_existing(db_path)
    try:
        db.execute(
            "INSERT INTO definitions (name, version, source, registered_at)"
            " VALUES ('connection', 7, ?, '2021-01-01T00:00:00Z')",
            [text],
        )
        defn = definitions.get(db, "connection", 7)
        assert defn.version == 7 and defn.source == text
    finally:
        db.close()


def test_migration_010_fills_documents_of_existing_versions(tmp_path: Path) -> None:
    """Upgrading a database of the previous schema gives every stored version its document
    and digest, and each builds the same definition as its YAML; nothing else changes."""
    path = tmp_path / "old.db"
    db = connect(path)
    try:
        migrations.apply(db, stop_before="010_parsed_definitions")
        for file in loader.shipped_files().values():  # as the previous version's init did
            text = file.read_text(encoding="utf-8")
            defn = definitions.parse(text, str(file))
            db.execute(
                "INSERT INTO definitions (name, version, source, registered_at)"
                " VALUES (?, ?, ?, '2021-01-01T00:00:00Z')",
                [defn.name, defn.version, text],
            )
        before = db.execute("SELECT name, version, source FROM definitions").fetchall()
        assert "document" not in [r[1] for r in db.execute("PRAGMA table_info(definitions)")]
    finally:
        db.close()
    db = connect(path)
    try:
        # 010 first; migrations registered after it (008_sessions, issue 13) follow.
        assert initialise(db)[0] == "010_parsed_definitions"
        assert current_schema_version() == int(db.execute("PRAGMA user_version").fetchone()[0])
        rows = db.execute("SELECT name, version, source, document, digest FROM definitions")
        after = rows.fetchall()
        assert [r[:3] for r in after] == before
        for name, _version, text, document, digest in after:
            assert document is not None and len(digest) == 64
            assert load_document(document, text) == definitions.parse(text, f"{name}")
    finally:
        db.close()


def test_roles_json_twin_matches_roles_yaml() -> None:
    """workflows/roles.json is written from the current roles.yaml (else: run
    'python -m workflows.roles'), and the roles read from it equal the YAML's."""
    import json

    import yaml

    text = roles.roles_file().read_text(encoding="utf-8")
    twin = json.loads(roles.roles_twin().read_text(encoding="utf-8"))
    assert twin["yaml_sha256"] == roles._digest(text), "run 'python -m workflows.roles'"
    assert twin["document"] == yaml.safe_load(text)
    assert roles._document(text) == yaml.safe_load(text)


def test_roles_edited_yaml_counts_without_the_twin() -> None:
    """A roles file that no longer matches its twin is read from the YAML itself."""
    import yaml

    text = roles.roles_file().read_text(encoding="utf-8") + "\n# edited\n"
    assert roles._document(text) == yaml.safe_load(text)


def test_definitions_document_json_refuses_what_json_cannot_carry() -> None:
    """A document JSON would change (YAML's 'on:' key is the boolean true) is not stored: that
    version is read from its YAML instead."""
    assert document_json("name: x\nextra: {on: 1}\n", "x") is None


@pytest.mark.parametrize("click_only", [False, True], ids=["fast path", "click"])
def test_startup_help_imports_no_shutil(click_only: bool) -> None:
    """'onboarding --help' fits its text to the terminal without importing shutil (and its
    compression modules), printed by the fast path without click, and by click (the path
    every other help takes) without shutil either."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    if click_only:
        env["ONBOARDING_CLICK_ONLY"] = "1"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli", "--help"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = [m.group(1) for line in proc.stderr.splitlines() if (m := _IMPORTED.match(line))]
    assert ("click.core" in modules) is click_only
    assert [m for m in modules if m in ("shutil", "bz2", "lzma")] == []


@pytest.mark.parametrize("columns", [None, "30", "60", "100", "200", "junk"])
def test_startup_help_width_is_clicks(monkeypatch: pytest.MonkeyPatch, columns: str | None) -> None:
    """The help formatter is exactly as wide as click's own would be, for any $COLUMNS."""
    import click

    from onboarding.commands.common import _Formatter

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    for max_width in (None, 60, 120):
        assert _Formatter(max_width=max_width).width == click.HelpFormatter(
            max_width=max_width
        ).width


def test_startup_called_with_arguments_freezes_nothing(started: Path, runner: CliRunner) -> None:
    """Only a run of the program freezes its objects for the collector at exit: a caller
    passing arguments (click's test runner, a script) keeps a normally collected process."""
    import gc

    before = gc.get_freeze_count()
    ok(runner, started, "track", "show", "1", "--json")
    assert gc.get_freeze_count() == before


@pytest.mark.parametrize("lang", ["da", "en"])
def test_startup_help_imports_no_babel(tmp_path: Path, lang: str) -> None:
    """'onboarding --help' in Danish (the default) or English reads the compiled catalogue with
    the standard library's gettext: once it is compiled, no Babel module is imported (nor
    click, inspect, or struct for parsing the whole .mo)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env.update(ONBOARDING_CACHE_DIR=str(tmp_path / "cache"), ONBOARDING_LANG=lang)
    command = [sys.executable, "-X", "importtime", "-m", "cli", "--help"]
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]  # compiles the catalogue (Babel)
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = [m.group(1) for line in proc.stderr.splitlines() if (m := _IMPORTED.match(line))]
    assert "onboarding.i18n" in modules  # the list is real: the help was translated
    assert [m for m in modules if m.split(".")[0] == "babel"] == []
    # the fast path's root help: neither click nor inspect (helptext.cleandoc), nor the
    # parse of the whole compiled catalogue (gettext's struct: its state is read instead)
    assert [m for m in modules if m in ("click", "inspect", "struct")] == []
    assert ("Brug:" if lang == "da" else "Usage:") in proc.stdout
