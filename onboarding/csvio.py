"""Reading the CSV files people export from Excel, LibreOffice or a script.

Municipal spreadsheets arrive as UTF-8 (with or without a BOM) or as Windows-1252, separated by
commas or, in a Danish locale, semicolons. This module hides those differences and reports every
problem as ``FILE:LINE: column NAME: problem`` with the *physical* line number in the file, so a
user can jump straight to it in an editor even when a quoted cell spans several lines.
"""

from __future__ import annotations

import csv
import io
import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from onboarding.errors import InputError
from onboarding.i18n import Message

__all__ = ["HEADER_ALIASES", "read_csv", "read_csv_all", "row_error", "safe_cell", "safe_row"]

PathLike = str | os.PathLike[str]

#: A cell starting with one of these is a formula to a spreadsheet (CSV injection); tab and CR
#: too, as some spreadsheets skip them before looking for one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The longest cell an import reads (a note, a name): longer ones are refused, not stored.
MAX_CELL = 4000

#: Other headers each column is known by: Danish as a municipality writes it in Excel, and
#: English variants. Every import accepts them for the columns it reads (docs/reports.md).
#: Headers are compared folded (case, spaces, hyphens, underscores and accents aside; æ, ø, å
#: also as ae, oe, aa), so "E-mail", "e mail" and "EMAIL" are one header.
HEADER_ALIASES: Mapping[str, tuple[str, ...]] = {
    "municipality": ("kommune", "kommunenavn", "kommunekode", "kommunenr", "kommunenummer"),
    "system": ("fagsystem", "it-system"),
    "vendor": ("leverandør", "leverandor"),
    "status": ("tilstand",),
    "date": ("dato",),
    "contract": ("kontrakt", "kontrakttype"),
    "role": ("rolle",),
    "name": ("navn",),
    "email": ("e-mail", "mail", "e-mailadresse", "mailadresse", "email address"),
    "code": ("kode",),
    "region": ("region",),
    "population": ("indbyggere", "indbyggertal", "befolkning", "befolkningstal"),
    "population_year": ("år", "befolkningsår"),
    "category": ("kategori",),
    "kind": ("type", "art"),
    "index": ("indeks",),
    "bob": ("bob-visning",),
    "note": ("bemærkning", "bemærkninger", "kommentar"),
}


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run as a formula: one starting with ``=``, ``+``,
    ``-``, ``@``, tab or CR gets a leading apostrophe (spreadsheets hide it). Numbers and
    other values pass unchanged, so a negative number stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    """``safe_cell`` for every cell of a row about to be written to an exported CSV file."""
    return [safe_cell(v) for v in values]


def row_error(path: PathLike, line: int, problem: str, column: str | None = None) -> InputError:
    """An ``InputError`` in the one message form every import uses (``problem`` a
    ``Message`` where it has been translated)."""
    params = {"path": str(path), "line": str(line), "problem": problem}
    if column:
        return InputError(
            Message(
                "%(path)s:%(line)s: column %(column)s: %(problem)s", {**params, "column": column}
            )
        )
    return InputError(Message("%(path)s:%(line)s: %(problem)s", params))


def read_csv(
    path: PathLike,
    required: Sequence[str],
    optional: Sequence[str] = (),
    allow_extra: bool = False,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` for every data row; ``line`` is where the record starts (header = 1).

    Header names match ``required``/``optional`` case-insensitively, or by one of their
    ``HEADER_ALIASES`` (and the caller's ``aliases``, e.g. a workflow field's label); row keys are
    the names of ``required``/``optional`` in lower case. Optional columns missing from the file
    appear as ``""`` so every row has the same keys. Cells are stripped. Blank rows (including
    Excel's ``;;;``) are skipped.
    Raises ``InputError`` for an empty or undecodable file, missing, unknown or repeated columns,
    and rows with too many or too few cells.
    """
    text = _decode(path, _read(path))
    records = _records(path, text, _delimiter(text))
    header_line, header = _first_record(path, records)
    columns = _columns(path, header_line, header, required, optional, allow_extra, aliases)
    missing_optional = [name.lower() for name in optional if name.lower() not in columns]
    for line, cells in records:
        row = _row(path, line, cells, columns)
        for name in missing_optional:
            row[name] = ""
        yield line, row


def read_csv_all(
    path: PathLike,
    required: Sequence[str],
    optional: Sequence[str] = (),
    allow_extra: bool = False,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[int, dict[str, str]]]:
    """``read_csv`` as a list: imports validate the whole file before writing anything."""
    return list(read_csv(path, required, optional, allow_extra, aliases))


def _read(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        # A missing or unreadable file is the user's to fix, not a crash.
        raise InputError(
            Message(
                "%(path)s: cannot read: %(reason)s",
                {"path": str(path), "reason": exc.strerror or str(exc)},
            )
        ) from exc


def _decode(path: PathLike, data: bytes) -> str:
    # UTF-8 first and strictly: cp1252 decodes almost any byte string, so trying it first would
    # silently turn a UTF-8 "ø" into "Ã¸".
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise row_error(
            path, 1, Message("UTF-16 text: save it as CSV UTF-8 or Windows-1252 instead")
        )
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise row_error(
            path, line, Message("a NUL byte: not a text file (or UTF-16 without a BOM)")
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise row_error(path, line, Message("not UTF-8 or Windows-1252 text")) from exc


def _delimiter(text: str) -> str:
    """``;`` when the header line has more semicolons than commas (a Danish Excel export)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    return ";" if header.count(";") > header.count(",") else ","


def _records(path: PathLike, text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the physical line each one starts on.

    ``reader.line_num`` is the line a record *ends* on, so a record starts one line after the
    previous one ended; that stays right when a quoted cell spans lines.
    """
    # strict=True: an unclosed quote would otherwise swallow the rest of the file silently.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    previous_end = 0
    while True:
        start = previous_end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise row_error(path, start, _csv_problem(exc)) from exc
        previous_end = reader.line_num
        if any(cell.strip() for cell in cells):
            yield start, cells


def _csv_problem(exc: csv.Error) -> str:
    if "unexpected end of data" in str(exc):
        return Message("quoted cell is not closed before the end of the file")
    return Message("malformed CSV: %(detail)s", {"detail": str(exc)})


def _first_record(
    path: PathLike, records: Iterator[tuple[int, list[str]]]
) -> tuple[int, list[str]]:
    try:
        return next(records)
    except StopIteration:
        raise row_error(path, 1, Message("empty file: expected a header line")) from None


def _columns(
    path: PathLike,
    line: int,
    header: list[str],
    required: Sequence[str],
    optional: Sequence[str],
    allow_extra: bool,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The column names, in file order, after checking them against the spec: each known
    header (or alias) as its name in ``required``/``optional`` in lower case."""
    names = [cell.strip() for cell in header]
    # Spreadsheets sometimes export empty trailing header cells; they carry no column.
    while names and not names[-1]:
        names.pop()
    known = [name.lower() for name in (*required, *optional)]
    lookup = _header_lookup(known, aliases or {})
    expected = ", ".join(known)
    columns: list[str] = []
    seen: dict[str, str] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise row_error(path, line, Message("empty column name"), column=str(position))
        column = lookup.get(_header_key(name))
        if column is None:
            if not allow_extra:
                hint = _closest_header(name, lookup)
                raise row_error(
                    path,
                    line,
                    Message(
                        "unknown column (expected: %(expected)s)%(closest)s",
                        {"expected": expected, "closest": hint},
                    ),
                    column=name.lower(),
                )
            column = name.lower()
        if column in seen:
            first = seen[column]
            problem = (
                Message("repeated column")
                if first.lower() == name.lower()
                else Message("repeated column (the same column as %(first)s)", {"first": first})
            )
            raise row_error(path, line, problem, column=name.lower())
        seen[column] = name
        columns.append(column)
    for name in required:
        if name.lower() not in seen:
            raise row_error(
                path,
                line,
                Message("missing (expected: %(expected)s)", {"expected": expected}),
                column=name.lower(),
            )
    return columns


_LETTERS = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa"})


def _header_key(text: str) -> str:
    """A header as compared: "E-mail", "e_mail" and "EMAIL" are one; "Leverandør" and
    "leverandoer" too."""
    spelled = text.casefold().translate(_LETTERS)
    decomposed = unicodedata.normalize("NFKD", spelled)
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c))


def _header_lookup(known: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Folded header -> column, for the columns ``known``: a column's own name always wins
    over another column's alias."""
    lookup: dict[str, str] = {}
    for table in (aliases, HEADER_ALIASES):
        for column, names in table.items():
            if column.lower() in known:
                for alias in names:
                    lookup.setdefault(_header_key(alias), column.lower())
    for column in known:
        lookup[_header_key(column)] = column
    return lookup


def _closest_header(name: str, lookup: Mapping[str, str]) -> str:
    import difflib  # only when a name is not found

    close = difflib.get_close_matches(_header_key(name), list(lookup), n=1, cutoff=0.7)
    return Message("; closest: %(closest)s", {"closest": lookup[close[0]]}) if close else ""


def _row(path: PathLike, line: int, cells: list[str], columns: list[str]) -> dict[str, str]:
    values = [cell.strip() for cell in cells]
    if len(values) > len(columns):
        # Empty cells past the last column are trailing separators, not data.
        if any(values[len(columns) :]):
            raise row_error(path, line, _cells("too many", len(columns), len(values)))
        values = values[: len(columns)]
    if len(values) < len(columns):
        raise row_error(path, line, _cells("too few", len(columns), len(values)))
    for name, value in zip(columns, values, strict=True):
        if len(value) > MAX_CELL:
            raise row_error(
                path,
                line,
                Message(
                    "%(n)s characters; at most %(max)s are allowed",
                    {"n": str(len(value)), "max": str(MAX_CELL)},
                ),
                name,
            )
    return dict(zip(columns, values, strict=True))


def _cells(which: str, expected: int, got: int) -> Message:
    params = {"expected": str(expected), "got": str(got)}
    if which == "too many":
        return Message("too many cells: expected %(expected)s, got %(got)s", params)
    return Message("too few cells: expected %(expected)s, got %(got)s", params)
