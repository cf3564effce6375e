"""Why an outbox row was not sent, as a person reads it.

The outbox keeps its reasons as English text (``last_error``: JSON output, logs and scripts read
it as it has always been). The reasons the tool itself writes are these message ids; a reason
shown to a person (``reminders list``, ``reminders send-due``, the notifications page) is read
again as its message (``i18n.reread``) and said in the reader's language. Anything else (an
SMTP server's reply, a template's error) is shown as it was written.
"""

from __future__ import annotations

from onboarding import i18n

#: The reasons written by ``onboarding.outbox`` and ``notifications.runner``, by message id.
STORED = (
    "the step was done first",
    "cancelled by %(trigger)s before it was sent",
    "superseded by #%(id)s (%(notification)s): a higher rung for the same recipients is due",
    "the runner %(runner)s stopped while sending (lease ran out); the message may have been "
    "delivered",
    "#%(id)s (%(notification)s) goes to the same recipients instead",
)


def said(reason: object, lang: str) -> str:
    """A row's reason in ``lang`` ('' for none)."""
    if reason is None:
        return ""
    if isinstance(reason, i18n.Message):
        return reason.say(lang)
    return i18n.localise(i18n.reread(str(reason), STORED), lang)
