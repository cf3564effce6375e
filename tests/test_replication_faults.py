"""Storage faults for the replication commands, as tests/test_storage_faults.py checks every
other command: one line, exit 2, the database byte-identical, nothing left behind; Litestream
is never started on a file it could not write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_replication import _replicate_once
from tests.test_storage_faults import (
    FAULTS,
    Base,
    _cli,
    _state,
    assert_one_line_error,
    base,  # noqa: F401  (the module's fixture: a database, its backup)
)

COMMANDS = {
    "replicate": ["replicate", "--to", "{out}/replica"],
    "restore-from-replica": ["restore", "--from-replica", "{replica}"],
}


@pytest.fixture(scope="module")
def replica(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A folder replica of the base database."""
    folder = tmp_path_factory.mktemp("replica") / "replica"
    _replicate_once(base.backup, folder)
    return folder


CASES = [(fault, command) for fault in FAULTS for command in COMMANDS]


@pytest.mark.parametrize(("fault", "command"), CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_replication_storage_fault_is_one_line_exit_2_and_changes_nothing(
    base: Base,  # noqa: F811
    replica: Path,
    tmp_path: Path,
    fault: str,
    command: str,
) -> None:
    """``replicate`` and ``restore --from-replica`` under every storage fault of the matrix:
    exit 2 with one line, the database byte-identical, no replica started, no file left."""
    make, _ = FAULTS[fault]
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(out=out, replica=replica) for a in COMMANDS[command]]
    with make(base, tmp_path) as db:
        before = _state(db)
        result = _cli([*args, "--db", str(db)])
        assert _state(db) == before
        assert_one_line_error(result)
        if db.parent.exists():
            left = [p.name for p in db.parent.iterdir() if "from-replica" in p.name
                    or p.name.endswith("-litestream")]
            assert left == []
    assert not (out / "replica").exists()
