"""The reports that regenerate the deck's tables from the tool's own data, as of any date.

* ``rollout``: per vendor solution (from contracts), municipalities in operation / agreed / not
  agreed / total, a total per category computed from its rows, and the distinct municipalities;
* ``goals``: the quarterly targets of a goals file against the actual numbers at each quarter's
  end, with the counters the tool cannot derive recorded by ``record_counter``;
* ``grid``: municipality by system, each cell the current step and working days in it;
* ``klik``, ``overdue``, ``waves``;
* ``buckets``: any definition's tracks per bucket (or state), in total or per municipality,
  vendor, system or region.

"As of" always means *replayed from history* (``asof``): a past date gives the past picture
however much has happened since (tests/test_reports_asof.py). Buckets come from the
definitions (the ``connection`` definition's three buckets are the rollout columns, in its
declared order); no state of a shipped definition is named here. Each report is a plain dict
(the ``--json`` shape) with a ``*_text`` function that lays it out in 80 columns;
``rollout_csv``, ``rollout_html``, ``buckets_csv`` and ``buckets_html`` give the other formats.
See docs/reports.md.

One module per concept, each importing only the ones below it (never this file):

* ``asof``: a day's last instant, tracks replayed from history to it, definitions read once;
* ``text``: 80-column tables and the language helpers of the text reports;
* ``vendor_rollout``, ``quarterly_goals``, ``connection_grid``, ``klik_completion``,
  ``overdue_tracks``, ``rollout_waves``, ``bucket_counts``: one report each, with its text;
* ``progress``: rollout progress over the year and the chart's coordinates;
* ``exports``: the CSV and HTML files.

This file only re-exports, so ``from onboarding import reports`` and ``reports.NAME`` work as
they did when the package was one module: the public names, and the private helpers the tests
and bench/ reach for (a patch of one must go to its own module, where it is looked up).
"""

from __future__ import annotations

from onboarding.reports.asof import CONNECTION as CONNECTION
from onboarding.reports.asof import _Defs as _Defs
from onboarding.reports.asof import _end_stamp as _end_stamp
from onboarding.reports.asof import _rows as _rows
from onboarding.reports.asof import _states_as_of as _states_as_of
from onboarding.reports.asof import _today as _today
from onboarding.reports.asof import _tracks_as_of as _tracks_as_of
from onboarding.reports.bucket_counts import BUCKET_BY, buckets, buckets_text
from onboarding.reports.bucket_counts import BY_LABELS as BY_LABELS
from onboarding.reports.bucket_counts import OTHER_MUNICIPALITIES as OTHER_MUNICIPALITIES
from onboarding.reports.bucket_counts import TOTAL_LABEL as TOTAL_LABEL
from onboarding.reports.connection_grid import grid, grid_text
from onboarding.reports.exports import TEMPLATES as TEMPLATES
from onboarding.reports.exports import buckets_csv, buckets_html, rollout_csv, rollout_html
from onboarding.reports.klik_completion import KLIK as KLIK
from onboarding.reports.klik_completion import klik, klik_text
from onboarding.reports.overdue_tracks import overdue, overdue_text
from onboarding.reports.progress import COLOURS as COLOURS
from onboarding.reports.progress import progress_series
from onboarding.reports.quarterly_goals import DATA as DATA
from onboarding.reports.quarterly_goals import QUARTER_ENDS as QUARTER_ENDS
from onboarding.reports.quarterly_goals import (
    goals,
    goals_file,
    goals_text,
    list_counters,
    load_goals,
    record_counter,
)
from onboarding.reports.rollout_waves import WAVE as WAVE
from onboarding.reports.rollout_waves import waves, waves_text
from onboarding.reports.text import WIDTH as WIDTH
from onboarding.reports.vendor_rollout import COUNT_KEYS, rollout, rollout_text
from onboarding.reports.vendor_rollout import _counts_kept as _counts_kept
from onboarding.reports.vendor_rollout import rank_case as rank_case

__all__ = [
    "BUCKET_BY",
    "CONNECTION",
    "COUNT_KEYS",
    "buckets",
    "buckets_csv",
    "buckets_html",
    "buckets_text",
    "goals",
    "goals_file",
    "goals_text",
    "grid",
    "grid_text",
    "klik",
    "klik_text",
    "list_counters",
    "load_goals",
    "overdue",
    "overdue_text",
    "progress_series",
    "record_counter",
    "rollout",
    "rollout_csv",
    "rollout_html",
    "rollout_text",
    "waves",
    "waves_text",
]
