"""The options of the commands the fast path runs, as data (issue 14, start-up).

``onboarding track advance`` and ``onboarding track show`` are parsed by two readers of this
one declaration: click, which builds the commands' options from it (``common.click_params``),
and ``onboarding.commands.fast``, which parses the same command lines without importing click
and gives up (leaving the command line to click) on anything it does not fully understand. As
both are built from the same entries they cannot drift apart; ``tests/test_fast_path.py``
compares the two readers' answers on generated command lines. Nothing here imports click.
"""

from __future__ import annotations

from typing import Any

#: Option value types both readers know: text, an integer, an integer of at least 1, a file
#: path that may not be a directory (``click.Path(dir_okay=False, readable=False)``).
TYPES = ("text", "int", "int>=1", "file")


class Opt:
    """One option: its long names, the callback parameter it fills, how it takes values.

    (Plain classes, not NamedTuples: the three NamedTuple classes cost a process 0.85 ms
    to build, measured, on the path whose start-up this module exists to shorten.)"""

    __slots__ = (
        "complete",
        "decls",
        "default",
        "dest",
        "envvar",
        "help",
        "kind",
        "metavar",
        "show_default",
        "type",
    )

    def __init__(
        self,
        decls: tuple[str, ...],
        dest: str,
        kind: str = "value",
        type: str = "text",
        default: Any = None,
        envvar: str | None = None,
        metavar: str | None = None,
        help: str = "",
        show_default: bool = False,
        complete: str | None = None,
    ) -> None:
        self.decls = decls
        self.dest = dest
        #: "value" (one value, the last given wins), "flag" (no value) or "multiple"
        self.kind = kind
        self.type = type
        self.default = default
        self.envvar = envvar
        self.metavar = metavar
        self.help = help
        self.show_default = show_default
        #: name of the ``onboarding.completion`` function completing its value (TAB only)
        self.complete = complete


class Arg:
    """One positional argument: one value (``nargs`` 1) or all the rest (-1, at least one)."""

    __slots__ = ("complete", "metavar", "name", "nargs")

    def __init__(
        self, name: str, nargs: int = 1, metavar: str | None = None, complete: str | None = None
    ) -> None:
        self.name = name
        self.nargs = nargs
        self.metavar = metavar
        self.complete = complete


class Spec:
    """A command's arguments and options, in the order click lists them."""

    __slots__ = ("args", "options")

    def __init__(self, args: tuple[Arg, ...], options: tuple[Opt, ...]) -> None:
        self.args = args
        self.options = options


DB = Opt(
    ("--db",),
    "db_path",
    type="file",
    envvar="ONBOARDING_DB",
    help="Database file (default: $ONBOARDING_DB, else ./onboarding.db).",
)
JSON = Opt(
    ("--json",), "as_json", kind="flag", default=False, help="Print JSON instead of a table."
)
ACTOR = Opt(
    ("--actor",),
    "actor",
    envvar="ONBOARDING_ACTOR",
    help="Who acts (default: $ONBOARDING_ACTOR, else your login name).",
)
ROLE = Opt(
    ("--role",),
    "role",
    envvar="ONBOARDING_ROLE",
    default="coordinator",
    show_default=True,
    help="The role you act in (see 'onboarding workflow show').",
)
READER = Opt(
    ("--actor",),
    "reader",
    envvar="ONBOARDING_ACTOR",
    help="Read as this actor: only what its grants let it read (default: "
    "$ONBOARDING_ACTOR; with neither, everything: the command line trusts its operator).",
)
AT = Opt(
    ("--at",),
    "at",
    metavar="TIME",
    help="When it happened (2021-03-31, 31-03-2021, 31.03.2021 or 31/03/2021, optionally with "
    "a time: 31-03-2021 14:00; default: now). "
    "Never in the future (5 minutes' tolerance): a planned date goes in a field (--set).",
)
JUDGE_AT = Opt(
    ("--at",),
    "at",
    metavar="TIME",
    help="Judge what may happen next at this time (ISO 8601; default: now): what "
    "'track advance --at TIME' would be told. The track is shown as it is now.",
)
NOTE = Opt(("--note",), "note", help="A note for the history.")

TRACK_ADVANCE = Spec(
    args=(Arg("args", nargs=-1, metavar="[TRACK] TRIGGER", complete="complete_advance_args"),),
    options=(
        Opt(
            ("--where",),
            "where",
            metavar="FILTER",
            help="Advance every open track matching, e.g. 'state=date_agreement system=Fasit'.",
            complete="complete_where",
        ),
        Opt(
            ("--limit",),
            "limit",
            type="int>=1",
            default=20,
            show_default=True,
            help="Bulk: blocked tracks listed per reason (--json lists all).",
        ),
        Opt(
            ("--set",),
            "sets",
            kind="multiple",
            metavar="NAME=VALUE",
            help="A field the transition needs (repeatable).",
        ),
        NOTE,
        Opt(
            ("--expect-version",),
            "expect_version",
            type="int",
            help="Refuse if the track is no longer at this version (optimistic locking).",
        ),
        Opt(
            ("--dry-run",),
            "dry_run",
            kind="flag",
            default=False,
            help="Show what would change (one track: the move, its due date and the "
            "notifications it would schedule); write nothing.",
        ),
        AT,
        DB,
        JSON,
        ACTOR,
        ROLE,
    ),
)

TRACK_SHOW = Spec(
    args=(Arg("track_ref", metavar="TRACK"),),
    options=(JUDGE_AT, READER, DB, JSON),
)
