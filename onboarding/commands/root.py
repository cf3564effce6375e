"""The root click group: subcommands imported on first use (click's lazy group pattern)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import click

from onboarding.commands import COMMANDS, LANG_ENV, LANG_HELP, LANGS, ROOT_HELP
from onboarding.commands.common import Group, short_help


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

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, and a misspelt command name is answered with the names it is near
        (click looks for them among the commands it has loaded: none, in a lazy group)."""
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as exc:
            if exc.possibilities:
                raise
            raise click.NoSuchCommand(exc.command_name, possibilities=COMMANDS, ctx=ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, short_help(text, limit)) for name, (_, _, text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, help=ROOT_HELP, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="onboarding")
@click.option(
    "--lang",
    type=click.Choice(list(LANGS)),
    envvar=LANG_ENV,
    default=None,
    # eager, and chosen at once: '--lang en --help' shows the help in English
    is_eager=True,
    callback=lambda ctx, param, value: _choose(value),  # returns the value: it is the option's
    help=LANG_HELP,
)
def cli(lang: str | None) -> None:
    # The help text is ROOT_HELP (onboarding.commands): 'onboarding --help' prints it
    # without click (onboarding.commands.fast.root_help), translated as here.
    _choose(lang)


def _choose(lang: str | None) -> str | None:
    from onboarding import i18n

    i18n.choose(lang)
    return lang
