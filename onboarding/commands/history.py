"""``onboarding history``: the programme's history across tracks."""

from __future__ import annotations

import click

from onboarding.commands.common import (
    _echo_history,
    database,
    db_option,
    echo_json,
    json_option,
)


@click.command("history")
@click.option("--actor", help="Only steps by this actor.")
@click.option("--since", help="From this time (2021-03-01, 01-03-2021, optionally 14:00).")
@click.option("--until", help="Up to this time (a date alone includes that whole day).")
@click.option("--limit", type=int, default=None, help="At most this many rows.")
@db_option
@json_option
def history_cmd(
    actor: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Show the history of all tracks, oldest first: who did what, when.

    Example:

        onboarding history --actor import --since 2021-03-01 --until 2021-03-31
    """
    from onboarding import clock, filters, tracks

    with database(db_path) as db:
        if actor:
            filters.check_actor(db, actor)
        until_t = None
        if until:
            until_t = clock.parse_time(until, "--until", end_of_day=True)
        rows = tracks.global_history(
            db,
            actor=actor,
            since=clock.parse_time(since, "--since") if since else None,
            until=until_t,
            limit=limit,
        )
        if as_json:
            echo_json(rows)
        else:
            _echo_history(rows, with_track=True, db=db)
