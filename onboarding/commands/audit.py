"""``onboarding audit``: verify, anchor and export the hash-chained history."""

from __future__ import annotations

import sys
from typing import Any

import click

from onboarding.commands.common import (
    Group,
    _key_created,
    database,
    db_option,
    echo_json,
    json_option,
    say,
    t,
)


@click.group(cls=Group)
def audit() -> None:
    """The tamper-evident audit trail: verify the history's hash chain, anchor it, export it.

    Example:

        onboarding audit verify && onboarding audit export --format csv -o trail.csv
    """


#: Exit code of 'audit verify' for a broken chain: not a user error (2), not a crash (1).
AUDIT_BROKEN_EXIT = 3


@audit.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="FILE|TEXT",
    help="An anchor kept elsewhere ('audit anchor': a file of statements, a statement's text, "
    "- for stdin, or a bare head hash): the history must still extend it.",
)
@click.option(
    "--key",
    "trusted",
    multiple=True,
    metavar="FINGERPRINT",
    help="Accept only anchors signed by this key (SHA256:…, kept from the first anchor); "
    "default: this database's key file, when there is one.",
)
@db_option
@json_option
def audit_verify(
    anchors: tuple[str, ...], trusted: tuple[str, ...], db_path: str | None, as_json: bool
) -> None:
    """Check the hash chain over every history row; exit 3 if any row was edited, inserted
    or deleted, naming the first bad one.

    With --anchor, also prove that the history still extends each anchored head ('audit
    anchor'): exit 2 for a malformed or wrongly signed anchor, 3 when the history was
    rewritten up to it (docs/audit.md).

    Example:

        onboarding audit verify --anchor anchors.txt
    """
    from onboarding import audit as audit_mod
    from onboarding.db import resolve_path

    hashes: list[str] = []
    signed: list[Any] = []
    for value in anchors:
        found, bare = audit_mod.read_anchor_option(value, sys.stdin)
        signed.extend(found)
        hashes.extend(bare)
    with database(db_path) as db:
        local = None
        if signed and not trusted:
            key = audit_mod.load_key(audit_mod.key_path(resolve_path(db_path)))
            local = audit_mod.public_key(key) if key is not None else None
        audit_mod.check_anchors(db, signed, local, trusted)
        result = audit_mod.verify(db, hashes, signed)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(say(result.line()))
    if signed and result.ok and not trusted and local is None:
        click.echo(
            t(
                "note: no key file and no --key: the anchors' signatures were checked against"
                " the keys they carry; compare the fingerprint with the one you kept"
            ),
            err=True,
        )
    if not result.ok:
        raise click.exceptions.Exit(AUDIT_BROKEN_EXIT)


@audit.command("anchor")
@click.option(
    "--mail",
    "addresses",
    multiple=True,
    metavar="ADDRESS",
    help="Also mail the statement to this address (the auditor's), with the mail settings.",
)
@db_option
@json_option
def audit_anchor(addresses: tuple[str, ...], db_path: str | None, as_json: bool) -> None:
    """Verify the chain, then print a signed statement of its head (row, hash, time, this
    database's identity) to keep outside the system; exit 3 if the chain is broken.

    A later 'audit verify --anchor' proves the history still extends it. The signing key is
    <database>.audit-key (or $ONBOARDING_AUDIT_KEY), created by 'init'; back it up apart
    from the database (docs/audit.md).

    Example:

        onboarding audit anchor --mail revisor@kommune.dk >> anchors.txt
    """
    from onboarding import audit as audit_mod
    from onboarding.db import resolve_path

    path = resolve_path(db_path)
    with database(db_path) as db:
        key_file = audit_mod.key_path(path)
        key = audit_mod.load_key(key_file)
        if key is None:  # a database from before anchors: make its key now, and say so
            check = audit_mod.verify(db)  # but never a key (or an anchor) for a broken chain
            if not check.ok:
                click.echo(say(check.line()))
                raise click.exceptions.Exit(AUDIT_BROKEN_EXIT)
            audit_mod.require_history(check)
            key, created = audit_mod.ensure_key(key_file)
            if created:
                click.echo(_key_created(key_file, audit_mod.public_key(key)), err=True)
        result, anchor = audit_mod.take_anchor(db, key)
        if anchor is None:
            click.echo(say(result.line()))
            raise click.exceptions.Exit(AUDIT_BROKEN_EXIT)
        warning = audit_mod.key_mode_warning(key_file)
        if warning:
            click.echo(t("warning: %(message)s", message=say(warning)), err=True)
        if as_json:
            echo_json({**anchor.summary(), "database": anchor.database, "text": anchor.text()})
        else:
            click.echo(anchor.text(), nl=False)
        for address in addresses:
            where = audit_mod.mail_anchor(db, path, anchor, [address])
            click.echo(
                t("anchor for %(address)s: %(where)s", address=address, where=say(where)),
                err=True,
            )


@audit.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON lines, or CSV (cells a spreadsheet would run as formulas get a leading ').",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write to this file, not stdout."
)
@db_option
def audit_export(fmt: str, output: str | None, db_path: str | None) -> None:
    """Write every history row with its hash and the previous row's hash, in chain order.

    Example:

        onboarding audit export --format csv -o audit-2021.csv
    """
    from onboarding import audit as audit_mod
    from onboarding.storage import check_output, writing

    if output:
        check_output(output)  # before any work: a missing folder is one line
    with database(db_path) as db:
        if output:
            with writing(output, newline="") as f:
                n = audit_mod.export(db, f, fmt)
            click.echo(
                t("wrote %(n)s history rows to %(file)s", n=n, file=output),
                err=True,
            )
        else:
            audit_mod.export(db, sys.stdout, fmt)
