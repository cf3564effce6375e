"""click's own usage errors in the CLI's language: the program run as a process on a real
database, Danish by default ("Fejl: Ukendt tilvalg ..."), English as click says it with
--lang en / ONBOARDING_LANG=en, exit code 2 either way (onboarding/commands/helptext.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from onboarding import i18n

PROGRAM = str(Path(sys.executable).parent / "onboarding")


@pytest.fixture(params=["fast path", "click only"])
def path(request: pytest.FixtureRequest) -> str:
    """Run each line with the program's fast path on, and with click for everything."""
    return str(request.param)


def _run(
    args: list[str], lang: str | None, path: str = "fast path"
) -> subprocess.CompletedProcess[str]:
    """``onboarding ARGS`` as a process; ``lang`` None: no language set (Danish)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env["COLUMNS"] = "200"
    if lang is not None:
        env["ONBOARDING_LANG"] = lang
    if path == "click only":
        env["ONBOARDING_CLICK_ONLY"] = "1"
    return subprocess.run([PROGRAM, *args], env=env, capture_output=True, text=True)


def test_usage_error_unknown_option_of_track_advance_is_danish(db_path: Path, path: str) -> None:
    """'onboarding track advance --bogus' (declined by the fast path, refused by click) says
    usage, hint and error in Danish by default, exit code 2, and the English click wrote with
    --lang en."""
    args = ["track", "advance", "1", "agree", "--bogus", "--db", str(db_path)]
    danish = _run(args, None, path)
    assert danish.returncode == 2
    assert danish.stdout == ""
    assert danish.stderr == (
        "Brug: onboarding track advance [TILVALG] [TRACK] TRIGGER\n"
        "Prøv 'onboarding track advance --help' for at få hjælp.\n\n"
        "Fejl: Ukendt tilvalg '--bogus'.\n"
    )
    english = _run(["--lang", "en", *args], None, path)
    assert english.returncode == 2
    assert english.stderr == (
        "Usage: onboarding track advance [OPTIONS] [TRACK] TRIGGER\n"
        "Try 'onboarding track advance --help' for help.\n\n"
        "Error: No such option '--bogus'.\n"
    )


def test_usage_error_unknown_command_is_danish_with_its_suggestion(path: str) -> None:
    """'onboarding nosuch' reads Danish ("Ukendt kommando"), and a misspelt command is
    answered with the one it is near, in the root group too ("Mente du 'track'?")."""
    nosuch = _run(["nosuch"], None, path)
    assert nosuch.returncode == 2
    assert nosuch.stderr == (
        "Brug: onboarding [TILVALG] KOMMANDO [ARGUMENTER]...\n"
        "Prøv 'onboarding --help' for at få hjælp.\n\n"
        "Fejl: Ukendt kommando 'nosuch'.\n"
    )
    misspelt = _run(["trak"], "da", path)
    assert misspelt.returncode == 2
    assert misspelt.stderr.endswith("Fejl: Ukendt kommando 'trak'. Mente du 'track'?\n")
    english = _run(["trak"], "en", path)
    assert english.returncode == 2
    assert english.stderr == (
        "Usage: onboarding [OPTIONS] COMMAND [ARGS]...\n"
        "Try 'onboarding --help' for help.\n\n"
        "Error: No such command 'trak'. Did you mean 'track'?\n"
    )


#: (arguments, the Danish error line, the English one click writes)
CASES = {
    "missing argument": (
        ["track", "advance"],
        "Fejl: Mangler argument '[TRACK] TRIGGER'.",
        "Error: Missing argument '[TRACK] TRIGGER'.",
    ),
    "extra argument": (
        ["track", "show", "1", "2"],
        "Fejl: Uventet ekstra argument (2)",
        "Error: Got unexpected extra argument (2)",
    ),
    "extra arguments": (
        ["track", "show", "1", "2", "3"],
        "Fejl: Uventede ekstra argumenter (2 3)",
        "Error: Got unexpected extra arguments (2 3)",
    ),
    "not a number": (
        ["track", "advance", "1", "agree", "--limit", "abc"],
        "Fejl: Ugyldig værdi for '--limit': 'abc' er ikke et gyldigt tal.",
        "Error: Invalid value for '--limit': 'abc' is not a valid integer range.",
    ),
    "out of range": (
        ["track", "advance", "1", "agree", "--limit", "0"],
        "Fejl: Ugyldig værdi for '--limit': 0 er uden for intervallet x>=1.",
        "Error: Invalid value for '--limit': 0 is not in the range x>=1.",
    ),
    "not a choice": (
        ["--lang", "xx", "track", "list"],
        "Fejl: Ugyldig værdi for '--lang': 'xx' er ikke en af 'da', 'en'.",
        None,  # --lang is the one refused: its error is in the default language
    ),
    "misspelt subcommand": (
        ["track", "advanc", "1"],
        "Fejl: Ukendt kommando 'advanc'. Mente du 'advance'?",
        "Error: No such command 'advanc'. Did you mean 'advance'?",
    ),
    "option without its value": (
        ["track", "list", "--db"],
        "Fejl: Tilvalget '--db' kræver en værdi.",
        "Error: Option '--db' requires an argument.",
    ),
    "flag with a value": (
        ["track", "list", "--json=yes"],
        "Fejl: Tilvalget '--json' tager ingen værdi.",
        "Error: Option '--json' does not take a value.",
    ),
    "missing command": (
        ["--lang", "{lang}"],
        "Fejl: Mangler en kommando.",
        "Error: Missing command.",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_usage_error_click_sentences_in_the_cli_language(case: str, db_path: Path) -> None:
    """Each of click's usage errors (missing argument, extra arguments, invalid value, no
    such command, an option's value) ends in one Danish 'Fejl: ...' line by default and in
    click's English with ONBOARDING_LANG=en; exit code 2, nothing written to stdout."""
    args, danish, english = CASES[case]
    for lang, said in (("da", danish), ("en", english)):
        if said is None:
            continue
        # a language an earlier run in this process chose is forgotten, as a new process has it
        i18n.choose(None)
        env = {"ONBOARDING_DB": str(db_path), "ONBOARDING_LANG": lang}
        line = [a.replace("{lang}", lang) for a in args]
        found = CliRunner().invoke(cli.cli, line, env=env)
        assert found.exit_code == 2, found.output
        assert found.stderr.rstrip("\n").splitlines()[-1] == said
        assert found.stdout == ""


def test_usage_error_every_click_sentence_keeps_its_fields() -> None:
    """Every Danish text of click's sentences uses only the {fields} of click's English, so
    click's ``format`` never raises on a translation."""
    from babel.messages import pofile

    with (i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = pofile.read_po(fh, locale="da")
    found = [m for m in catalog if m.context == "click"]
    assert len(found) > 20
    wrong = []
    for m in found:
        ids = m.id if isinstance(m.id, tuple | list) else (m.id,)
        strings = m.string if isinstance(m.string, tuple | list) else (m.string,)
        want = set(re.findall(r"\{(\w+)[^}]*\}", " ".join(ids)))
        for s in strings:
            if not s or set(re.findall(r"\{(\w+)[^}]*\}", s)) - want:
                wrong.append((m.id, s))
    assert wrong == []


def test_usage_error_click_help_words_are_left_to_the_formatter() -> None:
    """click's help words are not said through the click context (they are built before
    --lang is read, and the help formatter translates them as it writes): an English help
    stays English after a Danish run in the same process."""
    runner = CliRunner()
    assert "Vis denne hjælp" in runner.invoke(cli.cli, ["--lang", "da", "--help"]).stdout
    english = runner.invoke(cli.cli, ["--lang", "en", "track", "--help"]).stdout
    assert "Show this message and exit." in english and "Vis denne" not in english
