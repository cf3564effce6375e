"""Reading CSV files as users export them: encodings, separators, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from onboarding.csvio import read_csv, read_csv_all
from onboarding.errors import InputError

ROWS = [("København", "Region Hovedstaden"), ("Køge", "Region Sjælland"), ("Æbeltoft", "")]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _error(path: Path, *columns: str, optional: tuple[str, ...] = ()) -> str:
    with pytest.raises(InputError) as info:
        read_csv_all(path, columns, optional)
    return str(info.value)


def _table(separator: str, newline: str = "\n") -> str:
    lines = [separator.join(("name", "region"))]
    lines += [separator.join(row) for row in ROWS]
    return newline.join(lines) + newline


@pytest.mark.parametrize(
    ("encoding", "separator", "newline"),
    [
        ("utf-8-sig", ",", "\n"),
        ("cp1252", ",", "\n"),
        ("utf-8", ";", "\r\n"),
        ("utf-8-sig", ";", "\r\n"),
        ("cp1252", ";", "\r\n"),
    ],
)
def test_read_csv_variants_give_identical_rows(
    tmp_path: Path, encoding: str, separator: str, newline: str
) -> None:
    """BOM, Windows-1252, semicolons and CRLF give the same rows as plain UTF-8 with commas."""
    plain = read_csv_all(_write(tmp_path / "plain.csv", _table(",")), ["name", "region"])
    variant = _write(tmp_path / "variant.csv", _table(separator, newline), encoding)
    assert read_csv_all(variant, ["name", "region"]) == plain
    assert plain[0] == (2, {"name": "København", "region": "Region Hovedstaden"})


def test_read_csv_is_lazy_iterator(tmp_path: Path) -> None:
    """read_csv yields (line, row) pairs one at a time."""
    rows = read_csv(_write(tmp_path / "a.csv", _table(",")), ["name", "region"])
    assert next(rows) == (2, {"name": "København", "region": "Region Hovedstaden"})


def test_read_csv_header_matches_case_insensitively(tmp_path: Path) -> None:
    """Header names are stripped and matched regardless of case; row keys are lower case."""
    path = _write(tmp_path / "a.csv", " Name ;REGION\n Køge ; Region Sjælland \n")
    assert read_csv_all(path, ["name"], ["region"]) == [
        (2, {"name": "Køge", "region": "Region Sjælland"})
    ]


def test_read_csv_missing_optional_column_is_empty(tmp_path: Path) -> None:
    """An optional column absent from the file appears as an empty string in every row."""
    path = _write(tmp_path / "a.csv", "name\nKøge\n")
    assert read_csv_all(path, ["name"], ["region"]) == [(2, {"name": "Køge", "region": ""})]


def test_read_csv_skips_blank_rows(tmp_path: Path) -> None:
    """Blank lines and Excel's separator-only rows are skipped without shifting line numbers."""
    path = _write(tmp_path / "a.csv", "name;region\n\nKøge;x\n;\n\nHorsens;y\n")
    assert [line for line, _ in read_csv_all(path, ["name", "region"])] == [3, 6]


def test_read_csv_multiline_cell_keeps_physical_line_numbers(tmp_path: Path) -> None:
    """A quoted cell spanning lines does not shift the line numbers of later rows or errors."""
    path = _write(tmp_path / "a.csv", 'name,region\n"Køge\nby\nnord",x\nHorsens,y\nbad\n')
    rows = read_csv(path, ["name", "region"])
    assert next(rows) == (2, {"name": "Køge\nby\nnord", "region": "x"})
    assert next(rows) == (5, {"name": "Horsens", "region": "y"})
    with pytest.raises(InputError, match=r"a\.csv:6: too few cells: expected 2, got 1"):
        next(rows)


def test_read_csv_too_many_cells_names_line(tmp_path: Path) -> None:
    """A row with an extra non-empty cell is refused with its line number."""
    path = _write(tmp_path / "a.csv", "name,region\nKøge,x\nHorsens,y,z\n")
    assert _error(path, "name", "region") == f"{path}:3: too many cells: expected 2, got 3"


def test_read_csv_trailing_empty_cells_are_ignored(tmp_path: Path) -> None:
    """Empty cells after the last column (trailing separators) are not an error."""
    path = _write(tmp_path / "a.csv", "name;region;;\nKøge;x;;\n")
    assert read_csv_all(path, ["name", "region"]) == [(2, {"name": "Køge", "region": "x"})]


def test_read_csv_missing_column_names_it(tmp_path: Path) -> None:
    """A required column absent from the header is named with line 1."""
    path = _write(tmp_path / "a.csv", "name\nKøge\n")
    assert _error(path, "name", "region") == (
        f"{path}:1: column region: missing (expected: name, region)"
    )


def test_read_csv_unknown_column_names_it(tmp_path: Path) -> None:
    """An unexpected column is refused unless allow_extra is set."""
    path = _write(tmp_path / "a.csv", "name,colour\nKøge,red\n")
    assert _error(path, "name") == f"{path}:1: column colour: unknown column (expected: name)"
    assert read_csv_all(path, ["name"], allow_extra=True) == [
        (2, {"name": "Køge", "colour": "red"})
    ]


def test_read_csv_repeated_column_is_refused(tmp_path: Path) -> None:
    """The same column twice in the header is an error naming it."""
    path = _write(tmp_path / "a.csv", "name,NAME\nKøge,Køge\n")
    assert _error(path, "name") == f"{path}:1: column name: repeated column"


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \n"])
def test_read_csv_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    """A file with no header line is an error at line 1."""
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    assert _error(path, "name") == f"{path}:1: empty file: expected a header line"


def test_read_csv_header_only_gives_no_rows(tmp_path: Path) -> None:
    """A header without data rows is valid and yields nothing."""
    assert read_csv_all(_write(tmp_path / "a.csv", "name\n"), ["name"]) == []


def test_read_csv_unclosed_quote_names_its_line(tmp_path: Path) -> None:
    """An unclosed quote is reported where its record starts, not silently swallowed."""
    path = _write(tmp_path / "a.csv", 'name,region\nKøge,x\n"Horsens,y\nVejle,z\n')
    assert "a.csv:3: quoted cell is not closed" in _error(path, "name", "region")


def test_read_csv_undecodable_bytes_name_line(tmp_path: Path) -> None:
    """Bytes that are neither UTF-8 nor Windows-1252 are reported with their line."""
    path = tmp_path / "a.csv"
    path.write_bytes(b"name\nK\xf8ge\nx\x81\n")
    assert _error(path, "name") == f"{path}:3: not UTF-8 or Windows-1252 text"


def test_read_csv_missing_file_is_input_error(tmp_path: Path) -> None:
    """A file that cannot be read is a user error naming it, not a crash."""
    path = tmp_path / "nowhere.csv"
    assert _error(path, "name") == f"{path}: cannot read: No such file or directory"
