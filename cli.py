"""The ``onboarding`` command line: parse options, call one library function, format the result.

Library modules are imported inside the commands so that ``onboarding --help`` starts fast.
User errors (``onboarding.errors.OnboardingError``) become one line on stderr and exit code 2;
anything else is a bug and exits 1.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A user error: printed as one line, exit code 2, nothing changed."""

    exit_code = 2


class Group(click.Group):
    """A click group that turns library user errors into ``UserError``."""

    def invoke(self, ctx: click.Context) -> Any:
        from onboarding.db import NotInitialised
        from onboarding.errors import OnboardingError

        try:
            return super().invoke(ctx)
        except (OnboardingError, NotInitialised) as exc:
            raise UserError(str(exc)) from exc


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        envvar="ONBOARDING_DB",
        type=click.Path(dir_okay=False),
        default=None,
        help="Database file (default: $ONBOARDING_DB, else ./onboarding.db).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def actor_options(func: F) -> F:
    func = click.option(
        "--role",
        envvar="ONBOARDING_ROLE",
        default="coordinator",
        show_default=True,
        help="The role you act in (see 'onboarding workflow show').",
    )(func)
    return click.option(
        "--actor",
        envvar="ONBOARDING_ACTOR",
        default=None,
        help="Who acts (default: $ONBOARDING_ACTOR, else your login name).",
    )(func)


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit trail still needs one
        return os.environ.get("USER") or "unknown"


def open_db(db_path: str | None) -> Any:
    from onboarding.db import open_existing, resolve_path

    return open_existing(resolve_path(db_path))


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned plain-text table (long cells are cut to fit 80 columns)."""
    if not rows:
        click.echo("(none)")
        return
    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    budget = max(80, shutil.get_terminal_size((80, 24)).columns) - 2 * (len(cols) - 1)
    while sum(widths) > budget and max(widths) > 8:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    click.echo("  ".join(c.ljust(w)[:w] for c, w in zip(cols, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(_fit(v, w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _fit(value: str, width: int) -> str:
    if len(value) <= width:
        return value.ljust(width)
    return value[: width - 1] + "…"


def parse_sets(values: Iterable[str], option: str = "--set") -> dict[str, str]:
    """``--set NAME=VALUE`` options as a dict."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"{option} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onboarding")
def cli() -> None:
    """Track how Denmark's municipalities connect their systems to the common infrastructure.

    Start with 'onboarding init', then 'onboarding track start' and 'onboarding track advance'.
    Every command takes --help.

    Example:

        onboarding init && onboarding registry list municipalities
    """


@cli.command()
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

    path = resolve_path(db_path)
    db = connect(path)
    applied = initialise(db)
    seeded = seed(db)
    added = register_shipped(db)
    version = schema_version(db)
    if applied:
        click.echo(f"{path}: schema version {version} ({len(applied)} migration(s) applied)")
    else:
        click.echo(f"{path}: schema version {version}, already current")
    if seeded:
        click.echo("seeded: " + ", ".join(f"{n} {what}" for what, n in seeded.items()))
    if added:
        click.echo("workflows: " + ", ".join(added))


# --- registry -------------------------------------------------------------------------------
# (registry commands are added below this line)

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


@cli.group(cls=Group)
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
    db = open_db(db_path)
    try:
        counts = importers[kind](db, file)
    finally:
        db.close()
    summary = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items())
    click.echo(f"{file}: {summary}")


@registry.command("list")
@click.argument("kind", type=click.Choice(LIST_KINDS))
@db_option
@json_option
def registry_list(kind: str, db_path: str | None, as_json: bool) -> None:
    """List the registry's KIND as a table, or as a JSON list of objects.

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
    db = open_db(db_path)
    try:
        rows = listers[kind](db)
    finally:
        db.close()
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows, LIST_COLUMNS[kind])


# --- workflow -------------------------------------------------------------------------------


@cli.group(cls=Group)
def workflow() -> None:
    """Workflow definitions: list, show, validate, add, diagram, migrate.

    Example:

        onboarding workflow show connection
    """


@workflow.command("list")
@db_option
@json_option
def workflow_list(db_path: str | None, as_json: bool) -> None:
    """List the definitions this database runs, with their latest version.

    Example:

        onboarding workflow list --json
    """
    from onboarding import definitions

    db = open_db(db_path)
    rows = []
    for name, version in definitions.names(db):
        defn = definitions.get(db, name, version)
        rows.append(
            {"name": name, "version": version, "subject": defn.subject, "title": defn.title}
        )
    if as_json:
        echo_json(rows)
    else:
        echo_table(rows)


@workflow.command("show")
@click.argument("name")
@click.option("--version", "version", type=int, default=None, help="A version (default: latest).")
@db_option
@json_option
def workflow_show(name: str, version: int | None, db_path: str | None, as_json: bool) -> None:
    """Show a definition: states with labels, buckets and phases, and transitions with roles.

    Example:

        onboarding workflow show connection --json
    """
    from onboarding import definitions

    db = open_db(db_path)
    defn = definitions.get(db, name, version)
    data = defn.to_dict()
    if as_json:
        echo_json(data)
        return
    click.echo(f"{defn.name} v{defn.version}: {defn.title} (subject: {defn.subject})")
    click.echo("\nStates:")
    echo_table(
        [
            {
                "state": s["name"] + (" *" if s["name"] == defn.initial else ""),
                "label": s["label"],
                "bucket": s["bucket"],
                "phase": s["phase"],
                "final": s["final"],
            }
            for s in data["states"]
        ]
    )
    click.echo("\nTransitions:")
    echo_table(
        [
            {
                "trigger": t["trigger"],
                "from": t["source"],
                "to": t["dest"],
                "roles": t["roles"],
                "guards": t["guards"] + [f"not {g}" for g in t["unless"]],
            }
            for t in data["transitions"]
        ]
    )


@workflow.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def workflow_validate(file: str) -> None:
    """Check a definition file and list every problem with its path; exit 2 if any.

    Example:

        onboarding workflow validate my-workflow.yaml
    """
    from pathlib import Path

    from onboarding.definitions import known
    from workflows.loader import validate_text

    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text ({exc.reason})") from None
    problems = validate_text(text, file, known())
    if problems:
        for p in problems:
            click.echo(f"{file}: {p}", err=True)
        raise UserError(f"{len(problems)} problem(s) in {file}")
    click.echo(f"{file}: valid")


@workflow.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
def workflow_add(file: str, db_path: str | None) -> None:
    """Validate a definition file and store it so tracks can be started on it.

    A changed definition needs a new version number; tracks already running stay on the
    version they started with until 'workflow migrate' moves them.

    Example:

        onboarding workflow add my-workflow.yaml
    """
    from onboarding import definitions
    from onboarding.db import immediate

    db = open_db(db_path)
    with immediate(db):
        defn, new = definitions.add_file(db, file)
    state = "added" if new else "already registered"
    click.echo(f"{defn.name} v{defn.version}: {state}")


@workflow.command("diagram")
@click.argument("name")
@click.option("--version", "version", type=int, default=None, help="A version (default: latest).")
@db_option
def workflow_diagram(name: str, version: int | None, db_path: str | None) -> None:
    """Print a definition as a Mermaid state diagram (paste into Markdown).

    Example:

        onboarding workflow diagram connection > connection.mmd
    """
    from onboarding import definitions
    from workflows.diagram import mermaid

    db = open_db(db_path)
    click.echo(mermaid(definitions.get(db, name, version)))


@workflow.command("migrate")
@click.argument("name")
@click.option("--to-version", type=int, default=None, help="Target version (default: latest).")
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="OLD=NEW",
    help="Where tracks in state OLD go (repeatable); same-named states map to themselves.",
)
@click.option("--dry-run", is_flag=True, help="Show what would move; write nothing.")
@click.option("--note", default=None, help="Why, for the history.")
@db_option
@actor_options
def workflow_migrate(
    name: str,
    to_version: int | None,
    mappings: tuple[str, ...],
    dry_run: bool,
    note: str | None,
    db_path: str | None,
    actor: str | None,
    role: str,
) -> None:
    """Move open tracks of a definition to another version, with an audited state mapping.

    Example:

        onboarding workflow migrate connection --to-version 2 --map sapa_request=notify_sapa
    """
    from onboarding import engine

    mapping = parse_sets(mappings, option="--map")
    db = open_db(db_path)
    act = engine.Act(actor=actor_name(actor), role=role, note=note)
    result = engine.migrate(db, name, to_version, mapping, act, dry_run=dry_run)
    verb = "would move" if dry_run else "moved"
    click.echo(f"{verb} {result.moved} track(s)")
    for (version, old, new), n in sorted(result.by_state.items()):
        click.echo(f"  {n:>6}  v{version} {old} -> {new}")


# --- track ----------------------------------------------------------------------------------


def _parse_at(at: str | None) -> Any:
    from onboarding import clock

    return clock.parse_time(at, what="--at") if at else None


def _track_id(text: str) -> int:
    try:
        return int(text.lstrip("#"))
    except ValueError:
        raise UserError(f"track {text!r}: give the track's number, e.g. 12") from None


at_option = click.option(
    "--at",
    default=None,
    metavar="TIME",
    help="When it happened (ISO 8601, e.g. 2021-03-31 or 2021-03-31T14:00; default: now).",
)


@cli.group(cls=Group)
def track() -> None:
    """Onboarding tracks: start, advance, set fields, show, list, history, why.

    Example:

        onboarding track start connection --municipality Aarhus --system Momentum
    """


@track.command("start")
@click.argument("definition")
@click.option("--municipality", help="Municipality code or name.")
@click.option("--system", help="System name, alone or with its vendor ('KMD Momentum').")
@click.option("--index", help="Index code or name: sd (default) or ydelse; 'sd,ydelse' for both.")
@click.option("--bob", is_flag=True, help="The connection includes BoB display (Mit Overblik).")
@click.option("--klik-task", help="KLIK task name (klik-task tracks).")
@click.option("--wave", help="Rollout wave, e.g. B2 (rollout-wave tracks).")
@click.option("--course", type=int, help="Onboarding course 1-4 (onboarding-course tracks).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Set a field.")
@click.option("--note", default=None, help="A note for the history.")
@at_option
@db_option
@json_option
@actor_options
def track_start(
    definition: str,
    municipality: str | None,
    system: str | None,
    index: str | None,
    bob: bool,
    klik_task: str | None,
    wave: str | None,
    course: int | None,
    sets: tuple[str, ...],
    note: str | None,
    at: str | None,
    db_path: str | None,
    as_json: bool,
    actor: str | None,
    role: str,
) -> None:
    """Start a track for a subject and print its id.

    The subject depends on the definition: --system (and --index) for system-readiness,
    --municipality and --system for connection, --municipality and --klik-task for klik-task,
    --municipality and --wave for rollout-wave, --system and --course for onboarding-course.

    Example:

        onboarding track start connection --municipality 751 --system "KMD Momentum" --bob
    """
    from onboarding import engine

    db = open_db(db_path)
    subject = engine.Subject(
        municipality=municipality,
        system=system,
        index=index,
        bob=bob,
        klik_task=klik_task,
        wave=wave,
        course=course,
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
    else:
        click.echo(row["id"])


@track.command("advance")
@click.argument("args", nargs=-1, required=True, metavar="[TRACK] TRIGGER")
@click.option(
    "--where",
    "where",
    default=None,
    metavar="FILTER",
    help="Advance every open track matching, e.g. 'state=date_agreement system=Fasit'.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="A field the transition needs (repeatable).",
)
@click.option("--note", default=None, help="A note for the history.")
@click.option(
    "--expect-version",
    type=int,
    default=None,
    help="Refuse if the track is no longer at this version (optimistic locking).",
)
@click.option("--dry-run", is_flag=True, help="Bulk: show what would change; write nothing.")
@at_option
@db_option
@json_option
@actor_options
def track_advance(
    args: tuple[str, ...],
    where: str | None,
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

    One track: TRACK TRIGGER. Many: --where FILTER TRIGGER; all of them move or none does,
    and --dry-run shows which would move and which are blocked and why.

    Examples:

        onboarding track advance 12 agree_date --set connection_date=2021-09-01

        onboarding track advance --where "definition=connection state=display_opening" open_display
    """
    from onboarding import engine, filters

    db = open_db(db_path)
    act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
    values = parse_sets(sets)
    if where is None:
        if len(args) != 2:
            raise UserError("give TRACK TRIGGER, or --where FILTER TRIGGER")
        row = engine.advance(db, _track_id(args[0]), args[1], act, values, expect_version)
        if as_json:
            echo_json(
                {
                    "id": row["id"],
                    "state": row["state"],
                    "version": row["version"],
                    "due": row["due"],
                }
            )
        else:
            due = f", due {row['due']}" if row["due"] else ""
            click.echo(
                f"track #{row['id']} is now in {row['state']} (version {row['version']}{due})"
            )
        return
    if len(args) != 1:
        raise UserError("with --where give only the TRIGGER")
    flt = filters.parse_where(where)
    with click.progressbar(length=0, label="advancing", file=sys.stderr) as bar:

        def progress(n: int) -> None:
            bar.update(n)

        result = engine.bulk_advance(
            db, flt, args[0], act, values, dry_run=dry_run, progress=progress
        )
    if as_json:
        echo_json(
            {
                "selected": result.selected,
                "moved": result.moved,
                "dry_run": dry_run,
                "blocked_count": result.blocked_count,
                "blocked": [{"id": i, "reason": r} for i, r in result.blocked],
                "moves": [{"from": a, "to": b, "count": n} for (a, b), n in result.by_move.items()],
            }
        )
        return
    verb = "would move" if dry_run else "moved"
    click.echo(f"{verb} {result.moved} of {result.selected} selected track(s)")
    for (a, b), n in sorted(result.by_move.items()):
        click.echo(f"  {n:>6}  {a} -> {b}")
    if result.blocked_count:
        click.echo(f"{result.blocked_count} blocked:")
        for _, reason in result.blocked:
            click.echo(f"  {reason}")


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

    db = open_db(db_path)
    act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
    row = engine.set_fields(db, _track_id(track_ref), parse_sets(assignments), act)
    due = f", due {row['due']}" if row["due"] else ""
    click.echo(f"track #{row['id']} updated (version {row['version']}{due})")


@track.command("show")
@click.argument("track_ref", metavar="TRACK")
@db_option
@json_option
def track_show(track_ref: str, db_path: str | None, as_json: bool) -> None:
    """Show a track: subject, state, phase, due date, fields and what may happen next.

    Example:

        onboarding track show 12 --json
    """
    from onboarding import tracks

    db = open_db(db_path)
    info = tracks.show(db, _track_id(track_ref))
    if as_json:
        echo_json(info)
        return
    click.echo(f"Track #{info['id']}  {info['definition']} v{info['definition_version']}")
    click.echo(
        f"  subject   {info['subject_text']}" + ("  (BoB)" if info["subject"]["bob"] else "")
    )
    click.echo(f"  state     {info['state']}: {info['state_label']}")
    click.echo(f"  phase     {info['phase'] or '-'}    bucket {info['bucket'] or '-'}")
    overdue = "  OVERDUE" if info["overdue"] else ""
    click.echo(
        f"  due       {info['due'] or '-'}{overdue}   "
        f"({info['days_in_state']} working days in this step)"
    )
    click.echo(f"  version   {info['version']}")
    if info.get("payment_scenario"):
        ps = info["payment_scenario"]
        click.echo(f"  contract  {ps['contract'] or 'not on record'}: {ps['scenario']}")
    for name, value in info["fields"].items():
        click.echo(f"  {name:<9} {value}")
    if info["available"]:
        click.echo("  next:")
        for a in info["available"]:
            blocked = f"  [blocked: {'; '.join(a['blocked_by'])}]" if a["blocked_by"] else ""
            click.echo(f"    {a['trigger']} -> {a['dest']} ({', '.join(a['roles'])}){blocked}")


@track.command("list")
@click.option("--definition", help="Only this definition.")
@click.option("--state", help="Only this state (several: 'a|b').")
@click.option("--municipality", help="Municipality code or name.")
@click.option("--system", help="System name.")
@click.option("--vendor", help="Vendor name.")
@click.option("--overdue", is_flag=True, help="Only open tracks past their due date.")
@click.option("--open", "only_open", is_flag=True, help="Only open (unfinished) tracks.")
@click.option("--limit", type=int, default=None, help="At most this many.")
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
    limit: int | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """List tracks with their state, phase and due date.

    Example:

        onboarding track list --definition connection --system Momentum --overdue
    """
    from onboarding import tracks
    from onboarding.filters import TrackFilter

    db = open_db(db_path)
    flt = TrackFilter(
        definition=definition,
        state=state,
        municipality=municipality,
        system=system,
        vendor=vendor,
        overdue=overdue,
        open=only_open,
    )
    rows = tracks.list_tracks(db, flt, limit)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        [
            {
                "id": r["id"],
                "definition": r["definition"],
                "subject": r["subject"],
                "state": r["state"],
                "phase": r["phase"],
                "due": (r["due"] or "") + (" !" if r["overdue"] else ""),
            }
            for r in rows
        ]
    )


def _echo_history(rows: list[dict[str, Any]], with_track: bool) -> None:
    """Two lines per step: when, which track and move; then who, in which role, and why."""
    from onboarding import clock

    if not rows:
        click.echo("(none)")
    for r in rows:
        track = f"#{r['track']}  " if with_track else ""
        move = f"{r['from']} -> {r['to']}" if r["from"] else f"started in {r['to']}"
        click.echo(f"{clock.display(r['at'])}  {track}{r['trigger']}: {move}")
        details = [f"{r['actor']} ({r['role']})"]
        details += [f"{k}={v}" for k, v in r["fields"].items()]
        if r["note"]:
            details.append(f"note: {r['note']}")
        click.echo("                  " + "; ".join(details))


@track.command("history")
@click.argument("track_ref", metavar="TRACK")
@db_option
@json_option
def track_history(track_ref: str, db_path: str | None, as_json: bool) -> None:
    """Show a track's full history: every step with actor, role, note and time.

    Example:

        onboarding track history 12 --json
    """
    from onboarding import tracks

    db = open_db(db_path)
    rows = tracks.history(db, _track_id(track_ref))
    if as_json:
        echo_json(rows)
    else:
        _echo_history(rows, with_track=False)


@track.command("why")
@click.argument("track_ref", metavar="TRACK")
@db_option
@json_option
def track_why(track_ref: str, db_path: str | None, as_json: bool) -> None:
    """Explain in plain words why a track is where it is and what can happen next.

    Example:

        onboarding track why 12
    """
    from onboarding import tracks

    db = open_db(db_path)
    info = tracks.why(db, _track_id(track_ref))
    if as_json:
        echo_json(info)
    else:
        click.echo("\n".join(info["lines"]))


@cli.command("history")
@click.option("--actor", help="Only steps by this actor.")
@click.option("--since", help="From this time (ISO 8601).")
@click.option("--until", help="Up to this time (ISO 8601; a date includes that whole day).")
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
    from onboarding import clock, tracks

    db = open_db(db_path)
    until_t = None
    if until:
        until_t = (
            clock.end_of_local_day(clock.parse_date(until, "--until"))
            if len(until.strip()) == 10
            else clock.parse_time(until, "--until")
        )
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
        _echo_history(rows, with_track=True)


# --- reminders / scheduler (notifications) --------------------------------------------------


# --- import / report / goals / demo ---------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
