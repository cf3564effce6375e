"""What rendering gives (``Rendered``: subject, text, HTML) and the one-line rule for a subject.

At the bottom of the package: the renderer makes ``Rendered`` values and the message builders
take them, and both use ``one_line``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def one_line(text: str) -> str:
    """A header value on one line: control characters (CR, LF, tabs) become single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())
