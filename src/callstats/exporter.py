"""`callstats export`: stream exportContacts or exportCalls into a file, with a progress bar.

The bar's total comes from the campaign's counters (getCampaignStats?include=attempts): the contacts
of a state or last outcome, every contact, the calls of an outcome or every call; with filters no
counter gives (a time range, a phone, two filters at once) the bar counts rows without a total. The
file is written under a temporary name and renamed when the whole export has arrived, so a failed
export never leaves a partial FILE. The requests go through callstats_client.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from callstats.importer import failure
from callstats_client import CallstatsError, Client, Export

REQUEST_TIMEOUT_S = 300.0
STATE_FIGURES = {
    "pending": "calls_pending",
    "in_progress": "calls_in_progress",
    "completed": "calls_completed",
    "failed": "calls_failed",
}


class ExportFailed(Exception):
    """The export stopped: the server refused it or could not be reached, or the stream broke off."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export: `kind` contacts or calls, `fmt` csv or ndjson, the route's filters (None: unset)."""

    campaign_id: str
    kind: str
    fmt: str = "csv"
    filters: dict[str, str | None] = field(default_factory=dict)


def expected_rows(request: ExportRequest, stats: dict[str, Any]) -> int | None:
    """The rows the export will hold by the counters in getCampaignStats?include=attempts' `data`; None
    when no single counter is that number."""
    given = {name for name, value in request.filters.items() if value is not None}
    if request.kind == "calls":
        attempts = stats["attempts"]
        if not given:
            return int(attempts["total"])
        return int(attempts["by_outcome"][request.filters["outcome"]]) if given == {"outcome"} else None
    if not given:
        return int(stats["total_contacts"])
    if given == {"state"}:
        return int(stats.get(STATE_FIGURES.get(str(request.filters["state"]), ""), 0))
    if given == {"last_outcome"}:
        return int(stats["call_status_breakdown"].get(str(request.filters["last_outcome"]), 0))
    return None


def _stats(api: Client, campaign_id: str) -> dict[str, Any]:
    """The campaign's getCampaignStats?include=attempts data; ExportFailed with the server's reason."""
    try:
        return asdict(api.get_campaign_stats(campaign_id, include=["attempts"]))
    except CallstatsError as exc:
        raise ExportFailed(failure(api.settings.base_url, exc)) from None


Progress = Callable[[int], None]


class _CountingFile:
    """The temporary file, counting line ends as the export's chunks are written to it."""

    def __init__(self, out: Any, ending: bytes, fmt: str, on_rows: Progress | None) -> None:
        self.out, self.ending, self.fmt, self.on_rows = out, ending, fmt, on_rows
        self.lines = self.written = 0

    def write(self, chunk: bytes) -> int:
        """Write one chunk of the export and report the rows so far."""
        self.out.write(chunk)
        self.lines += chunk.count(self.ending)
        self.written += len(chunk)
        if self.on_rows is not None:
            self.on_rows(_rows(self.lines, self.fmt))
        return len(chunk)


def _export(api: Client, request: ExportRequest, sink: _CountingFile) -> Export:
    filters = request.filters
    if request.kind == "contacts":
        return api.export_contacts(
            request.campaign_id,
            sink,
            format=request.fmt,
            state=filters.get("state"),
            last_outcome=filters.get("last_outcome"),
            phone=filters.get("phone"),
        )
    return api.export_calls(
        request.campaign_id,
        sink,
        format=request.fmt,
        outcome=filters.get("outcome"),
        from_=filters.get("from"),
        to=filters.get("to"),
    )


def download(api: Client, request: ExportRequest, path: Path, on_rows: Progress | None = None) -> int:
    """Stream the export into `path` (replaced only once the whole file has arrived); the rows written.

    Rows are counted by line ends (CSV: CRLF, less the header row); ExportFailed when the server
    refuses or the stream breaks off (the temporary file is removed).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    ending = b"\r\n" if request.fmt == "csv" else b"\n"
    try:
        with temporary.open("wb") as out:
            sink = _CountingFile(out, ending, request.fmt, on_rows)
            try:
                _export(api, request, sink)
            except CallstatsError as exc:
                why = failure(api.settings.base_url, exc)
                raise ExportFailed(f"the export broke off: {why}" if sink.written else why) from None
        temporary.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return _rows(sink.lines, request.fmt)


def _rows(lines: int, fmt: str) -> int:
    return max(lines - 1, 0) if fmt == "csv" else lines


def run_export(request: ExportRequest, path: Path, base_url: str, api_key: str) -> None:
    """`callstats export`: a progress bar on a terminal, then one line of totals on stdout; ExportFailed
    (its message is the command's one line) when the export stopped."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    started = time.monotonic()
    with Client(base_url, api_key, timeout=REQUEST_TIMEOUT_S) as api:
        total = expected_rows(request, _stats(api, request.campaign_id))
        with _progress_bar(console, total, console.is_terminal) as on_rows:
            rows = download(api, request, path, on_rows)
    elapsed = time.monotonic() - started
    print(
        f"campaign {request.campaign_id} {request.kind} -> {path}: {rows:,} rows in {elapsed:.1f} s "
        f"({rows / max(elapsed, 1e-9):,.0f} rows/s)"
    )


@contextmanager
def _progress_bar(console: Any, total: int | None, enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar over the rows (no total when the counters cannot tell it); nothing when not
    enabled."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("exporting"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:>11,} rows"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("export", total=total)
        yield lambda rows: bar.update(task, completed=rows)
