"""Mail settings: environment, then a TOML config file, then the database; never the command line.

Each setting is looked up in this order, the first that has it wins:

1. the environment: ``ONBOARDING_SMTP_HOST``, ``ONBOARDING_SMTP_PORT``,
   ``ONBOARDING_SMTP_SECURITY``, ``ONBOARDING_SMTP_USER``, ``ONBOARDING_SMTP_PASSWORD`` and
   ``ONBOARDING_MAIL_FROM`` (an empty variable counts as unset);
2. the config file: ``$ONBOARDING_CONFIG`` if set, else ``onboarding.toml`` next to the
   database (if it exists);
3. the database's ``settings`` table, written by ``onboarding mail configure`` (sender,
   Message-ID domain, language, digest, SMTP without the password: see ``STORED``);
4. the defaults below.

Every key of the file is optional::

    [smtp]
    host = "smtp.example.dk"       # no host: messages are written as .eml files instead
    port = 587                     # default 25 (none), 587 (starttls), 465 (tls)
    security = "starttls"          # none | starttls | tls
    user = "onboarding"
    password = "..."               # better in $ONBOARDING_SMTP_PASSWORD; never in the database
    timeout = 30                   # seconds per SMTP operation
    ca_file = "internal-ca.pem"    # extra CA to trust (relative to this file)

    [mail]
    from = "KOMBIT onboarding <onboarding@kombit.dk>"
    message_id_domain = "kombit.dk"  # right of the @ in Message-IDs; default: the sender's
    language = "da"                # da | en
    templates = "my-templates"     # a folder whose files override the shipped templates
    organisation = "KOMBIT"        # who sends: the templates' {{ organisation }}
    signature = "KOMBIT"           # the lines under "Venlig hilsen" (default: organisation)
    outbox_dir = "mail-outbox"     # where .eml files go without SMTP
    digest = false                 # one email per recipient and day for reminders/escalations

    [delivery]
    max_attempts = 5               # then the row is failed (reminders list --failed)
    backoff_seconds = 300          # first retry after 5 min, doubling, at most max_backoff
    max_backoff_seconds = 21600
    batch_size = 50                # rows claimed per transaction
    lease_seconds = 900            # a claim older than this is taken back (its runner died)
    message_timeout = 120          # seconds for one message, connect to the 250 after DATA
    run_timeout = 1800             # seconds a run may take; then it stops, the rest stays due

A setting is checked by the same function wherever it comes from (``KEYS``), so a value that
``onboarding mail configure`` accepts is one the file would accept, and the other way round.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onboarding.errors import InputError, shorten
from onboarding.i18n import Message

if TYPE_CHECKING:
    from onboarding.db import Database

SECURITIES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
LANGUAGES = ("da", "en")
DEFAULT_FROM = "onboarding@localhost"
DEFAULT_ORGANISATION = "KOMBIT"
CONFIG_NAME = "onboarding.toml"

#: Where a value came from (``Source.kind``).
ENVIRONMENT = "environment"
CONFIG_FILE = "config file"
DATABASE = "database"
DEFAULT = "default"


@dataclass(frozen=True)
class Source:
    """Where one setting's value came from: ``kind`` and, for some, which variable or file."""

    kind: str
    where: str | None = None

    def __str__(self) -> str:
        return str(self.said())

    def said(self) -> Message:
        """Where the value came from, as a sentence (its ``str``: "environment ($X)",
        "config file (PATH)", "database", "default")."""
        if self.kind == ENVIRONMENT:
            return Message("environment ($%(where)s)", {"where": self.where or ""})
        if self.kind == CONFIG_FILE:
            return Message("config file (%(where)s)", {"where": self.where or ""})
        if self.kind == DATABASE:
            return Message("database")
        if self.kind == DEFAULT:
            return Message("default")
        return Message(f"{self.kind} ({self.where})" if self.where else self.kind)


@dataclass(frozen=True)
class Setting:
    """One effective setting. The password's ``value`` is only whether it is set."""

    value: Any
    source: Source


# --- checking one value ------------------------------------------------------------------------
# Each takes the raw value (a TOML value, an environment string, a stored JSON value or a
# command-line string) and ``what`` (where it came from, for the message) and returns the value
# to use, or raises InputError.


def _int(value: Any, what: str, low: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a whole number") from None
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InputError(f"{what}: {value!r} is not a whole number")
    if number < low:
        raise InputError(f"{what}: must be a whole number from {low}")
    return number


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "ja", "on"}:
        return True
    if text in {"0", "false", "no", "nej", "off", ""}:
        return False
    raise InputError(f"{what}: {value!r} is not true/false")


def _text(value: Any, what: str) -> str:
    """A one-line text: a line break or control character would reach a header or a log."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InputError(f"{what}: {value!r} is not text")
    text = str(value).strip()
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InputError(f"{what}: {shorten(text)} must be one line of text")
    return text


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what}: {value!r} is not an email address")
    name, addr = parseaddr(value)
    if "@" not in addr or any(c in value for c in "\r\n"):
        raise InputError(f"{what}: {value!r} is not an email address")
    try:
        Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError) as exc:
        raise InputError(f"{what}: {value!r} is not an email address ({exc})") from None
    return value.strip()


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def _domain(value: Any, what: str) -> str:
    """A host name for the right of a Message-ID's @: ASCII labels, no spaces, no brackets."""
    text = _text(value, what).lower().rstrip(".")
    if len(text) > 253 or not _DOMAIN.fullmatch(text):
        raise InputError(
            f"{what}: {shorten(str(value))} is not a domain name (letters, digits, '-' and '.', "
            "e.g. kombit.dk)"
        )
    return text


def _host(value: Any, what: str) -> str:
    text = _text(value, what)
    if any(c.isspace() or c in "/@<>" for c in text):
        raise InputError(f"{what}: {shorten(text)} is not a host name or IP address")
    return text


def _port(value: Any, what: str) -> int:
    port = _int(value, what)
    if port > 65535:
        raise InputError(f"{what}: {port} must be at most 65535")
    return port


def _security(value: Any, what: str) -> str:
    text = str(value).strip().lower()
    if text not in SECURITIES:
        raise InputError(f"{what}: {value!r} must be one of {', '.join(SECURITIES)}")
    return text


def _language(value: Any, what: str) -> str:
    text = str(value).strip().lower()
    if text not in LANGUAGES:
        raise InputError(f"{what}: {value!r} must be one of {', '.join(LANGUAGES)}")
    return text


def _seconds(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a number of seconds") from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise InputError(f"{what}: {value!r} must be a number of seconds above 0")
    return number


#: The most lines a signature may have (a name, a unit, a telephone number...).
SIGNATURE_LINES = 6


def _signature(value: Any, what: str) -> str:
    """The lines under the closing greeting: one or a few lines of text (a line break may be
    written ``\\n`` on the command line), each without other control characters."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what}: {value!r} is not text")
    lines = [line.strip() for line in value.replace("\\n", "\n").strip().splitlines()]
    if len(lines) > SIGNATURE_LINES:
        raise InputError(f"{what}: at most {SIGNATURE_LINES} lines, not {len(lines)}")
    return "\n".join(_text(line, what) if line else "" for line in lines)


def _any(value: Any, what: str) -> Any:
    return value


@dataclass(frozen=True)
class Key:
    """One mail setting: its file place, variable, whether it may be stored, its check."""

    name: str  # "smtp.port": the file's [smtp] port, the database's key smtp.port
    check: Callable[[Any, str], Any]
    env: str | None = None
    stored: bool = False  # may be kept in the database ('onboarding mail configure')
    option: str | None = None  # the option of 'onboarding mail configure'

    @property
    def section(self) -> str:
        return self.name.partition(".")[0]

    @property
    def file_key(self) -> str:
        return self.name.partition(".")[2]


KEYS: tuple[Key, ...] = (
    Key("mail.from", _address, "ONBOARDING_MAIL_FROM", True, "--from"),
    Key("mail.message_id_domain", _domain, None, True, "--message-id-domain"),
    Key("mail.language", _language, None, True, "--language"),
    Key("mail.digest", _bool, None, True, "--digest"),
    Key("mail.templates", _text),
    Key("mail.organisation", _text, "ONBOARDING_MAIL_ORGANISATION", True, "--organisation"),
    Key("mail.signature", _signature, "ONBOARDING_MAIL_SIGNATURE", True, "--signature"),
    Key("mail.outbox_dir", _text),
    Key("smtp.host", _host, "ONBOARDING_SMTP_HOST", True, "--smtp-host"),
    Key("smtp.port", _port, "ONBOARDING_SMTP_PORT", True, "--smtp-port"),
    Key("smtp.security", _security, "ONBOARDING_SMTP_SECURITY", True, "--smtp-security"),
    Key("smtp.user", _text, "ONBOARDING_SMTP_USER", True, "--smtp-user"),
    # Never stored: whoever has a copy of the database (a backup) would have the password.
    Key("smtp.password", _any, "ONBOARDING_SMTP_PASSWORD"),
    Key("smtp.timeout", _seconds, None, True, "--smtp-timeout"),
    Key("smtp.ca_file", _text),
    Key("delivery.max_attempts", _int),
    Key("delivery.backoff_seconds", lambda v, w: _int(v, w, 0)),
    Key("delivery.max_backoff_seconds", lambda v, w: _int(v, w, 0)),
    Key("delivery.batch_size", _int),
    Key("delivery.lease_seconds", _int),
    Key("delivery.message_timeout", _int),
    Key("delivery.run_timeout", _int),
)
BY_NAME: Mapping[str, Key] = {k.name: k for k in KEYS}
#: The keys 'onboarding mail configure' may store in the database.
STORED: tuple[str, ...] = tuple(k.name for k in KEYS if k.stored)

_SECTIONS: Mapping[str, frozenset[str]] = {
    section: frozenset(k.file_key for k in KEYS if k.section == section)
    for section in ("smtp", "mail", "delivery")
}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    ca_file: Path | None = None


@dataclass(frozen=True)
class Config:
    """Everything the sender needs. ``smtp is None`` means: write .eml files to ``outbox_dir``."""

    smtp: SmtpSettings | None
    outbox_dir: Path
    mail_from: str = DEFAULT_FROM
    language: str = "da"
    templates_dir: Path | None = None
    digest: bool = False
    #: Who sends, for the templates (``{{ organisation }}``): today's text by default.
    organisation: str = DEFAULT_ORGANISATION
    #: The lines under the closing greeting (``{{ signature }}``); None: the organisation.
    signature: str | None = None
    max_attempts: int = 5
    backoff_seconds: int = 300
    max_backoff_seconds: int = 6 * 3600
    batch_size: int = 50
    lease_seconds: int = 900
    message_timeout: int = 120
    run_timeout: int = 1800
    source: str | None = None  # the config file read, if any
    message_id_domain: str | None = None  # None: the sender's domain
    #: Every setting as it came out (key -> value and source), for 'onboarding mail show'.
    settings: Mapping[str, Setting] = field(default_factory=dict, repr=False, compare=False)

    @property
    def envelope_from(self) -> str:
        return parseaddr(self.mail_from)[1]

    @property
    def domain(self) -> str:
        """The right of the @ in Message-IDs and calendar UIDs."""
        if self.message_id_domain:
            return self.message_id_domain
        return self.envelope_from.rpartition("@")[2] or "localhost"

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt."""
        seconds = self.backoff_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))

    def describe(self) -> Message:
        """How mail goes out, in one sentence (English as ``str``; said in a language)."""
        if self.smtp is None:
            return Message(
                "no SMTP configured: messages are written as .eml files to %(folder)s",
                {"folder": str(self.outbox_dir)},
            )
        s = self.smtp
        params = {
            "server": f"{s.host}:{s.port}",
            "security": s.security,
            "user": s.user or "",
            "sender": self.mail_from,
        }
        if s.user:
            return Message("SMTP %(server)s (%(security)s) as %(user)s, from %(sender)s", params)
        return Message("SMTP %(server)s (%(security)s), from %(sender)s", params)


def default_outbox_dir(db_path: Path) -> Path:
    """``<db folder>/<db stem>-outbox``: where .eml files go when no SMTP server is set."""
    return db_path.parent / f"{db_path.stem}-outbox"


def config_path(db_path: Path | None, env: Mapping[str, str]) -> Path | None:
    explicit = env.get("ONBOARDING_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"$ONBOARDING_CONFIG: {path} does not exist")
        return path
    if db_path is not None:
        candidate = db_path.parent / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read mail settings: {exc}") from None
    for section, value in data.items():
        if section not in _SECTIONS or not isinstance(value, dict):
            raise InputError(
                f"{path}: unknown section [{section}] (sections: {', '.join(_SECTIONS)})"
            )
        for key in value:
            if key not in _SECTIONS[section]:
                allowed = ", ".join(sorted(_SECTIONS[section]))
                raise InputError(f"{path}: [{section}] has no key {key!r} (keys: {allowed})")
    return data


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_stored(db: Database) -> dict[str, Any]:
    """The mail settings stored in the database (keys of ``STORED`` only)."""
    from onboarding import settings

    stored = settings.read(db)
    return {k: v for k, v in stored.items() if k in STORED}


def _resolve(
    env: Mapping[str, str], file: Path | None, data: Mapping[str, Any], stored: Mapping[str, Any]
) -> dict[str, Setting]:
    """Each key's value from the first place that has it, checked by the key's own check."""
    out: dict[str, Setting] = {}
    for key in KEYS:
        raw = env.get(key.env) if key.env else None
        if raw not in (None, ""):
            source, what = Source(ENVIRONMENT, key.env), f"${key.env}"
        elif key.file_key in data.get(key.section, {}):
            raw = data[key.section][key.file_key]
            source, what = Source(CONFIG_FILE, str(file)), f"{file}: [{key.section}] {key.file_key}"
        elif key.stored and key.name in stored:
            raw = stored[key.name]
            source, what = Source(DATABASE), f"database setting {key.name}"
        else:
            continue
        out[key.name] = Setting(key.check(raw, what), source)
    return out


def load_config(
    db_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
    *,
    db: Database | None = None,
    stored: Mapping[str, Any] | None = None,
) -> Config:
    """The mail settings for a database: environment, config file, the database, defaults.

    Pass the open database as ``db`` to read its stored settings (``onboarding mail
    configure``); ``stored`` gives them directly instead (to check settings before storing).
    """
    env = os.environ if env is None else env
    file = path or config_path(db_path, env)
    data = _read(file) if file else {}
    if stored is None:
        stored = read_stored(db) if db is not None else {}
    base = file.parent if file else Path.cwd()
    found = _resolve(env, file, data, stored)

    def value(name: str, default: Any = None) -> Any:
        return found[name].value if name in found else default

    def rel(text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else base / p

    def default(name: str, value: Any, why: str | None = None) -> None:
        found.setdefault(name, Setting(value, Source(DEFAULT, why)))

    security = value("smtp.security", "starttls")
    port = value("smtp.port", DEFAULT_PORTS[security])
    host = value("smtp.host")
    user = value("smtp.user")
    password = value("smtp.password")
    mail_from = value("mail.from")
    smtp: SmtpSettings | None = None
    if host:
        if user and security == "none" and not _is_loopback(host):
            raise InputError(
                f"SMTP user {user!r} with security 'none': the password would cross the network "
                "in clear text; set ONBOARDING_SMTP_SECURITY=starttls or tls"
            )
        if not mail_from:
            raise InputError(
                "an SMTP server is configured but no sender: set ONBOARDING_MAIL_FROM, "
                "[mail] from in the config file, or 'onboarding mail configure --from'"
            )
        smtp = SmtpSettings(
            host=host,
            port=port,
            security=security,
            user=user,
            password=str(password) if password else None,
            timeout=value("smtp.timeout", 30.0),
            ca_file=rel(value("smtp.ca_file")) if value("smtp.ca_file") else None,
        )
    if value("mail.outbox_dir"):
        outbox_dir = rel(value("mail.outbox_dir"))
    elif db_path is not None:
        outbox_dir = default_outbox_dir(db_path)
    else:
        outbox_dir = Path.cwd() / "onboarding-outbox"
    config = Config(
        smtp=smtp,
        outbox_dir=outbox_dir,
        mail_from=mail_from or DEFAULT_FROM,
        language=value("mail.language", "da"),
        templates_dir=rel(value("mail.templates")) if value("mail.templates") else None,
        digest=value("mail.digest", False),
        organisation=value("mail.organisation", DEFAULT_ORGANISATION),
        signature=value("mail.signature"),
        max_attempts=value("delivery.max_attempts", 5),
        backoff_seconds=value("delivery.backoff_seconds", 300),
        max_backoff_seconds=value("delivery.max_backoff_seconds", 6 * 3600),
        batch_size=value("delivery.batch_size", 50),
        lease_seconds=value("delivery.lease_seconds", 900),
        message_timeout=value("delivery.message_timeout", 120),
        run_timeout=value("delivery.run_timeout", 1800),
        source=str(file) if file else None,
        message_id_domain=value("mail.message_id_domain"),
        settings=found,
    )
    # What was not set anywhere, as used, so 'mail show' lists every setting.
    default("mail.from", config.mail_from)
    default("mail.message_id_domain", config.domain, "the sender's domain")
    default("mail.language", config.language)
    default("mail.digest", config.digest)
    default("mail.templates", None, "the shipped templates")
    default("mail.organisation", config.organisation)
    default("mail.signature", config.organisation, "the organisation")
    default("mail.outbox_dir", str(config.outbox_dir), "beside the database")
    default("smtp.host", None, "none: messages are written as .eml files")
    default("smtp.port", port, f"for {security}")
    default("smtp.security", security)
    default("smtp.user", None)
    default("smtp.timeout", 30.0)
    default("smtp.ca_file", None, "the system's CAs")
    for name in ("max_attempts", "backoff_seconds", "max_backoff_seconds", "batch_size"):
        default(f"delivery.{name}", getattr(config, name))
    for name in ("lease_seconds", "message_timeout", "run_timeout"):
        default(f"delivery.{name}", getattr(config, name))
    if "smtp.password" in found:  # keep whether it is set, never the password itself
        found["smtp.password"] = Setting(bool(password), found["smtp.password"].source)
    else:
        default("smtp.password", False)
    return replace(config, settings={k.name: found[k.name] for k in KEYS})


def option_key(text: str) -> str:
    """A stored setting's key from ``mail.from``, ``from`` or ``--smtp-host`` (for --unset)."""
    name = text.strip()
    if name in STORED:
        return name
    for key in KEYS:
        if key.option and key.option.lstrip("-") == name.lstrip("-"):
            return key.name
    if name in BY_NAME or name.lstrip("-") in ("smtp-password", "password"):
        raise InputError(
            f"{text}: not kept in the database (only {', '.join(STORED)}); "
            "set it in the config file or the environment"
        )
    raise InputError(f"unknown mail setting {text!r} (stored settings: {', '.join(STORED)})")


def store(
    db: Database,
    db_path: Path | None,
    changes: Mapping[str, Any],
    unset: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check and store mail settings in the database (``onboarding mail configure``).

    ``changes`` maps keys of ``STORED`` to raw values, each checked by its key's own check (the
    one used for the same key in the config file). Then the whole result must make a usable
    configuration together with the environment and config file in force (an SMTP host needs a
    sender, and so on); otherwise nothing is written. Returns the stored settings afterwards.
    """
    from onboarding import settings

    checked: dict[str, Any] = {}
    for name, raw in changes.items():
        key = BY_NAME.get(name)
        if key is None or not key.stored:
            raise InputError(
                f"{name}: not kept in the database (only {', '.join(STORED)}); "
                "set it in the config file or the environment"
            )
        checked[name] = key.check(raw, key.option or name)
    for name in unset:
        if name not in STORED:
            raise InputError(f"unknown mail setting {name!r} (stored: {', '.join(STORED)})")
        if name in checked:
            raise InputError(f"{name}: both set and unset; give one")

    def usable(after: dict[str, Any]) -> None:
        mine = {k: v for k, v in after.items() if k in STORED}
        try:
            load_config(db_path, env, stored=mine)
        except InputError as exc:
            raise InputError(f"not stored, the settings would not work: {exc}") from None

    after = settings.update(db, checked, unset, check=usable)
    return {k: v for k, v in after.items() if k in STORED}
