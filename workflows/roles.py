"""Roles as data: the shipped roles file (``workflows/roles.yaml``) and a definition's own
``roles:`` list, in one format and checked by one function.

A role is a stable key (what grants, contacts, transitions and the audit trail name), a label in
Danish and English (what people read), whom it is held for (its scope kind, ``SCOPE_KINDS``)
and, optionally, how a message greets someone known only by the role. Like the loader, this
module knows no database: ``onboarding.roles`` adds the roles of the definitions a database holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from workflows.digest import sha256_hex
from workflows.errors import DefinitionInvalid
from workflows.model import SCOPE_KINDS, RoleDef

#: The languages a role's label (and addressee) is given in: both are required for a label.
LANGUAGES = ("da", "en")
_KEYS = {"key", "label", "scope", "addressee"}
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
#: Where a role's key and scope were declared before: key -> (scope kind, where).
Elsewhere = Mapping[str, tuple[str, str]]


def roles_file() -> Path:
    """The shipped roles file."""
    return Path(__file__).resolve().parent / "roles.yaml"


def roles_twin() -> Path:
    """The shipped roles file's document as JSON (``write_twin``), read instead of parsing the
    YAML while it matches the file: every command knows the roles, and PyYAML alone costs a
    command's start about 12 ms."""
    return roles_file().with_suffix(".json")


def _digest(text: str) -> str:
    return sha256_hex(text.encode("utf-8"))


def _document(text: str) -> Any:
    """The roles file's document: from its JSON twin when that was written from this very
    text (same SHA-256), else parsed from the YAML (an edited file counts at once; the twin
    only saves time, and tests/test_startup.py says when it is stale)."""
    try:
        twin = json.loads(roles_twin().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        twin = None
    if isinstance(twin, dict) and twin.get("yaml_sha256") == _digest(text):
        return twin.get("document")
    import yaml

    return yaml.safe_load(text)


def write_twin() -> Path:
    """Write ``roles.json`` from ``roles.yaml`` (``python -m workflows.roles``)."""
    import yaml

    text = roles_file().read_text(encoding="utf-8")
    twin = {
        "comment": "Written from roles.yaml by 'python -m workflows.roles'; edit roles.yaml.",
        "yaml_sha256": _digest(text),
        "document": yaml.safe_load(text),
    }
    roles_twin().write_text(json.dumps(twin, ensure_ascii=False, indent=1) + "\n", "utf-8")
    return roles_twin()


def _texts(raw: Any, path: str, required: bool) -> tuple[dict[str, str], list[str]]:
    """A ``{da: ..., en: ...}`` mapping: its texts and its problems."""
    if not isinstance(raw, dict):
        return {}, [f"{path}: must be {{da: DANISH, en: ENGLISH}}"]
    problems = [
        f"{path}.{lang}: unknown language (allowed: {', '.join(LANGUAGES)})"
        for lang in sorted(set(raw) - set(LANGUAGES), key=str)
    ]
    texts = {
        lang: " ".join(raw[lang].split())
        for lang in LANGUAGES
        if isinstance(raw.get(lang), str) and raw[lang].strip()
    }
    missing = [lang for lang in LANGUAGES if lang not in texts]
    if missing and (required or len(missing) < len(LANGUAGES)):
        problems.append(
            f"{path}: needs a text in {' and '.join(LANGUAGES)} (missing: {', '.join(missing)})"
        )
    return texts, problems


def _one(
    spec: Any, path: str, seen: dict[str, str], elsewhere: Elsewhere
) -> tuple[RoleDef | None, list[str]]:
    if not isinstance(spec, dict):
        return None, [f"{path}: must be a mapping with key, label and scope"]
    key = spec.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        return None, [f"{path}.key: required: lower-case letters, digits, '-' or '_' (at most 64)"]
    path = f"{path} ({key})"
    problems = [
        f"{path}.{k}: unknown key (allowed: {', '.join(sorted(_KEYS))})"
        for k in sorted(set(spec) - _KEYS, key=str)
    ]
    if key in seen:
        problems.append(f"{path}.key: role {key!r} is declared twice (first at {seen[key]})")
    else:
        seen[key] = path
    label, wrong = _texts(spec.get("label"), f"{path}.label", required=True)
    problems += wrong
    addressee: dict[str, str] = {}
    if "addressee" in spec:
        addressee, wrong = _texts(spec["addressee"], f"{path}.addressee", required=False)
        problems += wrong
    scope = spec.get("scope")
    if not isinstance(scope, str) or scope not in SCOPE_KINDS:
        problems.append(f"{path}.scope: must be one of {', '.join(SCOPE_KINDS)}")
    elif key in elsewhere and elsewhere[key][0] != scope:
        was, where = elsewhere[key]
        problems.append(
            f"{path}.scope: {key!r} is a role of scope {was} in {where}; a definition may "
            f"declare it again (for its own labels) but not with scope {scope}: choose "
            "another key for another role"
        )
    if problems:
        return None, problems
    return RoleDef(key=key, label=label, scope=str(scope), addressee=addressee), []


def check_roles(
    raw: Any, elsewhere: Elsewhere | None = None, path: str = "roles"
) -> tuple[list[RoleDef], list[str]]:
    """The valid roles of a ``roles:`` list, and every problem with its path
    (``roles[1] (agency).scope: ...``). ``elsewhere`` are roles declared before (the shipped
    file's): a key of theirs may be declared again only with the same scope kind."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [f"{path}: must be a list of roles, each with key, label {{da, en}} and scope"]
    roles: list[RoleDef] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for i, spec in enumerate(raw):
        role, wrong = _one(spec, f"{path}[{i}]", seen, elsewhere or {})
        problems += wrong
        if role is not None:
            roles.append(role)
    return roles, problems


@cache
def shipped_roles() -> dict[str, RoleDef]:
    """The shipped roles by key, in the file's order (checked; a broken file is a bug)."""
    path = roles_file()
    data = _document(path.read_text(encoding="utf-8"))
    raw = data.get("roles") if isinstance(data, dict) else None
    roles, problems = check_roles(raw)
    if problems or not roles:
        raise DefinitionInvalid(str(path), problems or ["roles: the file declares no roles"])
    return {r.key: r for r in roles}


def shipped_scopes() -> dict[str, tuple[str, str]]:
    """Each shipped role's scope kind, for checking a definition's own ``roles:``."""
    return {k: (r.scope, "the shipped roles file") for k, r in shipped_roles().items()}


if __name__ == "__main__":  # pragma: no cover - a maintainer's step after editing roles.yaml
    print(write_twin())
