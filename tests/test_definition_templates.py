"""A definition's own mail templates (issue 12): stored with its version by ``workflow add``,
rendered in the sandbox before the override folder and the shipped ones; the organisation and
signature come from the settings, never from the templates."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from jinja2.exceptions import SecurityError

import cli
from notifications.config import load_config
from notifications.render import OwnTemplates, Renderer
from onboarding.db import connect, current_schema_version, initialise, migrations, schema_version
from tests.support import snapshot

pytestmark = pytest.mark.usefixtures("no_mail_env")

#: A programme that is not KOMBIT's: a vendor's system is certified against a national test
#: system. Its one notification uses the definition's own template ``welcome``.
DEFINITION = """\
name: certification
version: 1
title: Certificering til Nationalt Testsystem
subject: system
initial: applied

fields:
  test_ref: {type: text, label: Testreference}

states:
  - name: applied
    label: Ansøgning modtaget
    phase: test
    role: vendor
    due: {after_entry: 10}
    notifications:
      - name: welcome
        kind: notice
        when: on_entry
        to: certificering@testcenter.example
        template: welcome
  - name: certified
    label: Certificeret
    phase: done
    final: true

transitions:
  - trigger: certify
    label: Certificeret
    source: applied
    dest: certified
    roles: [coordinator]
"""

TEMPLATES = {
    "da/welcome.subject.txt": "Velkommen til certificeringen: {{ subject_label }}\n",
    "da/welcome.txt": (
        "Kære leverandør\n\n"
        "{{ system.label }} er tilmeldt {{ track.definition_title }}.\n"
        '{% include "da/_testplan.txt" %}\n'
        "Venlig hilsen\n{{ signature }}\n"
    ),
    "da/_testplan.txt": "Testplanen følger inden {{ due|long_date }}.\n",
    "da/welcome.html": (
        '{% extends "_layout.html" %}\n'
        "{% block content %}<p>{{ system.label }} er tilmeldt certificeringen.</p>\n"
        "<p>Venlig hilsen<br>{{ signature|lines }}</p>{% endblock %}\n"
        "{% block footer %}Sendt af {{ organisation|genitive }} testværktøj.{% endblock %}\n"
    ),
    "en/welcome.subject.txt": "Welcome to the certification: {{ subject_label }}\n",
    "en/welcome.txt": (
        "Dear vendor\n\n{{ system.label }} is enrolled in the certification.\n\n"
        "Kind regards\n{{ signature }}\n"
    ),
    "en/welcome.html": (
        '{% extends "_layout.html" %}\n'
        "{% block content %}<p>{{ system.label }} is enrolled.</p>\n"
        "<p>Kind regards<br>{{ signature|lines }}</p>{% endblock %}\n"
        "{% block footer %}Sent by {{ organisation|genitive }} test tool.{% endblock %}\n"
    ),
}


def run(runner: CliRunner, db_path: Path, *args: str) -> Result:
    return runner.invoke(cli.cli, [*args, "--db", str(db_path)], env={"ONBOARDING_ACTOR": "t"})


def ok(runner: CliRunner, db_path: Path, *args: str) -> Result:
    result = run(runner, db_path, *args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def write_definition(
    folder: Path, files: dict[str, str] | None = None, text: str = DEFINITION
) -> Path:
    """``certification.yaml`` and its templates folder ``certification.templates/``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "certification.yaml"
    path.write_text(text, encoding="utf-8")
    for rel, content in (TEMPLATES if files is None else files).items():
        target = folder / "certification.templates" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return path


def start_and_send(
    runner: CliRunner, db_path: Path, at: str, system: str = "Momentum"
) -> EmailMessage:
    """Start a certification track at ``at`` and send what is due: its welcome message."""
    outbox = db_path.parent / "onboarding-outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    ok(runner, db_path, "track", "start", "certification", "--system", system,
       "--index", "sd", "--at", at)
    ok(runner, db_path, "reminders", "send-due", "--at", at)
    [eml] = set(outbox.glob("*.eml")) - before
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def bodies(msg: EmailMessage) -> tuple[str, str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(msg["Subject"]), text.get_content(), html.get_content()


def test_definition_templates_own_mail_with_configured_signature(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """Done when: a definition added from YAML and its template folder (no Python) mails its
    own template's text with the configured organisation and signature, through the CLI."""
    ok(runner, db_path, "mail", "configure", "--organisation", "Nationalt Testcenter",
       "--signature", "Nationalt Testcenter\\nTeam Certificering")
    shown = ok(runner, db_path, "mail", "show").stdout
    assert "Nationalt Testcenter\\nTeam Certificering  [database]" in shown  # one line
    added = ok(runner, db_path, "workflow", "add", str(write_definition(tmp_path / "def")))
    assert added.stdout == "certification v1: added with 7 template file(s)\n"
    subject, text, html = bodies(start_and_send(runner, db_path, "2026-03-02T09:00"))
    assert subject == "Velkommen til certificeringen: KMD Momentum"
    assert "KMD Momentum er tilmeldt Certificering til Nationalt Testsystem." in text
    assert "Testplanen følger inden 16. marts 2026." in text  # its own partial
    assert text.endswith("Venlig hilsen\nNationalt Testcenter\nTeam Certificering\n")
    assert "<p>Venlig hilsen<br>Nationalt Testcenter<br>Team Certificering</p>" in html
    assert "Sendt af Nationalt Testcenters testværktøj." in html
    assert '<html lang="da">' in html  # the shipped layout it extends


def test_definition_templates_editing_the_folder_changes_no_stored_mail(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """The templates are stored with the version: editing the folder afterwards changes
    neither a later track's mail on that version nor the database, and adding the same
    version with the edited folder is refused (exit 2, database unchanged)."""
    path = write_definition(tmp_path / "def")
    ok(runner, db_path, "workflow", "add", str(path))
    first = bodies(start_and_send(runner, db_path, "2026-03-02T09:00"))
    (tmp_path / "def" / "certification.templates" / "da" / "welcome.txt").write_text(
        "Ændret tekst\n", encoding="utf-8"
    )
    (tmp_path / "def" / "certification.templates" / "da" / "welcome.subject.txt").unlink()
    second = bodies(start_and_send(runner, db_path, "2026-03-03T09:00", "Nexus"))
    assert second[1] == first[1].replace("16. marts", "17. marts").replace("Momentum", "Nexus")
    assert "Ændret" not in second[1]
    before = snapshot(db_path)
    again = run(runner, db_path, "workflow", "add", str(path))
    assert again.exit_code == 2, again.output
    assert "da/welcome: missing da/welcome.subject.txt" in again.stderr
    (tmp_path / "def" / "certification.templates" / "da" / "welcome.subject.txt").write_text(
        "Ny emnelinje\n", encoding="utf-8"
    )
    again = run(runner, db_path, "workflow", "add", str(path))
    assert again.exit_code == 2, again.output
    assert "already registered with other templates" in again.stderr
    assert again.stderr.count("\n") == 1
    assert snapshot(db_path) == before


def test_definition_templates_english_with_language_en(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """With --language en the definition's en/ files are used, with the configured
    organisation in the English genitive."""
    ok(runner, db_path, "mail", "configure", "--language", "en", "--organisation", "Testcenter")
    ok(runner, db_path, "workflow", "add", str(write_definition(tmp_path / "def")))
    subject, text, html = bodies(start_and_send(runner, db_path, "2026-03-02T09:00"))
    assert subject == "Welcome to the certification: KMD Momentum"
    assert text.endswith("Kind regards\nTestcenter\n")
    assert "Sent by Testcenter's test tool." in html
    assert '<html lang="en">' in html


def test_definition_templates_missing_language_falls_back_to_danish(db_path: Path) -> None:
    """A definition template with only Danish files renders in Danish for English mail."""
    config = load_config(db_path, env={})
    own = OwnTemplates("x", 1, {k: v for k, v in TEMPLATES.items() if k.startswith("da/")})
    rendered = Renderer(replace(config, language="en")).render(
        "welcome", _context(), own=own
    )
    assert rendered.subject == "Velkommen til certificeringen: KMD Momentum"
    assert "Venlig hilsen\nKOMBIT" in rendered.text


def _context() -> dict[str, Any]:
    from datetime import date

    return {
        "system": {"label": "KMD Momentum"},
        "subject_label": "KMD Momentum",
        "track": {"definition_title": "Certificering"},
        "due": date(2027, 3, 15),
    }


def test_definition_templates_are_sandboxed_and_cannot_replace_shipped_pieces(
    db_path: Path,
) -> None:
    """A definition's template runs in the sandbox, and a stored file with a shipped ``_``
    file's path (a database edited by hand) is not used in its place."""
    renderer = Renderer(load_config(db_path, env={}))
    hostile = dict(TEMPLATES)
    hostile["da/welcome.txt"] = "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"
    with pytest.raises(SecurityError):
        renderer.render("welcome", _context(), own=OwnTemplates("x", 1, hostile))
    shadow = dict(TEMPLATES)
    shadow["_layout.html"] = "HIJACKED {% block content %}{% endblock %}{% block footer %}x"
    rendered = renderer.render("welcome", _context(), own=OwnTemplates("x", 2, shadow))
    assert "HIJACKED" not in rendered.html and "<!DOCTYPE html>" in rendered.html


def test_definition_templates_validator_accepts_own_names_only_with_the_folder(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """``template: welcome`` validates with the folder beside the file (or --templates) and is
    an unknown template without it: ``workflow add`` exits 2 and stores nothing."""
    bare = tmp_path / "bare" / "certification.yaml"
    bare.parent.mkdir()
    bare.write_text(DEFINITION, encoding="utf-8")
    refused = runner.invoke(cli.cli, ["workflow", "validate", str(bare)])
    assert refused.exit_code == 2
    assert "unknown template 'welcome'" in refused.stderr
    before = snapshot(db_path)
    refused = run(runner, db_path, "workflow", "add", str(bare))
    assert refused.exit_code == 2 and "unknown template 'welcome'" in refused.stderr
    assert f"{tmp_path}/bare/certification.templates/da/NAME.subject.txt" in refused.stderr
    assert snapshot(db_path) == before
    with_folder = write_definition(tmp_path / "def")
    valid = runner.invoke(cli.cli, ["workflow", "validate", str(with_folder)])
    assert valid.exit_code == 0, valid.output
    given = runner.invoke(
        cli.cli,
        ["workflow", "validate", str(bare), "--templates",
         str(tmp_path / "def" / "certification.templates")],
    )
    assert given.exit_code == 0, given.output
    ok(runner, db_path, "workflow", "add", str(bare), "--templates",
       str(tmp_path / "def" / "certification.templates"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"da/_macros.txt": "x"}, "da/_macros.txt: would replace the shipped da/_macros.txt"),
        ({"da/welcome.html": None}, "da/welcome: missing da/welcome.html"),
        ({"da/welcome.txt": "{% if %}"}, "da/welcome.txt: line 1:"),
        ({"da/_testplan.txt": None}, "da/welcome.txt: uses 'da/_testplan.txt', which is neither"),
        ({"en/extra.subject.txt": "x", "en/extra.txt": "x", "en/extra.html": "x"},
         "en/extra: no da/extra beside it"),
        ({"welcome.txt": "x"}, "welcome.txt: a template file belongs in one of da, en/"),
        ({"da/Welcome.md": "x"}, "da/Welcome.md: name it NAME.subject.txt"),
    ],
)
def test_definition_templates_folder_problems_are_refused(
    runner: CliRunner, db_path: Path, tmp_path: Path, change: dict[str, str | None], message: str
) -> None:
    """A broken templates folder: one line naming the file, exit 2, nothing stored."""
    files = {k: v for k, v in {**TEMPLATES, **change}.items() if v is not None}
    path = write_definition(tmp_path / "def", files)  # type: ignore[arg-type]
    before = snapshot(db_path)
    result = run(runner, db_path, "workflow", "add", str(path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert snapshot(db_path) == before


def test_definition_templates_shipped_mail_keeps_kombit_by_default(db_path: Path) -> None:
    """With default settings the shipped wording signs and names KOMBIT exactly as before
    (apostrophe unescaped in HTML); a configured organisation replaces both."""
    ctx = _notice()
    default = Renderer(load_config(db_path, env={})).render("notice", ctx)
    assert default.text.endswith("Venlig hilsen\nKOMBIT\n")
    assert "<p>Venlig hilsen<br>KOMBIT</p>" in default.html
    assert "Sendt automatisk af KOMBIT's onboarding-værktøj." in default.html
    env = {"ONBOARDING_MAIL_ORGANISATION": "Digitaliseringsstyrelsen"}
    other = Renderer(load_config(db_path, env=env)).render("notice", ctx)
    assert other.text.endswith("Venlig hilsen\nDigitaliseringsstyrelsen\n")
    assert "Sendt automatisk af Digitaliseringsstyrelsens onboarding-værktøj." in other.html
    english = Renderer(load_config(db_path, env={**env, "ONBOARDING_MAIL_SIGNATURE": "Team A"}))
    en = english.render("notice", ctx, lang="en")
    assert en.text.endswith("Kind regards\nTeam A\n")
    assert "Sent automatically by Digitaliseringsstyrelsen's onboarding tool." in en.html


def _notice() -> dict[str, Any]:
    from datetime import date

    return {
        "recipients": [{"name": "Ib", "email": "ib@x.dk", "role": None}],
        "track": {"definition_title": "Tilslutning", "step": "Trin", "id": 1},
        "subject_label": "Køge",
        "due": date(2027, 3, 15),
        "overdue": False,
        "due_today": False,
        "working_days_left": 3,
        "working_days_overdue": 0,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--signature", "a\\nb\\nc\\nd\\ne\\nf\\ng"], "--signature: at most 6 lines"),
        (["--organisation", "KOM\tBIT"], "--organisation: "),
        (["--signature", "  "], "--signature: "),
    ],
)
def test_definition_templates_bad_signature_settings_are_refused(
    runner: CliRunner, db_path: Path, args: list[str], message: str
) -> None:
    """A signature of too many lines or an organisation with a control character: exit 2,
    one line, nothing stored."""
    before = snapshot(db_path)
    result = run(runner, db_path, "mail", "configure", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert snapshot(db_path) == before


def _downgrade(path: Path) -> None:
    """Turn a current database back into schema 5's shape (what the previous release wrote)."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE definition_templates")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = '006_definition_templates'")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()


def test_definition_templates_migration_upgrades_in_place(
    runner: CliRunner, db_path: Path, tmp_path: Path
) -> None:
    """A database of schema 5 with a running track upgrades with 'onboarding init': its
    tracks, history and hash chain intact, and a definition with templates can then be added."""
    ok(runner, db_path, "track", "start", "system-readiness", "--system", "Momentum",
       "--index", "sd", "--at", "2026-01-05T09:00")
    _downgrade(db_path)
    conn = sqlite3.connect(db_path)
    tracks = conn.execute("SELECT * FROM tracks ORDER BY id").fetchall()
    history = conn.execute("SELECT * FROM history ORDER BY id").fetchall()
    conn.close()
    db = connect(db_path)
    assert [m.name for m in migrations.pending(db)] == ["006_definition_templates"]
    db.close()
    refused = run(runner, db_path, "track", "list")
    assert refused.exit_code == 2 and "onboarding init" in refused.stderr
    ok(runner, db_path, "init")
    db = connect(db_path)
    assert initialise(db) == [] and schema_version(db) == current_schema_version()
    assert db.execute("SELECT * FROM tracks ORDER BY id").fetchall() == tracks
    assert db.execute("SELECT * FROM history ORDER BY id").fetchall() == history
    db.close()
    ok(runner, db_path, "audit", "verify")
    ok(runner, db_path, "workflow", "add", str(write_definition(tmp_path / "def")))
    subject, _, _ = bodies(start_and_send(runner, db_path, "2026-03-02T09:00"))
    assert subject == "Velkommen til certificeringen: KMD Momentum"
