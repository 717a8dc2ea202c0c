"""`callstats import`: stream a CSV file into a campaign through addContacts, 10,000 rows per request."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

if TYPE_CHECKING:
    from rich.console import Console

ROWS_PER_REQUEST = 10_000
# Below the server's default 5 MiB body limit even when rows carry long extra columns.
MAX_BODY_BYTES = 4 * 1024 * 1024
IN_FLIGHT = 3
REQUEST_TIMEOUT_S = 300.0
BOM = b"\xef\xbb\xbf"


class ImportFailed(Exception):
    """The import stopped: a file the server could not take, or an HTTP error with the server's message."""

    def __init__(self, message: str, totals: ImportTotals | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.totals = totals


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


@dataclass
class ImportTotals:
    """What the server did with the rows sent so far."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    invalid: int = 0
    errors: list[InvalidLine] = field(default_factory=list)
    requests: int = 0
    file_bytes: int = 0

    def add(self, chunk: Chunk, answer: dict[str, Any]) -> None:
        """Fold one addContacts answer in, mapping its row numbers to file lines."""
        self.received += int(answer["received"])
        self.accepted += int(answer["accepted"])
        self.duplicate += int(answer["duplicate"])
        self.invalid += int(answer["invalid"])
        for error in answer["errors"]:
            self.errors.append(
                InvalidLine(chunk.lines[int(error["row"]) - 1], error["phone"], error["reason"])
            )
        self.requests += 1
        self.file_bytes += chunk.file_bytes

    def as_json(self) -> dict[str, Any]:
        """The totals as one JSON object, errors sorted by line."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "invalid": self.invalid,
            "requests": self.requests,
            "errors": [vars(e) for e in sorted(self.errors, key=lambda e: e.line)],
        }


class _Lines:
    """The file's lines for csv.reader, keeping the raw bytes of the record being read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = iter(stream)
        self.raw: list[bytes] = []
        self.line = 0
        self.consumed = 0  # bytes read from the file so far
        self.before = 0  # bytes read from the file before the record `take` returned last

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = next(self._stream)
        self.line += 1
        self.consumed += len(raw)
        if self.line == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        self.raw.append(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFailed(f"line {self.line}: not UTF-8 (addContacts takes UTF-8 CSV)") from None

    def take(self) -> bytes:
        """The raw bytes of the record just read, ending in a newline."""
        record = b"".join(self.raw)
        self.raw.clear()
        self.before = self.consumed - len(record)
        return record if record.endswith(b"\n") else record + b"\n"


def read_chunks(
    stream: BinaryIO, rows_per_request: int = ROWS_PER_REQUEST, max_body_bytes: int = MAX_BODY_BYTES
) -> Iterator[Chunk]:
    """The file as addContacts CSV bodies: each repeats the header and carries rows verbatim."""
    lines = _Lines(stream)
    reader = csv.reader(lines)
    header = _header(reader, lines)
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
        raise ImportFailed(f"line {lines.line}: not valid CSV ({exc})") from None
    if starts:
        yield Chunk(b"".join(body), tuple(starts), lines.consumed - reported)


def _header(reader: Iterator[list[str]], lines: _Lines) -> bytes:
    for record in reader:
        raw = lines.take()
        if not record:
            continue
        if "phone" not in (name.strip().lower() for name in record):
            raise ImportFailed(f"line {lines.line}: the header row must name a 'phone' column")
        return raw
    raise ImportFailed("the file has no header row (and no contacts)")


def _post(client: httpx.Client, campaign_id: str, chunk: Chunk) -> dict[str, Any]:
    """Send one chunk; its addContacts answer, or ImportFailed with the server's message."""
    try:
        response = client.post(
            f"/addContacts/{campaign_id}", content=chunk.body, headers={"content-type": "text/csv"}
        )
    except httpx.HTTPError as exc:
        raise ImportFailed(f"cannot reach {client.base_url}: {type(exc).__name__}: {exc}") from None
    try:
        envelope: Any = response.json()
    except ValueError:
        envelope = None
    if response.status_code == 200 and isinstance(envelope, dict) and envelope.get("success"):
        data: dict[str, Any] = envelope["data"]
        return data
    if isinstance(envelope, dict) and "message" in envelope:
        raise ImportFailed(f"HTTP {response.status_code} {envelope.get('error')}: {envelope['message']}")
    raise ImportFailed(f"HTTP {response.status_code}: {response.text[:300].strip()}")


ProgressCallback = Callable[[ImportTotals], None]


def import_csv(
    path: Path,
    campaign_id: str,
    base_url: str,
    api_key: str,
    in_flight: int = IN_FLIGHT,
    on_progress: ProgressCallback | None = None,
    rows_per_request: int = ROWS_PER_REQUEST,
) -> ImportTotals:
    """Stream `path` into the campaign with up to `in_flight` requests at once; the server's totals."""
    totals = ImportTotals()
    headers = {"x-api-key": api_key}
    with (
        path.open("rb") as stream,
        httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client,
        ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="callstats-import") as pool,
    ):
        pending: dict[Future[dict[str, Any]], Chunk] = {}
        try:
            for chunk in read_chunks(stream, rows_per_request):
                while len(pending) >= in_flight:
                    _collect(pending, totals, on_progress)
                pending[pool.submit(_post, client, campaign_id, chunk)] = chunk
            while pending:
                _collect(pending, totals, on_progress)
        except ImportFailed as failure:
            _drain(pending, totals)
            raise ImportFailed(failure.message, totals) from None
    return totals


def _collect(
    pending: dict[Future[dict[str, Any]], Chunk], totals: ImportTotals, on_progress: ProgressCallback | None
) -> None:
    """Wait for at least one request to finish and fold its answer in."""
    done, _ = wait(pending, timeout=REQUEST_TIMEOUT_S + 10, return_when=FIRST_COMPLETED)
    if not done:
        raise ImportFailed(f"no answer from the server in {REQUEST_TIMEOUT_S + 10:.0f} s")
    for future in done:
        totals.add(pending.pop(future), future.result())
    if on_progress is not None:
        on_progress(totals)


def _drain(pending: dict[Future[dict[str, Any]], Chunk], totals: ImportTotals) -> None:
    """After a failure, count what the requests still in flight did; their own errors are dropped."""
    for future, chunk in pending.items():
        try:
            totals.add(chunk, future.result(timeout=REQUEST_TIMEOUT_S + 10))
        except Exception:  # the first failure is the one reported
            continue
    pending.clear()


def run_command(campaign_id: str, path: Path, base_url: str, api_key: str, as_json: bool) -> int:
    """`callstats import`: a progress bar on a terminal, then the totals; the exit code."""
    from rich.console import Console

    errors = Console(stderr=True, highlight=False)
    started = time.monotonic()
    try:
        with _progress_bar(errors, path.stat().st_size, errors.is_terminal and not as_json) as on_progress:
            totals = import_csv(path, campaign_id, base_url, api_key, on_progress=on_progress)
    except ImportFailed as failure:
        errors.print(f"[red]Import stopped: {_escape(failure.message)}[/red]")
        if failure.totals is not None and failure.totals.requests:
            errors.print("Before that, " + _summary(failure.totals))
        return 1
    elapsed = time.monotonic() - started
    if as_json:
        print(json.dumps({**totals.as_json(), "seconds": round(elapsed, 3)}))
        return 0
    print(
        f"{path.name} -> campaign {campaign_id}: {totals.received:,} rows in {elapsed:.1f} s "
        f"({totals.received / max(elapsed, 1e-9):,.0f} rows/s, {totals.requests} requests)"
    )
    print(_summary(totals))
    _print_invalid(totals.errors)
    return 0


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


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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
