"""Shell completion: the values that exist in a database, for click's ``shell_complete``.

``onboarding`` completes through click's own mechanism (``_ONBOARDING_COMPLETE=bash_source``,
README "Shell completion"). The callbacks here answer "which values exist": definitions, the
triggers a track's state offers, states, municipalities, systems and vendors, read from the
database the command line names (``--db`` typed before the cursor, else ``$ONBOARDING_DB``, else
``./onboarding.db``).

Completion runs on every TAB, so it must never change anything and never get in the way:

- the database is opened read-only and no file is ever created: a missing database, a folder
  that does not exist, or a file that is not ours completes nothing. SQLite's ``mode=ro`` would
  still create the ``-wal``/``-shm`` files of a WAL database when no other connection has them
  open (and leave them behind), so without them the file is read as ``immutable``: with no WAL
  file every committed change is in the main file, so nothing is missed;
- anything going wrong gives no completions: a traceback printed into a shell prompt is worse
  than no suggestion, and a TAB has no one to report an error to (see ``_quietly``);
- only what the command itself would import is imported, so a TAB costs about what the
  command's own start does.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    import click

    from workflows.model import Definition

Callback = Callable[["click.Context", "click.Parameter", str], list[CompletionItem]]

_SQLITE_HEADER = b"SQLite format 3\x00"
_APPLICATION_ID = int.from_bytes(b"ONBD", "big")  # onboarding.db.APPLICATION_ID
_DEFAULT_DB = "onboarding.db"  # onboarding.db.DEFAULT_DB


# --- reading the database --------------------------------------------------------------------


def _param(ctx: click.Context, name: str) -> Any:
    """A parameter's value given before the cursor, from this command or a parent group."""
    while ctx is not None:
        value = ctx.params.get(name)
        if value:
            return value
        ctx = ctx.parent  # type: ignore[assignment]
    return None


def database_path(ctx: click.Context) -> Path:
    """The database the command would use: ``--db`` if given before the cursor (click has
    already read ``$ONBOARDING_DB`` into it when not), else ``$ONBOARDING_DB``, else
    ``./onboarding.db``: the rule of ``onboarding.db.resolve_path``, written out here because
    importing that module (sqlite-utils) would cost most of a TAB's time
    (tests/test_completion.py checks that the two agree)."""
    return Path(_param(ctx, "db_path") or os.environ.get("ONBOARDING_DB") or _DEFAULT_DB)


def _ours(path: Path) -> bool:
    """An existing SQLite file of this tool (or of one written before the application id)."""
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_HEADER):
        return False
    return int.from_bytes(header[68:72], "big") in (0, _APPLICATION_ID)


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the database at ``path``, or None when there is none.

    Creates no file: with a ``-wal`` and ``-shm`` beside it (another connection has it open)
    ``mode=ro`` shares them; without them the main file holds every commit and is read as
    ``immutable``, which opens no side files at all. A writer starting in between can at worst
    make this one answer stale, or fail and so give no completions.
    """
    if not _ours(path):
        yield None
        return
    uri = path.resolve().as_uri()
    side = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    uri += "?mode=ro" if all(p.exists() for p in side) else "?immutable=1"
    with closing(sqlite3.connect(uri, uri=True, timeout=1)) as conn:
        conn.execute("PRAGMA query_only = ON")
        yield conn


def _quietly(func: Callable[[click.Context, str], Iterable[CompletionItem]]) -> Callback:
    """A ``shell_complete`` callback that answers no completions instead of failing.

    The one place where swallowing every error is right: the output of a completion goes
    straight into the user's shell prompt, where a traceback (a locked or damaged database, a
    definition that no longer parses, an option typed wrongly before the cursor) would be
    garbage on the command line, and no one is there to act on it. The command itself, once
    run, reports the same problem properly.
    """

    def callback(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        try:
            return list(func(ctx, incomplete))
        except Exception:
            return []

    return callback


def _from_db(
    query: Callable[[sqlite3.Connection, click.Context, str], Iterable[CompletionItem]],
) -> Callback:
    """A callback running ``query`` on the command's database, read-only; none: nothing."""

    def complete(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        with read_only(database_path(ctx)) as conn:
            items = [] if conn is None else list(query(conn, ctx, incomplete))
        if os.environ.get(COMPLETE_VAR, "").startswith("bash"):
            items = [CompletionItem(bash_word(i.value), help=i.help) for i in items]
        return items

    return _quietly(complete)


#: The variable click's completion runs under (from the script name ``onboarding``); its value
#: names the shell, e.g. ``bash_complete``.
COMPLETE_VAR = "_ONBOARDING_COMPLETE"

_BASH_SPECIAL = re.compile(r"([^\w@%+=:,./-])")


def bash_word(value: str) -> str:
    """``value`` escaped as one bash word, as click's bash script needs it. The script inserts
    a completion unquoted, so "Cura Omsorg" would become two arguments and 'a|b' a pipe; and
    it reads each line with ``read`` (no ``-r``), which takes one level of backslashes away:
    hence two. zsh and fish quote what they insert themselves."""
    return _BASH_SPECIAL.sub(r"\\\\\1", value)


# --- matching --------------------------------------------------------------------------------

_FOLD = str.maketrans({"å": "aa", "ø": "oe", "æ": "ae", "é": "e", "ü": "ue"})


def fold(text: str) -> str:
    """Case- and accent-insensitive form: "Århus" and "aarhus" fold alike."""
    return text.casefold().translate(_FOLD)


def _starts(value: str, incomplete: str) -> bool:
    return fold(value).startswith(fold(incomplete))


# --- what exists -----------------------------------------------------------------------------


def _definitions(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    rows = conn.execute(
        "SELECT name, max(version) FROM definitions GROUP BY name ORDER BY name"
    ).fetchall()
    for name, version in rows:
        if _starts(name, incomplete):
            yield CompletionItem(name, help=f"version {version}")


def _stored(conn: sqlite3.Connection, names: Iterable[str] | None) -> list[Definition]:
    """Every stored version of the named definitions (all when None): a track may still run
    on an older version, so its states and triggers count too."""
    from onboarding import definitions

    sql = "SELECT name, version, source FROM definitions"
    params: list[str] = []
    if names is not None:
        names = list(names)
        sql += f" WHERE name IN ({', '.join('?' * len(names))})"
        params = names
    rows = conn.execute(sql + " ORDER BY name, version DESC", params).fetchall()
    return [definitions.parse(text, f"{name} v{version} (stored)") for name, version, text in rows]


def _states(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    """States of ``--definition`` when given before the cursor, else of every definition."""
    return _state_items(conn, _param(ctx, "definition"), incomplete)


def _state_items(conn: sqlite3.Connection, chosen: str | None, incomplete: str) -> Iterator[Any]:
    """States of the definition ``chosen`` (of every definition when None).

    A state filter takes several states as 'a|b': only the part after the last '|' is
    completed.
    """
    head, bar, last = incomplete.rpartition("|")
    prefix = head + bar
    seen: set[str] = set()
    for defn in _stored(conn, [chosen] if chosen else None):
        for state in defn.states:
            if state.name not in seen and state.name.startswith(last):
                seen.add(state.name)
                yield CompletionItem(prefix + state.name, help=f"{defn.name}: {state.label}")


def _municipalities(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    """Names (or codes when digits are typed), matched case- and accent-insensitively."""
    rows = conn.execute("SELECT code, name, region FROM municipalities ORDER BY name").fetchall()
    by_code = incomplete.isdigit()
    for code, name, region in rows:
        if by_code and str(code).startswith(incomplete):
            yield CompletionItem(str(code), help=name)
        elif not by_code and _starts(name, incomplete):
            yield CompletionItem(name, help=f"{code}, {region}" if region else str(code))


def _systems(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    """System names (which the resolver takes alone), or 'Vendor System' when the vendor is
    being typed; the vendor and category are the help."""
    rows = conn.execute(
        "SELECT s.name, v.name, s.category FROM systems s JOIN vendors v ON v.id = s.vendor_id"
        " ORDER BY s.name, v.name"
    ).fetchall()
    for name, vendor, category in rows:
        help_text = f"{vendor}, {category}" if category else vendor
        if _starts(name, incomplete):
            yield CompletionItem(name, help=help_text)
        elif _starts(f"{vendor} {name}", incomplete):
            yield CompletionItem(f"{vendor} {name}", help=help_text)


def _vendors(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    for (name,) in conn.execute("SELECT name FROM vendors ORDER BY name").fetchall():
        if _starts(name, incomplete):
            yield CompletionItem(name)


#: The last ``key=`` of a filter and the value typed after it (a value may hold spaces:
#: ``system=KMD Momentum``).
_LAST_VALUE = re.compile(r"(?:^|[\s,])([a-z_]+)\s*=\s*[\"']?([^=\"']*)$")
#: The last word, when it may be the start of a key.
_LAST_WORD = re.compile(r"(?:^|[\s,])([a-z_]*)$")
_WHERE_DEFINITION = re.compile(r"(?:^|[\s,])definition\s*=\s*[\"']?([a-z0-9_-]+)")


def _where(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    """``--where``: the filter typed so far, completed at its end: the value of its last
    ``key=`` (states of the ``definition=`` named earlier in the filter), or a key."""
    value = _LAST_VALUE.search(incomplete)
    if value is not None:
        key, partial = value.group(1), value.group(2)
        head = incomplete[: value.start(2)]
        for item in _where_values(conn, ctx, key, partial, head):
            yield CompletionItem(head + item.value, help=item.help)
    word = _LAST_WORD.search(incomplete)
    if word is not None:
        from onboarding.filters import KEYS

        head = incomplete[: word.start(1)]
        for name in KEYS:
            if name.startswith(word.group(1)):
                yield CompletionItem(f"{head}{name}=")


def _where_values(
    conn: sqlite3.Connection, ctx: click.Context, key: str, partial: str, head: str
) -> Iterable[Any]:
    if key == "state":
        named = _WHERE_DEFINITION.search(head)
        return _state_items(conn, named.group(1) if named else None, partial)
    if key in ("overdue", "open"):
        return [CompletionItem("yes")] if "yes".startswith(partial) else []
    query = {
        "definition": _definitions,
        "municipality": _municipalities,
        "system": _systems,
        "vendor": _vendors,
        "region": _regions,
    }.get(key)
    return query(conn, ctx, partial) if query else []


def _regions(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    rows = conn.execute(
        "SELECT DISTINCT region FROM municipalities WHERE region IS NOT NULL ORDER BY region"
    ).fetchall()
    for (region,) in rows:
        if _starts(region, incomplete):
            yield CompletionItem(region)


def track_triggers(conn: sqlite3.Connection, track_id: int) -> list[dict[str, Any]]:
    """What ``track show --json`` lists under "available" for the track: the triggers of its
    state in its definition version, each with its destination and what blocks it now."""
    from onboarding import definitions, tracks
    from onboarding.db import Database
    from onboarding.engine import load_track

    track = load_track(conn, track_id)
    db = Database(conn)
    defn = definitions.get(db, track["definition"], track["def_version"])
    return tracks.available(db, defn, track)


def _where_triggers(conn: sqlite3.Connection, where: str) -> Iterator[Any]:
    """Triggers leaving the states a --where filter names (every state when it names none),
    in the definitions it names (every one when it names none)."""
    from onboarding.filters import parse_where

    flt = parse_where(where)
    states = {s.strip() for s in (flt.state or "").split("|") if s.strip()}
    seen: set[str] = set()
    for defn in _stored(conn, [flt.definition] if flt.definition else None):
        for state in defn.states:
            if states and state.name not in states:
                continue
            for trigger in defn.triggers_from(state.name):
                if trigger not in seen:
                    seen.add(trigger)
                    t = defn.candidates(state.name, trigger)[0]
                    yield CompletionItem(trigger, help=_move(defn, t.label, t.dest))


def _move(defn: Definition, label: str | None, dest: str) -> str:
    to = f"-> {defn.state(dest).label}"
    return f"{label} {to}" if label else to


def _advance_args(conn: sqlite3.Connection, ctx: click.Context, incomplete: str) -> Iterator[Any]:
    """``track advance [TRACK] TRIGGER``: after a track's number, the triggers its state
    offers; with --where, the triggers of the states it selects."""
    given: tuple[str, ...] = tuple(ctx.params.get("args") or ())
    where = ctx.params.get("where")
    if where and not given:
        items: Iterable[Any] = _where_triggers(conn, where)
    elif not where and len(given) == 1:
        items = (
            CompletionItem(
                a["trigger"],
                help=_blocked(a["label"] or "", a["dest_label"], a["blocked_by"]),
            )
            for a in track_triggers(conn, int(given[0].lstrip("#")))
        )
    else:
        items = ()
    for item in items:
        if item.value.startswith(incomplete):
            yield item


def _blocked(label: str, dest_label: str, blocked_by: list[str]) -> str:
    text = f"{label} -> {dest_label}".strip()
    return f"{text} (blocked: {'; '.join(blocked_by)})" if blocked_by else text


complete_definitions = _from_db(_definitions)
complete_states = _from_db(_states)
complete_municipalities = _from_db(_municipalities)
complete_systems = _from_db(_systems)
complete_vendors = _from_db(_vendors)
complete_advance_args = _from_db(_advance_args)
complete_where = _from_db(_where)
