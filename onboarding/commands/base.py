"""What the commands share that needs no click: errors that are the user's, printing, opening
the database, labels and human output in the reader's language.

Split from ``onboarding.commands.common`` (which re-exports all of it) so that the commands the
fast path runs without click (``onboarding.commands.fast``: ``track advance``, ``track show``)
share their bodies with the click commands. Printing goes through ``echo``: ``click.echo``
itself whenever click is loaded (every click command, click's test runner), else the same
steps without click.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class Refused(Exception):
    """A user error raised outside click: one line on stderr ("Error: ..."), exit code 2,
    nothing changed. The click groups turn it into ``common.UserError``."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_line(message: str) -> str:
    """A user error as the one line the program prints: "Fejl: ..." in Danish, "Error: ..."
    in English (click prints the same for its own errors; ours say it in the CLI's
    language)."""
    from onboarding.i18n import cli_language, gettext

    return gettext(cli_language(), "Error: %(message)s") % {"message": message}


def echo(message: str, err: bool = False) -> None:
    """``click.echo(message, err=err)``: with click loaded, click's own; without, what it
    does for text on a correctly configured stream (``fast.streams_ok``): write the line,
    drop ANSI styles where the stream is not a terminal, flush."""
    if "click" in sys.modules:
        import click

        click.echo(message, err=err)
        return
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    text = f"{message}\n"
    if "\x1b" in text and not _isatty(stream):
        import re

        # click.utils strip_ansi's expression
        text = re.sub(r"\033\[[;?0-9]*[a-zA-Z]", "", text)
    stream.write(text)
    stream.flush()


def columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` reads it ($COLUMNS, else stdout's
    terminal, else 80), without importing ``shutil`` (and its bz2, lzma, zlib) at start."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # click's isatty(): any failure means no terminal
        return False


@contextmanager
def command_errors() -> Iterator[None]:
    """What every command does around its body: warnings as lines on stderr once it has
    succeeded, and a library user error or a storage fault as ``Refused`` (one line, exit 2).
    Anything else is a bug and passes (exit 1)."""
    import sqlite3

    from onboarding.db import NotInitialised
    from onboarding.errors import OnboardingError
    from onboarding.storage import describe

    try:
        with _warnings_to_stderr():
            yield
    except OnboardingError as exc:
        from onboarding.i18n import cli_language

        raise Refused(exc.say(cli_language(), cli=True)) from exc
    except NotInitialised as exc:
        from onboarding.i18n import Message, cli_language

        first = exc.args[0] if exc.args else ""
        raise Refused(
            first.say(cli_language()) if isinstance(first, Message) else str(exc)
        ) from exc
    except (sqlite3.Error, OSError) as exc:
        # A storage fault that no 'database()' block named a file for (a full disk, a
        # read-only file system): still one line. Anything else is a bug (exit 1).
        error = describe(exc)
        if error is None:
            raise
        from onboarding.i18n import cli_language

        raise Refused(error.say(cli_language(), cli=True)) from exc


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Our warnings (a date far from the step) as one line each on stderr, once per message,
    when the command has succeeded: a refused command says only why (one line)."""
    import warnings

    from onboarding.clock import FarDateWarning, warning_text

    seen: list[str] = []

    def keep(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        text = warning_text(message)  # a Message: said in the CLI's language below
        if text not in seen:
            seen.append(text)

    with warnings.catch_warnings():
        warnings.simplefilter("always", FarDateWarning)
        warnings.showwarning = keep
        yield
    for text in seen:
        echo(t("warning: %(message)s", message=say(text)), err=True)


def _on_terminal() -> bool:
    """Whether stdout is a terminal: only there are tables fitted to its width."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def read_scope(db: Any, reader: str | None) -> Any:
    """The ``onboarding.visibility.Scope`` of ``--actor`` (everything without one)."""
    from onboarding import visibility

    return visibility.of(db, reader)


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the audit trail still needs one
        return os.environ.get("USER") or "unknown"


def open_db(db_path: str | None) -> Any:
    from onboarding.db import open_existing, resolve_path

    return open_existing(resolve_path(db_path))


@contextmanager
def database(db_path: str | None) -> Iterator[Any]:
    """The database for one command, closed when the command is done; a storage fault while
    it is used (full disk, read-only file) becomes one line naming it (onboarding.storage)."""
    from onboarding.db import resolve_path
    from onboarding.storage import guard

    db = open_db(db_path)
    try:
        with guard(resolve_path(db_path), os_errors=False):
            yield db
    finally:
        db.close()


def echo_json(data: Any) -> None:
    import json  # here, as every import of this module: 'onboarding --help' loads it

    echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned plain-text table. On a terminal long cells are cut (with "…")
    to fit its width; piped or redirected, nothing is cut (the text goes into mails and files)."""
    if not rows:
        echo(t("(none)"))
        return
    import shutil

    cols = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    # A column's name in the CLI's language ("display_name": "visningsnavn"); a name the
    # catalogue lacks (one already said in it, a label from the data) is shown as it is.
    heads = [t(c) for c in cols]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    budget = max(80, shutil.get_terminal_size((80, 24)).columns) - 2 * (len(cols) - 1)
    while _on_terminal() and sum(widths) > budget and max(widths) > 8:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    echo("  ".join(h.ljust(w)[:w] for h, w in zip(heads, widths, strict=True)).rstrip())
    echo("  ".join("-" * w for w in widths))
    for row in cells:
        echo("  ".join(_fit(v, w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return t("yes") if value else t("no")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _fit(value: str, width: int) -> str:
    if len(value) <= width:
        return value.ljust(width)
    return value[: width - 1] + "…"


def parse_sets(values: Iterable[str], option: str = "--set") -> dict[str, str]:
    """``--set NAME=VALUE`` options as a dict."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise Refused(f"{option} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _parse_at(at: str | None) -> Any:
    from onboarding import clock

    return clock.parse_time(at, what="--at") if at else None


def _track_id(text: str) -> int:
    try:
        return int(text.lstrip("#"))
    except ValueError:
        raise Refused(f"track {text!r}: give the track's number, e.g. 12") from None


def _echo_history(rows: list[dict[str, Any]], with_track: bool, db: Any = None) -> None:
    """Two lines per step: when, which track and move; then who, in which role, and why.
    Given the database, states and roles are named by their labels."""
    if not rows:
        echo(t("(none)"))
    labels = Labels(db) if db is not None else None
    defs: dict[int, str] = {}

    def definition(r: dict[str, Any]) -> Any:
        assert labels is not None
        if r["track"] not in defs:
            found = db.execute("SELECT definition FROM tracks WHERE id = ?", [r["track"]])
            defs[r["track"]] = found.fetchone()[0]
        return labels.definition(defs[r["track"]], r.get("definition_version"))

    def state(r: dict[str, Any], key: str | None) -> str:
        if labels is None or not key:
            return key or ""
        found = definition(r).by_name.get(key)
        return str(found.label) if found is not None else key

    def field(r: dict[str, Any], name: str, value: Any) -> str:
        """``name=value`` as read: the field's label, a date in the language's format."""
        if labels is None:
            return f"{name}={value}"
        fdef = definition(r).fields.get(name)
        if fdef is None:
            return f"{name}={value}"
        if value is None:
            return f"{fdef.label}: {t('not reported')}"
        shown = value
        if fdef.type == "date" and isinstance(value, str):
            try:
                shown = day(value)
            except ValueError:  # a value stored before the type was checked: as it is
                shown = value
        return f"{fdef.label}: {shown}"

    # Steps by their labels in Danish; in English by the key a command line types (as
    # English has always shown them).
    by_label = labels is not None and lang() == "da"
    special = (
        {
            "@start": t("Started"),
            "@set": t("Fields recorded"),
            "@migrate": t("Moved to a new workflow version"),
        }
        if by_label
        else {}
    )

    def step(r: dict[str, Any]) -> str:
        key = str(r["trigger"])
        if not by_label:
            return key
        if key in special:
            return special[key]
        from onboarding import terms

        return terms.trigger(definition(r), key, quoted=False).say("da")

    for r in rows:
        track = f"#{r['track']}  " if with_track else ""
        if r["from"]:
            move = f"{state(r, r['from'])} -> {state(r, r['to'])}"
        else:
            move = t("started in %(state)s", state=state(r, r["to"]))
        when = moment(r["at"]) if labels is not None else _display(r["at"])
        echo(f"{when}  {track}{step(r)}: {move}")
        role = Labels.role(r["role"]) if labels is not None else r["role"]
        details = [f"{r['actor']} ({role})"]
        details += [field(r, k, v) for k, v in r["fields"].items()]
        if r["note"]:
            details.append(t("note: %(note)s", note=r["note"]))
        echo("                  " + "; ".join(details))


def _display(stamp: str) -> str:
    from onboarding import clock

    return clock.display(stamp)


def _mail_config(db_path: str | None, db: Any) -> Any:
    """Mail settings for the database: the environment, its config file, then the settings
    stored in it ('onboarding mail configure'); never options."""
    from notifications.config import load_config
    from onboarding.db import resolve_path

    return load_config(resolve_path(db_path), db=db)


def _parse_day(text: str | None, option: str, *, future_ok: bool = False) -> Any:
    """The day an option names, or None; a day after today is refused (a report as of it
    would claim a future nobody has seen) unless ``future_ok`` (a write whose library call
    has its own time guard, naming the current time)."""
    from onboarding import clock

    if not text:
        return None
    day = clock.parse_date(text, what=option)
    today = clock.local_date(clock.now())
    if day > today and not future_ok:
        from onboarding.errors import InputError
        from onboarding.i18n import Message

        raise InputError(
            Message(
                "%(option)s %(day)s is after today (%(today)s): there is no history for it yet",
                {"option": option, "day": day, "today": today},
            )
        )
    return day


def _today() -> Any:
    from onboarding import clock

    return clock.local_date(clock.now())


def _key_created(key_file: Any, public: bytes) -> str:
    from onboarding import audit as audit_mod

    return t(
        "audit key created: %(file)s (fingerprint %(fingerprint)s); back it up apart from the"
        " database, see docs/audit.md",
        file=key_file,
        fingerprint=audit_mod.fingerprint(public),
    )


# --- human output in the reader's language (--lang / ONBOARDING_LANG, Danish by default) ------


def lang() -> str:
    from onboarding.i18n import cli_language

    return cli_language()


def t(msgid: str, **params: Any) -> str:
    """A line of human output from the catalogue, in the CLI's language."""
    from onboarding import i18n

    text = i18n.gettext(lang(), msgid)
    return text % params if params else text


def tn(singular: str, plural: str, n: int, **params: Any) -> str:
    from onboarding import i18n

    return i18n.ngettext(lang(), singular, plural, n) % {"n": n, **params}


def say(text: Any) -> str:
    """A sentence the library gave (a ``Message``) in the CLI's language."""
    from onboarding.i18n import localise

    return localise(text, lang())


def day(value: Any) -> str:
    """A date (ISO text or date) as the CLI's language writes it; '' for none."""
    from datetime import date, datetime

    from onboarding import i18n

    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        return i18n.fmt_date(value.date(), lang())
    if isinstance(value, date):
        return i18n.fmt_date(value, lang())
    return i18n.fmt_date(date.fromisoformat(str(value)[:10]), lang())


def moment(stamp: str | None) -> str:
    """A stored instant in Copenhagen time as the CLI's language writes it."""
    from onboarding import clock, i18n

    return i18n.fmt_datetime(clock.unstamp(stamp), lang()) if stamp else ""


def shown_local(text: str | None) -> str:
    """A local time as ``clock.display`` gives it (2021-06-30 10:15), as the language writes
    it (30.06.2021 10:15)."""
    from datetime import datetime

    from onboarding import clock, i18n

    if not text:
        return ""
    local = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=clock.LOCAL)
    return i18n.fmt_datetime(local, lang())


class Labels:
    """Keys of the definitions as people read them (state, phase, role), cached per run."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._defs: dict[tuple[str, int], Any] = {}

    def definition(self, name: str, version: int | None = None) -> Any:
        from onboarding import definitions

        key = (name, int(version or 0))
        if key not in self._defs:
            self._defs[key] = definitions.get(self.db, name, version)
        return self._defs[key]

    def state(self, name: str, version: int | None, state: str | None) -> str:
        if not state:
            return ""
        found = self.definition(name, version).by_name.get(state)
        return str(found.label) if found is not None else state

    def title(self, name: str, version: int | None = None) -> str:
        return str(self.definition(name, version).title)

    @staticmethod
    def phase(key: str | None) -> str:
        from onboarding import terms

        return terms.phase(key, lang())

    @staticmethod
    def role(key: str | None) -> str:
        from onboarding.roles import label

        return label(key, lang()) if key else ""
