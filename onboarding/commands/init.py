"""``onboarding init``: create or upgrade the database."""

from __future__ import annotations

from typing import Any

import click

from onboarding.commands.common import (
    _key_created,
    db_option,
    t,
    tn,
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
        click.echo(
            t(
                "%(db)s: schema version %(version)s (%(n)s migration(s) applied)",
                db=path,
                version=version,
                n=len(applied),
            )
        )
    else:
        click.echo(
            t("%(db)s: schema version %(version)s, already current", db=path, version=version)
        )
    if seeded:
        counts = ", ".join(_seeded(what, n) for what, n in seeded.items())
        click.echo(t("seeded: %(counts)s", counts=counts))
    if added:
        click.echo(t("workflows: %(names)s", names=", ".join(added)))
    _init_audit_key(path)


#: What 'init' seeds (``registry.seed``'s kinds), as counted in a line.
_SEEDED = {
    "municipalities": ("%(n)s municipality", "%(n)s municipalities"),
    "vendors": ("%(n)s vendor", "%(n)s vendors"),
    "systems": ("%(n)s system", "%(n)s systems"),
    "indices": ("%(n)s index", "%(n)s indices"),
    "KLIK tasks": ("%(n)s KLIK task", "%(n)s KLIK tasks"),
    "waves": ("%(n)s wave", "%(n)s waves"),
}


def _seeded(what: str, n: int) -> str:
    """"98 municipalities" in the CLI's language (a kind not listed: as it is named)."""
    forms = _SEEDED.get(what)
    return tn(*forms, n) if forms else f"{n} {what}"


def _init_audit_key(path: Any) -> None:
    """The key that signs audit anchors, next to the database, made once (docs/audit.md)."""
    from onboarding import audit as audit_mod

    key_file = audit_mod.key_path(path)
    key, created = audit_mod.ensure_key(key_file)
    if created:
        click.echo(_key_created(key_file, audit_mod.public_key(key)))
