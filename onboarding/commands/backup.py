"""``onboarding backup`` and ``onboarding restore``."""

from __future__ import annotations

import click

from onboarding.commands.common import (
    db_option,
    say,
    t,
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
        t(
            "backed up to %(file)s: %(tracks)s tracks, %(rows)s history rows (%(bytes)s bytes)",
            file=info["file"],
            tracks=info["tracks"],
            rows=info["history_rows"],
            bytes=info["bytes"],
        )
    )


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--from-replica",
    "replica",
    metavar="URL_OR_DIR",
    help="Restore from a Litestream replica (a folder or an s3:// URL, as given to "
    "'onboarding replicate --to') instead of a backup FILE.",
)
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="With --from-replica: the state as of this time (2021-06-30T14:00, Copenhagen time "
    "unless it has an offset), not the latest.",
)
@db_option
def restore_cmd(file: str | None, replica: str | None, at: str | None, db_path: str | None) -> None:
    """Replace the database with a backup, after checking it is a sound database of this tool.

    The current database is kept next to it as <db>.before-restore-<time>.db. With
    --from-replica the latest (or --at TIME) state of a replica is first restored into a new
    file and checked (integrity, application id, schema, audit verify); only then does it
    replace the database.

    Example:

    \b
        onboarding restore backups/onboarding-2021-06-30.db --db onboarding.db
        onboarding restore --from-replica /srv/replica/onboarding --at 2021-06-30T14:00
    """
    from pathlib import Path

    from onboarding import backup
    from onboarding.commands.common import UserError
    from onboarding.db import resolve_path

    if (file is None) == (replica is None):
        raise UserError("give a backup FILE or --from-replica URL_OR_DIR (one of them)")
    if at is not None and replica is None:
        raise UserError("--at needs --from-replica: a backup file holds one moment only")
    if replica is not None:
        from onboarding import clock, replication

        moment = clock.parse_time(at, what="--at") if at is not None else None
        info = replication.restore_from_replica(replica, resolve_path(db_path), at=moment)
    else:
        info = backup.restore(Path(file or ""), resolve_path(db_path))
    click.echo(
        t(
            "restored %(file)s: %(tracks)s tracks, %(rows)s history rows",
            file=info["file"],
            tracks=info["tracks"],
            rows=info["history_rows"],
        )
    )
    if info["kept"]:
        click.echo(t("the database before the restore is kept as %(file)s", file=info["kept"]))
    if info["pending_migrations"]:
        click.echo(t("the backup has an older schema: run 'onboarding init' to upgrade it"))
    elif info["audit"]:
        click.echo(say(info["audit"]))
