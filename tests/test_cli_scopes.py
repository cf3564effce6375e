"""Need-to-know reads on the command line (issue 13): with ``--actor`` / ``$ONBOARDING_ACTOR``
a read command shows what that actor may read, the same as the web page; without either it is
the operator's full view (the command line trusts its operator). On the demo database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cli
from tests.web_support import DEMO_NOW, fresh_db

AARHUS, ODENSE, KMD = 751, 461, 1
ORACLE = {
    "aarhus": f"SELECT id FROM tracks WHERE municipality_code = {AARHUS}",
    "kmd": f"SELECT t.id FROM tracks t LEFT JOIN systems s ON s.id = t.system_id"
    f" WHERE coalesce(t.vendor_id, s.vendor_id) = {KMD}",
}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the demo database for the read-only tests of this module."""
    return fresh_db(tmp_path_factory.mktemp("cli-scopes"))


def _run(db: Path, *args: str, actor: str | None = None) -> Result:
    env = {"ONBOARDING_NOW": DEMO_NOW, "ONBOARDING_ACTOR": actor or ""}
    return CliRunner().invoke(cli.cli, [*args, "--db", str(db)], env=env)


def _json(db: Path, *args: str, actor: str | None = None) -> Any:
    result = _run(db, *args, "--json", actor=actor)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def _ids(db: Path, sql: str) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {int(r[0]) for r in conn.execute(sql)}
    finally:
        conn.close()


def test_cli_track_list_with_actor_lists_only_its_tracks(demo_db: Path) -> None:
    """``track list --actor`` (or $ONBOARDING_ACTOR) lists the actor's tracks; without, all."""
    everything = {r["id"] for r in _json(demo_db, "track", "list")}
    assert everything == _ids(demo_db, "SELECT id FROM tracks")
    for name in ("aarhus", "kmd"):
        own = _ids(demo_db, ORACLE[name])
        assert {r["id"] for r in _json(demo_db, "track", "list", "--actor", name)} == own
        assert {r["id"] for r in _json(demo_db, "track", "list", actor=name)} == own


def test_cli_track_show_outside_the_scope_is_unknown(demo_db: Path) -> None:
    """show, history and why of another municipality's track: exit 2, as an unknown track."""
    odense = min(_ids(demo_db, f"SELECT id FROM tracks WHERE municipality_code = {ODENSE}"))
    for command in ("show", "history", "why"):
        refused = _run(demo_db, "track", command, str(odense), "--actor", "aarhus")
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.strip() == f"Error: unknown track '{odense}'"
        assert _run(demo_db, "track", command, str(odense)).exit_code == 0
        own = min(_ids(demo_db, ORACLE["aarhus"]))
        assert _run(demo_db, "track", command, str(own), "--actor", "aarhus").exit_code == 0


def test_cli_reports_with_actor_list_only_its_tracks(demo_db: Path) -> None:
    """report overdue/grid lists only the reader's tracks; rollout stays the national count."""
    everything = {r["track"] for r in _json(demo_db, "report", "overdue")["tracks"]}
    for name in ("aarhus", "kmd"):
        own = _ids(demo_db, ORACLE[name])
        got = {r["track"] for r in _json(demo_db, "report", "overdue", actor=name)["tracks"]}
        assert got == everything & own, name
    grid = _json(demo_db, "report", "grid", actor="aarhus")
    assert [r["municipality"] for r in grid["rows"]] == ["Aarhus"]
    kmd_cells = {
        c["track"]
        for r in _json(demo_db, "report", "grid", actor="kmd")["rows"]
        for c in r["cells"].values()
        if c["track"] is not None
    }
    assert kmd_cells and kmd_cells <= _ids(demo_db, ORACLE["kmd"])
    assert _json(demo_db, "report", "rollout", actor="aarhus") == _json(
        demo_db, "report", "rollout"
    )


def test_cli_contacts_and_reminders_with_actor_are_its_own(demo_db: Path) -> None:
    """registry list contacts and reminders list with --actor: own contacts, own tracks."""
    everyone = _json(demo_db, "registry", "list", "contacts")
    mine = _json(demo_db, "registry", "list", "contacts", actor="aarhus")
    assert mine and {c["municipality_code"] for c in mine} == {AARHUS}
    assert len(everyone) > len(mine)
    kmd = _json(demo_db, "registry", "list", "contacts", actor="kmd")
    assert kmd and {c["vendor_id"] for c in kmd} == {KMD}
    rows = _json(demo_db, "reminders", "list", actor="kmd")
    assert rows and {r["track"] for r in rows} <= _ids(demo_db, ORACLE["kmd"])
    addresses = {a for r in rows for a in r["to"] if "@" in a}
    kmd_addresses = {c["email"] for c in kmd}
    assert addresses <= kmd_addresses
    ahead = _json(demo_db, "reminders", "forecast", "--days", "30", actor="kmd")
    assert ahead and {r["track"] for r in ahead} <= _ids(demo_db, ORACLE["kmd"])
    assert {a for r in ahead for a in r["to"]} <= kmd_addresses
    assert sum(r["hidden"] for r in ahead) > 0  # KOMBIT's people are counted, not named


def test_cli_read_as_unknown_actor_is_refused(demo_db: Path) -> None:
    """Reading as an actor that is not registered is refused in one line, exit 2."""
    result = _run(demo_db, "track", "list", "--actor", "nobody")
    assert result.exit_code == 2
    assert "'nobody' is not registered" in result.stderr


def test_cli_portfolio_public_is_a_coordinators_setting(tmp_path: Path) -> None:
    """Only a coordinator declares the portfolio public; then others' rows are named."""
    db = fresh_db(tmp_path)
    refused = _run(db, "actor", "portfolio", "public", actor="aarhus")
    assert refused.exit_code == 2 and "coordinator" in refused.stderr
    assert _run(db, "actor", "portfolio").stdout == "portfolio: private\n"
    done = _run(db, "actor", "portfolio", "public", actor="koordinator")
    assert done.exit_code == 0 and done.stdout == "portfolio: public\n"
    grid = _json(db, "report", "grid", actor="aarhus")
    assert "Odense" in [r["municipality"] for r in grid["rows"]]
    # Public names, not public tracks: another municipality's track is still unknown.
    odense = min(_ids(db, f"SELECT id FROM tracks WHERE municipality_code = {ODENSE}"))
    assert _run(db, "track", "show", str(odense), actor="aarhus").exit_code == 2
