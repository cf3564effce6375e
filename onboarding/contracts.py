"""Contract terms a municipality reports for a system, and who pays for connecting it.

Kept apart from ``onboarding.registry`` (which re-exports them) so that ``track show``, which
names a track's payment scenario, does not import the registry and its CSV readers at start
(issue 14).
"""

from __future__ import annotations

from onboarding.errors import InputError

#: Contract terms from the KLIK task "Systemoverblik": they decide whether a vendor may charge
#: a municipality for connecting a system.
PAYMENT_SCENARIOS = {
    "ski-02.19-2019": "Connection is included in the price.",
    "ski-02.19-2014": (
        "The vendor may raise the primary service price by up to 10 % "
        "for all mandatory integrations."
    ),
    "eu-tender": "Depends on the wording of the contract.",
    "unknown": "Not yet reported (KLIK task Systemoverblik).",
}
CONTRACTS = tuple(PAYMENT_SCENARIOS)


def payment_scenario(contract: str) -> str:
    """Who pays for connecting a system, under the contract terms a municipality reported."""
    try:
        return PAYMENT_SCENARIOS[contract]
    except KeyError:
        raise InputError(
            f"unknown contract {contract!r}: expected one of {', '.join(CONTRACTS)}"
        ) from None
