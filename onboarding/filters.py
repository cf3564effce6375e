"""Selecting tracks: the filter behind ``track list`` and ``track advance --where``.

A filter is written as ``key=value`` pairs separated by spaces or commas, e.g.
``definition=connection state=service_agreements system=Momentum``. Names are resolved
through the registry (code or name, exact before partial).

Every value is checked against what exists before anything is selected (``resolve``): a typo
in a state, definition, phase or bucket would otherwise select nothing and look like "no track
is there". The check is refused with the closest values and the command that lists the rest.
An empty selection of valid values is a fact worth saying in words (``describe``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from onboarding.db import Database
from onboarding.errors import Ambiguous, InputError, NotFound, OnboardingError
from onboarding.i18n import Message, Phrases, Term

if TYPE_CHECKING:
    from onboarding.visibility import Scope

KEYS = (
    "definition",
    "state",
    "phase",
    "bucket",
    "municipality",
    "system",
    "vendor",
    "region",
    "overdue",
    "open",
)
_TRUE = ("1", "true", "yes", "ja", "y", "j")
_FALSE = ("0", "false", "no", "nej", "n")


@dataclass(frozen=True)
class TrackFilter:
    definition: str | None = None
    state: str | None = None
    municipality: str | None = None
    system: str | None = None
    vendor: str | None = None
    region: str | None = None
    overdue: bool = False
    open: bool = False
    today: date | None = None
    ids: tuple[int, ...] = ()
    phase: str | None = None
    bucket: str | None = None
    #: Who reads (``onboarding.visibility``): only the tracks it may read are selected.
    scope: Scope | None = None

    def is_empty(self) -> bool:
        return not any(
            getattr(self, f.name) for f in fields(self) if f.name not in ("today", "scope")
        )

    def to_sql(self, db: Database) -> tuple[str, list[Any]]:
        """A WHERE clause over ``tracks t`` and its parameters."""
        from onboarding import clock, registry

        clauses: list[str] = []
        params: list[Any] = []
        if self.definition:
            clauses.append("t.definition = ?")
            params.append(self.definition)
        if self.state:
            states = _alternatives(self.state)
            clauses.append(f"t.state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        for attr, value in (("phase", self.phase), ("bucket", self.bucket)):
            if value:
                # A phase or bucket is a set of states, per definition version.
                triples = _states_where(db, attr, _alternatives(value))
                if not triples:
                    clauses.append("0")
                    continue
                rows = ", ".join("(?, ?, ?)" for _ in triples)
                clauses.append(f"(t.definition, t.def_version, t.state) IN (VALUES {rows})")
                params.extend(v for triple in triples for v in triple)
        if self.municipality:
            clauses.append("t.municipality_code = ?")
            params.append(registry.resolve_municipality(db, self.municipality)["code"])
        if self.system:
            clauses.append("t.system_id = ?")
            params.append(registry.resolve_system(db, self.system)["id"])
        if self.vendor:
            # A vendor's systems' tracks, and tracks about the vendor itself (a vendor subject).
            vendor_id = registry.resolve_vendor(db, self.vendor)["id"]
            clauses.append(
                "(t.system_id IN (SELECT id FROM systems WHERE vendor_id = ?) OR t.vendor_id = ?)"
            )
            params.extend([vendor_id, vendor_id])
        if self.region:
            clauses.append(
                "t.municipality_code IN (SELECT code FROM municipalities WHERE region LIKE ?)"
            )
            params.append(f"%{self.region}%")
        if self.overdue:
            today = self.today or clock.local_date(clock.now())
            clauses.append("t.final = 0 AND t.due IS NOT NULL AND t.due < ?")
            params.append(today.isoformat())
        if self.open:
            clauses.append("t.final = 0")
        if self.ids:
            clauses.append(f"t.id IN ({', '.join('?' * len(self.ids))})")
            params.extend(self.ids)
        if self.scope is not None and not self.scope.everything:
            clauses.append(self.scope.tracks("t"))
        return (" AND ".join(clauses) or "1 = 1"), params


def _alternatives(value: str) -> list[str]:
    """``a|b`` as ``[a, b]``: one value or several."""
    return [v.strip() for v in value.split("|") if v.strip()]


_PAIR = re.compile(r"\s*([a-z_]+)\s*=\s*(\"[^\"]*\"|'[^']*'|[^,\s]+(?:\s+(?![a-z_]+\s*=)[^,\s]+)*)")


def parse_where(text: str) -> TrackFilter:
    """Parse ``key=value`` pairs; a value may be quoted or hold spaces (``system=KMD Momentum``)."""
    values: dict[str, Any] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _PAIR.match(text, pos)
        if not m:
            raise InputError(
                Message(
                    "--where %(where)s: cannot read from %(rest)s; write key=value pairs "
                    "(keys: %(keys)s)",
                    {"where": repr(text), "rest": repr(text[pos:]), "keys": ", ".join(KEYS)},
                )
            )
        key, value = m.group(1), m.group(2).strip("\"'")
        if key not in KEYS:
            raise InputError(
                Message(
                    "--where: unknown key %(key)s%(closest)s; keys: %(keys)s",
                    {
                        "key": repr(key),
                        "closest": _closest_hint(key, KEYS),
                        "keys": ", ".join(KEYS),
                    },
                )
            )
        if key in ("overdue", "open"):
            values[key] = _yes_no(key, value)
        else:
            values[key] = value
        pos = m.end()
        while pos < len(text) and text[pos] in ", ":
            pos += 1
    flt = TrackFilter(**values)
    if flt.is_empty():
        raise InputError(Message("--where selects every track: name at least one condition"))
    return flt


def _yes_no(key: str, value: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InputError(
        Message(
            "--where %(key)s=%(value)s: write %(key)s=yes or %(key)s=no",
            {"key": key, "value": repr(value)},
        )
    )


# --- checking values against what exists --------------------------------------------------------


@dataclass(frozen=True)
class _StateInfo:
    definition: str
    version: int
    state: str
    phase: str | None
    bucket: str | None


def _all_states(db: Database) -> list[_StateInfo]:
    """Every state of every stored definition version: a track may run on an older one."""
    from onboarding import definitions

    out: list[_StateInfo] = []
    for name, version, source in db.conn.execute(
        "SELECT name, version, source FROM definitions ORDER BY name, version"
    ):
        defn = definitions.parse(source, f"{name} v{version} (stored)")
        out.extend(_StateInfo(name, int(version), s.name, s.phase, s.bucket) for s in defn.states)
    return out


def _states_where(db: Database, attr: str, values: Sequence[str]) -> list[tuple[str, int, str]]:
    wanted = {v.casefold() for v in values}
    return [
        (s.definition, s.version, s.state)
        for s in _all_states(db)
        if (getattr(s, attr) or "").casefold() in wanted
    ]


def _closest(value: str, known: Iterable[str]) -> list[str]:
    by_fold = {k.casefold(): k for k in known}
    import difflib  # only when a name is not found

    close = difflib.get_close_matches(value.casefold(), list(by_fold), n=3, cutoff=0.6)
    return [by_fold[c] for c in close]


def _closest_hint(value: str, known: Iterable[str]) -> str:
    close = _closest(value, known)
    return Message("; closest: %(closest)s", {"closest": ", ".join(close)}) if close else ""


def _reworded(error: OnboardingError, message: Message, hint: Message) -> None:
    """Say ``error`` (a ``NotFound`` or ``Ambiguous`` keeping its name and candidates) as
    ``message``, with where to look as the command line's hint."""
    OnboardingError.__init__(error, message, hint=hint, hint_sep=" ")


def _unknown(
    label: str, what: str, value: str, known: Sequence[str], listing: str, of: str = ""
) -> NotFound:
    """A refusal that names the closest values and where to list the rest."""
    error = NotFound(what, value, _closest(value, known))
    close = (
        Message("; closest: %(closest)s", {"closest": ", ".join(error.candidates)})
        if error.candidates
        else ""
    )
    _reworded(
        error,
        Message(
            "%(option)s: unknown %(what)s %(value)s%(of)s%(closest)s",
            # ``what`` is an English noun ("state", "actor"): the catalogue has its Danish.
            {
                "option": label,
                "what": Message(what),
                "value": repr(value),
                "of": of,
                "closest": close,
            },
        ),
        _see(listing),
    )
    return error


def _see(listing: str) -> Message:
    return Message("(see '%(listing)s')", {"listing": listing})


def _one_of(value: str, known: Sequence[str]) -> str | None:
    """The known value ``value`` names, exactly or apart from case; None if none."""
    if value in known:
        return value
    folded = [k for k in known if k.casefold() == value.strip().casefold()]
    return folded[0] if len(set(folded)) == 1 else None


def resolve(db: Database, flt: TrackFilter, where: bool = False) -> TrackFilter:
    """``flt`` with every value checked against what exists and written as stored.

    Raises ``NotFound`` (or ``Ambiguous``) naming the option (``--state`` or, with ``where``,
    ``--where state``), the closest values and the command that lists them all.
    """

    def label(key: str) -> str:
        return f"--where {key}" if where else f"--{key}"

    states = _all_states(db)
    definitions = sorted({s.definition for s in states})
    changes: dict[str, Any] = {}
    definition = flt.definition
    if definition:
        found = _one_of(definition, definitions)
        if found is None:
            raise _unknown(
                label("definition"),
                "definition",
                definition,
                definitions,
                "onboarding workflow list",
            )
        definition = changes["definition"] = found
    scope = [s for s in states if definition is None or s.definition == definition]
    for attr in ("state", "phase", "bucket"):
        value = getattr(flt, attr)
        if not value:
            continue
        known = sorted({str(getattr(s, attr)) for s in scope if getattr(s, attr)})
        picked = []
        for alternative in _alternatives(value):
            found = _one_of(alternative, known)
            if found is None:
                raise _unknown_in_workflow(
                    label(attr), attr, alternative, known, definition, states
                )
            picked.append(found)
        if not picked:
            raise InputError(
                Message(
                    "%(option)s: give a %(what)s name",
                    {"option": label(attr), "what": Message(attr)},
                )
            )
        changes[attr] = "|".join(dict.fromkeys(picked))
    changes.update(_resolve_registry(db, flt, label))
    return replace(flt, **changes) if changes else flt


def _unknown_in_workflow(
    label: str,
    attr: str,
    value: str,
    known: Sequence[str],
    definition: str | None,
    states: Sequence[_StateInfo],
) -> NotFound:
    """An unknown state, phase or bucket; the listing is the workflow it was looked for in, or
    the one the closest value belongs to, and a value of another workflow is said to be one."""
    elsewhere = sorted(
        {s.definition for s in states if (getattr(s, attr) or "").casefold() == value.casefold()}
    )
    of: str = Message(" of %(definition)s", {"definition": definition}) if definition else ""
    if elsewhere:
        of = Message(
            "%(of)s (it is a %(what)s of %(definitions)s)",
            {"of": of, "what": Message(attr), "definitions": ", ".join(elsewhere)},
        )
    owner = definition
    close = _closest(value, known)
    if owner is None and close:
        owners = sorted({s.definition for s in states if getattr(s, attr) == close[0]})
        owner = owners[0] if len(owners) == 1 else None
    listing = f"onboarding workflow show {owner}" if owner else "onboarding workflow list"
    return _unknown(label, attr, value, known, listing, of)


_LISTINGS = {
    "municipality": "onboarding registry list municipalities",
    "system": "onboarding registry list systems",
    "vendor": "onboarding registry list vendors",
}


def _resolve_registry(
    db: Database, flt: TrackFilter, label: Callable[[str], str]
) -> dict[str, str]:
    from onboarding import registry

    # The column of the resolved row that names it as stored.
    resolvers: dict[str, tuple[Callable[[Database, str], dict[str, Any]], str]] = {
        "municipality": (registry.resolve_municipality, "name"),
        "system": (registry.resolve_system, "label"),
        "vendor": (registry.resolve_vendor, "name"),
    }
    out: dict[str, str] = {}
    for key, (resolve_one, column) in resolvers.items():
        value = getattr(flt, key)
        if not value:
            continue
        try:
            row = resolve_one(db, value)
        except (NotFound, Ambiguous) as exc:
            if exc.hint or str(exc) != exc._as_raised:  # pragma: no cover - said as it is
                exc.args = (f"{label(key)}: {exc} (see '{_LISTINGS[key]}')",)
                raise
            _reworded(
                exc,
                Message("%(option)s: %(error)s", {"option": label(key), "error": exc.message}),
                _see(_LISTINGS[key]),
            )
            raise
        # The stored name: it resolves to the same row again (an exact name always wins).
        out[key] = str(row[column])
    if flt.region:
        out["region"] = _region(flt.region, label("region"))
    return out


def _region(value: str, label: str) -> str:
    from onboarding.registry import REGIONS, fold

    needle = fold(value.removeprefix("Region ").removeprefix("region "))
    hits = [r for r in REGIONS if needle and needle in fold(r.removeprefix("Region "))]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise Ambiguous("region", value, hits)
    error = _unknown(label, "region", value, REGIONS, "onboarding registry list municipalities")
    if not error.candidates:
        error = NotFound("region", value)
        OnboardingError.__init__(
            error,
            Message(
                "%(option)s: unknown region %(value)s; regions: %(regions)s",
                {"option": label, "value": repr(value), "regions": ", ".join(REGIONS)},
            ),
        )
    raise error


def describe(flt: TrackFilter, open_only: bool = False, db: Database | None = None) -> Message:
    """What an empty selection selected, in words: ``no open track of connection is in
    display_opening`` (English: the keys, as it has always read), in Danish by the labels of
    the workflow, its states and phases (``db``: where they are read)."""
    label = _Labels(db)
    noun = "no track"
    if flt.overdue:
        noun = "no overdue track"
    elif flt.open or open_only:
        noun = "no open track"
    parts: list[Any] = [Message(noun)]
    if flt.definition:
        parts.append(Message(" of %(definition)s", {"definition": label.workflow(flt.definition)}))
    if flt.ids:
        ids = ", ".join(f"#{i}" for i in flt.ids)
        parts.append(Message(" among %(ids)s", {"ids": ids}))
    for key, msgid in (
        ("municipality", " for municipality %(name)s"),
        ("system", " for system %(name)s"),
        ("vendor", " for vendor %(name)s"),
    ):
        value = getattr(flt, key)
        if value:
            parts.append(Message(msgid, {"name": value}))
    if flt.region:
        parts.append(Message(" in %(region)s", {"region": flt.region}))
    places: list[Any] = []
    if flt.state:
        states = _alternatives(flt.state)
        places.append(Phrases((label.state(flt.definition, s) for s in states), conj="or"))
    if flt.phase:
        phases = Phrases((label.phase(p) for p in _alternatives(flt.phase)), conj="or")
        places.append(Message("phase %(phases)s", {"phases": phases}))
    if flt.bucket:
        buckets = Phrases((repr(b) for b in _alternatives(flt.bucket)), conj="or")
        places.append(Message("bucket %(buckets)s", {"buckets": buckets}))
    if places:
        parts.append(Message(" is in %(places)s", {"places": Phrases(places)}))
    return Message("%(parts)s", {"parts": Phrases(parts, sep="")})


class _Labels:
    """Workflows and states by their labels in Danish (read from the stored definitions, the
    latest version naming each), by their keys in English."""

    def __init__(self, db: Database | None) -> None:
        self.titles: dict[str, str] = {}
        self.states: dict[tuple[str, str], str] = {}
        if db is None:
            return
        from onboarding import definitions

        for name, version, source in db.conn.execute(
            "SELECT name, version, source FROM definitions ORDER BY name, version"
        ):
            defn = definitions.parse(source, f"{name} v{version} (stored)")
            self.titles[name] = defn.title
            self.states.update({(name, st.name): st.label for st in defn.states if st.label})

    @staticmethod
    def _term(key: str, label: str | None) -> Term:
        return Term(key, {"da": f"“{label}”" if label else key, "en": key})

    def workflow(self, name: str) -> Term:
        return self._term(name, self.titles.get(name))

    def state(self, definition: str | None, name: str) -> Term:
        """A state by its label in ``definition`` (none given: in the workflow having it)."""
        found = [v for (d, s), v in self.states.items() if s == name and definition in (None, d)]
        return self._term(name, found[0] if found else None)

    @staticmethod
    def phase(key: str) -> Term:
        from onboarding import terms

        return Term(key, {"da": f"“{terms.phase(key, 'da')}”", "en": key})


def check_actor(db: Database, name: str, option: str = "--actor") -> None:
    """Refuse an actor no step was ever recorded by and that is not registered."""
    known = sorted(
        {r[0] for r in db.conn.execute("SELECT DISTINCT actor FROM history")}
        | {r[0] for r in db.conn.execute("SELECT name FROM actors")}
    )
    if name not in known:
        raise _unknown(option, "actor", name, known, "onboarding actor list")


def check_track(db: Database, track_id: int, option: str = "--track") -> None:
    """Refuse a track number that is not in the database."""
    if db.conn.execute("SELECT 1 FROM tracks WHERE id = ?", [track_id]).fetchone() is None:
        raise _no_track(option, track_id)


def _no_track(option: str, track_id: int) -> NotFound:
    error = NotFound("track", str(track_id))
    _reworded(
        error,
        Message("%(option)s: no track #%(id)s", {"option": option, "id": str(track_id)}),
        _see("onboarding track list"),
    )
    return error
