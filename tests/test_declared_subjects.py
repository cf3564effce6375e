"""Subjects in data (issue 12): a definition declares what its tracks are about from the
registry's kinds and which parts identify a track; ``track start`` takes exactly the options the
subject names, and nothing of KOMBIT's connection subject (index, BoB) leaks into other tracks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.support import ok, ok_json, run, snapshot

VENDOR_DEF = """\
name: vendor-certification
version: 1
title: Leverandørcertificering
subject: {of: [vendor], key: [vendor]}
initial: applied
states:
  - {name: applied, label: Ansøgt}
  - {name: certified, label: Certificeret, final: true}
transitions:
  - {trigger: certify, source: applied, dest: certified, roles: [coordinator]}
"""

NAMED_DEF = """\
name: agency-project
version: 1
title: Styrelsesprojekt
subject: {of: [name]}
initial: open
states:
  - {name: open, label: Åben}
  - {name: closed, label: Lukket, final: true}
transitions:
  - {trigger: close, source: open, dest: closed, roles: [coordinator]}
"""


def _add(runner: CliRunner, db_path: Path, tmp_path: Path, text: str, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    ok(runner, db_path, "workflow", "add", str(path))


def _validate(runner: CliRunner, path: Path) -> Result:
    """``onboarding workflow validate FILE`` (it reads the file alone, no database)."""
    import cli

    return runner.invoke(cli.cli, ["workflow", "validate", str(path)])


@pytest.fixture
def vendor_db(db_path: Path, runner: CliRunner, tmp_path: Path) -> Path:
    _add(runner, db_path, tmp_path, VENDOR_DEF, "vendor-certification")
    _add(runner, db_path, tmp_path, NAMED_DEF, "agency-project")
    return db_path


def _row(db_path: Path, tid: int) -> sqlite3.Row:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        row: sqlite3.Row = conn.execute("SELECT * FROM tracks WHERE id = ?", [tid]).fetchone()
        return row
    finally:
        conn.close()


def test_declared_subjects_vendor_track_has_no_index_and_no_municipality(
    runner: CliRunner, vendor_db: Path
) -> None:
    """``--vendor KMD`` starts a vendor-only track: no index, no municipality, no BoB."""
    tid = int(ok(runner, vendor_db, "track", "start", "vendor-certification", "--vendor", "KMD",
                 "--quiet").stdout)
    row = _row(vendor_db, tid)
    assert row["index_set"] is None and row["municipality_code"] is None
    assert row["system_id"] is None and row["bob"] == 0 and row["vendor_id"] is not None
    info = ok_json(runner, vendor_db, "track", "show", str(tid))
    assert "index" not in info["subject"] and info["subject"]["vendor"]["name"] == "KMD"
    assert info["subject_text"] == "KMD"
    listed = ok_json(runner, vendor_db, "track", "list", "--definition", "vendor-certification")
    assert [t["subject"] for t in listed] == ["KMD"]
    shown = ok(runner, vendor_db, "track", "show", str(tid)).stdout
    assert "subject   KMD" in shown


def test_declared_subjects_key_refuses_a_second_open_track(
    runner: CliRunner, vendor_db: Path
) -> None:
    """A second open track for the same vendor is refused (the subject's key), data unchanged."""
    ok(runner, vendor_db, "track", "start", "vendor-certification", "--vendor", "KMD")
    before = snapshot(vendor_db)[1]
    again = run(runner, vendor_db, "track", "start", "vendor-certification", "--vendor", "kmd")
    assert again.exit_code == 2 and "already has an open vendor-certification track" in again.stderr
    assert snapshot(vendor_db)[1] == before
    ok(runner, vendor_db, "track", "start", "vendor-certification", "--vendor", "Netcompany")


def test_declared_subjects_refuse_an_option_the_subject_does_not_name(
    runner: CliRunner, vendor_db: Path
) -> None:
    """``--municipality`` (or ``--index``, ``--bob``) on a vendor track is refused, naming its
    options; a missing ``--vendor`` is named too."""
    for extra in (["--municipality", "751"], ["--index", "sd"], ["--bob"]):
        bad = run(runner, vendor_db, "track", "start", "vendor-certification", "--vendor", "KMD",
                  *extra)
        assert bad.exit_code == 2, bad.output
        assert f"{extra[0]} does not apply to vendor-certification" in bad.stderr
        assert "its subject takes --vendor" in bad.stderr
        assert "Traceback" not in bad.output
    missing = run(runner, vendor_db, "track", "start", "vendor-certification")
    assert missing.exit_code == 2 and "give --vendor" in missing.stderr


def test_declared_subjects_free_text_key(runner: CliRunner, vendor_db: Path) -> None:
    """A free-text subject: ``--name`` starts it, the same name (any case, spacing) is the same
    subject, and options of other kinds are refused."""
    tid = int(ok(runner, vendor_db, "track", "start", "agency-project", "--name",
                 "Næste generation  Digital Post", "--quiet").stdout)
    row = _row(vendor_db, tid)
    assert row["subject_name"] == "Næste generation Digital Post"
    assert row["index_set"] is None and row["municipality_code"] is None
    info = ok_json(runner, vendor_db, "track", "show", str(tid))
    assert info["subject_text"] == "Næste generation Digital Post"
    again = run(runner, vendor_db, "track", "start", "agency-project", "--name",
                "næste generation digital post")
    assert again.exit_code == 2 and "already has an open agency-project track" in again.stderr
    bad = run(runner, vendor_db, "track", "start", "agency-project", "--name", "MitID Erhverv",
              "--vendor", "KMD")
    assert bad.exit_code == 2 and "--vendor does not apply" in bad.stderr
    assert "its subject takes --name" in bad.stderr
    blank = run(runner, vendor_db, "track", "start", "agency-project", "--name", "  ")
    assert blank.exit_code == 2 and "--name" in blank.stderr
    ok(runner, vendor_db, "track", "start", "agency-project", "--name", "MitID Erhverv")


def test_declared_subjects_in_workflow_show_json(runner: CliRunner, vendor_db: Path) -> None:
    """``workflow show --json`` carries the subject as written and the parts, key and options."""
    data = ok_json(runner, vendor_db, "workflow", "show", "vendor-certification")
    assert data["subject"] == {"of": ["vendor"], "key": ["vendor"]}
    assert data["subject_declaration"] == {
        "of": ["vendor"], "key": ["vendor"], "options": ["--vendor"], "alias": None,
    }
    shipped = ok_json(runner, vendor_db, "workflow", "show", "connection")
    assert shipped["subject"] == "municipality-system"
    assert shipped["subject_declaration"]["key"] == ["municipality", "system", "index_set"]
    text = ok(runner, vendor_db, "workflow", "show", "vendor-certification").stdout
    assert "--vendor" in text


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("{of: [vendor, planet]}", "subject.of[1]: unknown kind 'planet'"),
        ("{of: [vendor], key: [municipality]}", "subject.key[0]: 'municipality' is not one of"),
        ("{of: []}", "subject.of: "),
        ("{of: [vendor], colour: red}", "subject.colour: unknown key"),
        ("{of: [vendor, vendor]}", "subject.of[1]: 'vendor' is listed twice"),
        ("{of: [vendor, bob]}", "subject.of[1]: bob"),
        ("{of: [system, index, index_set]}", "subject.of[2]: index (one) and index_set"),
        ("{of: [system, index_set, bob], key: [bob]}", "subject.key[0]: 'bob' is not one of"),
        ("planet", "subject: unknown subject 'planet': must be one of system,"),
    ],
)
def test_declared_subjects_invalid_declaration_fails_validate(
    runner: CliRunner, tmp_path: Path, subject: str, message: str
) -> None:
    """An invalid subject declaration fails ``workflow validate`` with its path, exit 2."""
    path = tmp_path / "bad.yaml"
    path.write_text(VENDOR_DEF.replace("{of: [vendor], key: [vendor]}", subject), "utf-8")
    result = _validate(runner, path)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert str(path) in result.stderr or "bad.yaml" in result.output


def test_declared_subjects_one_index_part(runner: CliRunner, db_path: Path, tmp_path: Path) -> None:
    """An ``index`` part takes one index (sd by default); an ``index_set`` part several."""
    _add(runner, db_path, tmp_path,
         VENDOR_DEF.replace("{of: [vendor], key: [vendor]}", "{of: [vendor, index]}"), "v")
    two = run(runner, db_path, "track", "start", "vendor-certification", "--vendor", "KMD",
              "--index", "sd,ydelse")
    assert two.exit_code == 2 and "one --index" in two.stderr
    tid = int(ok(runner, db_path, "track", "start", "vendor-certification", "--vendor", "KMD",
                 "--quiet").stdout)
    assert _row(db_path, tid)["index_set"] == "sd"
    assert _row(db_path, tid)["subject_key"].endswith(":sd")


def test_declared_subjects_due_rule_follows_the_parts(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A due rule may name ``wave.go_live`` when the subject has a wave part, not otherwise."""
    text = VENDOR_DEF.replace(
        "{name: applied, label: Ansøgt}",
        "{name: applied, label: Ansøgt, due: {date: wave.go_live}}",
    )
    path = tmp_path / "w.yaml"
    path.write_text(text, "utf-8")
    bad = _validate(runner, path)
    assert bad.exit_code == 2 and "wave.go_live" in bad.stderr
    path.write_text(text.replace("{of: [vendor], key: [vendor]}",
                                 "{of: [vendor, wave], key: [vendor]}"), "utf-8")
    ok(runner, db_path, "workflow", "add", str(path))
    tid = int(ok(runner, db_path, "track", "start", "vendor-certification", "--vendor", "KMD",
                 "--wave", "B2", "--quiet").stdout)
    info = ok_json(runner, db_path, "track", "show", str(tid))
    assert info["due"] and info["subject_text"] == "KMD / bølge B2"


def test_declared_subjects_track_start_help_says_where_options_come_from(
    runner: CliRunner,
) -> None:
    """``track start --help`` lists the subject options and how to find a definition's subject."""
    import cli

    text = " ".join(runner.invoke(cli.cli, ["track", "start", "--help"]).stdout.split())
    assert "--vendor" in text and "--name" in text
    assert "onboarding workflow show NAME" in text


def _downgrade_tracks(db_path: Path) -> None:
    """Turn a current database back into schema 6's shape: tracks without vendor_id and
    subject_name, 007 not recorded (what the previous release wrote)."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("DROP INDEX tracks_vendor")
        conn.execute("ALTER TABLE tracks DROP COLUMN vendor_id")
        conn.execute("ALTER TABLE tracks DROP COLUMN subject_name")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = '007_track_subjects'")
        conn.execute("PRAGMA user_version = 6")
        conn.commit()
    finally:
        conn.close()


def test_declared_subjects_migration_upgrades_a_schema_6_database(
    runner: CliRunner, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database written before 007 upgrades in place with ``onboarding init``: its tracks,
    history and hash chain are intact, and a vendor track can start afterwards."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-06-01T12:00:00+02:00")
    tid = int(ok(runner, db_path, "track", "start", "connection", "--municipality", "751",
                 "--system", "Momentum", "--bob", "--quiet").stdout)
    old = ok_json(runner, db_path, "track", "history", str(tid))
    _downgrade_tracks(db_path)
    conn = sqlite3.connect(db_path)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(tracks)")}
    conn.close()
    assert "vendor_id" not in columns
    refused = run(runner, db_path, "track", "list")
    assert refused.exit_code == 2 and "onboarding init" in refused.stderr

    assert "(1 migration(s) applied)" in ok(runner, db_path, "init").stdout
    conn = sqlite3.connect(db_path)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(tracks)")}
    conn.close()
    assert {"vendor_id", "subject_name"} <= columns
    info = ok_json(runner, db_path, "track", "show", str(tid))
    assert info["subject"]["index"] == ["sd"] and info["subject"]["bob"] is True
    assert "vendor" not in info["subject"] and "name" not in info["subject"]
    assert ok_json(runner, db_path, "track", "history", str(tid)) == old
    ok(runner, db_path, "audit", "verify")
    _add(runner, db_path, tmp_path, VENDOR_DEF, "vendor-certification")
    ok(runner, db_path, "track", "start", "vendor-certification", "--vendor", "KMD")
    again = run(runner, db_path, "track", "start", "connection", "--municipality", "751",
                "--system", "Momentum")
    assert again.exit_code == 2 and "already has an open connection track" in again.stderr


def test_declared_subjects_vendor_filter_and_report(runner: CliRunner, vendor_db: Path) -> None:
    """``--vendor`` selects a vendor's own tracks, and ``report buckets --by vendor`` counts them
    under the vendor's name."""
    ok(runner, vendor_db, "track", "start", "vendor-certification", "--vendor", "KMD")
    ok(runner, vendor_db, "track", "start", "vendor-certification", "--vendor", "Netcompany")
    listed = ok_json(runner, vendor_db, "track", "list", "--vendor", "KMD")
    assert [t["subject"] for t in listed] == ["KMD"]
    report = ok_json(runner, vendor_db, "report", "buckets", "vendor-certification",
                     "--by", "vendor")
    assert [r["label"] for r in report["rows"]] == ["KMD", "Netcompany"]


@pytest.mark.usefixtures("no_mail_env")
def test_declared_subjects_mail_names_a_vendor_subject(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A vendor-only track's mail names the vendor in ``subject_label`` (a free-text name too)."""
    from tests.test_definition_templates import DEFINITION, TEMPLATES, bodies, write_definition

    text = DEFINITION.replace("subject: system", "subject: {of: [vendor, name], key: [vendor]}")
    files = {k: v.replace("system.label", "subject_label") for k, v in TEMPLATES.items()}
    ok(runner, db_path, "workflow", "add",
       str(write_definition(tmp_path / "def", files, text=text)))
    outbox = db_path.parent / "onboarding-outbox"
    ok(runner, db_path, "track", "start", "certification", "--vendor", "KMD", "--name",
       "Testrunde 1", "--at", "2026-03-02T09:00")
    ok(runner, db_path, "reminders", "send-due", "--at", "2026-03-02T09:00")
    [eml] = list(outbox.glob("*.eml"))
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    subject, _, _ = bodies(msg)
    assert subject == "Velkommen til certificeringen: KMD · Testrunde 1"


VENDOR_MAIL_DEF = """\
name: vendor-onboarding
version: 1
title: Leverandøronboarding
subject: {of: [vendor], key: [vendor]}
initial: documents
states:
  - name: documents
    label: Send dokumentation
    role: vendor
    notifications:
      - {name: welcome, kind: notice, when: on_entry, to: vendor, template: notice}
  - {name: accepted, label: Godkendt, final: true}
transitions:
  - {trigger: submit, source: documents, dest: accepted, roles: [vendor]}
"""


def test_declared_subjects_vendor_track_reaches_its_vendor(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A vendor-only track belongs to its vendor: a vendor-scoped actor of that vendor may act
    on it (another vendor's may not), and mail to the vendor role reaches its contacts."""
    _add(runner, db_path, tmp_path, VENDOR_MAIL_DEF, "vendor-onboarding")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "role,name,email,municipality,vendor\nvendor,Vera Vendor,vera@kmd.example,,KMD\n",
        encoding="utf-8",
    )
    ok(runner, db_path, "registry", "import", "contacts", str(contacts))
    ok(runner, db_path, "actor", "add", "kombit")
    ok(runner, db_path, "actor", "grant", "kombit", "coordinator", actor="kombit")
    for name, vendor in (("kmd", "KMD"), ("other", "Netcompany")):
        ok(runner, db_path, "actor", "add", name, actor="kombit")
        ok(runner, db_path, "actor", "grant", name, "vendor", "--vendor", vendor, actor="kombit")
    tid = ok(runner, db_path, "track", "start", "vendor-onboarding", "--vendor", "KMD",
             "--quiet", actor="kombit").stdout.strip()
    refused = run(runner, db_path, "track", "advance", tid, "submit", "--role", "vendor",
                  actor="other")
    assert refused.exit_code == 2, refused.output
    ok(runner, db_path, "reminders", "send-due", actor="kombit")
    # permissions are on here: read as the coordinator (a named reader is scoped, issue 13)
    sent = ok_json(runner, db_path, "reminders", "list", "--sent", actor="kombit")
    assert [r["to"] for r in sent] == [["vera@kmd.example"]]
    ok(runner, db_path, "track", "advance", tid, "submit", "--role", "vendor", actor="kmd")
