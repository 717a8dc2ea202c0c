"""`callstats import`: stream a CSV file into a campaign through addContacts, 10,000 rows per request.

The requests go through callstats_client (its add_contacts_csv, one chunk of the file as it is), so the
import speaks the API, its errors and its retries as every other client does.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from callstats.campaigns.contact_lists import (
    BOMS,
    csv_syntax_error,
    phone_column_index,
    separator_hint,
    sniff_delimiter,
)
from callstats.errors import ValidationFailed
from callstats_client import AddContactsResult, ApiError, CallstatsError, Client, ConnectionFailed

if TYPE_CHECKING:
    from rich.console import Console

ROWS_PER_REQUEST = 10_000
# Below the server's default 5 MiB body limit even when rows carry long extra columns.
MAX_BODY_BYTES = 4 * 1024 * 1024
IN_FLIGHT = 3
REQUEST_TIMEOUT_S = 300.0
BOM = codecs.BOM_UTF8


class ImportFailed(Exception):
    """The import stopped: a file the server could not take, or an HTTP error with the server's message."""

    def __init__(self, message: str, totals: ImportTotals | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.totals = totals

    def describe(self) -> str:
        """One line: why the import stopped, and what the requests before it did."""
        line = f"stopped: {self.message}"
        if self.totals is not None and self.totals.requests:
            line += f"; before that, {_summary(self.totals)}"
        return line


@dataclass(frozen=True)
class Chunk:
    """One addContacts body: the header plus data rows, with the file line each row starts on."""

    body: bytes
    lines: tuple[int, ...]
    file_bytes: int


@dataclass(frozen=True)
class InvalidLine:
    """A row the server refused, located by its line in the file (the header is line 1)."""

    line: int
    phone: str | None
    reason: str


@dataclass(frozen=True)
class DuplicateLine:
    """A row the campaign did not take twice, by its line in the file.

    `earlier_line` is the line of the earlier row of the same request it repeats; None when the
    campaign already held the contact (from before, or from an earlier request of this import).
    """

    line: int
    phone: str
    earlier_line: int | None


@dataclass
class ImportTotals:
    """What the server did with the rows sent so far."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    invalid: int = 0
    errors: list[InvalidLine] = field(default_factory=list)
    duplicates: list[DuplicateLine] = field(default_factory=list)
    requests: int = 0
    file_bytes: int = 0

    def add(self, chunk: Chunk, answer: AddContactsResult) -> None:
        """Fold one addContacts answer in, mapping its row numbers to file lines."""
        self.received += answer.received
        self.accepted += answer.accepted
        self.duplicate += answer.duplicate
        self.invalid += answer.invalid
        for error in answer.errors:
            self.errors.append(InvalidLine(chunk.lines[error.row - 1], error.phone, error.reason))
        for duplicate in answer.duplicates:
            earlier = duplicate.earlier_row
            self.duplicates.append(
                DuplicateLine(
                    chunk.lines[duplicate.row - 1],
                    duplicate.phone,
                    None if earlier is None else chunk.lines[earlier - 1],
                )
            )
        self.requests += 1
        self.file_bytes += chunk.file_bytes

    def as_json(self) -> dict[str, Any]:
        """The totals as one JSON object, errors and duplicates sorted by line."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "invalid": self.invalid,
            "requests": self.requests,
            "errors": [vars(e) for e in sorted(self.errors, key=lambda e: e.line)],
            "duplicates": [vars(d) for d in sorted(self.duplicates, key=lambda d: d.line)],
        }


class _Lines:
    """The file's lines for csv.reader, keeping the raw (UTF-8) bytes of the record being read.

    `lines` yields each line as UTF-8 bytes; `tell`, when given, is where the file has been read
    to (a transcoded file's own bytes), else the bytes yielded are counted.
    """

    def __init__(self, lines: Iterator[bytes], tell: Callable[[], int] | None = None) -> None:
        self._lines = lines
        self._tell = tell
        self.raw: list[bytes] = []
        self.line = 0
        self.consumed = 0  # bytes read from the file so far
        self.before = 0  # bytes read from the file before the record `take` returned last
        self._taken = 0  # bytes read from the file when `take` returned last

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.line += 1
        self.consumed = self._tell() if self._tell is not None else self.consumed + len(raw)
        if self.line == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        self.raw.append(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFailed(
                f"line {self.line}: not UTF-8; name the file's charset with --encoding (e.g. windows-1252)"
            ) from None

    def take(self) -> bytes:
        """The raw bytes of the record just read, ending in a newline."""
        record = b"".join(self.raw)
        self.raw.clear()
        self.before, self._taken = self._taken, self.consumed
        return record if record.endswith(b"\n") else record + b"\n"


def file_lines(stream: BinaryIO, encoding: str | None) -> tuple[Iterator[bytes], Callable[[], int] | None]:
    """The lines of a CSV file as UTF-8 bytes, and how far the file was read when it was transcoded.

    The charset is the file's BOM (UTF-8, UTF-16, UTF-32), else `encoding`, else UTF-8. UTF-8 lines
    are passed on verbatim; any other charset is decoded and re-encoded as UTF-8, so each request
    is UTF-8 whatever the file was. Raises ImportFailed for a charset Python does not know.
    """
    start = stream.read(4)
    stream.seek(0)
    by_bom = next((name for bom, name in BOMS if start.startswith(bom)), None)
    try:
        codec = codecs.lookup(by_bom or encoding or "utf-8")
    except LookupError:
        raise ImportFailed(f"unknown encoding {encoding!r}") from None
    if codec.name in ("utf-8", "utf-8-sig"):
        return iter(stream), None
    text = io.TextIOWrapper(stream, encoding=codec.name, newline="")
    return _transcoded(text), stream.tell


def _transcoded(text: io.TextIOWrapper) -> Iterator[bytes]:
    """Each line of `text` as UTF-8, the file's BOM dropped; ImportFailed where it is not that charset."""
    line = 0
    try:
        for line, record in enumerate(text, start=1):
            yield (record.removeprefix("\ufeff") if line == 1 else record).encode("utf-8")
    except UnicodeDecodeError:
        raise ImportFailed(f"line {line + 1}: not {text.encoding} text; check --encoding") from None
    finally:
        text.detach()


def read_chunks(
    stream: BinaryIO,
    rows_per_request: int = ROWS_PER_REQUEST,
    max_body_bytes: int = MAX_BODY_BYTES,
    encoding: str | None = None,
    phone_column: str | None = None,
) -> Iterator[Chunk]:
    """The file as UTF-8 addContacts CSV bodies: each repeats the header and carries rows verbatim.

    The delimiter (`,` `;` tab `|`) and the phone column are found as the server finds them.
    """
    lines = _Lines(*file_lines(stream, encoding))
    header, delimiter = _header(lines, phone_column)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    body, starts, body_bytes, reported = [header], list[int](), len(header), 0
    try:
        for record in reader:
            raw = lines.take()
            if (
                starts
                and record
                and (len(starts) == rows_per_request or body_bytes + len(raw) > max_body_bytes)
            ):
                yield Chunk(b"".join(body), tuple(starts), lines.before - reported)
                body, starts, body_bytes, reported = [header], [], len(header), lines.before
            if not record:  # a blank line: the server's CSV reader skips it too
                continue
            body.append(raw)
            starts.append(lines.line - raw.count(b"\n") + 1)
            body_bytes += len(raw)
    except csv.Error as exc:
        record_line = lines.line - len(lines.raw) + 1  # the lines read but not yet taken are its own
        raise ImportFailed(csv_syntax_error(exc, record_line, lines.line)) from None
    if starts:
        yield Chunk(b"".join(body), tuple(starts), lines.consumed - reported)


def _header(lines: _Lines, phone_column: str | None) -> tuple[bytes, str]:
    """The header line (the first that is not blank, after an Excel `sep=X` line, which is kept in
    front of it so the server reads the same delimiter) and the file's delimiter; ImportFailed when
    the server could not find the phone column in it."""
    hint: tuple[bytes, str] | None = None
    for text in lines:
        raw = lines.take()
        if not text.strip():
            continue
        declared = separator_hint(text) if hint is None and lines.line == 1 else None
        if declared is not None:
            hint = raw, declared
            continue
        delimiter = hint[1] if hint is not None else sniff_delimiter(text)
        names = next(csv.reader([text], delimiter=delimiter), [])
        try:
            phone_column_index(names, phone_column)
        except ValidationFailed as exc:
            reason = exc.message.removeprefix("body: ").replace("?phone_column=NAME", "--phone-column NAME")
            raise ImportFailed(f"line {lines.line}: {reason}") from None
        return (hint[0] + raw if hint is not None else raw), delimiter
    raise ImportFailed("the file has no header row (and no contacts)")


@dataclass(frozen=True)
class ImportOptions:
    """How the file is read and its numbers understood: its charset when it has no BOM (None: UTF-8),
    the column holding the phones (None: the server's list), the region (None: the campaign's)."""

    encoding: str | None = None
    phone_column: str | None = None
    region: str | None = None


def _post(api: Client, campaign_id: str, chunk: Chunk, options: ImportOptions) -> AddContactsResult:
    """Send one chunk (UTF-8 CSV); its addContacts answer, or ImportFailed with the server's message."""
    try:
        return api.add_contacts_csv(
            campaign_id, chunk.body, region=options.region, phone_column=options.phone_column
        )
    except CallstatsError as exc:
        raise ImportFailed(failure(api.settings.base_url, exc)) from None


def failure(base_url: str, exc: CallstatsError) -> str:
    """A request that failed, in one line (`callstats import` and `export`): `HTTP 404 NOT_FOUND:
    Campaign not found` for a refusal, `cannot reach URL: ConnectError: ...` when no answer came."""
    if isinstance(exc, ApiError):
        return f"HTTP {exc.status} {exc.code}: {exc.message}"
    if isinstance(exc, ConnectionFailed) and exc.cause is not None:
        return unreachable(base_url, exc.cause)
    return exc.message


def unreachable(base_url: str, exc: Exception) -> str:
    """Why a request to the server got no answer, in one line."""
    detail = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else ""
    why = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"cannot reach {base_url}: {why}"


def refusal(status: int, envelope: Any, text: str) -> str:
    """A refused request in one line: `HTTP 404 NOT_FOUND: Campaign not found` from the error envelope,
    else the status and the start of the body."""
    if isinstance(envelope, dict) and "message" in envelope:
        return f"HTTP {status} {envelope.get('error')}: {envelope['message']}"
    return f"HTTP {status}: {text[:300].strip()}"


ProgressCallback = Callable[[ImportTotals], None]


def import_csv(
    path: Path,
    campaign_id: str,
    base_url: str,
    api_key: str,
    in_flight: int = IN_FLIGHT,
    on_progress: ProgressCallback | None = None,
    rows_per_request: int = ROWS_PER_REQUEST,
    options: ImportOptions | None = None,
) -> ImportTotals:
    """Stream `path` into the campaign with up to `in_flight` requests at once; the server's totals."""
    options = options or ImportOptions()
    totals = ImportTotals()
    with (
        path.open("rb") as stream,
        Client(base_url, api_key, timeout=REQUEST_TIMEOUT_S) as api,
        ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="callstats-import") as pool,
    ):
        pending: dict[Future[AddContactsResult], Chunk] = {}
        check_syntax(stream, options)
        try:
            chunks = read_chunks(
                stream, rows_per_request, encoding=options.encoding, phone_column=options.phone_column
            )
            for chunk in chunks:
                while len(pending) >= in_flight:
                    _collect(pending, totals, on_progress)
                pending[pool.submit(_post, api, campaign_id, chunk, options)] = chunk
            while pending:
                _collect(pending, totals, on_progress)
        except ImportFailed as failure:
            _drain(pending, totals)
            raise ImportFailed(failure.message, totals) from None
    return totals


def check_syntax(stream: BinaryIO, options: ImportOptions) -> None:
    """Read the whole file once before anything is sent: ImportFailed at the first malformed CSV
    (naming the line), so such a file adds nothing; the stream is then rewound."""
    for _chunk in read_chunks(stream, encoding=options.encoding, phone_column=options.phone_column):
        pass
    stream.seek(0)


def _collect(
    pending: dict[Future[AddContactsResult], Chunk],
    totals: ImportTotals,
    on_progress: ProgressCallback | None,
) -> None:
    """Wait for at least one request to finish and fold its answer in."""
    done, _ = wait(pending, timeout=REQUEST_TIMEOUT_S + 10, return_when=FIRST_COMPLETED)
    if not done:
        raise ImportFailed(f"no answer from the server in {REQUEST_TIMEOUT_S + 10:.0f} s")
    for future in done:
        totals.add(pending.pop(future), future.result())
    if on_progress is not None:
        on_progress(totals)


def _drain(pending: dict[Future[AddContactsResult], Chunk], totals: ImportTotals) -> None:
    """After a failure, count what the requests still in flight did; their own errors are dropped."""
    for future, chunk in pending.items():
        try:
            totals.add(chunk, future.result(timeout=REQUEST_TIMEOUT_S + 10))
        except Exception:  # the first failure is the one reported
            continue
    pending.clear()


def run_command(
    campaign_id: str,
    path: Path,
    base_url: str,
    api_key: str,
    as_json: bool,
    options: ImportOptions | None = None,
) -> None:
    """`callstats import`: a progress bar on a terminal, then the totals on stdout; ImportFailed
    (its `describe()` is the command's one line) when the import stopped."""
    from rich.console import Console

    progress = Console(stderr=True, highlight=False)
    started = time.monotonic()
    with _progress_bar(progress, path.stat().st_size, progress.is_terminal and not as_json) as on_progress:
        totals = import_csv(path, campaign_id, base_url, api_key, on_progress=on_progress, options=options)
    elapsed = time.monotonic() - started
    if as_json:
        print(json.dumps({**totals.as_json(), "seconds": round(elapsed, 3)}))
        return
    print(
        f"{path.name} -> campaign {campaign_id}: {totals.received:,} rows in {elapsed:.1f} s "
        f"({totals.received / max(elapsed, 1e-9):,.0f} rows/s, "
        f"{totals.requests} request{'' if totals.requests == 1 else 's'})"
    )
    print(_summary(totals))
    _print_invalid(totals.errors)


def _summary(totals: ImportTotals) -> str:
    return (
        f"received {totals.received:,}, accepted {totals.accepted:,}, "
        f"duplicate {totals.duplicate:,}, invalid {totals.invalid:,}"
    )


def _print_invalid(errors: list[InvalidLine], shown: int = 20) -> None:
    if not errors:
        return
    print("Invalid rows (line in the file: phone: reason):")
    for error in sorted(errors, key=lambda e: e.line)[:shown]:
        print(f"  line {error.line}: {error.phone!r}: {error.reason}")
    if len(errors) > shown:
        print(f"  ... and {len(errors) - shown:,} more (--json lists them all)")


@contextmanager
def _progress_bar(console: Console, total_bytes: int, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar over the file's bytes, showing rows and rows/s; nothing when not enabled."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("importing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>11,} rows  {task.fields[rate]:>8,.0f} rows/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("import", total=total_bytes, rows=0, rate=0.0)

        def update(totals: ImportTotals) -> None:
            rate = totals.received / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=totals.file_bytes, rows=totals.received, rate=rate)

        yield update
