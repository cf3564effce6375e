"""Parsed definitions per connection, and each state's rules per parsed definition.

Every advance, plan and listing asks "the rules of state S of definition D version V"; reading
and parsing that once per connection (and deriving the rules once per parsed definition) keeps
the advance path free of repeated SELECTs and parsing. The engine reads definitions through
``definition`` too; only the declarations sit below this cache in the package.
"""

from __future__ import annotations

import sqlite3

from onboarding import definitions
from onboarding.db import Database
from onboarding.outbox.declarations import Rule, rules
from workflows.model import Definition

#: A parsed definition's rules per state, computed once per process. Keyed by the object's
#: id, with the object kept in the value so the id cannot be reused (definitions are cached
#: for the life of the process anyway: ``definitions.parse``).
_STATE_RULES: dict[int, tuple[Definition, dict[str, tuple[Rule, ...]]]] = {}


def state_rules(defn: Definition, state: str) -> tuple[Rule, ...]:
    """The notifications ``state`` of ``defn`` declares (``rules``), cached."""
    entry = _STATE_RULES.get(id(defn))
    if entry is None or entry[0] is not defn:
        entry = _STATE_RULES[id(defn)] = (defn, {})
    found = entry[1].get(state)
    if found is None:
        st = defn.by_name.get(state)
        found = entry[1][state] = rules(st) if st is not None else ()
    return found


#: Parsed definitions by (name, version), per connection (``definition``). A stored version
#: never changes, so one read per connection and version is enough; keyed by the connection
#: object (kept in the value, so its id cannot be reused while the entry lives), because two
#: databases open in one process may hold different texts under the same name and version.
_DEFINITIONS: dict[int, tuple[sqlite3.Connection, dict[tuple[str, int], Definition]]] = {}
_CONNECTIONS_KEPT = 16


def _definitions_of(conn: sqlite3.Connection) -> dict[tuple[str, int], Definition]:
    entry = _DEFINITIONS.get(id(conn))
    if entry is None or entry[0] is not conn:
        while len(_DEFINITIONS) >= _CONNECTIONS_KEPT:
            del _DEFINITIONS[next(iter(_DEFINITIONS))]
        entry = _DEFINITIONS[id(conn)] = (conn, {})
    return entry[1]


def definition(conn: sqlite3.Connection, name: str, version: int) -> Definition:
    """Version ``version`` of definition ``name`` in the database of ``conn``, read and parsed
    once per connection (``definitions.get`` SELECTs its source on every call)."""
    known = _definitions_of(conn)
    found = known.get((name, version))
    if found is None:
        db = Database(conn)
        found = known[(name, version)] = definitions.get(db, name, version)
    return found


def remember_definition(conn: sqlite3.Connection, defn: Definition) -> None:
    """Feed the per-connection cache a definition read another way (e.g. pre-parsed)."""
    _definitions_of(conn)[(defn.name, defn.version)] = defn
