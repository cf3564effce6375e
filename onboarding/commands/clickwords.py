"""click's own sentences (its usage errors) in the CLI's language.

click marks every sentence it says with the standard library's ``gettext``, bound in each of its
modules as ``_`` and ``ngettext`` when the module is imported, and formats the sentence as it
raises (``No such option {name!r}.``). So the one place to say it in Danish is that lookup:
``install`` points those names of click's modules at our catalogue, where click's sentences
live under the message context ``click``, with click's English as the id and its ``{...}``
fields kept. A sentence without a Danish text in that context (and every sentence in English)
stays what click says.

Only the context ``click`` is read here: click's help words ("Usage:", "Options", "Show this
message and exit.") are translated by our help formatter when the help is written
(``onboarding.commands.helptext``); some are built before ``--lang`` is read (the help option),
and must stay English until then. Likewise a sentence click builds once when an object is made
(a path type's name, "file") is left to click.
"""

from __future__ import annotations

import sys

#: The message context of click's sentences in the catalogue.
CONTEXT = "click"
#: click's modules that say sentences to a person as it parses a command line.
MODULES = ("click.core", "click.exceptions", "click.parser", "click.types", "click.termui")


def gettext(message: str) -> str:
    """One of click's sentences in the CLI's language (``i18n.cli_language``)."""
    from onboarding import i18n

    return str(i18n.translations(i18n.cli_language()).pgettext(CONTEXT, message))


def ngettext(singular: str, plural: str, n: int) -> str:
    """One of click's sentences with a number, in the CLI's language."""
    from onboarding import i18n

    found = i18n.translations(i18n.cli_language())
    return str(found.npgettext(CONTEXT, singular, plural, n))


def install() -> None:
    """Make click's modules look their sentences up here (idempotent; click's own behaviour
    is otherwise unchanged)."""
    import importlib

    for name in MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        names = vars(module)
        if "_" in names:
            names["_"] = gettext
        if "ngettext" in names:
            names["ngettext"] = ngettext
