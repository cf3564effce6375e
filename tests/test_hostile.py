"""Hostile and broken input (issue 5): the corpus in tests/hostile/, header injection, sandbox.

The corpus (``tests/hostile/cases.yaml`` and the files beside it) runs as one parametrized
test: every entry must exit 2 with one clear error naming where, and leave the database
exactly as it was (the file's bytes and a full dump, ``tests.support.snapshot``).
"""

from __future__ import annotations

import shlex
import shutil
import sqlite3
from dataclasses import replace
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jinja2.sandbox import SandboxedEnvironment
from sqlite_utils import Database

import cli
from notifications.config import load_config
from notifications.render import Renderer
from notifications.runner import send_due
from onboarding import engine
from tests.mailserver import MailServer
from tests.notify_support import (
    SAPA_NOTICE_AT,
    add_contacts,
    connection_to_sapa,
    make_ready,
    rows_by_name,
    smtp_config,
    t,
)
from tests.support import snapshot

HOSTILE = Path(__file__).parent / "hostile"
CASES: list[dict[str, Any]] = yaml.safe_load((HOSTILE / "cases.yaml").read_text("utf-8"))


def _case_id(case: dict[str, Any]) -> str:
    return str(case.get("file") or case["run"].split(" --")[0][:40])


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised database with a connection track, no actors (it runs open)."""
    path = tmp_path_factory.mktemp("hostile") / "base.db"
    runner = CliRunner()
    env = {"ONBOARDING_ACTOR": "tester", "ONBOARDING_NOW": "2021-06-01T12:00"}
    assert runner.invoke(cli.cli, ["init", "--db", str(path)]).exit_code == 0
    started = runner.invoke(
        cli.cli,
        ["track", "start", "connection", "--municipality", "Køge", "--system", "Momentum",
         "--db", str(path)],
        env=env,
    )
    assert started.exit_code == 0, started.output
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def test_hostile_corpus_has_at_least_fifty_inputs() -> None:
    """The corpus is big enough and every file in it is used by a case."""
    assert len(CASES) >= 50
    used = {c["file"] for c in CASES if c.get("file")}
    present = {
        str(p.relative_to(HOSTILE)) for p in HOSTILE.rglob("*") if p.is_file()
    } - {"cases.yaml"}
    assert used == present


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_hostile_input_gives_a_located_error_and_changes_nothing(
    case: dict[str, Any], base_db: Path, tmp_path: Path
) -> None:
    """Exit 2, one 'Error:' naming where and what, no traceback, the database unchanged."""
    db_path = tmp_path / "onboarding.db"
    shutil.copyfile(base_db, db_path)
    before = snapshot(db_path)
    args = shlex.split(case["run"])
    if case.get("file"):
        args.append(str(HOSTILE / case["file"]))
    env = {"ONBOARDING_ACTOR": "tester", "ONBOARDING_NOW": "2021-06-01T12:00"}
    result = CliRunner().invoke(cli.cli, [*args, "--db", str(db_path)], env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    err = result.stderr
    assert err.startswith("Error: ") and "Traceback" not in result.output
    if case.get("file"):
        assert str(HOSTILE / case["file"]) in err
    assert case["where"] in err, err[:500]
    assert case["says"] in err, err[:500]
    assert len(err) < 5000  # a hostile value is quoted shortened, never echoed whole
    assert snapshot(db_path) == before


# --- email: names and notes cannot add headers; user templates are sandboxed -------------------


def _evil(db: Database) -> int:
    """A Køge connection in step 4 whose names, note and fields all carry CR/LF + 'Bcc:'
    (written straight into the database, as an older import or another tool might have)."""
    make_ready(db)
    add_contacts(
        db,
        Path(db.conn.execute("PRAGMA database_list").fetchone()[2]).parent,
        [
            {"role": "sapa-owner", "name": "Sofie", "email": "sofie@koege.dk",
             "municipality": "Køge"},
            {"role": "coordinator", "name": "Kim", "email": "kim@kombit.dk"},
        ],
    )
    db.conn.execute("UPDATE contacts SET name = 'Sofie\r\nBcc: evil1@example.com'")
    db.conn.execute(
        "UPDATE municipalities SET name = 'Køge\r\nBcc: evil2@example.com' WHERE code = 259"
    )
    tid = connection_to_sapa(db)
    engine.set_fields(
        db,
        tid,
        {"kle_numbers": "27.12\r\nBcc: evil3@example.com"},
        engine.Act("tester\r\nBcc: evil4@example.com", "coordinator",
                   note="ok\r\nBcc: evil5@example.com", at=t("2021-06-05T09:00")),
    )
    return tid


def test_hostile_names_and_notes_cannot_inject_email_headers(
    db: Database, db_path: Path, smtp_server: MailServer, no_mail_env: None
) -> None:
    """Every message that goes out has its headers intact: no Bcc, the recipients meant."""
    _evil(db)
    summary = send_due(db, t(SAPA_NOTICE_AT), smtp_config(smtp_server, db_path))
    assert summary.sent >= 2 and smtp_server.messages
    for mail in smtp_server.messages:
        raw = mail.message.as_bytes()
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        headers = raw.split(b"\n\n", 1)[0]
        assert parsed["Bcc"] is None and b"\nBcc:" not in headers
        assert set(mail.rcpt_tos) <= {"sofie@koege.dk", "kim@kombit.dk", "sapa@kombit.dk"}
        assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
        assert all("evil" not in a.addr_spec for a in parsed["To"].addresses)


def test_hostile_user_templates_render_in_the_sandbox(
    db: Database, db_path: Path, tmp_path: Path, smtp_server: MailServer, no_mail_env: None
) -> None:
    """An edited template that reaches for Python internals fails that row (SecurityError);
    nothing runs and nothing is sent for it."""
    make_ready(db)
    tid = connection_to_sapa(db)
    folder = tmp_path / "tpl" / "da"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    (folder / "sapa-request.subject.txt").write_text(
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}",
        encoding="utf-8",
    )
    config = replace(smtp_config(smtp_server, db_path), templates_dir=tmp_path / "tpl")
    assert isinstance(Renderer(config).env, SandboxedEnvironment)
    assert isinstance(Renderer(load_config(db_path, env={})).env, SandboxedEnvironment)
    send_due(db, t(SAPA_NOTICE_AT), config)
    row = rows_by_name(db, tid)["sapa-notice"]
    assert row["status"] == "failed" and "SecurityError" in row["last_error"]
    assert not marker.exists()
    assert smtp_server.to("sapa@kombit.dk") == []
