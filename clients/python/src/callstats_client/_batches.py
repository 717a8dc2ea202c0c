"""Splitting what a call sends into requests the API takes: events by 1,000, contacts by 10,000 (rows
given as mappings, or a CSV file read with the delimiter rules of the server), each body under the
server's default size limit."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from callstats_client.errors import CallstatsError

MAX_EVENTS_PER_REQUEST = 1_000
MAX_CONTACTS_PER_REQUEST = 10_000
MAX_BODY_BYTES = 4 * 1024 * 1024  # under the server's default CALLSTATS_MAX_BODY_BYTES (5 MiB)
DELIMITERS = (",", ";", "\t", "|")

ContactSource = Iterable[Mapping[str, Any]] | str | os.PathLike[str]


class InvalidCsv(CallstatsError):
    """The CSV file cannot be read (no header, malformed quoting, not in its encoding): nothing was sent."""


@dataclass(frozen=True, slots=True)
class Body:
    """One request's body: bytes, Content-Type, and how many rows or events it carries."""

    content: bytes
    content_type: str
    count: int


def checked_batch_size(batch_size: int, most: int) -> int:
    """`batch_size` when it is 1..most; ValueError otherwise."""
    if not 1 <= batch_size <= most:
        raise ValueError(f"batch_size must be 1 to {most:,}, got {batch_size}")
    return batch_size


def _json_body(key: str, items: list[Mapping[str, Any]]) -> Body:
    content = json.dumps({key: [dict(item) for item in items]}, separators=(",", ":")).encode()
    return Body(content, "application/json", len(items))


def json_batches(key: str, items: Iterable[Mapping[str, Any]], batch_size: int) -> Iterator[Body]:
    """`{key: [...]}` bodies of at most `batch_size` items each, in order."""
    iterator = iter(items)
    while chunk := list(islice(iterator, batch_size)):
        yield _json_body(key, chunk)


def is_path(source: object) -> bool:
    """Whether add_contacts was given a file (a str or path-like) rather than rows."""
    return isinstance(source, str | os.PathLike)


def _sniff(header_line: str) -> str:
    """The delimiter the server would read a header line with: the one of DELIMITERS most often outside
    quotes (the first of equal counts)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return max(DELIMITERS, key=lambda d: counts[d])


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """How a CSV file is read: its delimiter, where the header starts, its data rows."""

    path: Path
    encoding: str
    delimiter: str
    skip_first_line: bool
    rows: int


def csv_layout(path: str | os.PathLike[str], encoding: str) -> CsvLayout:
    """Read the file through once: its delimiter and data row count; InvalidCsv, naming the line, for a
    file the server would refuse whole (so that nothing is sent)."""
    file = Path(path)
    try:
        with file.open(encoding=encoding, newline="") as text:
            first = text.readline()
            hint = first.rstrip("\r\n").strip('"')
            skip = hint.lower().startswith("sep=") and len(hint) == 5
            delimiter = hint[4] if skip else _sniff(first)
            text.seek(0)
            if skip:
                text.readline()
            reader = csv.reader(text, delimiter=delimiter, strict=True)
            if next(reader, None) is None:
                raise InvalidCsv(f"{file}: the file has no header row")
            rows = sum(1 for record in reader if record)
    except csv.Error as exc:
        raise InvalidCsv(f"{file}: line {reader.line_num}: not valid CSV ({exc}); nothing was sent") from None
    except UnicodeDecodeError as exc:
        raise InvalidCsv(f"{file}: not {encoding} text ({exc.reason}); give its encoding") from None
    return CsvLayout(file, encoding, delimiter, skip, rows)


def _csv_text(header: list[str], records: list[list[str]], delimiter: str) -> bytes:
    out = io.StringIO()
    if delimiter != ",":
        out.write(f"sep={delimiter}\r\n")  # the server reads this delimiter whatever the header holds
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(records)
    return out.getvalue().encode("utf-8")


def csv_batches(layout: CsvLayout, batch_size: int) -> Iterator[Body]:
    """text/csv bodies of the file's header plus at most `batch_size` data rows each (fewer when the
    body would pass MAX_BODY_BYTES), rows as the file holds them, blank lines left out."""
    with layout.path.open(encoding=layout.encoding, newline="") as text:
        if layout.skip_first_line:
            text.readline()
        reader = csv.reader(text, delimiter=layout.delimiter, strict=True)
        header = next(reader)
        header_bytes = len(_csv_text(header, [], layout.delimiter))
        records: list[list[str]] = []
        size = header_bytes
        for record in reader:
            if not record:
                continue
            record_bytes = sum(len(cell.encode()) + 3 for cell in record) + 2
            if records and (len(records) == batch_size or size + record_bytes > MAX_BODY_BYTES):
                yield Body(
                    _csv_text(header, records, layout.delimiter), "text/csv; charset=utf-8", len(records)
                )
                records, size = [], header_bytes
            records.append(record)
            size += record_bytes
        if records:
            yield Body(_csv_text(header, records, layout.delimiter), "text/csv; charset=utf-8", len(records))
