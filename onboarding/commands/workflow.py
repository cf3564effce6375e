"""``onboarding workflow``: track definitions (list, show, validate, add, diagram, migrate)."""

from __future__ import annotations

from typing import Any

import click

from onboarding.commands.common import (
    Group,
    Labels,
    UserError,
    _parse_at,
    actor_name,
    actor_options,
    complete,
    database,
    db_option,
    echo_json,
    echo_table,
    json_option,
    parse_sets,
    say,
    t,
)


@click.group(cls=Group)
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
    opts = [PART_OPTIONS[p] + (t(" (optional)") if p in OPTIONAL_PARTS else "") for p in sub.of]
    key = ", ".join(sub.key)
    return t(
        "Start a track with: %(options)s  (one open track per %(key)s)",
        options=", ".join(opts),
        key=key,
    )


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
        click.echo(
            t(
                "%(name)s v%(version)s: %(title)s (subject: %(subject)s)",
                name=defn.name,
                version=defn.version,
                title=defn.title,
                subject=defn.subject,
            )
        )
        click.echo(_subject_line(defn))
        click.echo("\n" + t("States:"))
        echo_table(
            [
                {
                    t("state"): s["name"] + (" *" if s["name"] == defn.initial else ""),
                    t("label"): s["label"],
                    t("bucket"): s["bucket"],
                    t("phase"): _phase(s["phase"]),
                    t("final"): s["final"],
                }
                for s in data["states"]
            ]
        )
        click.echo("\n" + t("Transitions:"))
        echo_table(
            [
                {
                    t("trigger"): step["trigger"],
                    t("from"): step["source"],
                    t("to"): step["dest"],
                    t("roles"): step["roles"],
                    t("guards"): [_guard_text(g) for g in step["guards"]]
                    + [t("not %(guard)s", guard=_guard_text(g)) for g in step["unless"]],
                }
                for step in data["transitions"]
            ]
        )
        if defn.roles:
            click.echo("\n" + t("Roles declared by this definition:"))
            echo_table(
                [
                    {
                        t("role"): r.key,
                        t("label"): r.label["da"],
                        t("english"): r.label["en"],
                        t("scope"): r.scope,
                    }
                    for r in defn.roles
                ]
            )


def _phase(key: str | None) -> str:
    """A phase by its label in Danish, by its key in English (as it always read)."""
    from onboarding import terms
    from onboarding.i18n import Term

    return say(Term(key, {"da": terms.phase(key, "da"), "en": key})) if key else ""


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
        click.echo(f"{file}: {t('warning: %(message)s', message=say(w))}", err=True)
    problems = [f"{file}: {p}" for p in (found if folder else missing_folder_hint(file, found))]
    problems += [f"{folder}/{p}" for p in template_problems]
    if problems:
        for p in problems:
            click.echo(p, err=True)
        raise UserError(f"{len(problems)} problem(s) in {file}")
    click.echo(t("%(file)s: valid", file=file))


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
        own = definition_templates.templates(db, defn.name, defn.version)
        if new:
            line = t("%(name)s v%(version)s: added", name=defn.name, version=defn.version)
        else:
            line = t(
                "%(name)s v%(version)s: already registered", name=defn.name, version=defn.version
            )
        with_templates = t(" with %(n)s template file(s)", n=len(own)) if own else ""
        click.echo(line + with_templates)


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
        if dry_run:
            click.echo(t("would move %(n)s track(s)", n=result.moved))
        else:
            click.echo(t("moved %(n)s track(s)", n=result.moved))
        labels = Labels(db)  # states by their labels, each in its own version
        for (version, old, new), n in sorted(result.by_state.items()):
            before = labels.state(name, version, old)
            after = labels.state(name, to_version, new)
            click.echo(f"  {n:>6}  v{version} {before} -> {after}")
