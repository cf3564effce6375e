"""What every click command shares: the error-mapping group, common options (built from
``onboarding.commands.spec``) and, re-exported from ``onboarding.commands.base``, opening the
database and printing tables and JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from onboarding.commands import spec
from onboarding.commands.base import (
    Labels,
    Refused,
    _cell,
    _display,
    _echo_history,
    _fit,
    _key_created,
    _mail_config,
    _on_terminal,
    _parse_at,
    _parse_day,
    _today,
    _track_id,
    _warnings_to_stderr,
    actor_name,
    columns,
    command_errors,
    database,
    day,
    echo,
    echo_json,
    echo_table,
    error_line,
    lang,
    moment,
    open_db,
    parse_sets,
    read_scope,
    say,
    shown_local,
    t,
    tn,
)
from onboarding.commands.helptext import (
    first_paragraph,
    help_msgid,
    help_paragraphs,
    help_text,
    help_word,
    install_click_words,
    option_help,
    usage_args,
)

# click's own sentences (usage errors) in the CLI's language, from here on
install_click_words()

#: Re-exported from onboarding.commands.base: the commands import them from here.
__all__ = [
    "Labels",
    "Refused",
    "_cell",
    "_display",
    "_echo_history",
    "_fit",
    "_key_created",
    "_mail_config",
    "_on_terminal",
    "_parse_at",
    "_parse_day",
    "_today",
    "_track_id",
    "_warnings_to_stderr",
    "actor_name",
    "command_errors",
    "database",
    "day",
    "echo",
    "echo_json",
    "echo_table",
    "error_line",
    "help_msgid",
    "help_paragraphs",
    "help_text",
    "lang",
    "moment",
    "open_db",
    "option_help",
    "parse_sets",
    "read_scope",
    "say",
    "shown_local",
    "t",
    "tn",
]

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A user error: printed as one line in the CLI's language, exit code 2, nothing
    changed."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        # A command's own sentence is its English message id (a library error comes already
        # said in the CLI's language, and is not in the catalogue as such: shown as it is).
        click.echo(error_line(t(self.format_message())), file=file, err=file is None)


class _Formatter(click.HelpFormatter):
    """click's help formatter, fitted to the terminal as click fits it (issue 14: 'onboarding
    --help' need not import shutil for that), and speaking the CLI's language: every text it
    is given (help, option help, headings, click's own words) is looked up in the catalogue,
    its English being the message id (``help_text``, ``option_help``)."""

    def __init__(
        self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None
    ) -> None:
        if width is None and click.formatting.FORCED_WIDTH is None:
            width = max(min(columns(), max_width or 80) - 2, 50)
        super().__init__(indent_increment, width, max_width)

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        if prefix is None:
            prefix = help_word("Usage:") + " "
        super().write_usage(prog, usage_args(args), prefix)

    def write_heading(self, heading: str) -> None:
        super().write_heading(help_word(heading))

    def write_text(self, text: str) -> None:
        super().write_text(help_text(text))

    def write_dl(
        self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        super().write_dl([(term, option_help(text)) for term, text in rows], col_max, col_spacing)


class _Context(click.Context):
    formatter_class = _Formatter


class Group(click.Group):
    """A click group that turns library user errors into ``UserError``, and whose commands'
    help is in the CLI's language."""

    context_class = _Context

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and command.context_class is click.Context:
            # A plain command's help goes through our formatter too (and so is translated):
            # the command modules keep click's decorators.
            command.context_class = _Context
        return name, command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with each summary translated before it is cut to the width."""
        commands = [
            (name, command)
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        rows = [(name, short_help(c.short_help or c.help or "", limit)) for name, c in commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with command_errors():
                return super().invoke(ctx)
        except Refused as exc:
            if isinstance(exc, click.ClickException):  # a UserError already
                raise
            raise UserError(exc.message) from exc


def short_help(text: str, limit: int) -> str:
    """A command's summary for a listing: its help's first paragraph, translated, then cut to
    ``limit`` as click cuts it."""
    return click.Command(None, help=first_paragraph(text)).get_short_help_str(limit)


#: click's types for the spec's type names (onboarding.commands.spec.TYPES)
_TYPES: dict[str, Any] = {
    "text": None,
    "int": int,
    "int>=1": click.IntRange(min=1),
    "file": click.Path(dir_okay=False, readable=False),
}


def click_option(opt: spec.Opt) -> Callable[[F], F]:
    """The click option of a spec entry (the fast path reads the same entry)."""
    extra: dict[str, Any] = {}
    if opt.kind == "flag":
        extra["is_flag"] = True
    else:
        extra["default"] = opt.default
        if opt.kind == "multiple":
            extra["multiple"] = True
    if opt.envvar is not None:
        extra["envvar"] = opt.envvar
    if _TYPES[opt.type] is not None:
        extra["type"] = _TYPES[opt.type]
    if opt.metavar is not None:
        extra["metavar"] = opt.metavar
    if opt.show_default:
        extra["show_default"] = True
    if opt.complete is not None:
        extra["shell_complete"] = complete(opt.complete)
    decorator: Callable[[F], F] = click.option(*opt.decls, opt.dest, help=opt.help, **extra)
    return decorator


def click_params(command: spec.Spec) -> Callable[[F], F]:
    """All arguments and options of a spec, in its order (click lists them as declared)."""

    def decorate(func: F) -> F:
        for opt in reversed(command.options):
            func = click_option(opt)(func)
        for arg in reversed(command.args):
            extra: dict[str, Any] = {}
            if arg.nargs != 1:
                extra.update(nargs=arg.nargs, required=True)
            if arg.metavar is not None:
                extra["metavar"] = arg.metavar
            if arg.complete is not None:
                extra["shell_complete"] = complete(arg.complete)
            func = click.argument(arg.name, **extra)(func)
        return func

    return decorate


db_option = click_option(spec.DB)
json_option = click_option(spec.JSON)
reader_option = click_option(spec.READER)


def actor_options(func: F) -> F:
    return click_option(spec.ACTOR)(click_option(spec.ROLE)(func))


def log_format_option(func: F) -> F:
    """``--log-format json|text`` of the long-running commands (onboarding.logs)."""
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        envvar="ONBOARDING_LOG_FORMAT",
        default="text",
        show_default=True,
        help="Log lines on stderr: text, or one JSON object per event (for journald, Loki).",
    )(func)


def complete(name: str) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    """A ``shell_complete`` callback of ``onboarding.completion``, imported only on a TAB (so
    no command pays for it at start)."""

    def callback(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from onboarding import completion

        result: list[Any] = getattr(completion, name)(ctx, param, incomplete)
        return result

    return callback
