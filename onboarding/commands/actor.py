"""``onboarding actor``: people and systems, their roles, scopes and passwords."""

from __future__ import annotations

import sys
from typing import Any

import click

from onboarding.commands.common import (
    F,
    Group,
    UserError,
    actor_name,
    database,
    db_option,
    echo_json,
    echo_table,
    json_option,
    say,
    t,
    tn,
)


def _by_option(func: F) -> F:
    return click.option(
        "--actor",
        "by",
        envvar="ONBOARDING_ACTOR",
        default=None,
        help=(
            "Who makes the change (default: $ONBOARDING_ACTOR, else your login name); once "
            "a coordinator for all exists, it must be one."
        ),
    )(func)


def _scope_options(func: F) -> F:
    func = click.option(
        "--vendor", default=None, help="Only tracks of this vendor's systems (vendor name)."
    )(func)
    return click.option(
        "--municipality", default=None, help="Only this municipality's tracks (code or name)."
    )(func)


def _read_password(prompt: bool) -> str:
    """A password from the terminal (asked twice) or the first line of stdin; never argv."""
    if prompt and sys.stdin.isatty():
        return str(click.prompt(t("Password"), hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        raise UserError("no password on stdin")
    return line.rstrip("\r\n")


def _grant_rows(info: dict[str, Any]) -> str:
    """An actor's grants in the CLI's language: roles by their labels in Danish."""
    from onboarding.actors import grant_label

    return "; ".join(say(grant_label(g)) for g in info["grants"]) or t("(no roles)")


@click.group(cls=Group)
def actor() -> None:
    """Who may do what: register actors and grant them roles for a municipality, a vendor or all.

    A database with no actor runs open (any name, any role). The first 'actor add' switches
    permissions on: from then on every write is checked against the actor's roles and scopes
    (docs/actors.md).

    Example:

        onboarding actor add kombit && onboarding actor grant kombit coordinator
    """


@actor.command("add")
@click.argument("name")
@click.option("--display-name", default=None, help="The name people know the actor by.")
@click.option("--email", default=None, help="The actor's email address.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read a password for the web page from the first line of stdin.",
)
@db_option
@_by_option
def actor_add(
    name: str,
    display_name: str | None,
    email: str | None,
    password_stdin: bool,
    db_path: str | None,
    by: str | None,
) -> None:
    """Register an actor. The first one switches permission checks on for this database.

    Example:

        printf '%s\\n' "$PW" | onboarding actor add aarhus-pl --email pl@aarhus.dk --password-stdin
    """
    from onboarding import actors

    password = _read_password(prompt=False) if password_stdin else None
    with database(db_path) as db:
        was_open = not actors.enforcing(db)
        info = actors.add(
            db,
            name,
            display_name=display_name,
            email=email,
            password=password,
            by=actor_name(by),
        )
    if password:
        click.echo(t("actor %(name)s added with a password", name=info["name"]))
    else:
        click.echo(t("actor %(name)s added", name=info["name"]))
    if was_open:
        click.echo(
            t(
                "permission checks are now on: grant roles with 'onboarding actor grant' "
                "(e.g. 'onboarding actor grant %(name)s coordinator')",
                name=info["name"],
            )
        )


@actor.command("list")
@db_option
@json_option
def actor_list(db_path: str | None, as_json: bool) -> None:
    """List the actors with their roles and scopes (never their passwords).

    Example:

        onboarding actor list --json
    """
    from onboarding import actors

    with database(db_path) as db:
        rows = actors.list_actors(db)
        enforced = actors.enforcing(db)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        [
            {
                "name": r["name"],
                "display_name": r["display_name"],
                "active": r["active"],
                "password": r["has_password"],
                "roles": _grant_rows(r),
            }
            for r in rows
        ]
    )
    if not enforced:
        click.echo(t("no actors: this database runs open (anyone may act in any role)"))


@actor.command("grant")
@click.argument("name")
@click.argument("role")
@_scope_options
@db_option
@_by_option
def actor_grant(
    name: str,
    role: str,
    municipality: str | None,
    vendor: str | None,
    db_path: str | None,
    by: str | None,
) -> None:
    """Give an actor a role for one municipality, one vendor, or (neither given) for all.

    ROLE is a shipped role or one an added definition declares ('workflow show DEF' lists
    them); its scope kind decides the scope: a municipality's role needs --municipality, a
    vendor's --vendor (docs/actors.md).

    Example:

        onboarding actor grant aarhus-pl municipality-pl --municipality Aarhus
    """
    from onboarding import actors
    from onboarding.actors import grant_label

    with database(db_path) as db:
        g = actors.grant(
            db, name, role, municipality=municipality, vendor=vendor, by=actor_name(by)
        )
    click.echo(t("%(name)s: granted %(grant)s", name=name, grant=say(grant_label(g))))


@actor.command("revoke")
@click.argument("name")
@click.argument("role")
@_scope_options
@db_option
@_by_option
def actor_revoke(
    name: str,
    role: str,
    municipality: str | None,
    vendor: str | None,
    db_path: str | None,
    by: str | None,
) -> None:
    """Take a role away from an actor (the same scope it was granted with).

    Example:

        onboarding actor revoke aarhus-pl municipality-pl --municipality Aarhus
    """
    from onboarding import actors
    from onboarding.actors import grant_label

    with database(db_path) as db:
        g = actors.revoke(
            db, name, role, municipality=municipality, vendor=vendor, by=actor_name(by)
        )
    click.echo(t("%(name)s: revoked %(grant)s", name=name, grant=say(grant_label(g))))


@actor.command("set-password")
@click.argument("name")
@db_option
@_by_option
def actor_set_password(name: str, db_path: str | None, by: str | None) -> None:
    """Set an actor's password for the web page: asked on the terminal, or read from stdin.

    Never give a password as an argument (it would show in the process list and shell
    history).

    Example:

        onboarding actor set-password aarhus-pl
    """
    from onboarding import actors

    password = _read_password(prompt=True)
    with database(db_path) as db:
        actors.set_password(db, name, password, by=actor_name(by))
    click.echo(t("password of %(name)s set", name=name))


@actor.command("sessions")
@click.argument("name")
@db_option
@json_option
def actor_sessions(name: str, db_path: str | None, as_json: bool) -> None:
    """List an actor's live sessions on the web page: when each started, was last used and
    ends (at the idle timeout or its lifetime, whichever comes first), and from where.

    End them with 'onboarding actor revoke-sessions NAME'.

    Example:

        onboarding actor sessions aarhus-pl
    """
    from onboarding import actors, clock, sessions

    with database(db_path) as db:
        actors.get(db, name)  # an unknown name is an error, not an empty list
        rows = sessions.list_for(db, name)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        [
            {
                "started": clock.display(r["started"]),
                "last used": clock.display(r["last_seen"]),
                "ends": clock.display(r["ends"]),
                "address": r["address"] or "",
                "browser": r["user_agent"] or "",
            }
            for r in rows
        ]
    )


@actor.command("revoke-sessions")
@click.argument("name")
@db_option
@_by_option
def actor_revoke_sessions(name: str, db_path: str | None, by: str | None) -> None:
    """End every web session of an actor now: its cookies, wherever copied, are refused from
    then on and it must log in again. (A new password and a deactivation do this too.)

    Example:

        onboarding actor revoke-sessions aarhus-pl
    """
    from onboarding import actors

    with database(db_path) as db:
        ended = actors.revoke_sessions(db, name, by=actor_name(by))
    click.echo(
        tn("%(name)s: %(n)s session ended", "%(name)s: %(n)s sessions ended", ended, name=name)
    )


@actor.command("unlock")
@click.argument("name")
@db_option
@_by_option
def actor_unlock(name: str, db_path: str | None, by: str | None) -> None:
    """Let NAME log in again at once after failed attempts made it wait (from any address).

    Failed logins are counted per name and address: after 5 the wait doubles with each one,
    up to 15 minutes; an address with 20 failures in 15 minutes waits too, except for names
    that logged in from it before (docs/web.md, "Logging in").

    Example:

        onboarding actor unlock aarhus-pl
    """
    from onboarding import actors

    with database(db_path) as db:
        waiting = actors.unlock(db, name, by=actor_name(by))
    if waiting:
        click.echo(
            tn(
                "%(name)s: unlocked (%(n)s address waiting)",
                "%(name)s: unlocked (%(n)s addresses waiting)",
                waiting,
                name=name,
            )
        )
    else:
        click.echo(t("%(name)s: was not waiting; failed attempts forgotten", name=name))


@actor.command("portfolio")
@click.argument("visibility", type=click.Choice(["public", "private"]), required=False)
@db_option
@_by_option
def actor_portfolio(visibility: str | None, db_path: str | None, by: str | None) -> None:
    """Whether every actor sees other municipalities' names and phases in the grid.

    Private (the default): a municipality's staff and a vendor see their own rows and the
    national totals only. Public: every row of the grid, though other municipalities' tracks,
    contacts and notifications stay unreadable. Without an argument, print the setting;
    changing it needs a coordinator for all (docs/visibility.md).

    Example:

        onboarding actor portfolio public --actor kombit
    """
    from onboarding import visibility as vis

    with database(db_path) as db:
        if visibility is None:
            public = vis.portfolio_public(db)
        else:
            public = vis.set_portfolio_public(db, visibility == "public", by=actor_name(by))
    click.echo(t("portfolio: public") if public else t("portfolio: private"))


@actor.group("token", cls=Group)
def actor_token() -> None:
    """API tokens: a program acts as the actor over the HTTP API (docs/api.md).

    A token acts with the actor's roles and scopes; it is shown once and stored only as a
    digest. A coordinator for all, or the actor itself, manages its tokens.

    Example:

        onboarding actor token create kmd --label "KMD readiness feed" --json
    """


@actor_token.command("create")
@click.argument("name")
@click.option("--label", default=None, help="What the token is for (shown by 'token list').")
@db_option
@json_option
@_by_option
def actor_token_create(
    name: str, label: str | None, db_path: str | None, as_json: bool, by: str | None
) -> None:
    """Make an API token for actor NAME and print it (once: it is not stored).

    Clients send it as 'Authorization: Bearer TOKEN'.

    Example:

        onboarding actor token create aarhus-pl --json
    """
    from onboarding import tokens

    with database(db_path) as db:
        token, record = tokens.create(db, name, label=label, by=actor_name(by))
    if as_json:
        echo_json({"token": token, "id": record["id"], "actor": name})
        return
    click.echo(token)
    click.echo(
        t(
            "token #%(id)s for %(name)s: keep it now, it is not shown again",
            id=record["id"],
            name=name,
        ),
        err=True,
    )


@actor_token.command("list")
@click.argument("name")
@db_option
@json_option
def actor_token_list(name: str, db_path: str | None, as_json: bool) -> None:
    """List actor NAME's API tokens: id, prefix, label, created, last used, revoked.

    Example:

        onboarding actor token list aarhus-pl
    """
    from onboarding import tokens

    with database(db_path) as db:
        rows = tokens.list_tokens(db, name)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        [
            {
                "id": r["id"],
                "prefix": r["prefix"],
                "label": r["label"],
                "created": r["created_at"],
                "last used": r["last_used_at"],
                "revoked": r["revoked_at"],
            }
            for r in rows
        ]
    )


@actor_token.command("revoke")
@click.argument("name")
@click.option("--id", "token_id", type=int, default=None, help="Only this token (see 'list').")
@db_option
@_by_option
def actor_token_revoke(
    name: str, token_id: int | None, db_path: str | None, by: str | None
) -> None:
    """Revoke actor NAME's API tokens: all of them, or with --id one.

    Example:

        onboarding actor token revoke aarhus-pl --id 3
    """
    from onboarding import tokens

    with database(db_path) as db:
        gone = tokens.revoke(db, name, token_id, by=actor_name(by))
    click.echo(
        t("%(name)s: revoked %(n)s token(s)", name=name, n=len(gone))
        + "".join(f"\n  #{r['id']} {r['prefix']}" for r in gone)
    )
