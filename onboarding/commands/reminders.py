"""``onboarding reminders``: the notification outbox (send, list, preview, retry, forecast)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from onboarding.commands.common import (
    Group,
    UserError,
    _mail_config,
    _parse_at,
    _track_id,
    database,
    day,
    db_option,
    echo_json,
    echo_table,
    json_option,
    lang,
    read_scope,
    reader_option,
    say,
    shown_local,
    t,
)

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

    return ", ".join(i if "@" in i else roles.label(i, lang()) for i in items)


@click.group(cls=Group)
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
        # said while the database is open: a cancelling trigger is named by its label
        reasons = {
            o.id: _reason(o.error, db, _track_of(db, o.id))
            for o in summary.outcomes
            if o.status != "sent" and not as_json
        }
    if as_json:
        echo_json(summary.to_dict())
    else:
        for o in summary.outcomes:
            if o.status == "sent":
                line = t(
                    "#%(id)s sent to %(to)s: %(subject)s",
                    id=o.id,
                    to=", ".join(o.to),
                    subject=o.subject,
                )
                click.echo(line)
            else:
                click.echo(f"#{o.id} {_status(o.status)}: {reasons[o.id]}")
        click.echo(say(summary.line()))
        if config.smtp is None and summary.messages:
            click.echo(
                t(
                    "(no SMTP server configured: messages written to %(folder)s)",
                    folder=config.outbox_dir,
                )
            )
    trouble = summary.trouble()
    if trouble is not None:
        click.echo(f"send-due: {say(trouble)}", err=True)
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
@reader_option
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
    reader: str | None,
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
    from onboarding import filters, visibility

    with database(db_path) as db:
        scope = read_scope(db, reader)
        track_id = _track_id(track_ref) if track_ref else None
        if track_id is not None:
            filters.check_track(db, track_id)
            visibility.require_track(db, scope, track_id)
        rows = outbox.list_rows(db, statuses, track_id, limit=limit, scope=scope)
        out = [_reminder_row(r) for r in rows]
        own = visibility.own_addresses(db, scope)
        if own is not None:  # others' addresses are not the reader's to see
            for r in out:
                r["to"], _hidden = visibility.hide_addresses(list(r["to"] or []), own)
        if as_json:
            echo_json(out)
            return
        from onboarding import roles

        roles.declared(db)  # the roles definitions declare, so they are shown by their labels
        echo_table([_shown(r, db) for r in out])
        for r in out:
            if r["status"] == "failed" and r["error"]:
                click.echo(
                    t(
                        "#%(id)s (%(notification)s, track #%(track)s): %(reason)s",
                        id=r["id"],
                        notification=r["notification"],
                        track=r["track"],
                        reason=_reason(r["error"], db, r["track"]),
                    )
                )


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
            click.echo(t("requeued %(n)s failed notification(s)", n=n))
        else:
            assert notification_id is not None
            row = outbox.retry(db, notification_id)
            due = _reminder_row(row)["due"]
            click.echo(t("notification %(id)s requeued (due %(due)s)", id=row["id"], due=due))


@reminders.command("forecast")
@click.option("--days", type=int, default=7, show_default=True, help="How far ahead to look.")
@click.option("--at", default=None, metavar="TIME", help="Look from this time (default: now).")
@reader_option
@db_option
@json_option
def reminders_forecast(
    days: int, at: str | None, reader: str | None, db_path: str | None, as_json: bool
) -> None:
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
        from onboarding import visibility

        scope = read_scope(db, reader)
        rows = forecast(db, _parse_at(at), days, _mail_config(db_path, db), scope)
        rows = [visibility.own_recipients(db, scope, r) for r in rows]
        if as_json:
            echo_json(rows)
            return
        shown = []
        for r in rows:
            kind = _kind(r["kind"], r.get("level"))
            problem = _reason(r["problem"])  # "nobody to send to": roles by their labels
            # Others' addresses are counted, not shown (read scopes).
            hidden = [t("+%(n)s other(s)", n=r["hidden"])] if r.get("hidden") else []
            if r["superseded_by"]:
                # Not a fault, but the reader must see that this one will not go out.
                note = t("not sent: superseded by #%(id)s", id=r["superseded_by"])
                problem = "; ".join(p for p in (note, problem) if p)
            shown.append(
                {
                    "id": r["id"],
                    t("when"): shown_local(r["when"]),
                    t("kind"): kind,
                    t("track"): r["track"],
                    t("to"): ", ".join([*r["to"], *hidden]) or t("(nobody)"),
                    t("subject"): r["subject"],
                    t("problem"): problem or "",
                }
            )
        echo_table(shown)


def _kind(kind: str, level: Any) -> str:
    """A notification's kind as read ("Eskalering 2")."""
    from onboarding import i18n

    text = i18n.pgettext(lang(), "kind", kind)
    return f"{text} {level}" if kind == "escalation" and level else text


def _shown(r: dict[str, Any], db: Any) -> dict[str, Any]:
    """A row of 'reminders list' as a person reads it (labels, the language's dates)."""

    return {
        "id": r["id"],
        t("send at"): shown_local(r["due"]),
        t("deadline"): day(r["deadline"]),
        t("status"): _status(r["status"]),
        t("notification"): r["notification"],
        t("track"): r["track"],
        t("to"): _people(r["to"]),
        t("error"): _reason(r["error"], db, r["track"]),
    }


def _track_of(db: Any, row_id: int) -> int | None:
    """The track of an outbox row (None: no such row)."""
    found = db.execute("SELECT track_id FROM outbox WHERE id = ?", [row_id]).fetchone()
    return int(found[0]) if found else None


def _status(status: str) -> str:
    """An outbox row's status as read ("sendt", "mislykket")."""
    from onboarding import i18n

    return i18n.pgettext(lang(), "status", status)


def _reason(text: Any, db: Any = None, track: Any = None) -> str:
    """Why a row was not sent, in the CLI's language (one the tool wrote: its message; with
    the database and the row's track, a trigger it names by its label)."""
    from onboarding.outbox_reasons import said

    return said(text, lang(), db, track)
