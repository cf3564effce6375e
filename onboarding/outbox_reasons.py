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

#: A row with nobody to send it to (``notifications.runner``): which roles have no contact
#: (NO_CONTACT each, "; " between), a contacts row that would do, the row's id.
NOBODY = (
    "nobody to send to: %(missing)s; add one with 'onboarding registry import contacts FILE'"
    " (a CSV file with the columns role,name,email,municipality,vendor, e.g. '%(example)s'),"
    " then 'onboarding reminders retry %(id)s'"
)
#: One role without a contact: its key and label (as the mail's language has it), and for
#: whom it is missing (one of SCOPES, or nothing: a role for all).
NO_CONTACT = "no contact with role %(role)s%(scope)s"
#: Whom a role's contact must be registered for, as a NO_CONTACT ends.
SCOPES = (  # the longer first: " for all municipalities or X Municipality" ends the same
    " for all municipalities or %(municipality)s Municipality",
    " for %(municipality)s Municipality",
    " (the track names no municipality)",
    " for vendor %(vendor)s",
    " (the track names no system)",
)

#: The reason naming the trigger that cancelled a row ("cancelled by 'agree_date' ...").
CANCELLED = "cancelled by %(trigger)s before it was sent"

#: The reasons written by ``onboarding.outbox`` and ``notifications.runner``, by message id.
STORED = (
    NOBODY,
    "the step was done first",
    CANCELLED,
    "superseded by #%(id)s (%(notification)s): a higher rung for the same recipients is due",
    "the runner %(runner)s stopped while sending (lease ran out); the message may have been "
    "delivered",
    "#%(id)s (%(notification)s) goes to the same recipients instead",
)


def said(reason: object, lang: str, db: Database | None = None, track: int | None = None) -> str:
    """A row's reason in ``lang`` ('' for none). Given the database and the row's track, a
    trigger it names is said by its step's label (terms.trigger), never by its key."""
    if reason is None:
        return ""
    if isinstance(reason, i18n.Message):
        return reason.say(lang)
    found: object = i18n.reread(str(reason), STORED)
    if isinstance(found, i18n.Message) and found.msgid == CANCELLED and db is not None:
        found = _by_label(found, db, track)
    if isinstance(found, i18n.Message) and found.msgid == NOBODY:
        missing = _no_contacts(str(found.params["missing"]))
        if missing is not None:
            found = i18n.Message(NOBODY, {**found.params, "missing": missing}, text=str(found))
    elif isinstance(found, str) and found.startswith("no contact with role "):
        # a message that went to the roles that have contacts notes the others (forecast)
        found = _no_contacts(found) or found
    return i18n.localise(found, lang)


def no_contact(role: str, written: str, scope: i18n.Message | str) -> i18n.Message:
    """One role without a contact: "no contact with role programme-lead (kommunens
    KOMBIT-programleder) for Frederikssund Municipality" in English (key and ``written``
    label, as stored); in Danish the role by its Danish label alone."""
    from onboarding import roles

    term = i18n.Term(
        f"{role} ({written})", {"da": f"“{roles.label(role, 'da')}”", "en": f"{role} ({written})"}
    )
    return i18n.Message(NO_CONTACT, {"role": term, "scope": scope})


def _no_contacts(text: str) -> i18n.Phrases | None:
    """The roles without a contact ("no contact with role KEY (LABEL)SCOPE", "; " between)
    as ``no_contact`` messages; None: a part does not read as one."""
    import re

    pattern = re.compile(r"no contact with role (?P<role>\S+) \((?P<label>.*?)\)(?P<scope>.*)")
    parts: list[object] = []
    for part in text.split("; "):
        match = pattern.fullmatch(part)
        if match is None:
            return None
        scope = i18n.reread(match["scope"], SCOPES) if match["scope"] else ""
        parts.append(no_contact(match["role"], match["label"], scope))
    return i18n.Phrases(parts, sep="; ")


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
