"""A definition's own mail templates (issue 12): found beside its file, checked, stored.

A definition ``NAME.yaml`` may bring a folder ``NAME.templates/`` (or the folder given to
``workflow add --templates``) with ``da/`` and ``en/`` laid out like the shipped templates.
``workflow add`` checks it (``check_templates``) and stores every file with the definition's
version in ``definition_templates`` (migration 006), so the mail of tracks on that version
never changes when the folder is edited, and a copied database still has it. The renderer
reads them back (``templates``) and looks there first (``notifications.render``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from onboarding.db import Database
from onboarding.errors import InputError
from onboarding.i18n import Message

#: A definition's own templates: ``NAME.templates/`` beside ``NAME.yaml``.
TEMPLATES_SUFFIX = ".templates"
#: The largest template file accepted (a mail template is a few kB).
TEMPLATE_MAX_BYTES = 256 * 1024
#: The three files of one template, as in ``notifications/templates/<lang>/``.
TEMPLATE_PARTS = ("subject.txt", "txt", "html")
_TEMPLATE_FILE = re.compile(r"^(_?[a-z0-9][a-z0-9_-]{0,63})\.(subject\.txt|txt|html)$")


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
        return None, Message(
            "%(file)s: a template file belongs in one of %(folders)s/",
            {"file": rel, "folders": ", ".join(LANGUAGES)},
        )
    if not _TEMPLATE_FILE.match(parts[1]):
        return None, Message(
            "%(file)s: name it NAME.subject.txt, NAME.txt or NAME.html (NAME: lower-case "
            "letters, digits, '-' or '_')",
            {"file": rel},
        )
    if shipped_internal(rel):
        return None, Message(
            "%(file)s: would replace the shipped %(file)s, which every message uses; change it "
            "for all definitions in the folder of [mail] templates instead",
            {"file": rel},
        )
    data = entry.read_bytes()
    if len(data) > TEMPLATE_MAX_BYTES:
        return None, Message(
            "%(file)s: larger than %(kb)s kB", {"file": rel, "kb": str(TEMPLATE_MAX_BYTES // 1024)}
        )
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, Message("%(file)s: not UTF-8 text: save the file as UTF-8", {"file": rel})


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
                    problems.append(
                        Message(
                            "%(file)s/: only the folders %(folders)s belong here",
                            {"file": rel, "folders": ", ".join(LANGUAGES)},
                        )
                    )
                continue
            text, problem = _template_file(folder, entry)
            if problem is not None:
                problems.append(problem)
            elif text is not None:
                files[rel] = text
    except OSError as exc:
        problems.append(Message("cannot read: %(reason)s", {"reason": exc.strerror or str(exc)}))
    names = {
        (path[:2], path[3:].split(".", 1)[0]) for path in files if not path[3:].startswith("_")
    }
    for lang, name in sorted(names):
        missing = [p for p in TEMPLATE_PARTS if f"{lang}/{name}.{p}" not in files]
        if missing:
            have = ", ".join(f"{lang}/{name}.{p}" for p in missing)
            problems.append(
                Message(
                    "%(template)s: missing %(files)s (a template is all three files)",
                    {"template": f"{lang}/{name}", "files": have},
                )
            )
        if lang != "da" and ("da", name) not in names:
            problems.append(
                Message(
                    "%(template)s: no da/%(name)s beside it (Danish is every language's fallback)",
                    {"template": f"{lang}/{name}", "name": name},
                )
            )
    problems.extend(template_problems(files))
    return files, problems


def read_templates(folder: Path) -> dict[str, str]:
    """A definition's templates folder, checked (``check_templates``); InputError naming the
    first problem and the folder."""
    files, problems = check_templates(folder)
    if problems:
        first = {"folder": str(folder), "problem": problems[0]}
        if len(problems) > 1:
            raise InputError(
                Message(
                    "%(folder)s/%(problem)s (and %(more)s more problem(s))",
                    {**first, "more": str(len(problems) - 1)},
                )
            )
        raise InputError(Message("%(folder)s/%(problem)s", first))
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


def missing_folder_hint(path: str | Path, problems: list[str]) -> list[str]:
    """``problems`` with a hint added when a notification names a template that is not known
    and the definition has no templates folder: where its own templates would have to be."""
    if not any("unknown template" in p for p in problems):
        return problems
    p = Path(path)
    folder = p.with_name(p.stem + TEMPLATES_SUFFIX)
    return [
        *problems,
        Message(
            "a definition's own template NAME is %(folder)s/da/NAME.subject.txt, NAME.txt and "
            "NAME.html (or give --templates DIR)",
            {"folder": str(folder)},
        ),
    ]
