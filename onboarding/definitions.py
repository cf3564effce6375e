"""The workflow definitions a database knows, by name and version.

Every version a track has used is stored (its YAML source) in the ``definitions`` table, so a
track keeps running on the version it started with even after the shipped file moves on. Parsed
definitions (and their ``transitions`` machines) are cached per process: one machine per
definition version, never one per track.

A definition may ship its own mail templates: a folder ``NAME.templates/`` beside its file
``NAME.yaml`` (or the folder given to ``workflow add --templates``), holding ``da/`` and ``en/``
like the shipped templates. They are checked and stored with the version
(``definition_templates``), and a notification of that definition may name them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from sqlite_utils import Database

from onboarding import clock
from onboarding.errors import InputError, NotFound, OnboardingError
from workflows.loader import Known, load_file, load_text, shipped_files
from workflows.model import Definition

#: Parsed definitions by their source text (one machine per distinct version, per process).
_by_digest: dict[str, Definition] = {}


def known() -> Known:
    """The roles, guards and templates a definition may name."""
    from onboarding import outbox
    from onboarding.guards import SIGNATURES
    from onboarding.roles import ROLES

    return Known(
        roles=frozenset(ROLES),
        guards=SIGNATURES,
        templates=outbox.template_names(),
        check_notifications=outbox.check_notifications,
    )


#: A definition's own templates: ``NAME.templates/`` beside ``NAME.yaml``.
TEMPLATES_SUFFIX = ".templates"
#: The largest template file accepted (a mail template is a few kB).
TEMPLATE_MAX_BYTES = 256 * 1024
#: The three files of one template, as in ``notifications/templates/<lang>/``.
TEMPLATE_PARTS = ("subject.txt", "txt", "html")
_TEMPLATE_FILE = re.compile(r"^(_?[a-z0-9][a-z0-9_-]{0,63})\.(subject\.txt|txt|html)$")


def known_with(templates: frozenset[str]) -> Known:
    """``known()`` with a definition's own template names added."""
    base = known()
    if not templates or base.templates is None:
        return base
    return dataclasses.replace(base, templates=base.templates | templates)


def template_folder(path: str | Path) -> Path | None:
    """The own-templates folder beside a definition file (``x.yaml`` -> ``x.templates/``),
    or None when there is none."""
    p = Path(path)
    folder = p.with_name(p.stem + TEMPLATES_SUFFIX)
    return folder if folder.is_dir() else None


def own_template_names(files: Mapping[str, str]) -> frozenset[str]:
    """The template names a definition's own files give (``da/welcome.subject.txt`` ->
    ``welcome``); ``_`` files are pieces to import, not names a notification may use."""
    suffix = f".{TEMPLATE_PARTS[0]}"
    return frozenset(
        path[3 : -len(suffix)]
        for path in files
        if path.startswith("da/") and path.endswith(suffix) and not path[3:].startswith("_")
    )


def _template_file(folder: Path, entry: Path) -> tuple[str | None, str | None]:
    """One file of a templates folder: (its text, None) or (None, what is wrong)."""
    from notifications.config import LANGUAGES
    from notifications.render import shipped_internal

    rel = entry.relative_to(folder).as_posix()
    parts = rel.split("/")
    if len(parts) != 2 or parts[0] not in LANGUAGES:
        return None, f"{rel}: a template file belongs in one of {', '.join(LANGUAGES)}/"
    if not _TEMPLATE_FILE.match(parts[1]):
        return None, (
            f"{rel}: name it NAME.subject.txt, NAME.txt or NAME.html (NAME: lower-case "
            "letters, digits, '-' or '_')"
        )
    if shipped_internal(rel):
        return None, (
            f"{rel}: would replace the shipped {rel}, which every message uses; change it "
            "for all definitions in the folder of [mail] templates instead"
        )
    data = entry.read_bytes()
    if len(data) > TEMPLATE_MAX_BYTES:
        return None, f"{rel}: larger than {TEMPLATE_MAX_BYTES // 1024} kB"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, f"{rel}: not UTF-8 text: save the file as UTF-8"


def check_templates(folder: Path) -> tuple[dict[str, str], list[str]]:
    """A definition's templates folder: its files (path -> text) and every problem.

    Files are ``da/NAME.subject.txt``, ``da/NAME.txt`` and ``da/NAME.html`` (and the same in
    ``en/``); each template needs all three, in Danish at least (the fallback of every
    language). ``_NAME.txt``/``_NAME.html`` are pieces to import; none may have the path of a
    shipped ``_`` file. Every file must compile in the sandbox that renders mail.
    """
    from notifications.config import LANGUAGES
    from notifications.render import template_problems

    files: dict[str, str] = {}
    problems: list[str] = []
    try:
        entries = sorted(folder.rglob("*"))
        for entry in entries:
            rel = entry.relative_to(folder).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue  # .DS_Store, editors' swap files
            if entry.is_dir():
                if rel not in LANGUAGES:
                    problems.append(f"{rel}/: only the folders {', '.join(LANGUAGES)} belong here")
                continue
            text, problem = _template_file(folder, entry)
            if problem is not None:
                problems.append(problem)
            elif text is not None:
                files[rel] = text
    except OSError as exc:
        problems.append(f"cannot read: {exc.strerror or exc}")
    names = {
        (path[:2], path[3:].split(".", 1)[0]) for path in files if not path[3:].startswith("_")
    }
    for lang, name in sorted(names):
        missing = [p for p in TEMPLATE_PARTS if f"{lang}/{name}.{p}" not in files]
        if missing:
            have = ", ".join(f"{lang}/{name}.{p}" for p in missing)
            problems.append(f"{lang}/{name}: missing {have} (a template is all three files)")
        if lang != "da" and ("da", name) not in names:
            problems.append(
                f"{lang}/{name}: no da/{name} beside it (Danish is every language's fallback)"
            )
    problems.extend(template_problems(files))
    return files, problems


def read_templates(folder: Path) -> dict[str, str]:
    """A definition's templates folder, checked (``check_templates``); InputError naming the
    first problem and the folder."""
    files, problems = check_templates(folder)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise InputError(f"{folder}/{problems[0]}{more}")
    return files


def templates(db: Database, name: str, version: int) -> dict[str, str]:
    """A stored definition version's own templates (path -> text; empty: it has none)."""
    return {
        str(path): str(content)
        for path, content in db.execute(
            "SELECT path, content FROM definition_templates WHERE definition = ? AND version = ?"
            " ORDER BY path",
            [name, version],
        ).fetchall()
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse(text: str, source: str, own: frozenset[str] = frozenset()) -> Definition:
    """Validate and build a definition, once per distinct text in this process; ``own`` are
    the names of the definition's own templates."""
    # Keyed by the text itself: a dict lookup hashes it once, where a digest per call (every
    # advance reads its definition) cost more than the rest of the lookup.
    cached = _by_digest.get(text)
    if cached is None:
        cached = _by_digest[text] = load_text(text, source, known_with(own))
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
                f"definition {defn.name} version {defn.version} is already registered with "
                "different content: give the changed definition a new version number"
            )
        if templates(db, defn.name, defn.version) != own:
            raise OnboardingError(
                f"definition {defn.name} version {defn.version} is already registered with "
                "other templates: give the definition a new version number to change its mail"
            )
        return False
    db.execute(
        "INSERT INTO definitions (name, version, source, registered_at) VALUES (?, ?, ?, ?)",
        [defn.name, defn.version, defn.source, at or clock.stamp(clock.now())],
    )
    db.conn.executemany(
        "INSERT INTO definition_templates (definition, version, path, content)"
        " VALUES (?, ?, ?, ?)",
        [(defn.name, defn.version, path, text) for path, text in sorted(own.items())],
    )
    return True


def register_shipped(db: Database) -> list[str]:
    """Store the shipped definitions not yet in the database; return 'name vN' of each added."""
    added = []
    for path in shipped_files().values():
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
    defn = load_file(path, known_with(own_template_names(own)))
    latest = latest_version(db, defn.name)
    if latest is not None and defn.version < latest:
        raise InputError(
            f"{path}: version {defn.version} is older than the registered version {latest} of "
            f"{defn.name}"
        )
    try:
        return defn, register(db, defn, own_templates=own)
    except OnboardingError as exc:
        raise InputError(f"{path}: {exc}") from None


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


def get(db: Database, name: str, version: int | None = None) -> Definition:
    """A stored definition (its latest version unless one is given)."""
    if version is None:
        version = latest_version(db, name)
        if version is None:
            candidates = [n for n, _ in names(db)]
            raise NotFound("definition", name, candidates)
    row = db.execute(
        "SELECT source FROM definitions WHERE name = ? AND version = ?", [name, version]
    ).fetchone()
    if row is None:
        raise NotFound("definition", f"{name} v{version}", [n for n, _ in names(db)])
    text = row[0]
    # Its own template names only when it is parsed (once per process): not on every read.
    own = frozenset() if text in _by_digest else own_template_names(templates(db, name, version))
    return parse(text, f"{name} v{version} (stored)", own)
