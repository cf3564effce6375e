"""Load and validate workflow definitions (YAML).

The validator collects every problem, each with the path inside the file
(``states[2].due.after_entry: ...``), before anything runs. It knows no database: the caller
hands it the roles, guards and templates that exist (``Known``).

A package, one module per concept; this file only re-exports the public names, so
``from workflows.loader import load_text`` and ``loader.parse_yaml`` keep working. It does so
lazily (``workflows.lazy``): a stored version is built by ``build`` alone, and the validator
(``loading``) is imported only when a definition is checked. Its modules, lowest first (each
imports only those above it, never this file):

* ``known``: what the validator is told (``Known``, ``GuardSignature``, ``OtherDefinition``)
  and what it reports (its list of problems), and the name rules every check shares;
* ``yaml_text``: reading YAML (libyaml when present, duplicate keys, syntax hints);
* ``header``, ``states``, ``guards``, ``transitions``: the checks of each part of a
  definition;
* ``build``: the model built from a valid document, and the pre-parsed JSON a stored version
  is built from (no PyYAML);
* ``loading``: the whole validator and the entry points (text, file, the shipped files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workflows.lazy import exports

if TYPE_CHECKING:
    from workflows.loader.build import _decode as _decode
    from workflows.loader.build import document_json, load_document
    from workflows.loader.guards import REQUIRES_TRACK_WHICH, guard_parts
    from workflows.loader.header import check_subject
    from workflows.loader.known import GuardSignature, Known, NotificationCheck, OtherDefinition
    from workflows.loader.loading import (
        check_text,
        load_file,
        load_text,
        shipped_dir,
        shipped_files,
        validate_text,
    )
    from workflows.loader.transitions import expand_sources
    from workflows.loader.yaml_text import parse_yaml

if not TYPE_CHECKING:  # each name imported from its home when first asked for
    __getattr__, __dir__ = exports(
        __name__,
        {
            "build": ["_decode", "document_json", "load_document"],
            "guards": ["REQUIRES_TRACK_WHICH", "guard_parts"],
            "header": ["check_subject"],
            "known": ["GuardSignature", "Known", "NotificationCheck", "OtherDefinition"],
            "loading": [
                "check_text",
                "load_file",
                "load_text",
                "shipped_dir",
                "shipped_files",
                "validate_text",
            ],
            "transitions": ["expand_sources"],
            "yaml_text": ["parse_yaml"],
        },
    )

__all__ = [
    "REQUIRES_TRACK_WHICH",
    "GuardSignature",
    "Known",
    "NotificationCheck",
    "OtherDefinition",
    "check_subject",
    "check_text",
    "document_json",
    "expand_sources",
    "guard_parts",
    "load_document",
    "load_file",
    "load_text",
    "parse_yaml",
    "shipped_dir",
    "shipped_files",
    "validate_text",
]
