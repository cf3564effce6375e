"""``onboarding init``: create or upgrade the database."""

from __future__ import annotations

from typing import Any

import click

from onboarding.commands.common import (
    _key_created,
    db_option,
)


@click.command()
@db_option
def init(db_path: str | None) -> None:
    """Create the database, or upgrade its schema; safe to run again.

    A new database is seeded with the 98 municipalities, the vendors and systems of the deck,
    the indices, KLIK tasks and rollout waves, so it is usable at once.

    Example:

        onboarding init --db onboarding.db
    """
    from onboarding.db import connect, initialise, resolve_path, schema_version
    from onboarding.definitions import register_shipped
    from onboarding.registry import seed
    from onboarding.storage import guard, remove_with_journals

    path = resolve_path(db_path)
    created = not path.exists()
    try:
        db = connect(path)  # refuses a file that is not ours or is newer, changing nothing
        try:
            # Each step is idempotent, so an interrupted init is finished by running it again.
            with guard(path):
                applied = initialise(db)
                seeded = seed(db)
                added = register_shipped(db)
                version = schema_version(db)
        finally:
            db.close()
    except BaseException:
        if created:  # a full disk, say: leave no half-made database behind
            remove_with_journals(path)
        raise
    if applied:
        click.echo(f"{path}: schema version {version} ({len(applied)} migration(s) applied)")
    else:
        click.echo(f"{path}: schema version {version}, already current")
    if seeded:
        click.echo("seeded: " + ", ".join(f"{n} {what}" for what, n in seeded.items()))
    if added:
        click.echo("workflows: " + ", ".join(added))
    _init_audit_key(path)


def _init_audit_key(path: Any) -> None:
    """The key that signs audit anchors, next to the database, made once (docs/audit.md)."""
    from onboarding import audit as audit_mod

    key_file = audit_mod.key_path(path)
    key, created = audit_mod.ensure_key(key_file)
    if created:
        click.echo(_key_created(key_file, audit_mod.public_key(key)))
