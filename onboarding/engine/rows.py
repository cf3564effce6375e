"""The track row: its columns, the history triggers that are not steps, reading a track, and
the field values written into it (checked and normalised by their declared type).

Separate because everything else reads or writes this row: planning, writing, bulk, start and
the readers outside the engine (``onboarding.tracks``, the work list) select ``TRACK_COLUMNS``
and build tracks with ``_row_to_track``. It imports nothing else of the engine.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from onboarding import clock, terms
from onboarding.db import Database
from onboarding.errors import InputError, NotFound
from onboarding.i18n import Message, Term
from workflows.model import Definition, FieldDef

START, SET, MIGRATE = "@start", "@set", "@migrate"
#: History triggers that do not re-enter the state (the step's clock keeps running).
NO_REENTRY = frozenset({SET, MIGRATE})

TRACK_COLUMNS = (
    "id, definition, def_version, subject_key, municipality_code, system_id, index_set, bob,"
    " klik_task_id, course, vendor_id, subject_name, state, final, version, fields, entered_at,"
    " due, created_at, updated_at"
)


#: ``json.dumps(value, ensure_ascii=False, sort_keys=True)`` (how fields are stored), with one
#: encoder for the process instead of one built per call.
_FIELDS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


# --- reading tracks ---------------------------------------------------------------------------


#: The names of ``TRACK_COLUMNS``: the cursor's ``description`` is a tuple built per call.
_TRACK_NAMES = tuple(c.strip() for c in TRACK_COLUMNS.split(","))


def _row_to_track(row: tuple[Any, ...]) -> dict[str, Any]:
    """A track as a dict from a row of ``TRACK_COLUMNS`` (every caller selects those)."""
    track = dict(zip(_TRACK_NAMES, row, strict=True))
    track["fields"] = json.loads(track["fields"])
    return track


def load_track(conn: sqlite3.Connection, track_id: int) -> dict[str, Any]:
    cur = conn.execute(f"SELECT {TRACK_COLUMNS} FROM tracks WHERE id = ?", [track_id])
    row = cur.fetchone()
    if row is None:
        raise NotFound("track", str(track_id))
    return _row_to_track(row)


# --- values -----------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "ja", "y", "j"}
_FALSE = {"0", "false", "no", "nej", "n"}


def coerce_field(db: Database, fdef: FieldDef, raw: Any, at: datetime | None = None) -> Any:
    """A field value checked and normalised by its declared type (raises ``InputError``).

    A date far from ``at`` (the step's time) is kept, with a ``clock.FarDateWarning``."""
    text = str(raw).strip()
    # The field's name in an error (``_field_where``, a catalogue lookup) is built only for an
    # error: every advance with a value coerces it, and few values are wrong.
    if fdef.type == "text":
        if len(text) > 4000:
            raise InputError(
                Message("%(where)s: at most 4000 characters", {"where": _field_where(fdef)})
            )
        return text
    if fdef.type == "date":
        try:
            day = clock.parse_date(text)
        except InputError:
            clock.parse_date(text, what=_field_where(fdef))  # raises again, naming the field
            raise
        if at is not None:
            clock.warn_if_far(day, at, lambda: terms.field_named(fdef))
        return day.isoformat()
    if fdef.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise InputError(
                Message(
                    "%(where)s: %(value)s is not a whole number",
                    {"where": _field_where(fdef), "value": repr(text)},
                )
            ) from None
    if fdef.type == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise InputError(
            Message(
                "%(where)s: %(value)s is not yes/no",
                {"where": _field_where(fdef), "value": repr(text)},
            )
        )
    if fdef.type == "municipality":
        from onboarding import registry  # here: an advance without such a field never needs it

        return int(registry.resolve_municipality(db, text)["code"])
    if fdef.type == "wave":
        from onboarding import registry

        return str(registry.resolve_wave(db, text)["code"])
    if fdef.type == "choice":
        if text not in fdef.options:
            raise InputError(
                Message(
                    "%(where)s: %(value)s is not one of %(options)s",
                    {
                        "where": _field_where(fdef),
                        "value": repr(text),
                        "options": ", ".join(fdef.options),
                    },
                )
            )
        return text
    # the validator makes this unreachable
    raise InputError(Message("%(where)s: unsupported type", {"where": _field_where(fdef)}))


def _field_where(fdef: FieldDef) -> Message:
    """How an error names a field: by its key and type in English (as it always has), by its
    label in Danish."""
    name = terms.keyed(Term(fdef.name, {"da": f"“{fdef.label or fdef.name}”"}))
    return Message("field %(field)s (%(type)s)", {"field": name, "type": fdef.type})


def coerce_fields(
    db: Database, defn: Definition, sets: Mapping[str, Any], at: datetime | None = None
) -> dict[str, Any]:
    out = {}
    for name, raw in sets.items():
        fdef = defn.fields.get(name)
        if fdef is None:
            known = terms.keyed_all(terms.fields(defn, defn.fields))
            raise InputError(
                Message(
                    "%(definition)s has no field %(field)s (fields: %(known)s)",
                    {
                        "definition": defn.name,
                        "field": repr(name),
                        "known": known if defn.fields else Message("none"),
                    },
                )
            )
        out[name] = coerce_field(db, fdef, raw, at)
    return out
