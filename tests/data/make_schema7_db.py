"""Build tests/data/schema7.db: a database written by the code before issue 14 (schema 7,
commit b4ef440: every reminder and escalation of a state written as an outbox row on entry).

Run once, with that code: ``python -m tests.data.make_schema7_db``. The file holds Køge and Aarhus
connections at step 4, a reminder sent, a notice failed, rows cancelled by leaving a step
and rows still pending; tests/test_upgrade_schema7.py upgrades a copy in place.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from click.testing import CliRunner

import cli
from onboarding import clock
from onboarding.db import open_existing
from tests.notify_support import connection_to_sapa, make_ready

OUT = Path(__file__).parent / "schema7.db"


def main() -> None:
    if OUT.exists():
        OUT.unlink()
    runner = CliRunner()

    def run(*args: str, now: str) -> None:
        env = {"ONBOARDING_NOW": now, "ONBOARDING_ACTOR": "tester"}
        result = runner.invoke(cli.cli, [*args, "--db", str(OUT)], env=env)
        if result.exit_code != 0:
            sys.exit(f"{args}: {result.output}")

    run("init", now="2021-06-01T09:00")
    db = open_existing(OUT)
    try:
        make_ready(db)
        connection_to_sapa(db)  # track 2: Køge at step 4 (its reminder and ladder pending)
        connection_to_sapa(db, municipality="Aarhus", connection_date="2021-06-10")
    finally:
        db.close()
    db = open_existing(OUT)
    try:
        conn = db.conn
        stamp = clock.stamp(clock.parse_time("2021-08-18T09:00"))
        # One row sent, one failed, as a sender run would have left them.
        sent = conn.execute(
            "SELECT id FROM outbox WHERE track_id = 3 AND status = 'pending'"
            " ORDER BY next_attempt_at, id LIMIT 1"
        ).fetchone()[0]
        conn.execute(
            "UPDATE outbox SET status = 'sent', attempts = 1, sent_at = ?, sent_to = ?,"
            " message_id = ?, updated_at = ? WHERE id = ?",
            [stamp, '["pl@koege.dk"]', f"<t1.{sent}@example>", stamp, sent],
        )
        failed = conn.execute(
            "SELECT id FROM outbox WHERE track_id = 2 AND status = 'pending'"
            " AND kind = 'notice' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        conn.execute(
            "UPDATE outbox SET status = 'failed', attempts = 5, last_error = '550 no such user',"
            " updated_at = ? WHERE id = ?",
            [stamp, failed],
        )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        db.close()
    for extra in ("-wal", "-shm"):
        Path(str(OUT) + extra).unlink(missing_ok=True)
    print(OUT, os.path.getsize(OUT))


if __name__ == "__main__":
    main()
