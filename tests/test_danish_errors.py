"""Library errors in the reader's language: real CLI commands on a real database file, run with
ONBOARDING_LANG=da, say their refusal in Danish (one line, exit 2, "Fejl: ..."), and with en
the English text they have always had (scripts, logs and JSON read it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import cli

ENV = {"ONBOARDING_NOW": "2021-06-01T12:00"}


def _cli(db: Path, args: list[str], actor: str, lang: str, stdin: str | None = None) -> Result:
    env = {**ENV, "ONBOARDING_ACTOR": actor, "ONBOARDING_LANG": lang}
    return CliRunner().invoke(cli.cli, [*args, "--db", str(db)], env=env, input=stdin)


@pytest.fixture(scope="module")
def enforcing_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one track and permissions enforced: kombit coordinates, bob is an
    actor without a role, import imports status files."""
    db = tmp_path_factory.mktemp("danish-errors") / "d.db"
    steps = [
        (["init"], "tester"),
        (["track", "start", "connection", "--municipality", "Køge", "--system", "Momentum",
          "--at", "2021-05-01"], "tester"),
        (["actor", "add", "kombit"], "tester"),
        (["actor", "grant", "kombit", "coordinator"], "kombit"),
        (["actor", "add", "bob"], "kombit"),
        (["actor", "add", "import"], "kombit"),
        (["actor", "grant", "import", "importer"], "kombit"),
    ]
    for args, actor in steps:
        result = _cli(db, args, actor, "en")
        assert result.exit_code == 0, (args, result.output)
    return db


@dataclass(frozen=True)
class Case:
    args: list[str]
    actor: str
    da: str
    en: str
    stdin: str | None = None


CASES = {
    "unregistered actor": Case(
        ["track", "start", "connection", "--municipality", "Vejle", "--system", "Momentum"],
        "root",
        "Fejl: aktøren 'root' er ikke registreret: rettigheder kontrolleres i denne database "
        "('onboarding actor add root', derefter 'onboarding actor grant')",
        "Error: actor 'root' is not registered: permissions are enforced in this database "
        "('onboarding actor add root', then 'onboarding actor grant')",
    ),
    "unregistered reader": Case(
        ["track", "show", "1"],
        "root",
        "Fejl: aktøren 'root' er ikke registreret: rettigheder kontrolleres i denne database",
        "Error: actor 'root' is not registered: permissions are enforced in this database",
    ),
    "unknown role": Case(
        ["actor", "grant", "bob", "nosuchrole"],
        "kombit",
        "Fejl: ukendt rolle 'nosuchrole' (roller: coordinator, programme-lead, municipality-pl, "
        "agreement-admin, bob-agreement-admin, sapa-owner, sapa-admin, bob-admin, vendor, "
        "importer, system)",
        "Error: unknown role 'nosuchrole' (roles: coordinator, programme-lead, municipality-pl, "
        "agreement-admin, bob-agreement-admin, sapa-owner, sapa-admin, bob-admin, vendor, "
        "importer, system)",
    ),
    "role held for a vendor": Case(
        ["actor", "grant", "bob", "vendor"],
        "kombit",
        "Fejl: rollen leverandør tildeles for én leverandør: giv --vendor",
        "Error: role 'vendor' (leverandør) is held for one vendor: give --vendor",
    ),
    "short password": Case(
        ["actor", "add", "eve", "--password-stdin"],
        "kombit",
        "Fejl: en adgangskode skal have mindst 8 tegn",
        "Error: a password needs at least 8 characters",
        stdin="short\n",
    ),
    "actor without the role": Case(
        ["track", "start", "connection", "--municipality", "Vejle", "--system", "Momentum"],
        "bob",
        "Fejl: aktøren 'bob' har ikke rollen KOMBIT-koordinator; den har ingen rolle",
        "Error: actor 'bob' does not hold role 'coordinator' (KOMBIT-koordinator); "
        "it holds no role",
    ),
    "bad date": Case(
        ["track", "start", "connection", "--municipality", "Vejle", "--system", "Momentum",
         "--at", "2021-13-01"],
        "kombit",
        "Fejl: --at '2021-13-01' er ikke en dato eller et tidspunkt: brug 2021-03-31 (ISO 8601), "
        "31-03-2021, 31.03.2021 eller 31/03/2021, eventuelt med et klokkeslæt: 2021-03-31T14:00 "
        "eller 31-03-2021 14:00",
        "Error: --at '2021-13-01' is not a date or time: use 2021-03-31 (ISO 8601), 31-03-2021, "
        "31.03.2021 or 31/03/2021, optionally with a time: 2021-03-31T14:00 or 31-03-2021 14:00",
    ),
    "time in the future": Case(
        ["track", "start", "connection", "--municipality", "Vejle", "--system", "Momentum",
         "--at", "2021-06-02T12:00"],
        "kombit",
        "Fejl: --at 2021-06-02T12:00:00+0200 ligger efter det aktuelle tidspunkt "
        "2021-06-01T12:00:00+0200: historikken registrerer skridt, når de skete (højst 5 "
        "minutter frem); en planlagt dato hører til i et datofelt på sporet (--set NAME=DATE)",
        "Error: --at 2021-06-02T12:00:00+0200 is later than the current time "
        "2021-06-01T12:00:00+0200: the history records steps when they happened (at most 5 "
        "minutes ahead); a planned date belongs in a date field of the track (--set NAME=DATE)",
    ),
    "bad --where key": Case(
        ["track", "advance", "connected", "--where", "bogus=1"],
        "kombit",
        "Fejl: --where: ukendt nøgle 'bogus'; nøgler: definition, state, phase, bucket, "
        "municipality, system, vendor, region, overdue, open",
        "Error: --where: unknown key 'bogus'; keys: definition, state, phase, bucket, "
        "municipality, system, vendor, region, overdue, open",
    ),
    "unknown state in --where": Case(
        ["track", "advance", "connected", "--where", "state=date_agrement"],
        "kombit",
        "Fejl: --where state: ukendt trin 'date_agrement'; nærmeste: date_agreement, "
        "data_processing_agreement, service_agreements (se 'onboarding workflow show connection')",
        "Error: --where state: unknown state 'date_agrement'; closest: date_agreement, "
        "data_processing_agreement, service_agreements "
        "(see 'onboarding workflow show connection')",
    ),
    "unknown token": Case(
        ["actor", "token", "revoke", "bob", "--id", "99"],
        "kombit",
        "Fejl: ukendt aktivt token for bob '99'",
        "Error: unknown active token of bob '99'",
    ),
    "token label too long": Case(
        ["actor", "token", "create", "bob", "--label", "x" * 300],
        "kombit",
        "Fejl: --label: højst 200 tegn",
        "Error: --label: at most 200 characters",
    ),
}


def _one_line(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_danish_errors_cli_refusal_reads_danish(enforcing_db: Path, name: str) -> None:
    """With ONBOARDING_LANG=da a library error is one Danish line 'Fejl: ...', exit 2."""
    case = CASES[name]
    result = _cli(enforcing_db, case.args, case.actor, "da", case.stdin)
    assert _one_line(result) == case.da


@pytest.mark.parametrize("name", list(CASES))
def test_danish_errors_cli_refusal_in_english_is_unchanged(enforcing_db: Path, name: str) -> None:
    """With ONBOARDING_LANG=en the same error is the English line it has always been."""
    case = CASES[name]
    result = _cli(enforcing_db, case.args, case.actor, "en", case.stdin)
    assert _one_line(result) == case.en


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        ("da", "Fejl: {path}:1: kolonnen statuz: ukendt kolonne (forventet: {cols}); "
               "nærmeste: status"),
        ("en", "Error: {path}:1: column statuz: unknown column (expected: {cols}); "
               "closest: status"),
    ],
)
def test_danish_errors_csv_row_error_in_the_readers_language(
    enforcing_db: Path, tmp_path: Path, lang: str, line: str
) -> None:
    """A status file with an unknown column is refused in the reader's language, naming the
    file, line and column (English: the text it has always had)."""
    bad = tmp_path / "bad.csv"
    bad.write_text("municipality,system,statuz\nKøge,Momentum,x\n", encoding="utf-8")
    cols = (
        "municipality, system, status, date, index, note, kind, bob, compliance_ref, "
        "connection_date, cutoff_date, kle_numbers, pilot_municipality, reason"
    )
    result = _cli(enforcing_db, ["import", "status", str(bad)], "kombit", lang)
    assert _one_line(result) == line.format(path=bad, cols=cols)


def test_danish_errors_status_import_lists_every_row_problem_in_the_readers_language(
    enforcing_db: Path, tmp_path: Path
) -> None:
    """A status file with several bad rows is refused with every row's problem in Danish
    (exit 2, nothing imported); in English the same lines as always."""
    bad = tmp_path / "rows.csv"
    bad.write_text(
        "municipality,system,status,date\nVejle,Momentum,x,2021-13-01\nAarhus,Momentum,ja,\n",
        encoding="utf-8",
    )
    args = ["import", "status", str(bad)]
    da = _cli(enforcing_db, args, "kombit", "da")
    en = _cli(enforcing_db, args, "kombit", "en")
    assert (da.exit_code, en.exit_code) == (2, 2)
    assert da.stderr.splitlines() == [
        f"Fejl: {bad}:2: kolonnen date: '2021-13-01' er ikke en dato (brug 2021-03-31 (ISO 8601), "
        "31-03-2021, 31.03.2021 eller 31/03/2021, eventuelt med et klokkeslæt: "
        "2021-03-31T14:00 eller 31-03-2021 14:00)",
        f"{bad}:3: kolonnen date: er tom",
        f"{bad}: 2 rækker har problemer; intet blev indlæst",
    ]
    assert en.stderr.splitlines() == [
        f"Error: {bad}:2: column date: '2021-13-01' is not a date (use 2021-03-31 (ISO 8601), "
        "31-03-2021, 31.03.2021 or 31/03/2021, optionally with a time: 2021-03-31T14:00 or "
        "31-03-2021 14:00)",
        f"{bad}:3: column date: is empty",
        f"{bad}: 2 rows have problems; nothing was imported",
    ]
