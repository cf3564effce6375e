"""The workflow definitions a database knows, by name and version.

Every version a track has used is stored (its YAML source) in the ``definitions`` table, so a
track keeps running on the version it started with even after the shipped file moves on. Beside
the YAML each version keeps the document it parses to, as JSON (``document``), and the SHA-256
of its text (``digest``): a command reads a stored version from the JSON, never parsing YAML
(PyYAML is not even imported), and a process keeps each version it has built by (name, version,
digest), so the second read of a version is one small SELECT. Built definitions (and their
``transitions`` machines) are thus shared per process: one per definition version, never one
per track.

A version is stored with its own mail templates, if it has any (``definition_templates``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from onboarding import clock, roles
from onboarding.db import Database
from onboarding.definition_templates import (
    missing_folder_hint,
    own_template_names,
    read_templates,
    template_folder,
    templates,
)
from onboarding.errors import DefinitionInvalid, InputError, NotFound, OnboardingError
from onboarding.i18n import Message
from workflows import errors as wferrors
from workflows import loader
from workflows.digest import sha256_hex

# Named from their homes: the package imports the validator (``loader.loading``) only when a
# definition is checked or parsed from YAML, never on a stored version's way to an advance.
from workflows.loader.build import document_json, load_document
from workflows.loader.known import Known, OtherDefinition
from workflows.model import Definition
from workflows.record import replace
from workflows.roles import shipped_scopes

#: Parsed definitions by their source text (one machine per distinct version, per process).
_by_digest: dict[str, Definition] = {}
#: Stored versions built in this process, by (name, version, digest of the text): a database
#: never changes a stored version (``register``), and the digest tells two databases' equally
#: named versions apart.
_by_version: dict[tuple[str, int, str], Definition] = {}


def known() -> Known:
    """The roles, guards and templates a definition may name."""
    from onboarding import outbox
    from onboarding.guards import SIGNATURES

    return Known(
        roles=frozenset(roles.SHIPPED),
        guards=SIGNATURES,
        templates=outbox.template_names(),
        check_notifications=outbox.check_notifications,
        role_scopes=shipped_scopes(),
    )


def role_scopes(db: Database) -> dict[str, tuple[str, str]]:
    """Each role's scope kind and where it was declared: the shipped roles file, then every
    stored definition version. A role key means one role in a database (its grants and
    contacts do not say which definition they are for), so a new definition may declare a key
    again only with the same scope kind."""
    out = shipped_scopes()
    for defn in stored(db):
        for role in defn.roles:
            out.setdefault(role.key, (role.scope, f"definition {defn.name} v{defn.version}"))
    return out


def _facts(defns: Iterable[Definition]) -> dict[str, OtherDefinition]:
    """What guards may name of each definition: states and fields, united over versions."""
    states: dict[str, set[str]] = {}
    fields: dict[str, dict[str, str]] = {}
    for d in defns:
        states.setdefault(d.name, set()).update(s.name for s in d.states)
        fields.setdefault(d.name, {}).update({f.name: f.type for f in d.fields.values()})
    return {n: OtherDefinition(frozenset(states[n]), fields[n]) for n in states}


def installed(db: Database) -> dict[str, OtherDefinition]:
    """Every definition stored in ``db`` (all its versions), for checking a new one's guards."""
    return _facts(stored(db))


def stored(db: Database) -> list[Definition]:
    """Every version stored in ``db``, by name and version: one read, then the parse cache (a
    version not parsed yet in this process goes through ``get``, which knows its own template
    names: without them its notifications would not validate)."""
    rows = db.execute("SELECT name, version FROM definitions ORDER BY name, version").fetchall()
    return [get(db, name, int(version)) for name, version in rows]


def shipped() -> dict[str, OtherDefinition]:
    """The shipped definitions, for ``workflow validate`` of a lone file (no database)."""
    return _facts(
        parse(path.read_text(encoding="utf-8"), str(path))
        for path in loader.shipped_files().values()
    )


def validate_lone(
    text: str, source: str, own: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a file checked on its own: a guard naming a definition that is
    not shipped is a warning (it may be installed), everything else as ``workflow add``;
    ``own`` are the names of the definition's own templates."""
    lone = replace(
        known_with(own),
        definitions=shipped(),
        definitions_missing_is_error=False,
        definitions_where="shipped",
    )
    return loader.check_text(text, source, lone)


def _mapped(exc: wferrors.DefinitionError) -> OnboardingError:
    """The format's own error as the engine's (``workflows`` knows no ``onboarding``)."""
    if isinstance(exc, wferrors.DefinitionInvalid):
        return DefinitionInvalid(exc.source, exc.problems)
    return InputError(str(exc))


def _digest(text: str) -> str:
    return sha256_hex(text.encode("utf-8"))


def known_with(own: frozenset[str]) -> Known:
    """``known()`` with a definition's own template names added."""
    base = known()
    if not own or base.templates is None:
        return base
    return replace(base, templates=base.templates | own)


def parse(text: str, source: str, own: frozenset[str] = frozenset()) -> Definition:
    """Validate and build a definition, once per distinct text in this process; ``own`` are
    the names of the definition's own templates.

    Read as ``legacy``: a version stored before the stricter rules (duplicate keys, guard
    parameter types) keeps loading; ``workflow add`` applies them to every new file.
    """
    # Keyed by the text itself: a dict lookup hashes it once, where a digest per call (every
    # advance reads its definition) cost more than the rest of the lookup.
    cached = _by_digest.get(text)
    if cached is None:
        try:
            cached = loader.load_text(text, source, replace(known_with(own), legacy=True))
        except wferrors.DefinitionError as exc:
            raise _mapped(exc) from None
        _by_digest[text] = cached
        roles.remember(cached.roles)  # their labels, wherever this process words a role
    return cached


def register(
    db: Database,
    defn: Definition,
    at: str | None = None,
    own_templates: Mapping[str, str] | None = None,
) -> bool:
    """Store a definition version, with its own templates; True when it was new.

    The same name and version with different content (its YAML or its templates) is refused:
    a changed definition must be a new version, or tracks already on it would silently change
    meaning (or mail).
    """
    own = dict(own_templates or {})
    row = db.execute(
        "SELECT source FROM definitions WHERE name = ? AND version = ?", [defn.name, defn.version]
    ).fetchone()
    if row is not None:
        if _digest(row[0]) != _digest(defn.source):
            raise OnboardingError(
                Message(
                    "definition %(name)s version %(version)s is already registered with "
                    "different content: give the changed definition a new version number",
                    {"name": defn.name, "version": str(defn.version)},
                )
            )
        if own and templates(db, defn.name, defn.version) != own:
            raise OnboardingError(
                Message(
                    "definition %(name)s version %(version)s is already registered with "
                    "other templates: give the definition a new version number to change its mail",
                    {"name": defn.name, "version": str(defn.version)},
                )
            )
        return False
    values = [defn.name, defn.version, defn.source, at or clock.stamp(clock.now())]
    try:
        db.execute(
            "INSERT INTO definitions (name, version, source, registered_at, document, digest)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                *values,
                document_json(defn.source, f"{defn.name} v{defn.version}"),
                _digest(defn.source),
            ],
        )
    except sqlite3.OperationalError as exc:
        if "no column named" not in str(exc):
            raise
        # A database before migration 010 (being upgraded): that migration fills them in.
        db.execute(
            "INSERT INTO definitions (name, version, source, registered_at) VALUES (?, ?, ?, ?)",
            values,
        )
    _remember_ranks(db, defn)
    if own:  # (a definition without templates needs no table: as before migration 006)
        db.conn.executemany(
            "INSERT INTO definition_templates (definition, version, path, content)"
            " VALUES (?, ?, ?, ?)",
            [(defn.name, defn.version, path, text) for path, text in sorted(own.items())],
        )
    return True


def register_shipped(db: Database) -> list[str]:
    """Store the shipped definitions not yet in the database; return 'name vN' of each added."""
    added = []
    for path in loader.shipped_files().values():
        defn = parse(path.read_text(encoding="utf-8"), str(path))
        if register(db, defn):
            added.append(f"{defn.name} v{defn.version}")
    return added


def add_file(
    db: Database, path: str | Path, templates_dir: str | Path | None = None
) -> tuple[Definition, bool]:
    """Validate a user's definition file and store it as a version the database can run,
    with its own templates (``templates_dir``, else ``NAME.templates/`` beside it if any)."""
    folder = Path(templates_dir) if templates_dir is not None else template_folder(path)
    own = read_templates(folder) if folder is not None else {}
    others: Mapping[str, OtherDefinition] = installed(db)
    try:
        defn = loader.load_file(
            path,
            replace(
                known_with(own_template_names(own)),
                definitions=others,
                role_scopes=role_scopes(db),
            ),
        )
    except wferrors.DefinitionError as exc:
        mapped = _mapped(exc)
        if folder is None and isinstance(mapped, DefinitionInvalid):
            raise DefinitionInvalid(
                mapped.source, missing_folder_hint(path, mapped.problems)
            ) from None
        raise mapped from None
    latest = latest_version(db, defn.name)
    if latest is not None and defn.version < latest:
        raise InputError(
            Message(
                "%(path)s: version %(version)s is older than the registered version %(latest)s "
                "of %(name)s",
                {
                    "path": str(path),
                    "version": str(defn.version),
                    "latest": str(latest),
                    "name": defn.name,
                },
            )
        )
    try:
        return defn, register(db, defn, own_templates=own)
    except OnboardingError as exc:
        raise InputError(
            Message("%(path)s: %(error)s", {"path": str(path), "error": exc.sentence()})
        ) from None


def latest_version(db: Database, name: str) -> int | None:
    row = db.execute("SELECT max(version) FROM definitions WHERE name = ?", [name]).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def names(db: Database) -> list[tuple[str, int]]:
    """Each definition name with its latest version."""
    return [
        (r[0], int(r[1]))
        for r in db.execute(
            "SELECT name, max(version) FROM definitions GROUP BY name ORDER BY name"
        ).fetchall()
    ]


def _remember_ranks(db: Database, defn: Definition) -> None:
    """The rollout report's rank of each state of a new version (onboarding/rollup.py), in the
    transaction that stores it, so the triggers counting tracks on it find them."""
    from onboarding import rollup

    try:
        rollup.remember_ranks(db.conn, [defn])
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        # A database before migration 013 (being upgraded): that migration writes them.


def get(db: Database, name: str, version: int | None = None) -> Definition:
    """A stored definition (its latest version unless one is given).

    Built once per process from its pre-parsed document; later calls read only its digest.
    """
    if version is None:
        version = latest_version(db, name)
        if version is None:
            candidates = [n for n, _ in names(db)]
            raise NotFound("definition", name, candidates)
    try:
        row = db.execute(
            "SELECT digest FROM definitions WHERE name = ? AND version = ?", [name, version]
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
        return _from_text(db, name, version)  # a migration before 010 reading a definition
    if row is None:
        raise NotFound("definition", f"{name} v{version}", [n for n, _ in names(db)])
    key = (name, version, str(row[0]))
    found = _by_version.get(key) if row[0] else None
    if found is None:
        found = _read(db, name, version)
        if row[0]:
            _by_version[key] = found
    return found


def _read(db: Database, name: str, version: int) -> Definition:
    """Build a stored version: from its document, else (a row written without one) its YAML."""
    document, text = db.execute(
        "SELECT document, source FROM definitions WHERE name = ? AND version = ?",
        [name, version],
    ).fetchone()
    if document is None:
        return _from_text(db, name, version)
    cached = _by_digest.get(text)
    if cached is None:
        cached = load_document(document, text)
        _by_digest[text] = cached
        roles.remember(cached.roles)  # their labels, wherever this process words a role
    return cached


def _from_text(db: Database, name: str, version: int) -> Definition:
    """Parse a stored version's YAML (validated as ``legacy``): a row without a document."""
    row = db.execute(
        "SELECT source FROM definitions WHERE name = ? AND version = ?", [name, version]
    ).fetchone()
    if row is None:
        raise NotFound("definition", f"{name} v{version}", [n for n, _ in names(db)])
    text = row[0]
    # Its own template names only when it is parsed (once per process): not on every read.
    own = frozenset() if text in _by_digest else own_template_names(templates(db, name, version))
    return parse(text, f"{name} v{version} (stored)", own)


def fill_documents(conn: sqlite3.Connection) -> int:
    """Write the document and digest of every stored version that lacks them (migration
    ``010_parsed_definitions``); return how many rows were filled."""
    rows = conn.execute(
        "SELECT name, version, source FROM definitions WHERE document IS NULL OR digest IS NULL"
    ).fetchall()
    for name, version, text in rows:
        conn.execute(
            "UPDATE definitions SET document = ?, digest = ? WHERE name = ? AND version = ?",
            [document_json(text, f"{name} v{version}"), _digest(text), name, version],
        )
    return len(rows)
