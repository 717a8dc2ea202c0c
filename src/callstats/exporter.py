"""`callstats export`: stream exportContacts or exportCalls into a file, with a progress bar.

The bar's total comes from the campaign's counters (getCampaignStats?include=attempts): the contacts
of a state or last outcome, every contact, the calls of an outcome or every call; with filters no
counter gives (a time range, a phone, two filters at once) the bar counts rows without a total. The
file is written under a temporary name and renamed when the whole export has arrived, so a failed
export never leaves a partial FILE.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from callstats.importer import refusal, unreachable

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

    def params(self) -> dict[str, str]:
        """The export route's query parameters."""
        given = {name: value for name, value in self.filters.items() if value is not None}
        return {"format": self.fmt, **given}

    def path(self) -> str:
        """The export route for this campaign."""
        route = "exportContacts" if self.kind == "contacts" else "exportCalls"
        return f"/{route}/{self.campaign_id}"


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


def _answer(client: httpx.Client, send: Callable[[], httpx.Response]) -> httpx.Response:
    try:
        return send()
    except httpx.HTTPError as exc:
        raise ExportFailed(unreachable(client, exc)) from None


def _stats(client: httpx.Client, campaign_id: str) -> dict[str, Any]:
    """The campaign's getCampaignStats?include=attempts data; ExportFailed with the server's reason."""
    response = _answer(client, lambda: client.get(f"/getCampaignStats/{campaign_id}?include=attempts"))
    envelope = _json(response.text)
    if response.status_code != 200 or not isinstance(envelope, dict):
        raise ExportFailed(refusal(response.status_code, envelope, response.text))
    data: dict[str, Any] = envelope["data"]
    return data


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


Progress = Callable[[int], None]


def download(
    client: httpx.Client, request: ExportRequest, path: Path, on_rows: Progress | None = None
) -> int:
    """Stream the export into `path` (replaced only once the whole file has arrived); the rows written.

    Rows are counted by line ends (CSV: CRLF, less the header row); ExportFailed when the server
    refuses or the stream breaks off (the temporary file is removed).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    ending = b"\r\n" if request.fmt == "csv" else b"\n"
    lines = 0
    try:
        with (
            client.stream("GET", request.path(), params=request.params()) as response,
            temporary.open("wb") as out,
        ):
            if response.status_code != 200:
                text = response.read().decode("utf-8", "replace")
                raise ExportFailed(refusal(response.status_code, _json(text), text))
            for chunk in response.iter_bytes():
                out.write(chunk)
                lines += chunk.count(ending)
                if on_rows is not None:
                    on_rows(_rows(lines, request.fmt))
        temporary.replace(path)
    except httpx.HTTPError as exc:
        raise ExportFailed(f"the export broke off: {unreachable(client, exc)}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return _rows(lines, request.fmt)


def _rows(lines: int, fmt: str) -> int:
    return max(lines - 1, 0) if fmt == "csv" else lines


def run_export(request: ExportRequest, path: Path, base_url: str, api_key: str) -> None:
    """`callstats export`: a progress bar on a terminal, then one line of totals on stdout; ExportFailed
    (its message is the command's one line) when the export stopped."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    headers = {"x-api-key": api_key}
    started = time.monotonic()
    with httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        total = expected_rows(request, _stats(client, request.campaign_id))
        with _progress_bar(console, total, console.is_terminal) as on_rows:
            rows = download(client, request, path, on_rows)
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
