"""The demo's scenario: the deck's figures of 31 March 2021 and the simulated quarter's
parameters (who uses what, when systems were ready, the chances, the seed, the names).
"""

from __future__ import annotations

from datetime import date

#: The deck's rollout table of 31 March 2021: (vendor, system) -> (I drift, Aftalt, Endnu ikke
#: aftalt). Jobcenter's rows add up to all 98 municipalities; ESDH's to 119 uses.
DECK_TABLE: dict[tuple[str, str], tuple[int, int, int]] = {
    ("KMD", "Momentum"): (12, 22, 9),
    ("Schultz", "Fasit"): (4, 8, 43),
    ("Formpipe", "Acadre"): (3, 4, 22),
    ("Fujitsu", "eDoc"): (3, 6, 9),
    ("KMD", "Nova ESDH"): (10, 15, 2),
    ("Miracle/Convergens", "SBSys"): (2, 15, 23),
    ("Netcompany", "GetOrganized"): (1, 2, 2),
}
JOBCENTER = (("KMD", "Momentum"), ("Schultz", "Fasit"))
#: How many municipalities use each ESDH solution as a second one (21 of 98 use two: 119 uses).
SECOND_ESDH = {
    ("Formpipe", "Acadre"): 6,
    ("Fujitsu", "eDoc"): 4,
    ("KMD", "Nova ESDH"): 5,
    ("Miracle/Convergens", "SBSys"): 5,
    ("Netcompany", "GetOrganized"): 1,
}
#: When each system was declared ready for rollout (S&D), and EOJ systems on their way.
READY_ON = {
    ("KMD", "Nova ESDH"): date(2020, 5, 4),
    ("KMD", "Momentum"): date(2020, 6, 15),
    ("Miracle/Convergens", "SBSys"): date(2020, 8, 17),
    ("Formpipe", "Acadre"): date(2020, 9, 14),
    ("Fujitsu", "eDoc"): date(2020, 10, 5),
    ("Schultz", "Fasit"): date(2020, 11, 16),
    ("Netcompany", "GetOrganized"): date(2021, 1, 18),
}
EOJ_PILOT = (("Systematic", "Cura Omsorg"), "Odense", date(2021, 2, 15))
EOJ_STARTED = (("KMD", "Nexus"), "Vejle", date(2021, 3, 1))
DECEMBER = date(2020, 12, 31)
MARCH = date(2021, 3, 31)
QUARTER_START = date(2021, 4, 1)
QUARTER_END = date(2021, 6, 30)
GDPR_TASK = "Indmeld modtager(e) af GDPR-revisionserklæringer"
SYSTEMOVERBLIK = "Systemoverblik"
#: The deck's GDPR task status on 27 April 2021: done, started, not started.
GDPR_STATUS = (58, 5, 35)
GDPR_STATUS_DAY = date(2021, 4, 27)
GDPR_CLOSES = date(2021, 5, 7)  # the questionnaire was kept open to 7 May
#: Counters the tool cannot derive, as the programme would record them.
COUNTERS = (
    ("sapa-unique-users", 9412, MARCH),
    ("manuelle-sager-cancelled", 47, MARCH),
    ("pladsanvisning-milestones", 1, date(2021, 3, 26)),
    ("pladsanvisning-milestones", 2, date(2021, 6, 24)),
    ("manuelle-sager-cancelled", 58, QUARTER_END),
    ("sapa-unique-users", 10874, QUARTER_END),
)
#: Chance per working day that an open connection takes its next step, by bucket rank.
STEP_CHANCE = (0.018, 0.075)
SEED = 20210331
#: The coordinator sends due reminders every Monday morning ('reminders send-due' from cron).
SEND_WEEKDAY = 0
CONTRACT_MIX = ("ski-02.19-2019", "ski-02.19-2019", "ski-02.19-2014", "eu-tender", "unknown")
#: The roles every municipality has a contact for: all those held for a municipality, so every
#: role a shipped definition mails (``to:`` and ladders) reaches someone.
MUNICIPALITY_CONTACT_ROLES = (
    "programme-lead",
    "municipality-pl",
    "agreement-admin",
    "bob-agreement-admin",
    "sapa-owner",
    "sapa-admin",
    "bob-admin",
)
ACTOR = "demo"
#: Contacts are people: a first and a last name from these, drawn without repetition by a
#: generator of their own (so the simulation's draws stay as they were).
FIRST_NAMES = (
    "Anne",
    "Mette",
    "Kirsten",
    "Hanne",
    "Helle",
    "Susanne",
    "Lene",
    "Maria",
    "Camilla",
    "Louise",
    "Charlotte",
    "Pia",
    "Tina",
    "Marianne",
    "Sofie",
    "Ida",
    "Emma",
    "Julie",
    "Karen",
    "Birgitte",
    "Peter",
    "Jens",
    "Lars",
    "Michael",
    "Henrik",
    "Søren",
    "Thomas",
    "Niels",
    "Jesper",
    "Martin",
    "Rasmus",
    "Anders",
    "Christian",
    "Morten",
    "Mads",
    "Frederik",
    "Jakob",
    "Kasper",
    "Ole",
    "Torben",
)
LAST_NAMES = (
    "Nielsen",
    "Jensen",
    "Hansen",
    "Pedersen",
    "Andersen",
    "Christensen",
    "Larsen",
    "Sørensen",
    "Rasmussen",
    "Jørgensen",
    "Petersen",
    "Madsen",
    "Kristensen",
    "Olsen",
    "Thomsen",
    "Christiansen",
    "Poulsen",
    "Johansen",
    "Møller",
    "Mortensen",
    "Knudsen",
    "Jakobsen",
    "Mikkelsen",
    "Olesen",
    "Frederiksen",
    "Laursen",
    "Henriksen",
    "Lund",
    "Holm",
    "Schmidt",
    "Eriksen",
    "Kristiansen",
    "Nissen",
    "Lauridsen",
    "Clausen",
    "Simonsen",
    "Kjær",
    "Bach",
    "Dam",
    "Winther",
)
