"""Mail headers that survive every reader: Subject and display names as whole RFC 2047 words.

Every Subject and display name must come back as exactly the text that went in, both through
the modern parser (``email.policy.default``) and the legacy one (``decode_header`` +
``make_header``), from the bytes written to an ``.eml`` file and from the bytes smtplib sends.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.render import Attachment, Rendered, build_message, due_calendar, one_line
from tests.test_demo import Demo, _run_demo

# --- what the tests read the bytes with ------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")


def _unfold(raw: str) -> str:
    """RFC 5322 unfolding: a line break followed by white space is removed (the space stays)."""
    return _FOLD.sub("", raw)


def _legacy(raw: str) -> str:
    """What a reader using ``email.header`` sees: unfold, then decode the encoded-words."""
    return str(make_header(decode_header(_unfold(raw))))


def _legacy_names(raw: str) -> list[tuple[str, str]]:
    """An address header read the legacy way: split into addresses, then decode each name."""
    return [(_legacy(name), addr) for name, addr in getaddresses([_unfold(raw)])]


def _modern(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _names(msg: EmailMessage, header: str) -> list[tuple[str, str]]:
    return [(a.display_name, a.addr_spec) for a in msg[header].addresses]


def _smtp_bytes(msg: EmailMessage) -> Iterator[bytes]:
    """The bytes smtplib would send: its own flattening, and one with ``policy.SMTP``."""
    for policy in (None, email.policy.SMTP):
        buf = io.BytesIO()
        gen = BytesGenerator(buf) if policy is None else BytesGenerator(buf, policy=policy)
        gen.flatten(msg, linesep="\r\n")
        yield buf.getvalue()


def _header_block(data: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]


def _field(data: bytes, name: str) -> str:
    """One header field as written, folding included."""
    found = re.search(
        rf"^{name}:.*?\r?\n(?![ \t])".encode(), _header_block(data) + b"\n", re.M | re.S
    )
    assert found is not None
    return found.group().decode("ascii")


def _quoted(name: str) -> str:
    """A display name as an operator would write it in the config: a quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the property --------------------------------------------------------------------------

_PIECES = [
    *"æøåÆØÅ", *"abcxyzKOMBIT0129", " ", "  ", "   ", *".,:;!?'\"()<>[]@\\/_-=+*%#&~^|{}`$",
    "=?", "?=", "=?utf-8?q?Drag=C3=B8r?=", "=?utf-8?b?w6Y=?=", "?==?", "–", "—", "·", "…", "€",
    "é", "ü", "ñ", "ß", "Ł", "ş", "😀", "👩‍💻", "🇩🇰", "日本語", "中文", "한국어", "Ωμέγα", "Ж",
    "\u00a0", "\u200b", "\ufeff", "\u2028", "\x85", "\t", "\r\n", "\n",
    "Dragør", "Hillerød", "Frederikssund", "Påmindelse:", "leverandøren", "Formpipe Acadre",
]

_TEXT = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join).map(lambda s: s[:300])


def _expected(text: str) -> str:
    """A header value is one line: each run of control characters (CR, LF, tab) becomes one
    space; every other character, spaces included, is kept exactly."""
    return _CONTROL.sub(" ", text)


def _name(text: str) -> str:
    """A display name is a phrase, where any run of white space means one space (RFC 5322;
    the modern parser collapses them even inside an encoded-word): single spaces, no space
    at either end, every other character exactly; at most 100 characters."""
    return " ".join(text.split())[:100].rstrip()


def _message(subject: str, names: list[str], sender: str) -> EmailMessage:
    return build_message(
        Rendered(subject=subject, text="tekst", html="<p>tekst</p>"),
        mail_from=f"{_quoted(sender)} <onboarding@kombit.test>",
        to=[(name, f"p{i}@kombit.test") for i, name in enumerate(names)],
        message_id="<t1.e2.reminder.abc@kombit.test>",
        date_sent=datetime(2021, 8, 18, 6, 0, tzinfo=UTC),
        attachments=[Attachment("frist.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")],
    )


def _check(data: bytes, subject: str, names: list[str], sender: str) -> None:
    """Both decoders give back exactly the text; no line is longer than 998 octets, and the
    Subject's no longer than 78."""
    for line in data.splitlines():
        assert len(line) <= 998
    for line in _field(data, "Subject").splitlines():
        assert len(line) <= 78, line
    addresses = [(_name(n), f"p{i}@kombit.test") for i, n in enumerate(names)]
    modern = _modern(data)
    assert str(modern["Subject"]) == _expected(subject)
    assert _names(modern, "To") == addresses
    assert _names(modern, "From") == [(_name(sender), "onboarding@kombit.test")]
    legacy: Message = email.message_from_bytes(data)
    assert _legacy(str(legacy["Subject"])) == _expected(subject)
    assert _legacy_names(str(legacy["To"])) == addresses
    assert _legacy_names(str(legacy["From"])) == [(_name(sender), "onboarding@kombit.test")]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_TEXT, names=st.lists(_TEXT, min_size=1, max_size=3), sender=_TEXT)
def test_mail_headers_decode_to_exactly_the_text_both_ways(
    subject: str, names: list[str], sender: str
) -> None:
    """Subject, To and From names of any Danish or other text, punctuation and length up to
    300 come back exactly from the .eml bytes and from what smtplib sends, with both decoders."""
    msg = _message(subject, names, sender)
    _check(msg.as_bytes(), subject, names, sender)
    for data in _smtp_bytes(msg):
        _check(data, subject, names, sender)


@pytest.mark.parametrize(
    "subject",
    [
        # Subjects the demo garbled or glued (issue 10), and one a space was lost from.
        "Påmindelse: 1. Aftal tilslutningsdato med leverandøren – Dragør · Formpipe Acadre "
        "(frist 29. marts 2021)",
        "Overskredet frist (trin 2): 2. Underskriv tilslutningsaftale – Hillerød · KMD Momentum",
        "Meddelelse: Åbning af visning i SAPA: Frederikssund – Netcompany Nexus · Ørestad",
        "x" * 300,
        "a" + " " * 100 + "b",
        " leading and trailing ",
        "plain ascii =? not an encoded word ?=",
    ],
)
def test_mail_headers_known_bad_subjects_come_back_exactly(subject: str) -> None:
    """The subjects CPython's folding broke in the demo decode exactly both ways."""
    msg = _message(subject, ["Søren Ærø"], "KOMBIT onboarding")
    for data in (msg.as_bytes(), *_smtp_bytes(msg)):
        _check(data, subject, ["Søren Ærø"], "KOMBIT onboarding")


_EW = re.compile(r"=\?[^?\s]*\?[qQbB]\?[^?\s]*\?=")


def test_mail_headers_encoded_words_are_whole_and_apart() -> None:
    """No encoded-word is split across lines or glued to a neighbour; a Subject's are at most
    75 characters, and no two of a display name touch (Python's parser would add a space)."""
    subject = "Påmindelse: " + "Dragør – Hillerød · Ærø " * 12
    names = ["Åse Ødegård " * 10, "Søren Kristian Ærø-Østergaard", "Ærø Kommune · Ø"]
    data = _message(subject, names, "KOMBIT Ærø").as_bytes()
    folded = _unfold(_field(data, "Subject"))
    words = _EW.findall(folded)
    assert len(words) > 4 and all(len(w) <= 75 for w in words)
    for header in ("Subject", "To", "From"):
        text = _unfold(_field(data, header))
        assert "?==?" not in text
        for found in _EW.finditer(text):  # each stands alone, between white space or line ends
            assert text[found.start() - 1] in " \t"
            assert text[found.end()] in " \r\n<"
        if header != "Subject":
            assert not re.search(_EW.pattern + r"\s+" + _EW.pattern, text), text


def test_mail_headers_real_names_keep_lines_short() -> None:
    """Names as the registry holds them (Danish, hyphens, several words) and the demo's
    subjects keep every header line within 78 octets."""
    names = ["Søren Kristian Ærø-Østergaard", "Åse Bøgh Sørensen", "Kim Koordinator",
             "Projektleder i Lyngby-Taarbæk", "Ib Ørsted (KOMBIT)"]
    subject = ("Overskredet frist (trin 3): 1. Aftal tilslutningsdato med leverandøren – "
               "Lyngby-Taarbæk · Formpipe Acadre (frist 29. marts 2021)")
    data = _message(subject, names, "KOMBIT onboarding · Ørestad").as_bytes()
    for line in _header_block(data).splitlines():
        assert len(line) <= 78, line
    _check(data, subject, names, "KOMBIT onboarding · Ørestad")


def test_mail_headers_ascii_subject_stays_readable() -> None:
    """A plain ASCII subject is written as text (folded at spaces), not encoded."""
    subject = "Reminder: step 1 " + "word " * 30 + "end"
    block = _header_block(_message(subject, ["Kim Hansen"], "KOMBIT").as_bytes()).decode()
    assert "=?" not in block
    assert "To: Kim Hansen <p0@kombit.test>" in block


def test_mail_headers_cr_lf_never_make_a_header() -> None:
    """CR/LF in a subject or a name never becomes a header of its own."""
    msg = _message("Hej\r\nBcc: evil@example.com", ["Mallory\r\nBcc: evil@example.com"], "X\nY")
    for data in (msg.as_bytes(), *_smtp_bytes(msg)):
        parsed = _modern(data)
        assert parsed["Bcc"] is None
        assert str(parsed["Subject"]) == "Hej Bcc: evil@example.com"
        assert _names(parsed, "To") == [("Mallory Bcc: evil@example.com", "p0@kombit.test")]
    assert one_line("a\r\n  b\t") == "a b"
    with pytest.raises(ValueError):
        msg["X-Test"] = "a\r\nBcc: evil@example.com"


def test_mail_headers_ics_part_says_utf8_and_its_method() -> None:
    """The .ics part's Content-Type names charset=utf-8 and the iCalendar method."""
    ics = due_calendar(uid="u@kombit.test", summary="Frist for Dragør", description="Ærø",
                       due=datetime(2021, 8, 18).date(), stamp=datetime(2021, 8, 18, tzinfo=UTC),
                       lang="da")
    msg = build_message(
        Rendered(subject="s", text="t", html="<p>t</p>"),
        mail_from="onboarding@kombit.test", to=[("", "a@kombit.test")],
        message_id="<m@kombit.test>", date_sent=datetime(2021, 8, 18, tzinfo=UTC),
        attachments=[Attachment("frist.ics", ics)],
    )
    [part] = list(_modern(msg.as_bytes()).iter_attachments())
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("charset") == "utf-8"
    assert part.get_param("method") == "PUBLISH"
    assert "Dragør" in part.get_content()


# --- the demo's .eml files -------------------------------------------------------------------


def _both_ways(data: bytes) -> list[tuple[str, str]]:
    """(modern, legacy) reading of the Subject and of every From and To display name."""
    modern = _modern(data)
    legacy = email.message_from_bytes(data)
    pairs = [(str(modern["Subject"]), _legacy(str(legacy["Subject"])))]
    for header in ("From", "To"):
        pairs += zip(
            [n for n, _ in _names(modern, header)],
            [n for n, _ in _legacy_names(str(legacy[header]))],
            strict=True,
        )
    return pairs


@pytest.fixture(scope="module")
def demo_mail(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The .eml files of one demo run (the slow part: a whole quarter)."""
    demo: Demo = _run_demo(tmp_path_factory.mktemp("demo-mail") / "out")
    files = sorted((demo.directory / "onboarding-outbox").glob("*.eml"))
    assert len(files) > 100
    return files


def test_mail_headers_every_demo_email_decodes_the_same_both_ways(demo_mail: list[Path]) -> None:
    """Every Subject and From/To display name the demo writes reads the same with both
    decoders and holds no encoded-word after decoding."""
    problems: list[str] = []
    for path in demo_mail:
        data = path.read_bytes()
        try:
            pairs = _both_ways(data)
        except (UnicodeDecodeError, ValueError) as exc:  # a split encoded-word
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        for new, old in pairs:
            if new != old or "=?" in new:
                problems.append(f"{path.name}: {new!r} / {old!r}")
        for line in data.splitlines():
            if len(line) > 998:
                problems.append(f"{path.name}: a line of {len(line)} octets")
    assert problems == [], f"{len(problems)} of {len(demo_mail)}: {problems[:5]}"
