"""What a demo run gives back (``DemoResult``) and how it reports progress (``Echo``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Echo = Callable[[str], None]


@dataclass
class DemoResult:
    directory: Path
    database: Path
    html: Path
    outbox: Path
    data_files: list[Path] = field(default_factory=list)
    emails: int = 0
    steps: int = 0
    credentials: dict[str, str] = field(default_factory=dict)
