"""The fast path (issue 14, start-up): 'track advance' and 'track show' without click.

``onboarding.commands.fast`` parses these two commands from the option spec the click commands
are built from, and leaves anything it does not fully understand to click. These tests hold it
to click's answers: a generated command line and environment parsed both ways give the same
parameters (or the fast path declines), and real commands on a real database, run as processes
once by the fast path and once by click (``ONBOARDING_CLICK_ONLY=1``), print the same, exit the
same and leave the same rows.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from onboarding import i18n
from onboarding.commands import fast, spec
from tests.support import ok

ROOT = Path(__file__).resolve().parent.parent
NOW = "2021-03-01T10:00"
ENVVARS = sorted({o.envvar for s in fast.SPECS.values() for o in s.options if o.envvar})


# --- the parser against click's -----------------------------------------------------------------


def _click_params(group: str, name: str, argv: list[str]) -> dict[str, Any] | None:
    """What click gives the command's callback for ``argv`` (None: click refuses, or shows
    help), parsed under the root group and the group as the program does."""
    root = cli.cli.make_context("onboarding", [group, name], resilient_parsing=False)
    grp = cli.cli.get_command(root, group)
    assert isinstance(grp, click.Group)
    parent = grp.make_context(group, [name], parent=root)
    command = grp.get_command(parent, name)
    assert command is not None
    try:
        with open(os.devnull, "w") as sink:  # --help prints before it exits
            saved, sys.stdout = sys.stdout, sink
            try:
                ctx = command.make_context(name, list(argv), parent=parent)
            finally:
                sys.stdout = saved
    except (click.ClickException, click.exceptions.Exit):
        return None
    return dict(ctx.params)


def _words(command: spec.Spec) -> st.SearchStrategy[list[str]]:
    """Command-line words: the spec's options with good and bad values, both spellings,
    positional words, and what only click understands (help, '--', unknown options)."""
    values = st.sampled_from(
        ["", "0", "1", "7", "-1", " 12", "1_0", "x", "12x", "-", "--json", "a=b", "=b",
         "2021-03-01", "/", "db.sqlite", "æøå", "--note", "-h"]
    ) | st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=6)
    decls = [d for o in command.options for d in o.decls]
    option = st.sampled_from(decls)
    words = st.one_of(
        st.builds(lambda d: [d], option),
        st.builds(lambda d, v: [d, v], option, values),
        st.builds(lambda d, v: [f"{d}={v}"], option, values),
        st.builds(lambda v: [v], values),
        st.sampled_from(
            [["1"], ["12"], ["#3"], ["agree_date"], ["--"], ["--help"], ["-h"], ["--jso"],
             ["-q"], ["--where"], ["--limit", "3"], ["--set", "connection_date=2021-09-01"]]
        ),
    )
    return st.lists(words, max_size=6).map(lambda parts: [w for p in parts for w in p])


_ENV = st.dictionaries(
    st.sampled_from(ENVVARS),
    st.sampled_from(["", "x.db", "/", "tester", "vendor", "5", "-1"]),
    max_size=len(ENVVARS),
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ENVVARS:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def _check(group: str, name: str, argv: list[str], env: dict[str, str]) -> dict[str, Any] | None:
    saved = {k: os.environ.get(k) for k in ENVVARS}
    try:
        for k in ENVVARS:
            os.environ.pop(k, None)
        os.environ.update(env)
        theirs = _click_params(group, name, argv)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ours = fast.parse(fast.SPECS[group, name], argv, env)
    if ours is not None:
        assert theirs is not None, f"click refuses {argv} {env}, the fast path parsed {ours}"
        assert ours == theirs, (argv, env)
    return ours


@pytest.mark.parametrize("name", ["advance", "show"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fast_parse_agrees_with_click(clean_env: pytest.MonkeyPatch, name: str, data: Any) -> None:
    """For any generated command line and environment, the fast path either declines or gives
    exactly the parameters click's make_context gives; where click refuses, it declines."""
    command = fast.SPECS["track", name]
    argv = data.draw(_words(command), label="argv")
    if name == "advance":
        argv = data.draw(st.sampled_from([["3", "agree_date"], ["3"], []]), label="head") + argv
    else:
        argv = data.draw(st.sampled_from([["3"], []]), label="head") + argv
    env = data.draw(_ENV, label="env")
    _check("track", name, argv, env)


@pytest.mark.parametrize(
    ("name", "argv", "env"),
    [
        ("advance", ["1", "agree_date"], {}),
        ("advance", ["1", "agree_date", "--set", "a=b", "--set=c=d", "--role", "vendor"], {}),
        ("advance", ["--dry-run", "1", "--json", "agree_date", "--note", "--json"], {}),
        ("advance", ["1", "x", "--expect-version", "3", "--at", "2021-03-01", "--limit=2"], {}),
        ("advance", ["1", "x"], {"ONBOARDING_DB": "x.db", "ONBOARDING_ROLE": "vendor"}),
        ("advance", ["1", "x", "-"], {"ONBOARDING_ACTOR": ""}),
        ("show", ["12", "--json"], {"ONBOARDING_ACTOR": "kombit"}),
        ("show", ["--at=2021-09-01T10:00", "12", "--actor", "vendor", "--db", "x.db"], {}),
    ],
)
def test_fast_parse_takes_the_usual_lines(
    clean_env: pytest.MonkeyPatch, name: str, argv: list[str], env: dict[str, str]
) -> None:
    """The lines people and scripts write are parsed by the fast path (not all left to
    click), with click's parameters."""
    assert _check("track", name, argv, env) is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["track", "advance", "1", "x", "--help"],
        ["track", "advance", "1", "x", "-h"],
        ["track", "advance", "1", "x", "--jsn"],
        ["track", "advance", "1", "x", "--json=yes"],
        ["track", "advance", "1", "x", "--", "--json"],
        ["track", "advance"],
        ["track", "advance", "1", "x", "--note"],
        ["track", "advance", "1", "x", "--limit", "0"],
        ["track", "advance", "1", "x", "--expect-version", "two"],
        ["track", "advance", "--where", "state=x", "go"],
        ["track", "show"],
        ["track", "show", "1", "2"],
        ["track", "show", "1", "--db", "/"],
        ["track", "list"],
        ["--lang", "en", "track", "show", "1"],
        ["track"],
        [],
    ],
)
def test_fast_declines_what_is_clicks(clean_env: pytest.MonkeyPatch, argv: list[str]) -> None:
    """Help, unknown, misspelt or valueless options, bad values, missing or extra arguments,
    '--', --where, other commands and root options are left to click."""
    assert fast.understood(argv, {}) is None


@pytest.mark.parametrize(
    "env",
    [{"ONBOARDING_LANG": "de"}, {"_ONBOARDING_COMPLETE": "bash_complete"}, {fast.SWITCH: "1"}],
)
def test_fast_declines_for_the_environment(env: dict[str, str]) -> None:
    """A language click would refuse, shell completion and the test switch leave the line to
    click."""
    assert fast.understood(["track", "show", "1"], env) is None
    assert fast.understood(["track", "show", "1"], {fast.SWITCH: "0"}) is not None


def test_fast_spec_builds_the_click_commands() -> None:
    """The click commands' parameters are the spec's, in its order (one declaration)."""
    ctx = click.Context(cli.cli)
    grp = cli.cli.get_command(ctx, "track")
    assert isinstance(grp, click.Group)
    for (_, name), command in fast.SPECS.items():
        found = grp.commands[name]
        names = [p.name for p in found.params]
        assert names == [a.name for a in command.args] + [o.dest for o in command.options]


# --- the same commands through both paths, as processes ----------------------------------------


@pytest.fixture
def tracks_db(db_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database with three connection tracks in their first step."""
    monkeypatch.setenv("ONBOARDING_NOW", NOW)
    for municipality in ("Aarhus", "Vejle", "Odense"):
        ok(runner, db_path, "track", "start", "connection", "--municipality", municipality,
           "--system", "Momentum")
    return db_path


def _process(args: list[str], env: dict[str, str], click_only: bool) -> tuple[int, str, str, bool]:
    """Run ``python -m cli ARGS``: exit code, stdout, stderr, and whether click was imported."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    full.pop("COLUMNS", None)
    full.update({"ONBOARDING_NOW": NOW, "ONBOARDING_LANG": "en", **env})
    if click_only:
        full[fast.SWITCH] = "1"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli", *args],
        cwd=ROOT, env=full, capture_output=True, text=True,
    )
    imports = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    stderr = "".join(
        line + "\n" for line in proc.stderr.splitlines() if not line.startswith("import time:")
    )
    clicked = any(line.split("|")[-1].strip() == "click" for line in imports)
    return proc.returncode, proc.stdout, stderr, clicked


def _rows(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("tracks", "history", "audit_head", "outbox")
        ]
    finally:
        conn.close()


ACTOR = {"ONBOARDING_ACTOR": "tester"}
#: (command line after 'onboarding', environment, whether the fast path runs it)
CASES: list[tuple[list[str], dict[str, str], bool]] = [
    (["track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
      "--role", "municipality-pl"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
      "--role", "municipality-pl", "--json"], ACTOR, True),
    (["track", "advance", "#2", "agree_date", "--set", "connection_date=2021-09-01",
      "--role", "municipality-pl", "--dry-run"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
      "--role", "municipality-pl", "--dry-run", "--json"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--note", "by phone", "--at", "2021-02-20",
      "--set", "connection_date=2021-09-01"], {**ACTOR, "ONBOARDING_ROLE": "municipality-pl"},
     True),
    (["track", "advance", "1", "nope"], ACTOR, True),
    (["track", "advance", "x", "agree_date"], ACTOR, True),
    (["track", "advance", "99", "agree_date"], ACTOR, True),
    (["track", "advance", "1"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--set", "connection_date"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01",
      "--role", "municipality-pl", "--expect-version", "7"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--at", "2031-01-01"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--at", "soon"], ACTOR, True),
    (["track", "advance", "1", "agree_date", "--set", "connection_date=2021-09-01"], ACTOR,
     True),
    (["track", "advance", "1", "agree_date", "--set", "connection_date=2035-09-01",
      "--role", "municipality-pl"], ACTOR, True),  # a far date: its warning line on stderr
    (["track", "show", "1"], {}, True),
    (["track", "show", "2", "--json"], {}, True),
    (["track", "show", "2", "--json", "--at", "2021-09-01T10:00"], {}, True),
    (["track", "show", "1"], {"ONBOARDING_LANG": "da"}, True),
    (["track", "show", "1", "--actor", "kombit"], {}, True),
    (["track", "show", "99"], {}, True),
    (["track", "show", "one"], {}, True),
    (["track", "show", "1", "--jsn"], {}, False),
    (["track", "show"], {}, False),
    (["track", "advance", "1", "agree_date", "--limit", "0"], ACTOR, False),
    (["track", "advance", "--help"], ACTOR, False),
]


@pytest.mark.parametrize(("args", "env", "fast_runs"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_fast_and_click_paths_do_the_same(
    tracks_db: Path, tmp_path: Path, args: list[str], env: dict[str, str], fast_runs: bool
) -> None:
    """A real command on a real database, run once by the program as it is and once with the
    fast path switched off: the same exit code, stdout and stderr, the same rows written; and
    click is imported only where the fast path declines."""
    results, rows = [], []
    for click_only in (False, True):
        path = tmp_path / f"copy-{click_only}.db"
        shutil.copy(tracks_db, path)
        code, out, err, clicked = _process([*args, "--db", str(path)], env, click_only)
        results.append((code, out, err))
        rows.append(_rows(path))
        if not click_only:
            assert clicked is not fast_runs, (clicked, err)
    assert results[0] == results[1]
    assert rows[0] == rows[1]


def test_fast_and_click_paths_missing_database(tmp_path: Path) -> None:
    """A database that does not exist: the same one line and exit code 2 either way."""
    args = ["track", "show", "1", "--db", str(tmp_path / "none.db")]
    fast_run, click_run = (_process(args, {}, c)[:3] for c in (False, True))
    assert fast_run == click_run and fast_run[0] == 2 and fast_run[2].count("\n") == 1


@pytest.mark.parametrize("prog", ["onboarding", "cli.py", "a-much-longer-program-name-for-usage"])
def test_fast_root_help_is_clicks(monkeypatch: pytest.MonkeyPatch, prog: str) -> None:
    """The root help the fast path prints is click's, character for character, at every
    terminal width (and for a program name long enough to move the usage line's arguments)."""
    for columns in [None, "junk", *map(str, range(0, 130))]:
        if columns is None:
            monkeypatch.delenv("COLUMNS", raising=False)
        else:
            monkeypatch.setenv("COLUMNS", columns)
        ctx = click.Context(cli.cli, info_name=prog)
        assert fast.root_help(prog, fast._help_width()) == cli.cli.get_help(ctx), columns


@pytest.mark.parametrize("args", [["--help"], ["-h"]])
@pytest.mark.parametrize("columns", ["40", "100"])
def test_fast_and_click_paths_print_the_same_help(args: list[str], columns: str) -> None:
    """'onboarding --help' and '-h' as processes: the same output and exit code by the fast
    path (which imports no click) and by click."""
    runs = [_process(args, {"COLUMNS": columns}, click_only) for click_only in (False, True)]
    assert runs[0][:3] == runs[1][:3] and runs[0][0] == 0
    assert runs[0][3] is False and runs[1][3] is True


# --- dates without Babel ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_fast_fmt_date_is_babels(day: date) -> None:
    """fmt_date writes every date as Babel's format_date with the language's pattern does."""
    from babel.dates import format_date

    for lang in i18n.LANGUAGES:
        expected = format_date(day, i18n.DATE_FORMATS[lang], locale=i18n.FORMAT_LOCALE[lang])
        assert i18n.fmt_date(day, lang) == expected


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)))
def test_fast_fmt_datetime_is_babels(moment: datetime) -> None:
    """fmt_datetime writes every instant as Babel's format_datetime in Copenhagen time."""
    from babel.dates import format_datetime

    from onboarding import clock

    aware = moment.replace(tzinfo=UTC)
    for lang in i18n.LANGUAGES:
        expected = format_datetime(
            aware.astimezone(clock.LOCAL), i18n.DATETIME_FORMATS[lang],
            locale=i18n.FORMAT_LOCALE[lang],
        )
        assert i18n.fmt_datetime(aware, lang) == expected
