"""The registry library: seeding, all-or-nothing imports, name resolution and listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlite_utils import Database

from onboarding import registry
from onboarding.errors import Ambiguous, InputError, NotFound
from onboarding.roles import ROLES


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _import_error(func: object, db: Database, path: Path) -> str:
    assert callable(func)
    with pytest.raises(InputError) as info:
        func(db, path)
    return str(info.value)


# --- seed ---------------------------------------------------------------------------------------


def test_seed_fills_shipped_registry(db: Database) -> None:
    """After init the deck's municipalities, systems, indices, KLIK tasks and waves are there."""
    assert _count(db, "municipalities") == 98
    assert _count(db, "systems") == 11
    assert {r["code"]: r["name"] for r in registry.list_indices(db)} == {
        "sd": "Sags- og Dokumentindeks",
        "ydelse": "Ydelsesindeks",
    }
    assert [t["name"] for t in registry.list_klik_tasks(db)] == [
        "Indmeld modtager(e) af GDPR-revisionserklæringer",
        "Systemoverblik",
    ]
    waves = registry.list_waves(db)
    assert [w["code"] for w in waves] == ["B1", "B2", "B3", "B4", "B5", "B6"]
    assert all(w["go_live"] for w in waves)
    assert waves[0]["go_live"] == "2021-05-24" and waves[4]["rollout_start"] == "2022-02-01"


def test_seed_again_adds_nothing(db: Database) -> None:
    """A second seed finds every shipped row present and returns no counts."""
    assert registry.seed(db) == {}
    assert _count(db, "municipalities") == 98


def test_seed_keeps_imported_changes(db: Database, tmp_path: Path) -> None:
    """Seeding never overwrites what a user imported over the shipped data."""
    registry.import_systems(db, _csv(tmp_path, "s.csv", "vendor,system,category\nKMD,Nexus,ESDH\n"))
    registry.seed(db)
    assert registry.resolve_system(db, "KMD Nexus")["category"] == "ESDH"


def test_seed_systems_match_deck_categories(db: Database) -> None:
    """Shipped systems carry the deck's vendor, name and category."""
    labels = {(s["category"], s["label"]) for s in registry.list_systems(db)}
    assert ("Jobcenter", "Schultz Fasit") in labels
    assert ("ESDH", "Miracle/Convergens SBSys") in labels
    assert ("EOJ", "DXC Technology VITAE") in labels
    assert ("ESDH", "Netcompany GetOrganizedAsAService") in labels


# --- resolution ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Momentum", "KMD Momentum", "kmd momentum", "KMD - Momentum"])
def test_resolve_system_by_name_or_vendor_and_name(db: Database, text: str) -> None:
    """A system is found by its name alone or prefixed with its vendor, in any case."""
    system = registry.resolve_system(db, text)
    assert system["label"] == "KMD Momentum"
    assert system["vendor"] == "KMD" and system["category"] == "Jobcenter"
    assert {"id", "name", "vendor_id"} <= system.keys()


def test_resolve_system_exact_beats_prefix(db: Database) -> None:
    """'GetOrganized' is that system, although it also starts 'GetOrganizedAsAService'."""
    assert registry.resolve_system(db, "getorganized")["name"] == "GetOrganized"
    with pytest.raises(Ambiguous):
        registry.resolve_system(db, "GetOrg")


def test_resolve_system_exact_nova_beats_partial_nova(db: Database, tmp_path: Path) -> None:
    """'Nova' finds 'Nova ESDH' by prefix, until a system named exactly 'Nova' exists."""
    assert registry.resolve_system(db, "Nova")["label"] == "KMD Nova ESDH"
    registry.import_systems(db, _csv(tmp_path, "s.csv", "vendor,system,category\nAcme,Nova,EOJ\n"))
    assert registry.resolve_system(db, "Nova")["label"] == "Acme Nova"
    assert registry.resolve_system(db, "Nova ESDH")["label"] == "KMD Nova ESDH"


def test_resolve_system_ambiguous_lists_candidates(db: Database) -> None:
    """A name matching several systems equally well names them all."""
    with pytest.raises(Ambiguous) as info:
        registry.resolve_system(db, "KMD")
    assert info.value.candidates == ["KMD Momentum", "KMD Nexus", "KMD Nova ESDH"]
    assert "KMD Momentum, KMD Nexus, KMD Nova ESDH" in str(info.value)


def test_resolve_system_unknown_suggests_closest(db: Database) -> None:
    """An unknown system name suggests the closest known ones."""
    with pytest.raises(NotFound) as info:
        registry.resolve_system(db, "Momentun")
    assert "KMD Momentum" in info.value.candidates
    assert "closest: KMD Momentum" in str(info.value)


@pytest.mark.parametrize("text", ["101", "København", "KØBENHAVN", " københavn "])
def test_resolve_municipality_by_code_or_name(db: Database, text: str) -> None:
    """A municipality is found by its code or its name in any case."""
    assert registry.resolve_municipality(db, text)["code"] == 101


def test_resolve_municipality_exact_beats_prefix(db: Database) -> None:
    """'Frederiksberg' is exact; 'Frederiksb' is a unique prefix; 'Frederiks' is ambiguous."""
    assert registry.resolve_municipality(db, "Frederiksberg")["code"] == 147
    assert registry.resolve_municipality(db, "Frederiksb")["code"] == 147
    with pytest.raises(Ambiguous) as info:
        registry.resolve_municipality(db, "Frederiks")
    assert info.value.candidates == [
        "Frederiksberg (147)",
        "Frederikshavn (813)",
        "Frederikssund (250)",
    ]


def test_resolve_municipality_code_is_never_partial(db: Database) -> None:
    """Digits are a code: '10' does not match 101 by prefix."""
    with pytest.raises(NotFound):
        registry.resolve_municipality(db, "10")


def test_resolve_municipality_unknown_suggests_closest(db: Database) -> None:
    """A misspelt name suggests the closest municipalities ("Kobenhavn", ø typed as o, is
    no longer misspelt: it resolves, see tests/test_names.py)."""
    with pytest.raises(NotFound) as info:
        registry.resolve_municipality(db, "Kobenhvn")
    assert info.value.candidates[0] == "København (101)"


def test_resolve_municipality_many_candidates_are_capped(db: Database) -> None:
    """A very loose name lists at most ten candidates and says how many more."""
    with pytest.raises(Ambiguous) as info:
        registry.resolve_municipality(db, "er")
    assert len(info.value.candidates) == 11
    assert info.value.candidates[-1].startswith("and ")


def test_resolve_municipality_blank_is_not_found(db: Database) -> None:
    """An empty name matches nothing rather than everything."""
    with pytest.raises(NotFound):
        registry.resolve_municipality(db, "  ")


def test_resolve_other_kinds(db: Database) -> None:
    """Vendors, KLIK tasks, waves and indices resolve by code or name."""
    assert registry.resolve_vendor(db, "netcompany")["name"] == "Netcompany"
    assert registry.resolve_klik_task(db, "systemoverblik")["type"] == "Anbefalet"
    assert registry.resolve_klik_task(db, "GDPR")["end_date"] == "2021-04-29"
    assert registry.resolve_wave(db, "b2")["go_live"] == "2021-09-24"
    assert registry.resolve_wave(db, "Bølge 6")["code"] == "B6"
    assert registry.resolve_index(db, "Ydelsesindeks")["code"] == "ydelse"
    assert registry.resolve_index(db, "SD")["code"] == "sd"
    with pytest.raises(Ambiguous):
        registry.resolve_wave(db, "Bølge")


# --- imports ------------------------------------------------------------------------------------


def test_import_municipalities_counts_and_is_idempotent(db: Database, tmp_path: Path) -> None:
    """Changed rows are updated, equal rows unchanged, and a re-import changes nothing."""
    path = _csv(
        tmp_path,
        "m.csv",
        "code;name;region;population\n101;København;;700.000\n147;Frederiksberg;;\n",
    )
    assert registry.import_municipalities(db, path) == {"inserted": 0, "updated": 1, "unchanged": 1}
    assert registry.import_municipalities(db, path) == {"inserted": 0, "updated": 0, "unchanged": 2}
    city = registry.resolve_municipality(db, "101")
    assert city["population"] == 700000 and city["region"] == "Region Hovedstaden"


def test_import_municipalities_shipped_file_round_trips(db: Database) -> None:
    """The shipped municipalities file imports cleanly over a seeded database."""
    counts = registry.import_municipalities(db, registry.DATA / "municipalities.csv")
    assert counts == {"inserted": 0, "updated": 0, "unchanged": 98}


def test_import_municipalities_normalises_region(db: Database, tmp_path: Path) -> None:
    """A region written without 'Region' or in another case is stored in its full form."""
    path = _csv(tmp_path, "m.csv", "code,name,region\n999,Testby,sjælland\n")
    assert registry.import_municipalities(db, path)["inserted"] == 1
    assert registry.resolve_municipality(db, "999")["region"] == "Region Sjælland"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,name\n1O1,København\n", "m.csv:2: column code: '1O1' is not a three-digit"),
        ("code,name\n101,\n", "m.csv:2: column name: is empty"),
        ("code,name\n101,Kbh\n101,Kbh2\n", "m.csv:3: repeats the code of line 2"),
        ("code,name\n998,Køge\n", "m.csv:2: column name: already the name of municipality 259"),
        ("code,name,region\n101,København,Skåne\n", "m.csv:2: column region: unknown region"),
        ("code,name,population\n101,København,many\n", "column population: 'many' is not a"),
    ],
)
def test_import_municipalities_bad_row_names_line_and_column(
    db: Database, tmp_path: Path, text: str, message: str
) -> None:
    """Every kind of bad value is reported as FILE:LINE: column X: problem."""
    path = _csv(tmp_path, "m.csv", text)
    assert message in _import_error(registry.import_municipalities, db, path)


def test_import_systems_creates_vendor_and_updates_category(db: Database, tmp_path: Path) -> None:
    """New vendors are created; a known system (any case) gets its category updated."""
    text = "vendor,system,category\nAcme,Plads,pladsanvisning\nkmd,nexus,ESDH\n"
    path = _csv(tmp_path, "s.csv", text)
    counts = registry.import_systems(db, path)
    assert counts == {"inserted": 1, "updated": 1, "unchanged": 0, "vendors_inserted": 1}
    assert registry.resolve_system(db, "Acme Plads")["category"] == "Pladsanvisning"
    assert registry.resolve_system(db, "KMD Nexus")["category"] == "ESDH"
    again = registry.import_systems(db, path)
    assert again == {"inserted": 0, "updated": 0, "unchanged": 2, "vendors_inserted": 0}


def test_import_systems_unknown_category_writes_nothing(db: Database, tmp_path: Path) -> None:
    """A bad category on a later row refuses the whole file, including earlier good rows."""
    path = _csv(tmp_path, "s.csv", "vendor,system,category\nAcme,One,ESDH\nAcme,Two,Økonomi\n")
    message = _import_error(registry.import_systems, db, path)
    assert message.startswith(f"{path}:3: column category: unknown category 'Økonomi'")
    assert _count(db, "vendors") == 8 and _count(db, "systems") == 11


def test_import_contracts_resolves_and_upserts(db: Database, tmp_path: Path) -> None:
    """Contracts resolve names like the CLI does and update per municipality and system."""
    first = _csv(
        tmp_path,
        "c1.csv",
        "municipality,system,contract\nKøbenhavn,Momentum,unknown\n147,KMD Nova ESDH,eu-tender\n",
    )
    assert registry.import_contracts(db, first) == {"inserted": 2, "updated": 0, "unchanged": 0}
    second = _csv(
        tmp_path, "c2.csv", "municipality,system,contract\n101,kmd momentum,SKI-02.19-2019\n"
    )
    assert registry.import_contracts(db, second) == {"inserted": 0, "updated": 1, "unchanged": 0}
    assert registry.import_contracts(db, second) == {"inserted": 0, "updated": 0, "unchanged": 1}
    listed = registry.list_contracts(db)
    assert {(c["municipality"], c["system"]): c["contract"] for c in listed} == {
        ("København", "KMD Momentum"): "ski-02.19-2019",
        ("Frederiksberg", "KMD Nova ESDH"): "eu-tender",
    }


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("Atlantis,Momentum,unknown", "column municipality: unknown municipality 'Atlantis'"),
        ("Frederiks,Momentum,unknown", "column municipality: ambiguous municipality"),
        ("101,Momentun,unknown", "column system: unknown system 'Momentun'; closest: KMD"),
        ("101,Momentum,ski-2019", "column contract: unknown contract 'ski-2019'"),
        ("101,Momentum,", "column contract: is empty"),
        ("147,Momentum,unknown", "repeats the municipality and system of line 2"),
    ],
)
def test_import_contracts_bad_row_writes_nothing(
    db: Database, tmp_path: Path, row: str, message: str
) -> None:
    """A bad third row is reported with its line and column, and the good rows are not written."""
    path = _csv(
        tmp_path, "c.csv", f"municipality,system,contract\nFrederiksberg,Momentum,unknown\n{row}\n"
    )
    error = _import_error(registry.import_contracts, db, path)
    assert error.startswith(f"{path}:3: ")
    assert message in error
    assert _count(db, "contracts") == 0


def test_import_contacts_validates_and_upserts(db: Database, tmp_path: Path) -> None:
    """Contacts get a role, a scope and a lower-cased email; a changed name is an update."""
    text = (
        "role,name,email,municipality,vendor\n"
        "coordinator,Kim Koordinator,Kim@Kombit.dk,,\n"
        "municipality-pl,Pia Projekt,pia@kk.dk,København,\n"
        "vendor,Vera Vendor,vera@kmd.dk,,kmd\n"
    )
    path = _csv(tmp_path, "p.csv", text)
    assert registry.import_contacts(db, path) == {"inserted": 3, "updated": 0, "unchanged": 0}
    assert registry.import_contacts(db, path) == {"inserted": 0, "updated": 0, "unchanged": 3}
    renamed = _csv(tmp_path, "q.csv", "role,name,email\ncoordinator,Kim K.,kim@kombit.dk\n")
    assert registry.import_contacts(db, renamed) == {"inserted": 0, "updated": 1, "unchanged": 0}
    contacts = {c["email"]: c for c in registry.list_contacts(db)}
    assert contacts["kim@kombit.dk"]["name"] == "Kim K."
    assert contacts["pia@kk.dk"]["municipality"] == "København"
    assert contacts["vera@kmd.dk"]["vendor"] == "KMD"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("boss,Bo,bo@kk.dk,101,", "column role: unknown role 'boss'"),
        ("coordinator,Bo,bo at kk.dk,,", "column email: 'bo at kk.dk' is not an email address"),
        ("coordinator,Bo,bo@kk,,", "column email: 'bo@kk' is not an email address"),
        ("sapa-owner,Bo,bo@kk.dk,,", "column municipality: is empty, but role sapa-owner needs"),
        ("vendor,Bo,bo@kmd.dk,,", "column vendor: is empty, but role vendor needs one"),
        ("vendor,Bo,bo@kmd.dk,,Kmdx", "column vendor: unknown vendor 'Kmdx'"),
        ("coordinator,,bo@kk.dk,,", "column name: is empty"),
    ],
)
def test_import_contacts_bad_row_writes_nothing(
    db: Database, tmp_path: Path, row: str, message: str
) -> None:
    """Each bad contact row is named by line and column, and nothing is imported."""
    path = _csv(
        tmp_path,
        "p.csv",
        f"role,name,email,municipality,vendor\ncoordinator,Kim,kim@kombit.dk,,\n{row}\n",
    )
    error = _import_error(registry.import_contacts, db, path)
    assert error.startswith(f"{path}:3: ")
    assert message in error
    assert _count(db, "contacts") == 0


def test_roles_have_danish_descriptions() -> None:
    """Every role the workflows use is known, with a description."""
    assert ROLES["coordinator"] == "KOMBIT-koordinator"
    assert ROLES["sapa-owner"] == "SAPA-systemejer"
    assert {"importer", "system", "vendor", "bob-admin", "programme-lead"} <= ROLES.keys()


# --- listings and lookups -----------------------------------------------------------------------


def test_contacts_for_includes_unscoped_contacts(db: Database, tmp_path: Path) -> None:
    """A municipality's contacts for a role include those valid for every municipality."""
    text = (
        "role,name,email,municipality\n"
        "municipality-pl,Pia,pia@kk.dk,101\n"
        "municipality-pl,Per,per@frb.dk,147\n"
        "coordinator,Kim,kim@kombit.dk,\n"
    )
    registry.import_contacts(db, _csv(tmp_path, "p.csv", text))
    assert [c["email"] for c in registry.contacts_for(db, "municipality-pl", 101)] == ["pia@kk.dk"]
    assert len(registry.contacts_for(db, "municipality-pl")) == 2
    assert [c["name"] for c in registry.contacts_for(db, "coordinator", 147)] == ["Kim"]
    assert registry.contacts_for(db, "sapa-owner", 101) == []


def test_contacts_for_vendor(db: Database, tmp_path: Path) -> None:
    """Vendor contacts are found by vendor id."""
    text = "role,name,email,vendor\nvendor,Vera,vera@kmd.dk,KMD\nvendor,Sam,sam@s.dk,Schultz\n"
    registry.import_contacts(db, _csv(tmp_path, "p.csv", text))
    kmd = registry.resolve_vendor(db, "KMD")["id"]
    assert [c["name"] for c in registry.contacts_for(db, "vendor", vendor_id=kmd)] == ["Vera"]


@pytest.mark.parametrize("contract", registry.CONTRACTS)
def test_payment_scenario_known_for_every_contract(contract: str) -> None:
    """Every contract value has a short sentence on who pays for the connection."""
    assert registry.payment_scenario(contract).endswith(".")


def test_payment_scenario_texts() -> None:
    """The scenarios say what the deck says about each kind of contract."""
    assert "included in the price" in registry.payment_scenario("ski-02.19-2019")
    assert "10 %" in registry.payment_scenario("ski-02.19-2014")
    assert "wording" in registry.payment_scenario("eu-tender")
    assert "Systemoverblik" in registry.payment_scenario("unknown")
    with pytest.raises(InputError):
        registry.payment_scenario("handshake")


def test_list_contracts_has_names_and_scenario(db: Database, tmp_path: Path) -> None:
    """Listed contracts carry the municipality name, system label and payment scenario."""
    path = _csv(tmp_path, "c.csv", "municipality,system,contract\n101,Fasit,ski-02.19-2014\n")
    registry.import_contracts(db, path)
    [row] = registry.list_contracts(db)
    assert row["municipality"] == "København" and row["system"] == "Schultz Fasit"
    assert row["payment_scenario"] == registry.payment_scenario("ski-02.19-2014")


def test_lists_are_json_able(db: Database) -> None:
    """Every listing is a list of plain dicts that serialise to JSON."""
    for lister in (
        registry.list_municipalities,
        registry.list_systems,
        registry.list_vendors,
        registry.list_contracts,
        registry.list_contacts,
    ):
        rows = lister(db)
        assert json.loads(json.dumps(rows)) == rows
    assert registry.list_vendors(db)[3] == {"id": 1, "name": "KMD", "systems": 3}
