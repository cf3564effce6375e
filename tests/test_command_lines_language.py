"""The lines commands print themselves (not --json, not data files), in the CLI's language:
init, actor, backup/restore, audit, mail, reminders, report; roles by their labels and a
cancelling trigger by its step's label in Danish, never by key. Real CLI on a real database;
Danish with ONBOARDING_LANG=da, and with en the English as it has always been."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import cli
from onboarding import definitions, engine, i18n, outbox
from onboarding.db import open_existing
from tests.notify_support import SAPA_NOTICE_AT, act, connection_to_sapa, make_ready, t


def _cli(db: Path, lang: str, *args: str, code: int = 0) -> Result:
    """``onboarding ARGS --db DB`` in ``lang``, as a process new to the language."""
    i18n.choose(None)
    result = CliRunner().invoke(cli.cli, [*args, "--db", str(db)], env={"ONBOARDING_LANG": lang})
    assert result.exit_code == code, result.output
    return result


def _start_in_koege(db_path: Path) -> None:
    """One connection track (Køge, Momentum), started 1 June 2021."""
    db = open_existing(db_path)
    try:
        engine.start(
            db,
            "connection",
            engine.Subject(municipality="Køge", system="Momentum"),
            act("2021-06-01T09:00"),
        )
    finally:
        db.close()


def test_init_lines_in_the_cli_language(tmp_path: Path) -> None:
    """'init' says schema, what it seeded and the audit key in Danish ("indlæst: 98
    kommuner, ..."), and in English the lines it always printed."""
    danish = _cli(tmp_path / "da.db", "da", "init").stdout
    assert re.search(r"da\.db: skemaversion \d+ \(\d+ migrering\(er\) udført\)\n", danish)
    assert (
        "indlæst: 98 kommuner, 8 leverandører, 11 systemer, 2 indekser, 2 KLIK-opgaver, "
        "6 bølger\n" in danish
    )
    assert "arbejdsgange: connection v1, " in danish
    assert "revisionsnøglen er oprettet: " in danish and "fingeraftryk SHA256:" in danish
    again = _cli(tmp_path / "da.db", "da", "init").stdout
    assert re.search(r"da\.db: skemaversion \d+, allerede den nyeste\n", again)
    english = _cli(tmp_path / "en.db", "en", "init").stdout
    assert re.search(r"en\.db: schema version \d+ \(\d+ migration\(s\) applied\)\n", english)
    assert (
        "seeded: 98 municipalities, 8 vendors, 11 systems, 2 indices, 2 KLIK tasks, "
        "6 waves\n" in english
    )
    assert "workflows: connection v1, " in english
    assert "audit key created: " in english and "back it up apart from the database" in english


def test_actor_lines_and_roles_by_their_labels(db_path: Path) -> None:
    """'actor add/grant/list/portfolio' in Danish, the roles column by the roles' labels with
    Danish scope words ("KOMBIT-koordinator for alle", "... i Aarhus", "... hos leverandøren
    KMD"), no role key; in English the keys as before ("coordinator for all")."""
    da = _cli(db_path, "da", "actor", "list").stdout
    assert "ingen aktører: databasen er åben (alle må handle i alle roller)" in da
    added = _cli(db_path, "da", "actor", "add", "kombit").stdout
    assert added.startswith("aktøren kombit er tilføjet\nrettighedskontrollen er nu slået til")
    by = ("--actor", "kombit")
    granted = _cli(db_path, "da", "actor", "grant", "kombit", "coordinator", *by).stdout
    assert granted == "kombit: har fået rollen KOMBIT-koordinator for alle\n"
    _cli(db_path, "da", "actor", "add", "aarhus", *by)
    town = ("--municipality", "Aarhus")
    granted = _cli(db_path, "da", "actor", "grant", "aarhus", "municipality-pl", *town, *by)
    assert granted.stdout == "aarhus: har fået rollen kommunens BOB/SAPA-projektleder i Aarhus\n"
    _cli(db_path, "da", "actor", "grant", "aarhus", "vendor", "--vendor", "KMD", *by)
    listed = _cli(db_path, "da", "actor", "list").stdout
    assert "kommunens BOB/SAPA-projektleder i Aarhus; leverandør hos leverandøren KMD" in listed
    assert "KOMBIT-koordinator for alle" in listed
    assert not re.search(r"\b(coordinator|municipality-pl|vendor)\b", listed)
    assert "roller" in listed.splitlines()[0]
    assert _cli(db_path, "da", "actor", "portfolio").stdout == "porteføljen: privat\n"
    english = _cli(db_path, "en", "actor", "list").stdout
    assert "municipality-pl for Aarhus; vendor for vendor KMD" in english
    assert "coordinator for all" in english
    revoked = _cli(db_path, "en", "actor", "revoke", "aarhus", "vendor", "--vendor", "KMD", *by)
    assert revoked.stdout == "aarhus: revoked vendor for vendor KMD\n"
    assert _cli(db_path, "en", "actor", "portfolio").stdout == "portfolio: private\n"


def test_backup_and_restore_lines_in_the_cli_language(db_path: Path, tmp_path: Path) -> None:
    """'backup' and 'restore' report in Danish ("sikkerhedskopieret til ...", "databasen fra
    før gendannelsen er gemt som ..."), and in English as before."""
    copy = tmp_path / "copy.db"
    danish = _cli(db_path, "da", "backup", str(copy)).stdout
    assert re.fullmatch(
        r"sikkerhedskopieret til \S+copy\.db: 0 spor, 0 historikrækker \(\d+ byte\)\n", danish
    )
    restored = _cli(db_path, "da", "restore", str(copy)).stdout
    assert re.match(r"gendannet \S+copy\.db: 0 spor, 0 historikrækker\n", restored)
    assert "databasen fra før gendannelsen er gemt som " in restored
    assert "revisionssporet er intakt" in restored  # the audit line in Danish too
    english = _cli(db_path, "en", "backup", str(tmp_path / "two.db")).stdout
    assert re.fullmatch(
        r"backed up to \S+two\.db: 0 tracks, 0 history rows \(\d+ bytes\)\n", english
    )
    restored = _cli(db_path, "en", "restore", str(copy)).stdout
    assert "the database before the restore is kept as " in restored
    assert "audit trail intact" in restored


def test_audit_export_and_anchor_lines_in_the_cli_language(db_path: Path, tmp_path: Path) -> None:
    """'audit export -o' and 'audit anchor --mail' (no SMTP server: an .eml file) say what
    they did in Danish ("skrev 1 historikrækker til ...", "anker til ...: skrevet til ...
    (ingen SMTP-server sat op)"); English as before."""
    _start_in_koege(db_path)
    out = tmp_path / "trail.jsonl"
    danish = _cli(db_path, "da", "audit", "export", "-o", str(out)).stderr
    assert danish == f"skrev 1 historikrækker til {out}\n"
    anchor = _cli(db_path, "da", "audit", "anchor", "--mail", "revisor@example.dk").stderr
    assert re.search(
        r"anker til revisor@example\.dk: skrevet til \S+ \(ingen SMTP-server sat "
        r"op\)\n",
        anchor,
    )
    english = _cli(db_path, "en", "audit", "export", "-o", str(out)).stderr
    assert english == f"wrote 1 history rows to {out}\n"
    anchor = _cli(db_path, "en", "audit", "anchor", "--mail", "revisor@example.dk").stderr
    assert re.search(
        r"anchor for revisor@example\.dk: written to \S+ \(no SMTP server "
        r"configured\)\n",
        anchor,
    )


def test_mail_show_and_configure_lines_in_the_cli_language(db_path: Path) -> None:
    """'mail show' heads its settings, names their sources and the transport in Danish
    ("Mailindstillinger for ...", "[standard]", "ingen SMTP sat op ..."); 'mail configure'
    says what it stored; English as before."""
    danish = _cli(db_path, "da", "mail", "show").stdout
    assert danish.startswith(f"Mailindstillinger for {db_path} (konfigurationsfil: ingen)\n")
    assert re.search(r"smtp\.password +ikke sat +\[standard\]", danish)
    assert re.search(r"mail\.digest +fra +\[standard\]", danish)
    assert "ingen SMTP sat op: beskeder skrives som .eml-filer i " in danish
    stored = _cli(db_path, "da", "mail", "configure", "--from", "KOMBIT <a@example.dk>").stdout
    assert stored == "mail.from = KOMBIT <a@example.dk> (gemt)\n"
    assert re.search(
        r"mail\.from +KOMBIT <a@example\.dk> +\[databasen\]",
        _cli(db_path, "da", "mail", "show").stdout,
    )
    english = _cli(db_path, "en", "mail", "show").stdout
    assert english.startswith(f"Mail settings for {db_path} (config file: none)\n")
    assert re.search(r"smtp\.password +not set +\[default\]", english)
    assert re.search(r"mail\.from +KOMBIT <a@example\.dk> +\[database\]", english)
    assert "no SMTP configured: messages are written as .eml files to " in english


def test_reminders_send_due_and_retry_lines_in_the_cli_language(db_path: Path) -> None:
    """'reminders send-due' without an SMTP server sums up its run, says where the messages
    went and what went wrong in Danish; 'reminders retry' likewise; English as before."""
    db = open_existing(db_path)
    try:
        make_ready(db)
        connection_to_sapa(db)
    finally:
        db.close()
    at = ("--at", SAPA_NOTICE_AT)
    danish = _cli(db_path, "da", "reminders", "send-due", *at, code=3)
    assert re.search(r"^#\d+ sendt til sapa@kombit\.dk: ", danish.stdout, re.M)
    assert re.search(
        r"^sendt 1, prøves igen 0, mislykket \d+, annulleret 0, afløst 0 "
        r"\(1 besked\(er\); \d+ taget, 0 forældede krav taget tilbage\)$",
        danish.stdout,
        re.M,
    )
    assert "(ingen SMTP-server sat op: beskeder skrevet til " in danish.stdout
    assert re.fullmatch(
        r"send-due: ikke alt, der skulle sendes, blev sendt: \d+ mislykket\n", danish.stderr
    )
    retried = _cli(db_path, "da", "reminders", "retry", "--failed").stdout
    assert re.fullmatch(r"\d+ mislykket notifikation\(er\) sat i kø igen\n", retried)
    english = _cli(db_path, "en", "reminders", "send-due", *at, code=3)
    assert re.search(
        r"^sent 0, retrying 0, failed \d+, cancelled 0, superseded 0 "
        r"\(0 message\(s\); \d+ claimed, 0 stale claim\(s\) taken back\)$",
        english.stdout,
        re.M,
    )
    assert re.fullmatch(r"send-due: not everything due was sent: \d+ failed\n", english.stderr)
    assert re.fullmatch(
        r"requeued \d+ failed notification\(s\)\n",
        _cli(db_path, "en", "reminders", "retry", "--failed").stdout,
    )


def test_report_wrote_line_in_the_cli_language(db_path: Path, tmp_path: Path) -> None:
    """'report rollout -o FILE' says "skrev FILE" in Danish, "wrote FILE" in English."""
    out = tmp_path / "rollout.txt"
    assert _cli(db_path, "da", "report", "rollout", "-o", str(out)).stdout == f"skrev {out}\n"
    assert _cli(db_path, "en", "report", "rollout", "-o", str(out)).stdout == f"wrote {out}\n"


def test_cancelled_reason_names_the_trigger_by_its_label(db_path: Path) -> None:
    """A notification claimed for sending when its track is cancelled is cancelled at
    handover "by 'cancel'": 'reminders list' says it in Danish by the step's label
    ("annulleret af “Tilslutning opgivet”, før den blev sendt"), never by the key, and in
    English as it was written."""
    db = open_existing(db_path)
    try:
        make_ready(db)
        tid = connection_to_sapa(db)
        lease = timedelta(minutes=15)
        now = t(SAPA_NOTICE_AT)
        # handed to a transport, then the runner dies: the cancel cannot touch the row
        handed, _ = outbox.hand_over(
            db, outbox.claim(db, now, now, "a", 100, lease), "a", now, lease
        )
        assert handed
        engine.advance(db, tid, "cancel", act("2021-08-18T08:01"), {"reason": "opgivet"})
        later = now + 2 * lease
        assert outbox.reclaim_stale(db, later, 5) == len(handed)
        again = outbox.claim(db, later, later, "b", 100, lease)
        _sent, cancelled = outbox.hand_over(db, again, "b", later, lease)
        assert any(why == "cancelled by 'cancel' before it was sent" for _r, why in cancelled)
    finally:
        db.close()
    listing = ("reminders", "list", "--cancelled", "--track", str(tid))
    danish = _cli(db_path, "da", *listing).stdout
    assert "annulleret af “Tilslutning opgivet”, før den blev sendt" in danish
    assert "'cancel'" not in danish
    english = _cli(db_path, "en", *listing).stdout
    assert "cancelled by 'cancel' before it was sent" in english


def test_audit_verify_says_what_is_broken_in_the_cli_language(db_path: Path) -> None:
    """'audit verify' on a changed history row says BROKEN and what is wrong in Danish
    ("revisionssporet er BRUDT: historikrække #1 (spor 1, løbenummer 1) er ændret, ..."),
    exit 3; in English the line it has always been, and --json keeps the English."""
    import json
    import sqlite3

    from tests.test_audit import TRIGGERS

    _start_in_koege(db_path)
    conn = sqlite3.connect(db_path)
    try:
        for name in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute("UPDATE history SET actor = 'mallory' WHERE id = 1")
        conn.commit()
    finally:
        conn.close()
    danish = _cli(db_path, "da", "audit", "verify", code=3).stdout
    assert danish == (
        "revisionssporet er BRUDT: historikrække #1 (spor 1, løbenummer 1) er ændret, efter den"
        " blev skrevet (den passer ikke med sin hash)\n"
    )
    english = _cli(db_path, "en", "audit", "verify", code=3).stdout
    assert english == (
        "audit trail BROKEN: history row #1 (track 1, seq 1) was changed after it was written"
        " (it does not match its hash)\n"
    )
    data = json.loads(_cli(db_path, "da", "audit", "verify", "--json", code=3).stdout)
    assert data["problem"] == english.removeprefix("audit trail BROKEN: ").rstrip("\n")


def test_nobody_to_send_to_said_with_the_role_by_its_label(db_path: Path) -> None:
    """A reminder whose role has no contact fails "nobody to send to": in Danish the role by
    its Danish label and the scope in Danish ("ingen kontaktperson med rollen
    “SAPA-systemejer” i Køge Kommune"), in send-due and 'reminders list'; the stored English
    (JSON, logs) and the English lines are as they were written."""
    import json

    db = open_existing(db_path)
    try:
        make_ready(db)
        connection_to_sapa(db)
    finally:
        db.close()
    sent = _cli(db_path, "da", "reminders", "send-due", "--at", SAPA_NOTICE_AT, code=3).stdout
    danish = (
        "fejlet: ingen at sende til: ingen kontaktperson med rollen “SAPA-systemejer” i Køge "
        "Kommune; tilføj en med 'onboarding registry import contacts FILE' (en CSV-fil med "
        "kolonnerne role,name,email,municipality,vendor, fx 'sapa-owner,NAME,EMAIL,Køge,'), og "
        "kør så 'onboarding reminders retry "
    )
    assert danish in sent and "sapa-owner (" not in sent
    listed = _cli(db_path, "da", "reminders", "list", "--failed").stdout
    assert danish.removeprefix("fejlet: ") in listed
    english = (
        "nobody to send to: no contact with role sapa-owner (SAPA-systemejer) for Køge "
        "Municipality; add one with 'onboarding registry import contacts FILE' (a CSV file with "
        "the columns role,name,email,municipality,vendor, e.g. 'sapa-owner,NAME,EMAIL,Køge,'), "
        "then 'onboarding reminders retry "
    )
    assert english in _cli(db_path, "en", "reminders", "list", "--failed").stdout
    rows = json.loads(_cli(db_path, "da", "reminders", "list", "--failed", "--json").stdout)
    assert [r["error"][: len(english)] for r in rows] == [english]


def test_notifications_page_says_nobody_to_send_to_in_the_readers_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notifications page lists a failed row's "nobody to send to" in Danish with the
    roles by their labels, and in English (chosen on the page) as it was stored."""
    import sqlite3
    from html import unescape

    from starlette.testclient import TestClient

    from onboarding.web import create_app
    from tests.web_support import DEMO_NOW, csrf_of, fresh_db, login

    monkeypatch.setenv("ONBOARDING_NOW", DEMO_NOW)
    db = fresh_db(tmp_path)
    conn = sqlite3.connect(db)
    try:  # the contacts were removed: the rows due now have nobody to go to
        conn.execute("DELETE FROM contacts")
        conn.commit()
    finally:
        conn.close()
    _cli(db, "en", "reminders", "send-due", code=3)
    with TestClient(create_app(db)) as client:
        login(client)
        danish = unescape(client.get("/notifications").text)
        assert (
            "ingen at sende til: ingen kontaktperson med rollen “leverandør” hos "
            "leverandøren Fujitsu; tilføj en med" in danish
        )
        assert "rollen “KOMBIT-koordinator” for alle kommuner eller Høje-Taastrup Kommune" in danish
        assert "no contact with role" not in danish
        token = csrf_of(client.get("/grid").text)
        client.post("/language", data={"csrf": token, "lang": "en", "next": "/grid"})
        english = unescape(client.get("/notifications").text)
        assert (
            "nobody to send to: no contact with role vendor (leverandør) for vendor "
            "Fujitsu; add one with" in english
        )


def test_workflow_lines_in_the_cli_language(db_path: Path) -> None:
    """'workflow validate' and 'workflow add' say their outcome in Danish ("gyldig",
    "allerede registreret"), and in English as before."""
    shipped = str(Path(cli.__file__).parent / "workflows" / "definitions" / "connection.yaml")
    for lang, said in (("da", "gyldig"), ("en", "valid")):
        i18n.choose(None)
        found = CliRunner().invoke(
            cli.cli, ["workflow", "validate", shipped], env={"ONBOARDING_LANG": lang}
        )
        assert (found.exit_code, found.stdout) == (0, f"{shipped}: {said}\n"), found.output
    assert _cli(db_path, "da", "workflow", "add", shipped).stdout == (
        "connection v1: allerede registreret\n"
    )
    assert _cli(db_path, "en", "workflow", "add", shipped).stdout == (
        "connection v1: already registered\n"
    )


def test_serve_line_in_the_cli_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'serve' says what it serves where in Danish ("Viser DB på http://...  (Ctrl+C
    stopper)"), and in English as before (the real program; its port is taken, so it stops
    at once)."""
    from tests.test_web_serve import _first_output
    from tests.web_support import fresh_db

    db = fresh_db(tmp_path)
    monkeypatch.setenv("ONBOARDING_LANG", "da")
    assert re.search(
        r"Viser \S+onboarding\.db på http://127\.0\.0\.1:\d+/ \(Ctrl\+C stopper\)",
        _first_output(db),
    )
    monkeypatch.setenv("ONBOARDING_LANG", "en")
    assert re.search(
        r"Serving \S+onboarding\.db on http://127\.0\.0\.1:\d+/ \(Ctrl\+C stops\)",
        _first_output(db),
    )


def _on_a_terminal(args: list[str], lang: str, answers: list[str]) -> str:
    """``onboarding ARGS`` on a pseudo-terminal (stdin, stdout and stderr), each answer typed
    after the program has asked (a line ending in ": "); everything it wrote."""
    import os
    import pty
    import select
    import subprocess
    import sys

    program = str(Path(sys.executable).parent / "onboarding")
    env = {**os.environ, "ONBOARDING_LANG": lang}
    main, side = pty.openpty()
    proc = subprocess.Popen([program, *args], stdin=side, stdout=side, stderr=side, env=env)
    os.close(side)
    seen, pending = b"", list(answers)
    try:
        while True:
            ready, _, _ = select.select([main], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the program ended and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if pending and seen.rstrip(b" ").endswith(b":"):
                os.write(main, pending.pop(0).encode() + b"\n")
    finally:
        os.close(main)
        proc.wait(timeout=30)
    return seen.decode("utf-8", "replace").replace("\r\n", "\n")


def test_actor_password_prompt_in_the_cli_language(db_path: Path) -> None:
    """'actor set-password' on a terminal asks in Danish ("Adgangskode: ", "Gentag for at
    bekræfte: ") and says it is set; in English "Password: " as before."""
    runner = CliRunner()
    assert runner.invoke(cli.cli, ["actor", "add", "kombit", "--db", str(db_path)]).exit_code == 0
    args = ["actor", "set-password", "kombit", "--actor", "kombit", "--db", str(db_path)]
    danish = _on_a_terminal(args, "da", ["korrekt-hest-42", "korrekt-hest-42"])
    assert "Adgangskode: " in danish and "Gentag for at bekræfte: " in danish, danish
    assert "adgangskoden til kombit er sat" in danish
    english = _on_a_terminal(args, "en", ["korrekt-hest-42", "korrekt-hest-42"])
    assert "Password: " in english and "Repeat for confirmation: " in english, english
    assert "password of kombit set" in english


def test_track_advance_where_progress_label_in_the_cli_language(db_path: Path) -> None:
    """'track advance --where' on a terminal labels its progress in Danish ("flytter"), in
    English "advancing" as before."""
    for town in ("Aarhus", "Vejle"):
        _cli(
            db_path,
            "en",
            "track",
            "start",
            "--quiet",
            "connection",
            "--municipality",
            town,
            "--system",
            "KMD Momentum",
            "--at",
            "2021-06-01",
        )
    common = ["--db", str(db_path), "--at", "2021-06-02"]
    danish = _on_a_terminal(
        [
            "track",
            "advance",
            "--where",
            "definition=connection",
            "agree_date",
            "--set",
            "connection_date=2021-09-01",
            *common,
        ],
        "da",
        [],
    )
    assert "flytter" in danish and "advancing" not in danish, danish
    english = _on_a_terminal(
        [
            "track",
            "advance",
            "--where",
            "definition=connection",
            "cancel",
            "--set",
            "reason=test",
            *common,
        ],
        "en",
        [],
    )
    assert "advancing" in english, english


def test_track_history_names_steps_by_their_labels_in_danish(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'track history' says each step that happened by its label in Danish ("Startet", the
    step's label), never by its key; English keeps the key a command line types."""
    monkeypatch.setenv("ONBOARDING_NOW", "2021-03-02T10:00")
    monkeypatch.setenv("ONBOARDING_ACTOR", "tester")
    _cli(db_path, "en", "track", "start", "connection", "--municipality", "Aarhus", "--system",
         "Momentum", "--at", "2021-03-01T09:00")  # fmt: skip
    _cli(db_path, "en", "track", "advance", "1", "agree_date", "--set",
         "connection_date=2021-09-01", "--role", "municipality-pl",
         "--at", "2021-03-01T10:00")  # fmt: skip
    label = next(
        t.label for t in definitions.get(open_existing(db_path), "connection").transitions
        if t.trigger == "agree_date"
    )  # fmt: skip
    da = _cli(db_path, "da", "track", "history", "1").stdout
    assert "Startet: " in da and f"“{label}”: " in da, da
    assert "agree_date" not in da and "@start" not in da, da
    en = _cli(db_path, "en", "track", "history", "1").stdout
    assert "@start: " in en and "agree_date: " in en, en
