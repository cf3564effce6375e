"""The bodies of ``track advance`` (one track) and ``track show``, without click.

The click commands in ``onboarding.commands.track`` call them, and so does the fast path
(``onboarding.commands.fast``), which runs these two commands without importing click: one
body, two parsers of one option spec (``onboarding.commands.spec``).
"""

from __future__ import annotations

from typing import Any

from onboarding.commands.base import (
    Labels,
    Refused,
    _parse_at,
    _track_id,
    actor_name,
    database,
    day,
    echo,
    echo_json,
    lang,
    read_scope,
    say,
    t,
    tn,
)


def advance_one(
    args: tuple[str, ...],
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
    """``track advance TRACK TRIGGER``: fire the trigger, or with ``dry_run`` show the move."""
    from onboarding import engine
    from onboarding.commands.base import parse_sets

    with database(db_path) as db:
        act = engine.Act(actor=actor_name(actor), role=role, note=note, at=_parse_at(at))
        values = parse_sets(sets)
        if len(args) != 2:
            raise Refused("give TRACK TRIGGER, or --where FILTER TRIGGER")
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
            return
        from onboarding import definitions

        # The step's label, never its key: this line is read by a person.
        state = definitions.get(db, row["definition"], row["def_version"]).by_name.get(row["state"])
        step = state.label if state is not None else row["state"]
        due = t(", due %(due)s", due=day(row["due"])) if row["due"] else ""
        echo(
            t(
                "track #%(id)s is now in %(step)s (version %(version)s%(due)s)",
                id=row["id"],
                step=step,
                version=row["version"],
                due=due,
            )
        )


def _echo_preview(preview: dict[str, Any], as_json: bool) -> None:
    """One track's dry run: the move, the due date and the notifications it would schedule."""
    from onboarding import clock

    if as_json:
        echo_json(preview)
        return
    echo(
        f"would move track #{preview['id']} from {preview['from']} to {preview['to']}"
        f" ({preview['to_label']}); nothing written"
    )
    echo(f"  due       {preview['due'] or '-'}")
    if not preview["notifications"]:
        echo("  notifications: none")
        return
    echo("  notifications it would schedule:")
    for n in preview["notifications"]:
        echo(
            f"    {clock.display(n['at'])}  {n['kind']} {n['name']} to {', '.join(n['to'])}"
            f" (template {n['template']})"
        )


def show(
    track_ref: str, at: str | None, reader: str | None, db_path: str | None, as_json: bool
) -> None:
    """``track show TRACK``: the track as a table, or as JSON."""
    from onboarding import tracks

    with database(db_path) as db:
        info = tracks.show(db, _readable(db, track_ref, reader), _parse_at(at))
        if as_json:
            echo_json(info)
            return
        from onboarding import i18n

        labels = Labels(db)
        name, version = info["definition"], info["definition_version"]
        echo(f"{t('Track')} #{info['id']}  {labels.title(name, version)} v{version}")
        rows = [
            (t("subject"), info["subject_text"] + ("  (BoB)" if info["subject"]["bob"] else "")),
            (t("state"), info["state_label"]),
            (t("phase"), labels.phase(info["phase"]) or "-"),
            (t("bucket"), info["bucket"] or "-"),
            (t("who acts"), labels.role(info["responsible_role"]) or "-"),
            (
                t("due"),
                (day(info["due"]) or "-")
                + (f"  {t('OVERDUE')}" if info["overdue"] else "")
                + "   "
                + tn(
                    "(%(n)s working day in this step)",
                    "(%(n)s working days in this step)",
                    info["days_in_state"],
                ),
            ),
            (t("version"), str(info["version"])),
        ]
        if info.get("payment_scenario"):
            ps = info["payment_scenario"]
            contract = _contract_label(ps["contract"]) if ps["contract"] else t("not on record")
            scenario = i18n.pgettext(lang(), "payment", ps["scenario"]) if ps["scenario"] else ""
            rows.append((t("contract"), f"{contract}: {scenario}"))
        defn = labels.definition(name, version)
        for key, value in info["fields"].items():
            field = defn.fields.get(key)
            rows.append((field.label if field else key, _value(value)))
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            echo(f"  {k:<{width}}  {v}")
        if info["available"]:
            echo(f"  {t('next')}:")
            for a in info["available"]:
                blocked = (
                    f"  [{t('blocked')}: {'; '.join(say(b) for b in a['blocked_by'])}]"
                    if a["blocked_by"]
                    else ""
                )
                roles = ", ".join(Labels.role(r) for r in a["roles"])
                echo(f"    {a['trigger']} -> {a['dest_label']} ({roles}){blocked}")


def _contract_label(key: str) -> str:
    from onboarding import i18n

    return i18n.pgettext(lang(), "contract", key)


def _value(value: Any) -> str:
    """A field value as read: a date in the language's format, yes/no in words."""
    if isinstance(value, bool):
        return t("yes") if value else t("no")
    if isinstance(value, str) and len(value) == 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            return day(value)
        except ValueError:
            return value
    return "" if value is None else str(value)


def _readable(db: Any, track_ref: str, reader: str | None) -> int:
    """The track's id; with ``--actor``, "unknown track" when it is outside what the actor
    may read (onboarding.visibility), as for an id that does not exist."""
    from onboarding import permits

    track_id = _track_id(track_ref)
    # On a database that runs open every reader reads everything (visibility.of): one SELECT
    # instead of importing onboarding.visibility and onboarding.actors.
    if reader is not None and not permits.runs_open(db):
        from onboarding import visibility

        visibility.require_track(db, read_scope(db, reader), track_id)
    return track_id
