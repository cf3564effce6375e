"""What every command shares: the error-mapping group, common options, opening the database,
and printing tables and JSON.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A user error: printed as one line, exit code 2, nothing changed."""

    exit_code = 2


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` reads it ($COLUMNS, else stdout's
    terminal, else 80), without importing ``shutil`` (and its bz2, lzma, zlib) at start."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(click.HelpFormatter):
    """click's help formatter, fitted to the terminal as click fits it (issue 14: 'onboarding
    --help' need not import shutil for that)."""

    def __init__(
        self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None
    ) -> None:
        if width is None and click.formatting.FORCED_WIDTH is None:
            width = max(min(_columns(), max_width or 80) - 2, 50)
        super().__init__(indent_increment, width, max_width)


class _Context(click.Context):
    formatter_class = _Formatter


class Group(click.Group):
    """A click group that turns library user errors into ``UserError``."""

    context_class = _Context

    def invoke(self, ctx: click.Context) -> Any:
        import sqlite3

        from onboarding.db import NotInitialised
        from onboarding.errors import OnboardingError
        from onboarding.storage import describe

        try:
            with _warnings_to_stderr():
                return super().invoke(ctx)
        except (OnboardingError, NotInitialised) as exc:
            raise UserError(str(exc)) from exc
        except (sqlite3.Error, OSError) as exc:
            # A storage fault that no 'database()' block named a file for (a full disk, a
            # read-only file system): still one line. Anything else is a bug (exit 1).
            error = describe(exc)
            if error is None:
                raise
            raise UserError(str(error)) from exc


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Our warnings (a date far from the step) as one line each on stderr, once per message,
    when the command has succeeded: a refused command says only why (one line)."""
    import warnings

    from onboarding.clock import FarDateWarning

    seen: list[str] = []

    def keep(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        if str(message) not in seen:
            seen.append(str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("always", FarDateWarning)
        warnings.showwarning = keep
        yield
    for text in seen:
        click.echo(f"warning: {text}", err=True)


def _on_terminal() -> bool:
    """Whether stdout is a terminal: only there are tables fitted to its width."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        envvar="ONBOARDING_DB",
        # readable=False: an unreadable file is said in one line by onboarding.storage
        type=click.Path(dir_okay=False, readable=False),
        default=None,
        help="Database file (default: $ONBOARDING_DB, else ./onboarding.db).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def actor_options(func: F) -> F:
    func = click.option(
        "--role",
        envvar="ONBOARDING_ROLE",
        default="coordinator",
        show_default=True,
        help="The role you act in (see 'onboarding workflow show').",
    )(func)
    return click.option(
        "--actor",
        envvar="ONBOARDING_ACTOR",
        default=None,
        help="Who acts (default: $ONBOARDING_ACTOR, else your login name).",
    )(func)


def reader_option(func: F) -> F:
    """``--actor`` on a read command: read only what that actor may (onboarding.visibility)."""
    return click.option(
        "--actor",
        "reader",
        envvar="ONBOARDING_ACTOR",
        default=None,
        help="Read as this actor: only what its grants let it read (default: "
        "$ONBOARDING_ACTOR; with neither, everything: the command line trusts its operator).",
    )(func)


def read_scope(db: Any, reader: str | None) -> Any:
    """The ``onboarding.visibility.Scope`` of ``--actor`` (everything without one)."""
    from onboarding import visibility

    return visibility.of(db, reader)


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit trail still needs one
        return os.environ.get("USER") or "unknown"


def complete(name: str) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    """A ``shell_complete`` callback of ``onboarding.completion``, imported only on a TAB (so
    no command pays for it at start)."""

    def callback(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from onboarding import completion

        result: list[Any] = getattr(completion, name)(ctx, param, incomplete)
        return result

    return callback


def open_db(db_path: str | None) -> Any:
    from onboarding.db import open_existing, resolve_path

    return open_existing(resolve_path(db_path))


@contextmanager
def database(db_path: str | None) -> Iterator[Any]:
    """The database for one command, closed when the command is done; a storage fault while
    it is used (full disk, read-only file) becomes one line naming it (onboarding.storage)."""
    from onboarding.db import resolve_path
    from onboarding.storage import guard

    db = open_db(db_path)
    try:
        with guard(resolve_path(db_path), os_errors=False):
            yield db
    finally:
        db.close()


def echo_json(data: Any) -> None:
    import json  # here, as every import of this module: 'onboarding --help' loads it

    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned plain-text table. On a terminal long cells are cut (with "…")
    to fit its width; piped or redirected, nothing is cut (the text goes into mails and files)."""
    if not rows:
        click.echo("(none)")
        return
    import shutil

    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    budget = max(80, shutil.get_terminal_size((80, 24)).columns) - 2 * (len(cols) - 1)
    while _on_terminal() and sum(widths) > budget and max(widths) > 8:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    click.echo("  ".join(c.ljust(w)[:w] for c, w in zip(cols, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(_fit(v, w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _fit(value: str, width: int) -> str:
    if len(value) <= width:
        return value.ljust(width)
    return value[: width - 1] + "…"


def parse_sets(values: Iterable[str], option: str = "--set") -> dict[str, str]:
    """``--set NAME=VALUE`` options as a dict."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"{option} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _parse_at(at: str | None) -> Any:
    from onboarding import clock

    return clock.parse_time(at, what="--at") if at else None


def _track_id(text: str) -> int:
    try:
        return int(text.lstrip("#"))
    except ValueError:
        raise UserError(f"track {text!r}: give the track's number, e.g. 12") from None


def _echo_history(rows: list[dict[str, Any]], with_track: bool) -> None:
    """Two lines per step: when, which track and move; then who, in which role, and why."""
    from onboarding import clock

    if not rows:
        click.echo("(none)")
    for r in rows:
        track = f"#{r['track']}  " if with_track else ""
        move = f"{r['from']} -> {r['to']}" if r["from"] else f"started in {r['to']}"
        click.echo(f"{clock.display(r['at'])}  {track}{r['trigger']}: {move}")
        details = [f"{r['actor']} ({r['role']})"]
        details += [f"{k}={v}" for k, v in r["fields"].items()]
        if r["note"]:
            details.append(f"note: {r['note']}")
        click.echo("                  " + "; ".join(details))


def _mail_config(db_path: str | None, db: Any) -> Any:
    """Mail settings for the database: the environment, its config file, then the settings
    stored in it ('onboarding mail configure'); never options."""
    from notifications.config import load_config
    from onboarding.db import resolve_path

    return load_config(resolve_path(db_path), db=db)


def _parse_day(text: str | None, option: str) -> Any:
    from onboarding import clock

    return clock.parse_date(text, what=option) if text else None


def _today() -> Any:
    from onboarding import clock

    return clock.local_date(clock.now())


def _key_created(key_file: Any, public: bytes) -> str:
    from onboarding import audit as audit_mod

    return (
        f"audit key created: {key_file} (fingerprint {audit_mod.fingerprint(public)}); back it"
        " up apart from the database, see docs/audit.md"
    )
