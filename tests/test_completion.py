"""Shell completion through click's own mechanism, on a real database file.

Completions are asked for the way a shell asks: click's ``BashComplete.get_completions`` (what
``_ONBOARDING_COMPLETE=bash_complete`` runs) in-process, and the installed ``onboarding`` script
in a subprocess with ``COMP_WORDS``/``COMP_CWORD``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.shell_completion import BashComplete
from click.testing import CliRunner

import cli
from onboarding import completion
from onboarding.db import APPLICATION_ID, DEFAULT_DB, resolve_path
from tests.support import agree_date, ok, ok_json, start_connection

SCRIPT = Path(sys.executable).parent / "onboarding"


def complete(args: list[str], incomplete: str = "") -> list[str]:
    """The values click offers for ``onboarding ARGS INCOMPLETE<TAB>``."""
    shell = BashComplete(cli.cli, {}, "onboarding", "_ONBOARDING_COMPLETE")
    return [item.value for item in shell.get_completions(args, incomplete)]


def available(runner: CliRunner, db_path: Path, tid: int) -> list[str]:
    """The triggers ``track show --json`` says the track's state offers."""
    return [a["trigger"] for a in ok_json(runner, db_path, "track", "show", str(tid))["available"]]


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- triggers on a track ------------------------------------------------------------------------


def test_completion_trigger_completes_to_the_triggers_of_the_tracks_state(
    runner: CliRunner, db_path: Path
) -> None:
    """`track advance ID <TAB>` offers exactly the triggers of the track's state, and a partial
    trigger narrows them; after an advance, the new state's triggers."""
    tid = start_connection(runner, db_path)
    args = ["track", "advance", "--db", str(db_path), str(tid)]
    assert complete(args) == available(runner, db_path, tid) == ["agree_date", "cancel"]
    assert complete(args, "ag") == ["agree_date"]
    assert complete(args, "approve") == []

    agree_date(runner, db_path, tid)
    assert complete(args) == available(runner, db_path, tid) == ["approve_agreements", "cancel"]
    assert complete(args, "ap") == ["approve_agreements"]
    assert complete(args, "ag") == []


def test_completion_trigger_help_says_where_it_leads_and_what_blocks_it(
    runner: CliRunner, db_path: Path
) -> None:
    """Each offered trigger's help names its destination, and a blocked one says why."""
    tid = start_connection(runner, db_path)
    agree_date(runner, db_path, tid)
    shell = BashComplete(cli.cli, {}, "onboarding", "_ONBOARDING_COMPLETE")
    items = shell.get_completions(["track", "advance", "--db", str(db_path), str(tid)], "")
    helps = {item.value: item.help for item in items}
    assert "-> " in helps["cancel"]
    assert "blocked:" in helps["approve_agreements"]
    assert "KMD Momentum" in helps["approve_agreements"]


def test_completion_trigger_on_a_finished_or_unknown_track_offers_nothing(
    runner: CliRunner, db_path: Path
) -> None:
    """A final state offers no trigger; an unknown track or a non-number completes nothing."""
    tid = start_connection(runner, db_path)
    ok(runner, db_path, "track", "advance", str(tid), "cancel", "--set", "reason=test")
    for ref in (str(tid), "999", "abc"):
        assert complete(["track", "advance", "--db", str(db_path), ref]) == []
    # '#12' is taken as the command takes it
    other = start_connection(runner, db_path, system="Nexus")
    assert complete(["track", "advance", "--db", str(db_path), f"#{other}"], "c") == ["cancel"]


def test_completion_trigger_with_where_offers_the_selected_states_triggers(
    runner: CliRunner, db_path: Path
) -> None:
    """`track advance --where FILTER <TAB>` offers the triggers of the states it selects."""
    where = "definition=connection state=date_agreement"
    assert complete(["track", "advance", "--db", str(db_path), "--where", where]) == [
        "agree_date",
        "cancel",
    ]
    assert complete(["track", "advance", "--db", str(db_path), "--where", where], "ag") == [
        "agree_date"
    ]


def test_completion_trigger_reads_commits_still_in_the_wal(
    runner: CliRunner, db_path: Path
) -> None:
    """With another connection holding the database open (its commits still in the -wal file),
    completion sees the latest state."""
    holder = sqlite3.connect(db_path)
    try:
        holder.execute("SELECT count(*) FROM tracks").fetchone()
        tid = start_connection(runner, db_path)
        agree_date(runner, db_path, tid)
        assert Path(f"{db_path}-wal").stat().st_size > 0
        args = ["track", "advance", "--db", str(db_path), str(tid)]
        assert complete(args) == ["approve_agreements", "cancel"]
    finally:
        holder.close()


# --- definitions, states, municipalities, systems ---------------------------------------------


def test_completion_definitions_complete_from_the_database(
    runner: CliRunner, db_path: Path
) -> None:
    """A definition argument or option completes to the definitions the database holds."""
    names = [d["name"] for d in ok_json(runner, db_path, "workflow", "list")]
    db = ["--db", str(db_path)]
    assert complete(["track", "start", *db]) == names
    assert complete(["track", "start", *db], "con") == ["connection"]
    assert complete(["workflow", "show", *db], "sys") == ["system-readiness"]
    assert complete(["track", "list", *db, "--definition"], "kl") == ["klik-task"]


def test_completion_states_complete_for_the_chosen_definition(
    runner: CliRunner, db_path: Path
) -> None:
    """--state completes to the states of --definition when given first, else of all
    definitions; after 'a|' the next state is completed."""
    db = ["--db", str(db_path)]
    shown = ok_json(runner, db_path, "workflow", "show", "connection")
    states = [s["name"] for s in shown["states"]]
    assert complete(["track", "list", *db, "--definition", "connection", "--state"]) == states
    assert complete(["track", "list", *db, "--state"], "display") == ["display_opening"]
    every = complete(["track", "list", *db, "--state"])
    assert set(states) < set(every) and "pilot" in every and len(every) == len(set(every))
    assert complete(["track", "list", *db, "--state"], "date_agreement|disp") == [
        "date_agreement|display_opening"
    ]


def test_completion_municipalities_complete_by_name_or_code(db_path: Path) -> None:
    """--municipality completes names case- and accent-insensitively, and codes from digits."""
    base = ["track", "start", "--db", str(db_path), "connection", "--municipality"]
    assert complete(base, "Aar") == ["Aarhus"]
    assert complete(base, "aar") == ["Aarhus"]
    assert complete(base, "År") == ["Aarhus"]
    assert complete(base, "Aa") == ["Aabenraa", "Aalborg", "Aarhus"]
    assert "751" in complete(base, "75")
    assert complete(["track", "list", "--db", str(db_path), "--municipality"], "Køb") == [
        "København"
    ]


def test_completion_systems_and_vendors_complete_by_name(db_path: Path) -> None:
    """--system completes system names, or 'Vendor System' once the vendor is typed; --vendor
    completes vendors."""
    base = ["track", "start", "--db", str(db_path), "connection", "--system"]
    assert complete(base, "Mom") == ["Momentum"]
    assert complete(base, "KMD Mom") == ["KMD Momentum"]
    assert complete(["track", "list", "--db", str(db_path), "--vendor"], "KM") == ["KMD"]


def test_completion_where_completes_keys_and_the_values_of_the_last_key(db_path: Path) -> None:
    """--where completes a key, or the value of its last key: states of the definition named
    earlier in the filter, municipalities, systems (with spaces), definitions."""
    base = ["track", "advance", "--db", str(db_path), "--where"]
    assert complete(base, "st") == ["state="]
    assert complete(base, "definition=connection state=disp") == [
        "definition=connection state=display_opening"
    ]
    assert complete(base, "definition=connection, state=date_agreement|se") == [
        "definition=connection, state=date_agreement|service_agreements"
    ]
    # pilot is a state of system-readiness, not of connection
    assert complete(base, "definition=connection state=pil") == []
    assert complete(base, "state=pil") == ["state=pilot"]
    assert complete(base, "municipality=Aar") == ["municipality=Aarhus"]
    assert complete(base, "system=KMD Mom") == ["system=KMD Momentum"]
    assert complete(base, "definition=klik") == ["definition=klik-task"]
    assert complete(base, "state=x") == []


# --- never harmful ------------------------------------------------------------------------------


def test_completion_missing_database_completes_nothing_and_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no database at --db, $ONBOARDING_DB or ./onboarding.db every completion is empty
    and no file appears."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ONBOARDING_DB", raising=False)
    missing = str(tmp_path / "none.db")
    cases: list[tuple[list[str], str]] = [
        (["track", "advance", "1"], ""),
        (["track", "advance", "--db", missing, "1"], ""),
        (["track", "start"], "con"),
        (["track", "start", "--db", str(tmp_path / "no" / "such.db")], ""),
        (["track", "list", "--state"], ""),
        (["track", "list", "--municipality"], "Aar"),
        (["track", "list", "--db", missing, "--system"], ""),
        (["track", "advance", "--where", "state=date_agreement"], ""),
        (["track", "advance", "--where"], "state=d"),
    ]
    for args, incomplete in cases:
        assert complete(args, incomplete) == [], args
    assert files(tmp_path) == []


def test_completion_changes_nothing_on_disk(runner: CliRunner, db_path: Path) -> None:
    """Completing on a closed database leaves its bytes and its folder as they were (no -wal
    or -shm file left behind)."""
    tid = start_connection(runner, db_path)
    before = (files(db_path.parent), db_path.read_bytes())
    db = ["--db", str(db_path)]
    assert complete(["track", "advance", *db, str(tid)])
    assert complete(["track", "list", *db, "--state"])
    assert complete(["track", "list", *db, "--municipality"], "Aar")
    assert (files(db_path.parent), db_path.read_bytes()) == before


def test_completion_foreign_or_damaged_file_completes_nothing(tmp_path: Path) -> None:
    """A file that is not an onboarding database (text, another application's SQLite) gives no
    completions and no traceback, and is left as it was."""
    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 20)
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("PRAGMA application_id = 42")
    conn.execute("CREATE TABLE municipalities (code, name, region)")
    conn.execute("INSERT INTO municipalities VALUES (751, 'Aarhus', 'x')")
    conn.commit()
    conn.close()
    for path in (text, foreign):
        before = path.read_bytes()
        assert complete(["track", "list", "--db", str(path), "--municipality"], "Aar") == []
        assert complete(["track", "advance", "--db", str(path), "1"]) == []
        assert path.read_bytes() == before


def test_completion_database_path_follows_the_commands_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database a TAB reads is the one the command would open: --db, else $ONBOARDING_DB,
    else ./onboarding.db (onboarding.db.resolve_path), recognised by the same application id."""
    assert completion._DEFAULT_DB == DEFAULT_DB
    assert completion._APPLICATION_ID == APPLICATION_ID
    ctx = cli.cli.make_context("onboarding", ["track", "list"], resilient_parsing=True)
    monkeypatch.delenv("ONBOARDING_DB", raising=False)
    assert completion.database_path(ctx) == resolve_path(None)
    monkeypatch.setenv("ONBOARDING_DB", str(tmp_path / "env.db"))
    assert completion.database_path(ctx) == resolve_path(None) == tmp_path / "env.db"
    ctx.params["db_path"] = "given.db"
    assert completion.database_path(ctx) == resolve_path("given.db")


# --- through the installed script, as a shell runs it -----------------------------------------


def shell_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    return {**env, **extra}


def test_completion_installed_script_completes_a_trigger_from_env_database(
    runner: CliRunner, db_path: Path
) -> None:
    """`_ONBOARDING_COMPLETE=bash_complete onboarding` with COMP_WORDS of a partial trigger
    answers the matching trigger, reading the database of $ONBOARDING_DB."""
    tid = start_connection(runner, db_path)
    words = f"onboarding track advance {tid} ag"
    env = shell_env(
        _ONBOARDING_COMPLETE="bash_complete",
        COMP_WORDS=words,
        COMP_CWORD="4",
        ONBOARDING_DB=str(db_path),
    )
    result = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["plain,agree_date"]
    assert result.stderr == ""


def test_completion_installed_script_with_missing_database_is_silent(tmp_path: Path) -> None:
    """In a folder without a database, a TAB prints nothing at all and creates nothing."""
    env = shell_env(
        _ONBOARDING_COMPLETE="bash_complete",
        COMP_WORDS="onboarding track advance 1 ",
        COMP_CWORD="4",
    )
    result = subprocess.run(
        [SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    # click ends even an empty answer with a newline; the shell reads that as no completions
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "", "")
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _onboarding_completion onboarding"),
        ("zsh", "compdef _onboarding_completion onboarding"),
        ("fish", "complete --no-files --command onboarding"),
    ],
)
def test_completion_source_prints_the_shell_script(shell: str, marker: str) -> None:
    """`_ONBOARDING_COMPLETE=<shell>_source onboarding` prints the script the README tells
    people to load."""
    env = shell_env(_ONBOARDING_COMPLETE=f"{shell}_source")
    result = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert "_ONBOARDING_COMPLETE" in result.stdout


BASH_TAB = """
. {sourced}
COMP_WORDS=({words})
COMP_CWORD={cword}
_onboarding_completion onboarding
printf '%s\\n' "${{COMPREPLY[@]}}"
eval "set -- ${{COMPREPLY[0]}}"
echo "words: $#, first: $1"
"""


def test_completion_in_bash_inserts_one_word_per_value(runner: CliRunner, db_path: Path) -> None:
    """In a real bash with the sourced script, a TAB on a trigger inserts the trigger, and a
    value with a space or a '|' is inserted escaped, so the shell reads it as one argument."""
    tid = start_connection(runner, db_path)
    env = shell_env(ONBOARDING_DB=str(db_path), PATH=f"{SCRIPT.parent}:{os.environ['PATH']}")
    # written once and loaded, as the README says
    sourced = db_path.parent / "onboarding-complete.bash"
    with open(sourced, "w") as out:
        subprocess.run(
            [SCRIPT], env={**env, "_ONBOARDING_COMPLETE": "bash_source"}, stdout=out, check=True
        )
    cases = [
        (f"onboarding track advance {tid} ag", 4, ["agree_date"], "agree_date"),
        ("onboarding track start connection --system Cura", 5, ["Cura\\ Omsorg"], "Cura Omsorg"),
        (
            "onboarding track list --state 'date_agreement|disp'",
            4,
            ["date_agreement\\|display_opening"],
            "date_agreement|display_opening",
        ),
        (  # bash hands over the word being typed with its opening quote
            """onboarding track advance --where '"definition=connection state=disp'""",
            4,
            ["definition=connection\\ state=display_opening"],
            "definition=connection state=display_opening",
        ),
    ]
    for words, cword, replies, argument in cases:
        script = BASH_TAB.format(sourced=sourced, words=words, cword=cword)
        result = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [*replies, f"words: 1, first: {argument}"]


def test_completion_readme_says_how_to_enable_it_for_each_shell() -> None:
    """The README's "Shell completion" section writes the script for bash, zsh and fish with
    the variable click derives from the entry point ('onboarding' -> _ONBOARDING_COMPLETE)."""
    root = Path(__file__).parent.parent
    assert 'onboarding = "cli:main"' in (root / "pyproject.toml").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Shell completion", 1)[1].split("\n## ", 1)[0]
    for shell in ("bash", "zsh", "fish"):
        assert f"_ONBOARDING_COMPLETE={shell}_source .venv/bin/onboarding > " in section
