"""The claim-render-send-record loop, shared by ``reminders send-due`` and the scheduler.

``send_due`` takes back stale claims, then repeatedly claims a batch of due rows (one
``BEGIN IMMEDIATE`` transaction each), renders them, renews each claim just before handing the
message to the transport, and records the outcome row by row right after. Any number of runners
may do this on the same database at the same time: a row is claimed by one runner only, and a
runner that died mid-batch leaves claims that expire and are taken back.

The clock: ``at`` decides what is due and when a failed attempt may be retried (``--at``);
``now`` is the wall clock for claim leases and for recording when a message was sent.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time as _time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlite_utils import Database

from notifications.config import Config
from notifications.render import Attachment, Rendered, Renderer, build_message, due_calendar
from notifications.send import DeliveryError, Transport, open_transport
from onboarding import clock, outbox


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
    outcomes: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"sent {self.sent}, retrying {self.retrying}, failed {self.failed}, "
            f"cancelled {self.cancelled}, superseded {self.superseded} "
            f"({self.messages} message(s); {self.claimed} claimed, "
            f"{self.reclaimed} stale claim(s) taken back)"
        )


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
    return (
        f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:6]}"
    )


class PrepareError(Exception):
    """A row that cannot become a message (nobody to send it to, a template error)."""


def _prepare(
    db: Database, row: Mapping[str, Any], at: datetime, renderer: Renderer
) -> _Item:
    data = outbox.message_data(db, row, at)
    people = data["recipients"]
    missing = data["missing_roles"]
    if not people:
        raise PrepareError(
            f"nobody to send to: no contact for {', '.join(missing)}"
            f"{_scope(data)}; add one with 'onboarding registry import contacts', "
            f"then 'onboarding reminders retry {row['id']}'"
        )
    try:
        rendered = renderer.render(str(row["template"]), data)
    except Exception as exc:  # a template a user edited may fail in any way
        raise PrepareError(f"template {row['template']!r}: {type(exc).__name__}: {exc}") from exc
    note = f"no contact for {', '.join(missing)}{_scope(data)}" if missing else None
    to = [(str(p["name"]), str(p["email"])) for p in people]
    return _Item(dict(row), data, rendered, to, note)


def _scope(data: Mapping[str, Any]) -> str:
    m = data.get("municipality")
    return f" in {m['name']}" if m else ""


def _message_id(item_rows: Sequence[Mapping[str, Any]], token: str, config: Config) -> str:
    if len(item_rows) == 1:
        return f"<{outbox.message_key(item_rows[0], token)}@{config.domain}>"
    keys = ",".join(outbox.message_key(r, token) for r in sorted(item_rows, key=lambda r: r["id"]))
    digest = hashlib.sha256(keys.encode()).hexdigest()[:20]
    return f"<digest.{digest}.{token}@{config.domain}>"


def _attachment(item: _Item, token: str, config: Config, now: datetime) -> Attachment | None:
    due = item.data["due"]
    if due is None:
        return None
    lang = config.language
    content = due_calendar(
        uid=f"{outbox.message_key(item.row, token)}@{config.domain}",
        summary=item.rendered.subject,
        description=item.rendered.text,
        due=due,
        stamp=now,
        lang=lang,
    )
    name = "frist" if lang == "da" else "due"
    return Attachment(f"{name}-{item.row['track_id']}-{item.row['notification']}.ics", content)


def compose(
    items: Sequence[_Item],
    renderer: Renderer,
    config: Config,
    token: str,
    now: datetime,
) -> EmailMessage:
    """One message for one item, or a digest for several with the same recipients."""
    rows = [i.row for i in items]
    attachments = [a for a in (_attachment(i, token, config, now) for i in items) if a]
    if len(items) == 1:
        rendered = items[0].rendered
    else:
        context = {
            "recipients": items[0].data["recipients"],
            "items": [
                {"subject": i.rendered.subject, "text": i.rendered.text, "id": i.row["id"]}
                for i in items
            ],
        }
        rendered = renderer.render("_digest", context)
    return build_message(
        rendered,
        mail_from=config.mail_from,
        to=items[0].to,
        message_id=_message_id(rows, token, config),
        date_sent=now,
        attachments=attachments,
        outbox_ids=[r["id"] for r in rows],
    )


def _groups(items: list[_Item], config: Config) -> list[list[_Item]]:
    """Items in due order, one per message; with the digest on, reminders and escalations to
    the same people on the same local day share one message (notices always go alone)."""
    if not config.digest:
        return [[i] for i in items]
    groups: dict[tuple[Any, ...], list[_Item]] = {}
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
    """Send every notification due at ``at`` (default: now) once; return what happened."""
    start = now or clock.now()
    started = _time.monotonic()

    def wall() -> datetime:
        return start + timedelta(seconds=_time.monotonic() - started)

    at = at or start
    name = runner or runner_name()
    summary = SendSummary(at=clock.stamp(at))
    renderer = Renderer(config)
    token = outbox.instance_token(db)
    summary.reclaimed = outbox.reclaim_stale(db, wall(), config.max_attempts)
    own_transport = transport is None
    tp: Transport = transport or open_transport(config)
    down: str | None = None
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            rows = outbox.claim(db, at, wall(), name, config.batch_size, config.lease)
            if not rows:
                break
            batches += 1
            summary.claimed += len(rows)
            rows = _supersede(db, rows, at, name, wall(), summary)
            down = _process(db, rows, at, config, renderer, token, tp, name, wall, summary, down)
            if down is not None:
                break  # the server is unreachable: leave the other due rows for the next run
    finally:
        if own_transport:
            tp.close()
    return summary


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
                error=f"#{by['id']} ({by['notification']}) goes to the same recipients instead",
            )
        )
    return keep


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
) -> str | None:
    items: list[_Item] = []
    for row in rows:
        if outbox.left_step(db, row):
            outbox.record_cancelled(db, row["id"], name, wall(), "the step was done first")
            summary.cancelled += 1
            summary.outcomes.append(Outcome(row["id"], "cancelled"))
            continue
        try:
            items.append(_prepare(db, row, at, renderer))
        except PrepareError as exc:
            _failed(db, [row], name, wall(), str(exc), None, config, summary)
    for group in _groups(items, config):
        if down is not None:
            _failed(db, [i.row for i in group], name, wall(), down, at, config, summary)
            continue
        group = [i for i in group if outbox.renew(db, i.row["id"], name, wall(), config.lease)]
        if not group:
            continue  # another runner took these over (our claim had expired)
        msg = compose(group, renderer, config, token, wall())
        recipients = [email for _, email in group[0].to]
        try:
            refused = tp.send(msg, recipients)
        except DeliveryError as exc:
            if exc.batch:
                down = str(exc)
            retry = None if exc.permanent else at
            _failed(db, [i.row for i in group], name, wall(), str(exc), retry, config, summary)
            continue
        summary.messages += 1
        delivered = [e for e in recipients if e not in refused]
        notes = [n for n in (group[0].note,) if n]
        if refused:
            notes.append("refused: " + "; ".join(f"{a}: {r}" for a, r in refused.items()))
        for item in group:
            outbox.record_sent(
                db,
                item.row["id"],
                name,
                wall(),
                delivered,
                str(msg["Message-ID"]),
                "; ".join(notes) or None,
            )
            summary.sent += 1
            summary.outcomes.append(
                Outcome(
                    item.row["id"],
                    "sent",
                    delivered,
                    str(msg["Subject"]),
                    "; ".join(notes) or None,
                    str(msg["Message-ID"]),
                )
            )
    return down


def _failed(
    db: Database,
    rows: Sequence[Mapping[str, Any]],
    name: str,
    now: datetime,
    error: str,
    retry_from: datetime | None,
    config: Config,
    summary: SendSummary,
) -> None:
    """Record a failed attempt for rows: retried after the backoff, or failed for good."""
    for row in rows:
        retry_at = None if retry_from is None else retry_from + config.backoff(row["attempts"])
        status = outbox.record_failure(
            db, row["id"], name, now, error, retry_at, config.max_attempts
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
    msg = compose([item], renderer, config, token, clock.now())
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
    db: Database, at: datetime | None, days: int, config: Config
) -> list[dict[str, Any]]:
    """What will be sent to whom from now until ``days`` days ahead (overdue rows first).

    A row is expected to be superseded (``superseded_by``, and nothing is sent for it) when a
    higher rung of the same track and state entry for the same recipients will be due by the
    time the row is sent, the later of ``at`` and its own time (``outbox.superseding``).
    """
    at = at or clock.now()
    until = at + timedelta(days=days)
    renderer = Renderer(config)
    out = []
    for row in outbox.list_rows(db, ("pending", "sending"), until=until):
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
            entry.update(to=[e for _, e in item.to], subject=item.rendered.subject,
                         problem=item.note)
        out.append(entry)
    return out
