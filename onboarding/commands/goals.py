"""``onboarding goals``: quarterly goal counters."""

from __future__ import annotations

import click

from onboarding.commands.common import (
    Group,
    _parse_day,
    _today,
    actor_name,
    database,
    db_option,
    echo_json,
    echo_table,
    json_option,
    t,
)


@click.group("goals", cls=Group)
def goals_group() -> None:
    """Goal counters the tool cannot derive (SAPA users, cancelled Manuelle sager, ...).

    Example:

        onboarding goals record sapa-unique-users 9412 --at 2021-03-31
    """


# ignore_unknown_options: "-5" is the VALUE, not an unknown option (a counter can go down).
@goals_group.command("record", context_settings={"ignore_unknown_options": True})
@click.argument("counter")
@click.argument("value", type=int)
@click.option("--at", "at", metavar="DATE", help="The day the value is for (default: today).")
@click.option("--note", default=None, help="Where the number comes from.")
@click.option(
    "--actor",
    envvar="ONBOARDING_ACTOR",
    default=None,
    help="Who records it (default: $ONBOARDING_ACTOR, else your login name).",
)
@db_option
def goals_record(
    counter: str,
    value: int,
    at: str | None,
    note: str | None,
    actor: str | None,
    db_path: str | None,
) -> None:
    """Record a counter's value for a day; the latest on or before a quarter's end counts.

    Counters: see 'onboarding goals list'. Values are kept, never overwritten.

    Example:

        onboarding goals record manuelle-sager-cancelled 47 --at 2021-03-31 --note "KMD"
    """
    from onboarding import reports

    with database(db_path) as db:
        # A day after today is refused by record_counter's own time guard (naming the time).
        day = _parse_day(at, "--at", future_ok=True) or _today()
        row = reports.record_counter(db, counter, value, day, actor_name(actor), note)
    line = t(
        "%(counter)s = %(value)s on %(day)s",
        counter=row["counter"],
        value=row["value"],
        day=row["at"],
    )
    click.echo(line)


@goals_group.command("list")
@db_option
@json_option
def goals_list(db_path: str | None, as_json: bool) -> None:
    """List the counters the goals files name, with every value recorded.

    Example:

        onboarding goals list --json
    """
    from onboarding import reports

    with database(db_path) as db:
        data = reports.list_counters(db)
    if as_json:
        echo_json(data)
        return
    rows = []
    for c in data:
        last = c["values"][-1] if c["values"] else None
        rows.append(
            {
                "counter": c["counter"],
                "latest": "" if last is None else f"{last['value']} ({last['at']})",
                "values": len(c["values"]),
                "label": c["label"],
            }
        )
    echo_table(rows, ["counter", "latest", "values", "label"])
