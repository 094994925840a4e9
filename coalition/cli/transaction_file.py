"""A CSV file of transactions, as ``coalition import`` reads it: one row per posting,
with the columns of ``POST /transactions`` (SPEC §6).

The file is read twice: once to count its rows, which refuses a file that
cannot be read in full (not UTF-8, not CSV, a column named twice) before
anything is posted; then a slice at a time to post it, so memory does not
grow with the file. It is read strictly, as RFC 4180 writes CSV: a quote
left open is an error, not the rest of the file read into one cell.

What makes a file unreadable is raised as the domain's :class:`Invalid`, which
the command prints as one line, as it does any refusal.
"""

import csv
import re
from contextlib import suppress
from decimal import Decimal

from marshmallow import ValidationError

from coalition.domain.errors import Invalid

# the fields cells past the header, and cells under an unnamed column, are reported under
EXTRA_CELLS = "(cells past the header)"
UNNAMED_CELLS = "(cells under a column with no name)"
CUT_SHORT = "(columns the row ends before)"  # a row's, until misshapen() reports them


def count_rows(source, path, columns, required, from_line: int = 1) -> int:
    """The rows after the header that start on ``from_line`` or after; the header may
    name only ``columns`` and must name each of ``required``. A byte-order mark (Excel's
    "CSV UTF-8") is skipped by the caller's encoding.

    Raises:
        Invalid: the file cannot be read in full; nothing of it is posted.
    """
    try:
        records = _records(source)
        _, header = next(records, (1, []))
        if not any(header):  # an export that wrote nothing has lost what it meant to hold
            raise _Unreadable("it has no header row")
        # unnamed columns (Excel's trailing ",,") are no names: their cells are refused if used
        named = [name for name in header if name]
        repeated = sorted({name for name in named if named.count(name) > 1})
        if repeated:
            raise _Unreadable(f"the header names {', '.join(map(repr, repeated))} more than once")
        # a file of something else would fail on every row, each saying so
        unknown = [name for name in named if name not in columns]
        if unknown:
            raise _Unreadable(_not_columns(unknown, columns))
        # every row would fail for want of it, each saying so
        if missing := [name for name in required if name not in named]:
            named_missing = ", ".join(map(repr, missing))
            column = "column" if len(missing) == 1 else "columns"
            raise _Unreadable(f"the header has no {column} {named_missing}, which every row needs")
        return sum(1 for line, _ in records if line >= from_line)
    except UnicodeDecodeError as error:
        raise Invalid(
            f"{path} is not UTF-8 text ({error.reason}{_first_line_not_utf8(path)}):"
            " save it as CSV UTF-8; nothing was posted"
        ) from None
    except _Unreadable as error:
        raise Invalid(f"{path}: {error}; nothing was posted") from None
    except OSError as error:
        raise Invalid(f"{path} cannot be read: {error}; nothing was posted") from None


def _not_columns(unknown: list[str], columns: list[str]) -> str:
    """Why a header naming ``unknown`` is refused, and, for a file whose columns a
    spreadsheet separated otherwise (";" where the decimal mark is a comma), how."""
    which = "which is not a column" if len(unknown) == 1 else "which are not columns"
    said = (
        f"the header names {', '.join(map(repr, unknown))}, {which} of a transaction "
        f"({', '.join(columns)})"
    )
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        if any(set(header.split(separator)) & set(columns) for header in unknown):
            return f"{said}: its columns are separated by {name}; save it with commas"
    return said


def rows(source, path, from_line: int = 1):
    """Each row after the header that starts on ``from_line`` or after, as a dict, with
    the file line it starts on.

    Raises:
        Invalid: the file changed since it was counted, and can no longer be read.
    """
    try:
        records = _records(source)
        _, header = next(records, (1, []))
        for line, values in records:
            if line >= from_line:
                yield line, _row(header, values)
    except (UnicodeDecodeError, _Unreadable) as error:
        raise Invalid(f"{path} changed while it was imported, and can no longer be read: {error}")


def _row(header: list[str], values: list[str]) -> dict:
    """A row's cells by column; what does not fit the header, under a field that fails it."""
    row = {name: value for name, value in zip(header, values) if name}
    unnamed = [value for name, value in zip(header, values) if not name and value]
    if unnamed:
        row[UNNAMED_CELLS] = unnamed
    if any(values[len(header) :]):  # empty ones, as a spreadsheet's trailing ",", hold nothing
        row[EXTRA_CELLS] = values[len(header) :]
    # a line cut short would post without its last fields
    if missing := [name for name in header[len(values) :] if name]:
        row[CUT_SHORT] = missing
    return row


def misshapen(row: dict) -> ValidationError | None:
    """Why a row that does not fit the header fails: column by column where it ends before
    the header's named columns, and once for cells it fills where the header names none."""
    said = {name: ["the row ends before this column"] for name in row.get(CUT_SHORT, [])}
    for cells in (EXTRA_CELLS, UNNAMED_CELLS):
        if cells in row:
            said[cells] = ["the header names no column for them"]
    return ValidationError(said) if said else None


def request_body(row: dict) -> dict:
    """A row as the JSON body it stands for: empty cells left out, points as integers
    (a negative one too, so that it is refused for its value, as in JSON)."""
    body = {field: value for field, value in row.items() if value}
    points = body.get("points", "")
    if re.fullmatch("-?[0-9]+", points):  # "٣" or "３" is no more a number here than in JSON
        # through Decimal, which reads any length, where int() stops at 4,300 digits:
        # a longer cell is a number refused for its value, not for its form
        body["points"] = int(Decimal(points))
    return body


def _first_line_not_utf8(path) -> str:
    """Where a file that does not decode first stops being UTF-8, as ", line N" (the
    decoder reads it in blocks, so its error says where in a block, not in the file).
    Lines end as the CSV reader ends them (CR, LF or both); Latin-1 reads any byte."""
    with suppress(OSError), open(path, encoding="latin-1", newline=None) as text:
        for number, line in enumerate(text, start=1):
            try:
                line.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                return f", line {number}"
    return ""


class _Unreadable(Exception):
    """What makes the file unreadable as CSV, and where."""


def _records(source):
    """Each row that is not blank, with the line it starts on (a quoted cell may span lines).
    A row of empty cells (a spreadsheet's empty row, saved as ",,,,") is blank too."""
    reader = csv.reader(source, strict=True)
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader, None)
        except csv.Error as error:
            raise _Unreadable(f"the row starting on line {line} is not CSV: {error}") from None
        if values is None:
            return
        if any(values):
            yield line, values
