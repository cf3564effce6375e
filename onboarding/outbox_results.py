"""Recording what a run sent, written with the next handover instead of a commit of its own.

``send_due`` used to commit twice per message: the handover (``outbox.hand_over``) and the
result (``outbox.record_sent``). A ``Ledger`` keeps the results of the messages handed over
and writes them inside the transaction of the next handover, or in one transaction when the
batch (or the run) ends: one commit per message, and one per batch for its last results.

Why not one transaction per batch for every result: a result written late is a message that a
crash in between would send again (its row is still ``sending`` with ``handed_at`` set, so
``reclaim_stale`` counts it as possibly delivered and retries it). Written with the next
handover, at most one message is ever sent and unrecorded, as before: the one in flight.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from onboarding import clock
from onboarding.db import immediate

if TYPE_CHECKING:
    from onboarding.db import Database


@dataclass(frozen=True)
class Sent:
    """A message accepted for one row; ``info`` rides along to whoever reads the result."""

    row_id: int
    at: datetime
    sent_to: tuple[str, ...]
    message_id: str
    note: str | None
    info: Any = None


@dataclass
class Ledger:
    """Results of one runner's handed-over messages, not yet written.

    ``write(conn)`` inside a transaction, then ``settle()`` once it committed: a transaction
    that rolls back leaves the results waiting for the next one."""

    runner: str
    waiting: list[Sent] = field(default_factory=list)
    _written: list[Sent] = field(default_factory=list)

    def sent(self, result: Sent) -> None:
        self.waiting.append(result)

    def write(self, conn: sqlite3.Connection) -> None:
        """Write every waiting result inside the caller's transaction (a row no longer this
        runner's, taken back after its lease, is left as it is)."""
        self._written = record_sent_many(conn, self.waiting, self.runner)

    def settle(self) -> list[Sent]:
        """After the transaction of ``write`` committed: the results it wrote."""
        done, self._written, self.waiting = self._written, [], []
        return done

    def flush(self, db: Database) -> list[Sent]:
        """Write the waiting results in a transaction of their own; return those written."""
        if not self.waiting:
            return []
        with immediate(db) as conn:
            self.write(conn)
        return self.settle()


def record_sent_many(
    conn: sqlite3.Connection, results: Sequence[Sent], runner: str
) -> list[Sent]:
    """Mark rows sent, each only while ``runner`` still holds its claim (``outbox.record_sent``
    for many rows, in the caller's transaction); return the results written."""
    done: list[Sent] = []
    for r in results:
        stamp = clock.stamp(r.at)
        cur = conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, sent_to = ?, message_id = ?,"
            " last_error = ?, claimed_by = NULL, lease_until = NULL, handed_at = NULL,"
            " updated_at = ? WHERE id = ? AND status = 'sending' AND claimed_by = ?",
            [stamp, json.dumps(list(r.sent_to)), r.message_id, r.note, stamp, r.row_id, runner],
        )
        if cur.rowcount == 1:
            done.append(r)
    return done
