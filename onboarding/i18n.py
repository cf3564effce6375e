"""The project's one message catalogue: Danish for the web page, the emails and role labels.

Message ids are English; ``locale/da/LC_MESSAGES/messages.po`` holds the Danish. The ``.po``
file is compiled in memory with Babel the first time a language is asked for, so a fresh clone
needs nothing but ``pip install -e .``. English needs no file: the message ids are English.

Here live only the catalogue and the languages; who is reading (the web request's language, the
email's language) is for the caller to say: ``onboarding.web.i18n`` keeps a language per request,
``notifications.render`` one per message.
"""

from __future__ import annotations

import gettext as gettext_module
import io
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "da"
#: Language code -> its name in that language, in menu order.
LANGUAGES = {"da": "Dansk", "en": "English"}


def normalise(lang: object) -> str:
    """A supported language code (anything else gives the default)."""
    return lang if isinstance(lang, str) and lang in LANGUAGES else DEFAULT


@cache
def translations(lang: str) -> gettext_module.NullTranslations:
    """The compiled catalogue of a language (English: the message ids themselves)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext_module.NullTranslations()
    # Babel is imported here, not at the top: the command line imports this module (through
    # the role labels) for many commands that never translate anything.
    from babel.messages import mofile, pofile

    with po.open("rb") as fh:
        catalog = pofile.read_po(fh, locale=lang)
    buf = io.BytesIO()
    mofile.write_mo(buf, catalog)
    buf.seek(0)
    return gettext_module.GNUTranslations(buf)


def gettext(lang: str, message: str) -> str:
    return translations(normalise(lang)).gettext(message)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    return translations(normalise(lang)).ngettext(singular, plural, n)


def pgettext(lang: str, context: str, message: str) -> str:
    return translations(normalise(lang)).pgettext(context, message)
