"""The outbox: every email that must go out, as rows in the same SQLite database.

The outbox table is the source of truth for notifications; the scheduler is only a clock.

* **Scheduling** happens inside the transition's transaction (``enter``, ``on_start``,
  ``on_moves``, called by the engine on the same connection). Each notification is keyed by
  (track, state entry, notification), where the state entry is the history row's ``seq``; the
  unique key makes each exist exactly once however often a runner restarts. Entering a state
  writes (issue 14, "lean writes") only the notifications kept on leave (notices) as outbox
  rows; its reminders and escalations are one appended ``outbox_plan`` row (their ids, names
  and due times; ids taken in the order rows were always written in) that the track row
  points to (``plan_id``, ``plan_open``). Right before claiming, the sender writes the planned
  rows that have fallen due as outbox rows (``materialise_due``, same transaction as the
  claim, same ids and key); every reader (``list_rows``, ``get_row``, ``next_due``,
  ``superseding``, ``counts``) shows planned rows as the rows they stand for.
* **Leaving** a state cancels its unsent (pending, failed, or claimed but not yet handed over)
  reminders and escalations: the step is done. Planned ones cost nothing: the track row, which
  the advance writes anyway, stops pointing to the plan as open, and they are shown as
  cancelled (at the time the step was recorded). Notices are kept (an outside request must
  arrive even when the coordinator records the next step first) unless the notification says
  ``on_leave: cancel`` or the step is left by a trigger in its ``cancel_on`` list.
  ``on_leave: keep`` keeps a reminder too.
* **Changing the due date** (``track set`` of a date field, a migration) recomputes the pending
  rows of the current state entry; a migration to another state carries them there.
* **Sending** (``notifications.runner``) claims due rows with ``BEGIN IMMEDIATE`` and
  ``UPDATE ... RETURNING`` (status ``sending``, a lease). Right before a message goes to the
  transport, ``hand_over`` re-checks each row in one more ``BEGIN IMMEDIATE`` (still in its state
  entry, no ``cancel_on`` trigger since), renews the lease, stamps ``handed_at`` and charges the
  attempt; only then is the message sent and the result recorded. A row whose lease ran out is
  taken back by the next runner: untried (``handed_at`` empty) as if never claimed, handed over
  as an attempt that may have been delivered. Any number of runners may sweep the same database.

Notifications are declared per state in the workflow definition (``notifications:``);
``declarations`` parses and validates them (``check_notifications`` is the validator's callback).

One module per concept, each importing only the ones listed before it (never this file):

* ``declarations``: the rules a state declares, and their validation (no database);
* ``cache``: parsed definitions per connection, rules per parsed definition;
* ``entries``: which history row entered a state, and when the track left it;
* ``plans``: the planner and the stored plans, written out as rows when due;
* ``events``: calendar events per state entry, and their withdrawal;
* ``scheduling``: entering and leaving a state (the engine's side);
* ``claims``: claiming, handing over and recording (the sender's side, exactly once);
* ``listing``: lists, rows, counts and requeueing (the readers' side);
* ``message``: what a message is about (recipients, template data).

This file only re-exports their public names, so ``from onboarding import outbox`` and
``outbox.NAME`` work as they did when the outbox was one module. It re-exports them lazily
(``workflows.lazy``): a name's module is imported when the name is first used, so an advance
loads the scheduling side and never the claims, lists or message data it does not use.
"""

from __future__ import annotations

from datetime import timedelta as timedelta  # ``outbox.timedelta``: see ``clock`` below
from typing import TYPE_CHECKING

# Reached through this module by callers of the single-module outbox (``outbox.clock``,
# ``outbox.timedelta`` in tests): kept so they keep working.
from onboarding import clock as clock
from workflows.lazy import exports

if TYPE_CHECKING:
    from onboarding.outbox.cache import definition, remember_definition, state_rules
    from onboarding.outbox.claims import (
        OUTBOX_COLUMNS,
        SUPERSEDABLE,
        cancel_reason,
        claim,
        hand_over,
        instance_token,
        message_key,
        next_due,
        reclaim_stale,
        record_cancelled,
        record_failure,
        record_sent,
        release,
        supersede_claimed,
        superseding,
    )
    from onboarding.outbox.declarations import (
        DEFAULT_ON_LEAVE,
        DEFAULT_TIME,
        KINDS,
        NOT_ENTRIES,
        STATUSES,
        Rule,
        check_notifications,
        rules,
        template_names,
    )
    from onboarding.outbox.events import WITHDRAW_TEMPLATE, WITHDRAWALS, event_key, event_sequence
    from onboarding.outbox.listing import counts, get_row, list_rows, retry, retry_failed
    from onboarding.outbox.message import message_data, recipients

    # The planner is private, but the benchmarks drive it directly (bench/worker.py, bench/data.py).
    from onboarding.outbox.plans import (
        _PLANNER,
        _Planner,
        materialise_all,
        materialise_due,
        materialise_track,
    )
    from onboarding.outbox.scheduling import Heads, enter, on_moves, on_start

if not TYPE_CHECKING:  # each name imported from its home when first asked for
    __getattr__, __dir__ = exports(
        __name__,
        {
            "cache": ["definition", "remember_definition", "state_rules"],
            "claims": [
                "OUTBOX_COLUMNS",
                "SUPERSEDABLE",
                "cancel_reason",
                "claim",
                "hand_over",
                "instance_token",
                "message_key",
                "next_due",
                "reclaim_stale",
                "record_cancelled",
                "record_failure",
                "record_sent",
                "release",
                "supersede_claimed",
                "superseding",
            ],
            "declarations": [
                "DEFAULT_ON_LEAVE",
                "DEFAULT_TIME",
                "KINDS",
                "NOT_ENTRIES",
                "STATUSES",
                "Rule",
                "check_notifications",
                "rules",
                "template_names",
            ],
            "events": ["WITHDRAW_TEMPLATE", "WITHDRAWALS", "event_key", "event_sequence"],
            "listing": ["counts", "get_row", "list_rows", "retry", "retry_failed"],
            "message": ["message_data", "recipients"],
            "plans": [
                "_PLANNER",
                "_Planner",
                "materialise_all",
                "materialise_due",
                "materialise_track",
            ],
            "scheduling": ["Heads", "enter", "on_moves", "on_start"],
        },
    )

__all__ = [
    "DEFAULT_ON_LEAVE",
    "DEFAULT_TIME",
    "KINDS",
    "NOT_ENTRIES",
    "OUTBOX_COLUMNS",
    "STATUSES",
    "SUPERSEDABLE",
    "WITHDRAWALS",
    "WITHDRAW_TEMPLATE",
    "_PLANNER",
    "Heads",
    "Rule",
    "_Planner",
    "cancel_reason",
    "check_notifications",
    "claim",
    "counts",
    "definition",
    "enter",
    "event_key",
    "event_sequence",
    "get_row",
    "hand_over",
    "instance_token",
    "list_rows",
    "materialise_all",
    "materialise_due",
    "materialise_track",
    "message_data",
    "message_key",
    "next_due",
    "on_moves",
    "on_start",
    "recipients",
    "reclaim_stale",
    "record_cancelled",
    "record_failure",
    "record_sent",
    "release",
    "remember_definition",
    "retry",
    "retry_failed",
    "rules",
    "state_rules",
    "supersede_claimed",
    "superseding",
    "template_names",
]
