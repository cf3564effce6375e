"""The ``onboarding`` command line: parse options, call one library function, format the result.

The commands live in ``onboarding.commands``, one module per command group, and are imported
only when invoked (click's lazy group pattern), so a command pays only for what it uses and
``onboarding --help`` imports no command module at all. User errors
(``onboarding.errors.OnboardingError``) become one line on stderr and exit code 2; anything
else is a bug and exits 1.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from onboarding.commands.common import Group, short_help

#: Command name -> (module in onboarding.commands, attribute, summary). The summary is the
#: first paragraph of the command's help, kept here so that listing the commands loads none
#: of them; tests/test_docs.py checks that it matches.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "actor": (
        "actor",
        "actor",
        "Who may do what: register actors and grant them roles for a municipality, a vendor"
        " or all.",
    ),
    "audit": (
        "audit",
        "audit",
        "The tamper-evident audit trail: verify the history's hash chain, anchor it, export it.",
    ),
    "backup": (
        "backup",
        "backup_cmd",
        "Copy the database to FILE with SQLite's online backup, safe while others write.",
    ),
    "demo": (
        "demo",
        "demo_cmd",
        "Build a demo: the 98 municipalities, the deck's picture of 31 March 2021, a quarter.",
    ),
    "goals": (
        "goals",
        "goals_group",
        "Goal counters the tool cannot derive (SAPA users, cancelled Manuelle sager, ...).",
    ),
    "history": (
        "history",
        "history_cmd",
        "Show the history of all tracks, oldest first: who did what, when.",
    ),
    "import": ("importing", "import_group", "Import the municipalities' monthly status reports."),
    "init": ("init", "init", "Create the database, or upgrade its schema; safe to run again."),
    "mail": (
        "mail",
        "mail",
        "Mail settings kept in the database: sender, Message-ID domain, language, digest, SMTP.",
    ),
    "registry": (
        "registry",
        "registry",
        "Municipalities, vendors, systems, contracts and contacts.",
    ),
    "reminders": (
        "reminders",
        "reminders",
        "Reminders, notices and escalations by email: send, list, preview, retry, forecast.",
    ),
    "report": (
        "report",
        "report",
        "Reports that regenerate the programme deck's tables from the database.",
    ),
    "replicate": (
        "replicate",
        "replicate_cmd",
        "Replicate the database continuously to a folder or an S3 bucket, until SIGTERM or"
        " Ctrl-C.",
    ),
    "restore": (
        "backup",
        "restore_cmd",
        "Replace the database with a backup, after checking it is a sound database of this tool.",
    ),
    "scheduler": (
        "scheduler",
        "scheduler",
        "The long-running sender: wakes when a notification falls due and sends it.",
    ),
    "serve": (
        "serve",
        "serve_cmd",
        "Start the coordinators' web page over the database (login with an actor's password).",
    ),
    "track": (
        "track",
        "track",
        "Onboarding tracks: start, advance, set fields, show, list, history, why.",
    ),
    "workflow": (
        "workflow",
        "workflow",
        "Workflow definitions: list, show, validate, add, diagram, migrate.",
    ),
}


class LazyGroup(Group):
    """The root group: subcommands are imported on first use."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Any:
        """Run as the program; when the arguments come from the command line (not from a
        caller such as click's test runner), the objects built so far are frozen for the
        garbage collector first: the collections the interpreter runs as it exits would
        traverse every module's objects to find nothing (about a third of a bare
        interpreter's start, measured: bench/FINDINGS.md). Nothing else about exiting changes:
        open files are flushed and closed, atexit handlers run."""
        if args is None:
            try:
                return super().main(args, *rest, **kwargs)
            finally:
                import gc

                gc.freeze()
        return super().main(args, *rest, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"onboarding.commands.{entry[0]}")
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, short_help(text, limit)) for name, (_, _, text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onboarding")
@click.option(
    "--lang",
    type=click.Choice(["da", "en"]),
    envvar="ONBOARDING_LANG",
    default=None,
    # eager, and chosen at once: '--lang en --help' shows the help in English
    is_eager=True,
    callback=lambda ctx, param, value: _choose(value),  # returns the value: it is the option's
    help="Language of messages, labels and the HTML report (default da; env ONBOARDING_LANG).",
)
def cli(lang: str | None) -> None:
    """Track how Denmark's municipalities connect their systems to the common infrastructure.

    Start with 'onboarding init', then 'onboarding track start' and 'onboarding track advance'.
    Every command takes --help.

    Example:

        onboarding init && onboarding registry list municipalities
    """
    _choose(lang)


def _choose(lang: str | None) -> str | None:
    from onboarding import i18n

    i18n.choose(lang)
    return lang


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
