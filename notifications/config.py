"""Mail settings: a TOML config file, overridden by the environment; never the command line.

Where the file is: ``$ONBOARDING_CONFIG`` if set, else ``onboarding.toml`` next to the database
(if it exists). Every key is optional::

    [smtp]
    host = "smtp.example.dk"       # no host: messages are written as .eml files instead
    port = 587                     # default 25 (none), 587 (starttls), 465 (tls)
    security = "starttls"          # none | starttls | tls
    user = "onboarding"
    password = "..."               # better in $ONBOARDING_SMTP_PASSWORD
    timeout = 30                   # seconds per SMTP operation
    ca_file = "internal-ca.pem"    # extra CA to trust (relative to this file)

    [mail]
    from = "KOMBIT onboarding <onboarding@kombit.dk>"
    language = "da"                # da | en
    templates = "my-templates"     # a folder whose files override the shipped templates
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

The environment wins: ``ONBOARDING_SMTP_HOST``, ``ONBOARDING_SMTP_PORT``,
``ONBOARDING_SMTP_SECURITY``, ``ONBOARDING_SMTP_USER``, ``ONBOARDING_SMTP_PASSWORD`` and
``ONBOARDING_MAIL_FROM``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from onboarding.errors import InputError

SECURITIES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
LANGUAGES = ("da", "en")
DEFAULT_FROM = "onboarding@localhost"
CONFIG_NAME = "onboarding.toml"

_SECTIONS: Mapping[str, frozenset[str]] = {
    "smtp": frozenset({"host", "port", "security", "user", "password", "timeout", "ca_file"}),
    "mail": frozenset({"from", "language", "templates", "outbox_dir", "digest"}),
    "delivery": frozenset(
        {"max_attempts", "backoff_seconds", "max_backoff_seconds", "batch_size", "lease_seconds",
         "message_timeout", "run_timeout"}
    ),
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
    max_attempts: int = 5
    backoff_seconds: int = 300
    max_backoff_seconds: int = 6 * 3600
    batch_size: int = 50
    lease_seconds: int = 900
    message_timeout: int = 120
    run_timeout: int = 1800
    source: str | None = None

    @property
    def envelope_from(self) -> str:
        return parseaddr(self.mail_from)[1]

    @property
    def domain(self) -> str:
        return self.envelope_from.rpartition("@")[2] or "localhost"

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt."""
        seconds = self.backoff_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))

    def describe(self) -> str:
        if self.smtp is None:
            return f"no SMTP configured: messages are written as .eml files to {self.outbox_dir}"
        s = self.smtp
        who = f" as {s.user}" if s.user else ""
        return f"SMTP {s.host}:{s.port} ({s.security}){who}, from {self.mail_from}"


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


def _int(value: Any, what: str, low: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a whole number") from None
    if isinstance(value, bool) or number < low:
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


def _address(value: str, what: str) -> str:
    name, addr = parseaddr(value)
    if "@" not in addr or any(c in value for c in "\r\n"):
        raise InputError(f"{what}: {value!r} is not an email address")
    try:
        Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError) as exc:
        raise InputError(f"{what}: {value!r} is not an email address ({exc})") from None
    return value.strip()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(
    db_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Config:
    """The mail settings for a database: its config file, then the environment on top."""
    env = os.environ if env is None else env
    file = path or config_path(db_path, env)
    data = _read(file) if file else {}
    base = file.parent if file else Path.cwd()
    smtp_file = data.get("smtp", {})
    mail = data.get("mail", {})
    delivery = data.get("delivery", {})
    where = str(file) if file else "settings"

    def pick(env_name: str, section: Mapping[str, Any], key: str) -> Any:
        value = env.get(env_name)
        return value if value not in (None, "") else section.get(key)

    def rel(value: Any) -> Path:
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else base / p

    host = pick("ONBOARDING_SMTP_HOST", smtp_file, "host")
    smtp: SmtpSettings | None = None
    if host:
        security = str(pick("ONBOARDING_SMTP_SECURITY", smtp_file, "security") or "starttls")
        security = security.strip().lower()
        if security not in SECURITIES:
            raise InputError(
                f"{where}: SMTP security {security!r} must be one of {', '.join(SECURITIES)}"
            )
        port_raw = pick("ONBOARDING_SMTP_PORT", smtp_file, "port")
        port = DEFAULT_PORTS[security] if port_raw in (None, "") else _int(port_raw, "SMTP port")
        if port > 65535:
            raise InputError(f"SMTP port {port}: must be at most 65535")
        user = pick("ONBOARDING_SMTP_USER", smtp_file, "user") or None
        password = pick("ONBOARDING_SMTP_PASSWORD", smtp_file, "password") or None
        if user and security == "none" and not _is_loopback(str(host)):
            raise InputError(
                f"SMTP user {user!r} with security 'none': the password would cross the network "
                "in clear text; set ONBOARDING_SMTP_SECURITY=starttls or tls"
            )
        smtp = SmtpSettings(
            host=str(host).strip(),
            port=port,
            security=security,
            user=str(user) if user else None,
            password=str(password) if password else None,
            timeout=float(smtp_file.get("timeout", 30)),
            ca_file=rel(smtp_file["ca_file"]) if smtp_file.get("ca_file") else None,
        )
    mail_from = pick("ONBOARDING_MAIL_FROM", mail, "from")
    if smtp is not None and not mail_from:
        raise InputError(
            "an SMTP server is configured but no sender: set ONBOARDING_MAIL_FROM "
            "or [mail] from in the config file"
        )
    language = str(mail.get("language", "da")).lower()
    if language not in LANGUAGES:
        raise InputError(f"{where}: [mail] language must be one of {', '.join(LANGUAGES)}")
    if mail.get("outbox_dir"):
        outbox_dir = rel(mail["outbox_dir"])
    elif db_path is not None:
        outbox_dir = default_outbox_dir(db_path)
    else:
        outbox_dir = Path.cwd() / "onboarding-outbox"
    return Config(
        smtp=smtp,
        outbox_dir=outbox_dir,
        mail_from=_address(str(mail_from), "sender") if mail_from else DEFAULT_FROM,
        language=language,
        templates_dir=rel(mail["templates"]) if mail.get("templates") else None,
        digest=_bool(mail.get("digest", False), "[mail] digest"),
        max_attempts=_int(delivery.get("max_attempts", 5), "[delivery] max_attempts"),
        backoff_seconds=_int(delivery.get("backoff_seconds", 300), "[delivery] backoff_seconds", 0),
        max_backoff_seconds=_int(
            delivery.get("max_backoff_seconds", 6 * 3600), "[delivery] max_backoff_seconds", 0
        ),
        batch_size=_int(delivery.get("batch_size", 50), "[delivery] batch_size"),
        lease_seconds=_int(delivery.get("lease_seconds", 900), "[delivery] lease_seconds"),
        message_timeout=_int(delivery.get("message_timeout", 120), "[delivery] message_timeout"),
        run_timeout=_int(delivery.get("run_timeout", 1800), "[delivery] run_timeout"),
        source=str(file) if file else None,
    )
