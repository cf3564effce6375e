"""The fast path: ``track advance`` and ``track show`` without importing click (issue 14).

Importing click costs a process about 2x a bare interpreter's start (bench/FINDINGS.md, "The
click floor"), more than the start-up targets of these two commands leave for everything.
So the program (``cli.main``) first offers its command line here: ``parse`` reads it from the
same option spec the click commands are built from (``onboarding.commands.spec``), and only
if it understands the whole line, with nothing click would refuse or treat specially, is the
command's body (``onboarding.commands.track_core``, shared with the click command) run here.
Anything else (``--help``, an unknown or misspelt option, a missing argument, a value click
would reject, a root option, shell completion, a misconfigured stream) returns None, and
click parses the line as before: usage errors stay click's own. What runs here behaves as
the click command does: the same output, one "Error: ..." line and exit code 2 for a user
error, a traceback and exit code 1 for a bug.

``ONBOARDING_CLICK_ONLY=1`` turns the fast path off (the tests run every command both ways).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from onboarding.commands import spec

#: The commands run here: (group, command) -> its spec.
SPECS: dict[tuple[str, str], spec.Spec] = {
    ("track", "advance"): spec.TRACK_ADVANCE,
    ("track", "show"): spec.TRACK_SHOW,
}
#: Set (to anything but empty or 0) to leave every command line to click.
SWITCH = "ONBOARDING_CLICK_ONLY"
#: The root option's environment variable (``cli --lang``), and the values click accepts.
LANG_ENV, LANGS = "ONBOARDING_LANG", ("da", "en")


def parse(command: spec.Spec, argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The callback's parameters click would pass for ``argv`` (the words after the command's
    name) and ``env``, or None where this reader is not sure to agree with click."""
    options = {decl: opt for opt in command.options for decl in opt.decls}
    given: dict[str, Any] = {}
    words: list[str] = []
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word[:1] != "-" or word == "-":
            words.append(word)
            continue
        # '--' (end of options), '-h'/'--help', short options and anything unknown: click's
        name, eq, value = word.partition("=")
        opt = options.get(name)
        if opt is None or not name.startswith("--"):
            return None
        if opt.kind == "flag":
            if eq:
                return None  # click: "Option '--json' does not take a value."
            given[opt.dest] = True
            continue
        if not eq:
            if not rest:
                return None  # click: "Option '--note' requires an argument."
            value = rest.pop(0)  # click takes the next word whatever it looks like
        converted = _convert(opt.type, value)
        if converted is None:
            return None
        if opt.kind == "multiple":
            given.setdefault(opt.dest, []).append(converted)
        else:
            given[opt.dest] = converted
    params = _arguments(command.args, words)
    if params is None:
        return None
    for opt in command.options:
        params[opt.dest] = _value(opt, given, env)
        if params[opt.dest] is _REFUSED:
            return None
    return params


_REFUSED = object()


def _arguments(args: Sequence[spec.Arg], words: list[str]) -> dict[str, Any] | None:
    """The positional arguments: each one word, the one with ``nargs`` -1 all the rest (at
    least one); too few or too many words are click's to say."""
    params: dict[str, Any] = {}
    words = list(words)
    for arg in args:
        if arg.nargs == 1:
            if not words:
                return None
            params[arg.name] = words.pop(0)
        else:
            if not words:
                return None
            params[arg.name] = tuple(words)
            words = []
    return params if not words else None


def _value(opt: spec.Opt, given: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """An option's value: given on the line, else its environment variable (click ignores an
    empty one), else its default; ``_REFUSED`` where click would refuse it."""
    if opt.dest in given:
        found = given[opt.dest]
        return tuple(found) if opt.kind == "multiple" else found
    if opt.kind == "flag":
        return bool(opt.default)
    if opt.envvar is not None and env.get(opt.envvar):
        if opt.kind == "multiple":
            return _REFUSED  # click splits these on whitespace: not needed, not done here
        converted = _convert(opt.type, env[opt.envvar])
        return _REFUSED if converted is None else converted
    if opt.kind == "multiple":
        return ()
    return opt.default


def _convert(kind: str, text: str) -> Any:
    """A value as click's type for ``kind`` gives it, or None where click would refuse it
    (or where this reader is not sure)."""
    if "\x00" in text:
        return None
    if kind == "text":
        return text
    if kind == "file":
        # click.Path(dir_okay=False): a directory is refused, anything else passes as given
        return None if os.path.isdir(text) else text
    try:
        number = int(text)  # click.INT and click.IntRange convert with int()
    except ValueError:
        return None
    if kind == "int>=1" and number < 1:
        return None
    return number


def streams_ok() -> bool:
    """Whether stdout and stderr are streams click would write to as they are: click wraps
    one whose encoding is ASCII (a misconfigured locale) to write UTF-8 instead."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            if codecs.lookup(encoding).name == "ascii":
                return False
        except LookupError:
            return False
    return True


def _bodies() -> dict[tuple[str, str], Callable[..., None]]:
    from onboarding.commands import track_core

    def advance(where: str | None, limit: int, **params: Any) -> None:
        track_core.advance_one(**params)

    return {("track", "advance"): advance, ("track", "show"): track_core.show}


def understood(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The command and its parameters when this path runs ``argv``, else None."""
    if len(argv) < 2 or (argv[0], argv[1]) not in SPECS:
        return None
    if env.get(SWITCH, "") not in ("", "0"):
        return None
    # click's shell completion runs when _<PROG>_COMPLETE is set
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in env):
        return None
    lang = env.get(LANG_ENV)
    if lang and lang not in LANGS:
        return None  # click: "Invalid value for '--lang'"
    params = parse(SPECS[argv[0], argv[1]], argv[2:], env)
    if params is None:
        return None
    if argv[1] == "advance" and params["where"] is not None:
        return None  # many tracks: the click command (its progress bar is click's)
    return params


def run(argv: Sequence[str]) -> int | None:
    """Run ``argv`` here and give the exit code, or None (nothing done) for click to run it."""
    params = understood(argv, os.environ)
    if params is None or not streams_ok():
        return None
    from onboarding import i18n
    from onboarding.commands.base import Refused, command_errors, echo

    # the root command's callback: --lang is only read from the environment here
    i18n.choose(os.environ.get(LANG_ENV) or None)
    try:
        try:
            with command_errors():
                _bodies()[argv[0], argv[1]](**params)
        except Refused as exc:
            echo(f"Error: {exc.message}", err=True)
            return exc.exit_code
        except KeyboardInterrupt:  # click: "Aborted!" and exit code 1
            echo("", err=True)
            echo("Aborted!", err=True)
            return 1
    except BrokenPipeError:
        # click: a closed pipe (| head) ends the program quietly, exit code 1
        _pacify()
        return 1
    return 0


def _pacify() -> None:
    """As click on EPIPE: the interpreter's last flush of the closed streams must not raise."""
    sys.stdout = _Pacified(sys.stdout)
    sys.stderr = _Pacified(sys.stderr)


class _Pacified:
    """click's ``_PacifyFlushWrapper``: a stream whose flush ignores a broken pipe."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        import contextlib

        with contextlib.suppress(BrokenPipeError):
            self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
