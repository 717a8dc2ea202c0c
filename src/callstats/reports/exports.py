"""The export files: rows of values (reports/schemas.py) written as CSV for spreadsheets, or as NDJSON.

CSV: UTF-8 with a byte order mark (Excel reads a CSV without one in the machine's legacy code page),
a header row of the field names, RFC 4180 quoting by the standard library's csv module (CRLF line
ends), metadata as JSON in one column, times ISO 8601 UTC, empty cells for nulls. A cell that a
spreadsheet would read as a formula, i.e. starting with `=`, `+`, `-`, `@`, a tab or a carriage
return (OWASP, "CSV Injection"), gets a leading `'`: the spreadsheet shows the text as it is
and does not evaluate it. Every phone starts with `+`, so phones read `'+14155550147` in the file and
`+14155550147`, as text, in the cell (not the number 14155550147). NDJSON: one JSON object per line,
the values exactly as the JSON routes give them.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import orjson

from callstats.reports.schemas import SPREADSHEET_JSON, SPREADSHEET_PLAIN, ExportFormat

BOM = codecs.BOM_UTF8
_FORMULA_STARTS = "=+-@\t\r"
MEDIA_TYPES: dict[ExportFormat, str] = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}

Values = Iterable[Sequence[Any]]
"""Rows of values in their fields' order (reports/schemas.py's contact_values, call_values)."""
Encoder = Callable[[Values], bytes]


def text_cell(value: str | None) -> str | None:
    """A text cell: behind a `'` when it starts as a formula would (None stays None: an empty cell)."""
    if value and value[0] in _FORMULA_STARTS:
        return "'" + value
    return value


def json_cell(value: object) -> str | None:
    """A JSON object's cell: its compact JSON text (starts with `{`, never a formula), None when null."""
    return None if value is None else orjson.dumps(value).decode()


def csv_header(fields: Sequence[str]) -> bytes:
    """The file's first bytes: the BOM and the header row."""
    return BOM + csv_lines([list(fields)])


def csv_lines(rows: Iterable[Sequence[object]]) -> bytes:
    """Rows as CSV (RFC 4180 quoting, CRLF), UTF-8; the csv module writes None as an empty cell."""
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode()


def csv_encoder(fields: Sequence[str], plain: Collection[str], json_fields: Collection[str]) -> Encoder:
    """Rows of values as CSV rows: those of `plain` fields (numbers, the API's own words, ISO times:
    nothing a spreadsheet evaluates) as they are, `json_fields` through json_cell, every other one
    (text) through text_cell."""
    guarded = [
        (index, json_cell if name in json_fields else text_cell)
        for index, name in enumerate(fields)
        if name not in plain
    ]

    def encode(rows: Values) -> bytes:
        cells = []
        for values in rows:
            row = list(values)
            for index, cell in guarded:
                row[index] = cell(row[index])
            cells.append(row)
        return csv_lines(cells)

    return encode


def ndjson_encoder(fields: Sequence[str]) -> Encoder:
    """Rows of values as NDJSON: one compact JSON object per line, keyed by `fields`."""

    def encode(rows: Values) -> bytes:
        return b"".join(
            orjson.dumps(dict(zip(fields, values, strict=False)), option=orjson.OPT_APPEND_NEWLINE)
            for values in rows
        )

    return encode


def file_start(fmt: ExportFormat, fields: Sequence[str]) -> bytes:
    """What the file holds before its first row: the CSV's BOM and header; nothing for NDJSON."""
    return csv_header(fields) if fmt == "csv" else b""


def encoder(fmt: ExportFormat, fields: Sequence[str]) -> Encoder:
    """The writer of one chunk of rows of values in `fmt`."""
    return (
        csv_encoder(fields, SPREADSHEET_PLAIN, SPREADSHEET_JSON) if fmt == "csv" else ndjson_encoder(fields)
    )


def file_name(campaign_id: str, kind: str, fmt: ExportFormat) -> str:
    """`campaign-<id>-contacts.csv` and the like."""
    return f"campaign-{campaign_id}-{kind}.{fmt}"
