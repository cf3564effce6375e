"""Signed audit anchors: 'audit anchor' and 'audit verify --anchor' (issue 11).

An anchor is a statement of the chain's head signed with a key kept outside the database; it
reveals a history rewritten and rehashed by someone who can write the file, which the chain
alone cannot (docs/audit.md).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import cli
from onboarding import audit
from tests.mailserver import MailServer
from tests.support import ok, run, snapshot
from tests.test_audit import TRIGGERS, _tamper, _work

NOW = {"ONBOARDING_NOW": "2021-05-01T10:00"}


def _anchor(runner: CliRunner, db_path: Path, *extra: str) -> str:
    result = runner.invoke(cli.cli, ["audit", "anchor", "--db", str(db_path), *extra], env=NOW)
    assert result.exit_code == 0, result.output
    return result.stdout


def _verify(runner: CliRunner, db_path: Path, *args: str) -> tuple[int, str, str]:
    result = run(runner, db_path, "audit", "verify", *args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _rewrite(db_path: Path, *statements: str) -> None:
    """A forger with write access: triggers dropped, rows edited, the whole chain and its head
    recomputed (``audit.rehash_all``), so the chain is consistent on its own."""
    _tamper(db_path, *statements)
    conn = sqlite3.connect(db_path)
    try:
        last_id, last_hash, rows = audit.rehash_all(conn)
        conn.execute(
            "UPDATE audit_head SET last_id = ?, last_hash = ?, rows = ? WHERE id = 1",
            [last_id, last_hash, rows],
        )
        conn.commit()
    finally:
        conn.close()


def _advance(runner: CliRunner, db_path: Path) -> None:
    ok(runner, db_path, "track", "advance", "3", "approve_agreements", "--role",
       "agreement-admin", "--at", "2021-04-05")


def test_audit_anchor_key_is_made_by_init_0600_and_outside_the_database(
    runner: CliRunner, tmp_path: Path
) -> None:
    """'init' makes <db>.audit-key (mode 0600, an Ed25519 key, named with its fingerprint);
    the database holds no trace of it; a second init keeps the same key."""
    db_path = tmp_path / "onboarding.db"
    result = runner.invoke(cli.cli, ["init", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    key_file = tmp_path / "onboarding.db.audit-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = audit.load_key(key_file)
    assert key is not None
    public = audit.public_key(key)
    assert f"audit key created: {key_file} (fingerprint {audit.fingerprint(public)})" in (
        result.stdout
    )
    pem = key_file.read_bytes()
    private_line = pem.splitlines()[1]
    data, dump = snapshot(db_path)
    for secret in (private_line, base64.b64decode(private_line)[-32:]):
        assert secret not in data and secret.decode("latin-1") not in dump
    again = runner.invoke(cli.cli, ["init", "--db", str(db_path)])
    assert again.exit_code == 0 and "audit key" not in again.stdout
    assert key_file.read_bytes() == pem
    assert sorted(p.name for p in tmp_path.iterdir() if "audit-key" in p.name) == [
        "onboarding.db.audit-key"
    ]


def test_audit_anchor_key_location_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$ONBOARDING_AUDIT_KEY puts the key elsewhere; nothing is written next to the database."""
    elsewhere = tmp_path / "keys" / "audit.pem"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("ONBOARDING_AUDIT_KEY", str(elsewhere))
    db_path = tmp_path / "db" / "onboarding.db"
    db_path.parent.mkdir()
    assert runner.invoke(cli.cli, ["init", "--db", str(db_path)]).exit_code == 0
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o600
    assert not any("audit-key" in p.name for p in db_path.parent.iterdir())


def test_audit_anchor_reveals_a_recomputed_chain(runner: CliRunner, db_path: Path) -> None:
    """An anchor taken, then a history row edited with the triggers dropped and the whole chain
    recomputed: plain verify passes, 'verify --anchor' exits 3 naming the anchored row."""
    _work(runner, db_path)
    statement = _anchor(runner, db_path)
    assert "row: 9\n" in statement
    _advance(runner, db_path)
    assert _verify(runner, db_path, "--anchor", statement)[0] == 0
    _rewrite(db_path, "UPDATE history SET actor = 'mallory' WHERE id = 2")
    code, out, _ = _verify(runner, db_path)
    assert code == 0 and out.startswith("audit trail intact: 10 history rows")
    code, out, _ = _verify(runner, db_path, "--anchor", statement)
    assert code == 3, out
    assert out.startswith("audit trail BROKEN: history row #9 no longer has the hash anchored"
                          " 2021-05-01 10:00")
    assert "was changed and the chain recomputed" in out
    data = json.loads(_verify(runner, db_path, "--anchor", statement, "--json")[1])
    assert (data["ok"], data["first_bad"]) == (False, 9)


def test_audit_anchor_an_earlier_anchor_narrows_the_rewrite(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """With anchors of rows 5 and 9 in one file, a rewrite of row 7 is placed after #5 (still
    held) and up to #9."""
    _work(runner, db_path)
    anchors = tmp_path / "anchors.txt"
    first = _anchor_of_row(runner, db_path, tmp_path, 5)
    anchors.write_text(first + _anchor(runner, db_path), encoding="utf-8")
    assert _verify(runner, db_path, "--anchor", str(anchors))[0] == 0
    _rewrite(db_path, "UPDATE history SET note = 'rewritten' WHERE id = 7")
    code, out, _ = _verify(runner, db_path, "--anchor", str(anchors))
    assert code == 3
    assert "history row #9 no longer has the hash anchored" in out
    assert "a row after #5 (whose anchor of 2021-05-01 10:00 still holds) up to #9" in out


def _anchor_of_row(runner: CliRunner, db_path: Path, tmp_path: Path, row: int) -> str:
    """An anchor of the head as it was at ``row``: taken on a backup cut back to that row
    (same database token, same key)."""
    copy = tmp_path / f"at-{row}.db"
    ok(runner, db_path, "backup", str(copy))
    _tamper(copy, f"DELETE FROM history WHERE id > {row}", "DELETE FROM tracks WHERE id > 2")
    conn = sqlite3.connect(copy)
    try:
        head = conn.execute("SELECT hash FROM history WHERE id = ?", [row]).fetchone()[0]
        conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ?, rows = ?",
                     [row, head, row])
        versions = conn.execute("SELECT track_id, count(*) FROM history GROUP BY track_id")
        for tid, n in versions.fetchall():
            conn.execute("UPDATE tracks SET version = ? WHERE id = ?", [n, tid])
        conn.commit()
    finally:
        conn.close()
    key = db_path.with_name(db_path.name + ".audit-key")
    copy.with_name(copy.name + ".audit-key").write_bytes(key.read_bytes())
    os.chmod(copy.with_name(copy.name + ".audit-key"), 0o600)
    statement = _anchor(runner, copy)
    assert f"row: {row}\n" in statement
    return statement


def test_audit_anchor_sees_rows_cut_off_behind_a_rewritten_head(
    runner: CliRunner, db_path: Path
) -> None:
    """The anchored row deleted with the rows after it and the head moved back: exit 3."""
    _work(runner, db_path)
    statement = _anchor(runner, db_path)
    _tamper(db_path, "DELETE FROM history WHERE id = 9",  # track 2's 'track set'
            "UPDATE tracks SET version = 2 WHERE id = 2")
    _rewrite(db_path)
    assert _verify(runner, db_path)[0] == 0
    code, out, _ = _verify(runner, db_path, "--anchor", statement)
    assert code == 3
    assert "history row #9, anchored 2021-05-01 10:00" in out and "is missing" in out


def test_audit_anchor_holds_on_an_untouched_growing_database(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Anchors taken as the history grows all hold: from a file, from text, from stdin."""
    _work(runner, db_path)
    anchors = tmp_path / "anchors.txt"
    anchors.write_text(_anchor(runner, db_path), encoding="utf-8")
    _advance(runner, db_path)
    with anchors.open("a", encoding="utf-8") as f:
        f.write("\nsome words between anchors\n" + _anchor(runner, db_path))
    ok(runner, db_path, "track", "set", "2", "connection_date=2027-05-01", "--at", "2021-04-06")
    code, out, _ = _verify(runner, db_path, "--anchor", str(anchors))
    assert code == 0, out
    assert out.startswith("audit trail intact: 11 history rows, head #11 ")
    assert "extends 2 anchors, the latest of #10 taken 2021-05-01 10:00 (key SHA256:" in out
    text = anchors.read_text(encoding="utf-8")
    assert _verify(runner, db_path, "--anchor", text)[0] == 0
    quoted = "\n".join("> " + line for line in text.splitlines())  # as quoted in a reply
    result = runner.invoke(cli.cli, ["audit", "verify", "--anchor", "-", "--db", str(db_path)],
                           input=quoted)
    assert result.exit_code == 0, result.output
    head = json.loads(_verify(runner, db_path, "--json")[1])["head_hash"]
    assert _verify(runner, db_path, "--anchor", head)[0] == 0  # a bare head hash still works


def _forged_with_another_key(statement: str) -> str:
    anchor = audit.parse_anchors(statement, "test")[0]
    other = Ed25519PrivateKey.generate()
    unsigned = audit.Anchor(anchor.database, anchor.row, anchor.hash, anchor.time,
                            audit.public_key(other))
    return audit.Anchor(**{**unsigned.__dict__, "signature": other.sign(unsigned.message())}
                        ).text()


def _edit(statement: str, name: str, value: str) -> str:
    return "\n".join(f"{name}: {value}" if line.startswith(f"{name}:") else line
                     for line in statement.splitlines())


GARBLED = {
    # name: (make the --anchor value from a good statement, words in the one-line error)
    "row changed": (lambda s: _edit(s, "row", "8"), "the signature does not match"),
    "hash changed": (lambda s: _edit(s, "hash", "0" * 64), "the signature does not match"),
    "signature garbled": (lambda s: _edit(s, "signature", "abc!"), "signature is not 64 bytes"),
    "key garbled": (lambda s: _edit(s, "key", "ed25519:AAAA"), "key is not 32 bytes"),
    "cut short": (lambda s: "\n".join(s.splitlines()[:4]), "has no end line"),
    "field missing": (lambda s: s.replace("time: ", "tiem: "), "unexpected line"),
    "not a number": (lambda s: _edit(s, "row", "nine"), "is not a history row number"),
    "another key": (_forged_with_another_key, "not by this database's audit key"),
    "another database": (lambda s: _edit(s, "database", "abcdef123456"),
                         "the signature does not match"),
    "nonsense": (lambda s: "hello", "not a file, an anchor statement"),
}


@pytest.mark.parametrize("case", list(GARBLED), ids=list(GARBLED))
def test_audit_anchor_forged_or_garbled_exits_2(
    runner: CliRunner, db_path: Path, case: str
) -> None:
    """A malformed, changed or wrongly signed anchor: one line on stderr, exit 2, no
    traceback, the database unchanged."""
    _work(runner, db_path)
    statement = _anchor(runner, db_path)
    make, words = GARBLED[case]
    before = snapshot(db_path)[1]
    code, out, err = _verify(runner, db_path, "--anchor", make(statement))
    assert code == 2, (out, err)
    assert out == "" and len(err.strip().splitlines()) == 1 and words in err, err
    assert "Traceback" not in err
    assert snapshot(db_path)[1] == before


def test_audit_anchor_of_another_database_exits_2(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A correctly signed anchor of another database (its own token) is refused: exit 2."""
    other = tmp_path / "other.db"
    assert runner.invoke(cli.cli, ["init", "--db", str(other)]).exit_code == 0
    _work(runner, other)
    other.with_name("other.db.audit-key").write_bytes(
        db_path.with_name(db_path.name + ".audit-key").read_bytes()
    )
    _work(runner, db_path)
    code, _, err = _verify(runner, db_path, "--anchor", _anchor(runner, other))
    assert code == 2 and "is of database" in err and "not of this one" in err


def test_audit_anchor_trusted_fingerprint_and_a_verifier_without_the_key(
    runner: CliRunner, db_path: Path
) -> None:
    """--key FINGERPRINT accepts only that key's anchors; without a key file, the signature is
    checked against the key the anchor carries and verify says to compare fingerprints."""
    _work(runner, db_path)
    statement = _anchor(runner, db_path)
    fp = audit.parse_anchors(statement, "test")[0].fingerprint
    assert _verify(runner, db_path, "--anchor", statement, "--key", fp)[0] == 0
    code, _, err = _verify(runner, db_path, "--anchor", statement, "--key", "SHA256:other")
    assert code == 2 and "not by the key you trust" in err
    db_path.with_name(db_path.name + ".audit-key").unlink()  # an auditor's copy: no key
    code, out, err = _verify(runner, db_path, "--anchor", statement)
    assert code == 0 and fp in out and "compare the fingerprint" in err
    code, _, err = _verify(runner, db_path, "--anchor", _forged_with_another_key(statement),
                           "--key", fp)
    assert code == 2 and "not by the key you trust" in err


def test_audit_anchor_refuses_a_broken_chain(runner: CliRunner, db_path: Path) -> None:
    """'audit anchor' on a tampered chain prints the problem, exits 3 and signs nothing."""
    _work(runner, db_path)
    _tamper(db_path, "UPDATE history SET note = 'x' WHERE id = 4")
    result = runner.invoke(cli.cli, ["audit", "anchor", "--db", str(db_path)], env=NOW)
    assert result.exit_code == 3
    assert result.stdout.startswith("audit trail BROKEN: history row #4")
    assert audit.BEGIN not in result.output


def test_audit_anchor_makes_a_missing_key_and_says_so(runner: CliRunner, db_path: Path) -> None:
    """A database from before anchors (no key file): 'audit anchor' makes the key (0600),
    says where on stderr, and signs with it; an empty history has nothing to anchor."""
    key_file = db_path.with_name(db_path.name + ".audit-key")
    key_file.unlink()
    result = runner.invoke(cli.cli, ["audit", "anchor", "--db", str(db_path)], env=NOW)
    assert result.exit_code == 2 and "the history is empty" in result.stderr
    _work(runner, db_path)
    result = runner.invoke(cli.cli, ["audit", "anchor", "--db", str(db_path)], env=NOW)
    assert result.exit_code == 0, result.output
    assert f"audit key created: {key_file}" in result.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _verify(runner, db_path, "--anchor", result.stdout)[0] == 0


def test_audit_anchor_mail_to_the_auditor(
    runner: CliRunner, db_path: Path, smtp_server: MailServer, no_mail_env: None
) -> None:
    """--mail sends the statement through the configured SMTP server in a plain Danish mail;
    the statement in the received mail verifies."""
    _work(runner, db_path)
    env = {**smtp_server.env(), **NOW}
    result = runner.invoke(cli.cli, ["audit", "anchor", "--mail", "revisor@kommune.test",
                                     "--db", str(db_path)], env=env)
    assert result.exit_code == 0, result.output
    assert "anchor for revisor@kommune.test: sent" in result.stderr
    [mail] = smtp_server.to("revisor@kommune.test")
    assert mail.subject.startswith("Revisionsanker for onboarding-databasen ")
    assert mail.message["From"] == "KOMBIT onboarding <onboarding@kombit.test>"
    body = mail.text().replace("\r\n", "\n")
    assert "onboarding audit verify --anchor" in body and result.stdout in body
    assert _verify(runner, db_path, "--anchor", body)[0] == 0
    bad = runner.invoke(cli.cli, ["audit", "anchor", "--mail", "not an address",
                                  "--db", str(db_path)], env=env)
    assert bad.exit_code == 2 and "is not an email address" in bad.stderr


def test_audit_anchor_mail_without_a_server_writes_an_eml(
    runner: CliRunner, db_path: Path, tmp_path: Path, no_mail_env: None
) -> None:
    """With no SMTP server configured, the mail goes to the outbox folder as an .eml file."""
    _work(runner, db_path)
    result = runner.invoke(cli.cli, ["audit", "anchor", "--mail", "revisor@kommune.test",
                                     "--db", str(db_path)], env=NOW)
    assert result.exit_code == 0, result.output
    assert "no SMTP server configured" in result.stderr
    [eml] = list(tmp_path.rglob("*audit-anchor*.eml"))
    assert audit.BEGIN in eml.read_text(encoding="utf-8")


def test_audit_anchor_triggers_are_what_a_forger_drops(db_path: Path) -> None:
    """The tamper helper drops exactly the history triggers the schema creates (so the
    rewrite tests above simulate a real forger, not a weaker one)."""
    conn = sqlite3.connect(db_path)
    try:
        names = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'history'")}
    finally:
        conn.close()
    assert names == set(TRIGGERS)
