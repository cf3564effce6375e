"""``onboarding backup`` and ``onboarding restore``."""

from __future__ import annotations

import click

from onboarding.commands.common import (
    db_option,
)


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@db_option
def backup_cmd(file: str, force: bool, db_path: str | None) -> None:
    """Copy the database to FILE with SQLite's online backup, safe while others write.

    Example:

        onboarding backup backups/onboarding-2021-06-30.db
    """
    from pathlib import Path

    from onboarding import backup
    from onboarding.db import resolve_path

    info = backup.backup(resolve_path(db_path), Path(file), overwrite=force)
    click.echo(
        f"backed up to {info['file']}: {info['tracks']} tracks, "
        f"{info['history_rows']} history rows ({info['bytes']} bytes)"
    )


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@db_option
def restore_cmd(file: str, db_path: str | None) -> None:
    """Replace the database with a backup, after checking it is a sound database of this tool.

    The current database is kept next to it as <db>.before-restore-<time>.db.

    Example:

        onboarding restore backups/onboarding-2021-06-30.db --db onboarding.db
    """
    from pathlib import Path

    from onboarding import backup
    from onboarding.db import resolve_path

    info = backup.restore(Path(file), resolve_path(db_path))
    click.echo(
        f"restored {info['file']}: {info['tracks']} tracks, {info['history_rows']} history rows"
    )
    if info["kept"]:
        click.echo(f"the database before the restore is kept as {info['kept']}")
    if info["pending_migrations"]:
        click.echo("the backup has an older schema: run 'onboarding init' to upgrade it")
    elif info["audit"]:
        click.echo(info["audit"])
