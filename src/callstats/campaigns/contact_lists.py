"""Reading an addContacts body into rows: JSON, or CSV in any delimiter, header naming and charset.

CSV files come from CRMs, dialers and spreadsheets: European Excel writes `phone;name`, other
tools tabs or pipes; headers say `Phone Number`, `phone_number` (VICIdial), `mobile`...; files are
windows-1252 or UTF-16 as often as UTF-8. Pure: bytes in, rows out, ValidationFailed (400) when the
body as a whole is unusable (not JSON, malformed CSV, no phone column). Row-level problems (a NUL in a
cell, more values than the header has columns) travel with the row.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from callstats.bodies import nul_free, parse_json
from callstats.campaigns.schemas import MAX_CONTACTS_PER_REQUEST, ContactRow
from callstats.core.text import NUL, NUL_REASON
from callstats.errors import ValidationFailed

DELIMITERS = (",", ";", "\t", "|")
"""The delimiters a CSV may use, preferred in this order when the header counts them equally."""

PHONE_HEADERS = (
    "phone", "phone_number", "phone_no", "mobile", "mobile_phone", "mobile_number", "cell",
    "cell_phone", "cell_number", "telephone", "telephone_number", "tel", "msisdn", "number",
)  # fmt: skip
"""Header names read as the phone column, first match wins; compared case-, space-, `_`- and
`-`-insensitively, so `Phone Number`, `PHONE-NUMBER` and `phonenumber` are `phone_number`."""

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM starts it
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
"""Byte order marks and the charset each names (RFC 3629 section 6, Unicode's BOM FAQ)."""
_SEPARATORS = re.compile(r"[\s_\-.]+")
_SEP_HINT = re.compile(r'"?sep=(.)"?', re.IGNORECASE)
CSV_MEDIA = ("text/csv", "application/csv", "text/tab-separated-values")
"""Content-Types read as CSV."""
JSON_MEDIA = ("application/json",)
"""Content-Types read as JSON (and any `application/*+json`)."""
NEITHER = (
    "body: neither JSON nor a CSV with a phone column; send Content-Type: application/json with"
    ' {"contacts": [{"phone": ...}]}, or Content-Type: text/csv (or application/csv,'
    " text/tab-separated-values) with a header row naming the phone column"
)
"""The 400 for a body without a JSON or CSV Content-Type that is neither."""


class NoPhoneColumn(ValidationFailed):
    """A CSV header without the phone column (a 400 like any ValidationFailed)."""


def contact_rows(body: bytes, content_type: str | None, phone_column: str | None = None) -> list[ContactRow]:
    """The rows of an addContacts body, JSON or CSV; a 400 when the body as a whole is unusable.

    `content_type` is the request's header, None when absent (its `charset` parameter is honoured for
    CSV). A JSON type is read as JSON, a CSV_MEDIA type as CSV; any other (none, `text/plain`, curl
    -d's `application/x-www-form-urlencoded`) as JSON when the body parses as JSON, else as CSV when
    its header names a phone column, else a 400 (NEITHER). `phone_column` names the CSV column
    holding the phones (else one of PHONE_HEADERS).
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if media in CSV_MEDIA:
        rows = csv_rows(decode_csv(body, charset_of(content_type or "")), phone_column)
    elif media in JSON_MEDIA or (media.startswith("application/") and media.endswith("+json")):
        rows = _json_rows(body)
    else:
        rows = _undeclared_rows(body, content_type or "", phone_column)
    if len(rows) > MAX_CONTACTS_PER_REQUEST:
        raise ValidationFailed(f"contacts: at most {MAX_CONTACTS_PER_REQUEST} per request, got {len(rows)}")
    return rows


def _undeclared_rows(body: bytes, content_type: str, phone_column: str | None) -> list[ContactRow]:
    """A body without a JSON or CSV Content-Type: JSON when it parses, else CSV, else NEITHER (400).

    A body starting with `{` or `[` is meant as JSON, so its JSON error is the one reported.
    """
    try:
        return _json_rows(body)
    except ValidationFailed:
        if body.lstrip()[:1] in (b"{", b"["):
            raise
    try:
        text = decode_csv(body, charset_of(content_type))
    except ValidationFailed:
        raise ValidationFailed(NEITHER) from None  # not text, so not CSV either
    try:
        return csv_rows(text, phone_column)
    except NoPhoneColumn:
        if phone_column is not None:
            raise
        raise ValidationFailed(NEITHER) from None


def charset_of(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type header (RFC 9110 section 8.3.1), or None."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def decode_csv(body: bytes, charset: str | None) -> str:
    """The text of a CSV body: in the declared charset, else by its BOM (UTF-8/16/32), else UTF-8.

    Any codec Python knows is accepted (windows-1252, iso-8859-1, utf-16, shift_jis...). Raises
    ValidationFailed naming the charset when it is unknown or the bytes are not text in it.
    """
    encoding = charset or next((name for bom, name in BOMS if body.startswith(bom)), "utf-8-sig")
    try:
        codec = codecs.lookup(encoding)
        text = body.decode(codec.name)
    except LookupError:
        raise ValidationFailed(f"body: unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        hint = "" if charset else " (declare it, e.g. Content-Type: text/csv; charset=windows-1252)"
        raise ValidationFailed(
            f"body: not {charset or 'UTF-8'} text (at byte offset {exc.start}){hint};"
            " the CSV's charset is needed"
        ) from None
    return text.removeprefix("\ufeff")


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a CSV, from its header line: the one of DELIMITERS found most outside quotes.

    The header alone is read because data cells often hold commas (`Smith, Jane` in a `;` file) while
    header names rarely do; a one-column header gives ",".
    """
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first of equal counts


def separator_hint(first_line: str) -> str | None:
    """The delimiter a `sep=X` first line declares, or None.

    Excel writes and reads that line to say which delimiter a file uses (`sep=;` in European
    locales), before the header row; it is not part of the data.
    """
    match = _SEP_HINT.fullmatch(first_line.rstrip("\r\n"))
    return match.group(1) if match else None


def header_key(name: str) -> str:
    """A header name compared with PHONE_HEADERS: lower case, spaces, `-` and `.` as `_`, trimmed."""
    return _SEPARATORS.sub("_", name.strip().lower()).strip("_")


def phone_column_index(header: list[str], phone_column: str | None) -> int:
    """Where the phones are in `header`: `phone_column` if given, else the first of PHONE_HEADERS.

    A repeated column's last occurrence wins (as csv.DictReader reads it). Raises ValidationFailed
    listing the columns read when none fits.
    """
    keys = [header_key(name) for name in header]
    if phone_column is not None:
        wanted = [phone_column.strip(), header_key(phone_column)]
        for names in ([name.strip() for name in header], keys):
            found = [index for index, name in enumerate(names) if name in wanted]
            if found:
                return found[-1]
        raise NoPhoneColumn(f"phone_column: no column {phone_column!r} in the CSV header; {_read(header)}")
    compact = [key.replace("_", "") for key in keys]
    for known in PHONE_HEADERS:
        found = [index for index, key in enumerate(compact) if key == known.replace("_", "")]
        if found:
            return found[-1]
    raise NoPhoneColumn(
        f"body: no phone column in the CSV header (looked for {', '.join(PHONE_HEADERS)}); {_read(header)}; "
        "name yours with ?phone_column=NAME"
    )


def _line_end(text: str) -> int:
    """Where the first line of `text` ends (at its first CR or LF, or the end), without copying it."""
    ends = [at for at in (text.find("\n"), text.find("\r")) if at >= 0]
    return min(ends, default=len(text))


def _after_first_line(text: str, end: int) -> str:
    """`text` past its first line, which ends at `end` (with CRLF, LF or CR)."""
    return text[end + 2 :] if text.startswith("\r\n", end) else text[end + 1 :]


def _read(header: list[str]) -> str:
    return f"columns read: {header!r}"


def csv_rows(text: str, phone_column: str | None = None) -> list[ContactRow]:
    """The rows of a CSV text: phones from the phone column, `name` as the name, other columns as metadata.

    The delimiter is the one a `sep=X` first line declares (Excel's hint, then skipped), else the
    one the header line uses most. Blank lines are skipped (row numbers count data rows only);
    metadata keys are the lower-cased, trimmed header names and keep non-empty cells only. A row
    with a NUL in a cell, or with non-blank values past the header's last column, is invalid; a
    short row is padded. Malformed CSV (read in the csv module's strict mode: a quote never closed,
    a character after a closing quote) raises ValidationFailed naming the line, and no row is read.
    """
    first = text[: _line_end(text)]
    delimiter = separator_hint(first)
    skipped = 0
    if delimiter is not None:
        text, skipped = _after_first_line(text, len(first)), 1
    else:
        delimiter = sniff_delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    ended = [0]  # the line the last complete record ended on
    try:
        header = next(reader, None) or []
        ended[0] = reader.line_num
        phone_at = phone_column_index(header, phone_column)
        fields = [f.strip().lower() for f in header]
        columns = {name: index for index, name in enumerate(fields)}
        name_at = columns.get("name")
        skip = {fields[phone_at], "name"}
        extras = [(name, index) for name, index in columns.items() if name not in skip and name]
        layout = _Layout(len(fields), delimiter, phone_at, name_at, extras)
        return _records(reader, layout, ended, check_nul=NUL in text)
    except csv.Error as exc:
        where = csv_syntax_error(exc, ended[0] + 1 + skipped, reader.line_num + skipped)
        raise ValidationFailed(f"body: {where}; nothing was added") from None


def csv_syntax_error(exc: csv.Error, record_line: int, line: int) -> str:
    """What is wrong with a CSV the csv module refused, naming the line (1-based, the header's is 1).

    `record_line` is where the record being read started, `line` where the reader stopped. A quote
    never closed is reported where its record starts: the reader only notices at the end of the text.
    """
    if str(exc) == "unexpected end of data":
        return (
            f"not valid CSV: the row starting on line {record_line} opens a quoted value that is never "
            "closed (a missing '\"'; a '\"' inside a quoted value is written '\"\"')"
        )
    return f"not valid CSV on line {line}: {exc} (a '\"' inside a quoted value is written '\"\"')"


@dataclass(frozen=True)
class _Layout:
    """Where a CSV's columns are: its width, delimiter, phone and name columns, metadata columns."""

    width: int
    delimiter: str
    phone_at: int
    name_at: int | None
    extras: list[tuple[str, int]]


def _records(reader: Any, layout: _Layout, ended: list[int], check_nul: bool) -> list[ContactRow]:
    """The data rows of a strict csv.reader past its header (see csv_rows); `ended[0]` follows the
    line each record ends on, so a syntax error can name where its record started."""
    rows: list[ContactRow] = []
    width, extras, name_at = layout.width, layout.extras, layout.name_at
    for record in reader:
        ended[0] = reader.line_num
        if not record:
            continue  # DictReader skips blank lines, and so do row numbers
        problem = _nul_problem(record) if check_nul else None
        if len(record) != width:
            problem = problem or _overflow_problem(record, layout)
            record = [*record[:width], *[""] * (width - len(record))]
        extra = {name: record[index] for name, index in extras if record[index]}
        name = record[name_at] or None if name_at is not None else None
        rows.append(ContactRow(len(rows) + 1, record[layout.phone_at], name, extra or None, problem))
    return rows


def _overflow_problem(record: list[str], layout: _Layout) -> str | None:
    """Why a row with non-blank values past the header's columns is refused, or None (blank ones,
    as a trailing delimiter writes, are ignored)."""
    if all(not cell.strip() for cell in record[layout.width :]):
        return None
    return (
        f"{len(record)} values but the header has {layout.width} columns"
        f" (quote a value holding the delimiter {layout.delimiter!r})"
    )


def _nul_problem(record: list[str]) -> str | None:
    """The reason a CSV record is refused for a NUL character, naming its column (1-based), or None."""
    for index, cell in enumerate(record, start=1):
        if NUL in cell:
            return f"column {index}: {NUL_REASON}"
    return None


def _json_rows(body: bytes) -> list[ContactRow]:
    """The rows of a JSON body {"contacts": [{"phone", "name"?, "metadata"?}, ...]}."""
    parsed: Any = parse_json(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("contacts"), list):
        raise ValidationFailed(
            'body: expected {"contacts": [{"phone": ..., "name"?: ..., "metadata"?: ...}]}'
            " (or send Content-Type: text/csv)"
        )
    # Only a body holding an escaped NUL (or NUL bytes: UTF-16 JSON) needs each row searched for one.
    check_nul = b"\\u0000" in body or b"\x00" in body
    rows = []
    for index, item in enumerate(parsed["contacts"], start=1):
        if isinstance(item, dict):
            problem = _json_nul_problem(item) if check_nul else None
            rows.append(ContactRow(index, item.get("phone"), item.get("name"), item.get("metadata"), problem))
        else:
            rows.append(ContactRow(index, None, problem="contact must be an object"))
    return rows


def _json_nul_problem(item: dict[str, Any]) -> str | None:
    """The reason a JSON contact is refused for a NUL character, naming its field, or None."""
    for field in ("phone", "name", "metadata"):
        if not nul_free(item.get(field)):
            return f"{field} {NUL_REASON}"
    return None
