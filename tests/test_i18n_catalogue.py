"""The message catalogue: compiled copies are never read stale, no id is there twice, and every
id the code and the pages use has its Danish."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from onboarding import i18n

HEADER = (
    'msgid ""\nmsgstr ""\n"Language: da\\n"\n"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n'
    '"Content-Type: text/plain; charset=utf-8\\n"\n\n'
)


def _catalogue(folder: Path, text: str) -> None:
    po = folder / "da" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True, exist_ok=True)
    po.write_text(HEADER + text, encoding="utf-8")


def test_catalogue_compiled_copy_follows_an_edited_po(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited .po is read afresh (its compiled copy is named by its digest), and the copy
    of the earlier text is removed; copies go to the cache folder, never the package."""
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ONBOARDING_CACHE_DIR", str(cache))
    _catalogue(tmp_path, 'msgid "Hello"\nmsgstr "Hej"\n')
    i18n.translations.cache_clear()
    try:
        assert i18n.gettext("da", "Hello") == "Hej"
        first = list(cache.glob("messages-da-*.mo"))
        assert len(first) == 1
        _catalogue(tmp_path, 'msgid "Hello"\nmsgstr "Goddag"\n')
        i18n.translations.cache_clear()
        assert i18n.gettext("da", "Hello") == "Goddag"
        i18n.translations.cache_clear()
        assert i18n.gettext("da", "Hello") == "Goddag"  # now from the compiled copy
        copies = list(cache.glob("messages-da-*.mo"))
        assert len(copies) == 1 and copies != first
        assert not list(tmp_path.glob("da/**/*.mo"))  # nothing written into the package
    finally:
        i18n.translations.cache_clear()


@pytest.mark.parametrize("lang", ["da", "en"])
def test_catalogue_has_no_id_twice(lang: str) -> None:
    """No (context, message id) is in a catalogue twice (merges append at the end)."""
    raw = (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
    ids = re.findall(r'(?:msgctxt "((?:[^"\\]|\\.)*)"\n)?msgid "((?:[^"\\]|\\.)*)"\n', raw)
    twice = [k for k, n in Counter(ids).items() if n > 1 and k != ("", "")]
    assert not twice


def test_catalogue_every_danish_placeholder_matches_the_id() -> None:
    """A Danish text uses exactly the placeholders of its message id (a typo would raise)."""
    from babel.messages import pofile

    path = i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = pofile.read_po(fh, locale="da")
    wrong = []
    for m in catalog:
        if not m.id or not m.string:
            continue
        ids = m.id if isinstance(m.id, tuple | list) else (m.id,)
        strings = m.string if isinstance(m.string, tuple | list) else (m.string,)
        want = set(re.findall(r"%\((\w+)\)", " ".join(ids)))
        for s in strings:
            if s and set(re.findall(r"%\((\w+)\)", s)) - want:
                wrong.append((m.id, s))
    assert not wrong


#: The calls whose first (or, for ``gettext(lang, ...)``, second) argument is a message id.
_ID_CALLS = {"Message", "M", "_", "gettext", "ngettext", "N_", "t", "tn"}


def _literal_ids(root: Path) -> list[tuple[str, int, str]]:
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in _ID_CALLS:
                continue
            for arg in node.args[:2]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((f"{path.relative_to(root.parent)}", node.lineno, arg.value))
                    break
    return found


def test_catalogue_every_message_id_in_the_code_has_danish() -> None:
    """Every sentence the code hands to the catalogue by a literal id has a Danish
    translation (a new message without one fails here, naming file and line); ids without a
    word (layout such as '%(lines)s') need none."""
    from babel.messages.pofile import read_po

    root = Path(i18n.__file__).resolve().parents[1]
    with open(root / "onboarding" / "locale" / "da" / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalogue = read_po(f)
    translated = {
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalogue
        if m.id and (m.string if isinstance(m.string, str) else m.string[0])
    }
    ids = _literal_ids(root / "onboarding") + _literal_ids(root / "notifications")
    for page in sorted((root / "onboarding" / "web" / "templates").glob("*.html")):
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            ids += [(page.name, n, text) for text in re.findall(r'\b_\("([^"]+)"', line)]
    assert len(ids) > 300  # the walk sees the code's and the pages' messages
    missing = [
        f"{where}:{line}: {text!r}"
        for where, line, text in ids
        if re.search(r"[A-Za-z]{2}", re.sub(r"%\(\w+\)[sd]", "", text)) and text not in translated
    ]
    assert missing == []


def _later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalogue's clock 20 s ahead: a .po written now is old enough for its state to be
    recorded (i18n._RACY_NS)."""
    import time

    monkeypatch.setattr(i18n, "_now_ns", lambda: time.time_ns() + 10 * i18n._RACY_NS)


def test_catalogue_state_is_read_without_the_po_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a .po has been read, the next process reads its unpacked state (no hashing, no
    .mo parsing): the same translations, plurals included, even with the compiled copy gone."""
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ONBOARDING_CACHE_DIR", str(cache))
    _catalogue(
        tmp_path,
        'msgid "Hello"\nmsgstr "Hej"\n\n'
        'msgid "one track"\nmsgid_plural "%(n)s tracks"\nmsgstr[0] "ét spor"\n'
        'msgstr[1] "%(n)s spor"\n\nmsgctxt "role"\nmsgid "vendor"\nmsgstr "leverandør"\n',
    )
    _later(monkeypatch)
    i18n.translations.cache_clear()
    try:
        parsed = i18n.translations("da")  # from the .po: records the state
        assert len(list(cache.glob("messages-da-*.state"))) == 1
        for mo in cache.glob("messages-da-*.mo"):
            mo.unlink()
        i18n.translations.cache_clear()
        state = i18n.translations("da")
        assert state is not parsed
        assert not list(cache.glob("messages-da-*.mo"))  # nothing compiled again
        assert state.gettext("Hello") == "Hej"
        assert [state.ngettext("one track", "%(n)s tracks", n) for n in (0, 1, 2)] == [
            "%(n)s spor", "ét spor", "%(n)s spor"
        ]
        assert state.pgettext("role", "vendor") == "leverandør"
        assert state.gettext("Unknown") == "Unknown"
    finally:
        i18n.translations.cache_clear()


def test_catalogue_state_not_trusted_after_an_edit_of_the_same_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit that keeps the .po's size and even sets its mtime back is read afresh (its
    ctime changed); a .po written just now records no state at all (its next edit could
    keep its times)."""
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ONBOARDING_CACHE_DIR", str(cache))
    po = tmp_path / "da" / "LC_MESSAGES" / "messages.po"
    _catalogue(tmp_path, 'msgid "Hello"\nmsgstr "Hej"\n')
    i18n.translations.cache_clear()
    try:
        assert i18n.gettext("da", "Hello") == "Hej"
        assert not list(cache.glob("*.state"))  # too new to be told apart from its next edit
        _later(monkeypatch)
        i18n.translations.cache_clear()
        assert i18n.gettext("da", "Hello") == "Hej"
        assert len(list(cache.glob("*.state"))) == 1
        before = po.stat()
        _catalogue(tmp_path, 'msgid "Hello"\nmsgstr "Hoj"\n')  # same size
        import os

        os.utime(po, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = po.stat()
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert after.st_ctime_ns != before.st_ctime_ns  # (a file system with ns-fine times)
        i18n.translations.cache_clear()
        assert i18n.gettext("da", "Hello") == "Hoj"
    finally:
        i18n.translations.cache_clear()
