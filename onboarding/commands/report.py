"""``onboarding report``: the status tables (rollout, buckets, goals, grid, KLIK, overdue,
waves)."""

from __future__ import annotations

import json

import click

from onboarding.commands.common import (
    Group,
    UserError,
    _parse_day,
    _today,
    database,
    db_option,
    echo_json,
    json_option,
    read_scope,
    reader_option,
    t,
)


@click.group(cls=Group)
def report() -> None:
    """Reports that regenerate the programme deck's tables from the database.

    Example:

        onboarding report rollout --as-of 2021-03-31
    """


@report.command("rollout")
@click.option("--category", help="Only this category (Jobcenter, ESDH, EOJ, Pladsanvisning).")
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "html"]),
    default=None,
    help="Output format (default: table); html is one self-contained file with the chart.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write to this file, not stdout."
)
@db_option
@json_option
def report_rollout(
    category: str | None,
    as_of: str | None,
    fmt: str | None,
    output: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Rollout per vendor solution: municipalities in operation, agreed, not agreed, total.

    One row per system some municipality has a contract for, grouped by category, with a
    total per category computed from the rows and the number of distinct municipalities.
    --as-of replays history, so a past date gives the past picture.

    Example:

        onboarding report rollout --as-of 2021-03-31 --format html -o rollout.html
    """
    from onboarding import reports
    from onboarding.storage import check_output, write_text

    if as_json and fmt not in (None, "json"):
        raise UserError(f"--json and --format {fmt} disagree: give one of them")
    fmt = "json" if as_json else fmt or "table"
    if output:
        check_output(output)  # before any work: a missing folder is one line
    with database(db_path) as db:
        data = reports.rollout(db, category, _parse_day(as_of, "--as-of"))
        if fmt == "json":
            text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        elif fmt == "csv":
            text = reports.rollout_csv(data)
        elif fmt == "html":
            text = reports.rollout_html(db, data)
        else:
            text = reports.rollout_text(data)
    if output:
        write_text(output, text)  # whole or not at all; a missing folder is one line
        click.echo(t("wrote %(file)s", file=output))
    else:
        click.echo(text, nl=False)


@report.command("buckets")
@click.argument("definition")
@click.option(
    "--by",
    type=click.Choice(["municipality", "vendor", "system", "region"]),
    default=None,
    help="One row per municipality, vendor, system or region (default: only the total).",
)
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "html"]),
    default="table",
    show_default=True,
    help="Output format; html is one self-contained file.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write to this file, not stdout."
)
@reader_option
@db_option
@json_option
def report_buckets(
    definition: str,
    by: str | None,
    as_of: str | None,
    fmt: str,
    output: str | None,
    reader: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Tracks of any definition per report bucket (per state if it declares no buckets).

    Each track counts once, in the bucket of its state at the end of the --as-of day,
    replayed from history as the rollout report is, so a past date gives the past picture.
    'onboarding workflow list' names the definitions.

    Example:

        onboarding report buckets dpo-approval --by municipality --as-of 2021-06-30
    """
    from onboarding import reports
    from onboarding.storage import check_output, write_text

    if output:
        check_output(output)  # before any work: a missing folder is one line
    with database(db_path) as db:
        scope = read_scope(db, reader)
        data = reports.buckets(db, definition, by, _parse_day(as_of, "--as-of"), scope)
    if as_json:
        fmt = "json"
    if fmt == "json":
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    elif fmt == "csv":
        text = reports.buckets_csv(data)
    elif fmt == "html":
        text = reports.buckets_html(data)
    else:
        text = reports.buckets_text(data)
    if output:
        write_text(output, text)  # whole or not at all
        click.echo(t("wrote %(file)s", file=output))
    else:
        click.echo(text, nl=False)


@report.command("goals")
@click.option(
    "--year", type=int, default=None, help="The goals' year (default: the --as-of date's year)."
)
@click.option("--quarter", type=click.IntRange(1, 4), default=None, help="Only this quarter.")
@click.option(
    "--as-of", "as_of", metavar="DATE", help="The report as it stood at the end of this day."
)
@db_option
@json_option
def report_goals(
    year: int | None, quarter: int | None, as_of: str | None, db_path: str | None, as_json: bool
) -> None:
    """Quarterly targets against the actual numbers at each quarter's end: met or missed.

    Targets come from the shipped goals file of the year (the deck's 2021 goals); counters the
    tool cannot derive are recorded with 'onboarding goals record'. With --as-of, quarters
    not ended by then are measured at that date, replayed from history.

    Example:

        onboarding report goals --year 2021 --quarter 2 --as-of 2021-06-30
    """
    from onboarding import reports

    day = _parse_day(as_of, "--as-of") or _today()
    with database(db_path) as db:
        data = reports.goals(db, year or day.year, quarter, today=day)
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.goals_text(data), nl=False)


@report.command("grid")
@click.option("--category", help="Only systems of this category.")
@click.option("--as-of", "as_of", metavar="DATE", help="The grid at the end of this day.")
@reader_option
@db_option
@json_option
def report_grid(
    category: str | None,
    as_of: str | None,
    reader: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """The portfolio at a glance: municipality by system, current step and days in it.

    Each cell is step:working days in it; ok = in operation; * marks an outlier (far longer
    in the step than the others there), ! an overdue step. --as-of replays history, so a
    past date gives the past grid.

    Example:

        onboarding report grid --category Jobcenter --as-of 31-03-2021
    """
    from onboarding import reports

    with database(db_path) as db:
        scope = read_scope(db, reader)
        data = reports.grid(db, category, as_of=_parse_day(as_of, "--as-of"), scope=scope)
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.grid_text(data), nl=False)


@report.command("klik")
@click.option("--task", help="One KLIK task (name or part of it), with its open municipalities.")
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@reader_option
@db_option
@json_option
def report_klik(
    task: str | None, as_of: str | None, reader: str | None, db_path: str | None, as_json: bool
) -> None:
    """KLIK tasks: municipalities Fuldført / Påbegyndt / Ikke påbegyndt per task.

    Example:

        onboarding report klik --task GDPR --as-of 2021-04-27
    """
    from onboarding import reports

    with database(db_path) as db:
        scope = read_scope(db, reader)
        data = reports.klik(db, task, _parse_day(as_of, "--as-of"), scope=scope)
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.klik_text(data), nl=False)


@report.command("overdue")
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@click.option(
    "--role",
    metavar="ROLE",
    help="Only steps waiting on this role (who must act next), e.g. agreement-admin.",
)
@click.option("--vendor", metavar="NAME", help="Only tracks of this vendor's systems.")
@reader_option
@db_option
@json_option
def report_overdue(
    as_of: str | None,
    role: str | None,
    vendor: str | None,
    reader: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Open tracks of every workflow past their due date, the longest overdue first.

    --as-of replays history: the tracks open at the end of that day, with the due dates
    their state and fields then gave. --role and --vendor narrow the list to the steps that
    wait on one role, or to one vendor's systems.

    Example:

        onboarding report overdue --as-of 2021-05-10 --role vendor --vendor KMD --json
    """
    from onboarding import reports
    from onboarding.errors import InputError, NotFound
    from onboarding.registry import resolve_vendor
    from onboarding.roles import require_role

    with database(db_path) as db:
        # Checked first, so the one line names the option that was wrong.
        for option, value, check in (
            ("--role", role, lambda v: require_role(v, db)),
            ("--vendor", vendor, lambda v: resolve_vendor(db, v)),
        ):
            try:
                if value:
                    check(value)
            except (InputError, NotFound) as exc:
                raise UserError(f"{option}: {exc}") from None
        scope = read_scope(db, reader)
        data = reports.overdue(
            db,
            today=_parse_day(as_of, "--as-of"),
            role=role or None,
            vendor=vendor or None,
            scope=scope,
        )
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.overdue_text(data), nl=False)


@report.command("waves")
@db_option
@json_option
def report_waves(db_path: str | None, as_json: bool) -> None:
    """Rollout waves B1-B6: go-live dates and municipalities by step.

    Example:

        onboarding report waves
    """
    from onboarding import reports

    with database(db_path) as db:
        data = reports.waves(db)
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.waves_text(data), nl=False)
