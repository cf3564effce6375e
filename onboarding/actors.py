"""Who may do what: actors, their roles, and the scope each role is held in.

An actor is a person or a process that acts (the name recorded in every history row). A grant
gives an actor a role (a shipped one, ``workflows/roles.yaml``, or one a definition added to
the database declares) in a scope:

* ``all``: every track (KOMBIT coordinators; the ``importer`` and ``system`` processes);
* ``municipality``: tracks of that municipality (its staff);
* ``vendor``: tracks of that vendor's systems.

The role's scope kind decides which scopes a grant of it may name: a ``municipality`` role is
held for one municipality, a ``vendor`` role for one vendor, a ``subject`` role for either (the
track's own subject); a ``national`` role for all, or narrowed to one municipality or vendor.

**Policy.** A database with no actor registered runs *open*: any name may act in any role,
so ``onboarding init`` and the README's walk work as they are. Registering the first actor
(``onboarding actor add``) switches enforcement on for good (``enforcing``): from then on the
engine calls ``authorize`` before every start, advance (one track or each of a bulk
selection), field change, migration and status-import step, and refuses, writing nothing, an
actor that is not registered or not active, a role it does not hold, or a track outside the
scope it holds the role in. A refusal raises ``PermissionDenied`` and is recorded nowhere as a
transition.

**Managing actors.** ``add``, ``grant``, ``revoke``, ``set_password`` and ``set_active`` take
an optional ``by``: who does it. With ``by`` given and enforcement on, ``by`` must hold
``coordinator`` for all, except while no active actor does (so the first coordinator can be set
up); a password may also be changed by its owner. ``by=None`` skips the check (library callers
that checked themselves). Every change is appended to ``actor_events``.

**Passwords** (for the web page's log-in) are hashed with scrypt (``hashlib.scrypt``):
N=2**14, r=8, p=1 (16 MiB of memory, about 50 ms here), a random 16-byte salt per password,
a 32-byte key, stored as ``scrypt$N$r$p$salt$key`` (salt and key in base64); checks compare
in constant time, and an unknown actor costs the same time as a wrong password.

The command line trusts ``--actor`` / ``$ONBOARDING_ACTOR``: the checks protect against
mistakes (acting for the wrong municipality, in a role one does not hold); they are not a
defence against someone who can run commands as another name or write the database file.
See docs/actors.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from onboarding import clock, roles, terms
from onboarding.db import Database, immediate
from onboarding.errors import InputError, NotFound, OnboardingError, PermissionDenied
from onboarding.i18n import Message, Phrases
from onboarding.roles import require_role
from workflows.model import RoleDef

__all__ = [
    "SCOPES",
    "add",
    "authorize",
    "checker",
    "enforcing",
    "get",
    "grant",
    "list_actors",
    "revoke",
    "revoke_sessions",
    "roles_for",
    "set_active",
    "set_password",
    "unlock",
    "verify_password",
]

SCOPES = ("all", "municipality", "vendor")
ADMIN_ROLE = "coordinator"
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD = 8
MAX_NAME = 200
_MAXMEM = 64 * 1024 * 1024

Conn = sqlite3.Connection | Database
Check = Callable[[Mapping[str, Any]], None]


def _conn(conn_or_db: Conn) -> sqlite3.Connection:
    return conn_or_db.conn if isinstance(conn_or_db, Database) else conn_or_db


# --- passwords --------------------------------------------------------------------------------


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=KEY_BYTES
    )


def hash_password(password: str) -> str:
    """The stored form of a password: ``scrypt$N$r$p$salt$key`` (base64 salt and key)."""
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def _check_hash(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


_DUMMY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'A' * 24}${'A' * 44}"


def verify_password(db: Database, name: str, password: str) -> bool:
    """True when ``name`` is an active actor whose password this is (constant-time compare)."""
    row = db.conn.execute(
        "SELECT password_hash, active FROM actors WHERE name = ?", [name]
    ).fetchone()
    if row is None or row[0] is None:
        _check_hash(password, _DUMMY)  # the same work as a real check: no timing oracle
        return False
    ok = _check_hash(password, str(row[0]))
    return ok and bool(row[1])


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            Message("a password needs at least %(n)s characters", {"n": str(MIN_PASSWORD)})
        )
    if len(password) > 1024:
        raise InputError(Message("a password may have at most 1024 characters"))


# --- reading ----------------------------------------------------------------------------------


def enforcing(conn_or_db: Conn) -> bool:
    """Whether permissions are checked: as soon as at least one actor is registered."""
    row = _conn(conn_or_db).execute("SELECT EXISTS (SELECT 1 FROM actors)").fetchone()
    return bool(row[0])


def _grant_dict(conn: sqlite3.Connection, row: tuple[Any, ...]) -> dict[str, Any]:
    role, kind, value = row
    out: dict[str, Any] = {"role": role, "scope": kind, "municipality": None, "vendor": None}
    if kind == "municipality":
        found = conn.execute(
            "SELECT name FROM municipalities WHERE code = ?", [int(value)]
        ).fetchone()
        out["municipality"] = {"code": int(value), "name": found[0] if found else None}
        out["label"] = f"{role} for {found[0] if found else value}"
    elif kind == "vendor":
        found = conn.execute("SELECT name FROM vendors WHERE id = ?", [int(value)]).fetchone()
        out["vendor"] = {"id": int(value), "name": found[0] if found else None}
        out["label"] = f"{role} for vendor {found[0] if found else value}"
    else:
        out["label"] = f"{role} for all"
    return out


def grant_label(grant: Mapping[str, Any]) -> Message:
    """A grant (``_grant_dict``) as a person reads it: its ``str`` is the English ``label``
    ("municipality-pl for Aarhus", as JSON output has always had it); said in Danish, the
    role by its label ("kommunens BOB/SAPA-projektleder i Aarhus")."""
    role = terms.keyed(terms.role(grant["role"], quoted=False))
    if grant["scope"] == "municipality":
        where = grant["municipality"]
        name = where["name"] if where["name"] else str(where["code"])
        return Message("%(role)s for %(municipality)s", {"role": role, "municipality": name})
    if grant["scope"] == "vendor":
        where = grant["vendor"]
        name = where["name"] if where["name"] else str(where["id"])
        return Message("%(role)s for vendor %(vendor)s", {"role": role, "vendor": name})
    return Message("%(role)s for all", {"role": role})


def _grants(conn: sqlite3.Connection, name: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT role, scope_kind, scope_value FROM actor_grants WHERE actor = ?"
        " ORDER BY role, scope_kind, scope_value",
        [name],
    ).fetchall()
    return [_grant_dict(conn, r) for r in rows]


def _actor_dict(conn: sqlite3.Connection, row: tuple[Any, ...]) -> dict[str, Any]:
    name, display, email, pw, active, created = row
    return {
        "name": name,
        "display_name": display,
        "email": email,
        "active": bool(active),
        "has_password": pw is not None,
        "created_at": created,
        "grants": _grants(conn, name),
    }


_ACTOR_SQL = "SELECT name, display_name, email, password_hash, active, created_at FROM actors"


def get(db: Database, name: str) -> dict[str, Any]:
    """One actor with its grants (never its password hash); ``NotFound`` if unknown."""
    conn = db.conn
    row = conn.execute(_ACTOR_SQL + " WHERE name = ?", [name]).fetchone()
    if row is None:
        names = [r[0] for r in conn.execute("SELECT name FROM actors").fetchall()]
        import difflib

        raise NotFound("actor", name, difflib.get_close_matches(name, names, n=3))
    return _actor_dict(conn, row)


def list_actors(db: Database) -> list[dict[str, Any]]:
    """Every actor, by name, with its grants (the shape of ``actor list --json``)."""
    conn = db.conn
    return [_actor_dict(conn, r) for r in conn.execute(_ACTOR_SQL + " ORDER BY name").fetchall()]


# --- changing ---------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    text = name.strip()
    if not text:
        raise InputError(Message("an actor needs a name"))
    if len(text) > MAX_NAME:
        raise InputError(
            Message("actor name: at most %(n)s characters", {"n": str(MAX_NAME)})
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(
            Message(
                "actor name %(name)s: control characters are not allowed", {"name": repr(text)}
            )
        )
    return text


def _may_administer(conn: sqlite3.Connection, by: str | None, target: str | None = None) -> None:
    """Refuse ``by`` managing actors unless it holds coordinator for all (see module doc)."""
    if by is None or not enforcing(conn):
        return
    if target is not None and by == target:
        return  # only used for one's own password
    admins = conn.execute(
        "SELECT g.actor FROM actor_grants g JOIN actors a ON a.name = g.actor"
        " WHERE g.role = ? AND g.scope_kind = 'all' AND a.active = 1",
        [ADMIN_ROLE],
    ).fetchall()
    if not admins:
        return  # bootstrap: nobody can administer yet, so the first coordinator can be set up
    if by not in {r[0] for r in admins}:
        raise PermissionDenied(
            Message(
                "actor %(actor)s may not manage actors: that needs role %(role)s for all "
                "(held by %(admins)s)",
                {
                    "actor": repr(by),
                    "role": terms.keyed(terms.role(ADMIN_ROLE)),
                    "admins": ", ".join(sorted(r[0] for r in admins)),
                },
            )
        )


def _event(
    conn: sqlite3.Connection, by: str | None, action: str, actor: str, detail: Any = None
) -> None:
    conn.execute(
        "INSERT INTO actor_events (at, by, action, actor, detail) VALUES (?, ?, ?, ?, ?)",
        [
            clock.stamp(clock.now()),
            by,
            action,
            actor,
            None if detail is None else json.dumps(detail, ensure_ascii=False, sort_keys=True),
        ],
    )


def _exists(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM actors WHERE name = ?", [name]).fetchone() is None:
        raise NotFound("actor", name)


def add(
    db: Database,
    name: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
    password: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Register an actor (switches enforcement on for the database); return it."""
    from onboarding import registry  # here: every advance checks grants, few add actors

    name = _check_name(name)
    if email is not None:
        email = email.strip()
        if not registry.EMAIL.match(email):
            raise InputError(
                Message("--email %(email)s is not an email address", {"email": repr(email)})
            )
    if display_name is not None:
        display_name = " ".join(display_name.split())[:MAX_NAME] or None
    if password is not None:
        _check_password(password)
    hashed = hash_password(password) if password is not None else None
    with immediate(db) as conn:
        _may_administer(conn, by)
        clash = conn.execute(
            "SELECT name FROM actors WHERE lower(name) = lower(?)", [name]
        ).fetchone()
        if clash:
            raise OnboardingError(
                Message("actor %(actor)s is already registered", {"actor": repr(clash[0])})
            )
        conn.execute(
            "INSERT INTO actors (name, display_name, email, password_hash, active, created_at)"
            " VALUES (?, ?, ?, ?, 1, ?)",
            [name, display_name, email, hashed, clock.stamp(clock.now())],
        )
        _event(conn, by, "add", name, {"display_name": display_name, "email": email})
    return get(db, name)


def _scope(db: Database, municipality: str | None, vendor: str | None) -> tuple[str, str | None]:
    from onboarding import registry

    if municipality and vendor:
        raise InputError(Message("give --municipality or --vendor, not both"))
    if municipality:
        return "municipality", str(registry.resolve_municipality(db, municipality)["code"])
    if vendor:
        return "vendor", str(registry.resolve_vendor(db, vendor)["id"])
    return "all", None


#: The grant scopes a role of each scope kind may be held in (a national role in any).
_FITS: Mapping[str, tuple[str, ...]] = {
    "municipality": ("municipality",),
    "vendor": ("vendor",),
    "subject": ("municipality", "vendor"),
}
_FOR = {
    "municipality": Message("one municipality"),
    "vendor": Message("one vendor"),
    "subject": Message("the municipality or vendor a track is about"),
}


def _check_fits(role: RoleDef, kind: str) -> None:
    """Refuse a grant whose scope the role's scope kind does not allow (a municipality's role
    held for all would let its holder act for every municipality)."""
    fits = _FITS.get(role.scope)
    if fits is not None and kind not in fits:
        raise InputError(
            Message(
                "role %(role)s (%(label)s) is held for %(scope)s: give %(give)s",
                {
                    "role": terms.keyed(terms.role(role.key)),
                    "label": roles.label(role.key),
                    "scope": _FOR[role.scope],
                    "give": Phrases((f"--{k}" for k in fits), conj="or"),
                },
            )
        )


def grant(
    db: Database,
    name: str,
    role: str,
    *,
    municipality: str | None = None,
    vendor: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Give an actor a role for a municipality, a vendor, or (neither given) for all tracks.

    The role is shipped or declared by a definition in ``db``; its scope kind decides which
    scope the grant may name. Granting what the actor already holds changes nothing. Returns
    the grant."""
    found = require_role(role, db)
    kind, value = _scope(db, municipality, vendor)
    _check_fits(found, kind)
    with immediate(db) as conn:
        _may_administer(conn, by)
        _exists(conn, name)
        conn.execute(
            "INSERT OR IGNORE INTO actor_grants (actor, role, scope_kind, scope_value,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            [name, role, kind, value, clock.stamp(clock.now())],
        )
        _event(conn, by, "grant", name, {"role": role, "scope": kind, "value": value})
        return _grant_dict(conn, (role, kind, value))


def revoke(
    db: Database,
    name: str,
    role: str,
    *,
    municipality: str | None = None,
    vendor: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Take a grant away (the same role and scope as given); returns it. ``NotFound`` if the
    actor does not hold exactly that grant."""
    require_role(role, db)
    kind, value = _scope(db, municipality, vendor)
    with immediate(db) as conn:
        _may_administer(conn, by)
        _exists(conn, name)
        cur = conn.execute(
            "DELETE FROM actor_grants WHERE actor = ? AND role = ? AND scope_kind = ?"
            " AND ifnull(scope_value, '') = ifnull(?, '')",
            [name, role, kind, value],
        )
        found = _grant_dict(conn, (role, kind, value))
        if cur.rowcount == 0:
            held = ", ".join(g["label"] for g in _grants(conn, name)) or "none"
            raise NotFound("grant", f"{name}: {found['label']}", [f"held: {held}"])
        _event(conn, by, "revoke", name, {"role": role, "scope": kind, "value": value})
        return found


def set_password(db: Database, name: str, password: str, *, by: str | None = None) -> None:
    """Set (or replace) an actor's password (scrypt, see the module doc)."""
    _check_password(password)
    hashed = hash_password(password)
    with immediate(db) as conn:
        _may_administer(conn, by, target=name)
        _exists(conn, name)
        conn.execute("UPDATE actors SET password_hash = ? WHERE name = ?", [hashed, name])
        # Whoever knew the old password may be logged in: the new one ends every session.
        from onboarding import sessions

        ended = sessions.end_for(conn, name)
        _event(conn, by, "set-password", name, {"sessions_ended": ended} if ended else None)


def set_active(db: Database, name: str, active: bool, *, by: str | None = None) -> None:
    """Deactivate an actor (it may no longer act or log in) or activate it again."""
    with immediate(db) as conn:
        _may_administer(conn, by)
        _exists(conn, name)
        conn.execute("UPDATE actors SET active = ? WHERE name = ?", [int(active), name])
        if not active:
            from onboarding import sessions

            sessions.end_for(conn, name)
        _event(conn, by, "activate" if active else "deactivate", name)


def revoke_sessions(db: Database, name: str, *, by: str | None = None) -> int:
    """End every web session of an actor (a coordinator for all, or the actor itself); return
    how many there were. A cookie of an ended session is refused from then on."""
    from onboarding import sessions

    with immediate(db) as conn:
        _may_administer(conn, by, target=name)
        _exists(conn, name)
        ended = sessions.end_for(conn, name)
        _event(conn, by, "revoke-sessions", name, {"sessions_ended": ended})
    return ended


def unlock(db: Database, name: str, *, by: str | None = None) -> int:
    """Forget the failed logins of ``name`` from every address, so its next login is not made
    to wait (``onboarding.logins``); return how many addresses were waiting. Any name may be
    unlocked, registered or not (the throttle counts names as typed)."""
    from onboarding import logins

    with immediate(db) as conn:
        _may_administer(conn, by)
        waiting = logins.unlock(conn, name)
        _event(conn, by, "unlock", name, {"waiting": waiting})
    return waiting


# --- authorising ------------------------------------------------------------------------------


class _Checker:
    """The grants of one actor in one role, to check many tracks against (bulk advance)."""

    def __init__(self, conn: sqlite3.Connection, actor: str, role: str) -> None:
        self.conn = conn
        self.actor = actor
        self.role = role
        self.all = False
        self.municipalities: set[int] = set()
        self.vendors: set[int] = set()
        self._vendor_of: dict[int, int | None] = {}
        row = conn.execute("SELECT active FROM actors WHERE name = ?", [actor]).fetchone()
        if row is None:
            raise PermissionDenied(
                Message(
                    "actor %(actor)s is not registered: permissions are enforced in this "
                    "database",
                    {"actor": repr(actor)},
                ),
                hint=Message(
                    "('onboarding actor add %(actor)s', then 'onboarding actor grant')",
                    {"actor": actor},
                ),
                hint_sep=" ",
            )
        if not row[0]:
            raise PermissionDenied(
                Message("actor %(actor)s is deactivated", {"actor": repr(actor)})
            )
        grants = conn.execute(
            "SELECT scope_kind, scope_value FROM actor_grants WHERE actor = ? AND role = ?",
            [actor, role],
        ).fetchall()
        if not grants:
            held = sorted(
                {
                    r[0]
                    for r in conn.execute(
                        "SELECT role FROM actor_grants WHERE actor = ?", [actor]
                    ).fetchall()
                }
            )
            holds = (
                Message("it holds %(roles)s", {"roles": terms.keyed_all(terms.roles(held))})
                if held
                else Message("it holds no role")
            )
            raise PermissionDenied(
                Message(
                    "actor %(actor)s does not hold role %(role)s (%(label)s); %(holds)s",
                    {
                        "actor": repr(actor),
                        "role": terms.keyed(terms.role(role)),
                        "label": roles.label(role),
                        "holds": holds,
                    },
                )
            )
        for kind, value in grants:
            if kind == "all":
                self.all = True
            elif kind == "municipality":
                self.municipalities.add(int(value))
            else:
                self.vendors.add(int(value))

    def vendor_of(self, system_id: int | None) -> int | None:
        if system_id is None:
            return None
        if system_id not in self._vendor_of:
            row = self.conn.execute(
                "SELECT vendor_id FROM systems WHERE id = ?", [system_id]
            ).fetchone()
            self._vendor_of[system_id] = int(row[0]) if row else None
        return self._vendor_of[system_id]

    def covers(self, track: Mapping[str, Any]) -> bool:
        if self.all:
            return True
        code = track.get("municipality_code")
        if code is not None and int(code) in self.municipalities:
            return True
        # A vendor subject names its vendor itself; otherwise it is the system's vendor.
        own = track.get("vendor_id")
        vendor = int(own) if own is not None else self.vendor_of(track.get("system_id"))
        return vendor is not None and vendor in self.vendors

    def __call__(self, track: Mapping[str, Any]) -> None:
        if not self.covers(track):
            raise PermissionDenied(self._explain(track))

    def _name(self, table: str, key: str, value: int) -> str:
        row = self.conn.execute(f"SELECT name FROM {table} WHERE {key} = ?", [value]).fetchone()
        return str(row[0]) if row else str(value)

    def _explain(self, track: Mapping[str, Any]) -> Message:
        scopes: list[str] = [
            self._name("municipalities", "code", c) for c in sorted(self.municipalities)
        ]
        scopes += [
            Message("vendor %(name)s", {"name": self._name("vendors", "id", v)})
            for v in sorted(self.vendors)
        ]
        label = (
            Message("track #%(id)s", {"id": str(track["id"])})
            if track.get("id") is not None
            else Message("the new track")
        )
        whose: list[Message] = []
        if self.municipalities:
            code = track.get("municipality_code")
            muni = self._name("municipalities", "code", int(code)) if code is not None else None
            whose.append(
                Message("%(name)s's", {"name": terms.genitive(muni)})
                if muni
                else Message("no municipality's")
            )
        if self.vendors:
            own = track.get("vendor_id")
            vendor = int(own) if own is not None else self.vendor_of(track.get("system_id"))
            whose.append(
                Message(
                    "vendor %(name)s's",
                    {"name": terms.genitive(self._name("vendors", "id", vendor))},
                )
                if vendor is not None
                else Message("no vendor's")
            )
        return Message(
            "actor %(actor)s acts as %(role)s for %(scopes)s; %(track)s is %(whose)s",
            {
                "actor": repr(self.actor),
                "role": terms.keyed(terms.role(self.role, quoted=False)),
                "scopes": Phrases(scopes),
                "track": label,
                "whose": Phrases(whose, conj="and"),
            },
        )


def checker(conn_or_db: Conn, actor: str, role: str) -> Check | None:
    """A function that refuses tracks outside ``actor``'s scope for ``role`` (for checking many
    tracks); ``None`` when the database runs open. Raises ``PermissionDenied`` at once for an
    unknown or inactive actor or a role it does not hold."""
    conn = _conn(conn_or_db)
    if not enforcing(conn):
        return None
    return _Checker(conn, actor, role)


def authorize(conn_or_db: Conn, actor: str, role: str, track: Mapping[str, Any]) -> None:
    """Refuse (``PermissionDenied``) unless ``actor`` may act as ``role`` on ``track``.

    ``track`` needs ``id`` (None for a track about to be started), ``municipality_code`` and
    ``system_id``. Does nothing while the database runs open (no actor registered)."""
    check = checker(conn_or_db, actor, role)
    if check is not None:
        check(track)


def roles_for(db: Database, name: str, track: Mapping[str, Any]) -> list[str]:
    """The roles ``name`` holds whose scope covers ``track`` (what it may act as there)."""
    conn = db.conn
    roles = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT g.role FROM actor_grants g JOIN actors a ON a.name = g.actor"
            " WHERE g.actor = ? AND a.active = 1 ORDER BY g.role",
            [name],
        ).fetchall()
    ]
    return [role for role in roles if _Checker(conn, name, role).covers(track)]
