"""`callstats watch CAMPAIGN_ID`: a campaign's live numbers in the terminal, redrawn in place.

It reads GET /streamCampaignStats/{id} (Server-Sent Events) and reconnects with
Last-Event-ID when the stream breaks. On a terminal the view is redrawn in
place; piped elsewhere it prints one line per change.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from callstats.core.outcomes import OUTCOMES

FIRST_RETRY_SECONDS = 1.0  # then doubled after each failed attempt, up to MAX_RETRY_SECONDS
MAX_RETRY_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 45.0  # three missed heartbeats: the stream is dead
FATAL_STATUSES = (400, 401, 403, 404)


def retry_delay(failures: int) -> float:
    """Seconds to wait after `failures` failed attempts in a row (1 or more): 1, 2, 4, ... 30."""
    return float(min(FIRST_RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS))


@dataclass(frozen=True)
class SseEvent:
    """One Server-Sent Event (a comment such as a ping has `comment` set instead)."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: str | None = None


class WatchFailed(Exception):
    """The server refused the stream for good (bad id, bad key, no such campaign)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


class WatchGaveUp(Exception):
    """No connection to the server within --timeout; `str()` is one line naming the URL."""


@dataclass
class WatchState:
    """What the view shows."""

    campaign_id: str
    stats: dict[str, Any] | None = None
    status: str = "connecting"
    detail: str = ""
    updated_at: datetime | None = None
    last_event_id: str | None = None
    changes: int = field(default=0)


def sse_events(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Parse text/event-stream lines into events."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if line == "":
            if fields:
                yield _event(fields)
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
    if fields:
        yield _event(fields)


def _event(fields: dict[str, list[str]]) -> SseEvent:
    if "" in fields and len(fields) == 1:
        return SseEvent(comment="\n".join(fields[""]))
    return SseEvent(
        event=(fields.get("event") or ["message"])[-1],
        data="\n".join(fields.get("data", [])),
        id=fields["id"][-1] if "id" in fields else None,
    )


def stream_events(
    client: httpx.Client, campaign_id: str, last_event_id: str | None, within: float | None = None
) -> Iterator[SseEvent]:
    """The stream's events until it ends; WatchFailed when the server refuses it.

    `within`: seconds the connection and the response's headers may take at most (None: the
    client's own timeouts); once the server answered, the stream reads with the client's timeouts.
    """
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    opening = client.timeout if within is None else _bounded(client.timeout, within)
    path = f"/streamCampaignStats/{campaign_id}"
    with client.stream("GET", path, headers=headers, timeout=opening) as response:
        if response.status_code != 200:
            response.read()
            _refuse(response)
        # The body is read with the client's own read timeout (httpx's per-request "timeout"
        # extension, looked up when the body is read), not the bounded one of the opening.
        response.request.extensions["timeout"] = client.timeout.as_dict()
        yield from sse_events(response.iter_lines())


def _bounded(timeout: httpx.Timeout, seconds: float) -> httpx.Timeout:
    def cap(value: float | None) -> float:
        return seconds if value is None else min(value, seconds)

    return httpx.Timeout(
        connect=cap(timeout.connect), read=cap(timeout.read), write=cap(timeout.write), pool=cap(timeout.pool)
    )


def _refuse(response: httpx.Response) -> None:
    try:
        message = str(response.json().get("message", response.reason_phrase))
    except ValueError:
        message = response.reason_phrase
    if response.status_code in FATAL_STATUSES:
        raise WatchFailed(response.status_code, message)
    raise httpx.HTTPStatusError(
        f"HTTP {response.status_code}: {message}", request=response.request, response=response
    )


def follow(
    client: httpx.Client,
    state: WatchState,
    sleep: Any = time.sleep,
    give_up_after: float | None = None,
    clock: Any = time.monotonic,
) -> Iterator[WatchState]:
    """Fold each event into `state` and yield it; reconnect with Last-Event-ID when the stream breaks.

    A failed attempt is retried after 1, 2, 4, ... up to 30 s (retry_delay), the state's detail
    naming the server's URL. With `give_up_after` (seconds), WatchGaveUp ends it once that long
    passed without a connection (counted from the start, or from when the stream last broke).
    """
    failures = 0
    down_since = clock()
    while True:
        delivered = False
        # An attempt never outlasts the time left (at least 0.1 s: a socket timeout must be positive).
        remaining = None if give_up_after is None else max(give_up_after - (clock() - down_since), 0.1)
        try:
            for event in stream_events(client, state.campaign_id, state.last_event_id, remaining):
                failures, delivered = 0, True
                if _apply(state, event):
                    yield state
        except httpx.HTTPError as exc:
            reason = _reason(exc, str(client.base_url).rstrip("/"))
        else:
            if delivered:  # the server ends streams now and then (keys are re-checked): resume at once
                down_since = clock()
                continue
            reason = "the server ended the stream"
        if delivered:
            down_since = clock()
        failures += 1
        delay = retry_delay(failures)
        if give_up_after is not None:
            left = give_up_after - (clock() - down_since)
            if left <= 0:
                raise WatchGaveUp(f"{reason}; gave up after {give_up_after:g} s (--timeout)")
            delay = min(delay, left)
        state.status = "reconnecting"
        state.detail = f"{reason}; retrying in {delay:.2g} s"
        yield state
        sleep(delay)


def _apply(state: WatchState, event: SseEvent) -> bool:
    """Fold one event into the state; whether the view changed."""
    changed = state.status != "live"
    state.status, state.detail = "live", ""
    if event.event == "stats" and event.data:
        state.stats = orjson.loads(event.data)["data"]
        state.last_event_id = event.id
        state.updated_at = datetime.now()
        state.changes += 1
        changed = True
    return changed


def _reason(exc: httpx.HTTPError, url: str) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {url}"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no answer from {url} to connect"
    if isinstance(exc, httpx.ReadTimeout):
        return f"no data from {url} for a while"
    return f"{url}: {exc or type(exc).__name__}"


def _seconds(value: int) -> str:
    if value < 60:
        return f"{value} s"
    minutes, seconds = divmod(value, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:,} h {minutes:02d} min"


def _progress(stats: dict[str, Any]) -> tuple[int, int, float]:
    total = int(stats["total_contacts"])
    final = int(stats["calls_completed"]) + int(stats["calls_failed"])
    return final, total, 100.0 * final / total if total else 0.0


def summary_line(state: WatchState) -> str:
    """One line per change, for output that is not a terminal."""
    stats = state.stats
    if stats is None:
        return f"[{state.status}] {state.detail}".rstrip()
    final, total, done = _progress(stats)
    breakdown = " ".join(f"{o}={stats['call_status_breakdown'][o]}" for o in OUTCOMES)
    when = state.updated_at.strftime("%H:%M:%S") if state.updated_at else "-"
    return (
        f"{when} [{state.status}] {stats['campaign_name']}: {final}/{total} final ({done:.1f}%) "
        f"completed={stats['calls_completed']} failed={stats['calls_failed']} "
        f"in_progress={stats['calls_in_progress']} pending={stats['calls_pending']} "
        f"success_rate={stats['success_rate']:.2f}% avg={stats['average_call_duration']}s {breakdown}"
        + (f" ({state.detail})" if state.detail else "")
    )


def render(state: WatchState) -> RenderableType:
    """The in-place view: progress, counters, outcome breakdown, times, connection state."""
    stats = state.stats
    status = _status_text(state)
    if stats is None:
        return Panel(status, title="callstats watch", subtitle=state.campaign_id)
    final, total, done = _progress(stats)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(total, 1), completed=final, width=40),
        f"{final:,} / {total:,} final ({done:.1f} %)",
    )
    return Panel(
        Group(bar, Text(""), _counters(stats), Text(""), _breakdown(stats), Text(""), status),
        title=f"[bold]{stats['campaign_name']}[/bold]",
        subtitle=state.campaign_id,
    )


def _counters(stats: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 3))
    for _ in range(4):
        table.add_column()
    table.add_row(
        f"Contacts [bold]{stats['total_contacts']:,}[/bold]",
        f"Completed [bold green]{stats['calls_completed']:,}[/bold green]",
        f"Failed [bold red]{stats['calls_failed']:,}[/bold red]",
        f"In progress [bold blue]{stats['calls_in_progress']:,}[/bold blue]",
    )
    table.add_row(
        f"Pending [bold]{stats['calls_pending']:,}[/bold]",
        f"Success rate [bold]{stats['success_rate']:.2f} %[/bold]",
        f"Average call [bold]{_seconds(int(stats['average_call_duration']))}[/bold]",
        f"Talk time [bold]{_seconds(int(stats['total_call_duration']))}[/bold]",
    )
    table.add_row(
        f"Started {stats['started_at'] or '-'}",
        f"Completed {stats['completed_at'] or '-'}",
        "",
        "",
    )
    return table


def _breakdown(stats: dict[str, Any]) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False)
    for outcome in OUTCOMES:
        table.add_column(outcome.replace("_", " "), justify="right")
    table.add_row(*(f"{stats['call_status_breakdown'][o]:,}" for o in OUTCOMES))
    return table


def _status_text(state: WatchState) -> Text:
    if state.status == "live":
        when = state.updated_at.strftime("%H:%M:%S") if state.updated_at else "-"
        return Text(f"● live · last change {when} · Ctrl-C stops", style="green")
    style = "yellow" if state.status == "connecting" else "bold red"
    label = "connecting…" if state.status == "connecting" else "disconnected"
    return Text(f"● {label} {state.detail}".rstrip(), style=style)


def run_watch(
    campaign_id: str, url: str, key: str, console: Console | None = None, give_up_after: float | None = None
) -> None:
    """Watch until Ctrl-C; WatchFailed when the server refuses the stream, WatchGaveUp when
    `give_up_after` seconds pass without a connection (the command prints either as one line).

    `url` must already be checked (callstats.urls.check_url).
    """
    out = console or Console()
    timeout = httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
    state = WatchState(campaign_id=campaign_id, detail=f"to {url}")
    try:
        with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=timeout) as client:
            updates = follow(client, state, give_up_after=give_up_after)
            if out.is_interactive:
                _live(out, updates, state)
            else:
                _lines(out, updates, state)
    except KeyboardInterrupt:
        return


def _live(out: Console, updates: Iterator[WatchState], state: WatchState) -> None:
    with Live(render(state), console=out, auto_refresh=False, transient=False) as live:
        for changed in updates:
            live.update(render(changed), refresh=True)


def _lines(out: Console, updates: Iterator[WatchState], state: WatchState) -> None:
    out.print(summary_line(state), markup=False, highlight=False, soft_wrap=True)
    for changed in updates:
        if changed.stats is not None or changed.status != "live":
            out.print(summary_line(changed), markup=False, highlight=False, soft_wrap=True)
