"""The claim-render-send-record loop, shared by ``reminders send-due`` and the scheduler.

``send_due`` takes back stale claims, then repeatedly claims a batch of due rows (one
``BEGIN IMMEDIATE`` transaction each), renders them, renews each claim just before handing the
message to the transport, and records the outcome row by row right after. Any number of runners
may do this on the same database at the same time: a row is claimed by one runner only, and a
runner that died mid-batch leaves claims that expire and are taken back.

The clock: ``at`` decides what is due (``--at``, never later than the wall clock); ``now`` is
the wall clock for claim leases, for recording when a message was sent, and for the backoff
of a failed attempt (measured from when the attempt happened, whatever ``at`` says).

Exactly once: a claim is not an attempt. Right before a message goes to the transport,
``outbox.hand_over`` re-checks its rows in one ``BEGIN IMMEDIATE`` (a step done meanwhile
cancels them) and charges the attempt. When the server cannot be used (a session-level
refusal, two timeouts in a row, the run's time up) the run stops and gives the rows back as
they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time as _time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from notifications.config import Config
from notifications.render import (
    Attachment,
    Outgoing,
    Rendered,
    Renderer,
    build_message,
    build_outgoing,
    due_calendar,
)
from notifications.send import DeliveryError, SmtpTransport, Transport, open_transport
from onboarding import clock, outbox
from onboarding.db import Database
from onboarding.i18n import Message, Phrases, say
from onboarding.outbox_reasons import NOBODY, no_contact
from onboarding.outbox_results import Ledger, Sent
from onboarding.visibility import Scope


@dataclass
class Outcome:
    """What happened to one outbox row in a run."""

    id: int
    status: str
    to: list[str] = field(default_factory=list)
    subject: str = ""
    error: str | None = None
    message_id: str | None = None


@dataclass
class SendSummary:
    at: str
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    superseded: int = 0
    reclaimed: int = 0
    messages: int = 0
    #: Claimed rows given back untried because the run stopped (pending, attempts as before).
    held: int = 0
    #: Why the run stopped before sending everything due (the server could not be used).
    stopped: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    @property
    def ok(self) -> bool:
        """Every due message was sent or legitimately skipped (``send-due`` exits 0)."""
        return self.failed == 0 and self.retrying == 0 and self.stopped is None

    def line(self) -> Message:
        """The run in one line (English as ``str``; said in the reader's language)."""
        counts = ("sent", "retrying", "failed", "cancelled", "superseded", "messages")
        params = {k: str(getattr(self, k)) for k in (*counts, "claimed", "reclaimed")}
        return Message(
            "sent %(sent)s, retrying %(retrying)s, failed %(failed)s, cancelled %(cancelled)s,"
            " superseded %(superseded)s (%(messages)s message(s); %(claimed)s claimed,"
            " %(reclaimed)s stale claim(s) taken back)",
            params,
        )

    def trouble(self) -> str | None:
        """One line saying what went wrong (None when ``ok``): for stderr and logs."""
        if self.ok:
            return None
        parts: list[Message] = []
        if self.failed:
            parts.append(Message("%(n)s failed", {"n": str(self.failed)}))
        if self.retrying:
            parts.append(Message("%(n)s to retry after a backoff", {"n": str(self.retrying)}))
        if self.stopped:
            parts.append(
                Message(
                    "stopped: %(why)s (%(n)s claimed row(s) left pending)",
                    {"why": self.stopped, "n": str(self.held)},
                )
            )
        return Message("not everything due was sent: %(parts)s", {"parts": Phrases(parts, "; ")})


@dataclass
class _Item:
    """One claimed row, rendered on its own."""

    row: dict[str, Any]
    data: dict[str, Any]
    rendered: Rendered
    to: list[tuple[str, str]]
    note: str | None


def runner_name() -> str:
    """A name for this runner's claims: host, process, thread and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:6]}"


class PrepareError(Exception):
    """A row that cannot become a message (nobody to send it to, a template error)."""


@dataclass
class _Pending:
    """One claimed row with whom it goes to, not rendered yet."""

    row: dict[str, Any]
    data: dict[str, Any]
    to: list[tuple[str, str]]
    note: str | None


def _prepare(db: Database, row: Mapping[str, Any], at: datetime, renderer: Renderer) -> _Item:
    return _render(db, _gather(db, row, at, renderer.config.language), renderer)


def _gather(db: Database, row: Mapping[str, Any], at: datetime, lang: str) -> _Pending:
    """What a row's message needs before rendering: its data and its recipients (none:
    PrepareError)."""
    data = outbox.message_data(db, row, at, lang)
    people = data["recipients"]
    missing = data["missing_roles"]
    if not people:
        raise PrepareError(
            Message(
                NOBODY,
                {
                    "missing": _no_contact(data, missing, lang),
                    "example": _example_contact(data, missing[0]),
                    "id": str(row["id"]),
                },
            )
        )
    note = say(_no_contact(data, missing, lang), None) if missing else None
    to = [(str(p["name"]), str(p["email"])) for p in people]
    return _Pending(dict(row), data, to, note)


def _render(db: Database, item: _Pending, renderer: Renderer) -> _Item:
    """A row's message text (reads the database, writes nothing); a template that fails:
    PrepareError."""
    row = item.row
    try:
        # The track's definition version may ship its own templates (issue 12).
        own = renderer.own_templates(db, int(row["track_id"]))
        rendered = renderer.render(str(row["template"]), item.data, own=own)
    except Exception as exc:  # a template a user edited may fail in any way
        raise PrepareError(f"template {row['template']!r}: {type(exc).__name__}: {exc}") from exc
    return _Item(row, item.data, rendered, item.to, item.note)


def _no_contact(data: Mapping[str, Any], missing: Sequence[str], lang: str) -> Phrases:
    """Which roles have nobody, in words a coordinator can act on: "no contact with role
    programme-lead (kommunens KOMBIT-programleder) for Frederikssund Municipality" (the
    label in the mail's language; read again by ``onboarding.outbox_reasons``)."""
    from onboarding import roles

    return Phrases(
        (no_contact(key, roles.label(key, lang), _scope(data, key)) for key in missing),
        sep="; ",
    )


def _scope(data: Mapping[str, Any], role: str) -> Message | str:
    """Whom a role's contact must be registered for: the municipality, the vendor or all."""
    from onboarding.roles import scope_of

    m, s = data.get("municipality"), data.get("system")
    kind = scope_of(role)
    if kind == "subject":
        kind = "municipality" if m or not s else "vendor"
    if kind == "municipality":
        if m:
            return Message(" for %(municipality)s Municipality", {"municipality": m["name"]})
        return Message(" (the track names no municipality)")
    if kind == "vendor":
        if s:
            return Message(" for vendor %(vendor)s", {"vendor": s["vendor"]})
        return Message(" (the track names no system)")
    if m:
        return Message(
            " for all municipalities or %(municipality)s Municipality", {"municipality": m["name"]}
        )
    return ""


def _example_contact(data: Mapping[str, Any], role: str) -> str:
    """A contacts CSV row that would resolve ``role`` for this track."""
    from onboarding.roles import scope_of

    m, s = data.get("municipality"), data.get("system")
    kind = scope_of(role)
    if kind == "subject":
        kind = "municipality" if m or not s else "vendor"
    if kind == "vendor":
        return f"{role},NAME,EMAIL,,{s['vendor'] if s else 'VENDOR'}"
    if kind == "municipality":
        return f"{role},NAME,EMAIL,{m['name'] if m else 'MUNICIPALITY'},"
    return f"{role},NAME,EMAIL,,"


def _message_id(item_rows: Sequence[Mapping[str, Any]], token: str, config: Config) -> str:
    domain = _domain(config)
    if len(item_rows) == 1:
        return f"<{outbox.message_key(item_rows[0], token)}@{domain}>"
    keys = ",".join(outbox.message_key(r, token) for r in sorted(item_rows, key=lambda r: r["id"]))
    digest = hashlib.sha256(keys.encode()).hexdigest()[:20]
    return f"<digest.{digest}.{token}@{domain}>"


def _domain(config: Config) -> str:
    """``config.domain``, which parses the sender's address: once per sender."""
    return _parsed(config.mail_from, config.message_id_domain)[1]


@lru_cache(maxsize=16)
def _parsed(mail_from: str, message_id_domain: str | None) -> tuple[str, str]:
    """(envelope sender, Message-ID domain) of a sender: ``Config`` parses it on every read."""
    config = Config(None, Path(), mail_from=mail_from, message_id_domain=message_id_domain)
    return config.envelope_from, config.domain


def _attachment(
    item: _Item, token: str, config: Config, now: datetime, db: Database | None
) -> Attachment | None:
    """The deadline's calendar event: one UID per (track, state entry), its SEQUENCE counting
    the deadline's moves (``outbox.event_sequence``), so each mail about the same step updates
    one calendar entry; a withdrawal cancels it (a higher SEQUENCE). None without a deadline,
    and once the track has ended (the deadline no longer applies)."""
    due = item.data["due"]
    row = item.row
    withdraw = row["template"] == outbox.WITHDRAW_TEMPLATE
    if due is None or (item.data["track"]["finished"] and not withdraw):
        return None
    sequence = 0 if db is None else outbox.event_sequence(db, row["track_id"], row["entry_seq"])
    method = "CANCEL" if withdraw else "PUBLISH"
    lang = config.language
    content = due_calendar(
        uid=f"{outbox.event_key(row, token)}@{_domain(config)}",
        summary=item.rendered.subject,
        description=item.rendered.text,
        due=due,
        stamp=now,
        lang=lang,
        sequence=sequence + 1 if withdraw else sequence,
        method=method,
        organizer=_parsed(config.mail_from, config.message_id_domain)[0] or None,
    )
    name = "frist" if lang == "da" else "due"
    return Attachment(f"{name}-{row['track_id']}-{row['notification']}.ics", content, method)


def _attachments(
    items: Sequence[_Item], token: str, config: Config, now: datetime, db: Database | None
) -> list[Attachment]:
    """One event per state entry: digest items of the same step share theirs (the first)."""
    out: list[Attachment] = []
    seen: set[tuple[int, int]] = set()
    for item in items:
        entry = (int(item.row["track_id"]), int(item.row["entry_seq"]))
        if entry in seen:
            continue
        found = _attachment(item, token, config, now, db)
        if found is not None:
            seen.add(entry)
            out.append(found)
    return out


def compose(
    items: Sequence[_Item],
    renderer: Renderer,
    config: Config,
    token: str,
    now: datetime,
    db: Database | None = None,
) -> EmailMessage:
    """One message for one item, or a digest for several with the same recipients. With
    ``db``, each calendar event carries its SEQUENCE (without: 0)."""
    rendered, parts = _message_parts(items, renderer, config, token, now, db)
    return build_message(rendered, **parts)


def compose_outgoing(
    items: Sequence[_Item],
    renderer: Renderer,
    config: Config,
    token: str,
    now: datetime,
    db: Database | None = None,
) -> Outgoing:
    """``compose``'s message as bytes ready to hand over (``build_outgoing``: the same bytes,
    built through the cached frame of its shape)."""
    rendered, parts = _message_parts(items, renderer, config, token, now, db)
    return build_outgoing(rendered, **parts)


def _message_parts(
    items: Sequence[_Item],
    renderer: Renderer,
    config: Config,
    token: str,
    now: datetime,
    db: Database | None,
) -> tuple[Rendered, dict[str, Any]]:
    rows = [i.row for i in items]
    attachments = _attachments(items, token, config, now, db)
    if len(items) == 1:
        rendered = items[0].rendered
    else:
        rendered = renderer.render("_digest", _digest_context(items))
    return rendered, {
        "mail_from": config.mail_from,
        "to": items[0].to,
        "message_id": _message_id(rows, token, config),
        "date_sent": now,
        "attachments": attachments,
        "outbox_ids": [r["id"] for r in rows],
    }


def _digest_context(items: Sequence[_Item]) -> dict[str, Any]:
    """A digest's variables: its items overdue first, then those coming due (each group in due
    order), with the facts each one's wording needs; ``items`` is both groups in that order."""
    entries = [
        {
            "id": i.row["id"],
            "subject": i.rendered.subject,
            "text": i.rendered.text,
            "kind": i.row["kind"],
            "level": i.data["notification"]["level"],
            "track": i.data["track"],
            "subject_label": i.data["subject_label"],
            "due": i.data["due"],
            "overdue": i.data["overdue"],
            "due_today": i.data["due_today"],
            "working_days_left": i.data["working_days_left"],
            "working_days_overdue": i.data["working_days_overdue"],
        }
        for i in items
    ]
    overdue = [e for e in entries if e["overdue"]]
    coming = [e for e in entries if not e["overdue"]]
    return {
        "recipients": items[0].data["recipients"],
        "today": items[0].data["today"],
        "overdue": overdue,
        "coming": coming,
        "items": overdue + coming,
    }


_Grouped = TypeVar("_Grouped", _Pending, _Item)


def _groups(items: list[_Grouped], config: Config) -> list[list[_Grouped]]:
    """Items in due order, one per message; with the digest on, reminders and escalations to
    the same people on the same local day share one message (notices always go alone)."""
    if not config.digest:
        return [[i] for i in items]
    groups: dict[tuple[Any, ...], list[_Grouped]] = {}
    order: list[tuple[Any, ...]] = []
    for item in items:
        if item.row["kind"] == "notice":
            key: tuple[Any, ...] = ("single", item.row["id"])
        else:
            day = clock.local_date(clock.unstamp(item.row["due_at"]))
            key = ("digest", tuple(sorted(e for _, e in item.to)), day)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(item)
    return [groups[k] for k in order]


def send_due(
    db: Database,
    at: datetime | None,
    config: Config,
    *,
    now: datetime | None = None,
    runner: str | None = None,
    transport: Transport | None = None,
    max_batches: int | None = None,
) -> SendSummary:
    """Send every notification due at ``at`` (default: now) once; return what happened.

    ``at`` may not be later than the wall clock (plus ``clock.FUTURE_TOLERANCE``): InputError."""
    start = now or clock.now()
    started = _time.monotonic()

    def wall() -> datetime:
        return start + timedelta(seconds=_time.monotonic() - started)

    at = at or start
    check_at(at, start)
    name = runner or runner_name()
    summary = SendSummary(at=clock.stamp(at))
    renderer = Renderer(config)
    token = outbox.instance_token(db)
    summary.reclaimed = outbox.reclaim_stale(db, wall(), config.max_attempts)
    own_transport = transport is None
    tp: Transport = transport or open_transport(config, deadline=started + config.run_timeout)
    down: str | None = None
    batches = 0
    ledger = Ledger(name)
    try:
        while max_batches is None or batches < max_batches:
            rows = outbox.claim(db, at, wall(), name, config.batch_size, config.lease)
            if not rows:
                break
            batches += 1
            summary.claimed += len(rows)
            rows = _supersede(db, rows, at, name, wall(), summary)
            down = _process(
                db, rows, at, config, renderer, token, tp, name, wall, summary, down, ledger
            )
            if down is not None:
                break  # the server cannot be used: leave the other due rows for the next run
    except BaseException:
        # Interrupted: what was sent before is still recorded (its own failure, e.g. a full
        # disk, must not hide the interruption; the rows then wait for reclaim_stale).
        with contextlib.suppress(Exception):
            ledger.flush(db)
        raise
    finally:
        if own_transport:
            tp.close()
    summary.stopped = down
    return summary


def check_at(at: datetime, now: datetime) -> None:
    """Refuse an ``--at`` later than the wall clock: it would send reminders before they are
    due (and what is due is decided by ``at``). The same check as every write's ``--at``."""
    clock.check_not_future(at, now, why=Message("send-due sends what is due now or earlier"))


def _supersede(
    db: Database,
    rows: list[dict[str, Any]],
    at: datetime,
    name: str,
    now: datetime,
    summary: SendSummary,
) -> list[dict[str, Any]]:
    """Drop the claimed rows a higher rung due for the same recipients supersedes (recorded
    ``superseded``, never sent): one message per recipient per step, never a burst."""
    keep, dropped = outbox.supersede_claimed(db, rows, at, name, now)
    for row, by in dropped:
        summary.superseded += 1
        summary.outcomes.append(
            Outcome(
                row["id"],
                "superseded",
                error=Message(
                    "#%(id)s (%(notification)s) goes to the same recipients instead",
                    {"id": str(by["id"]), "notification": by["notification"]},
                ),
            )
        )
    return keep


@dataclass
class _Made:
    """One group's message: its items rendered, the rows whose template failed (and why),
    and the message or why it cannot be built (None: no item left to send)."""

    items: list[_Item]
    failed: list[tuple[dict[str, Any], str]]
    msg: Outgoing | str | None


class _Ahead:
    """The next group's message, made while the server answers the current one (see
    ``SmtpTransport.meanwhile``, which advances ``steps`` one step per reply awaited) or,
    for what is left, when it is needed. Making it reads the database and writes nothing:
    what it finds wrong is recorded when the group's turn comes, after the current
    message's outcome."""

    def __init__(
        self,
        db: Database,
        group: Sequence[_Pending | dict[str, Any]],
        at: datetime,
        renderer: Renderer,
        config: Config,
        token: str,
        wall: Callable[[], datetime],
        smtp: bool = False,
    ) -> None:
        self.steps: Iterator[None] = self._make(db, group, at, renderer, config, token, wall, smtp)
        self._made: _Made | None = None
        self._error: Exception | None = None

    def _make(
        self,
        db: Database,
        group: Sequence[_Pending | dict[str, Any]],
        at: datetime,
        renderer: Renderer,
        config: Config,
        token: str,
        wall: Callable[[], datetime],
        smtp: bool,
    ) -> Iterator[None]:
        try:
            items: list[_Item] = []
            failed: list[tuple[dict[str, Any], str]] = []
            for one in group:
                # A claimed row (a message of its own) is gathered here; a digest's were
                # gathered before grouping.
                row = one.row if isinstance(one, _Pending) else one
                try:
                    if isinstance(one, dict):
                        one = _gather(db, one, at, renderer.config.language)
                        yield
                    items.append(_render(db, one, renderer))
                except PrepareError as exc:
                    failed.append((row, str(exc)))
                yield
            msg: Outgoing | str | None = None
            if items:
                try:
                    rendered, parts = _message_parts(items, renderer, config, token, wall(), db)
                except Exception as exc:
                    msg = _unbuilt(items, exc)
                else:
                    yield  # the calendar file made; the message built at the next reply
                    try:
                        msg = build_outgoing(rendered, **parts)
                        if smtp:
                            msg.smtp_bytes()  # made now, not in the message's turn
                    except Exception as exc:
                        msg = _unbuilt(items, exc)
            self._made = _Made(items, failed, msg)
        except Exception as exc:  # e.g. a storage fault: raised in the group's own turn
            self._error = exc

    def result(self) -> _Made:
        for _ in self.steps:  # what the wait for the server's replies left undone
            pass
        if self._error is not None:
            raise self._error
        assert self._made is not None
        return self._made


def _process(
    db: Database,
    rows: list[dict[str, Any]],
    at: datetime,
    config: Config,
    renderer: Renderer,
    token: str,
    tp: Transport,
    name: str,
    wall: Callable[[], datetime],
    summary: SendSummary,
    down: str | None,
    ledger: Ledger,
) -> str | None:
    """Render, hand over and record one claimed batch; return why the run must stop, if so.

    Each message after the first is rendered and built while the server handles the one
    before it (``_Ahead``): the same bytes, made a message earlier, before any handover."""
    live: list[dict[str, Any]] = []
    for row in rows:
        # A first look without the lock, so a done step is not rendered (nor fails for want
        # of a contact); hand_over decides for good.
        why = outbox.cancel_reason(db.conn, row)
        if why is not None:
            if outbox.record_cancelled(db, row["id"], name, wall(), why):
                _cancelled(summary, row, why)
            continue
        live.append(row)
    groups: Sequence[Sequence[_Pending | dict[str, Any]]]
    if config.digest:  # grouped by recipients: gathered first
        pending: list[_Pending] = []
        for row in live:
            try:
                pending.append(_gather(db, row, at, renderer.config.language))
            except PrepareError as exc:
                _failed(db, [row], name, wall(), str(exc), False, config, summary)
        groups = _groups(pending, config)
    else:
        groups = [[row] for row in live]

    smtp = isinstance(tp, SmtpTransport)

    def ahead_of(k: int) -> _Ahead | None:
        if k >= len(groups):
            return None
        return _Ahead(db, groups[k], at, renderer, config, token, wall, smtp)

    ahead = ahead_of(0)
    for k, group in enumerate(groups):
        current, ahead = ahead, ahead_of(k + 1)
        if down is not None or current is None:
            _release(db, group, name, wall(), None, summary)
            continue
        made = current.result()
        for row, error in made.failed:
            _failed(db, [row], name, wall(), error, False, config, summary)
        if made.msg is None:
            continue
        down = _send_group(
            db, made, config, renderer, token, tp, name, wall, summary, ledger, ahead
        )
    _credit(summary, ledger.flush(db))  # the batch's last results
    return down


def _send_group(
    db: Database,
    made: _Made,
    config: Config,
    renderer: Renderer,
    token: str,
    tp: Transport,
    name: str,
    wall: Callable[[], datetime],
    summary: SendSummary,
    ledger: Ledger,
    ahead: _Ahead | None = None,
) -> str | None:
    """One message: hand its rows over (re-checked), send, record each row. ``ahead``, the
    next message, is made while the server answers this one."""
    group, msg = made.items, made.msg
    if isinstance(msg, str):
        _failed(db, [i.row for i in group], name, wall(), msg, False, config, summary)
        return None
    assert msg is not None
    try:
        tp.open()  # connected and logged in before any attempt is charged
    except DeliveryError as exc:
        _release(db, group, name, wall(), f"not sent: {exc}", summary)
        return str(exc)
    handed, cancelled = outbox.hand_over(
        db, [i.row for i in group], name, wall(), config.lease, first=ledger.write
    )
    _credit(summary, ledger.settle())  # the results of earlier messages, in that transaction
    for row, why in cancelled:
        _cancelled(summary, row, why)
    if len(handed) < len(group):
        if not handed:
            return None  # the step was done meanwhile, or another runner has these now
        rows = {r["id"]: r for r in handed}
        group = [replace(i, row=rows[i.row["id"]]) for i in group if i.row["id"] in rows]
        msg = _compose(db, group, renderer, config, token, wall())
        if isinstance(msg, str):
            _failed(db, handed, name, wall(), msg, False, config, summary, charged=False)
            return None
    recipients = [email for _, email in group[0].to]
    overlap = ahead is not None and isinstance(tp, SmtpTransport)
    if overlap:
        assert ahead is not None and isinstance(tp, SmtpTransport)
        tp.meanwhile(ahead.steps)
    try:
        refused = tp.send(msg, recipients)
    except DeliveryError as exc:
        if exc.batch:
            # The session failed, not this message: it goes back as it was, attempt returned.
            _release(db, group, name, wall(), f"not sent: {exc}", summary)
            return str(exc)
        _failed(db, handed, name, wall(), str(exc), not exc.permanent, config, summary)
        return str(exc) if exc.stop else None
    finally:
        if overlap:
            assert isinstance(tp, SmtpTransport)
            tp.meanwhile(None)
    summary.messages += 1
    delivered = [e for e in recipients if e not in refused]
    notes = [n for n in (group[0].note,) if n]
    if refused:
        notes.append("refused: " + "; ".join(f"{a}: {r}" for a, r in refused.items()))
    note = "; ".join(notes) or None
    # Written with the next handover or at the end of the batch (outbox_results).
    sent_at = wall()
    for item in group:
        ledger.sent(
            Sent(
                item.row["id"],
                sent_at,
                tuple(delivered),
                str(msg["Message-ID"]),
                note,
                str(msg["Subject"]),
            )
        )
    return None


def _credit(summary: SendSummary, written: list[Sent]) -> None:
    """Count the rows whose sending was recorded (a row taken back meanwhile is not)."""
    for r in written:
        summary.sent += 1
        summary.outcomes.append(
            Outcome(r.row_id, "sent", list(r.sent_to), str(r.info), r.note, r.message_id)
        )


def _compose(
    db: Database,
    group: list[_Item],
    renderer: Renderer,
    config: Config,
    token: str,
    now: datetime,
) -> Outgoing | str:
    """The message for a group, or why it cannot be built (a digest template a user edited
    may fail in any way): recorded on its rows like a row's own template error."""
    try:
        return compose_outgoing(group, renderer, config, token, now, db)
    except Exception as exc:
        return _unbuilt(group, exc)


def _unbuilt(group: Sequence[_Item], exc: Exception) -> str:
    what = "template '_digest'" if len(group) > 1 else f"template {group[0].row['template']!r}"
    return f"{what}: {type(exc).__name__}: {exc}"


def _cancelled(summary: SendSummary, row: Mapping[str, Any], why: str) -> None:
    summary.cancelled += 1
    summary.outcomes.append(Outcome(row["id"], "cancelled", error=why))


def _release(
    db: Database,
    group: Sequence[_Pending | _Item | dict[str, Any]],
    name: str,
    now: datetime,
    note: str | None,
    summary: SendSummary,
) -> None:
    """Give rows back as they were claimed: the run stops, these wait for the next one."""
    for item in group:
        row_id = item["id"] if isinstance(item, dict) else item.row["id"]
        if outbox.release(db, row_id, name, now, note):
            summary.held += 1
            if note:
                summary.outcomes.append(Outcome(row_id, "pending", error=note))


def _failed(
    db: Database,
    rows: Sequence[Mapping[str, Any]],
    name: str,
    now: datetime,
    error: str,
    retry: bool,
    config: Config,
    summary: SendSummary,
    *,
    charged: bool = True,
) -> None:
    """Record a failed attempt for rows: retried after the backoff (from ``now``, the wall
    clock: when the attempt happened), or failed for good."""
    for row in rows:
        retry_at = now + config.backoff(row["attempts"]) if retry else None
        status = outbox.record_failure(
            db, row["id"], name, now, error, retry_at, config.max_attempts, charged=charged
        )
        if status == "pending":
            summary.retrying += 1
        elif status == "failed":
            summary.failed += 1
        summary.outcomes.append(Outcome(row["id"], status, error=error))


# --- looking ahead ---------------------------------------------------------------------------


def preview(
    db: Database, row_id: int, config: Config, at: datetime | None = None
) -> dict[str, Any]:
    """A row rendered as it would be sent now, without sending or changing anything."""
    row = outbox.get_row(db, row_id)
    at = at or clock.now()
    renderer = Renderer(config)
    token = outbox.instance_token(db)
    item = _prepare(db, row, at, renderer)
    msg = compose([item], renderer, config, token, clock.now(), db)
    return {
        "id": row["id"],
        "status": row["status"],
        "due_at": row["due_at"],
        "from": str(msg["From"]),
        "to": [email for _, email in item.to],
        "subject": item.rendered.subject,
        "message_id": str(msg["Message-ID"]),
        "text": item.rendered.text,
        "html": item.rendered.html,
        "attachments": [p.get_filename() for p in msg.iter_attachments()],
        "note": item.note,
    }


def forecast(
    db: Database,
    at: datetime | None,
    days: int,
    config: Config,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """What will be sent to whom from now until ``days`` days ahead (overdue rows first).

    A row is expected to be superseded (``superseded_by``, and nothing is sent for it) when a
    higher rung of the same track and state entry for the same recipients will be due by the
    time the row is sent, the later of ``at`` and its own time (``outbox.superseding``).
    With ``scope``, only the rows of tracks it may read (``onboarding.visibility``).
    """
    at = at or clock.now()
    until = at + timedelta(days=days)
    renderer = Renderer(config)
    out = []
    for row in outbox.list_rows(db, ("pending", "sending"), until=until, scope=scope):
        by = outbox.superseding(db.conn, row, max(at, clock.unstamp(row["next_attempt_at"])))
        entry: dict[str, Any] = {
            "id": row["id"],
            "due_at": row["next_attempt_at"],
            "when": clock.display(row["next_attempt_at"]),
            "deadline": row["due_date"],
            "kind": row["kind"],
            "level": row["level"],
            "notification": row["notification"],
            "track": row["track_id"],
            "state": row["state"],
            "municipality": row["municipality"],
            "system": row["system"],
            "attempts": row["attempts"],
            "superseded_by": None if by is None else by["id"],
        }
        try:
            item = _prepare(db, row, max(at, clock.unstamp(row["next_attempt_at"])), renderer)
        except PrepareError as exc:
            entry.update(to=[], subject="", problem=str(exc))
        else:
            entry.update(
                to=[e for _, e in item.to], subject=item.rendered.subject, problem=item.note
            )
        out.append(entry)
    return out
