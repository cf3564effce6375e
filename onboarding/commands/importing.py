"""``onboarding import``: monthly status reports."""

from __future__ import annotations

import click

from onboarding.commands.common import (
    Group,
    database,
    db_option,
    echo_json,
    json_option,
    lang,
    t,
)


@click.group("import", cls=Group)
def import_group() -> None:
    """Import the municipalities' monthly status reports.

    Registry files (municipalities, systems, contracts, contacts) go through 'onboarding
    registry import'. See docs/reports.md for the status file format.

    Example:

        onboarding import status status-2021-03.csv --dry-run
    """


@import_group.command("status")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and count what would change.")
@db_option
@json_option
def import_status_cmd(file: str, dry_run: bool, db_path: str | None, as_json: bool) -> None:
    """Apply a monthly status file: every row, or if any row is bad, none.

    Columns: municipality,system,status,date and optionally index, note, kind, bob and a
    column per workflow field (e.g. connection_date). status is a state of the connection
    workflow or a report bucket: 'I drift', 'Aftalt', 'Endnu ikke aftalt' (in the terms of
    the definition version the row's track runs). Each row moves its track forward by the
    shortest path, each step recorded with actor 'import' at the row's moment (a date alone:
    the start of that day); importing an accepted file again changes nothing. Once actors are
    registered, the 'import' actor's importer scope must cover every row. Rows of kind
    system-readiness declare systems ready (the municipality column is the pilot). UTF-8 (with
    or without BOM) or Windows-1252, comma or semicolon.

    Example:

        onboarding import status status-2021-03.csv
    """
    from onboarding.status_import import import_status

    with database(db_path) as db:
        result = import_status(db, file, dry_run=dry_run)
    if as_json:
        echo_json(result.to_dict())
        return
    prefix = t("dry run, nothing written: ") if dry_run else ""
    click.echo(f"{file}: {prefix}{result.summary(lang())}")
    notable = [o for o in result.outcomes if o.outcome in ("past", "finished")]
    for o in notable[:20]:
        line = (
            "  line %(line)s: %(subject)s: left as it is (track #%(track)s is finished)"
            if o.outcome == "finished"
            else "  line %(line)s: %(subject)s: left as it is (track #%(track)s is already past it)"
        )
        click.echo(t(line, line=o.line, subject=o.subject, track=o.track))
