"""The export files: records (reports/schemas.py) written as CSV for spreadsheets, or as NDJSON.

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

from callstats.reports.schemas import SPREADSHEET_PLAIN, ExportFormat

BOM = codecs.BOM_UTF8
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPES: dict[ExportFormat, str] = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}

Records = Iterable[dict[str, Any]]
Encoder = Callable[[Records], bytes]


def spreadsheet_cell(value: object) -> object:
    """One CSV cell: None empty, objects as JSON, text that could start a formula behind a `'`."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = orjson.dumps(value).decode()
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_header(fields: Sequence[str]) -> bytes:
    """The file's first bytes: the BOM and the header row."""
    return BOM + csv_lines([list(fields)])


def csv_lines(rows: Iterable[Sequence[object]]) -> bytes:
    """Rows as CSV (RFC 4180 quoting, CRLF), UTF-8."""
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode()


def csv_encoder(fields: Sequence[str], plain: Collection[str]) -> Encoder:
    """Records as CSV rows, their values in `fields` order: those of `plain` fields (numbers, the API's
    own words, ISO times: nothing a spreadsheet evaluates) as they are, every other one through
    spreadsheet_cell. The csv module writes None as an empty cell."""
    cells = [(name, name in plain) for name in fields]

    def encode(records: Records) -> bytes:
        return csv_lines(
            [
                [record[name] if is_plain else spreadsheet_cell(record[name]) for name, is_plain in cells]
                for record in records
            ]
        )

    return encode


def ndjson_lines(records: Records) -> bytes:
    """Records as NDJSON: one compact JSON object per line."""
    return b"".join(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in records)


def file_start(fmt: ExportFormat, fields: Sequence[str]) -> bytes:
    """What the file holds before its first row: the CSV's BOM and header; nothing for NDJSON."""
    return csv_header(fields) if fmt == "csv" else b""


def encoder(fmt: ExportFormat, fields: Sequence[str]) -> Encoder:
    """The writer of one chunk of records in `fmt`."""
    return csv_encoder(fields, SPREADSHEET_PLAIN) if fmt == "csv" else ndjson_lines


def file_name(campaign_id: str, kind: str, fmt: ExportFormat) -> str:
    """`campaign-<id>-contacts.csv` and the like."""
    return f"campaign-{campaign_id}-{kind}.{fmt}"
