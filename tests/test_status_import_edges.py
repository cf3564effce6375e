"""``onboarding import status`` at its edges: rows judged at their own moment (idempotent within
a day), the importer's scope checked for every row before anything is written, statuses resolved
against each track's own definition version. Every test drives the real CLI on a real file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from tests.deckdata import copy_db
from tests.support import make_ready, ok, query, run, snapshot

HEADER = "municipality,system,status,date,kind,bob,connection_date\n"
#: Momentum ready for rollout (pilot Aarhus) long before the rows below.
READY = "Aarhus,Momentum,ready,2021-01-04,system-readiness,,\n"


def _file(tmp_path: Path, body: str, name: str = "status.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def _import(runner: CliRunner, db_path: Path, path: Path, *extra: str) -> Result:
    return run(runner, db_path, "import", "status", str(path), *extra)


def _imports_again_unchanged(runner: CliRunner, db_path: Path, path: Path) -> None:
    before = snapshot(db_path)
    again = _import(runner, db_path, path)
    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output
    assert snapshot(db_path) == before


def _track_id(db_path: Path, municipality_code: int) -> int:
    rows = query(
        db_path,
        "SELECT id FROM tracks WHERE definition = 'connection' AND municipality_code = ?",
        (municipality_code,),
    )
    assert len(rows) == 1
    return int(str(rows[0][0]))


# --- judged at the row's own moment ---------------------------------------------------------


def test_import_status_two_rows_one_day_import_again_unchanged(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A date-only row and a timed row later that day for one connection: the file imports, and
    importing it again changes nothing (it used to fail as a backwards move)."""
    path = _file(
        tmp_path,
        READY
        + "Odense,Momentum,Endnu ikke aftalt,2021-03-01,,,\n"
        + "Odense,Momentum,Aftalt,2021-03-01T10:00,,,2021-06-01\n",
    )
    first = _import(runner, db_path, path)
    assert first.exit_code == 0, first.output
    assert query(db_path, "SELECT state FROM tracks WHERE municipality_code = 461") == [
        ("sapa_request",)
    ]
    _imports_again_unchanged(runner, db_path, path)


def test_import_status_two_timed_rows_one_day_import_again_unchanged(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Two timed rows on one day (morning: step 2, afternoon: live) import again unchanged."""
    path = _file(
        tmp_path,
        READY
        + "Odense,Momentum,service_agreements,2021-03-01T09:00,,,2021-03-01\n"
        + "Odense,Momentum,I drift,2021-03-01T15:30,,,\n",
    )
    assert _import(runner, db_path, path).exit_code == 0
    _imports_again_unchanged(runner, db_path, path)


def test_import_status_last_months_file_after_a_step_later_that_day(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A date-only row, then people record steps later that day: re-importing last month's file
    is harmless (the row is judged at the moment it records, the start of its day)."""
    path = _file(tmp_path, READY + "Odense,Momentum,date_agreement,2021-03-01,,,\n")
    assert _import(runner, db_path, path).exit_code == 0
    tid = str(_track_id(db_path, 461))
    ok(
        runner,
        db_path,
        "track",
        "advance",
        tid,
        "agree_date",
        "--set",
        "connection_date=2021-06-01",
        "--at",
        "2021-03-01T14:00",
    )
    ok(runner, db_path, "track", "advance", tid, "approve_agreements", "--at", "2021-03-01T15:00")
    _imports_again_unchanged(runner, db_path, path)


def test_import_status_date_only_row_sees_readiness_declared_that_day(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A system declared ready during the row's day counts for a date-only row: other tracks
    are read as they stood at the end of that day (it used to say 'it has no
    system-readiness track'); the steps are still recorded at the start of the day."""
    make_ready(
        runner,
        db_path,
        "Momentum",
        pilot="Aarhus",
        at=("2021-03-01T08:00", "2021-03-01T09:00", "2021-03-01T10:00", "2021-03-01T11:00"),
    )
    path = _file(tmp_path, "Odense,Momentum,Aftalt,2021-03-01,,,2021-06-01\n")
    result = _import(runner, db_path, path)
    assert result.exit_code == 0, result.output
    tid = _track_id(db_path, 461)
    assert query(db_path, "SELECT state FROM tracks WHERE id = ?", (tid,)) == [("sapa_request",)]
    stamps = query(db_path, "SELECT DISTINCT at FROM history WHERE track_id = ?", (tid,))
    assert stamps == [("2021-02-28T23:00:00.000000Z",)]  # local midnight of 1 March
    _imports_again_unchanged(runner, db_path, path)


def test_import_status_timed_row_before_readiness_is_still_refused(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A timed row is judged at its time: before the system was ready it is refused."""
    make_ready(
        runner,
        db_path,
        "Momentum",
        pilot="Aarhus",
        at=("2021-03-01T08:00", "2021-03-01T09:00", "2021-03-01T10:00", "2021-03-01T11:00"),
    )
    path = _file(tmp_path, "Odense,Momentum,Aftalt,2021-03-01T10:30,,,2021-06-01\n")
    before = snapshot(db_path)
    result = _import(runner, db_path, path)
    assert result.exit_code == 2
    assert f"{path}:2: column status: " in result.stderr
    assert "not yet ready for rollout" in result.stderr
    assert snapshot(db_path) == before


def test_import_status_last_months_file_speaks_of_the_track_of_its_moment(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A connection cancelled and started afresh after the file: re-importing the file judges
    its row against the track that existed at the row's moment, and changes nothing."""
    path = _file(tmp_path, READY + "Odense,Momentum,Aftalt,2021-03-01,,,2021-06-01\n")
    assert _import(runner, db_path, path).exit_code == 0
    tid = str(_track_id(db_path, 461))
    ok(runner, db_path, "track", "advance", tid, "cancel", "--set", "reason=replaced",
       "--at", "2021-03-05")  # fmt: skip
    ok(runner, db_path, "track", "start", "--quiet", "connection", "--municipality", "Odense",
       "--system", "Momentum", "--at", "2021-03-10")  # fmt: skip
    _imports_again_unchanged(runner, db_path, path)


# --- the importer's scope, for every row --------------------------------------------------------


def _aarhus_importer(runner: CliRunner, db_path: Path) -> None:
    """kombit (coordinator for all) and the import actor granted importer for Aarhus only."""
    ok(runner, db_path, "actor", "add", "kombit")
    ok(runner, db_path, "actor", "grant", "kombit", "coordinator", actor="kombit")
    ok(runner, db_path, "actor", "add", "import", actor="kombit")
    ok(
        runner,
        db_path,
        "actor",
        "grant",
        "import",
        "importer",
        "--municipality",
        "Aarhus",
        actor="kombit",
    )


def test_import_status_out_of_scope_row_in_reported_state_refuses_the_file(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """An importer scoped to Aarhus: a Vejle row whose track already is in the reported state
    refuses the whole file, naming line and column; no contract is recorded for Vejle."""
    tid = ok(
        runner,
        db_path,
        "track",
        "start", "--quiet",
        "connection",
        "--municipality",
        "Vejle",
        "--system",
        "Momentum",
        "--at",
        "2021-02-01",
    ).stdout.strip()
    _aarhus_importer(runner, db_path)
    path = _file(
        tmp_path,
        "Aarhus,Momentum,Endnu ikke aftalt,2021-03-01,,,\n"
        "Vejle,Momentum,Endnu ikke aftalt,2021-03-02,,,\n",
    )
    before = snapshot(db_path)
    for extra in ((), ("--dry-run",)):
        result = _import(runner, db_path, path, *extra)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines() == [
            f"Error: {path}:3: column municipality: actor 'import' acts as importer for "
            f"Aarhus; track #{tid} is Vejle's"
        ]
        assert snapshot(db_path) == before
    assert query(db_path, "SELECT count(*) FROM contracts WHERE municipality_code = 630") == [(0,)]


def test_import_status_out_of_scope_readiness_row_refuses_the_file(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A system-readiness track belongs to no municipality: an importer scoped to Aarhus may
    not report it, even when it already is in the reported state."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
    _aarhus_importer(runner, db_path)
    path = _file(
        tmp_path,
        "Aarhus,Momentum,Endnu ikke aftalt,2021-03-02,,,\n"
        "Aarhus,Momentum,ready,2021-03-02,system-readiness,,\n",
    )
    before = snapshot(db_path)
    result = _import(runner, db_path, path)
    assert result.exit_code == 2, result.output
    assert f"{path}:3: column system: actor 'import' acts as importer for Aarhus; track #" in (
        result.stderr
    )
    assert snapshot(db_path) == before


def test_import_status_in_scope_rows_still_import(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """The same importer imports its own municipality's rows, twice without change."""
    make_ready(runner, db_path, "Momentum", pilot="Aarhus")
    _aarhus_importer(runner, db_path)
    path = _file(tmp_path, "Aarhus,Momentum,Aftalt,2021-03-02,,,2021-06-01\n")
    result = _import(runner, db_path, path)
    assert result.exit_code == 0, result.output
    assert "started 1 track" in result.stdout
    _imports_again_unchanged(runner, db_path, path)


# --- each track's own definition version ------------------------------------------------------


def _connection_v2(tmp_path: Path) -> Path:
    """connection v2: step 4 renamed (sapa_request -> notify_sapa)."""
    source = Path("workflows/definitions/connection.yaml").read_text(encoding="utf-8")
    v2 = source.replace("version: 1", "version: 2", 1).replace("sapa_request", "notify_sapa")
    path = tmp_path / "connection-v2.yaml"
    path.write_text(v2, encoding="utf-8")
    return path


def test_import_status_state_only_in_newer_version_is_a_row_error(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A finished track on version 1, a row naming a state only version 2 has: a row error on
    the status column (it used to raise KeyError, exit 1)."""
    assert (
        _import(
            runner,
            db_path,
            _file(tmp_path, READY + "Odense,Momentum,I drift,2021-03-01,,,2021-03-01\n", "v1.csv"),
        ).exit_code
        == 0
    )
    ok(runner, db_path, "workflow", "add", str(_connection_v2(tmp_path)))
    tid = _track_id(db_path, 461)
    path = _file(tmp_path, "Odense,Momentum,notify_sapa,2021-04-01,,,\n")
    before = snapshot(db_path)
    result = _import(runner, db_path, path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith(
        f"Error: {path}:2: column status: unknown status 'notify_sapa' for connection version 1 "
        f"(the version track #{tid} runs): expected one of "
    )
    assert snapshot(db_path) == before


def test_import_status_state_of_the_tracks_own_version_is_accepted(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """An open track left on version 1 is reported in version 1's terms; a new track starts on
    version 2 and is reported in version 2's."""
    first = _file(
        tmp_path, READY + "Odense,Momentum,service_agreements,2021-03-01,,,2021-06-01\n", "v1.csv"
    )
    assert _import(runner, db_path, first).exit_code == 0
    ok(runner, db_path, "workflow", "add", str(_connection_v2(tmp_path)))
    path = _file(
        tmp_path,
        "Odense,Momentum,sapa_request,2021-04-01,,,\n"
        "Vejle,Momentum,notify_sapa,2021-04-01,,,2021-06-01\n",
    )
    result = _import(runner, db_path, path)
    assert result.exit_code == 0, result.output
    assert query(
        db_path,
        "SELECT municipality_code, def_version, state FROM tracks"
        " WHERE definition = 'connection' ORDER BY municipality_code",
    ) == [(461, 1, "sapa_request"), (630, 2, "notify_sapa")]
    wrong = _file(tmp_path, "Vejle,Momentum,sapa_request,2021-04-02,,,\n", "wrong.csv")
    refused = _import(runner, db_path, wrong)
    assert refused.exit_code == 2
    assert f"{wrong}:2: column status: unknown status 'sapa_request' for connection" in (
        refused.stderr
    )
    _imports_again_unchanged(runner, db_path, path)


# --- property: any accepted file imports again with no change --------------------------------

#: Statuses along the connection flow, in an order in which each may follow any earlier one
#: (a bucket label right after a state of that bucket leaves the track as it is).
FLOW = [
    "date_agreement",
    "Endnu ikke aftalt",
    "service_agreements",
    "Aftalt",
    "sapa_request",
    "display_opening",
    "sapa_bob_setup",
    "data_load",
    "I drift",
    "live",
]
#: With BoB display, step 3 comes between the approval and step 4.
FLOW_BOB = [*FLOW[:4], "data_processing_agreement", *FLOW[4:]]
MUNICIPALITIES = ["Odense", "Vejle", "Aarhus", "Esbjerg", "Aalborg"]
SYSTEMS = ["Momentum", "Fasit"]
#: Both systems ready long before any row; each row is date-only or timed at random.
READINESS = [
    ("Aarhus", "Momentum", "ready", "2021-01-04"),
    ("Vejle", "Fasit", "ready", "2021-01-05"),
]


@st.composite
def _moment(draw: st.DrawFn) -> str:
    day = f"2021-03-{draw(st.integers(1, 3)):02d}"
    if draw(st.booleans()):
        return day
    return f"{day}T{draw(st.integers(7, 17)):02d}:{draw(st.sampled_from(['00', '30'])):s}"


@st.composite
def _subject_rows(draw: st.DrawFn, municipality: str, system: str) -> list[list[str]]:
    """Rows for one connection: later moments never report less progress; same-day rows."""
    bob = draw(st.booleans())
    flow = FLOW_BOB if bob else FLOW
    moments = sorted(
        set(draw(st.lists(_moment(), min_size=1, max_size=4))),
        key=lambda m: m if len(m) > 10 else f"{m}T00:00",
    )
    steps = sorted(
        draw(st.lists(st.integers(0, len(flow) - 1), min_size=len(moments), max_size=len(moments)))
    )
    date_given = draw(st.booleans())
    return [
        [
            municipality,
            system,
            flow[step],
            moment,
            "",
            "ja" if bob else "nej",
            "2021-06-01" if date_given else "",
        ]
        for moment, step in zip(moments, steps, strict=True)
    ]


@st.composite
def _status_file(draw: st.DrawFn) -> list[list[str]]:
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(MUNICIPALITIES), st.sampled_from(SYSTEMS)),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    rows = [
        [m, s, status, draw(st.sampled_from([day, f"{day}T06:00"])), "system-readiness", "", ""]
        for m, s, status, day in READINESS
    ]
    for municipality, system in pairs:
        rows.extend(draw(_subject_rows(municipality, system)))
    return draw(st.permutations(rows))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database after ``onboarding init``, copied for each example."""
    path = tmp_path_factory.mktemp("edges") / "template.db"
    assert CliRunner().invoke(cli.cli, ["init", "--db", str(path)]).exit_code == 0
    return path


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=_status_file(), cancel=st.booleans())
def test_import_status_any_accepted_file_imports_again_unchanged(
    template: Path, rows: list[list[str]], cancel: bool
) -> None:
    """Random valid files (subjects, statuses along the flow, same-day rows, date-only and timed
    rows, any order) import; importing each again exits 0 and leaves the database equal, also
    when a coordinator cancelled the open connections late on the file's last day between."""
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = copy_db(template, Path(tmp) / "prop.db")
        path = Path(tmp) / "status.csv"
        path.write_text(HEADER + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
        first = _import(runner, db_path, path)
        assert first.exit_code == 0, (first.output, path.read_text(encoding="utf-8"))
        if cancel:
            open_ids = query(
                db_path, "SELECT id FROM tracks WHERE definition = 'connection' AND final = 0"
            )
            for (tid,) in open_ids:
                ok(runner, db_path, "track", "advance", str(tid), "cancel", "--set",
                   "reason=replaced", "--at", "2021-03-03T23:30")  # fmt: skip
        before = snapshot(db_path)
        again = _import(runner, db_path, path, "--json")
        assert again.exit_code == 0, (again.output, path.read_text(encoding="utf-8"))
        data = json.loads(again.stdout)
        assert (data["tracks_started"], data["steps"], data["contracts_recorded"]) == (0, 0, 0)
        assert snapshot(db_path) == before
