"""The tamper-evident audit trail: the hash chain, 'audit verify' and 'audit export' (issue 5)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from onboarding import audit, clock, definitions, registry
from onboarding.db import connect, initialise, migrations
from tests.support import make_ready, ok, run

TRIGGERS = ("history_no_update", "history_no_delete", "history_needs_hash")


def _work(runner: CliRunner, db_path: Path) -> None:
    """Some ordinary work: readiness, two connections, a bulk step, a field change (9 rows)."""
    make_ready(runner, db_path, "Momentum")
    for name in ("Aarhus", "Vejle"):
        ok(runner, db_path, "track", "start", "connection", "--municipality", name, "--system",
           "Momentum", "--at", "2021-04-01")
    ok(runner, db_path, "track", "advance", "--where", "definition=connection", "agree_date",
       "--set", "connection_date=2027-03-01", "--at", "2021-04-02")
    ok(runner, db_path, "track", "set", "2", "connection_date=2027-04-01", "--at", "2021-04-03",
       "--note", "=HYPERLINK(\"http://evil.example\")")


def _tamper(db_path: Path, *statements: str) -> None:
    """Change the file the way someone with write access could: triggers dropped, raw SQL."""
    conn = sqlite3.connect(db_path)
    try:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def _rehash_from(db_path: Path, first: int, last: int | None = None) -> None:
    """Recompute the hashes from row ``first`` on (to ``last``), as a forger would."""
    conn = sqlite3.connect(db_path)
    try:
        prev = conn.execute("SELECT hash FROM history WHERE id = ?", [first - 1]).fetchone()
        prev_hash = prev[0] if prev else audit.GENESIS
        cols = ", ".join(audit.COLUMNS)
        rows = conn.execute(
            f"SELECT id, {cols} FROM history WHERE id BETWEEN ? AND ? ORDER BY id",
            [first, last or 10**9],
        )
        for row in rows.fetchall():
            prev_hash = audit.row_hash(prev_hash, row[0], row[1:])
            conn.execute("UPDATE history SET hash = ? WHERE id = ?", [prev_hash, row[0]])
            if last is None:
                head = [row[0], prev_hash]
                conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", head)
        conn.commit()
    finally:
        conn.close()


def test_audit_chain_verifies_after_ordinary_work(runner: CliRunner, db_path: Path) -> None:
    """Start, advance, bulk, set and import all extend one intact chain; verify exits 0."""
    _work(runner, db_path)
    result = ok(runner, db_path, "audit", "verify")
    assert result.stdout.startswith("audit trail intact: 9 history rows, head #9 ")
    data = json.loads(ok(runner, db_path, "audit", "verify", "--json").stdout)
    assert data["ok"] and data["rows"] == 9 and len(data["head_hash"]) == 64


CASES = {
    # name: (statements, first bad row named, words in the message)
    "edited note": (["UPDATE history SET note = 'changed' WHERE id = 4"], 4, "#4 (track 1, seq 4)"),
    "edited actor of the first row": (["UPDATE history SET actor = 'x' WHERE id = 1"], 1, "#1 "),
    "edited time": (["UPDATE history SET at = '2020-01-01T00:00:00.000000Z' WHERE id = 7"], 7,
                    "#7 "),
    "deleted row": (["DELETE FROM history WHERE id = 6"], 6, "row #6 is missing (deleted)"),
    "deleted rows": (["DELETE FROM history WHERE id IN (5, 6)"], 5, "row #5-#6 is missing"),
    "deleted last row": (["DELETE FROM history WHERE id = 9"], 9, "rows after #8 are missing"),
    "inserted row without hash": (
        ["INSERT INTO history (id, track_id, seq, to_state, trigger, actor, role, at,"
         " recorded_at, def_version) SELECT 10, track_id, seq + 1, to_state, 'agree_date',"
         " 'mallory', role, at, recorded_at, def_version FROM history WHERE id = 9"],
        10,
        "#10 has no hash",
    ),
    "inserted row with a made-up hash": (
        ["INSERT INTO history (id, track_id, seq, to_state, trigger, actor, role, at,"
         " recorded_at, def_version, hash) SELECT 10, track_id, seq + 1, to_state, 'x',"
         " 'mallory', role, at, recorded_at, def_version, hash FROM history WHERE id = 9"],
        10,
        "#10 (track 2, seq 4)",
    ),
    "track rows without their history": (
        ["UPDATE tracks SET version = version + 1 WHERE id = 2"], None, "track #2 is at version",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_audit_verify_names_the_first_bad_row(runner: CliRunner, db_path: Path, case: str) -> None:
    """An edited, inserted or deleted history row makes 'audit verify' exit 3 naming it."""
    statements, first_bad, words = CASES[case]
    _work(runner, db_path)
    _tamper(db_path, *statements)
    result = run(runner, db_path, "audit", "verify")
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("audit trail BROKEN: ")
    assert words in result.stdout
    data = json.loads(run(runner, db_path, "audit", "verify", "--json").stdout)
    assert (data["ok"], data["first_bad"]) == (False, first_bad)


def test_audit_verify_sees_a_rewritten_row_in_the_next_one(
    runner: CliRunner, db_path: Path
) -> None:
    """A row edited and given a fresh hash breaks the link to the row after it, and the
    message points at both."""
    _work(runner, db_path)
    _tamper(db_path, "UPDATE history SET actor = 'mallory' WHERE id = 4")
    _rehash_from(db_path, 4, last=4)
    result = run(runner, db_path, "audit", "verify")
    assert result.exit_code == 3
    assert "history row #5 (track 2, seq 1) does not match its hash" in result.stdout
    assert "or row #4 before it was rewritten" in result.stdout


def test_audit_anchor_detects_a_wholesale_rewrite(runner: CliRunner, db_path: Path) -> None:
    """A head hash kept outside the database reveals a chain recomputed from an edited row."""
    _work(runner, db_path)
    anchor = json.loads(ok(runner, db_path, "audit", "verify", "--json").stdout)["head_hash"]
    ok(runner, db_path, "track", "advance", "3", "approve_agreements", "--role",
       "agreement-admin", "--at", "2021-04-05")
    assert run(runner, db_path, "audit", "verify", "--anchor", anchor).exit_code == 0
    _tamper(db_path, "UPDATE history SET actor = 'mallory' WHERE id = 2")
    _rehash_from(db_path, 2)
    assert run(runner, db_path, "audit", "verify").exit_code == 0  # consistent on its own
    result = run(runner, db_path, "audit", "verify", "--anchor", anchor)
    assert result.exit_code == 3
    assert f"anchor {anchor} is not in the chain" in result.stdout


def test_audit_history_cannot_be_written_around_the_engine(
    runner: CliRunner, db_path: Path
) -> None:
    """With the triggers in place, rows cannot be changed, deleted or added without a hash."""
    _work(runner, db_path)
    conn = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE history SET note = 'x' WHERE id = 3")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM history WHERE id = 9")
        with pytest.raises(sqlite3.IntegrityError, match="written by the engine"):
            conn.execute(
                "INSERT INTO history (track_id, seq, to_state, trigger, actor, role, at,"
                " recorded_at, def_version) VALUES (1, 9, 's', 'x', 'a', 'r', '', '', 1)"
            )
    finally:
        conn.close()
    assert run(runner, db_path, "audit", "verify").exit_code == 0


def test_audit_export_jsonl_lets_an_auditor_recompute_the_chain(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Each exported row holds its fields, the previous hash and its hash; sha256 over the
    documented canonical JSON gives every hash back, without this tool's code."""
    _work(runner, db_path)
    out = tmp_path / "trail.jsonl"
    ok(runner, db_path, "audit", "export", "-o", str(out))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == list(range(1, 10))
    prev = "0" * 64
    for r in rows:
        assert r["prev_hash"] == prev
        canonical = [prev, r["id"], r["track_id"], r["seq"], r["from_state"], r["to_state"],
                     r["trigger"], r["actor"], r["role"], r["note"], r["at"], r["recorded_at"],
                     r["def_version"], r["fields"]]
        text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == r["hash"]
        prev = r["hash"]
    assert run(runner, db_path, "audit", "export").stdout.count("\n") == 9


def test_audit_export_csv_neutralises_formula_cells(runner: CliRunner, db_path: Path) -> None:
    """Cells starting with = + - @ get a leading apostrophe; the rest is untouched."""
    _work(runner, db_path)
    text = ok(runner, db_path, "audit", "export", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 9 and rows[0]["prev_hash"] == "0" * 64
    assert rows[-1]["note"] == "'=HYPERLINK(\"http://evil.example\")"
    assert rows[0]["trigger"] == "'@start"
    assert rows[1]["trigger"] == "start_pilot" and rows[1]["seq"] == "2"


def test_audit_rollout_csv_neutralises_formula_cells(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """'report rollout --format csv': a vendor named like a formula comes out inert."""
    systems = tmp_path / "systems.csv"
    systems.write_text("vendor,system,category\n=1+1,@SUM(A1),Jobcenter\n", encoding="utf-8")
    ok(runner, db_path, "registry", "import", "systems", str(systems))
    contracts = tmp_path / "contracts.csv"
    contracts.write_text("municipality,system,contract\nAarhus,=1+1 @SUM(A1),unknown\n",
                         encoding="utf-8")
    ok(runner, db_path, "registry", "import", "contracts", str(contracts))
    text = ok(runner, db_path, "report", "rollout", "--format", "csv").stdout
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["system"].endswith("SUM(A1)"))
    assert (row["vendor"], row["system"]) == ("'=1+1", "'@SUM(A1)")
    assert all(not v.startswith(("=", "+", "-", "@")) for r in csv.reader(io.StringIO(text))
               for v in r)


def test_audit_migration_hashes_history_written_before_it(tmp_path: Path) -> None:
    """A database from before the chain (schema 3) gets every existing row hashed on 'init';
    new rows continue the chain."""
    path = tmp_path / "old.db"
    db = connect(path)
    migrations.apply(db, stop_before="004_actors_audit")
    registry.seed(db)
    definitions.register_shipped(db)
    stamp = clock.stamp(clock.parse_time("2021-04-01T10:00"))
    for i, code in ((1, 101), (2, 147), (3, 751)):
        db.execute(
            "INSERT INTO tracks (id, definition, def_version, subject_key, municipality_code,"
            " system_id, state, version, fields, entered_at, created_at, updated_at)"
            " VALUES (?, 'connection', 1, ?, ?, 1, 'date_agreement', 1, '{}', ?, ?, ?)",
            [i, f"{code}:1:sd", code, stamp, stamp, stamp],
        )
        db.execute(
            "INSERT INTO history (track_id, seq, to_state, trigger, actor, role, at,"
            " recorded_at, def_version) VALUES (?, 1, 'date_agreement', '@start', 'old', "
            "'coordinator', ?, ?, 1)",
            [i, stamp, stamp],
        )
    assert initialise(db)[0] == "004_actors_audit"
    result = audit.verify(db)
    assert result.ok and result.rows == 3
    db.close()
    runner = CliRunner()
    ok(runner, path, "track", "advance", "1", "agree_date", "--set", "connection_date=2027-01-01",
       "--at", "2021-04-02")
    assert ok(runner, path, "audit", "verify").stdout.startswith("audit trail intact: 4 history")


def test_audit_verify_walks_a_programme_sized_chain(db: Database) -> None:
    """A chain of 20,000 rows appended in one go verifies, and one changed row breaks it."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO tracks (id, definition, def_version, subject_key, state, version,"
        " entered_at, created_at, updated_at) VALUES (1, 'x', 1, 'k', 's', 20000, '', '', '')"
    )
    audit.append(conn, [(1, i, None, "s", "t", "a", "r", None, "", "", 1, "{}")
                        for i in range(1, 20001)])
    conn.execute("COMMIT")
    assert audit.verify(db).ok
    # Speed is bench/'s to prove; here only that the whole chain is walked to its last rows.
    conn.execute("DROP TRIGGER IF EXISTS history_no_update")
    conn.execute("UPDATE history SET actor = 'changed' WHERE seq = 19999")
    assert not audit.verify(db).ok
