"""Structured logs for the long-running commands (``serve``, ``scheduler run``).

One log record is one event: ``request``, ``transition``, ``claim``, ``send``, ``failure`` and
the scheduler's life (``start``, ``stop``, ``sweep``). ``event(logger, name, **fields)`` writes
it; ``setup("json")`` prints each as one JSON object per line on stderr (for journald, Loki, a
container runtime), ``setup("text")`` as one readable line.

Never a password or token: a field whose name says it holds one (``password``, ``token``,
``secret``, ``authorization``, ``cookie``) is replaced by ``"[redacted]"``, and a bearer
token inside any text is cut out, whatever the caller passed. Request events carry the path
without its query string (a link may carry a token there).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

Format = Literal["json", "text"]
FORMATS: tuple[Format, ...] = ("json", "text")

REDACTED = "[redacted]"
SECRET_NAMES = ("password", "passwd", "token", "secret", "authorization", "cookie", "api_key")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")

#: Attributes every ``LogRecord`` has; anything else was passed with ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_NAMES)


def scrub(value: Any, name: str = "") -> Any:
    """``value`` with secrets removed: by field name, inside mappings and lists, in text."""
    if name and is_secret_name(name):
        return REDACTED
    if isinstance(value, str):
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    if isinstance(value, Mapping):
        return {str(k): scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))


def event(
    logger: logging.Logger,
    name: str,
    level: int = logging.INFO,
    *,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log one event ``name`` with its fields (scrubbed when formatted)."""
    if logger.isEnabledFor(level):
        text = " ".join([name, *(f"{k}={v}" for k, v in fields.items())])
        logger.log(level, "%s", text, exc_info=exc_info, extra={"event": name, "fields": fields})


def line_events(logger_name: str, name: str = "replication") -> Callable[[str], None]:
    """A callback that logs each line of text it is given as one event (for helpers that
    report in lines, such as the replication supervisor)."""
    logger = logging.getLogger(logger_name)

    def log_line(line: str) -> None:
        event(logger, name, message=line)

    return log_line


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    out: dict[str, Any] = dict(fields) if isinstance(fields, Mapping) else {}
    for key, value in record.__dict__.items():  # other extra= attributes
        if key not in _STANDARD and key not in ("event", "fields"):
            out.setdefault(key, value)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, event, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
        }
        fields = _fields(record)
        if getattr(record, "event", None) is None:
            data["message"] = record.getMessage()
        data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(scrub(data), ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """One line per record: time, level, logger, then the message (scrubbed)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            clean = scrub(fields).items()
            words = [str(getattr(record, "event", "")), *(f"{k}={v}" for k, v in clean)]
            record.msg, record.args = "%s", (" ".join(words),)
        text = super().format(record)
        return str(scrub(text))


def setup(fmt: Format = "text", stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every log record to ``stream`` (stderr) in ``fmt``, replacing earlier handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


__all__ = [
    "FORMATS",
    "REDACTED",
    "Format",
    "event",
    "is_secret_name",
    "line_events",
    "scrub",
    "setup",
]
