"""Issue 14, delivery: the next message is made while the server answers the current one.

* the transport advances the caller's work one step per reply it awaits (MAIL, each RCPT,
  DATA, the end of the data), after the command was written: the bytes on the wire, the
  replies and their classification are those of smtplib's ``sendmail``;
* ``send_due`` gathers, renders and builds message N+1 while the server holds its reply to
  message N, and writes nothing for it until N's outcome is known: N+1 is neither handed over
  nor charged an attempt before then, and every message still goes exactly once;
* headers written as given (our Message-IDs, outbox ids) are byte for byte the policy's folding.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from notifications import runner
from notifications.render import (
    Rendered,
    _fold_field,
    _folded_simple,
    build_message,
    build_outgoing,
)
from notifications.runner import SendSummary
from notifications.send import DeliveryError, SmtpTransport
from onboarding import outbox
from tests.mailserver import MailServer
from tests.notify_support import SAPA_NOTICE_AT, connection_to_sapa, make_ready, smtp_config
from tests.test_exactly_once import _contacts, _send_in_background, holding_server
from tests.test_mail_build import _reference

pytestmark = pytest.mark.usefixtures("no_mail_env")

__all__ = ["holding_server"]  # the fixture, shared with the exactly-once tests


# --- the transport ----------------------------------------------------------------------------


def _outgoing(message_id: str = "<t1.e2.reminder.abc@kombit.dk>") -> Any:
    return build_outgoing(
        Rendered("Påmindelse: Køge", "Hej Søren\n", "<p>Hej</p>\n"),
        mail_from="KOMBIT <onboarding@kombit.dk>",
        to=[("Søren", "s@koege.dk")],
        message_id=message_id,
        date_sent=datetime(2021, 3, 31, 12, tzinfo=UTC),
        outbox_ids=[7],
    )


def _steps(log: list[int], server: MailServer) -> Iterator[None]:
    for _ in range(10):
        log.append(len(server.messages))
        yield


def test_smtp_meanwhile_advances_once_per_awaited_reply(
    db_path: Path, smtp_server: MailServer
) -> None:
    """One step after MAIL, after each RCPT, after DATA and after the data itself; the rest
    is left to the caller, the message arrives whole, and the next send runs no step."""
    config = smtp_config(smtp_server, db_path)
    assert config.smtp is not None
    log: list[int] = []
    with SmtpTransport(config.smtp, config.envelope_from) as transport:
        transport.open()
        work = _steps(log, smtp_server)
        transport.meanwhile(work)
        msg = _outgoing()
        assert transport.send(msg, ["s@koege.dk", "p@koege.dk"]) == {}
        assert len(log) == 5
        transport.send(_outgoing("<t1.e2.reminder.def@kombit.dk>"), ["s@koege.dk"])
        assert len(log) == 5
    assert len(list(work)) == 5  # what the transport left
    first = smtp_server.messages[0]
    assert first.message_id == msg["Message-ID"]
    assert first.rcpt_tos == ["s@koege.dk", "p@koege.dk"]
    assert first.text().rstrip() == "Hej Søren"


def test_smtp_meanwhile_leaves_a_refusal_as_it_was(db_path: Path, smtp_server: MailServer) -> None:
    """A 550 to the data is the same DeliveryError with or without work done meanwhile."""
    config = smtp_config(smtp_server, db_path)
    assert config.smtp is not None
    smtp_server.mode = "550"
    errors = []
    for overlap in (False, True):
        log: list[int] = []
        with SmtpTransport(config.smtp, config.envelope_from) as transport:
            if overlap:
                transport.meanwhile(_steps(log, smtp_server))
            with pytest.raises(DeliveryError) as caught:
                transport.send(_outgoing(), ["s@koege.dk"])
        errors.append((str(caught.value), caught.value.permanent, caught.value.batch))
        assert len(log) == (5 if overlap else 0)  # MAIL, RCPT, DATA, the data, smtplib's RSET
    assert errors[0] == errors[1] and errors[0][1] is True


# --- the runner -------------------------------------------------------------------------------


def test_send_due_builds_the_next_message_while_the_server_answers(
    db: Database,
    db_path: Path,
    tmp_path: Path,
    holding_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the server holds its reply to message 1, message 2 is already built, and
    nothing is written for it: only message 1 is handed over and charged. Released, every
    message goes once."""
    built: list[str] = []
    second = threading.Event()

    def build(*args: Any, **kwargs: Any) -> Any:
        msg = build_outgoing(*args, **kwargs)
        built.append(msg["Message-ID"])
        if len(built) >= 2:
            second.set()
        return msg

    monkeypatch.setattr(runner, "build_outgoing", build)
    make_ready(db)
    towns = ("Køge", "Greve", "Solrød")
    _contacts(db, tmp_path, towns)
    for town in towns:
        connection_to_sapa(db, town)
    config = smtp_config(holding_server, db_path)
    handler: Any = holding_server.handler
    thread, out = _send_in_background(db_path, config, SAPA_NOTICE_AT)
    assert handler.arrived.wait(30)  # message 1 is at the server, its 250 held
    try:
        # Message 2 is made while the server holds its reply to message 1 (the sender makes
        # it once message 1's data is written, which may be just after the server has it).
        assert second.wait(30), built
        handed = [r for r in outbox.list_rows(db, ("sending",)) if r["handed_at"]]
        assert len(handed) == 1 and handed[0]["attempts"] == 1
        waiting = [r for r in outbox.list_rows(db, ("sending",)) if not r["handed_at"]]
        assert waiting and all(r["attempts"] == 0 for r in waiting)
        assert outbox.list_rows(db, ("sent",)) == []
    finally:
        handler.release.set()
    thread.join(60)
    assert not thread.is_alive() and isinstance(out[0], SendSummary), out
    summary = out[0]
    ids = [m.message_id for m in holding_server.messages]
    assert summary.sent == summary.messages == len(ids) == len(set(ids)) == 6
    assert outbox.list_rows(db, ("sending",)) == []


# --- headers written as given -------------------------------------------------------------------

_ATOM = st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)
_MESSAGE_ID = st.one_of(
    st.builds(
        lambda local, domain: f"<{'.'.join(local)}@{'.'.join(domain)}>",
        st.lists(_ATOM, min_size=1, max_size=6),
        st.lists(st.from_regex(r"[A-Za-z0-9-]{1,20}", fullmatch=True), min_size=1, max_size=4),
    ),
    st.from_regex(r"<[A-Za-z0-9+=/._-]{1,70}@[a-z.]{1,30}>", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(message_id=_MESSAGE_ID, ids=st.lists(st.integers(1, 10**12), min_size=1, max_size=12))
def test_headers_written_as_given_equal_the_policys_folding(
    message_id: str, ids: list[int]
) -> None:
    """A Message-ID (short, long, of our shape or not) and a list of outbox ids: the bytes and
    the value read back are the policy's, and the whole message is build_message's."""
    try:
        expected = _fold_field("Message-ID", message_id)
    except Exception as exc:  # not a header the policy takes: neither does the fast path
        with pytest.raises(type(exc)):
            _folded_simple("Message-ID", message_id)
        return
    assert _folded_simple("Message-ID", message_id) == expected
    listed = ", ".join(str(i) for i in ids)
    assert _folded_simple("X-Onboarding-Outbox", listed) == _fold_field(
        "X-Onboarding-Outbox", listed
    )
    rendered = Rendered("Påmindelse: Køge", "Hej\n", "<p>Hej</p>\n")
    kwargs: dict[str, object] = {
        "mail_from": "KOMBIT <onboarding@kombit.dk>",
        "to": [("Søren", "s@koege.dk")],
        "message_id": message_id,
        "date_sent": datetime(2021, 3, 31, 12, tzinfo=UTC),
        "outbox_ids": ids,
    }
    fast = build_outgoing(rendered, **kwargs)  # type: ignore[arg-type]
    assert fast.as_bytes() == _reference(kwargs, rendered, fast)
    reference = build_message(rendered, **kwargs)  # type: ignore[arg-type]
    assert fast["Message-ID"] == str(reference["Message-ID"])
