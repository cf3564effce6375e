"""The fast path: ``track advance``, ``track show`` and ``--help`` without click (issue 14).

Importing click costs a process about 2x a bare interpreter's start (bench/FINDINGS.md, "The
click floor"), more than the start-up targets of these commands leave for everything. So the
program (``cli.main``) first offers its command line here: ``parse`` reads it from the same
option spec the click commands are built from (``onboarding.commands.spec``), and only if it
understands the whole line, with nothing click would refuse or treat specially, is the
command's body (``onboarding.commands.track_core``, shared with the click command) run here;
``onboarding --help`` (or ``-h``) alone prints the root help as click would (``root_help``).
Anything else (a command's ``--help``, an unknown or misspelt option, a missing argument, a
value click would reject, a root option, shell completion, a misconfigured stream) returns
None, and click parses the line as before: usage errors stay click's own. What runs here
behaves as the click command does: the same output, one "Error: ..." line and exit code 2
for a user error, a traceback and exit code 1 for a bug.

``ONBOARDING_CLICK_ONLY=1`` turns the fast path off (the tests run every command both ways;
docs/benchmarks.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import textwrap

from onboarding.commands import COMMANDS, LANG_ENV, LANG_HELP, LANGS, ROOT_HELP, spec

#: The commands run here: (group, command) -> its spec.
SPECS: dict[tuple[str, str], spec.Spec] = {
    ("track", "advance"): spec.TRACK_ADVANCE,
    ("track", "show"): spec.TRACK_SHOW,
}
#: Set (to anything but empty or 0) to leave every command line to click.
SWITCH = "ONBOARDING_CLICK_ONLY"


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


def _plain(env: Mapping[str, str]) -> bool:
    """Whether the environment leaves click nothing special to do: the test switch is off, no
    shell completion is asked for (_<PROG>_COMPLETE), the language is one --lang accepts."""
    if env.get(SWITCH, "") not in ("", "0"):
        return False
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in env):
        return False
    lang = env.get(LANG_ENV)
    return not lang or lang in LANGS  # else click: "Invalid value for '--lang'"


def understood(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The command and its parameters when this path runs ``argv``, else None."""
    if len(argv) < 2 or (argv[0], argv[1]) not in SPECS or not _plain(env):
        return None
    params = parse(SPECS[argv[0], argv[1]], argv[2:], env)
    if params is None:
        return None
    if argv[1] == "advance" and params["where"] is not None:
        return None  # many tracks: the click command (its progress bar is click's)
    return params


def run(argv: Sequence[str]) -> int | None:
    """Run ``argv`` here and give the exit code, or None (nothing done) for click to run it."""
    if list(argv) in (["--help"], ["-h"]) and _plain(os.environ) and streams_ok():
        return _guarded(_print_root_help, mapped=False)
    params = understood(argv, os.environ)
    if params is None or not streams_ok():
        return None
    from onboarding import i18n

    # the root command's callback: --lang is only read from the environment here
    i18n.choose(os.environ.get(LANG_ENV) or None)
    body = _bodies()[argv[0], argv[1]]
    return _guarded(lambda: body(**params))


def _print_root_help() -> None:
    from onboarding.commands.base import echo

    echo(root_help(os.path.basename(sys.argv[0]), _help_width()))


def _guarded(action: Callable[[], None], mapped: bool = True) -> int:
    """Run ``action`` as click's ``main`` runs a command, and give the exit code; ``mapped``:
    with the commands' error mapping (``base.command_errors``; printing the help needs none,
    nor the modules it imports)."""
    from onboarding.commands.base import Refused, command_errors, echo, error_line

    try:
        try:
            if mapped:
                with command_errors():
                    action()
            else:
                action()
        except Refused as exc:
            echo(error_line(exc.message), err=True)
            return exc.exit_code
        except (EOFError, KeyboardInterrupt):  # click: "Aborted!" and exit code 1
            from onboarding.commands.helptext import click_gettext

            echo("", err=True)
            echo(click_gettext("Aborted!"), err=True)
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


# --- 'onboarding --help' --------------------------------------------------------------------------

#: The root group's options as click lists them: (names, help); --version and --help are
#: click's own (click.version_option, the help option), --lang is ours.
ROOT_OPTIONS = (
    ("--version", "Show the version and exit."),
    (f"--lang [{'|'.join(LANGS)}]", LANG_HELP),
    ("-h, --help", "Show this message and exit."),
)


def _help_width() -> int:
    """The width click's help formatter takes (``common._Formatter``: $COLUMNS, else the
    terminal's, within 50..78)."""

    from onboarding.commands.base import columns

    return max(min(columns(), 80) - 2, 50)


def root_help(prog: str, width: int) -> str:
    """``onboarding --help`` as click writes it at ``width`` (``tests/test_fast_path.py``
    compares the two for every width, several program names and both languages): the usage
    line, the help text, the options and the commands with their summaries cut to fit, each
    text translated as click's formatter translates it (``onboarding.commands.helptext``)."""
    from onboarding.commands import helptext

    word = helptext.help_word
    usage = _usage(prog, helptext.usage_args("[OPTIONS] COMMAND [ARGS]..."), width, word("Usage:"))
    out = [usage, "\n"]
    text = helptext.help_text(helptext.cleandoc(ROOT_HELP))
    out.append(_wrap_paragraphs(text, width, "  ") + "\n")
    options = [(names, helptext.option_help(text)) for names, text in ROOT_OPTIONS]
    out.append(f"\n{word('Options')}:\n" + _definitions(options, width))
    limit = width - 6 - max(len(name) for name in COMMANDS)
    rows = [
        (name, helptext.option_help(_short_help(helptext.first_paragraph(summary), limit)))
        for name, (_, _, summary) in sorted(COMMANDS.items())
    ]
    out.append(f"\n{word('Commands')}:\n" + _definitions(rows, width))
    return "".join(out).rstrip("\n")  # as click's get_help(); echo ends the line


def _usage(prog: str, args: str, width: int, usage: str = "Usage:") -> str:
    """click's ``HelpFormatter.write_usage`` at indent 0 (``usage``: its prefix's word)."""
    prefix = f"{usage} {prog} "
    if width >= len(prefix) + 20:
        text = _wrapper(width, prefix, " " * len(prefix)).fill(args)
    else:
        indent = " " * (len(usage) + 1 + 4)
        text = prefix + "\n" + _wrapper(width, indent, indent).fill(args)
    return text + "\n"


def _wrapper(width: int, first: str, rest: str) -> textwrap.TextWrapper:
    import textwrap

    return textwrap.TextWrapper(
        width, initial_indent=first, subsequent_indent=rest, replace_whitespace=False
    )


def _wrap_paragraphs(text: str, width: int, indent: str) -> str:
    """click's ``wrap_text(..., preserve_paragraphs=True)``: paragraphs by blank lines, each
    rewrapped at its own indentation (no \\b blocks in our texts)."""
    paragraphs: list[tuple[int, str]] = []
    buf: list[str] = []
    level: int | None = None
    for line in [*text.expandtabs().splitlines(), ""]:
        if not line:
            if buf:
                paragraphs.append((level or 0, " ".join(buf)))
            buf, level = [], None
            continue
        if level is None:
            stripped = line.lstrip()
            level, line = len(line) - len(stripped), stripped
        buf.append(line)
    return "\n\n".join(
        _wrapper(width, indent + " " * n, indent + " " * n).fill(p) for n, p in paragraphs
    )


def _definitions(rows: Sequence[tuple[str, str]], width: int) -> str:
    """click's ``HelpFormatter.write_dl`` at indent 2 (a section's)."""
    first_col = min(max(len(a) for a, _ in rows), 30) + 2
    text_width = max(width - first_col - 2, 10)
    out = []
    for first, second in rows:
        out.append(f"  {first}")
        if not second:
            out.append("\n")
            continue
        if len(first) <= first_col - 2:
            out.append(" " * (first_col - len(first)))
        else:
            out.append("\n" + " " * (first_col + 2))
        lines = _wrap_paragraphs(second, text_width, "").splitlines()
        out.append(f"{lines[0]}\n" if lines else "\n")
        out.extend(f"{'':>{first_col + 2}}{line}\n" for line in lines[1:])
    return "".join(out)


def _short_help(text: str, limit: int) -> str:
    """click's short help of a command: its first sentence, shortened to ``limit``."""
    words = text.partition("\n\n")[0].split()
    for i, word in enumerate(words):
        if word.endswith(".") and (i == len(words) - 1 or not words[i + 1][0].islower()):
            words = words[: i + 1]
            break
    joined = " ".join(words)
    if len(joined) <= limit:
        return joined.strip()
    if limit < 3:
        return "..."
    import textwrap

    short: str = textwrap.shorten(joined, limit, placeholder="...", break_on_hyphens=False)
    return short.strip()
