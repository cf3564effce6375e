"""The roles people act in, with the Danish description users know them by.

Role names are stable identifiers used in contacts, workflow definitions (who may fire a trigger)
and the audit trail; the descriptions follow the KOMBIT deck's wording. A role name is never
shown to a person: ``label`` gives the description in a language and ``addressee`` the form an
email greets someone by when only their role is known ("SAPA-systemejeren i Køge"), both
through the project's message catalogue (``onboarding.i18n``, context ``role`` and
``addressee``; the English texts below are its message ids).
"""

from __future__ import annotations

from onboarding import i18n
from onboarding.errors import InputError

ROLES: dict[str, str] = {
    "coordinator": "KOMBIT-koordinator",
    "programme-lead": "kommunens KOMBIT-programleder",
    "municipality-pl": "kommunens BOB/SAPA-projektleder",
    "agreement-admin": "aftaleadministrator for fagsystemet",
    "bob-agreement-admin": "BoB-aftaleadministrator (databehandleraftale med DIGST)",
    "sapa-owner": "SAPA-systemejer",
    "sapa-admin": "SAPA-administrator",
    "bob-admin": "BoB-administrator (Borgerblik-administration)",
    "vendor": "leverandør",
    "importer": "månedlig statusimport",
    "system": "automatik",
}

#: The descriptions in English: the catalogue's message ids (context ``role``), whose Danish is
#: ``ROLES`` (a test checks the two agree).
LABELS_EN: dict[str, str] = {
    "coordinator": "KOMBIT coordinator",
    "programme-lead": "the municipality's KOMBIT programme lead",
    "municipality-pl": "the municipality's BOB/SAPA project lead",
    "agreement-admin": "agreement administrator for the system",
    "bob-agreement-admin": "BoB agreement administrator (data processing agreement with DIGST)",
    "sapa-owner": "SAPA system owner",
    "sapa-admin": "SAPA administrator",
    "bob-admin": "BoB administrator (Borgerblik administration)",
    "vendor": "vendor",
    "importer": "monthly status import",
    "system": "automation",
}
#: How a message addresses someone known only by their role (context ``addressee``).
ADDRESSEES_EN: dict[str, str] = {
    "coordinator": "the KOMBIT coordinator",
    "programme-lead": "the KOMBIT programme lead",
    "municipality-pl": "the BOB/SAPA project lead",
    "agreement-admin": "the agreement administrator for the system",
    "bob-agreement-admin": "the BoB agreement administrator",
    "sapa-owner": "the SAPA system owner",
    "sapa-admin": "the SAPA administrator",
    "bob-admin": "the BoB administrator",
    "vendor": "the vendor",
    "importer": "the monthly status import",
    "system": "the automation",
}

#: Roles someone holds *for one municipality*: their contacts must name it.
MUNICIPALITY_ROLES = frozenset(
    {
        "programme-lead",
        "municipality-pl",
        "agreement-admin",
        "bob-agreement-admin",
        "sapa-owner",
        "sapa-admin",
        "bob-admin",
    }
)
#: Roles someone holds for one vendor: their contacts must name it.
VENDOR_ROLES = frozenset({"vendor"})


def require_role(role: str) -> None:
    """Refuse a role name that is not one of ``ROLES`` (a user's typo, exit 2)."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")


def label(role: str, lang: str = i18n.DEFAULT) -> str:
    """The role's description in ``lang`` ("SAPA-systemejer", "SAPA system owner")."""
    english = LABELS_EN.get(role)
    return i18n.pgettext(lang, "role", english) if english else role


def addressee(
    role: str,
    lang: str = i18n.DEFAULT,
    *,
    municipality: str | None = None,
    vendor: str | None = None,
) -> str:
    """Whom to greet when only the role is known, with the municipality or vendor it is held
    for: "SAPA-systemejeren i Køge", "the vendor, KMD", "KOMBIT-koordinatoren"."""
    english = ADDRESSEES_EN.get(role)
    who = i18n.pgettext(lang, "addressee", english) if english else label(role, lang)
    if role in MUNICIPALITY_ROLES and municipality:
        return i18n.gettext(lang, "%(who)s in %(municipality)s") % {
            "who": who,
            "municipality": municipality,
        }
    if role in VENDOR_ROLES and vendor:
        return i18n.gettext(lang, "%(who)s, %(vendor)s") % {"who": who, "vendor": vendor}
    return who
