"""The deadline's iCalendar file (.ics), written directly: text escaping, line folding, event.

Separate from the mail: it is bytes attached to a message, written by RFC 5545's rules (and
byte for byte what the ``icalendar`` package writes), with no Jinja2 and no email package.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def _ics_text(value: str) -> str:
    """An iCalendar TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma escaped and
    every line break as ``\\n``."""
    return (
        value.replace("\\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _ics_fold(line: str, limit: int = 75) -> str:
    """A content line folded to at most ``limit`` octets per line (RFC 5545 3.1), never inside
    a UTF-8 character nor between a backslash and the character it escapes.

    Cut on the UTF-8 bytes (a character by character loop was a tenth of a message's cost):
    each piece is the longest that stays under ``limit`` octets and ends on a character's
    end; a piece ending in ``\\`` or ``^`` gives that character to the next (as icalendar
    does)."""
    data = line.encode("utf-8")
    if len(data) < limit:
        return line
    room = limit - 1
    pieces: list[bytes] = []
    pos = 0
    while len(data) - pos > room:
        end = pos + room
        while data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: not a character's start
            end -= 1
        if end - pos > 1 and data[end - 1] in b"\\^":
            end -= 1
        pieces.append(data[pos:end])
        pos = end
    pieces.append(data[pos:])
    return b"\r\n ".join(pieces).decode("utf-8")


#: iTIP methods (RFC 5546) a deadline event is sent with: PUBLISH adds or updates it, CANCEL
#: withdraws it (the event then says STATUS:CANCELLED).
METHODS = ("PUBLISH", "CANCEL")


def due_calendar(
    *,
    uid: str,
    summary: str,
    description: str,
    due: date,
    stamp: datetime,
    lang: str,
    sequence: int = 0,
    method: str = "PUBLISH",
    organizer: str | None = None,
) -> bytes:
    """An iCalendar file with one all-day event on the due date.

    ``uid`` names the deadline (one per track and state entry), ``sequence`` grows each time
    the deadline changed, so a calendar moves its one entry instead of adding another (RFC 5545
    3.8.7.4); ``method="CANCEL"`` withdraws it. ``organizer`` is the sender's address.

    Written directly (the same bytes the ``icalendar`` package writes for this event, which
    ``tests/test_notifications_render.py`` and ``tests/test_mail_calendar.py`` check): building
    it with ``icalendar`` was a fifth of the cost of each message (bench/RESULTS.md).
    """
    if method not in METHODS:
        raise ValueError(f"unknown iCalendar method {method!r}")
    # Properties in the order icalendar writes them: its canonical ones, then alphabetical.
    lines = (
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{_ics_text(f'-//KOMBIT//onboarding//{lang.upper()}')}",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"SUMMARY:{_ics_text(summary)}",
        f"DTSTART;VALUE=DATE:{due.strftime('%Y%m%d')}",
        f"DTEND;VALUE=DATE:{(due + timedelta(days=1)).strftime('%Y%m%d')}",
        f"DTSTAMP:{stamp.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}",
        f"UID:{_ics_text(uid)}",
        f"SEQUENCE:{int(sequence)}",
        f"DESCRIPTION:{_ics_text(description)}",
        *((f"ORGANIZER:mailto:{organizer}",) if organizer else ()),
        *(("STATUS:CANCELLED",) if method == "CANCEL" else ()),
        "TRANSP:TRANSPARENT",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    return "".join(_ics_fold(line) + "\r\n" for line in lines).encode("utf-8")
