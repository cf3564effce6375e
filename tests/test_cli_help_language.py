"""The command line's help in the CLI's language (Danish by default): every command's and
group's help, option help, summary and click's own words go through the one catalogue, with the
English as the message id (onboarding/commands/helptext.py: help_text, option_help)."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import click
import pytest

import cli
from onboarding import i18n
from onboarding.commands.common import help_msgid, help_paragraphs

ROOT = Path(__file__).resolve().parent.parent
#: click's own words in a help page (headings, usage metavariables, option extras).
CLICK_WORDS = (
    "Usage:",
    "Options",
    "Commands",
    "[OPTIONS]",
    "COMMAND [ARGS]...",
    "default",
    "required",
    "env var",
    "Show this message and exit.",
    "Show the version and exit.",
)


@cache
def _danish() -> dict[str, str]:
    """Message id -> Danish text, for messages without a context."""
    from babel.messages import pofile

    with (i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = pofile.read_po(fh, locale="da")
    return {m.id: m.string for m in catalog if isinstance(m.id, str) and not m.context}


def _texts(command: click.Command, path: str) -> list[tuple[str, str]]:
    """(where, message id) of every help text and option help of ``command`` and, loading
    every lazy group, of everything below it."""
    # with the command's own settings: click keeps the help option a context first asks for,
    # and a later 'onboarding --help' must still list it as '-h, --help'
    ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], **command.context_settings)
    import inspect

    found = []
    for paragraph in help_paragraphs(inspect.cleandoc(command.help or "")):
        msgid = help_msgid(paragraph)
        if msgid is not None:
            found.append((path, msgid))
    for param in command.get_params(ctx):
        if isinstance(param, click.Option) and not param.hidden and param.help:
            found.append((f"{path} {param.opts[-1]}", " ".join(param.help.split())))
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{path} {name}"
            found += _texts(sub, f"{path} {name}")
    return found


def untranslated(command: click.Command, path: str = "onboarding") -> list[str]:
    """Where a help text or option help has no Danish, naming the command (and option)."""
    danish = _danish()
    texts = _texts(command, path)
    return [f"{where}: {msgid!r}" for where, msgid in texts if not danish.get(msgid)]


def test_help_every_text_has_danish() -> None:
    """Walking the whole command tree (every lazy group loaded), every help paragraph (but
    command lines), option help and root summary, and click's own words, has a Danish text."""
    assert untranslated(cli.cli) == []
    danish = _danish()
    assert [s for _, _, s in cli.COMMANDS.values() if not danish.get(s)] == []
    assert [w for w in CLICK_WORDS if not danish.get(w)] == []


def test_help_untranslated_command_is_named() -> None:
    """A new command or option without Danish is reported by its name and text."""

    @click.group()
    def group() -> None:
        """Municipalities, vendors, systems, contracts and contacts."""

    @group.command("brand-new")
    @click.option("--colour", help="A colour nobody has translated.")
    def brand_new(colour: str) -> None:
        """Paint the grid.

        Example:

            onboarding brand-new --colour red
        """

    assert untranslated(group, "onboarding group") == [
        "onboarding group brand-new: 'Paint the grid.'",
        "onboarding group brand-new --colour: 'A colour nobody has translated.'",
    ]


@pytest.fixture(params=["fast path", "click only"])
def path(request: pytest.FixtureRequest) -> str:
    """Which way the program runs the line: its fast path where it applies ('onboarding
    --help' without click: onboarding.commands.fast), or click for everything
    (ONBOARDING_CLICK_ONLY=1)."""
    return str(request.param)


def _help(
    *args: str, lang: str | None = None, cache_dir: Path | None = None, path: str = "fast path"
) -> str:
    """``onboarding ARGS`` run as a process (the installed entry point), its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    if path == "click only" or os.environ.get("ONBOARDING_CLICK_ONLY", "") not in ("", "0"):
        env["ONBOARDING_CLICK_ONLY"] = "1"
    env["COLUMNS"] = "200"  # no example line is wrapped
    if lang is not None:
        env["ONBOARDING_LANG"] = lang
    if cache_dir is not None:
        env["ONBOARDING_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "onboarding"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_help_root_is_danish_by_default(path: str) -> None:
    """'onboarding --help' with no language set is Danish (by the fast path and by click):
    click's words, the text, the options and every command's summary; the example stays a
    command line."""
    out = _help("--help", path=path)
    assert out.startswith("Brug: onboarding [TILVALG] KOMMANDO [ARGUMENTER]...")
    for text in (
        "Tilvalg:",
        "Kommandoer:",
        "Vis denne hjælp og afslut.",
        "Eksempel:",
        "Følg, hvordan Danmarks kommuner tilslutter deres fagsystemer",
        "onboarding init && onboarding registry list municipalities",
        "track      Tilslutningsspor: start, flyt frem, sæt felter",
    ):
        assert text in out, text
    for english in ("Usage:", "Options:", "Commands:", "Show this message", "Example:"):
        assert english not in out, english


@pytest.mark.parametrize(
    "args", [("--lang", "en", "--help"), ("--help",)], ids=["--lang en", "ONBOARDING_LANG=en"]
)
def test_help_root_in_english_when_asked(args: tuple[str, ...], path: str) -> None:
    """'onboarding --lang en --help' (or ONBOARDING_LANG=en) is English throughout, by the
    fast path and by click."""
    out = _help(*args, lang="en" if args == ("--help",) else None, path=path)
    assert out.startswith("Usage: onboarding [OPTIONS] COMMAND [ARGS]...")
    for text in (
        "Options:",
        "Commands:",
        "Show this message and exit.",
        "Example:",
        "Track how Denmark's municipalities connect their systems",
        "track      Onboarding tracks: start, advance, set fields",
    ):
        assert text in out, text
    assert "Brug:" not in out and "Tilvalg" not in out


def test_help_group_and_command_danish_and_english(path: str) -> None:
    """A group's and a command's --help are Danish by default (its summary in the group's
    listing too, option help and '[standard: ...]'), English with --lang en; the examples are
    the same command lines in both."""
    group = _help("track", "--help", path=path)
    assert group.startswith("Brug: onboarding track [TILVALG] KOMMANDO [ARGUMENTER]...")
    assert "advance  Tag et skridt på ét spor eller på alle spor" in group
    command = _help("track", "advance", "--help", path=path)
    example = "onboarding track advance 12 agree_date --set connection_date=2021-09-01"
    for text in (
        "Brug: onboarding track advance [TILVALG]",
        "Tag et skridt på ét spor",
        "Eksempler:",
        example,
        "Tilvalg:",
        "En note til historikken.",
        "Den rolle, du handler i",
        "[standard: coordinator]",
    ):
        assert text in command, text
    english = _help("--lang", "en", "track", "advance", "--help", path=path)
    for text in (
        "Usage: onboarding track advance [OPTIONS]",
        "Examples:",
        example,
        "A note for the history.",
        "[default: coordinator]",
    ):
        assert text in english, text


def test_help_paragraph_not_in_catalogue_stays_english() -> None:
    """A help paragraph the catalogue lacks is shown as written (never dropped), and a
    paragraph of command lines is never looked up."""
    from onboarding.commands.helptext import help_text

    i18n.choose("da")
    try:
        text = "Paint the grid.\n\nExample:\n\n    onboarding brand-new --colour red"
        assert help_text(text) == (
            "Paint the grid.\n\nEksempel:\n\n    onboarding brand-new --colour red"
        )
    finally:
        i18n.choose(None)
    assert help_msgid("    onboarding brand-new\n    onboarding other") is None


@pytest.mark.parametrize("lang", ["da", "en"])
def test_help_user_error_line_is_in_the_cli_language(path: str, lang: str, tmp_path: Path) -> None:
    """A user error is one line in the CLI's language, its prefix too ("Fejl: ..." /
    "Error: ..."), the same by the fast path and by click, exit code 2; a missing database
    is said in that language as well."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_")}
    env["ONBOARDING_LANG"] = lang
    if path == "click only":
        env["ONBOARDING_CLICK_ONLY"] = "1"
    program = str(Path(sys.executable).parent / "onboarding")
    db = tmp_path / "onboarding.db"
    subprocess.run([program, "init", "--db", str(db)], env=env, capture_output=True, check=True)
    expected = {
        ("track", "show", "99"): {
            "da": "Fejl: ukendt spor '99'",
            "en": "Error: unknown track '99'",
        },
        ("workflow", "show", "nosuch"): {"da": "Fejl: ", "en": "Error: "},
    }
    for args, said in expected.items():
        proc = subprocess.run(
            [program, *args, "--db", str(db)], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(said[lang]) and proc.stderr.count("\n") == 1, proc.stderr
    missing = subprocess.run(
        [program, "track", "show", "1", "--db", str(tmp_path / "none.db")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2
    assert (
        "findes ikke: kør 'onboarding init' først" if lang == "da" else "does not exist: run"
    ) in missing.stderr, missing.stderr
