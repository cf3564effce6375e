"""Building the demo: ``run`` writes the inputs, imports them, simulates the quarter, prints
the reports and says where everything is; then registers the demo's actors.
"""

from __future__ import annotations

import os
import random
import textwrap
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from onboarding import clock, definitions, i18n, registry, reports, settings
from onboarding.db import Database, connect, initialise
from onboarding.demo.folder import MARKER, prepare
from onboarding.demo.inputs import (
    contacts_file,
    contracts_file,
    make_plan,
    readiness_rows,
    status_file,
    system_labels,
)
from onboarding.demo.result import DemoResult, Echo, day_month, t
from onboarding.demo.scenario import (
    ACTOR,
    COUNTERS,
    DECEMBER,
    EOJ_STARTED,
    MARCH,
    MUNICIPALITY_CONTACT_ROLES,
    QUARTER_END,
    QUARTER_START,
    SEED,
)
from onboarding.demo.simulation import Sim, simulate
from onboarding.demo.timeline import local, pinned
from onboarding.status_import import import_status

#: The demo's mail settings, stored in its database ('onboarding mail configure') so that every
#: later command on it (reminders preview, send-due, the scheduler, the web page) sends as the
#: demo did. One email per recipient and day (digest), as a coordinator would configure it for a
#: whole programme.
DEMO_MAIL: dict[str, Any] = {
    "mail.from": "KOMBIT onboarding <onboarding@kombit.example>",
    "mail.digest": True,
}


def _mail(db: Database, db_path: Path, outbox_dir: Path) -> Any:
    """Store the demo's sender in its database and read the settings as every command does."""
    from dataclasses import replace

    from notifications.config import load_config, store

    # The demo never uses SMTP, whatever the environment says: its SMTP variables are left out
    # (a half-set one must not stop the demo) and the transport is .eml files below.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARDING_SMTP_")}
    store(db, db_path, DEMO_MAIL, env=env)
    return replace(load_config(db_path, env, db=db), smtp=None, outbox_dir=outbox_dir)


def run(
    directory: str | Path,
    echo: Echo = print,
    send_reminders: bool = True,
    force: bool = False,
) -> DemoResult:
    """Build the demo in ``directory`` (created if needed) and print what happened.

    An earlier demo there is replaced (and the run says so); anything else the demo would
    replace is refused (InputError) unless ``force``, which moves it aside first (``prepare``).
    ``send_reminders=False`` skips writing the .eml files (the outbox rows are still made):
    the same tracks and history, faster.
    """
    from notifications.runner import send_due

    root = Path(directory)
    prepare(root, force, echo)
    root.mkdir(parents=True, exist_ok=True)
    db_path = root / "onboarding.db"
    outbox_dir = root / "onboarding-outbox"
    rng = random.Random(SEED)
    result = DemoResult(root, db_path, root / f"rollout-{QUARTER_END.isoformat()}.html", outbox_dir)
    with pinned() as now:
        now(local(date(2021, 1, 4), 8))
        db = connect(db_path)
        try:
            initialise(db)  # the settings table first: the sender is stored before any mail
            settings.update(db, {MARKER: clock.stamp(clock.now())})  # first: it is the demo's
            mail = _mail(db, db_path, outbox_dir)
            _build(db, root, result, rng, now, mail, send_due if send_reminders else None, echo)
        finally:
            db.close()
    return result


def _build(
    db: Database,
    root: Path,
    result: DemoResult,
    rng: random.Random,
    now: Callable[[datetime], None],
    mail: Any,
    send_due: Callable[..., Any] | None,
    echo: Echo,
) -> None:
    from onboarding.definitions import register_shipped

    initialise(db)
    registry.seed(db)
    register_shipped(db)
    connection = definitions.get(db, reports.CONNECTION)
    labels = system_labels(db)
    plan = make_plan(db, connection, rng)
    names = dict(plan.municipalities)
    data = root / "data"
    files = {
        "contacts": contacts_file(db, data / "contacts.csv"),
        "contracts": contracts_file(plan, labels, data / "contracts.csv", rng),
    }
    registry.import_contacts(db, files["contacts"])
    registry.import_contracts(db, files["contracts"])
    readiness = definitions.get(db, "system-readiness")
    for key, (picture, end, after) in {
        "december": (plan.december, DECEMBER, None),
        "march": (plan.march, MARCH, DECEMBER),
    }.items():
        files[key] = status_file(
            plan,
            picture,
            labels,
            end,
            readiness_rows(names, plan, labels, readiness, end, after),
            connection,
            data / f"status-{end.strftime('%Y-%m')}.csv",
            rng,
        )
    result.data_files = list(files.values())
    echo(t("Building the demo in %(folder)s/", folder=root))
    echo(
        t(
            "  registry: %(municipalities)d municipalities, %(systems)d systems, "
            "%(contracts)d contracts, %(contacts)d contacts",
            municipalities=len(plan.municipalities),
            systems=len(registry.list_systems(db)),
            contracts=len(registry.list_contracts(db)),
            contacts=len(registry.list_contacts(db)),
        )
    )
    for key, moment in (
        ("december", local(date(2021, 1, 4), 10)),
        ("march", local(QUARTER_START, 8)),
    ):
        now(moment)
        imported = import_status(db, files[key])
        _say(echo, f"import status {files[key].name}: {imported.summary(i18n.cli_language())}")
    for counter, value, day in COUNTERS:
        if day <= MARCH:
            reports.record_counter(db, counter, value, day, ACTOR)
    contacts = {
        (str(c["role"]), c["municipality_code"]): str(c["name"]) for c in registry.list_contacts(db)
    }
    system_ids = {k: int(registry.resolve_system(db, label)["id"]) for k, label in labels.items()}
    pilots = {system_ids[k]: code for k, code in plan.pilots.items()}
    pilots[system_ids[EOJ_STARTED[0]]] = int(
        registry.resolve_municipality(db, EOJ_STARTED[1])["code"]
    )
    vendors = {int(s["id"]): str(s["vendor"]) for s in registry.list_systems(db)}
    sim = Sim(db, rng, contacts, pilots, vendors)
    simulate(db, sim, mail, send_due, now, result, system_ids)
    result.steps = sim.steps
    now(local(QUARTER_END, 17))
    _say(
        echo,
        t(
            "simulated %(start)s - %(end)s %(year)d: %(steps)d steps by municipalities, vendors"
            " and KOMBIT; %(emails)d emails (reminders, notices, escalations) written to the"
            " outbox",
            start=day_month(QUARTER_START),
            end=day_month(QUARTER_END),
            year=QUARTER_END.year,
            steps=sim.steps,
            emails=result.emails,
        ),
    )
    echo("")
    echo(reports.rollout_text(reports.rollout(db, as_of=MARCH)))
    echo(reports.rollout_text(reports.rollout(db, as_of=QUARTER_END)))
    report = reports.rollout(db, as_of=QUARTER_END)
    result.html.write_text(reports.rollout_html(db, report, today=QUARTER_END), encoding="utf-8")
    where(result, echo)
    result.credentials = _register_actors(db, echo)


def _say(echo: Echo, text: str) -> None:
    """A progress line, wrapped to 80 columns."""
    for line in textwrap.wrap(text, 78, subsequent_indent="  "):
        echo("  " + line)


def _on_path() -> list[str]:
    """How to get ``onboarding`` on PATH in a fresh shell: activate the virtual environment
    this demo runs in (a path relative to the current folder when it is inside it)."""
    import sys

    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):  # not in a virtual environment: installed on PATH
        return [t("# 'onboarding' is on PATH (installed outside a virtual environment)")]
    try:
        shown = str(venv.relative_to(Path.cwd()))
    except ValueError:
        shown = str(venv)
    return [
        t(". %(venv)s/bin/activate    # puts 'onboarding' on PATH in this shell", venv=shown),
        t("# (or call %(venv)s/bin/onboarding instead of onboarding)", venv=shown),
    ]


def where(result: DemoResult, echo: Echo) -> None:
    db = result.database
    eml = len(list(result.outbox.glob("*.eml"))) if result.outbox.is_dir() else 0
    echo(t("Where everything is:"))
    echo(t("  database      %(path)s", path=db))
    echo(t("  HTML report   %(path)s", path=result.html))
    echo(t("                (open it in a browser: one file, works offline)"))
    echo(t("  input files   %(path)s/", path=result.data_files[0].parent))
    echo(t("                (contacts, contracts and two monthly status files)"))
    echo(t("  email outbox  %(path)s/ (%(n)d .eml files)", path=result.outbox, n=eml))
    echo("")
    echo(t("Try next (the demo's clock stops at 30 June 2021, 17:00):"))
    for line in _on_path():
        echo(f"  {line}")
    echo(f"  export ONBOARDING_DB={db}")
    echo("  export ONBOARDING_NOW=2021-06-30T17:00")
    for line in (
        "onboarding report rollout --as-of 2021-03-31",
        "onboarding report goals --year 2021",
        "onboarding report grid --category Jobcenter",
        "onboarding report klik --task GDPR",
        "onboarding report waves",
        "onboarding report overdue",
        "onboarding track list --system Momentum --overdue",
        f"onboarding import status {result.data_files[-1]} --dry-run",
        "onboarding reminders list --pending",
    ):
        echo(f"  {line}")


# --- actors for the web page (issue 5) -----------------------------------------------------------
# Registered last, so the simulation above runs as before (a database with no actor runs open).
# From here on permissions are enforced: 'import' and 'system' may go on importing and
# defaulting; the people below log in to the web page (or act with --actor on the command line).

_Grant = tuple[str, str | None, str | None]  # role, municipality, vendor
#: (name, display name, password, grants): demo credentials only.
DEMO_ACTORS: tuple[tuple[str, str, str | None, tuple[_Grant, ...]], ...] = (
    ("koordinator", "KOMBIT-koordinator", "demo-koordinator", (("coordinator", None, None),)),
    (
        "aarhus",
        "Projektleder, Aarhus Kommune",
        "demo-aarhus",
        tuple((role, "Aarhus", None) for role in MUNICIPALITY_CONTACT_ROLES),
    ),
    ("kmd", "Kundeansvarlig, KMD", "demo-kmd", (("vendor", None, "KMD"),)),
    ("import", "Månedlig statusimport", None, (("importer", None, None),)),
    ("system", "Automatik", None, (("system", None, None),)),
)


def _register_actors(db: Database, echo: Echo) -> dict[str, str]:
    """Register the demo's actors with their roles; print and return the log-ins."""
    from onboarding import actors

    credentials = {}
    for name, display, password, grants in DEMO_ACTORS:
        actors.add(db, name, display_name=display, password=password)
        for role, municipality, vendor in grants:
            actors.grant(db, name, role, municipality=municipality, vendor=vendor)
        if password:
            credentials[name] = password
    echo("")
    echo(t("Log in (web page, or --actor NAME on the command line); demo passwords only:"))
    for name, display, password, grants in DEMO_ACTORS:
        if password:
            scope = grants[0][1] or grants[0][2] or t("all")
            echo(f"  {name:<12} {password:<18} {display} ({scope})")
    echo(t("  Permissions are on in this database: see 'onboarding actor list'."))
    return credentials
