"""Keys as people read them, inside messages: a role, a state, a trigger, a field or a phase of a
definition becomes a ``Term`` whose ``str`` is the key (as the English messages, JSON output and
scripts have always had it) and whose forms per language are the labels from the data (role
labels from the roles files, state, step and field labels from the definition, phases from the
catalogue). So an engine refusal names "Aftaleadministrator", never ``agreement-admin``, on the
page and in the Danish command line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from onboarding import i18n
from onboarding.i18n import Phrases, Term

if TYPE_CHECKING:
    from onboarding.i18n import Message
    from workflows.model import Definition, FieldDef


def _quoted(key: str, quoted: bool) -> str:
    return repr(key) if quoted else key


def role(key: str, *, quoted: bool = True) -> Term:
    from onboarding.roles import label

    return Term(_quoted(key, quoted), {lang: label(key, lang) for lang in i18n.LANGUAGES})


def roles(keys: Iterable[str], *, quoted: bool = False) -> Phrases:
    return Phrases(role(k, quoted=quoted) for k in keys)


def state(defn: Definition, name: str, *, quoted: bool = True) -> Term:
    found = defn.by_name.get(name)
    text = found.label if found else name
    return Term(_quoted(name, quoted), {lang: f"“{text}”" for lang in i18n.LANGUAGES})


def trigger(defn: Definition, key: str, *, quoted: bool = True) -> Term:
    """A trigger by its step's label ("Serviceaftaler godkendt"), or, without one, by the
    label of the state it leads to."""
    label = next((t.label for t in defn.transitions if t.trigger == key and t.label), None)
    if label is None:
        dest = next((t.dest for t in defn.transitions if t.trigger == key), None)
        found = defn.by_name.get(dest) if dest else None
        label = found.label if found else key
    return Term(_quoted(key, quoted), {lang: f"“{label}”" for lang in i18n.LANGUAGES})


def triggers(defn: Definition, keys: Iterable[str]) -> Phrases:
    return Phrases(trigger(defn, k, quoted=False) for k in keys)


def field(defn: Definition | None, name: str, *, quoted: bool = False) -> Term:
    found = defn.fields.get(name) if defn is not None else None
    label = found.label if found else name
    return Term(_quoted(name, quoted), {lang: f"“{label}”" for lang in i18n.LANGUAGES})


def field_named(fdef: FieldDef) -> Message:
    """A field as a sentence names it: "field connection_date" in English (its key, as the
    English has always had it), "feltet “Aftalt tilslutningsdato”" in Danish."""
    from onboarding.i18n import Message

    name = keyed(Term(fdef.name, {"da": f"“{fdef.label or fdef.name}”"}))
    return Message("field %(field)s", {"field": name})


def fields(defn: Definition | None, names: Iterable[str]) -> Phrases:
    return Phrases(field(defn, n) for n in names)


def phase(key: str | None, lang: str) -> str:
    """A phase of a shipped definition as the catalogue says it (a value it does not know: as
    it is)."""
    return i18n.pgettext(lang, "phase", key) if key else ""


def genitive(name: str) -> Term:
    """A name to stand before the catalogue's genitive: a message id writes ``%(name)s's``
    (its English, as it has always read), its Danish ``%(name)s``, with the Danish genitive
    in the term ("Aarhus'", "Vejles", never "Aarhuss")."""
    return Term(name, {"da": i18n.genitive(name, "da"), "en": name})


def keyed(term: Term) -> Term:
    """``term`` said in English as its key (the English text of a library error stays what it
    has always been: scripts and tests read it) and in Danish by its label."""
    return Term(str(term), {**term.forms, "en": str(term)})


def keyed_all(phrases: Phrases) -> Phrases:
    """``keyed`` for each term of ``phrases``."""
    return Phrases(
        (keyed(t) if isinstance(t, Term) else t for t in phrases),
        sep=phrases.sep,
        conj=phrases.conj,
    )
