"""``onboarding demo``: a whole programme quarter in seconds, from nothing, offline.

The demo builds a fresh database in a folder and fills it the way a coordinator would:

1. the registry (``init``), contacts for every municipality and vendor, and the municipalities'
   contracts for the deck's systems (``registry import``, from CSV files it writes first);
2. the status of 31 December 2020 and of 31 March 2021 through the monthly status import, from
   two status files it writes first (they include ``system-readiness`` rows: a connection step of
   bucket Aftalt needs its system declared ready by then, so the files first take each system
   through pilot and compliance test). The deck's rollout table of 31 March 2021 (Jobcenter and
   ESDH) comes out exactly;
3. a simulated quarter, 1 April to 30 June 2021, one working day at a time: connections move on,
   the GDPR and Systemoverblik KLIK tasks are sent, answered and defaulted, UDK Boligstøtte's wave
   B1 goes live and one municipality changes wave, an EOJ system is declared ready, the goal
   counters are recorded, and every Monday morning ``notifications.runner.send_due`` writes the
   due reminders, notices and escalations as ``.eml`` files to the outbox (never sent: the demo
   builds its own mail settings with no SMTP server, one digest per recipient and day);
4. the rollout report printed (31 March and 30 June) and the HTML report written.

Everything is deterministic: a seeded ``random.Random`` decides who moves when, and the clock is
pinned (``$ONBOARDING_NOW``) to the simulated time while the demo runs, so two runs give the same
database. The demo scripts the shipped definitions without naming their states: where a track
goes next is read from the definition (see ``steps.forward``).

The package: ``scenario`` (the deck's figures), ``inputs`` (the files written first),
``timeline`` and ``steps`` (the clock, and where a track goes next), ``simulation`` (the
quarter), ``folder`` (what a run may replace) and ``build`` (``run``, which ties them together).
"""

from onboarding.demo.build import DEMO_ACTORS, run, where
from onboarding.demo.folder import MARKER, is_demo_database
from onboarding.demo.result import DemoResult
from onboarding.demo.scenario import DECK_TABLE

__all__ = ["DECK_TABLE", "DEMO_ACTORS", "MARKER", "DemoResult", "is_demo_database", "run", "where"]
