"""The command groups of ``onboarding``, one module each, imported only when invoked."""

from __future__ import annotations

#: Command name -> (module in onboarding.commands, attribute, summary). The summary is the
#: first paragraph of the command's help, kept here so that listing the commands loads none
#: of them; tests/test_docs.py checks that it matches.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "actor": (
        "actor",
        "actor",
        "Who may do what: register actors and grant them roles for a municipality, a vendor"
        " or all.",
    ),
    "audit": (
        "audit",
        "audit",
        "The tamper-evident audit trail: verify the history's hash chain, anchor it, export it.",
    ),
    "backup": (
        "backup",
        "backup_cmd",
        "Copy the database to FILE with SQLite's online backup, safe while others write.",
    ),
    "demo": (
        "demo",
        "demo_cmd",
        "Build a demo: the 98 municipalities, the deck's picture of 31 March 2021, a quarter.",
    ),
    "goals": (
        "goals",
        "goals_group",
        "Goal counters the tool cannot derive (SAPA users, cancelled Manuelle sager, ...).",
    ),
    "history": (
        "history",
        "history_cmd",
        "Show the history of all tracks, oldest first: who did what, when.",
    ),
    "import": ("importing", "import_group", "Import the municipalities' monthly status reports."),
    "init": ("init", "init", "Create the database, or upgrade its schema; safe to run again."),
    "mail": (
        "mail",
        "mail",
        "Mail settings kept in the database: sender, Message-ID domain, language, digest, SMTP.",
    ),
    "registry": (
        "registry",
        "registry",
        "Municipalities, vendors, systems, contracts and contacts.",
    ),
    "reminders": (
        "reminders",
        "reminders",
        "Reminders, notices and escalations by email: send, list, preview, retry, forecast.",
    ),
    "report": (
        "report",
        "report",
        "Reports that regenerate the programme deck's tables from the database.",
    ),
    "replicate": (
        "replicate",
        "replicate_cmd",
        "Replicate the database continuously to a folder or an S3 bucket, until SIGTERM or Ctrl-C.",
    ),
    "restore": (
        "backup",
        "restore_cmd",
        "Replace the database with a backup, after checking it is a sound database of this tool.",
    ),
    "scheduler": (
        "scheduler",
        "scheduler",
        "The long-running sender: wakes when a notification falls due and sends it.",
    ),
    "serve": (
        "serve",
        "serve_cmd",
        "Start the coordinators' web page over the database (login with an actor's password).",
    ),
    "track": (
        "track",
        "track",
        "Onboarding tracks: start, advance, set fields, show, list, history, why.",
    ),
    "workflow": (
        "workflow",
        "workflow",
        "Workflow definitions: list, show, validate, add, diagram, migrate.",
    ),
}

#: The root command's help (``onboarding --help``), its ``--lang`` option and that option's
#: environment variable and values: data, so that the fast path (onboarding.commands.fast)
#: prints the same help without click.
ROOT_HELP = """
Track how Denmark's municipalities connect their systems to the common infrastructure.

Start with 'onboarding init', then 'onboarding track start' and 'onboarding track advance'.
Every command takes --help.

Example:

    onboarding init && onboarding registry list municipalities
"""
LANG_HELP = "Language of messages, labels and the HTML report (default da; env ONBOARDING_LANG)."
LANG_ENV = "ONBOARDING_LANG"
LANGS = ("da", "en")
