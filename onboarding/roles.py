"""The roles people act in, with the Danish and English labels users know them by.

Roles are data: the shipped ones are ``workflows/roles.yaml``, and a definition may declare more
in its own ``roles:`` list (same form: key, label ``{da, en}``, scope kind, optional addressee;
``workflows.roles``). A role key is a stable identifier used in grants, contacts, workflow
definitions (who may fire a trigger, whom a notification goes to) and the audit trail; it is
never shown to a person: ``label`` gives the role's label in a language and ``addressee`` the
form an email greets someone by when only their role is known ("SAPA-systemejeren i Køge").

Which declared roles exist depends on the database (the definitions added to it): functions that
decide whether a role exists take the database (``require_role(role, db)``, ``known(db)``);
wording (``label``, ``addressee``) also knows the roles of every definition this process has read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from onboarding import i18n
from onboarding.db import Database
from onboarding.errors import InputError
from onboarding.i18n import Message
from workflows.model import RoleDef
from workflows.roles import shipped_roles

#: The shipped roles by key (``workflows/roles.yaml``), in the file's order.
SHIPPED: Mapping[str, RoleDef] = shipped_roles()

#: Each shipped role's Danish label (the form the web page and older callers read).
ROLES: dict[str, str] = {k: r.label["da"] for k, r in SHIPPED.items()}
#: Each shipped role's English label.
LABELS_EN: dict[str, str] = {k: r.label["en"] for k, r in SHIPPED.items()}
#: How a message addresses someone known only by a shipped role, in English.
ADDRESSEES_EN: dict[str, str] = {
    k: r.addressee.get("en", r.label["en"]) for k, r in SHIPPED.items()
}
#: Shipped roles someone holds *for one municipality*: their contacts must name it.
MUNICIPALITY_ROLES = frozenset(k for k, r in SHIPPED.items() if r.scope == "municipality")
#: Shipped roles someone holds for one vendor: their contacts must name it.
VENDOR_ROLES = frozenset(k for k, r in SHIPPED.items() if r.scope == "vendor")

#: Roles declared by definitions this process has read, for wording only (a process may read
#: more than one database; whether a role exists in one is ``declared(db)``).
_seen: dict[str, RoleDef] = {}


def remember(roles: Iterable[RoleDef]) -> None:
    """Note a definition's own roles for their labels (a shipped key keeps the shipped one)."""
    for role in roles:
        if role.key not in SHIPPED:
            _seen[role.key] = role


def declared(db: Database) -> dict[str, RoleDef]:
    """The roles the definitions stored in ``db`` declare (every version; where two versions
    word a role differently the later one's wording counts), shipped keys left out."""
    from onboarding import definitions

    out: dict[str, RoleDef] = {}
    for defn in definitions.stored(db):
        for role in defn.roles:
            if role.key not in SHIPPED:
                out[role.key] = role
    remember(out.values())
    return out


def known(db: Database | None = None) -> dict[str, RoleDef]:
    """Every role: the shipped ones, then (given a database) those its definitions declare."""
    return {**SHIPPED, **(declared(db) if db is not None else {})}


def require_role(role: str, db: Database | None = None) -> RoleDef:
    """The role, or refuse a name that is neither shipped nor (given ``db``) declared by one of
    its definitions (a user's typo, exit 2). Shipped roles need no database read."""
    found = SHIPPED.get(role)
    if found is not None:
        return found
    roles = known(db)
    if role not in roles:
        # The keys are listed: they are what the command line and the API take.
        raise InputError(
            Message(
                "unknown role %(role)s (roles: %(roles)s)",
                {"role": repr(role), "roles": ", ".join(roles)},
            )
        )
    return roles[role]


def lookup(role: str) -> RoleDef | None:
    """A shipped role, or one a definition this process has read declares (for wording)."""
    return SHIPPED.get(role) or _seen.get(role)


def scope_of(role: str, db: Database | None = None) -> str | None:
    """The role's scope kind (national, municipality, vendor, subject); None if unknown."""
    found = SHIPPED.get(role)
    if found is None and db is not None:
        found = declared(db).get(role)
    found = found or _seen.get(role)
    return found.scope if found else None


def label(role: str, lang: str = i18n.DEFAULT) -> str:
    """The role's label in ``lang`` ("SAPA-systemejer", "SAPA system owner"); the key itself
    for a role nobody declared."""
    found = lookup(role)
    if found is None:
        return role
    return found.label.get(i18n.normalise(lang)) or found.label[i18n.DEFAULT]


def addressee(
    role: str,
    lang: str = i18n.DEFAULT,
    *,
    municipality: str | None = None,
    vendor: str | None = None,
) -> str:
    """Whom to greet when only the role is known, with the municipality or vendor it is held
    for: "SAPA-systemejeren i Køge", "the vendor, KMD", "KOMBIT-koordinatoren"."""
    found = lookup(role)
    who = (found.addressee.get(i18n.normalise(lang)) if found else None) or label(role, lang)
    scope = found.scope if found else None
    if scope in ("municipality", "subject") and municipality:
        return i18n.gettext(lang, "%(who)s in %(municipality)s") % {
            "who": who,
            "municipality": municipality,
        }
    if scope in ("vendor", "subject") and vendor:
        return i18n.gettext(lang, "%(who)s, %(vendor)s") % {"who": who, "vendor": vendor}
    return who
