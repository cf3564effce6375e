"""The buckets report: any definition's tracks counted per bucket (or per state, for one that
declares no buckets) as of a date, in total or per municipality, vendor, system or region;
with its text. Its CSV and HTML forms are in ``exports``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from onboarding import i18n, registry
from onboarding.db import Database
from onboarding.errors import InputError
from onboarding.i18n import Message
from onboarding.reports.asof import _Defs, _end_stamp, _today, _tracks_as_of
from onboarding.reports.text import _danish, _lang, _say, _table, _wrap
from workflows.model import Definition

if TYPE_CHECKING:
    from onboarding.visibility import Scope

#: The row key of the whole definition (``--by`` not given); said as "Total" in the language.
TOTAL_LABEL = Message("Total")


#: What ``report buckets --by`` may group a definition's tracks by.
BUCKET_BY = ("municipality", "vendor", "system", "region")
#: The row headings of ``--by``, said in the report's language.
BY_LABELS = {
    "municipality": Message("Municipality"),
    "vendor": Message("Vendor"),
    "system": Message("System"),
    "region": Message("Region"),
}
#: The row of a track whose subject has no such part (a system track grouped by municipality).
_NONE_LABEL = {
    "municipality": Message("(no municipality)"),
    "vendor": Message("(no vendor)"),
    "system": Message("(no system)"),
    "region": Message("(no region)"),
}


def _bucket_columns(defs: _Defs, defn: Definition) -> tuple[str, list[dict[str, str]]]:
    """("bucket", the declared buckets) or, for a definition that declares none, ("state",
    its states): the columns a track is counted in, earliest first."""
    if defn.buckets:
        return "bucket", [{"key": b, "label": b} for b in defn.buckets]
    return "state", [{"key": s.name, "label": s.label} for s in defn.states]


def _row_key(
    by: str | None,
    track: Mapping[str, Any],
    places: Mapping[int, Mapping[str, Any]],
    systems: Mapping[int, Mapping[str, Any]],
    vendors: Mapping[int, str],
    none: str,
) -> str:
    """The row a track counts in: its part ``by`` names, or ``none`` (said once by the caller:
    the row of tracks without that part, or, without ``by``, the total row)."""
    if by is None:
        return none
    code, system_id = track.get("municipality_code"), track.get("system_id")
    if by == "vendor" and track.get("vendor_id") is not None:  # a vendor-only subject
        return vendors.get(int(track["vendor_id"])) or none
    if by in ("municipality", "region"):
        place = places.get(int(code)) if code is not None else None
        value = place and (place["name"] if by == "municipality" else place["region"])
    else:
        system = systems.get(int(system_id)) if system_id is not None else None
        value = system and (system["label"] if by == "system" else system["vendor"])
    return str(value) if value else none


#: The row that counts the municipalities a reader may not name (``buckets`` with a scope).
OTHER_MUNICIPALITIES = Message("(other municipalities)")


def buckets(
    db: Database,
    definition: str,
    by: str | None = None,
    as_of: date | None = None,
    scope: Scope | None = None,
    lang: str | None = None,
) -> dict[str, Any]:
    """A definition's tracks counted per bucket as of a date (default today), in total or per
    municipality, vendor, system or region: the ``report buckets --json`` shape, its headings
    and the rows of no or hidden municipalities said in ``lang`` (default: the CLI's).

    Each track that existed at the end of the day counts once, in the bucket of its state then
    (replayed from history as for every report: ``asof._tracks_as_of``), read in the
    definition version it ran then. A definition that declares no buckets is counted per
    state. Columns follow the latest version; a bucket or state only an older version has
    comes after them.
    With ``scope`` (onboarding.visibility) and ``by="municipality"``, municipalities the reader
    does not read are counted together in one row (unless the portfolio is public).
    """
    if by is not None and by not in BUCKET_BY:
        raise InputError(
            Message(
                "--by %(by)s: expected one of %(expected)s",
                {"by": repr(by), "expected": ", ".join(BUCKET_BY)},
            )
        )
    day = as_of or _today(None)
    lang = _lang(lang)
    others = i18n.say(OTHER_MUNICIPALITIES, lang)
    aside = {others, *(i18n.say(label, lang) for label in _NONE_LABEL.values())}
    none = i18n.say(_NONE_LABEL[by] if by else TOTAL_LABEL, lang)
    defs = _Defs(db)
    latest = defs.get(definition)
    kind, columns = _bucket_columns(defs, latest)
    keys = [c["key"] for c in columns]
    places = {int(m["code"]): m for m in registry.list_municipalities(db)}
    systems = {int(s["id"]): s for s in registry.list_systems(db)}
    vendors = {int(v["id"]): str(v["name"]) for v in registry.list_vendors(db)}
    rows: dict[str, dict[str, int]] = {}
    hide: set[int] = set()
    if by == "municipality" and scope is not None and not scope.names_public:
        readable = {
            int(r[0])
            for r in db.conn.execute(
                f"SELECT m.code FROM municipalities m WHERE {scope.municipalities('m.code')}"
            )
        }
        hide = set(places) - readable
    for t in _tracks_as_of(db, _end_stamp(day), definition):
        state = defs.get(definition, int(t["def_version"])).state(str(t["state"]))
        if kind == "bucket":
            column, label = state.bucket or "", state.bucket or ""
        else:
            column, label = state.name, state.label
        if column not in keys:  # only an older version has it
            keys.append(column)
            columns.append({"key": column, "label": label or i18n.gettext(lang, "(none)")})
        code = t["municipality_code"]
        row_key = (
            others
            if code is not None and int(code) in hide
            else _row_key(by, t, places, systems, vendors, none)
        )
        counts = rows.setdefault(row_key, {})
        counts[column] = counts.get(column, 0) + 1
    out_rows: list[dict[str, Any]] = [
        {
            "label": label,
            "counts": {k: counts.get(k, 0) for k in keys},
            "total": sum(counts.values()),
        }
        for label, counts in sorted(
            rows.items(),
            key=lambda kv: (kv[0] in aside, kv[0].casefold()),
        )
    ]
    total = {k: sum(r["counts"][k] for r in out_rows) for k in keys}
    return {
        "as_of": day.isoformat(),
        "definition": {"name": latest.name, "version": latest.version, "title": latest.title},
        "by": by,
        "by_label": i18n.say(BY_LABELS[by], lang) if by else None,
        "columns_are": kind,
        "columns": columns,
        "rows": out_rows if by else [],
        "total": {"counts": total, "total": sum(total.values())},
    }


def buckets_text(report: Mapping[str, Any], lang: str | None = None) -> str:
    """The buckets report in 80 columns: one row per group and a total row."""
    lang = _lang(lang)
    d = report["definition"]
    by = _say(lang, " per %(by)s", by=report["by_label"].lower()) if report["by"] else ""
    title = _say(
        lang,
        "%(title)s (%(name)s), status per %(day)s%(by)s (counted in tracks)",
        title=d["title"],
        name=d["name"],
        day=_danish(report["as_of"], lang),
        by=by,
    )
    lines = [*_wrap(title), ""]
    keys = [c["key"] for c in report["columns"]]
    total_label = _say(lang, "Total")
    headers = [report["by_label"] or "", *(c["label"] for c in report["columns"]), total_label]
    body: list[Sequence[Any] | None] = [
        [r["label"], *(r["counts"][k] for k in keys), r["total"]] for r in report["rows"]
    ]
    if body:
        body.append(None)
    total = report["total"]
    body.append([total_label, *(total["counts"][k] for k in keys), total["total"]])
    lines += _table(headers, body, "l" + "r" * (len(keys) + 1))
    return "\n".join(lines).rstrip() + "\n"
