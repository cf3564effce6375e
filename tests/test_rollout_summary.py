"""The rollout summary (schema 012_rollout_summary) is kept by triggers: whatever writes the
tracks table, the summary's counts equal a GROUP BY over the tracks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from onboarding import rollup

SUMMARY = (
    "SELECT definition, def_version, municipality_code, system_id, state, n"
    " FROM rollout_summary WHERE n != 0 ORDER BY 1, 2, 3, 4, 5"
)
GROUPED = (
    "SELECT definition, def_version, ifnull(municipality_code, -1), ifnull(system_id, -1),"
    " state, count(*) FROM tracks GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
)


def summary_and_grouped(conn: sqlite3.Connection) -> tuple[list[tuple[object, ...]], ...]:
    return conn.execute(SUMMARY).fetchall(), conn.execute(GROUPED).fetchall()


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


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(st.one_of(_insert, _insert, _update, _delete), max_size=40))
def test_rollout_summary_equals_the_tracks_after_any_writes(
    tmp_path_factory: object, ops: list[tuple[str, object]]
) -> None:
    """Random inserts, updates of every counted column (NULLs included) and deletes of tracks
    leave the summary, and the counts per system and bucket, equal to counting the tracks."""
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
            conn.commit()
            summary, grouped = summary_and_grouped(conn)
            assert summary == grouped
            # and the counts per system and bucket (013_rollout_buckets) equal their recount
            assert conn.execute(rollup.COUNTS).fetchall() == conn.execute(rollup.RECOUNT).fetchall()
        finally:
            conn.close()
