"""``onboarding mail``: the stored mail settings."""

from __future__ import annotations

from typing import Any

import click

from onboarding.commands.common import (
    Group,
    UserError,
    database,
    db_option,
    echo_json,
    json_option,
    lang,
    say,
    t,
)


@click.group(cls=Group)
def mail() -> None:
    """Mail settings kept in the database: sender, Message-ID domain, language, digest, SMTP.

    Every command on the database (send-due, preview, forecast, the scheduler, the web page)
    then sends the same way. The environment (ONBOARDING_SMTP_*, ONBOARDING_MAIL_FROM) wins over
    the config file (onboarding.toml next to the database, or $ONBOARDING_CONFIG), which wins
    over what is stored here. The SMTP password is never stored in the database.
    See docs/notifications.md.

    Example:

        onboarding mail configure --from "KOMBIT <mail@kombit.dk>"
    """


@mail.command("configure")
@click.option("--from", "mail_from", default=None, metavar="'NAME <ADDRESS>'", help="The sender.")
@click.option(
    "--message-id-domain",
    default=None,
    metavar="DOMAIN",
    help="Right of the @ in Message-IDs (default: the sender's domain).",
)
@click.option("--language", default=None, metavar="da|en", help="Language of the messages.")
@click.option(
    "--organisation",
    default=None,
    metavar="NAME",
    help="Who sends, as the templates name it (default: KOMBIT).",
)
@click.option(
    "--signature",
    default=None,
    metavar="TEXT",
    help="The lines under 'Venlig hilsen' (default: the organisation); '\\n' starts a line.",
)
@click.option(
    "--digest/--no-digest",
    default=None,
    help="One email per recipient and day for reminders and escalations, or one each.",
)
@click.option("--smtp-host", default=None, metavar="HOST", help="SMTP server (none: .eml files).")
@click.option("--smtp-port", default=None, metavar="N", help="Default 25, 587 or 465 by security.")
@click.option("--smtp-security", default=None, metavar="none|starttls|tls", help="Encryption.")
@click.option(
    "--smtp-user",
    default=None,
    metavar="USER",
    help="Login name; the password stays in $ONBOARDING_SMTP_PASSWORD or the config file.",
)
@click.option("--smtp-timeout", default=None, metavar="SECONDS", help="Seconds per SMTP operation.")
@click.option("--smtp-password", "smtp_password", default=None, hidden=True)
@click.option(
    "--unset",
    multiple=True,
    metavar="KEY",
    help="Remove a stored setting (e.g. mail.from or smtp-host); repeatable.",
)
@db_option
def mail_configure(
    mail_from: str | None,
    message_id_domain: str | None,
    language: str | None,
    organisation: str | None,
    signature: str | None,
    digest: bool | None,
    smtp_host: str | None,
    smtp_port: str | None,
    smtp_security: str | None,
    smtp_user: str | None,
    smtp_timeout: str | None,
    smtp_password: str | None,
    unset: tuple[str, ...],
    db_path: str | None,
) -> None:
    """Store mail settings in the database, so every command on it sends the same way.

    Each value is checked as the same key in the config file is; a bad value, or settings that
    would not work together (an SMTP host without a sender), change nothing. The SMTP password
    is never stored in the database: keep it in $ONBOARDING_SMTP_PASSWORD or in the config
    file's [smtp] password. The environment and the config file still win over what is stored
    here: 'onboarding mail show' says which value is used and where it comes from.

    Example:

        onboarding mail configure --from "KOMBIT <mail@kombit.dk>" --digest
    """
    from notifications.config import load_config, option_key, read_stored, store
    from onboarding.db import resolve_path

    if smtp_password is not None:
        # Refused with the reason rather than as an unknown option: a database is copied and
        # backed up, so a password in it would leak with every copy.
        raise UserError(
            "the SMTP password is never stored in the database: set $ONBOARDING_SMTP_PASSWORD "
            "or [smtp] password in the config file"
        )
    given = {
        "mail.from": mail_from,
        "mail.message_id_domain": message_id_domain,
        "mail.language": language,
        "mail.organisation": organisation,
        "mail.signature": signature,
        "mail.digest": digest,
        "smtp.host": smtp_host,
        "smtp.port": smtp_port,
        "smtp.security": smtp_security,
        "smtp.user": smtp_user,
        "smtp.timeout": smtp_timeout,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    removed = [option_key(name) for name in unset]
    if not changes and not removed:
        raise UserError("nothing to store: give a setting (see --help) or --unset KEY")
    path = resolve_path(db_path)
    with database(db_path) as db:
        before = read_stored(db)
        stored = store(db, path, changes, removed)
        config = load_config(path, db=db)
    for key in [*changes, *removed]:
        now = config.settings[key]
        if key in stored:
            click.echo(
                t("%(key)s = %(value)s (stored)", key=key, value=_setting_text(key, stored[key]))
            )
        elif key in before:
            click.echo(t("%(key)s: removed from the database", key=key))
        else:
            click.echo(t("%(key)s: was not stored in the database", key=key))
        if now.source.kind != "database" and (key in stored or now.source.kind != "default"):
            value = _setting_text(key, now.value)
            source = say(now.source.said())
            click.echo(t("  in force: %(value)s from %(source)s", value=value, source=source))


def _setting_text(key: str, value: Any) -> str:
    """A setting's value as shown, its words ("set", "on", "(none)") in the CLI's language."""
    from onboarding.i18n import pgettext

    if key == "smtp.password":
        return pgettext(lang(), "setting", "set" if value else "not set")
    if value is None or value == "":
        return t("(none)")
    if isinstance(value, bool):
        return pgettext(lang(), "setting", "on" if value else "off")
    return str(value).replace("\n", "\\n")  # a signature's lines: one setting, one line


@mail.command("show")
@db_option
@json_option
def mail_show(db_path: str | None, as_json: bool) -> None:
    """Print the mail settings in force for the database and where each one comes from.

    Sources: an environment variable, the config file (its path), the database ('onboarding
    mail configure') or the default. The SMTP password is shown only as set or not set.

    Example:

        onboarding mail show --db demo-output/onboarding.db
    """
    from notifications.config import load_config, read_stored
    from onboarding.db import resolve_path

    path = resolve_path(db_path)
    with database(db_path) as db:
        config = load_config(path, db=db)
        stored = read_stored(db)
    rows = [
        {
            "key": key,
            "value": ("set" if s.value else None) if key == "smtp.password" else s.value,
            "source": s.source.kind,
            "where": s.source.where,
            "stored": stored.get(key),
        }
        for key, s in config.settings.items()
    ]
    if as_json:
        echo_json(
            {
                "database": str(path),
                "config_file": config.source,
                "transport": config.describe(),
                "settings": rows,
            }
        )
        return
    if config.source:
        heading = t("Mail settings for %(db)s (config file: %(file)s)", db=path, file=config.source)
        click.echo(heading)
    else:
        click.echo(t("Mail settings for %(db)s (config file: none)", db=path))
    width = max(len(key) for key in config.settings)
    for key, s in config.settings.items():
        value = _setting_text(key, s.value)
        click.echo(f"  {key.ljust(width)}  {value}  [{say(s.source.said())}]")
    for key, value in stored.items():
        s = config.settings[key]
        if s.source.kind != "database":
            click.echo(
                t(
                    "  (stored %(key)s = %(value)s is overridden by %(source)s)",
                    key=key,
                    value=_setting_text(key, value),
                    source=say(s.source.said()),
                )
            )
    click.echo(say(config.describe()))
