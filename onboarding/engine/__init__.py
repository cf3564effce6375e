"""The transition engine: start a track, fire a trigger on one track or many, set fields, migrate.

Every write is one ``BEGIN IMMEDIATE`` transaction: the track row (state, version, fields,
entered time, due date) and its appended history row commit together or not at all. Checks run
first (trigger valid from the state, role allowed, guards, required fields, time order, the
optimistic version); any refusal raises a user error before anything is written.

Bulk operations are set-based: the machine is asked once per (definition version, state,
trigger), guards read through a cached ``GuardContext``, and writes go out with
``executemany`` in batches, all inside one transaction (all or nothing).

One module per concept; each imports only the ones above it here, never this package:

- ``rows``: the track row (``TRACK_COLUMNS``, ``load_track``) and field values (``coerce_field``);
- ``planning``: one transition checked and planned (``plan``, guards, ``compute_due``, ``Move``);
- ``writing``: ``Act``, ``write_moves``, ``advance`` and ``preview_advance``;
- ``bulk``: ``bulk_advance`` and its ``BulkResult``;
- ``starting``: ``Subject``, ``resolve_subject``, ``start`` and ``start_in``;
- ``amending``: ``set_fields`` and ``migrate``.

This package re-exports their public names (and the private ones used outside the engine), so
``engine.advance``, ``from onboarding.engine import Move`` and the like work as before.
"""

from __future__ import annotations

# ``engine.clock`` is reached by callers (tests) that had it from the single module.
from onboarding import clock as clock
from onboarding.engine.amending import MigrationResult, migrate, set_fields
from onboarding.engine.bulk import BATCH, BlockedGroup, BulkResult, Progress, bulk_advance
from onboarding.engine.planning import Move, compute_due, plan
from onboarding.engine.rows import (
    MIGRATE,
    NO_REENTRY,
    SET,
    START,
    TRACK_COLUMNS,
    _row_to_track,
    coerce_field,
    coerce_fields,
    load_track,
)
from onboarding.engine.starting import Subject, resolve_subject, start, start_in
from onboarding.engine.writing import (
    PLANNED_HINT,
    Act,
    advance,
    moved_track,
    preview_advance,
    write_moves,
)

__all__ = [
    "BATCH",
    "MIGRATE",
    "NO_REENTRY",
    "PLANNED_HINT",
    "SET",
    "START",
    "TRACK_COLUMNS",
    "Act",
    "BlockedGroup",
    "BulkResult",
    "MigrationResult",
    "Move",
    "Progress",
    "Subject",
    "_row_to_track",
    "advance",
    "bulk_advance",
    "coerce_field",
    "coerce_fields",
    "compute_due",
    "load_track",
    "migrate",
    "moved_track",
    "plan",
    "preview_advance",
    "resolve_subject",
    "set_fields",
    "start",
    "start_in",
    "write_moves",
]
