"""The rollout counts are kept by triggers: whatever writes the tracks and contracts tables
(raw SQL here, NULLs included), they equal a recount from scratch.

Schema 012_rollout_summary kept one row per (definition, version, municipality, system, state);
013_rollout_buckets replaced it by the counts the report prints (onboarding/rollup.py), so this
test, which asserted on the 012 table, now asserts on those (tests/test_rollout_buckets.py
drives the same through the engine and the report)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from onboarding import rollup


def summary_and_grouped(conn: sqlite3.Connection) -> tuple[list[tuple[object, ...]], ...]:
    return conn.execute(rollup.COUNTS).fetchall(), conn.execute(rollup.RECOUNT).fetchall()


def _init(path: Path) -> None:
    result = CliRunner().invoke(cli.cli, ["init", "--db", str(path)])
    assert result.exit_code == 0, result.output


_VALUES = {
    "definition": st.sampled_from(["connection", "klik-task"]),
    "def_version": st.integers(1, 2),
    "municipality_code": st.one_of(st.none(), st.sampled_from([101, 751])),
    "system_id": st.one_of(st.none(), st.integers(1, 2)),
    "state": st.sampled_from(["date_agreement", "service_agreements", "live"]),
}
_insert = st.fixed_dictionaries(_VALUES).map(lambda v: ("insert", v))
_update = st.tuples(st.integers(0, 30), st.sampled_from(sorted(_VALUES)), st.data()).map(
    lambda t: ("update", t)
)
_delete = st.integers(0, 30).map(lambda n: ("delete", n))
_contract = st.tuples(st.sampled_from([101, 751]), st.integers(1, 2)).map(lambda t: ("contract", t))
_uncontract = st.tuples(st.sampled_from([101, 751]), st.integers(1, 2)).map(
    lambda t: ("uncontract", t)
)
_recontract = st.tuples(st.integers(0, 3), st.sampled_from([101, 751]), st.integers(1, 2)).map(
    lambda t: ("recontract", t)
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.one_of(_insert, _insert, _update, _delete, _contract, _uncontract, _recontract),
        max_size=40,
    )
)
def test_rollout_summary_equals_the_tracks_after_any_writes(
    tmp_path_factory: object, ops: list[tuple[str, object]]
) -> None:
    """Random inserts, updates of every counted column (NULLs included) and deletes of tracks,
    and contracts recorded, moved and removed, leave the rollout counts equal to a recount."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.db"
        _init(path)
        conn = sqlite3.connect(path)
        try:
            n = 0
            for kind, arg in ops:
                ids = [r[0] for r in conn.execute("SELECT id FROM tracks ORDER BY id")]
                if kind == "insert":
                    assert isinstance(arg, dict)
                    n += 1
                    conn.execute(
                        "INSERT INTO tracks (definition, def_version, subject_key,"
                        " municipality_code, system_id, state, version, entered_at,"
                        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, 't', 't', 't')",
                        [
                            arg["definition"],
                            arg["def_version"],
                            f"s{n}",
                            arg["municipality_code"],
                            arg["system_id"],
                            arg["state"],
                        ],
                    )
                elif kind == "update" and ids:
                    assert isinstance(arg, tuple)
                    pick, column, data = arg
                    value = data.draw(_VALUES[column])
                    conn.execute(
                        f"UPDATE tracks SET {column} = ? WHERE id = ?",
                        [value, ids[pick % len(ids)]],
                    )
                elif kind == "delete" and ids:
                    assert isinstance(arg, int)
                    conn.execute("DELETE FROM tracks WHERE id = ?", [ids[arg % len(ids)]])
                elif kind == "contract":
                    assert isinstance(arg, tuple)
                    conn.execute(
                        "INSERT OR IGNORE INTO contracts VALUES (?, ?, 'unknown')", list(arg)
                    )
                elif kind == "uncontract":
                    assert isinstance(arg, tuple)
                    conn.execute(
                        "DELETE FROM contracts WHERE municipality_code = ? AND system_id = ?",
                        list(arg),
                    )
                elif kind == "recontract":
                    assert isinstance(arg, tuple)
                    pick, code, system = arg
                    rows = conn.execute("SELECT rowid FROM contracts ORDER BY rowid").fetchall()
                    if rows:
                        conn.execute(
                            "UPDATE OR IGNORE contracts SET municipality_code = ?, system_id = ?"
                            " WHERE rowid = ?",
                            [code, system, rows[pick % len(rows)][0]],
                        )
            conn.commit()
            kept, recounted = summary_and_grouped(conn)
            assert kept == recounted
        finally:
            conn.close()
