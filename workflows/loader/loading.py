"""Loading a definition from text or a file: validate, then build; and the shipped files.

The entry points callers use: ``check_text``/``validate_text`` say what is wrong,
``load_text``/``load_file`` raise ``DefinitionInvalid`` listing every problem or return the
built definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflows.errors import DefinitionInvalid, DefinitionUnreadable
from workflows.loader.build import _build
from workflows.loader.known import Known
from workflows.loader.validate import _validate
from workflows.loader.yaml_text import parse_yaml
from workflows.model import Definition


def shipped_dir() -> Path:
    # workflows/definitions, beside this package (an installed package is always a folder
    # here): importlib.resources would cost every command its zipfile import.
    return Path(__file__).resolve().parent.parent / "definitions"


def shipped_files() -> dict[str, Path]:
    """The definitions that ship with the package, by file stem."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.yaml"))}


def check_text(text: str, source: str, known: Known) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a definition's text; no problems means it is valid.

    A warning is what cannot be checked here, such as a guard naming a definition that is not
    among ``known.definitions`` when ``workflow validate`` reads a lone file.
    """
    _, problems, warnings = _check(text, source, known)
    return problems, warnings


def _check(text: str, source: str, known: Known) -> tuple[Any, list[str], list[str]]:
    data, problems = parse_yaml(text, source, legacy=known.legacy)
    if data is None and problems:
        return None, problems, []
    out = _validate(data, known)
    return data, problems + out.items, out.warnings


def validate_text(text: str, source: str, known: Known) -> list[str]:
    """Every problem in a definition's text (empty list: it is valid)."""
    return check_text(text, source, known)[0]


def load_text(text: str, source: str, known: Known) -> Definition:
    """Validate and build a definition; raise ``DefinitionInvalid`` listing every problem."""
    data, problems, _ = _check(text, source, known)
    if problems:
        raise DefinitionInvalid(source, problems)
    return _build(data, text)


def load_file(path: str | Path, known: Known) -> Definition:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DefinitionUnreadable(f"{p}: cannot read definition: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DefinitionUnreadable(
            f"{p}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as "
            "UTF-8"
        ) from None
    return load_text(text, str(p), known)
