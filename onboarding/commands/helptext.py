"""Help in the CLI's language (--lang / ONBOARDING_LANG, Danish by default), without click.

The English a command module writes (docstring, help=) is the message id; the help shows its
translation. A help text is translated paragraph by paragraph (so a command's summary in
``onboarding.commands.COMMANDS`` and "Example:" are one message each); a paragraph of command
lines is shown as it is. Only the standard library's gettext reads the catalogue here
(``onboarding.i18n`` keeps a compiled copy), so 'onboarding --help' imports no Babel. Both the
click formatter (``common._Formatter``) and the fast path's root help (``fast.root_help``)
translate through these functions, so the two print the same help in every language.
"""

from __future__ import annotations

from typing import Any

#: click's own metavariables in a usage line.
USAGE_METAVARS = ("[OPTIONS]", "COMMAND [ARGS]...")


def catalogue() -> Any:
    """The catalogue of the CLI's language (``i18n.cli_language``)."""
    from onboarding import i18n

    return i18n.translations(i18n.cli_language())


def help_word(msgid: str) -> str:
    """One of click's own words (a heading, "Usage:", a metavariable) in the CLI's language."""
    return str(catalogue().gettext(msgid))


def usage_args(args: str) -> str:
    """A usage line's arguments with click's metavariables translated (a command's own, FILE,
    TRACK, stay as written)."""
    for metavar in USAGE_METAVARS:
        args = args.replace(metavar, help_word(metavar))
    return args


def cleandoc(doc: str) -> str:
    """``inspect.cleandoc`` (CPython 3.11's steps), without importing ``inspect`` (with ast,
    dis and tokenize, about a fifth of a bare interpreter's start) for the fast root help."""
    lines = doc.expandtabs().split("\n")
    margins = [len(line) - len(line.lstrip()) for line in lines[1:] if line.lstrip()]
    margin = min(margins, default=None)
    lines[0] = lines[0].lstrip()
    if margin is not None:
        lines[1:] = [line[margin:] for line in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def help_paragraphs(text: str) -> list[str]:
    """A help text's paragraphs, as click's wrapping sees them (split at empty lines)."""
    paragraphs: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return ["\n".join(p) for p in paragraphs if p]


def help_msgid(paragraph: str) -> str | None:
    """The message id of a help paragraph: its words on one line (click re-wraps it anyway);
    a paragraph click keeps as written (after a '\\b' line: a table) is its own id. None:
    command lines, shown as they are."""
    lines = paragraph.splitlines()
    body = [line for line in lines if line.strip() != "\b"]
    if all(line[:1].isspace() for line in body) and any("onboarding " in line for line in body):
        return None
    if lines[0].strip() == "\b":
        return "\n".join(lines[1:])
    return " ".join(paragraph.split())


def help_text(text: str) -> str:
    """A help text in the CLI's language (a paragraph not in the catalogue stays English)."""
    if not text:
        return text
    found = catalogue()
    out = []
    for paragraph in help_paragraphs(text):
        msgid = help_msgid(paragraph)
        if msgid is not None:
            translated = found.gettext(msgid)
            if translated != msgid:
                kept = paragraph.startswith("\b")
                indent = paragraph[: len(paragraph) - len(paragraph.lstrip(" "))]
                paragraph = "\b\n" + translated if kept else indent + translated
        out.append(paragraph)
    return "\n\n".join(out)


def first_paragraph(text: str) -> str:
    """A command's summary before it is cut: its help's first paragraph, translated."""
    return help_text(help_paragraphs(text)[0] if text.strip() else "")


def option_help(text: str) -> str:
    """An option's help as click gives it (help, then "  [default: ...; required]") in the
    CLI's language."""
    body, sep, extra = text.rpartition("  [")
    if not (sep and extra.endswith("]")):
        body, extra = text, ""
    found = catalogue()
    if body:
        msgid = " ".join(body.split())
        body = found.gettext(msgid) if found.gettext(msgid) != msgid else body
    if not extra:
        return str(body)
    items = []
    for item in extra[:-1].split("; "):
        name, colon, value = item.partition(": ")
        if colon and name in ("default", "env var"):
            items.append(f"{found.gettext(name)}: {value}")
        else:
            items.append(found.gettext(item))
    return f"{body}  [{'; '.join(items)}]" if body else f"[{'; '.join(items)}]"


# --- click's own sentences (its usage errors) -----------------------------------------------------
#
# click marks every sentence it says with the standard library's ``gettext``, bound in each of
# its modules as ``_`` and ``ngettext`` when the module is imported, and formats the sentence
# as it raises (``No such option {name!r}.``). So the one place to say it in Danish is that
# lookup: ``install_click_words`` points those names of click's modules at our catalogue,
# where click's sentences live under the message context ``click``, with click's English as
# the id and its ``{...}`` fields kept. A sentence without a Danish text in that context (and
# every sentence in English) stays what click says.
#
# Only the context ``click`` is read here: click's help words ("Usage:", "Options", "Show this
# message and exit.") are translated by the help formatter when the help is written
# (``help_text``, ``option_help`` above); some are built before ``--lang`` is read (the help
# option), and must stay English until then. Likewise a sentence click builds once when an
# object is made (a path type's name, "file") is left to click.

#: The message context of click's sentences in the catalogue.
CLICK_CONTEXT = "click"
#: click's modules that say sentences to a person as it parses a command line.
CLICK_MODULES = ("click.core", "click.exceptions", "click.parser", "click.types", "click.termui")


def click_gettext(message: str) -> str:
    """One of click's sentences in the CLI's language (``i18n.cli_language``)."""
    from onboarding import i18n

    return str(i18n.translations(i18n.cli_language()).pgettext(CLICK_CONTEXT, message))


def click_ngettext(singular: str, plural: str, n: int) -> str:
    """One of click's sentences with a number, in the CLI's language."""
    from onboarding import i18n

    found = i18n.translations(i18n.cli_language())
    return str(found.npgettext(CLICK_CONTEXT, singular, plural, n))


def install_click_words() -> None:
    """Make click's modules look their sentences up here (idempotent; click's own behaviour
    is otherwise unchanged)."""
    import importlib
    import sys

    for name in CLICK_MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        names = vars(module)
        if "_" in names:
            names["_"] = click_gettext
        if "ngettext" in names:
            names["ngettext"] = click_ngettext
