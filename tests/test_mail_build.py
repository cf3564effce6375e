"""Issue 14, delivery: messages built through the cached frame of their shape are byte for byte
the messages ``build_message`` builds, headers still made by our header classes; results are
written with the next handover, so a run commits once per message; the SMTP watchdog is one
thread per transport, gone when it closes."""

from __future__ import annotations

import copy
import io
import re
import threading
from datetime import UTC, datetime, timedelta
from email.generator import BytesGenerator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from notifications.render import (
    Attachment,
    Outgoing,
    Rendered,
    build_message,
    build_outgoing,
    due_calendar,
)
from notifications.runner import send_due
from notifications.send import SmtpTransport
from onboarding import clock, outbox
from tests.mailserver import MailServer
from tests.notify_support import (
    SAPA_NOTICE_AT,
    add_contacts,
    connection_to_sapa,
    make_ready,
    smtp_config,
    t,
)

# --- the same bytes ---------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400
)
# Lines long and short, "From " at a line's start (smtplib quotes it), LF, CRLF and CR.
_LINE = st.one_of(
    st.just("From here on"),
    st.just("x" * 120),
    st.just("Dette er en påmindelse om fristen for Køge Kommune – " * 3),
    st.just(""),
    _TEXT,
)
_BODY = st.one_of(
    _TEXT,
    st.tuples(st.sampled_from(["\n", "\r\n", "\r"]), st.lists(_LINE, max_size=14)).map(
        lambda p: p[0].join(p[1])
    ),
)
_NAME = st.one_of(
    st.just(""), st.just("Søren Ærø"), st.just("Bo"), _TEXT.map(lambda s: s[:60])
)
_EMAIL = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,8})?@[a-z0-9]{1,12}\.dk", fullmatch=True)
_FILENAME = st.one_of(
    st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True),
    st.just("frist-1234567-reminder.ics"),
    # Attachment names are built from a definition's notification name (a key,
    # workflows/loader/problems.py's _NAME) and a track id; free text here only stretches the
    # encoder, so without control or line-separator characters, which no file name can hold in
    # a header.
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=50,
    )
    .filter(lambda s: s.strip() != "" and len(s.splitlines()) == 1)
    .map(lambda s: s + ".ics"),
)


def _boundaries(data: bytes) -> list[str]:
    return [b.decode() for b in re.findall(rb'boundary="([^"]+)"', data)]


def _reference(msg_kwargs: dict[str, object], rendered: Rendered, fast: Outgoing) -> bytes:
    """``build_message``'s message with the boundaries the fast build drew (the generator
    would draw its own at random), as ``.eml`` bytes and as smtplib flattens it."""
    msg = build_message(rendered, **msg_kwargs)  # type: ignore[arg-type]
    drawn = _boundaries(fast.as_bytes())
    msg.set_boundary(drawn[0])
    if msg.get_content_type() == "multipart/mixed":
        first = msg.get_payload(0)
        first.set_boundary(drawn[1])  # type: ignore[union-attr]
    return msg.as_bytes()


def _smtp(msg_kwargs: dict[str, object], rendered: Rendered, fast: Outgoing) -> bytes:
    msg = build_message(rendered, **msg_kwargs)  # type: ignore[arg-type]
    drawn = _boundaries(fast.as_bytes())
    msg.set_boundary(drawn[0])
    if msg.get_content_type() == "multipart/mixed":
        msg.get_payload(0).set_boundary(drawn[1])  # type: ignore[union-attr]
    buf = io.BytesIO()
    # What smtplib.send_message does: a copy, flattened by a BytesGenerator with CRLF.
    BytesGenerator(buf).flatten(copy.copy(msg), linesep="\r\n")
    return buf.getvalue()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=_TEXT,
    text=_BODY,
    html=_BODY,
    to=st.lists(st.tuples(_NAME, _EMAIL), min_size=1, max_size=3),
    sender=st.sampled_from(
        ["KOMBIT onboarding <onboarding@kombit.dk>", "onboarding@kombit.dk", "Æble <a@b.dk>"]
    ),
    ids=st.lists(st.integers(1, 10**9), max_size=4),
    files=st.lists(
        st.tuples(_FILENAME, st.sampled_from(["PUBLISH", "CANCEL"]), st.binary(max_size=300)),
        max_size=3,
    ),
)
def test_build_outgoing_equals_build_message(
    subject: str,
    text: str,
    html: str,
    to: list[tuple[str, str]],
    sender: str,
    ids: list[int],
    files: list[tuple[str, str, bytes]],
) -> None:
    """For any subject, bodies, names, outbox ids and calendar files, the fast build's bytes
    are build_message's: as an .eml file and as smtplib sends them (CRLF, '>From ')."""
    rendered = Rendered(subject, text, html)
    kwargs: dict[str, object] = {
        "mail_from": sender,
        "to": to,
        "message_id": "<t1.e2.reminder.abc@kombit.dk>",
        "date_sent": datetime(2021, 3, 31, 12, 0, 7, tzinfo=UTC),
        "attachments": [Attachment(name, content, method) for name, method, content in files],
        "outbox_ids": ids,
    }
    fast = build_outgoing(rendered, **kwargs)  # type: ignore[arg-type]
    assert fast.as_bytes() == _reference(kwargs, rendered, fast)
    assert fast.smtp_bytes() == _smtp(kwargs, rendered, fast)
    reference = build_message(rendered, **kwargs)  # type: ignore[arg-type]
    assert fast["Subject"] == str(reference["Subject"])
    assert fast["Message-ID"] == str(reference["Message-ID"])


def test_build_outgoing_refuses_a_header_with_a_line_break() -> None:
    """A value that would start a new header is refused, as by EmailMessage: ValueError."""
    rendered = Rendered("Hej", "tekst\n", "<p>tekst</p>\n")
    for message_id in ("<a@b.dk>\r\nBcc: evil@example.com", "<a@b.dk>\nBcc: evil@example.com"):
        kwargs = {
            "mail_from": "a@b.dk",
            "to": [("Bo", "bo@b.dk")],
            "message_id": message_id,
            "date_sent": datetime(2021, 3, 31, tzinfo=UTC),
        }
        with pytest.raises(ValueError):
            build_message(rendered, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            build_outgoing(rendered, **kwargs)  # type: ignore[arg-type]


def test_build_outgoing_with_a_calendar_file() -> None:
    """A reminder's shape (text, HTML, one .ics): same bytes, and the .ics comes back whole."""
    stamp = datetime(2021, 3, 31, tzinfo=UTC)
    ics = due_calendar(
        uid="t1.e2@kombit.dk", summary="Frist: Køge – KMD", description="Hej\nFrist",
        due=stamp.date(), stamp=stamp, lang="da",
    )  # fmt: skip
    rendered = Rendered("Påmindelse: Køge – KMD Momentum", "Hej Søren\n", "<p>Hej</p>\n")
    kwargs: dict[str, object] = {
        "mail_from": "KOMBIT <onboarding@kombit.dk>",
        "to": [("Søren Ærø", "s@koege.dk")],
        "message_id": "<t1.e2.reminder.abc@kombit.dk>",
        "date_sent": stamp,
        "attachments": [Attachment("frist-1-reminder.ics", ics)],
        "outbox_ids": [7],
    }
    fast = build_outgoing(rendered, **kwargs)  # type: ignore[arg-type]
    assert fast.as_bytes() == _reference(kwargs, rendered, fast)
    [part] = list(fast.message().iter_attachments())
    assert part.get_content() == ics.decode() or part.get_payload(decode=True) == ics


# --- one commit per message -------------------------------------------------------------------


def _write_transactions(db: Database) -> list[str]:
    """Every write transaction started on the connection: BEGIN, or a write in autocommit."""
    seen: list[str] = []
    conn = db.conn

    def trace(sql: str) -> None:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head == "BEGIN" or (head in {"INSERT", "UPDATE", "DELETE", "REPLACE"}
                               and not conn.in_transaction):
            seen.append(sql)

    conn.set_trace_callback(trace)
    return seen


def test_send_due_commits_once_per_message(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """Sending N messages commits N handovers and the batch's bookkeeping, not 2N: each
    message's result is written in the next handover's transaction (or the batch's last)."""
    make_ready(db)
    add_contacts(db, tmp_path, [
        {"role": "sapa-owner", "name": "Sofie", "email": "sofie@koege.dk", "municipality": "Køge"},
        {"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"},
        {"role": "programme-lead", "name": "Pia", "email": "pia@koege.dk", "municipality": "Køge"},
    ])  # fmt: skip
    track = connection_to_sapa(db)
    config = smtp_config(smtp_server, db_path)
    seen = _write_transactions(db)
    summary = send_due(db, t(SAPA_NOTICE_AT), config)
    db.conn.set_trace_callback(None)
    assert summary.sent == summary.messages == 2 and len(smtp_server.messages) == 2
    # reclaim, claim, supersede, one handover per message, the batch's last results, and the
    # claim that finds nothing more (before: a handover and a result per message, 2N + 4)
    assert len(seen) == summary.messages + 5, seen
    sent = [r for r in outbox.list_rows(db, track_id=track) if r["status"] == "sent"]
    assert len(sent) == 2 and all(r["message_id"] for r in sent)


class _StopAfterFirst(SmtpTransport):
    """Interrupted (Ctrl-C) while handing over the second message."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls = 0

    def send(self, msg: object, recipients: list[str]) -> dict[str, str]:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt("stopped before the second message")
        return super().send(msg, recipients)  # type: ignore[arg-type]


def test_send_due_interrupted_keeps_what_it_sent_recorded(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """A run stopped after one message was accepted still records that message as sent
    (its result waited for the next handover): nothing accepted is sent twice."""
    make_ready(db)
    add_contacts(db, tmp_path, [
        {"role": "sapa-owner", "name": "Sofie", "email": "sofie@koege.dk", "municipality": "Køge"},
        {"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"},
        {"role": "programme-lead", "name": "Pia", "email": "pia@koege.dk", "municipality": "Køge"},
    ])  # fmt: skip
    track = connection_to_sapa(db)
    config = smtp_config(smtp_server, db_path)
    assert config.smtp is not None
    with _StopAfterFirst(config.smtp, config.envelope_from) as transport, pytest.raises(
        KeyboardInterrupt
    ):
        send_due(db, t(SAPA_NOTICE_AT), config, transport=transport)
    assert len(smtp_server.messages) == 1
    [first] = smtp_server.messages
    rows = {r["message_id"]: r for r in outbox.list_rows(db, track_id=track)}
    assert rows[first.message_id]["status"] == "sent"
    # The rest goes once the lease has run out, and the first is not sent again.
    now = clock.now() + config.lease + timedelta(seconds=1)
    later = send_due(db, t(SAPA_NOTICE_AT), config, now=now)
    assert later.sent == 1 and len(smtp_server.messages) == 2
    assert len({m.message_id for m in smtp_server.messages}) == 2


# --- the watchdog ----------------------------------------------------------------------------


def test_smtp_watchdog_is_one_thread_ended_by_close(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer
) -> None:
    """A run's messages share one watchdog thread; closing the transport ends it."""
    make_ready(db)
    add_contacts(db, tmp_path, [
        {"role": "sapa-owner", "name": "Sofie", "email": "sofie@koege.dk", "municipality": "Køge"},
        {"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"},
        {"role": "programme-lead", "name": "Pia", "email": "pia@koege.dk", "municipality": "Køge"},
    ])  # fmt: skip
    connection_to_sapa(db)
    config = smtp_config(smtp_server, db_path)
    assert config.smtp is not None
    transport = SmtpTransport(config.smtp, config.envelope_from)
    before = set(_watchdogs())
    with transport:
        summary = send_due(db, t(SAPA_NOTICE_AT), config, transport=transport)
        mine = [th for th in _watchdogs() if th not in before]
    assert summary.messages == 2 and len(mine) == 1
    mine[0].join(timeout=5)
    assert not mine[0].is_alive()


def _watchdogs() -> list[threading.Thread]:
    return [th for th in threading.enumerate() if th.name == "smtp-watchdog"]
