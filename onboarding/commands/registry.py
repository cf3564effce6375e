"""``onboarding registry``: municipalities, vendors, systems and contacts."""

from __future__ import annotations

import click

from onboarding.commands.common import (
    Group,
    database,
    db_option,
    echo_json,
    echo_table,
    json_option,
    read_scope,
    reader_option,
)

IMPORT_KINDS = ("municipalities", "systems", "contracts", "contacts")


LIST_KINDS = ("municipalities", "systems", "vendors", "contracts", "contacts")


#: Table columns per kind; ``--json`` prints every field.
LIST_COLUMNS = {
    "municipalities": ["code", "name", "region", "population"],
    "systems": ["id", "category", "vendor", "name"],
    "vendors": ["id", "name", "systems"],
    "contracts": ["municipality", "system", "contract", "payment_scenario"],
    "contacts": ["role", "name", "email", "municipality", "vendor"],
}


@click.group(cls=Group)
def registry() -> None:
    """Municipalities, vendors, systems, contracts and contacts.

    Example:

        onboarding registry list systems
    """


@registry.command("import")
@click.argument("kind", type=click.Choice(IMPORT_KINDS))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
def registry_import(kind: str, file: str, db_path: str | None) -> None:
    """Load a CSV file of KIND: all rows or, if any row is bad, none.

    Columns: municipalities code,name[,region,population]; systems vendor,system,category;
    contracts municipality,system,contract (ski-02.19-2019, ski-02.19-2014, eu-tender or
    unknown); contacts role,name,email[,municipality,vendor]. UTF-8 or Windows-1252, comma or
    semicolon separated. Importing the same file again changes nothing.

    Example:

        onboarding registry import contracts systemoverblik.csv
    """
    from onboarding import registry as reg

    importers = {
        "municipalities": reg.import_municipalities,
        "systems": reg.import_systems,
        "contracts": reg.import_contracts,
        "contacts": reg.import_contacts,
    }
    with database(db_path) as db:
        counts = importers[kind](db, file)
    summary = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items())
    click.echo(f"{file}: {summary}")


@registry.command("list")
@click.argument("kind", type=click.Choice(LIST_KINDS))
@reader_option
@db_option
@json_option
def registry_list(kind: str, reader: str | None, db_path: str | None, as_json: bool) -> None:
    """List the registry's KIND as a table, or as a JSON list of objects.

    With --actor, contacts and contracts are only those the actor may read (its own).

    Example:

        onboarding registry list contracts --json
    """
    from onboarding import registry as reg

    listers = {
        "municipalities": reg.list_municipalities,
        "systems": reg.list_systems,
        "vendors": reg.list_vendors,
        "contracts": reg.list_contracts,
        "contacts": reg.list_contacts,
    }
    with database(db_path) as db:
        if kind in ("contacts", "contracts"):
            scoped = {"contacts": reg.list_contacts, "contracts": reg.list_contracts}[kind]
            rows = scoped(db, read_scope(db, reader))
        else:
            rows = listers[kind](db)
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows, LIST_COLUMNS[kind])
