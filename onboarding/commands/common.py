"""What every click command shares: the error-mapping group, common options (built from
``onboarding.commands.spec``) and, re-exported from ``onboarding.commands.base``, opening the
database and printing tables and JSON.
"""

from __future__ import annotations

from collections.abc import Callable
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
    "lang",
    "moment",
    "open_db",
    "parse_sets",
    "read_scope",
    "say",
    "shown_local",
    "t",
    "tn",
]

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A user error: printed as one line, exit code 2, nothing changed."""

    exit_code = 2


class _Formatter(click.HelpFormatter):
    """click's help formatter, fitted to the terminal as click fits it (issue 14: 'onboarding
    --help' need not import shutil for that)."""

    def __init__(
        self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None
    ) -> None:
        if width is None and click.formatting.FORCED_WIDTH is None:
            width = max(min(columns(), max_width or 80) - 2, 50)
        super().__init__(indent_increment, width, max_width)


class _Context(click.Context):
    formatter_class = _Formatter


class Group(click.Group):
    """A click group that turns library user errors into ``UserError``."""

    context_class = _Context

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with command_errors():
                return super().invoke(ctx)
        except Refused as exc:
            if isinstance(exc, click.ClickException):  # a UserError already
                raise
            raise UserError(exc.message) from exc


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
