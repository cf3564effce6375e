"""The ``onboarding`` command line: parse options, call one library function, format the result.

Library modules are imported inside the commands so that ``onboarding --help`` starts fast.
User errors (``onboarding.errors.OnboardingError``) become one line on stderr and exit code 2;
anything else is a bug and exits 1.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A user error: printed as one line, exit code 2, nothing changed."""

    exit_code = 2


class Group(click.Group):
    """A click group that turns library user errors into ``UserError``."""

    def invoke(self, ctx: click.Context) -> Any:
        from onboarding.db import NotInitialised
        from onboarding.errors import OnboardingError

        try:
            return super().invoke(ctx)
        except (OnboardingError, NotInitialised) as exc:
            raise UserError(str(exc)) from exc


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        envvar="ONBOARDING_DB",
        type=click.Path(dir_okay=False),
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


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit trail still needs one
        return os.environ.get("USER") or "unknown"


def open_db(db_path: str | None) -> Any:
    from onboarding.db import open_existing, resolve_path

    return open_existing(resolve_path(db_path))


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned plain-text table (long cells are cut to fit 80 columns)."""
    if not rows:
        click.echo("(none)")
        return
    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    budget = 80 - 2 * (len(cols) - 1)
    while sum(widths) > budget and max(widths) > 8:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    click.echo("  ".join(c.ljust(w)[:w] for c, w in zip(cols, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo(
            "  ".join(_fit(v, w) for v, w in zip(row, widths, strict=True)).rstrip()
        )


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


def parse_sets(values: Iterable[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` options as a dict."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onboarding")
def cli() -> None:
    """Track how Denmark's municipalities connect their systems to the common infrastructure.

    Start with 'onboarding init', then 'onboarding track start' and 'onboarding track advance'.
    Every command takes --help.

    Example:

        onboarding init && onboarding registry list municipalities
    """


@cli.command()
@db_option
def init(db_path: str | None) -> None:
    """Create the database, or upgrade its schema; safe to run again.

    A new database is seeded with the 98 municipalities, the vendors and systems of the deck,
    the indices, KLIK tasks and rollout waves, so it is usable at once.

    Example:

        onboarding init --db onboarding.db
    """
    from onboarding.db import connect, initialise, resolve_path, schema_version
    from onboarding.registry import seed

    path = resolve_path(db_path)
    db = connect(path)
    applied = initialise(db)
    seeded = seed(db)
    version = schema_version(db)
    if applied:
        click.echo(f"{path}: schema version {version} ({len(applied)} migration(s) applied)")
    else:
        click.echo(f"{path}: schema version {version}, already current")
    if seeded:
        click.echo("seeded: " + ", ".join(f"{n} {what}" for what, n in seeded.items()))


# --- registry -------------------------------------------------------------------------------
# (registry commands are added below this line)


# --- workflow -------------------------------------------------------------------------------


# --- track ----------------------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
