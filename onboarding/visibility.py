"""Who may read what: the need-to-know rules, in one place, as SQL predicates.

The grants that decide what an actor may *do* (``onboarding.actors``) also decide what it may
*read*; the web pages, the CSV exports, the reports and the command line's reads (when an
actor is named) all ask this module, so they agree.

**The rules.** An actor's ``Scope`` is the union of its grants, whatever the role:

* a grant for ``all`` (a coordinator, the importer) reads everything;
* a grant for a municipality reads that municipality's tracks (of every definition), its
  contacts and the notifications of those tracks, and its municipality page;
* a grant for a vendor reads the tracks of that vendor's systems (and those about the vendor
  itself) in every municipality, the notifications of those tracks, the vendor's own contacts,
  and the pages of the municipalities where its systems have a track or a contract (showing
  only those);
* contacts of others are never shown;
* the national picture is read by everyone as aggregate counts only (the rollout, goals,
  KLIK and wave reports, the grid's totals); other municipalities' names and cells appear in the
  grid only when the programme declares the portfolio public (the setting
  ``portfolio.public``, off by default, set by a coordinator with
  ``onboarding actor portfolio public|private``). Even then their tracks, contacts and
  notifications stay unreadable.

A database that runs *open* (no actor registered, ``actors.enforcing``) reads everything, as it
writes everything. The command line without ``--actor`` / ``$ONBOARDING_ACTOR`` is the
operator's full view (``FULL``): the command line trusts its operator.

Something outside the scope is *not there*: ``require_track``, ``require_municipality`` and
``require_notification`` raise ``NotFound`` with the same message an unknown id gets (a web page
answers 404, never 403, so nothing hints that it exists).

**API** (for the pages, the command line and the HTTP API alike):

* ``of(db, actor) -> Scope``: the scope of a registered actor (``FULL`` for ``None`` or an open
  database); ``PermissionDenied`` for an unknown or deactivated actor.
* ``FULL``: the operator's scope.
* ``Scope.tracks(alias)``, ``Scope.contacts(alias)``, ``Scope.outbox(alias)``,
  ``Scope.municipalities(column)``, ``Scope.systems(column)``: SQL boolean expressions to
  AND into a ``WHERE`` over the named alias. They contain integer literals only, never
  placeholders, so they fit any query whatever its parameter style, and ``"1"`` for ``FULL``
  (the query plan is unchanged for a coordinator).
* ``Scope.may_read_track/municipality``, ``require_track``, ``require_municipality``,
  ``require_notification``: single-object checks (one indexed query each).
* ``Scope.names_public``: whether other municipalities' names may be shown in aggregate views.
* ``own_addresses(db, scope)``, ``hide_addresses(names, own)``, ``own_recipients(db, scope,
  forecast_row)``: notification recipients without others' addresses.
* ``portfolio_public(db)``, ``set_portfolio_public(db, public, by=...)``: the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onboarding import actors, settings, terms
from onboarding.db import Database
from onboarding.errors import NotFound, PermissionDenied
from onboarding.i18n import Message
from workflows.record import record as dataclass

__all__ = [
    "FULL",
    "PORTFOLIO_PUBLIC",
    "Scope",
    "hide_addresses",
    "of",
    "own_addresses",
    "own_recipients",
    "portfolio_public",
    "require_municipality",
    "require_notification",
    "require_track",
    "set_portfolio_public",
]

PORTFOLIO_PUBLIC = "portfolio.public"


def _any(parts: list[str]) -> str:
    """The predicates joined by OR; none: nothing is readable."""
    return "(" + " OR ".join(parts) + ")" if parts else "0"


def _ints(values: frozenset[int]) -> str:
    # Integer literals only (the values come from the grants table through int()), so the
    # predicate needs no parameters and fits queries with either placeholder style.
    return ", ".join(str(int(v)) for v in sorted(values))


@dataclass(frozen=True)
class Scope:
    """What one actor may read. ``everything`` for a grant for all (or the operator)."""

    actor: str | None
    everything: bool
    municipality_codes: frozenset[int] = frozenset()
    vendor_ids: frozenset[int] = frozenset()
    public_portfolio: bool = False

    @property
    def names_public(self) -> bool:
        """Whether other municipalities' names and phases may be shown (grid rows)."""
        return self.everything or self.public_portfolio

    # -- SQL predicates ---------------------------------------------------------------------

    def _either(self, municipality_column: str, by_vendors: Callable[[str], str]) -> str:
        """The predicate of every method below: everything ("1"), else the grants' parts OR-ed:
        ``municipality_column`` in the granted municipalities, ``by_vendors(ids)`` for the
        granted vendors (their ids as SQL)."""
        if self.everything:
            return "1"
        parts = []
        if self.municipality_codes:
            parts.append(f"{municipality_column} IN ({_ints(self.municipality_codes)})")
        if self.vendor_ids:
            parts.append(by_vendors(_ints(self.vendor_ids)))
        return _any(parts)

    def tracks(self, alias: str = "t") -> str:
        """Over ``tracks <alias>``: the tracks this scope reads."""
        # The same rule as actors._Checker.covers: a vendor subject names its vendor, any
        # other track is its system's vendor's.
        return self._either(
            f"{alias}.municipality_code",
            lambda vendors: (
                f"(CASE WHEN {alias}.vendor_id IS NOT NULL THEN {alias}.vendor_id IN ({vendors})"
                f" ELSE {alias}.system_id IN (SELECT id FROM systems WHERE vendor_id IN"
                f" ({vendors})) END)"
            ),
        )

    def outbox(self, alias: str = "o") -> str:
        """Over ``outbox <alias>``: the notifications of the tracks this scope reads."""
        if self.everything:
            return "1"
        return f"{alias}.track_id IN (SELECT t.id FROM tracks t WHERE {self.tracks('t')})"

    def contacts(self, alias: str = "c") -> str:
        """Over ``contacts <alias>``: one's own contacts only (never another's)."""
        return self._either(
            f"{alias}.municipality_code", lambda vendors: f"{alias}.vendor_id IN ({vendors})"
        )

    def municipalities(self, column: str = "m.code") -> str:
        """Over a municipality code column: the municipalities whose page this scope reads
        (its own; a vendor's: where its systems have a track or a contract)."""
        return self._either(
            column,
            lambda vendors: (
                f"({column} IN (SELECT t.municipality_code FROM tracks t WHERE {self.tracks('t')})"
                f" OR {column} IN (SELECT c.municipality_code FROM contracts c JOIN systems s"
                f" ON s.id = c.system_id WHERE s.vendor_id IN ({vendors})))"
            ),
        )

    def systems(self, column: str = "s.id") -> str:
        """Over a system id column: for a vendor, its own systems; otherwise every system
        (a municipality reads its contracts with any vendor)."""
        if self.everything or self.municipality_codes or not self.vendor_ids:
            return "1"
        return f"{column} IN (SELECT id FROM systems WHERE vendor_id IN ({_ints(self.vendor_ids)}))"

    def contracts(self, alias: str = "c") -> str:
        """Over ``contracts <alias>``: a municipality's own contracts, a vendor's systems'."""
        return self._either(
            f"{alias}.municipality_code",
            lambda vendors: (
                f"{alias}.system_id IN (SELECT id FROM systems WHERE vendor_id IN ({vendors}))"
            ),
        )

    # -- single objects ---------------------------------------------------------------------

    def may_read_track(self, db: Database, track_id: int) -> bool:
        row = db.conn.execute(
            f"SELECT 1 FROM tracks t WHERE t.id = ? AND {self.tracks('t')}", [track_id]
        ).fetchone()
        return row is not None

    def may_read_municipality(self, db: Database, code: int) -> bool:
        row = db.conn.execute(
            f"SELECT 1 FROM municipalities m WHERE m.code = ? AND {self.municipalities('m.code')}",
            [code],
        ).fetchone()
        return row is not None

    def track_ids(self, db: Database, definition: str | None = None) -> set[int]:
        """The ids of the tracks this scope reads (of one definition), for marking cells."""
        sql = f"SELECT t.id FROM tracks t WHERE {self.tracks('t')}"
        params: list[Any] = []
        if definition is not None:
            sql += " AND t.definition = ?"
            params.append(definition)
        return {int(r[0]) for r in db.conn.execute(sql, params)}


#: The operator's view: the command line without an actor, library callers that checked.
FULL = Scope(actor=None, everything=True)


def portfolio_public(db: Database) -> bool:
    """Whether the programme declared the portfolio public (``portfolio.public``; off)."""
    return bool(settings.read(db, PORTFOLIO_PUBLIC).get(PORTFOLIO_PUBLIC, False))


def set_portfolio_public(db: Database, public: bool, *, by: str | None = None) -> bool:
    """Declare the portfolio public (every actor sees other municipalities' names and phases
    in the grid) or private again. Needs ``coordinator`` for all once permissions are on;
    ``by=None`` skips the check (library callers that checked themselves)."""
    if by is not None and actors.enforcing(db):
        scope = of(db, by)
        holds = db.conn.execute(
            "SELECT 1 FROM actor_grants WHERE actor = ? AND role = ? AND scope_kind = 'all'",
            [by, actors.ADMIN_ROLE],
        ).fetchone()
        if holds is None or not scope.everything:
            raise PermissionDenied(
                Message(
                    "actor %(actor)s may not change who reads the portfolio: that needs role "
                    "%(role)s for all",
                    {"actor": repr(by), "role": terms.keyed(terms.role(actors.ADMIN_ROLE))},
                )
            )
    settings.update(db, {PORTFOLIO_PUBLIC: bool(public)}, prefix=PORTFOLIO_PUBLIC)
    return bool(public)


def of(db: Database, actor: str | None) -> Scope:
    """The read scope of ``actor`` (``FULL`` for ``None`` or a database that runs open).

    Raises ``PermissionDenied`` for an actor that is not registered or is deactivated."""
    if actor is None or not actors.enforcing(db):
        return FULL
    conn = db.conn
    row = conn.execute("SELECT active FROM actors WHERE name = ?", [actor]).fetchone()
    if row is None:
        raise PermissionDenied(
            Message(
                "actor %(actor)s is not registered: permissions are enforced in this database",
                {"actor": repr(actor)},
            )
        )
    if not row[0]:
        raise PermissionDenied(Message("actor %(actor)s is deactivated", {"actor": repr(actor)}))
    munis: set[int] = set()
    vendors: set[int] = set()
    for kind, value in conn.execute(
        "SELECT scope_kind, scope_value FROM actor_grants WHERE actor = ?", [actor]
    ):
        if kind == "all":
            return Scope(actor=actor, everything=True)
        if kind == "municipality":
            munis.add(int(value))
        elif kind == "vendor":
            vendors.add(int(value))
    return Scope(
        actor=actor,
        everything=False,
        municipality_codes=frozenset(munis),
        vendor_ids=frozenset(vendors),
        public_portfolio=portfolio_public(db),
    )


def own_addresses(db: Database, scope: Scope) -> set[str] | None:
    """The e-mail addresses (casefolded) of the contacts ``scope`` reads; ``None`` for all."""
    if scope.everything:
        return None
    return {
        str(r[0]).casefold()
        for r in db.conn.execute(f"SELECT c.email FROM contacts c WHERE {scope.contacts('c')}")
    }


def hide_addresses(names: list[Any], own: set[str] | None) -> tuple[list[Any], int]:
    """``names`` (addresses or role keys) without others' addresses, and how many were taken
    out (a role key is no one's personal data; an address not among ``own`` is)."""
    if own is None:
        return list(names), 0
    kept = [n for n in names if "@" not in str(n) or str(n).casefold() in own]
    return kept, len(names) - len(kept)


def own_recipients(db: Database, scope: Scope, entry: dict[str, Any]) -> dict[str, Any]:
    """A notification forecast row (``to``: addresses) with only the addresses of the reader's
    own contacts; ``hidden`` says how many others it goes to (their addresses are others'
    personal data)."""
    to, hidden = hide_addresses(list(entry["to"]), own_addresses(db, scope))
    return {**entry, "to": to, "hidden": hidden}


def require_track(db: Database, scope: Scope, track_id: int) -> None:
    """``NotFound`` (as for an unknown id) unless ``scope`` reads the track."""
    if not scope.may_read_track(db, track_id):
        raise NotFound("track", str(track_id))


def require_municipality(db: Database, scope: Scope, code: int) -> None:
    """``NotFound`` (as for an unknown code) unless ``scope`` reads the municipality's page."""
    if not scope.may_read_municipality(db, code):
        raise NotFound("municipality", str(code))


def require_notification(db: Database, scope: Scope, row_id: int) -> None:
    """``NotFound`` (as for an unknown id) unless ``scope`` reads the notification."""
    row = db.conn.execute(
        f"SELECT 1 FROM outbox o WHERE o.id = ? AND {scope.outbox('o')}", [row_id]
    ).fetchone()
    if row is None:
        raise NotFound("notification", str(row_id))
