"""Pre-parsed documents: a stored definition's parsed YAML kept as JSON, and read back.

A stored definition keeps, beside its YAML text, the document that text parses to, as JSON
(``document_json``). Running a stored version then builds it from that JSON
(``load_document``): no YAML parser and no validation (it was validated when stored), so a
command that advances a track never imports PyYAML. JSON has no dates, which YAML has: they
are tagged.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from workflows.loader.build import _build
from workflows.loader.yaml_text import parse_yaml
from workflows.model import Definition

_DATE_TAG = "__yaml_date__"
_DATETIME_TAG = "__yaml_datetime__"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: value.isoformat()}
    if isinstance(value, date):
        return {_DATE_TAG: value.isoformat()}
    raise TypeError(f"{type(value).__name__} in a definition document")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if _DATE_TAG in obj:
            return date.fromisoformat(obj[_DATE_TAG])
        if _DATETIME_TAG in obj:
            return datetime.fromisoformat(obj[_DATETIME_TAG])
    return obj


def document_json(text: str, source: str) -> str | None:
    """The document ``text`` parses to, as JSON that ``load_document`` reads back equal; None
    when JSON cannot carry it exactly (a key that is not text, say): such a version is then
    read from its YAML, as before."""
    import json

    data, problems = parse_yaml(text, source, legacy=True)
    if data is None or problems:
        return None
    try:
        encoded = json.dumps(data, ensure_ascii=False, default=_encode)
    except (TypeError, ValueError):
        return None
    if json.loads(encoded, object_hook=_decode) != data:
        return None
    return encoded


def load_document(document: str, text: str) -> Definition:
    """A stored definition built from its pre-parsed document (``document_json``); ``text``
    is its YAML, kept as the definition's source."""
    import json

    return _build(json.loads(document, object_hook=_decode), text)
