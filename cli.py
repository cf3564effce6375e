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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A user error: printed as one line, exit code 2, nothing changed."""

    exit_code = 2


class Group(click.Group):
    """A click group that turns library user errors into ``UserError``."""

    def invoke(self, ctx: click.Context) -> Any:
        import sqlite3

        from onboarding.db import NotInitialised
        from onboarding.errors import OnboardingError
        from onboarding.storage import describe

        try:
            with _warnings_to_stderr():
                return super().invoke(ctx)
        except (OnboardingError, NotInitialised) as exc:
            raise UserError(str(exc)) from exc
        except (sqlite3.Error, OSError) as exc:
            # A storage fault that no 'database()' block named a file for (a full disk, a
            # read-only file system): still one line. Anything else is a bug (exit 1).
            error = describe(exc)
            if error is None:
                raise
            raise UserError(str(error)) from exc


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Our warnings (a date far from the step) as one line each on stderr, once per message,
    when the command has succeeded: a refused command says only why (one line)."""
    import warnings

    from onboarding.clock import FarDateWarning

    seen: list[str] = []

    def keep(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        if str(message) not in seen:
            seen.append(str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("always", FarDateWarning)
        warnings.showwarning = keep
        yield
    for text in seen:
        click.echo(f"warning: {text}", err=True)


def _on_terminal() -> bool:
    """Whether stdout is a terminal: only there are tables fitted to its width."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        envvar="ONBOARDING_DB",
        # readable=False: an unreadable file is said in one line by onboarding.storage
        type=click.Path(dir_okay=False, readable=False),
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


def complete(name: str) -> Callable[[click.Context, click.Parameter, str], list[Any]]:
    """A ``shell_complete`` callback of ``onboarding.completion``, imported only on a TAB (so
    no command pays for it at start)."""

    def callback(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from onboarding import completion

        result: list[Any] = getattr(completion, name)(ctx, param, incomplete)
        return result

    return callback


def open_db(db_path: str | None) -> Any:
    from onboarding.db import open_existing, resolve_path

    return open_existing(resolve_path(db_path))


@contextmanager
def database(db_path: str | None) -> Iterator[Any]:
    """The database for one command, closed when the command is done; a storage fault while
    it is used (full disk, read-only file) becomes one line naming it (onboarding.storage)."""
    from onboarding.db import resolve_path
    from onboarding.storage import guard

    db = open_db(db_path)
    try:
        with guard(resolve_path(db_path), os_errors=False):
            yield db
    finally:
        db.close()


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned plain-text table. On a terminal long cells are cut (with "…")
    to fit its width; piped or redirected, nothing is cut (the text goes into mails and files)."""
    if not rows:
        click.echo("(none)")
        return
    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    budget = max(80, shutil.get_terminal_size((80, 24)).columns) - 2 * (len(cols) - 1)
    while _on_terminal() and sum(widths) > budget and max(widths) > 8:
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
    with database(db_path) as db:
        counts = importers[kind](db, file)
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
    with database(db_path) as db:
        rows = listers[kind](db)
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

    with database(db_path) as db:
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


def _subject_line(defn: Any) -> str:
    """'Start a track with: --municipality, --system, --index (optional), --bob (optional)'."""
    from workflows.model import OPTIONAL_PARTS, PART_OPTIONS

    sub = defn.subject_parts
    opts = [
        PART_OPTIONS[p] + (" (optional)" if p in OPTIONAL_PARTS else "") for p in sub.of
    ]
    key = ", ".join(sub.key)
    return f"Start a track with: {', '.join(opts)}  (one open track per {key})"


@workflow.command("show")
@click.argument("name", shell_complete=complete("complete_definitions"))
@click.option("--version", "version", type=int, default=None, help="A version (default: latest).")
@db_option
@json_option
def workflow_show(name: str, version: int | None, db_path: str | None, as_json: bool) -> None:
    """Show a definition: states with labels, buckets and phases, and transitions with roles.

    --json carries everything the definition says: states with due rules and notifications,
    transitions with labels, guards and their parameters, and the fields each transition
    takes (type, options, required or optional), so a script can drive any definition.

    Example:

        onboarding workflow show connection --json
    """
    from onboarding import definitions
    from workflows.export import definition_json

    with database(db_path) as db:
        defn = definitions.get(db, name, version)
        data = definition_json(defn)
        if as_json:
            echo_json(data)
            return
        click.echo(f"{defn.name} v{defn.version}: {defn.title} (subject: {defn.subject})")
        click.echo(_subject_line(defn))
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
                    "guards": [_guard_text(g) for g in t["guards"]]
                    + [f"not {_guard_text(g)}" for g in t["unless"]],
                }
                for t in data["transitions"]
            ]
        )
        if defn.roles:
            click.echo("\nRoles declared by this definition:")
            echo_table(
                [
                    {"role": r.key, "label": r.label["da"], "english": r.label["en"],
                     "scope": r.scope}
                    for r in defn.roles
                ]
            )


def _guard_text(guard: dict[str, Any]) -> str:
    """A guard with its parameters in one short cell: ``date_passed(date=dpo_deadline)``."""
    params = ", ".join(
        f"{k}={'|'.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in guard["params"].items()
        if k != "reason"
    )
    return f"{guard['name']}({params})" if params else str(guard["name"])


@workflow.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The definition's own mail templates (default: FILE's name with .templates beside it).",
)
def workflow_validate(file: str, templates_dir: str | None) -> None:
    """Check a definition file and list every problem with its path; exit 2 if any.

    Its own templates (NAME.templates/ beside NAME.yaml, or --templates) are checked too.

    Example:

        onboarding workflow validate my-workflow.yaml
    """
    from pathlib import Path

    from onboarding.definition_templates import (
        check_templates,
        missing_folder_hint,
        own_template_names,
        template_folder,
    )
    from onboarding.definitions import validate_lone

    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text ({exc.reason})") from None
    folder = Path(templates_dir) if templates_dir else template_folder(file)
    files, template_problems = check_templates(folder) if folder else ({}, [])
    found, warnings = validate_lone(text, file, own_template_names(files))
    for w in warnings:
        click.echo(f"{file}: warning: {w}", err=True)
    problems = [f"{file}: {p}" for p in (found if folder else missing_folder_hint(file, found))]
    problems += [f"{folder}/{p}" for p in template_problems]
    if problems:
        for p in problems:
            click.echo(p, err=True)
        raise UserError(f"{len(problems)} problem(s) in {file}")
    click.echo(f"{file}: valid")


@workflow.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The definition's own mail templates (default: FILE's name with .templates beside it).",
)
@db_option
def workflow_add(file: str, templates_dir: str | None, db_path: str | None) -> None:
    """Validate a definition file and store it so tracks can be started on it.

    A changed definition needs a new version number; tracks already running stay on the
    version they started with until 'workflow migrate' moves them. Its own mail templates
    (a folder NAME.templates/ beside NAME.yaml with da/ and en/, or --templates DIR) are
    stored with the version: editing the folder later changes nothing already added.

    Example:

        onboarding workflow add my-workflow.yaml
    """
    from onboarding import definition_templates, definitions
    from onboarding.db import immediate

    with database(db_path) as db:
        with immediate(db):
            defn, new = definitions.add_file(db, file, templates_dir)
        state = "added" if new else "already registered"
        own = definition_templates.templates(db, defn.name, defn.version)
        with_templates = f" with {len(own)} template file(s)" if own else ""
        click.echo(f"{defn.name} v{defn.version}: {state}{with_templates}")


@workflow.command("diagram")
@click.argument("name", shell_complete=complete("complete_definitions"))
@click.option("--version", "version", type=int, default=None, help="A version (default: latest).")
@db_option
def workflow_diagram(name: str, version: int | None, db_path: str | None) -> None:
    """Print a definition as a Mermaid state diagram (paste into Markdown).

    Example:

        onboarding workflow diagram connection > connection.mmd
    """
    from onboarding import definitions
    from workflows.diagram import mermaid

    with database(db_path) as db:
        click.echo(mermaid(definitions.get(db, name, version)))


@workflow.command("migrate")
@click.argument("name", shell_complete=complete("complete_definitions"))
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
@click.option(
    "--at",
    default=None,
    metavar="TIME",
    help="When it happened (2021-03-31T14:00 or 31-03-2021 14:00; default: now; never in the "
    "future).",
)
@db_option
@actor_options
def workflow_migrate(
    name: str,
    to_version: int | None,
    mappings: tuple[str, ...],
    dry_run: bool,
    note: str | None,
    at: str | None,
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
    with database(db_path) as db:
        act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
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
    help="When it happened (2021-03-31, 31-03-2021, 31.03.2021 or 31/03/2021, optionally with "
    "a time: 31-03-2021 14:00; default: now). "
    "Never in the future (5 minutes' tolerance): a planned date goes in a field (--set).",
)


@cli.group(cls=Group)
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
    "--vendor", help="Vendor name (subjects with a vendor part).",
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
@click.argument(
    "args",
    nargs=-1,
    required=True,
    metavar="[TRACK] TRIGGER",
    shell_complete=complete("complete_advance_args"),
)
@click.option(
    "--where",
    "where",
    default=None,
    metavar="FILTER",
    help="Advance every open track matching, e.g. 'state=date_agreement system=Fasit'.",
    shell_complete=complete("complete_where"),
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Bulk: blocked tracks listed per reason (--json lists all).",
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
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would change (one track: the move, its due date and the notifications "
    "it would schedule); write nothing.",
)
@at_option
@db_option
@json_option
@actor_options
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
    from onboarding import engine, filters

    with database(db_path) as db:
        act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
        values = parse_sets(sets)
        if where is None:
            if len(args) != 2:
                raise UserError("give TRACK TRIGGER, or --where FILTER TRIGGER")
            if dry_run:
                _echo_preview(
                    engine.preview_advance(
                        db, _track_id(args[0]), args[1], act, values, expect_version
                    ),
                    as_json,
                )
                return
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
                from onboarding import definitions

                # The step's label, never its key: this line is read by a person.
                state = definitions.get(db, row["definition"], row["def_version"]).by_name.get(
                    row["state"]
                )
                step = state.label if state is not None else row["state"]
                due = f", due {row['due']}" if row["due"] else ""
                click.echo(f"track #{row['id']} is now in {step} (version {row['version']}{due})")
            return
        if len(args) != 1:
            raise UserError("with --where give only the TRIGGER")
        flt = filters.resolve(db, filters.parse_where(where), where=True)
        result = _bulk_advance(db, flt, args[0], act, values, dry_run, None if as_json else limit)
        if as_json:
            echo_json(_bulk_json(result, dry_run))
            return
        if not result.selected:
            # A valid filter that selects nothing says what it selected (exit 0).
            click.echo(filters.describe(flt, open_only=True))
            return
        verb = "would move" if dry_run else "moved"
        click.echo(f"{verb} {result.moved} of {result.selected} selected track(s)")
        for (a, b), n in sorted(result.by_move.items()):
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
    with click.progressbar(length=0, label="advancing", file=sys.stderr) as bar:
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
    click.echo(f"{result.blocked_count} blocked:")
    for g in result.groups.values():
        click.echo(f"  {g.count:>6}  {g.reason}")
        for t in g.tracks:
            click.echo(f"          #{t['id']:<6} {t['subject']}".rstrip())
        if g.count > len(g.tracks):
            click.echo(
                f"          ... and {g.count - len(g.tracks)} more "
                f"(--limit {g.count} lists them, --json lists all)"
            )


def _echo_preview(preview: dict[str, Any], as_json: bool) -> None:
    """One track's dry run: the move, the due date and the notifications it would schedule."""
    from onboarding import clock

    if as_json:
        echo_json(preview)
        return
    click.echo(
        f"would move track #{preview['id']} from {preview['from']} to {preview['to']}"
        f" ({preview['to_label']}); nothing written"
    )
    click.echo(f"  due       {preview['due'] or '-'}")
    if not preview["notifications"]:
        click.echo("  notifications: none")
        return
    click.echo("  notifications it would schedule:")
    for n in preview["notifications"]:
        click.echo(
            f"    {clock.display(n['at'])}  {n['kind']} {n['name']} to {', '.join(n['to'])}"
            f" (template {n['template']})"
        )


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
        due = f", due {row['due']}" if row["due"] else ""
        click.echo(f"track #{row['id']} updated (version {row['version']}{due})")


judge_at_option = click.option(
    "--at",
    default=None,
    metavar="TIME",
    help="Judge what may happen next at this time (ISO 8601; default: now): what "
    "'track advance --at TIME' would be told. The track is shown as it is now.",
)


@track.command("show")
@click.argument("track_ref", metavar="TRACK")
@judge_at_option
@db_option
@json_option
def track_show(track_ref: str, at: str | None, db_path: str | None, as_json: bool) -> None:
    """Show a track: subject, state, phase, due date, fields and what may happen next.

    Example:

        onboarding track show 12 --json --at 2021-09-01T10:00
    """
    from onboarding import tracks

    with database(db_path) as db:
        info = tracks.show(db, _track_id(track_ref), _parse_at(at))
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
    db_path: str | None,
    as_json: bool,
) -> None:
    """List tracks with their state, phase and due date.

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
        )
        flt = filters.resolve(db, flt)
        rows = tracks.list_tracks(db, flt, limit)
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo(filters.describe(flt))
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

    with database(db_path) as db:
        rows = tracks.history(db, _track_id(track_ref))
        if as_json:
            echo_json(rows)
        else:
            _echo_history(rows, with_track=False)


@track.command("why")
@click.argument("track_ref", metavar="TRACK")
@judge_at_option
@db_option
@json_option
def track_why(track_ref: str, at: str | None, db_path: str | None, as_json: bool) -> None:
    """Explain in plain words why a track is where it is and what can happen next.

    Example:

        onboarding track why 12
    """
    from onboarding import tracks

    with database(db_path) as db:
        info = tracks.why(db, _track_id(track_ref), _parse_at(at))
        if as_json:
            echo_json(info)
        else:
            click.echo("\n".join(info["lines"]))


@cli.command("history")
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
            _echo_history(rows, with_track=True)


# --- reminders / scheduler (notifications) --------------------------------------------------


def _mail_config(db_path: str | None, db: Any) -> Any:
    """Mail settings for the database: the environment, its config file, then the settings
    stored in it ('onboarding mail configure'); never options."""
    from notifications.config import load_config
    from onboarding.db import resolve_path

    return load_config(resolve_path(db_path), db=db)


REMINDER_COLUMNS = ["id", "due", "deadline", "status", "notification", "track", "to", "error"]


def _reminder_row(row: dict[str, Any]) -> dict[str, Any]:
    from onboarding import clock

    return {
        "id": row["id"],
        "due": clock.display(row["due_at"]),
        # The step's own deadline (the state's due date), beside when the email is due.
        "deadline": row["due_date"],
        "status": row["status"],
        "kind": row["kind"],
        "level": row["level"],
        "notification": row["notification"],
        "track": row["track_id"],
        "state": row["state"],
        "municipality": row["municipality"],
        "system": row["system"],
        "to": row["sent_to"] if row["sent_to"] is not None else row["recipients"],
        "attempts": row["attempts"],
        "next_attempt": clock.display(row["next_attempt_at"]),
        "sent": clock.display(row["sent_at"]),
        "message_id": row["message_id"],
        "error": row["last_error"],
    }


def _people(items: Sequence[str]) -> str:
    """Recipients for a person to read: addresses as they are, roles by their label (the JSON
    output keeps the role keys, for programs)."""
    from onboarding import roles

    return ", ".join(i if "@" in i else roles.label(i) for i in items)


@cli.group(cls=Group)
def reminders() -> None:
    """Reminders, notices and escalations by email: send, list, preview, retry, forecast.

    Every email is a row in the outbox table of the database, written when a track enters a
    step. Mail settings come from onboarding.toml next to the database (or $ONBOARDING_CONFIG)
    and ONBOARDING_SMTP_* / ONBOARDING_MAIL_FROM; with no SMTP server, messages are written as
    .eml files to <db name>-outbox/ beside the database. See docs/notifications.md.

    Example:

        onboarding reminders forecast --days 14
    """


#: ``reminders send-due`` exit code when a due message failed or the server could not be used.
SEND_TROUBLE = 3


@reminders.command("send-due")
@click.option(
    "--at",
    default=None,
    metavar="TIME",
    help="What is due: everything due by this time (2021-03-31T14:00 or 31-03-2021 14:00; "
    "default now). Not later than "
    "the current time (5 minutes' tolerance).",
)
@db_option
@json_option
def reminders_send_due(at: str | None, db_path: str | None, as_json: bool) -> None:
    """Send every notification that is due, once; for cron (the scheduler does the same).

    Safe to run at the same time as 'onboarding scheduler run' or another send-due: each
    notification is claimed by one runner. A refused message is retried later with backoff.
    Exit code 0: every due message was sent (or skipped: its step was done); 3: some failed
    or wait for a retry, or the server could not be used (one line on stderr says why);
    2: bad input, e.g. an --at in the future.

    Example:

        onboarding reminders send-due --at 2021-08-18T08:00
    """
    from notifications.runner import send_due

    with database(db_path) as db:
        config = _mail_config(db_path, db)
        summary = send_due(db, _parse_at(at), config)
    if as_json:
        echo_json(summary.to_dict())
    else:
        for o in summary.outcomes:
            if o.status == "sent":
                click.echo(f"#{o.id} sent to {', '.join(o.to)}: {o.subject}")
            else:
                click.echo(f"#{o.id} {o.status}: {o.error}")
        click.echo(summary.line())
        if config.smtp is None and summary.messages:
            click.echo(f"(no SMTP server configured: messages written to {config.outbox_dir})")
    trouble = summary.trouble()
    if trouble is not None:
        click.echo(f"send-due: {trouble}", err=True)
        raise click.exceptions.Exit(SEND_TROUBLE)


@reminders.command("list")
@click.option("--pending", is_flag=True, help="Waiting to be sent (also those being sent).")
@click.option("--sent", is_flag=True, help="Sent.")
@click.option("--failed", is_flag=True, help="Failed for good (see 'reminders retry').")
@click.option("--cancelled", is_flag=True, help="Cancelled because the step was done first.")
@click.option(
    "--superseded",
    is_flag=True,
    help="Never sent: a higher rung for the same recipients was due at the same time.",
)
@click.option("--track", "track_ref", default=None, metavar="TRACK", help="Only this track.")
@click.option("--limit", type=int, default=None, help="At most this many.")
@db_option
@json_option
def reminders_list(
    pending: bool,
    sent: bool,
    failed: bool,
    cancelled: bool,
    superseded: bool,
    track_ref: str | None,
    limit: int | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """List notifications in due order; with no flag, all but the cancelled ones.

    'due' is when the email is due, 'deadline' the step's own due date. A superseded
    notification was never sent: a higher rung of the same step for the same recipients was
    due when it was (see 'reminders forecast'); it is listed with the one that replaced it.

    Example:

        onboarding reminders list --failed
    """
    from onboarding import outbox

    statuses: list[str] = []
    if pending:
        statuses += ["pending", "sending"]
    if sent:
        statuses.append("sent")
    if failed:
        statuses.append("failed")
    if cancelled:
        statuses.append("cancelled")
    if superseded:
        statuses.append("superseded")
    if not statuses:
        statuses = ["pending", "sending", "sent", "failed", "superseded"]
    from onboarding import filters

    with database(db_path) as db:
        track_id = _track_id(track_ref) if track_ref else None
        if track_id is not None:
            filters.check_track(db, track_id)
        rows = outbox.list_rows(db, statuses, track_id, limit=limit)
        out = [_reminder_row(r) for r in rows]
        if as_json:
            echo_json(out)
            return
        from onboarding import roles

        roles.declared(db)  # the roles definitions declare, so they are shown by their labels
        echo_table([{**r, "to": _people(r["to"])} for r in out], REMINDER_COLUMNS)
        for r in out:
            if r["status"] == "failed" and r["error"]:
                click.echo(f"#{r['id']} ({r['notification']}, track #{r['track']}): {r['error']}")


@reminders.command("preview")
@click.argument("notification_id", metavar="ID", type=int)
@click.option("--html", "show_html", is_flag=True, help="Print the HTML part instead of text.")
@db_option
@json_option
def reminders_preview(
    notification_id: int, show_html: bool, db_path: str | None, as_json: bool
) -> None:
    """Render a notification as it would be sent now, without sending it.

    Example:

        onboarding reminders preview 12
    """
    from notifications.runner import PrepareError, preview

    with database(db_path) as db:
        try:
            shown = preview(db, notification_id, _mail_config(db_path, db))
        except PrepareError as exc:
            raise UserError(f"notification {notification_id}: {exc}") from exc
        if as_json:
            echo_json(shown)
            return
        click.echo(f"From: {shown['from']}")
        click.echo(f"To: {', '.join(shown['to'])}")
        click.echo(f"Subject: {shown['subject']}")
        click.echo(f"Message-ID: {shown['message_id']}")
        if shown["attachments"]:
            click.echo(f"Attachments: {', '.join(shown['attachments'])}")
        if shown["note"]:
            click.echo(f"Note: {shown['note']}")
        click.echo("")
        click.echo(shown["html"] if show_html else shown["text"])


@reminders.command("retry")
@click.argument("notification_id", metavar="[ID]", type=int, required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Requeue every failed notification.")
@db_option
def reminders_retry(notification_id: int | None, all_failed: bool, db_path: str | None) -> None:
    """Requeue a failed notification (or all with --failed); the next send-due sends it.

    Example:

        onboarding reminders retry --failed && onboarding reminders send-due
    """
    from onboarding import outbox

    if (notification_id is None) == (not all_failed):
        raise UserError("give a notification ID or --failed (not both)")
    with database(db_path) as db:
        if all_failed:
            n = outbox.retry_failed(db)
            click.echo(f"requeued {n} failed notification(s)")
        else:
            assert notification_id is not None
            row = outbox.retry(db, notification_id)
            click.echo(f"notification {row['id']} requeued (due {_reminder_row(row)['due']})")


@reminders.command("forecast")
@click.option("--days", type=int, default=7, show_default=True, help="How far ahead to look.")
@click.option("--at", default=None, metavar="TIME", help="Look from this time (default: now).")
@db_option
@json_option
def reminders_forecast(days: int, at: str | None, db_path: str | None, as_json: bool) -> None:
    """What will be sent to whom in the coming days (overdue ones first), to check beforehand.

    One message per recipient per step: a reminder or lower escalation rung that falls due
    together with a higher rung of the same step for the same recipients is superseded (not
    sent; 'superseded by #N' names the one sent instead). A step entered already overdue climbs
    its escalation ladder from the moment of entry: rung 1 at once, rung k when its own time
    has come and as many working days after entry as rung k is after rung 1.

    Example:

        onboarding reminders forecast --days 14
    """
    from notifications.runner import forecast

    if days < 0:
        raise UserError("--days must be 0 or more")
    with database(db_path) as db:
        rows = forecast(db, _parse_at(at), days, _mail_config(db_path, db))
        if as_json:
            echo_json(rows)
            return
        for r in rows:
            r["to"] = ", ".join(r["to"]) or "(nobody)"
            if r["kind"] == "escalation":
                r["kind"] = f"escalation {r['level']}"
            if r["superseded_by"]:
                # Not a fault, but the reader must see that this one will not go out.
                note = f"not sent: superseded by #{r['superseded_by']}"
                r["problem"] = "; ".join(p for p in (note, r["problem"]) if p)
        echo_table(rows, ["id", "when", "kind", "track", "to", "subject", "problem"])


@cli.group(cls=Group)
def scheduler() -> None:
    """The long-running sender: wakes when a notification falls due and sends it.

    Example:

        onboarding scheduler run --db onboarding.db
    """


@scheduler.command("run")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds between regular sweeps (it also wakes at the next due notification).",
)
@db_option
def scheduler_run(interval: float, db_path: str | None) -> None:
    """Run the scheduler until SIGTERM or Ctrl-C (the sweep in progress finishes first).

    Safe next to a cron 'reminders send-due' and after downtime: overdue notifications go out
    once each, in due order.

    Example:

        onboarding scheduler run --db onboarding.db --interval 60
    """
    import logging

    from notifications.scheduler import run
    from onboarding.db import resolve_path

    with database(db_path) as db:  # fails early on a missing or old database
        config = _mail_config(db_path, db)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    click.echo(f"scheduler: {config.describe()}", err=True)
    run(resolve_path(db_path), config, interval)


# --- mail settings kept in the database ------------------------------------------------------


@cli.group(cls=Group)
def mail() -> None:
    """Mail settings kept in the database: sender, Message-ID domain, language, digest, SMTP.

    Every command on the database (send-due, preview, forecast, the scheduler, the web page)
    then sends the same way. The environment (ONBOARDING_SMTP_*, ONBOARDING_MAIL_FROM) wins over
    the config file (onboarding.toml next to the database, or $ONBOARDING_CONFIG), which wins
    over what is stored here. The SMTP password is never stored in the database.
    See docs/notifications.md.

    Example:

        onboarding mail configure --from "KOMBIT <mail@kombit.dk>"
    """


@mail.command("configure")
@click.option("--from", "mail_from", default=None, metavar="'NAME <ADDRESS>'", help="The sender.")
@click.option(
    "--message-id-domain",
    default=None,
    metavar="DOMAIN",
    help="Right of the @ in Message-IDs (default: the sender's domain).",
)
@click.option("--language", default=None, metavar="da|en", help="Language of the messages.")
@click.option(
    "--organisation",
    default=None,
    metavar="NAME",
    help="Who sends, as the templates name it (default: KOMBIT).",
)
@click.option(
    "--signature",
    default=None,
    metavar="TEXT",
    help="The lines under 'Venlig hilsen' (default: the organisation); '\\n' starts a line.",
)
@click.option(
    "--digest/--no-digest",
    default=None,
    help="One email per recipient and day for reminders and escalations, or one each.",
)
@click.option("--smtp-host", default=None, metavar="HOST", help="SMTP server (none: .eml files).")
@click.option("--smtp-port", default=None, metavar="N", help="Default 25, 587 or 465 by security.")
@click.option("--smtp-security", default=None, metavar="none|starttls|tls", help="Encryption.")
@click.option(
    "--smtp-user",
    default=None,
    metavar="USER",
    help="Login name; the password stays in $ONBOARDING_SMTP_PASSWORD or the config file.",
)
@click.option("--smtp-timeout", default=None, metavar="SECONDS", help="Seconds per SMTP operation.")
@click.option("--smtp-password", "smtp_password", default=None, hidden=True)
@click.option(
    "--unset",
    multiple=True,
    metavar="KEY",
    help="Remove a stored setting (e.g. mail.from or smtp-host); repeatable.",
)
@db_option
def mail_configure(
    mail_from: str | None,
    message_id_domain: str | None,
    language: str | None,
    organisation: str | None,
    signature: str | None,
    digest: bool | None,
    smtp_host: str | None,
    smtp_port: str | None,
    smtp_security: str | None,
    smtp_user: str | None,
    smtp_timeout: str | None,
    smtp_password: str | None,
    unset: tuple[str, ...],
    db_path: str | None,
) -> None:
    """Store mail settings in the database, so every command on it sends the same way.

    Each value is checked as the same key in the config file is; a bad value, or settings that
    would not work together (an SMTP host without a sender), change nothing. The SMTP password
    is never stored in the database: keep it in $ONBOARDING_SMTP_PASSWORD or in the config
    file's [smtp] password. The environment and the config file still win over what is stored
    here: 'onboarding mail show' says which value is used and where it comes from.

    Example:

        onboarding mail configure --from "KOMBIT <mail@kombit.dk>" --digest
    """
    from notifications.config import load_config, option_key, read_stored, store
    from onboarding.db import resolve_path

    if smtp_password is not None:
        # Refused with the reason rather than as an unknown option: a database is copied and
        # backed up, so a password in it would leak with every copy.
        raise UserError(
            "the SMTP password is never stored in the database: set $ONBOARDING_SMTP_PASSWORD "
            "or [smtp] password in the config file"
        )
    given = {
        "mail.from": mail_from,
        "mail.message_id_domain": message_id_domain,
        "mail.language": language,
        "mail.organisation": organisation,
        "mail.signature": signature,
        "mail.digest": digest,
        "smtp.host": smtp_host,
        "smtp.port": smtp_port,
        "smtp.security": smtp_security,
        "smtp.user": smtp_user,
        "smtp.timeout": smtp_timeout,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    removed = [option_key(name) for name in unset]
    if not changes and not removed:
        raise UserError("nothing to store: give a setting (see --help) or --unset KEY")
    path = resolve_path(db_path)
    with database(db_path) as db:
        before = read_stored(db)
        stored = store(db, path, changes, removed)
        config = load_config(path, db=db)
    for key in [*changes, *removed]:
        now = config.settings[key]
        if key in stored:
            click.echo(f"{key} = {_setting_text(key, stored[key])} (stored)")
        elif key in before:
            click.echo(f"{key}: removed from the database")
        else:
            click.echo(f"{key}: was not stored in the database")
        if now.source.kind != "database" and (key in stored or now.source.kind != "default"):
            click.echo(f"  in force: {_setting_text(key, now.value)} from {now.source}")


def _setting_text(key: str, value: Any) -> str:
    if key == "smtp.password":
        return "set" if value else "not set"
    if value is None or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).replace("\n", "\\n")  # a signature's lines: one setting, one line


@mail.command("show")
@db_option
@json_option
def mail_show(db_path: str | None, as_json: bool) -> None:
    """Print the mail settings in force for the database and where each one comes from.

    Sources: an environment variable, the config file (its path), the database ('onboarding
    mail configure') or the default. The SMTP password is shown only as set or not set.

    Example:

        onboarding mail show --db demo-output/onboarding.db
    """
    from notifications.config import load_config, read_stored
    from onboarding.db import resolve_path

    path = resolve_path(db_path)
    with database(db_path) as db:
        config = load_config(path, db=db)
        stored = read_stored(db)
    rows = [
        {
            "key": key,
            "value": ("set" if s.value else None) if key == "smtp.password" else s.value,
            "source": s.source.kind,
            "where": s.source.where,
            "stored": stored.get(key),
        }
        for key, s in config.settings.items()
    ]
    if as_json:
        echo_json(
            {
                "database": str(path),
                "config_file": config.source,
                "transport": config.describe(),
                "settings": rows,
            }
        )
        return
    click.echo(f"Mail settings for {path} (config file: {config.source or 'none'})")
    width = max(len(r["key"]) for r in rows)
    for key, s in config.settings.items():
        click.echo(f"  {key.ljust(width)}  {_setting_text(key, s.value)}  [{s.source}]")
    for key, value in stored.items():
        s = config.settings[key]
        if s.source.kind != "database":
            click.echo(
                f"  (stored {key} = {_setting_text(key, value)} is overridden by {s.source})"
            )
    click.echo(config.describe())


# --- import / report / goals / demo ---------------------------------------------------------


def _parse_day(text: str | None, option: str) -> Any:
    from onboarding import clock

    return clock.parse_date(text, what=option) if text else None


def _today() -> Any:
    from onboarding import clock

    return clock.local_date(clock.now())


@cli.group("import", cls=Group)
def import_group() -> None:
    """Import the municipalities' monthly status reports.

    Registry files (municipalities, systems, contracts, contacts) go through 'onboarding
    registry import'. See docs/reports.md for the status file format.

    Example:

        onboarding import status status-2021-03.csv --dry-run
    """


@import_group.command("status")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and count what would change.")
@db_option
@json_option
def import_status_cmd(file: str, dry_run: bool, db_path: str | None, as_json: bool) -> None:
    """Apply a monthly status file: every row, or if any row is bad, none.

    Columns: municipality,system,status,date and optionally index, note, kind, bob and a
    column per workflow field (e.g. connection_date). status is a state of the connection
    workflow or a report bucket: 'I drift', 'Aftalt', 'Endnu ikke aftalt' (in the terms of
    the definition version the row's track runs). Each row moves its track forward by the
    shortest path, each step recorded with actor 'import' at the row's moment (a date alone:
    the start of that day); importing an accepted file again changes nothing. Once actors are
    registered, the 'import' actor's importer scope must cover every row. Rows of kind
    system-readiness declare systems ready (the municipality column is the pilot). UTF-8 (with
    or without BOM) or Windows-1252, comma or semicolon.

    Example:

        onboarding import status status-2021-03.csv
    """
    from onboarding.status_import import import_status

    with database(db_path) as db:
        result = import_status(db, file, dry_run=dry_run)
    if as_json:
        echo_json(result.to_dict())
        return
    prefix = "dry run, nothing written: " if dry_run else ""
    click.echo(f"{file}: {prefix}{result.summary()}")
    notable = [o for o in result.outcomes if o.outcome in ("past", "finished")]
    for o in notable[:20]:
        why = "is finished" if o.outcome == "finished" else "is already past it"
        click.echo(f"  line {o.line}: {o.subject}: left as it is (track #{o.track} {why})")


@cli.group(cls=Group)
def report() -> None:
    """Reports that regenerate the programme deck's tables from the database.

    Example:

        onboarding report rollout --as-of 2021-03-31
    """


@report.command("rollout")
@click.option("--category", help="Only this category (Jobcenter, ESDH, EOJ, Pladsanvisning).")
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "html"]),
    default=None,
    help="Output format (default: table); html is one self-contained file with the chart.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write to this file, not stdout."
)
@db_option
@json_option
def report_rollout(
    category: str | None,
    as_of: str | None,
    fmt: str | None,
    output: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Rollout per vendor solution: municipalities in operation, agreed, not agreed, total.

    One row per system some municipality has a contract for, grouped by category, with a
    total per category computed from the rows and the number of distinct municipalities.
    --as-of replays history, so a past date gives the past picture.

    Example:

        onboarding report rollout --as-of 2021-03-31 --format html -o rollout.html
    """
    from onboarding import reports
    from onboarding.storage import check_output, write_text

    if as_json and fmt not in (None, "json"):
        raise UserError(f"--json and --format {fmt} disagree: give one of them")
    fmt = "json" if as_json else fmt or "table"
    if output:
        check_output(output)  # before any work: a missing folder is one line
    with database(db_path) as db:
        data = reports.rollout(db, category, _parse_day(as_of, "--as-of"))
        if fmt == "json":
            text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        elif fmt == "csv":
            text = reports.rollout_csv(data)
        elif fmt == "html":
            text = reports.rollout_html(db, data)
        else:
            text = reports.rollout_text(data)
    if output:
        write_text(output, text)  # whole or not at all; a missing folder is one line
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@report.command("buckets")
@click.argument("definition")
@click.option(
    "--by",
    type=click.Choice(["municipality", "vendor", "system", "region"]),
    default=None,
    help="One row per municipality, vendor, system or region (default: only the total).",
)
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "html"]),
    default="table",
    show_default=True,
    help="Output format; html is one self-contained file.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write to this file, not stdout."
)
@db_option
@json_option
def report_buckets(
    definition: str,
    by: str | None,
    as_of: str | None,
    fmt: str,
    output: str | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Tracks of any definition per report bucket (per state if it declares no buckets).

    Each track counts once, in the bucket of its state at the end of the --as-of day,
    replayed from history as the rollout report is, so a past date gives the past picture.
    'onboarding workflow list' names the definitions.

    Example:

        onboarding report buckets dpo-approval --by municipality --as-of 2021-06-30
    """
    from onboarding import reports
    from onboarding.storage import check_output, write_text

    if output:
        check_output(output)  # before any work: a missing folder is one line
    with database(db_path) as db:
        data = reports.buckets(db, definition, by, _parse_day(as_of, "--as-of"))
    if as_json:
        fmt = "json"
    if fmt == "json":
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    elif fmt == "csv":
        text = reports.buckets_csv(data)
    elif fmt == "html":
        text = reports.buckets_html(data)
    else:
        text = reports.buckets_text(data)
    if output:
        write_text(output, text)  # whole or not at all
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@report.command("goals")
@click.option(
    "--year", type=int, default=None, help="The goals' year (default: the --as-of date's year)."
)
@click.option("--quarter", type=click.IntRange(1, 4), default=None, help="Only this quarter.")
@click.option(
    "--as-of", "as_of", metavar="DATE", help="The report as it stood at the end of this day."
)
@db_option
@json_option
def report_goals(
    year: int | None, quarter: int | None, as_of: str | None, db_path: str | None, as_json: bool
) -> None:
    """Quarterly targets against the actual numbers at each quarter's end: met or missed.

    Targets come from the shipped goals file of the year (the deck's 2021 goals); counters the
    tool cannot derive are recorded with 'onboarding goals record'. With --as-of, quarters
    not ended by then are measured at that date, replayed from history.

    Example:

        onboarding report goals --year 2021 --quarter 2 --as-of 2021-06-30
    """
    from onboarding import reports

    day = _parse_day(as_of, "--as-of") or _today()
    with database(db_path) as db:
        data = reports.goals(db, year or day.year, quarter, today=day)
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.goals_text(data), nl=False)


@report.command("grid")
@click.option("--category", help="Only systems of this category.")
@click.option("--as-of", "as_of", metavar="DATE", help="The grid at the end of this day.")
@db_option
@json_option
def report_grid(
    category: str | None, as_of: str | None, db_path: str | None, as_json: bool
) -> None:
    """The portfolio at a glance: municipality by system, current step and days in it.

    Each cell is step:working days in it; ok = in operation; * marks an outlier (far longer
    in the step than the others there), ! an overdue step. --as-of replays history, so a
    past date gives the past grid.

    Example:

        onboarding report grid --category Jobcenter --as-of 31-03-2021
    """
    from onboarding import reports

    with database(db_path) as db:
        data = reports.grid(db, category, as_of=_parse_day(as_of, "--as-of"))
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.grid_text(data), nl=False)


@report.command("klik")
@click.option("--task", help="One KLIK task (name or part of it), with its open municipalities.")
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@db_option
@json_option
def report_klik(task: str | None, as_of: str | None, db_path: str | None, as_json: bool) -> None:
    """KLIK tasks: municipalities Fuldført / Påbegyndt / Ikke påbegyndt per task.

    Example:

        onboarding report klik --task GDPR --as-of 2021-04-27
    """
    from onboarding import reports

    with database(db_path) as db:
        data = reports.klik(db, task, _parse_day(as_of, "--as-of"))
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.klik_text(data), nl=False)


@report.command("overdue")
@click.option("--as-of", "as_of", metavar="DATE", help="The picture at the end of this day.")
@db_option
@json_option
def report_overdue(as_of: str | None, db_path: str | None, as_json: bool) -> None:
    """Open tracks of every workflow past their due date, the longest overdue first.

    --as-of replays history: the tracks open at the end of that day, with the due dates
    their state and fields then gave.

    Example:

        onboarding report overdue --as-of 2021-05-10 --json
    """
    from onboarding import reports

    with database(db_path) as db:
        data = reports.overdue(db, today=_parse_day(as_of, "--as-of"))
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.overdue_text(data), nl=False)


@report.command("waves")
@db_option
@json_option
def report_waves(db_path: str | None, as_json: bool) -> None:
    """Rollout waves B1-B6: go-live dates and municipalities by step.

    Example:

        onboarding report waves
    """
    from onboarding import reports

    with database(db_path) as db:
        data = reports.waves(db)
    if as_json:
        echo_json(data)
    else:
        click.echo(reports.waves_text(data), nl=False)


@cli.group("goals", cls=Group)
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
        row = reports.record_counter(
            db, counter, value, _parse_day(at, "--at") or _today(), actor_name(actor), note
        )
    click.echo(f"{row['counter']} = {row['value']} on {row['at']}")


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


@cli.command("demo")
@click.option(
    "--dir",
    "directory",
    default="demo-output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo database, input files, outbox and HTML report.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Build even where a database the demo did not create is: it is moved to "
    "DIR/replaced-<time>/ first.",
)
def demo_cmd(directory: str, force: bool) -> None:
    """Build a demo: the 98 municipalities, the deck's picture of 31 March 2021, a quarter.

    Writes a fresh database, the input files it imports, the reminders of a simulated quarter
    (as .eml files, never sent) and the HTML rollout report to DIR; prints the rollout report
    and what to try next. Deterministic, offline, a few seconds.

    It replaces only its own output: an earlier demo in DIR is replaced (and it says so);
    a database it did not create, or its file names without its database, make it stop
    unless --force, which moves them to DIR/replaced-<time>/ first.

    Example:

        onboarding demo --dir demo-output
    """
    from onboarding import demo

    demo.run(directory, echo=click.echo, force=force)


# --- actors / audit / backup (reliability) ---


def _by_option(func: F) -> F:
    return click.option(
        "--actor",
        "by",
        envvar="ONBOARDING_ACTOR",
        default=None,
        help=(
            "Who makes the change (default: $ONBOARDING_ACTOR, else your login name); once "
            "a coordinator for all exists, it must be one."
        ),
    )(func)


def _scope_options(func: F) -> F:
    func = click.option(
        "--vendor", default=None, help="Only tracks of this vendor's systems (vendor name)."
    )(func)
    return click.option(
        "--municipality", default=None, help="Only this municipality's tracks (code or name)."
    )(func)


def _read_password(prompt: bool) -> str:
    """A password from the terminal (asked twice) or the first line of stdin; never argv."""
    if prompt and sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        raise UserError("no password on stdin")
    return line.rstrip("\r\n")


def _grant_rows(info: dict[str, Any]) -> str:
    return "; ".join(g["label"] for g in info["grants"]) or "(no roles)"


@cli.group(cls=Group)
def actor() -> None:
    """Who may do what: register actors and grant them roles for a municipality, a vendor or all.

    A database with no actor runs open (any name, any role). The first 'actor add' switches
    permissions on: from then on every write is checked against the actor's roles and scopes
    (docs/actors.md).

    Example:

        onboarding actor add kombit && onboarding actor grant kombit coordinator
    """


@actor.command("add")
@click.argument("name")
@click.option("--display-name", default=None, help="The name people know the actor by.")
@click.option("--email", default=None, help="The actor's email address.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read a password for the web page from the first line of stdin.",
)
@db_option
@_by_option
def actor_add(
    name: str,
    display_name: str | None,
    email: str | None,
    password_stdin: bool,
    db_path: str | None,
    by: str | None,
) -> None:
    """Register an actor. The first one switches permission checks on for this database.

    Example:

        printf '%s\\n' "$PW" | onboarding actor add aarhus-pl --email pl@aarhus.dk --password-stdin
    """
    from onboarding import actors

    password = _read_password(prompt=False) if password_stdin else None
    with database(db_path) as db:
        was_open = not actors.enforcing(db)
        info = actors.add(
            db,
            name,
            display_name=display_name,
            email=email,
            password=password,
            by=actor_name(by),
        )
    click.echo(f"actor {info['name']} added" + (" with a password" if password else ""))
    if was_open:
        click.echo(
            "permission checks are now on: grant roles with 'onboarding actor grant' "
            f"(e.g. 'onboarding actor grant {info['name']} coordinator')"
        )


@actor.command("list")
@db_option
@json_option
def actor_list(db_path: str | None, as_json: bool) -> None:
    """List the actors with their roles and scopes (never their passwords).

    Example:

        onboarding actor list --json
    """
    from onboarding import actors

    with database(db_path) as db:
        rows = actors.list_actors(db)
        enforced = actors.enforcing(db)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        [
            {
                "name": r["name"],
                "display_name": r["display_name"],
                "active": r["active"],
                "password": r["has_password"],
                "roles": _grant_rows(r),
            }
            for r in rows
        ]
    )
    if not enforced:
        click.echo("no actors: this database runs open (anyone may act in any role)")


@actor.command("grant")
@click.argument("name")
@click.argument("role")
@_scope_options
@db_option
@_by_option
def actor_grant(
    name: str,
    role: str,
    municipality: str | None,
    vendor: str | None,
    db_path: str | None,
    by: str | None,
) -> None:
    """Give an actor a role for one municipality, one vendor, or (neither given) for all.

    ROLE is a shipped role or one an added definition declares ('workflow show DEF' lists
    them); its scope kind decides the scope: a municipality's role needs --municipality, a
    vendor's --vendor (docs/actors.md).

    Example:

        onboarding actor grant aarhus-pl municipality-pl --municipality Aarhus
    """
    from onboarding import actors

    with database(db_path) as db:
        g = actors.grant(
            db, name, role, municipality=municipality, vendor=vendor, by=actor_name(by)
        )
    click.echo(f"{name}: granted {g['label']}")


@actor.command("revoke")
@click.argument("name")
@click.argument("role")
@_scope_options
@db_option
@_by_option
def actor_revoke(
    name: str,
    role: str,
    municipality: str | None,
    vendor: str | None,
    db_path: str | None,
    by: str | None,
) -> None:
    """Take a role away from an actor (the same scope it was granted with).

    Example:

        onboarding actor revoke aarhus-pl municipality-pl --municipality Aarhus
    """
    from onboarding import actors

    with database(db_path) as db:
        g = actors.revoke(
            db, name, role, municipality=municipality, vendor=vendor, by=actor_name(by)
        )
    click.echo(f"{name}: revoked {g['label']}")


@actor.command("set-password")
@click.argument("name")
@db_option
@_by_option
def actor_set_password(name: str, db_path: str | None, by: str | None) -> None:
    """Set an actor's password for the web page: asked on the terminal, or read from stdin.

    Never give a password as an argument (it would show in the process list and shell
    history).

    Example:

        onboarding actor set-password aarhus-pl
    """
    from onboarding import actors

    password = _read_password(prompt=True)
    with database(db_path) as db:
        actors.set_password(db, name, password, by=actor_name(by))
    click.echo(f"password of {name} set")


@cli.group(cls=Group)
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
        click.echo(result.line())
    if signed and result.ok and not trusted and local is None:
        click.echo(
            "note: no key file and no --key: the anchors' signatures were checked against the"
            " keys they carry; compare the fingerprint with the one you kept",
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
                click.echo(check.line())
                raise click.exceptions.Exit(AUDIT_BROKEN_EXIT)
            audit_mod.require_history(check)
            key, created = audit_mod.ensure_key(key_file)
            if created:
                click.echo(_key_created(key_file, audit_mod.public_key(key)), err=True)
        result, anchor = audit_mod.take_anchor(db, key)
        if anchor is None:
            click.echo(result.line())
            raise click.exceptions.Exit(AUDIT_BROKEN_EXIT)
        warning = audit_mod.key_mode_warning(key_file)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        if as_json:
            echo_json({**anchor.summary(), "database": anchor.database, "text": anchor.text()})
        else:
            click.echo(anchor.text(), nl=False)
        for address in addresses:
            where = audit_mod.mail_anchor(db, path, anchor, [address])
            click.echo(f"anchor for {address}: {where}", err=True)


def _key_created(key_file: Any, public: bytes) -> str:
    from onboarding import audit as audit_mod

    return (
        f"audit key created: {key_file} (fingerprint {audit_mod.fingerprint(public)}); back it"
        " up apart from the database, see docs/audit.md"
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
            click.echo(f"wrote {n} history rows to {output}", err=True)
        else:
            audit_mod.export(db, sys.stdout, fmt)


@cli.command("backup")
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


@cli.command("restore")
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


# --- serve (web) ------------------------------------------------------------------------------


@cli.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback by default: only this machine can connect).",
)
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@db_option
def serve_cmd(host: str, port: int, db_path: str | None) -> None:
    """Start the coordinators' web page over the database (login with an actor's password).

    The page uses the same engine as these commands: grid, tracks, bulk actions, imports,
    reports and notifications. Log in as an actor with a password
    ('onboarding actor add NAME --password-stdin').
    Sessions are signed with $ONBOARDING_WEB_SECRET, else a random secret per start.

    Example:

        onboarding serve --db demo-output/onboarding.db --port 8000
    """
    import uvicorn

    from onboarding.db import resolve_path
    from onboarding.web import create_app

    path = resolve_path(db_path)
    app = create_app(path, secret=os.environ.get("ONBOARDING_WEB_SECRET") or None)
    click.echo(f"Serving {path} on http://{host}:{port}/ (Ctrl+C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
