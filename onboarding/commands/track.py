"""``onboarding track``: start, advance, set, show, list and explain tracks."""

from __future__ import annotations

import sys
from typing import Any

import click

from onboarding.commands import spec
from onboarding.commands.common import (
    Group,
    Labels,
    UserError,
    _echo_history,
    _parse_at,
    _track_id,
    actor_name,
    actor_options,
    click_option,
    click_params,
    complete,
    database,
    day,
    db_option,
    echo_json,
    echo_table,
    json_option,
    lang,
    parse_sets,
    read_scope,
    reader_option,
    say,
    t,
)
from onboarding.commands.track_core import _readable, advance_one, show

at_option = click_option(spec.AT)
judge_at_option = click_option(spec.JUDGE_AT)


@click.group(cls=Group)
def track() -> None:
    """Onboarding tracks: start, advance, set fields, show, list, history, why.

    Example:

        onboarding track start connection --municipality Aarhus --system Momentum
    """


@track.command("start")
@click.argument("definition", shell_complete=complete("complete_definitions"))
@click.option(
    "--municipality",
    help="Municipality code or name.",
    shell_complete=complete("complete_municipalities"),
)
@click.option(
    "--system",
    help="System name, alone or with its vendor ('KMD Momentum').",
    shell_complete=complete("complete_systems"),
)
@click.option(
    "--vendor",
    help="Vendor name (subjects with a vendor part).",
    shell_complete=complete("complete_vendors"),
)
@click.option(
    "--index",
    help="Index code or name (subjects with an index part): sd (default) or ydelse; "
    "'sd,ydelse' for both where the subject takes an index set.",
)
@click.option("--bob", is_flag=True, help="The connection includes BoB display (Mit Overblik).")
@click.option("--klik-task", help="KLIK task name (subjects with a KLIK task part).")
@click.option("--wave", help="Rollout wave, e.g. B2 (subjects with a wave part).")
@click.option("--course", type=int, help="Onboarding course 1-4 (subjects with a course part).")
@click.option("--name", "subject_name", help="Free-text name (subjects with a name part).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Set a field.")
@click.option("--note", default=None, help="A note for the history.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the new track's id (for scripts).")
@at_option
@db_option
@json_option
@actor_options
def track_start(
    definition: str,
    municipality: str | None,
    system: str | None,
    vendor: str | None,
    index: str | None,
    bob: bool,
    klik_task: str | None,
    wave: str | None,
    course: int | None,
    subject_name: str | None,
    sets: tuple[str, ...],
    note: str | None,
    quiet: bool,
    at: str | None,
    db_path: str | None,
    as_json: bool,
    actor: str | None,
    role: str,
) -> None:
    """Start a track for a subject and say which: its id, subject, first step and due date.

    Give the options the definition's subject names, and no others (an option it does not
    name is refused). For any definition, also one you added with 'workflow add', see
    'onboarding workflow show NAME': its line "Start a track with:" lists them. A subject
    is declared from these parts, each with its option:

    \b
      municipality  --municipality     vendor     --vendor
      system        --system           index      --index (one; default sd)
      index_set     --index (several)  bob        --bob (a connection's flag)
      klik_task     --klik-task        wave       --wave
      course        --course           name       --name (free text)

    The shipped definitions use short names for such declarations:

    \b
      municipality-system  --municipality, --system (--index, --bob)
      system               --system (--index)
      municipality-klik    --municipality, --klik-task
      municipality-wave    --municipality, --wave
      system-course        --system, --course

    Fields the definition declares are given with --set NAME=VALUE. See docs/workflows.md.

    Example:

        onboarding track start connection --municipality 751 --system "KMD Momentum" --bob

        tid=$(onboarding track start connection --municipality Vejle --system Fasit --quiet)
    """
    from onboarding import engine

    with database(db_path) as db:
        subject = engine.Subject(
            municipality=municipality,
            system=system,
            index=index,
            bob=bob,
            klik_task=klik_task,
            wave=wave,
            course=course,
            vendor=vendor,
            name=subject_name,
        )
        act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
        row = engine.start(db, definition, subject, act, parse_sets(sets))
        if as_json:
            echo_json(
                {
                    "id": row["id"],
                    "definition": row["definition"],
                    "state": row["state"],
                    "version": row["version"],
                    "due": row["due"],
                }
            )
        elif quiet:
            click.echo(row["id"])
        else:
            click.echo(_started(db, row))


def _started(db: Any, row: dict[str, Any]) -> str:
    """'track #12 started: Aarhus / KMD Momentum, 1. Aftal ... (due 15.03.2021)': labels, not
    keys."""
    from onboarding import clock, definitions
    from onboarding.tracks import _subject_labels, subject_text

    state = definitions.get(db, row["definition"], row["def_version"]).state(row["state"])
    subject = subject_text(_subject_labels(db, row))
    due = f" (due {clock.show_day(row['due'])})" if row["due"] else ""
    return f"track #{row['id']} started: {subject}, {state.label}{due}"


@track.command("advance")
@click_params(spec.TRACK_ADVANCE)
def track_advance(
    args: tuple[str, ...],
    where: str | None,
    limit: int,
    sets: tuple[str, ...],
    note: str | None,
    expect_version: int | None,
    dry_run: bool,
    at: str | None,
    db_path: str | None,
    as_json: bool,
    actor: str | None,
    role: str,
) -> None:
    """Fire a trigger on one track, or on every track a --where filter selects.

    One track: TRACK TRIGGER; --dry-run shows the move, the due date and the notifications it
    would schedule, and writes nothing. Many: --where FILTER TRIGGER; all of them move or none
    does, and --dry-run shows which would move and which are blocked and why.

    Examples:

        onboarding track advance 12 agree_date --set connection_date=2021-09-01

        onboarding track advance --where "definition=connection state=display_opening" open_display
    """
    if where is None:
        # One track: the body the fast path runs too (onboarding.commands.fast).
        advance_one(args, sets, note, expect_version, dry_run, at, db_path, as_json, actor, role)
        return
    from onboarding import engine

    with database(db_path) as db:
        act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
        values = parse_sets(sets)
        if len(args) != 1:
            raise UserError("with --where give only the TRIGGER")
        from onboarding import filters  # here: one track's advance never filters

        flt = filters.resolve(db, filters.parse_where(where), where=True)
        result = _bulk_advance(db, flt, args[0], act, values, dry_run, None if as_json else limit)
        if as_json:
            echo_json(_bulk_json(result, dry_run))
            return
        if not result.selected:
            # A valid filter that selects nothing says what it selected (exit 0).
            click.echo(say(filters.describe(flt, open_only=True, db=db)))
            return
        moves = (
            "would move %(n)s of %(selected)s selected track(s)"
            if dry_run
            else "moved %(n)s of %(selected)s selected track(s)"
        )
        click.echo(t(moves, n=result.moved, selected=result.selected))
        labels = Labels(db)
        name = flt.definition or ""
        for (a, b), n in sorted(result.by_move.items()):
            if name:
                a, b = labels.state(name, None, a), labels.state(name, None, b)
            click.echo(f"  {n:>6}  {a} -> {b}")
        _echo_blocked(result)


def _bulk_advance(
    db: Any, flt: Any, trigger: str, act: Any, values: Any, dry_run: bool, per_reason: int | None
) -> Any:
    """``engine.bulk_advance`` with a progress bar on stderr, only when stderr is a terminal
    and only for a real run (a preview is quick, and its output is the answer)."""
    from onboarding import engine

    def run(progress: Any = None) -> Any:
        return engine.bulk_advance(
            db,
            flt,
            trigger,
            act,
            values,
            dry_run=dry_run,
            progress=progress,
            keep_blocked=0,  # the groups name the tracks
            per_reason=per_reason,
        )

    if dry_run or not sys.stderr.isatty():
        return run()
    with click.progressbar(length=0, label=t("advancing"), file=sys.stderr) as bar:
        return run(bar.update)


def _bulk_json(result: Any, dry_run: bool) -> dict[str, Any]:
    """Every blocked track, by id with subject and reason, and the same grouped by reason."""
    return {
        "selected": result.selected,
        "moved": result.moved,
        "dry_run": dry_run,
        "blocked_count": result.blocked_count,
        "blocked": [
            {"id": t["id"], "subject": t["subject"], "reason": g.reason}
            for g in result.groups.values()
            for t in g.tracks
        ],
        "blocked_groups": [
            {"reason": g.reason, "count": g.count, "tracks": g.tracks}
            for g in result.groups.values()
        ],
        "moves": [{"from": a, "to": b, "count": n} for (a, b), n in result.by_move.items()],
    }


def _echo_blocked(result: Any) -> None:
    """The blocked tracks of a preview: per reason its count, then the tracks by id."""
    if not result.blocked_count:
        return
    click.echo(t("%(n)s blocked:", n=result.blocked_count))
    for g in result.groups.values():
        click.echo(f"  {g.count:>6}  {say(g.reason)}")
        for one in g.tracks:
            click.echo(f"          #{one['id']:<6} {one['subject']}".rstrip())
        if g.count > len(g.tracks):
            more = t(
                "... and %(n)s more (--limit %(limit)s lists them, --json lists all)",
                n=g.count - len(g.tracks),
                limit=g.count,
            )
            click.echo(f"          {more}")


@track.command("set")
@click.argument("track_ref", metavar="TRACK")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.option("--note", default=None, help="A note for the history.")
@at_option
@db_option
@actor_options
def track_set(
    track_ref: str,
    assignments: tuple[str, ...],
    note: str | None,
    at: str | None,
    db_path: str | None,
    actor: str | None,
    role: str,
) -> None:
    """Record field values on a track without moving it (audited; due dates follow).

    Example:

        onboarding track set 12 connection_date=2021-10-01 --note "vendor moved the date"
    """
    from onboarding import engine

    with database(db_path) as db:
        act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
        row = engine.set_fields(db, _track_id(track_ref), parse_sets(assignments), act)
        due = t(", due %(due)s", due=day(row["due"])) if row["due"] else ""
        click.echo(
            t(
                "track #%(id)s updated (version %(version)s%(due)s)",
                id=row["id"],
                version=row["version"],
                due=due,
            )
        )


@track.command("show")
@click_params(spec.TRACK_SHOW)
def track_show(
    track_ref: str, at: str | None, reader: str | None, db_path: str | None, as_json: bool
) -> None:
    """Show a track: subject, state, phase, due date, fields and what may happen next.

    Example:

        onboarding track show 12 --json --at 2021-09-01T10:00
    """
    show(track_ref, at, reader, db_path, as_json)


@track.command("list")
@click.option(
    "--definition", help="Only this definition.", shell_complete=complete("complete_definitions")
)
@click.option(
    "--state", help="Only this state (several: 'a|b').", shell_complete=complete("complete_states")
)
@click.option(
    "--municipality",
    help="Municipality code or name.",
    shell_complete=complete("complete_municipalities"),
)
@click.option("--system", help="System name.", shell_complete=complete("complete_systems"))
@click.option("--vendor", help="Vendor name.", shell_complete=complete("complete_vendors"))
@click.option("--overdue", is_flag=True, help="Only open tracks past their due date.")
@click.option("--open", "only_open", is_flag=True, help="Only open (unfinished) tracks.")
@click.option("--phase", help="Only states of this phase (several: 'a|b').")
@click.option("--bucket", help="Only states of this report bucket, e.g. 'Aftalt'.")
@click.option("--limit", type=int, default=None, help="At most this many.")
@reader_option
@db_option
@json_option
def track_list(
    definition: str | None,
    state: str | None,
    municipality: str | None,
    system: str | None,
    vendor: str | None,
    overdue: bool,
    only_open: bool,
    phase: str | None,
    bucket: str | None,
    limit: int | None,
    reader: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """List tracks with their state, phase and due date (with --actor: those it may read).

    Example:

        onboarding track list --definition connection --system Momentum --overdue
    """
    from onboarding import filters, tracks

    with database(db_path) as db:
        flt = filters.TrackFilter(
            definition=definition,
            state=state,
            phase=phase,
            bucket=bucket,
            municipality=municipality,
            system=system,
            vendor=vendor,
            overdue=overdue,
            open=only_open,
            scope=read_scope(db, reader),
        )
        flt = filters.resolve(db, flt)
        rows = tracks.list_tracks(db, flt, limit)
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo(say(filters.describe(flt, db=db)))
            return
        labels = Labels(db)
        echo_table(
            [
                {
                    "id": r["id"],
                    t("definition"): r["definition"],
                    t("subject"): r["subject"],
                    t("step"): labels.state(r["definition"], r.get("def_version"), r["state"]),
                    t("phase"): labels.phase(r["phase"]),
                    t("due"): day(r["due"]) + (" !" if r["overdue"] else ""),
                }
                for r in rows
            ]
        )


@track.command("history")
@click.argument("track_ref", metavar="TRACK")
@reader_option
@db_option
@json_option
def track_history(track_ref: str, reader: str | None, db_path: str | None, as_json: bool) -> None:
    """Show a track's full history: every step with actor, role, note and time.

    Example:

        onboarding track history 12 --json
    """
    from onboarding import tracks

    with database(db_path) as db:
        rows = tracks.history(db, _readable(db, track_ref, reader))
        if as_json:
            echo_json(rows)
        else:
            _echo_history(rows, with_track=False, db=db)


@track.command("why")
@click.argument("track_ref", metavar="TRACK")
@judge_at_option
@reader_option
@db_option
@json_option
def track_why(
    track_ref: str, at: str | None, reader: str | None, db_path: str | None, as_json: bool
) -> None:
    """Explain in plain words why a track is where it is and what can happen next.

    Example:

        onboarding track why 12
    """
    from onboarding import tracks

    with database(db_path) as db:
        info = tracks.why(db, _readable(db, track_ref, reader), _parse_at(at))
        if as_json:
            echo_json(info)
        else:
            click.echo("\n".join(say(line) for line in info["lines"]))


@track.command("mine")
@click.option(
    "--actor",
    envvar="ONBOARDING_ACTOR",
    default=None,
    help="Whose work list (default: $ONBOARDING_ACTOR, else your login name).",
)
@click.option("--overdue", is_flag=True, help="Only the overdue ones.")
@db_option
@json_option
def track_mine(actor: str | None, overdue: bool, db_path: str | None, as_json: bool) -> None:
    """What is waiting on you: open tracks whose next step lies with one of your roles, in the
    scope you hold it; overdue first (longest overdue first), then by deadline.

    Example:

        onboarding track mine --actor aarhus --overdue
    """
    from onboarding import roles, worklist

    with database(db_path) as db:
        items = worklist.work_list(db, actor_name(actor))
        if overdue:
            items = [w for w in items if w["overdue"]]
        if as_json:
            echo_json(items)
            return
        if not items:
            click.echo(t("Nothing is waiting on you."))
            return
        echo_table(
            [
                {
                    "id": w["track"],
                    t("subject"): w["subject"],
                    t("step"): w["step"],
                    t("who acts"): roles.label(str(w["role"]), lang()),
                    t("days"): w["days_in_step"],
                    t("due"): day(w["due"])
                    + (" ! " + t("%(n)s late", n=w["working_days_late"]) if w["overdue"] else ""),
                    t("next"): ", ".join(a["label"] for a in w["actions"]),
                }
                for w in items
            ]
        )
