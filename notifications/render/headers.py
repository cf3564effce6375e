"""Headers: Subject and the display names of From and To folded by us, and the email policy.

CPython's folding (``email.policy.default`` and ``SMTP``, 3.11 to 3.13) can split an RFC 2047
encoded-word across lines, glue two together (``?==?``) or lose a space (python/cpython issues
121284 and 144156): 13% of the demo's subjects came out garbled. So Subject and the display
names of From and To are folded here instead: text that is not plain ASCII words becomes whole
encoded-words (``=?utf-8?q?...?=``, at most 75 characters, never splitting a character, every
space inside a word as ``_``), one per line piece, separated by CRLF + space. Decoders ignore the
white space between adjacent encoded-words, so the text decodes to exactly what was set, runs
of spaces included. Plain ASCII text stays readable, folded at its single spaces.
"""

from __future__ import annotations

import base64
import email.policy
import re
import string
from email._header_value_parser import UnstructuredTokenList as _UnstructuredTokenList
from email._header_value_parser import ValueTerminal as _ValueTerminal
from email.headerregistry import (
    Address,
    AddressHeader,
    BaseHeader,
    Group,
    HeaderRegistry,
    UniqueAddressHeader,
    UniqueUnstructuredHeader,
)
from email.policy import Policy
from email.utils import parseaddr
from typing import Any, ClassVar, Literal, cast

from notifications.render.rendered import one_line

#: What ``str.splitlines`` breaks at, and every other control character: never in a header.
_LINE_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")


#: The longest line we write (RFC 5322 recommends 78; the hard limit is 998).
_LINE = 78
_WORD = 75  # RFC 2047: an encoded-word is at most 75 characters
_OPEN, _CLOSE = "=?utf-8?q?", "?="
#: Characters that stand for themselves in a Q encoded-word anywhere, a phrase included
#: (RFC 2047 5(3)); everything else is =XX, a space is "_".
_Q_SAFE = frozenset(string.ascii_letters + string.digits + "!*+-/")
#: RFC 5322 atext: a display name of these words (single spaces between) needs no encoding.
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))
#: The longest plain word; a longer one is encoded so that every line stays within _LINE.
_PLAIN_WORD = 60
#: The longest display name, in characters: one encoded-word of it (B, 4 bytes a character)
#: stays far below the 998-octet line limit. No person's or sender's name comes near it.
_NAME_MAX = 100


def _q(char: str) -> str:
    if char in _Q_SAFE:
        return char
    if char == " ":
        return "_"
    return "".join(f"={b:02X}" for b in char.encode("utf-8", "replace"))


#: ``_q`` of each character seen so far (a subject is encoded character by character).
_Q_SEEN: dict[str, str] = {}


def _q_all(text: str) -> list[str]:
    seen = _Q_SEEN
    out = []
    for char in text:
        q = seen.get(char)
        if q is None:
            q = seen[char] = _q(char)
        out.append(q)
    return out


def _encoded_word(text: str) -> str:
    """The text as one encoded-word, Q or B, whichever is shorter."""
    q = "".join(_q(c) for c in text)
    b = base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="


def _plain(text: str, allowed: frozenset[str]) -> bool:
    """Text that can go as it is: allowed characters in words of a sane length, single spaces
    between them, and nothing a decoder could take for an encoded-word."""
    words = text.split(" ")
    return (
        all(c in allowed for c in text)
        and "=?" not in text
        and all(0 < len(w) <= _PLAIN_WORD for w in words)
    )


class _Lines:
    """A header's lines, filled piece by piece (no piece holds white space)."""

    def __init__(self, name: str) -> None:
        self.lines = [f"{name}:"]
        self.started = False  # the first line holds a piece

    def room(self) -> int:
        """Characters left on the current line after a separating space."""
        return _LINE - len(self.lines[-1]) - 1

    def wrap(self) -> None:
        self.lines.append("")
        self.started = True

    def put(self, piece: str) -> None:
        if self.started and len(piece) > self.room() and self.lines[-1] != "":
            self.wrap()
        self.lines[-1] += " " + piece
        self.started = True

    def text(self, text: str, allowed: frozenset[str]) -> None:
        """Plain words, or the whole text as encoded-words (never a mix: decoders differ on
        the space between a plain word and an encoded-word)."""
        if _plain(text, allowed):
            for word in text.split(" "):
                self.put(word)
            return
        pieces = _q_all(text)
        i = 0
        while i < len(pieces):
            room = min(_WORD, self.room()) - len(_OPEN) - len(_CLOSE)
            if room < len(pieces[i]):
                self.wrap()
                continue
            chunk: list[str] = []
            while i < len(pieces) and len(pieces[i]) <= room:
                chunk.append(pieces[i])
                room -= len(pieces[i])
                i += 1
            self.put(_OPEN + "".join(chunk) + _CLOSE)

    def phrase(self, text: str) -> None:
        """A display name: plain atoms as they are, and each run of words that need encoding
        as ONE encoded-word, however long. ``email.policy.default`` keeps the white space
        between two adjacent encoded-words in a phrase (RFC 2047 says to drop it, and
        ``decode_header`` does), so no two encoded-words may touch; between an encoded-word
        and an atom both keep the space. ``_NAME_MAX`` keeps such a word within 998."""
        run: list[str] = []
        for word in [*text.split(" "), None]:
            if word is not None and not _plain(word, _ATEXT):
                run.append(word)
                continue
            if run:
                self.put(_encoded_word(" ".join(run)))
                run = []
            if word:
                self.put(word)

    def fold(self, linesep: str) -> str:
        return linesep.join(self.lines) + linesep


class _FoldedText:
    """An unstructured header (Subject) folded by ``_Lines``, whatever the policy."""

    name: str

    def fold(self, *, policy: Policy) -> str:
        lines = _Lines(self.name)
        if str(self):
            lines.text(str(self), _PRINTABLE)
        return lines.fold(policy.linesep)


class _Subject(_FoldedText, UniqueUnstructuredHeader):
    """The registry's Subject: parsed as usual (a message read back), folded by ``_Lines``."""


class _ExactSubject(_FoldedText, UniqueUnstructuredHeader, BaseHeader):
    """A Subject holding exactly the text given: the stock parse would decode anything in it
    that looks like an encoded-word (a subject quoting ``=?utf-8?q?x?=`` would lose it)."""

    max_count: ClassVar[Literal[1]] = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        # The parse tree serves only the stock fold, which _FoldedText replaces: parsing the
        # text (a tenth of building a message) would be thrown away.
        kwds["parse_tree"] = _UnstructuredTokenList([_ValueTerminal(value, "vtext")])
        kwds["decoded"] = value


class _FoldedAddresses:
    """An address header (From, To, Cc, ...) whose display names are folded by ``_Lines``.

    A group (``team: a@x, b@y;``) or an address that is not plain ASCII is left to the stock
    folding, which handles them (we never write either)."""

    name: str
    groups: tuple[Group, ...]

    def fold(self, *, policy: Policy) -> str:
        groups = self.groups
        if any(g.display_name is not None for g in groups):
            return str(super().fold(policy=policy))  # type: ignore[misc]
        addresses = [a for g in groups for a in g.addresses]
        if not addresses or not all(a.addr_spec.isascii() for a in addresses):
            return str(super().fold(policy=policy))  # type: ignore[misc]
        lines = _Lines(self.name)
        for n, address in enumerate(addresses):
            comma = "," if n < len(addresses) - 1 else ""
            if address.display_name:
                lines.phrase(address.display_name)
                lines.put(f"<{address.addr_spec}>{comma}")
            else:
                lines.put(f"{address.addr_spec}{comma}")
        return lines.fold(policy.linesep)


class _Addresses(_FoldedAddresses, AddressHeader):
    pass


class _UniqueAddresses(_FoldedAddresses, UniqueAddressHeader):
    pass


class _HeaderRegistry(HeaderRegistry):
    """The standard header registry with our Subject and address folding, making each header
    class once: the stock one builds a new class for every header of every message (45 a
    message here, a tenth of its cost)."""

    def __init__(self) -> None:
        super().__init__()
        # Mixins: the registry combines each with BaseHeader, as it does the stock classes.
        self.map_to_type("subject", cast("type[BaseHeader]", _Subject))
        for name in ("from", "sender", "reply-to"):
            self.map_to_type(name, cast("type[BaseHeader]", _UniqueAddresses))
        for name in ("to", "cc", "bcc"):
            self.map_to_type(name, cast("type[BaseHeader]", _Addresses))
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


#: ``email.policy.default`` (header values with CR or LF still raise), with the registry above.
_POLICY = email.policy.default.clone(header_factory=_HeaderRegistry())


def header_text(text: str) -> str:
    """A header value on one line, otherwise exactly as given: each run of control characters
    or line separators (CR, LF, tab, U+2028, ...) becomes one space."""
    return _LINE_BREAKS.sub(" ", text)


def _display_name(name: str) -> str:
    """A display name is a phrase, where RFC 5322 reads any run of white space as one space
    (and ``email.policy.default`` does so even inside an encoded-word): so it is ``one_line``,
    the text with single spaces, which every reader gives back exactly; at most ``_NAME_MAX``
    characters."""
    return one_line(name)[:_NAME_MAX].rstrip()


def _sender(mail_from: str) -> Address | str:
    """The configured sender (``Name <address>``, the name quoted or not) as an Address, so
    its display name is folded like the others; as given if it does not parse."""
    mail_from = header_text(mail_from)
    name, addr = parseaddr(mail_from)
    if not addr or "@" not in addr:
        return mail_from
    try:
        return Address(display_name=_display_name(name), addr_spec=addr)
    except (ValueError, IndexError):
        return mail_from


def _recipients(to: tuple[tuple[str, str], ...]) -> list[Address]:
    return [Address(display_name=_display_name(name), addr_spec=email) for name, email in to]
