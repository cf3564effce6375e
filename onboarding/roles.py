"""The roles people act in, with the Danish description users know them by.

Role names are stable identifiers used in contacts, workflow definitions (who may fire a trigger)
and the audit trail; the descriptions follow the KOMBIT deck's wording.
"""

from __future__ import annotations

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
