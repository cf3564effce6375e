"""The registry: municipalities, vendors, systems, indices, contracts, contacts, KLIK tasks, waves.

Three jobs:

* ``seed`` fills a new database with what the KOMBIT deck names (the CSV files in ``data/``);
* ``import_*`` loads a CSV file all or nothing: every row is read and validated first, and any
  problem raises ``InputError`` (``FILE:LINE: column X: ...``) before anything is written;
* ``resolve_*`` turns what a user types ("Momentum", "kmd momentum", "101", "Køge") into one
  row, the same way in every command: an exact match beats a prefix match, which beats a match
  anywhere in the name; more than one hit at the deciding level is ``Ambiguous``, none at all is
  ``NotFound`` with the closest names as a hint.

Shipped data and its sources: ``data/municipalities.csv`` (see the shared SOURCES.md);
``data/systems.csv``, ``data/klik_tasks.csv`` and ``data/waves.csv`` come from the programme
managers' deck of 27 April 2021. The KLIK task "Systemoverblik" has end date 2021-05-21 because the
deck says "Start nu og slutdato den 21/5"; the GDPR task's 2021-04-29 is the deck's official end
date (its questionnaire stayed open to 7 May). Neither task's duration is given, so it is empty.
All six waves' periods are printed in the deck's timeline, so every date is filled in.
``data/municipality_names.csv`` lists former names and exonyms people still write (Århus,
Brønderslev-Dronninglund, Copenhagen, Elsinore, the German names of the Southern Jutland towns),
each with its source; only names whose municipality is certain are in it.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onboarding import roles as role_data
from onboarding.contracts import CONTRACTS, PAYMENT_SCENARIOS, payment_scenario
from onboarding.csvio import PathLike, read_csv_all, row_error
from onboarding.db import Database, immediate
from onboarding.errors import Ambiguous, NotFound, OnboardingError

if TYPE_CHECKING:
    from onboarding.visibility import Scope

Row = dict[str, Any]
Counts = dict[str, int]

DATA = Path(__file__).parent / "data"

#: The system categories of the deck, in its order; imports normalise spelling to these.
CATEGORIES = ("Jobcenter", "ESDH", "EOJ", "Pladsanvisning")
INDICES = {"sd": "Sags- og Dokumentindeks", "ydelse": "Ydelsesindeks"}
REGIONS = (
    "Region Hovedstaden",
    "Region Sjælland",
    "Region Syddanmark",
    "Region Midtjylland",
    "Region Nordjylland",
)

# Deliberately loose: catches a name or phone number typed in the email column, not every RFC
# subtlety; the outbox learns about undeliverable addresses anyway.
EMAIL = re.compile(r"^[^@\s\"<>,;]+@[^@\s\"<>,;]+\.[^@\s\"<>,;.]{2,}$")
# Spreadsheets may group thousands ("632.340", "632 340"); populations have no decimals.
POPULATION = re.compile(r"^\d+$|^\d{1,3}([ .,\u00a0]\d{3})+$")
#: At most this many candidates are named in an "ambiguous" message.
MAX_CANDIDATES = 10

__all__ = [
    "CATEGORIES",
    "CONTRACTS",
    "INDICES",
    "contacts_for",
    "fold",
    "import_contacts",
    "import_contracts",
    "import_municipalities",
    "import_systems",
    "list_contacts",
    "list_contracts",
    "list_indices",
    "list_klik_tasks",
    "list_municipalities",
    "list_systems",
    "list_vendors",
    "list_waves",
    "municipality_aliases",
    "payment_scenario",
    "resolve_index",
    "resolve_klik_task",
    "resolve_municipality",
    "resolve_system",
    "resolve_vendor",
    "resolve_wave",
    "seed",
]


# --- queries ------------------------------------------------------------------------------------


def _select(db: Database, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    # Plain sqlite3 rather than db.query(): no savepoint per read, and it works unchanged inside
    # the BEGIN IMMEDIATE transaction of an import.
    cursor = db.conn.execute(sql, params)
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, row, strict=True)) for row in cursor]


_SYSTEMS_SQL = """
    SELECT s.id, s.name, v.name AS vendor, s.vendor_id, s.category,
           v.name || ' ' || s.name AS label
    FROM systems s JOIN vendors v ON v.id = s.vendor_id
"""


def list_municipalities(db: Database) -> list[Row]:
    return _select(db, "SELECT code, name, region, population FROM municipalities ORDER BY code")


def list_vendors(db: Database) -> list[Row]:
    return _select(
        db,
        """
        SELECT v.id, v.name, count(s.id) AS systems
        FROM vendors v LEFT JOIN systems s ON s.vendor_id = v.id
        GROUP BY v.id ORDER BY v.name
        """,
    )


def list_systems(db: Database) -> list[Row]:
    return _select(db, _SYSTEMS_SQL + " ORDER BY s.category, v.name, s.name")


def list_contracts(db: Database, scope: Scope | None = None) -> list[Row]:
    """Every contract, or (``scope``) those the reader may read (onboarding.visibility)."""
    where = scope.contracts("c") if scope is not None else "1"
    rows = _select(
        db,
        f"""
        SELECT c.municipality_code, m.name AS municipality, c.system_id,
               v.name || ' ' || s.name AS system, s.category, c.contract
        FROM contracts c
        JOIN municipalities m ON m.code = c.municipality_code
        JOIN systems s ON s.id = c.system_id
        JOIN vendors v ON v.id = s.vendor_id
        WHERE {where}
        ORDER BY c.municipality_code, system
        """,
    )
    for row in rows:
        row["payment_scenario"] = payment_scenario(row["contract"])
    return rows


_CONTACTS_SQL = """
    SELECT c.id, c.role, c.name, c.email, c.municipality_code, m.name AS municipality,
           c.vendor_id, v.name AS vendor
    FROM contacts c
    LEFT JOIN municipalities m ON m.code = c.municipality_code
    LEFT JOIN vendors v ON v.id = c.vendor_id
"""


def list_contacts(db: Database, scope: Scope | None = None) -> list[Row]:
    """Every contact, or (``scope``) only the reader's own (onboarding.visibility)."""
    where = f" WHERE {scope.contacts('c')}" if scope is not None else ""
    return _select(
        db, _CONTACTS_SQL + where + " ORDER BY c.role, c.municipality_code, vendor, c.name"
    )


def list_indices(db: Database) -> list[Row]:
    return _select(db, "SELECT code, name FROM indices ORDER BY code")


def list_klik_tasks(db: Database) -> list[Row]:
    return _select(db, "SELECT id, name, type, end_date, duration FROM klik_tasks ORDER BY id")


def list_waves(db: Database) -> list[Row]:
    return _select(
        db,
        "SELECT code, name, prepare_start, prepare_end, rollout_start, rollout_end, go_live "
        "FROM waves ORDER BY code",
    )


def contacts_for(
    db: Database, role: str, municipality_code: int | None = None, vendor_id: int | None = None
) -> list[Row]:
    """The contacts to tell when something needs ``role``.

    A contact with no municipality (or no vendor) applies to all of them, so a KOMBIT coordinator
    is found for every municipality. ``None`` here means "any": no filter on that field.
    The most specific contacts come first.
    """
    sql = _CONTACTS_SQL + " WHERE c.role = ?"
    params: list[Any] = [role]
    if municipality_code is not None:
        sql += " AND (c.municipality_code = ? OR c.municipality_code IS NULL)"
        params.append(municipality_code)
    if vendor_id is not None:
        sql += " AND (c.vendor_id = ? OR c.vendor_id IS NULL)"
        params.append(vendor_id)
    sql += (
        " ORDER BY c.municipality_code IS NULL, c.vendor_id IS NULL, c.municipality_code,"
        " vendor, c.name, c.email"
    )
    return _select(db, sql, params)


# --- resolution ---------------------------------------------------------------------------------


def _pick(
    what: str,
    text: str,
    rows: Sequence[Row],
    keys: Callable[[Row], Iterable[str]],
    label: Callable[[Row], str],
) -> Row:
    """The one row ``text`` names: exact beats prefix beats substring (all case-insensitive)."""
    needle = text.strip().casefold()
    if not needle:
        raise NotFound(what, text)
    levels: tuple[Callable[[str], bool], ...] = (
        lambda key: key == needle,
        lambda key: key.startswith(needle),
        lambda key: needle in key,
    )
    for matches in levels:
        hits = [row for row in rows if any(matches(k.casefold()) for k in keys(row))]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise Ambiguous(what, text, _cap(sorted(label(row) for row in hits)))
    raise NotFound(what, text, _closest(needle, rows, keys, label))


def _cap(candidates: list[str]) -> list[str]:
    if len(candidates) <= MAX_CANDIDATES:
        return candidates
    rest = len(candidates) - MAX_CANDIDATES
    return [*candidates[:MAX_CANDIDATES], f"and {rest} more"]


def _closest(
    needle: str,
    rows: Sequence[Row],
    keys: Callable[[Row], Iterable[str]],
    label: Callable[[Row], str],
) -> list[str]:
    by_key = {key.casefold(): label(row) for row in rows for key in keys(row)}
    import difflib  # only when a name is not found

    close = difflib.get_close_matches(needle, list(by_key), n=5, cutoff=0.6)
    return list(dict.fromkeys(by_key[key] for key in close))


def _municipality_label(row: Row) -> str:
    return f"{row['name']} ({row['code']})"


def resolve_municipality(db: Database, text: str) -> Row:
    """A municipality by code ("101") or name, as people write it.

    In this order, the first level with a hit decides (several hits: ``Ambiguous``):
    the exact name ("København", any case); the name apart from a "Kommune" or
    "Regionskommune" suffix, a genitive s, accents, spacing and Å/Aa, Ø/Oe, Æ/Ae ("aarhus
    kommune", "Københavns Kommune", "Hoeje Taastrup"), then the same ignoring Aa/Oe/Ae
    doubling ("Koge", "Tarnby"); a former name or exonym from ``data/municipality_names.csv``
    ("Copenhagen", "Elsinore"); then a prefix, then a part of any of those ("Køb").
    """
    code = text.strip()
    # ASCII digits, few enough for SQLite: "²" passes isdigit() but not int(), and a longer
    # number overflows the driver; either is then looked up as a name (and not found).
    if code.isascii() and code.isdigit() and len(code) <= 9:
        # Codes are identifiers, not names: "10" must not match 101 by prefix.
        rows = _select(
            db,
            "SELECT code, name, region, population FROM municipalities WHERE code = ?",
            [int(code)],
        )
        if not rows:
            raise NotFound("municipality", text)
        return rows[0]
    rows = list_municipalities(db)
    needle = code.casefold()
    if not needle:
        raise NotFound("municipality", text)
    exact = [r for r in rows if str(r["name"]).casefold() == needle]
    if len(exact) == 1:
        return exact[0]
    aliases = municipality_aliases()

    def own_name(row: Row) -> list[str]:
        return [str(row["name"])]

    def other_names(row: Row) -> list[str]:
        return aliases.get(int(row["code"]), [])

    for level in (_name_keys, _loose_keys):
        wanted = level(code)
        for named in (own_name, other_names):
            hits = [r for r in rows if any(wanted & level(n) for n in named(r))]
            if len(hits) == 1:
                return hits[0]
            if hits:
                raise Ambiguous(
                    "municipality", text, _cap(sorted(_municipality_label(r) for r in hits))
                )

    def keys(row: Row) -> list[str]:
        return [fold(n) for n in (str(row["name"]), *aliases.get(int(row["code"]), []))]

    folded = fold(_without_suffix(code))
    for matches in (str.startswith, str.__contains__):
        hits = [r for r in rows if folded and any(matches(k, folded) for k in keys(r))]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise Ambiguous(
                "municipality", text, _cap(sorted(_municipality_label(r) for r in hits))
            )
    raise NotFound("municipality", text, _closest(folded, rows, keys, _municipality_label))


#: Spelled-out letters: the Danish transliteration, which is also the German and Swedish one
#: (ö for ø, ä for æ), so "Helsingör", "Hoeje" and "Høje" meet.
_LETTERS = str.maketrans({"å": "aa", "ø": "oe", "æ": "ae", "ö": "oe", "ä": "ae", "ü": "ue"})
_SUFFIX = re.compile(r"\s+(regions)?kommunes?$", re.IGNORECASE)


def fold(text: str) -> str:
    """``text`` as a comparison key: case, accents, spaces and punctuation dropped, Å/Ø/Æ
    spelled out ("Høje-Taastrup" and "hoeje taastrup" both give "hoejetaastrup")."""
    spelled = unicodedata.normalize("NFKD", text.casefold().translate(_LETTERS))
    return "".join(c for c in spelled if c.isalnum() and not unicodedata.combining(c))


def _without_suffix(text: str) -> str:
    return _SUFFIX.sub("", text.strip())


def _name_keys(text: str) -> set[str]:
    """The keys a municipality name matches by: folded, without a "Kommune" suffix, and
    without a genitive s ("Københavns Kommune", "Nordfyn")."""
    key = fold(_without_suffix(text))
    return {key, key.removesuffix("s")} - {""}


def _loose_keys(text: str) -> set[str]:
    """``_name_keys`` with doubled letters undone, for names typed without æ, ø, å ("Koge")."""
    return {k.replace("aa", "a").replace("oe", "o").replace("ae", "a") for k in _name_keys(text)}


@functools.cache
def municipality_aliases() -> dict[int, list[str]]:
    """Former names and exonyms by municipality code (``data/municipality_names.csv``)."""
    out: dict[int, list[str]] = {}
    for _, row in read_csv_all(
        DATA / "municipality_names.csv", ["name", "code", "municipality"], ["kind", "source"]
    ):
        out.setdefault(int(row["code"]), []).append(row["name"])
    return out


def resolve_system(db: Database, text: str) -> Row:
    """A system by name ("Momentum") or vendor and name ("KMD Momentum", "KMD - Momentum")."""
    needle = text.strip()
    if needle.isascii() and needle:
        # An exact name is found in SQL, not by folding every system in Python (a start or an
        # import resolves one per track). For an ASCII name SQLite's NOCASE folds what
        # casefold() folds; anything else (no hit, several) takes the general path below.
        exact = _select(
            db,
            _SYSTEMS_SQL + " WHERE s.name = ? COLLATE NOCASE"
            " OR v.name || ' ' || s.name = ? COLLATE NOCASE"
            " OR v.name || ' - ' || s.name = ? COLLATE NOCASE",
            [needle, needle, needle],
        )
        if len(exact) == 1:
            return exact[0]
    return _pick(
        "system",
        text,
        list_systems(db),
        lambda r: [r["name"], r["label"], f"{r['vendor']} - {r['name']}"],
        lambda r: str(r["label"]),
    )


def resolve_vendor(db: Database, text: str) -> Row:
    return _pick("vendor", text, list_vendors(db), lambda r: [r["name"]], lambda r: str(r["name"]))


def resolve_klik_task(db: Database, text: str) -> Row:
    return _pick(
        "KLIK task", text, list_klik_tasks(db), lambda r: [r["name"]], lambda r: str(r["name"])
    )


def resolve_wave(db: Database, text: str) -> Row:
    """A rollout wave by code ("B2") or name ("Bølge 2")."""
    return _pick(
        "wave", text, list_waves(db), lambda r: [r["code"], r["name"]], lambda r: str(r["code"])
    )


def resolve_index(db: Database, text: str) -> Row:
    """An index by code ("sd") or name ("Ydelsesindeks")."""
    return _pick(
        "index", text, list_indices(db), lambda r: [r["code"], r["name"]], lambda r: str(r["code"])
    )


# --- seed ---------------------------------------------------------------------------------------


def seed(db: Database) -> Counts:
    """Insert the shipped registry rows that are missing; return how many of each were added.

    Only missing rows are added, so it is safe on every ``init`` and never undoes a user's
    import; kinds with nothing added are left out (a second call returns ``{}``).
    """
    municipalities = read_csv_all(
        DATA / "municipalities.csv", ["code", "name"], ["region", "population", "population_year"]
    )
    systems = read_csv_all(DATA / "systems.csv", ["vendor", "system", "category"])
    tasks = read_csv_all(DATA / "klik_tasks.csv", ["name", "type", "end_date"], ["duration"])
    waves = read_csv_all(DATA / "waves.csv", ["code", "name", "go_live"], _WAVE_PERIODS)
    with immediate(db) as conn:
        counts = {
            "municipalities": _insert_missing(
                conn,
                "INSERT OR IGNORE INTO municipalities (code, name, region, population) "
                "VALUES (?, ?, ?, ?)",
                [
                    (int(r["code"]), r["name"], r["region"] or None, _int_or_none(r["population"]))
                    for _, r in municipalities
                ],
            ),
            "vendors": _insert_missing(
                conn,
                "INSERT OR IGNORE INTO vendors (name) VALUES (?)",
                [(v,) for v in dict.fromkeys(r["vendor"] for _, r in systems)],
            ),
            "systems": _insert_missing(
                conn,
                "INSERT OR IGNORE INTO systems (vendor_id, name, category) "
                "SELECT id, ?, ? FROM vendors WHERE name = ?",
                [(r["system"], r["category"], r["vendor"]) for _, r in systems],
            ),
            "indices": _insert_missing(
                conn, "INSERT OR IGNORE INTO indices (code, name) VALUES (?, ?)", INDICES.items()
            ),
            "KLIK tasks": _insert_missing(
                conn,
                "INSERT OR IGNORE INTO klik_tasks (name, type, end_date, duration) "
                "VALUES (?, ?, ?, ?)",
                [(r["name"], r["type"], r["end_date"], r["duration"] or None) for _, r in tasks],
            ),
            "waves": _insert_missing(
                conn,
                "INSERT OR IGNORE INTO waves (code, name, go_live, "
                + ", ".join(_WAVE_PERIODS)
                + ") VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r["code"], r["name"], r["go_live"], *(r[c] or None for c in _WAVE_PERIODS))
                    for _, r in waves
                ],
            ),
        }
    return {what: n for what, n in counts.items() if n}


_WAVE_PERIODS = ("prepare_start", "prepare_end", "rollout_start", "rollout_end")


def _insert_missing(conn: sqlite3.Connection, sql: str, rows: Iterable[Sequence[Any]]) -> int:
    # executemany's rowcount is the total over all rows; OR IGNORE rows count zero.
    return conn.executemany(sql, rows).rowcount


def _int_or_none(text: str) -> int | None:
    return int(re.sub(r"\D", "", text)) if text else None


# --- imports ------------------------------------------------------------------------------------


def _counts() -> Counts:
    return {"inserted": 0, "updated": 0, "unchanged": 0}


def _check_unique(path: PathLike, line: int, key: Any, seen: dict[Any, int], what: str) -> None:
    """A second row for the same thing would make the result depend on row order: refuse it."""
    if key in seen:
        raise row_error(path, line, f"repeats the {what} of line {seen[key]}")
    seen[key] = line


#: Names, codes and addresses are one line of at most this many characters.
MAX_NAME = 200
#: Control characters other than whitespace (terminal escapes, backspace, bell, ...).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _required(path: PathLike, line: int, row: dict[str, str], column: str) -> str:
    """A required cell as one line: line breaks in a quoted cell become single spaces (so a
    name can never carry a header into an email); other control characters are refused."""
    value = row[column]
    if not value:
        raise row_error(path, line, "is empty", column=column)
    if _CONTROL.search(value):
        raise row_error(path, line, f"control character in {value!r}", column=column)
    value = " ".join(value.split())
    if len(value) > MAX_NAME:
        raise row_error(
            path, line, f"{len(value)} characters; at most {MAX_NAME} are allowed", column=column
        )
    return value


def _resolved(
    path: PathLike,
    line: int,
    column: str,
    resolve: Callable[[Database, str], Row],
    db: Database,
    text: str,
) -> Row:
    """``resolve(db, text)`` with its NotFound/Ambiguous turned into a located InputError."""
    try:
        return resolve(db, text)
    except OnboardingError as exc:
        raise row_error(path, line, str(exc), column=column) from exc


# municipalities


@dataclass(frozen=True)
class _Municipality:
    code: int
    name: str
    region: str | None  # None: keep what the database has
    population: int | None


def import_municipalities(db: Database, path: PathLike) -> Counts:
    """Insert or update municipalities by code from ``code,name[,region,population]``.

    An empty region or population leaves the stored value alone. ``population_year`` (as in the
    shipped file) is accepted so that file can be imported, but not stored: the schema has no
    column for it.
    """
    rows = read_csv_all(path, ["code", "name"], ["region", "population", "population_year"])
    with immediate(db) as conn:
        planned = _plan_municipalities(db, path, rows)
        return _write_municipalities(conn, planned)


def _plan_municipalities(
    db: Database, path: PathLike, rows: list[tuple[int, dict[str, str]]]
) -> list[_Municipality]:
    names_in_db = {r["name"].casefold(): r["code"] for r in list_municipalities(db)}
    codes: dict[Any, int] = {}
    names: dict[Any, int] = {}
    planned = []
    for line, row in rows:
        code = _municipality_code(path, line, row["code"])
        name = _required(path, line, row, "name")
        _check_unique(path, line, code, codes, "code")
        _check_unique(path, line, name.casefold(), names, "name")
        owner = names_in_db.get(name.casefold(), code)
        if owner != code:
            raise row_error(path, line, f"already the name of municipality {owner}", "name")
        planned.append(
            _Municipality(
                code,
                name,
                _region(path, line, row["region"]),
                _population(path, line, row["population"]),
            )
        )
    return planned


def _municipality_code(path: PathLike, line: int, text: str) -> int:
    if not re.fullmatch(r"\d{3}", text):
        raise row_error(path, line, f"{text!r} is not a three-digit municipality code", "code")
    return int(text)


def _region(path: PathLike, line: int, text: str) -> str | None:
    if not text:
        return None
    for region in REGIONS:
        # "Hovedstaden" and "region hovedstaden" both mean "Region Hovedstaden".
        if text.casefold() in (region.casefold(), region.removeprefix("Region ").casefold()):
            return region
    raise row_error(path, line, f"unknown region {text!r}: expected {', '.join(REGIONS)}", "region")


def _population(path: PathLike, line: int, text: str) -> int | None:
    if not text:
        return None
    if not POPULATION.match(text):
        raise row_error(path, line, f"{text!r} is not a whole number", "population")
    return _int_or_none(text)


def _write_municipalities(conn: sqlite3.Connection, planned: list[_Municipality]) -> Counts:
    counts = _counts()
    for m in planned:
        old = conn.execute(
            "SELECT name, region, population FROM municipalities WHERE code = ?", [m.code]
        ).fetchone()
        if old is None:
            conn.execute(
                "INSERT INTO municipalities (code, name, region, population) VALUES (?, ?, ?, ?)",
                [m.code, m.name, m.region, m.population],
            )
            counts["inserted"] += 1
            continue
        new = (
            m.name,
            old[1] if m.region is None else m.region,
            old[2] if m.population is None else m.population,
        )
        if new == tuple(old):
            counts["unchanged"] += 1
            continue
        conn.execute(
            "UPDATE municipalities SET name = ?, region = ?, population = ? WHERE code = ?",
            [*new, m.code],
        )
        counts["updated"] += 1
    return counts


# systems


def import_systems(db: Database, path: PathLike) -> Counts:
    """Insert systems from ``vendor,system,category``, creating vendors as needed.

    A system is known by vendor and name (case-insensitive); a known one gets its category updated.
    The result also counts ``vendors_inserted``.
    """
    rows = read_csv_all(path, ["vendor", "system", "category"])
    planned: list[tuple[str, str, str]] = []
    seen: dict[Any, int] = {}
    for line, row in rows:
        vendor = _required(path, line, row, "vendor")
        system = _required(path, line, row, "system")
        category = _category(path, line, _required(path, line, row, "category"))
        _check_unique(path, line, (vendor.casefold(), system.casefold()), seen, "vendor and system")
        planned.append((vendor, system, category))
    with immediate(db) as conn:
        return _write_systems(conn, planned)


def _category(path: PathLike, line: int, text: str) -> str:
    for category in CATEGORIES:
        if text.casefold() == category.casefold():
            return category
    raise row_error(
        path, line, f"unknown category {text!r}: expected {', '.join(CATEGORIES)}", "category"
    )


def _write_systems(conn: sqlite3.Connection, planned: list[tuple[str, str, str]]) -> Counts:
    counts = _counts()
    counts["vendors_inserted"] = 0
    for vendor, system, category in planned:
        # vendors.name and systems.name are COLLATE NOCASE, so "kmd" finds "KMD".
        counts["vendors_inserted"] += conn.execute(
            "INSERT OR IGNORE INTO vendors (name) VALUES (?)", [vendor]
        ).rowcount
        vendor_id = conn.execute("SELECT id FROM vendors WHERE name = ?", [vendor]).fetchone()[0]
        old = conn.execute(
            "SELECT id, category FROM systems WHERE vendor_id = ? AND name = ?", [vendor_id, system]
        ).fetchone()
        if old is None:
            conn.execute(
                "INSERT INTO systems (vendor_id, name, category) VALUES (?, ?, ?)",
                [vendor_id, system, category],
            )
            counts["inserted"] += 1
        elif old[1] == category:
            counts["unchanged"] += 1
        else:
            conn.execute("UPDATE systems SET category = ? WHERE id = ?", [category, old[0]])
            counts["updated"] += 1
    return counts


# contracts


def import_contracts(db: Database, path: PathLike) -> Counts:
    """Record each municipality's contract for a system from ``municipality,system,contract``.

    Municipality and system are resolved like on the command line ("101" or "København";
    "Momentum" or "KMD Momentum"); one row per municipality and system, upserted.
    """
    rows = read_csv_all(path, ["municipality", "system", "contract"])
    with immediate(db) as conn:
        planned = _plan_contracts(db, path, rows)
        return _write_contracts(conn, planned)


def _plan_contracts(
    db: Database, path: PathLike, rows: list[tuple[int, dict[str, str]]]
) -> list[tuple[int, int, str]]:
    planned: list[tuple[int, int, str]] = []
    seen: dict[Any, int] = {}
    for line, row in rows:
        text = _required(path, line, row, "municipality")
        code = _resolved(path, line, "municipality", resolve_municipality, db, text)["code"]
        text = _required(path, line, row, "system")
        system_id = _resolved(path, line, "system", resolve_system, db, text)["id"]
        contract = _required(path, line, row, "contract").lower()
        if contract not in PAYMENT_SCENARIOS:
            expected = ", ".join(CONTRACTS)
            raise row_error(
                path, line, f"unknown contract {contract!r}: expected {expected}", "contract"
            )
        _check_unique(path, line, (code, system_id), seen, "municipality and system")
        planned.append((code, system_id, contract))
    return planned


def _write_contracts(conn: sqlite3.Connection, planned: list[tuple[int, int, str]]) -> Counts:
    counts = _counts()
    for code, system_id, contract in planned:
        old = conn.execute(
            "SELECT contract FROM contracts WHERE municipality_code = ? AND system_id = ?",
            [code, system_id],
        ).fetchone()
        if old is None:
            conn.execute(
                "INSERT INTO contracts (municipality_code, system_id, contract) VALUES (?, ?, ?)",
                [code, system_id, contract],
            )
            counts["inserted"] += 1
        elif old[0] == contract:
            counts["unchanged"] += 1
        else:
            conn.execute(
                "UPDATE contracts SET contract = ? WHERE municipality_code = ? AND system_id = ?",
                [contract, code, system_id],
            )
            counts["updated"] += 1
    return counts


# contacts


@dataclass(frozen=True)
class _Contact:
    role: str
    name: str
    email: str
    municipality_code: int | None
    vendor_id: int | None


def import_contacts(db: Database, path: PathLike) -> Counts:
    """Insert or update contacts from ``role,name,email[,municipality,vendor]``.

    A contact is known by role, email, municipality and vendor; a known one gets its name updated.
    Roles acting for a municipality need the municipality column, vendor roles the vendor one
    and roles of the track's subject either (by the role's scope kind). A role is shipped or
    declared by a definition in ``db``.
    """
    rows = read_csv_all(path, ["role", "name", "email"], ["municipality", "vendor"])
    with immediate(db) as conn:
        planned = _plan_contacts(db, path, rows)
        return _write_contacts(conn, planned)


def _plan_contacts(
    db: Database, path: PathLike, rows: list[tuple[int, dict[str, str]]]
) -> list[_Contact]:
    planned: list[_Contact] = []
    seen: dict[Any, int] = {}
    known = role_data.known(db)
    for line, row in rows:
        role = _role(path, line, _required(path, line, row, "role"), known)
        name = _required(path, line, row, "name")
        email = _email(path, line, _required(path, line, row, "email"))
        kind = known[role].scope
        code = _scope(path, line, row, "municipality", kind == "municipality", role, db)
        vendor = _scope(path, line, row, "vendor", kind == "vendor", role, db)
        if kind == "subject" and code is None and vendor is None:
            raise row_error(
                path,
                line,
                f"is empty, but role {role} needs a municipality or a vendor",
                "municipality",
            )
        contact = _Contact(
            role,
            name,
            email,
            None if code is None else code["code"],
            None if vendor is None else vendor["id"],
        )
        key = (role, email, contact.municipality_code, contact.vendor_id)
        _check_unique(path, line, key, seen, "role, email, municipality and vendor")
        planned.append(contact)
    return planned


def _role(path: PathLike, line: int, text: str, known: Mapping[str, Any]) -> str:
    role = text.lower()
    if role not in known:
        raise row_error(path, line, f"unknown role {text!r}: expected {', '.join(known)}", "role")
    return role


def _email(path: PathLike, line: int, text: str) -> str:
    if not EMAIL.match(text):
        raise row_error(path, line, f"{text!r} is not an email address", "email")
    # Addresses are compared case-insensitively in practice; storing them lower-cased keeps
    # "Anna@Kk.dk" and "anna@kk.dk" from becoming two contacts.
    return text.lower()


def _scope(
    path: PathLike,
    line: int,
    row: dict[str, str],
    column: str,
    needed: bool,
    role: str,
    db: Database,
) -> Row | None:
    """The contact's municipality or vendor, resolved; refused when the role needs one."""
    text = row[column]
    if not text:
        if needed:
            raise row_error(path, line, f"is empty, but role {role} needs one", column)
        return None
    resolve = resolve_municipality if column == "municipality" else resolve_vendor
    return _resolved(path, line, column, resolve, db, text)


def _write_contacts(conn: sqlite3.Connection, planned: list[_Contact]) -> Counts:
    counts = _counts()
    for c in planned:
        old = conn.execute(
            "SELECT id, name FROM contacts WHERE role = ? AND email = ?"
            " AND municipality_code IS ? AND vendor_id IS ?",
            [c.role, c.email, c.municipality_code, c.vendor_id],
        ).fetchone()
        if old is None:
            conn.execute(
                "INSERT INTO contacts (role, name, email, municipality_code, vendor_id)"
                " VALUES (?, ?, ?, ?, ?)",
                [c.role, c.name, c.email, c.municipality_code, c.vendor_id],
            )
            counts["inserted"] += 1
        elif old[1] == c.name:
            counts["unchanged"] += 1
        else:
            conn.execute("UPDATE contacts SET name = ? WHERE id = ?", [c.name, old[0]])
            counts["updated"] += 1
    return counts
