"""Why an outbox row was not sent, as a person reads it.

The outbox keeps its reasons as English text (``last_error``: JSON output, logs and scripts read
it as it has always been). The reasons the tool itself writes are these message ids; a reason
shown to a person (``reminders list``, ``reminders send-due``, the notifications page) is read
again as its message (``i18n.reread``) and said in the reader's language. Anything else (an
SMTP server's reply, a template's error) is shown as it was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onboarding import i18n

if TYPE_CHECKING:
    from onboarding.db import Database

#: The reasons written by ``onboarding.outbox`` and ``notifications.runner``, by message id.
STORED = (
    "the step was done first",
    "cancelled by %(trigger)s before it was sent",
    "superseded by #%(id)s (%(notification)s): a higher rung for the same recipients is due",
    "the runner %(runner)s stopped while sending (lease ran out); the message may have been "
    "delivered",
    "#%(id)s (%(notification)s) goes to the same recipients instead",
)


#: The reason naming the trigger that cancelled a row ("cancelled by 'agree_date' ...").
CANCELLED = STORED[1]


def said(reason: object, lang: str, db: Database | None = None, track: int | None = None) -> str:
    """A row's reason in ``lang`` ('' for none). Given the database and the row's track, a
    trigger it names is said by its step's label (terms.trigger), never by its key."""
    if reason is None:
        return ""
    if isinstance(reason, i18n.Message):
        return reason.say(lang)
    found = i18n.reread(str(reason), STORED)
    if isinstance(found, i18n.Message) and found.msgid == CANCELLED and db is not None:
        found = _by_label(found, db, track)
    return i18n.localise(found, lang)


def _by_label(found: i18n.Message, db: Database, track: int | None) -> i18n.Message:
    """The cancelled reason with its trigger as a term of the track's definition (its English
    the quoted key, as written); a track or trigger not found: as it was."""
    import ast

    from onboarding import definitions, terms

    written = str(found.params["trigger"])
    try:
        key = ast.literal_eval(written)  # written as repr(key)
    except (ValueError, SyntaxError):
        return found
    row = db.conn.execute(
        "SELECT definition, def_version FROM tracks WHERE id = ?", [track]
    ).fetchone()
    if row is None or not isinstance(key, str):
        return found
    term = terms.keyed(terms.trigger(definitions.get(db, row[0], row[1]), key))
    if str(term) != written:
        return found
    return i18n.Message(found.msgid, {**found.params, "trigger": term}, text=str(found))
