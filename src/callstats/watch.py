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

OUTCOMES = ("answered", "busy", "no_answer", "failed", "voicemail")
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0)
READ_TIMEOUT_SECONDS = 45.0  # three missed heartbeats: the stream is dead
FATAL_STATUSES = (400, 401, 403, 404)


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
        super().__init__(message)
        self.status = status
        self.message = message


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


def stream_events(client: httpx.Client, campaign_id: str, last_event_id: str | None) -> Iterator[SseEvent]:
    """The stream's events until it ends; WatchFailed when the server refuses it."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    with client.stream("GET", f"/streamCampaignStats/{campaign_id}", headers=headers) as response:
        if response.status_code != 200:
            response.read()
            _refuse(response)
        yield from sse_events(response.iter_lines())


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


def follow(client: httpx.Client, state: WatchState, sleep: Any = time.sleep) -> Iterator[WatchState]:
    """Fold each event into `state` and yield it; reconnect with Last-Event-ID when the stream breaks."""
    failures = 0
    while True:
        delivered = False
        try:
            for event in stream_events(client, state.campaign_id, state.last_event_id):
                failures, delivered = 0, True
                if _apply(state, event):
                    yield state
        except httpx.HTTPError as exc:
            state.detail = _reason(exc)
        else:
            if delivered:  # the server ends streams now and then (keys are re-checked): resume at once
                continue
            state.detail = "the server ended the stream"
        delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
        failures += 1
        state.status = "reconnecting"
        state.detail = f"{state.detail}; reconnecting in {delay:g} s"
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


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect to the server"
    if isinstance(exc, httpx.ReadTimeout):
        return "no data from the server for a while"
    return str(exc) or type(exc).__name__


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


def run_watch(campaign_id: str, url: str, key: str, console: Console | None = None) -> int:
    """Watch until Ctrl-C (exit code 0) or until the server refuses the stream (exit code 1)."""
    out = console or Console()
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_SECONDS)
    state = WatchState(campaign_id=campaign_id)
    try:
        with httpx.Client(base_url=url.rstrip("/"), headers={"x-api-key": key}, timeout=timeout) as client:
            if out.is_interactive:
                _live(out, client, state)
            else:
                _lines(out, client, state)
    except WatchFailed as failed:
        out.print(f"callstats watch: {failed.message} (HTTP {failed.status})", style="red", markup=False)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _live(out: Console, client: httpx.Client, state: WatchState) -> None:
    with Live(render(state), console=out, auto_refresh=False, transient=False) as live:
        for changed in follow(client, state):
            live.update(render(changed), refresh=True)


def _lines(out: Console, client: httpx.Client, state: WatchState) -> None:
    for changed in follow(client, state):
        if changed.stats is not None or changed.status != "live":
            out.print(summary_line(changed), markup=False, highlight=False, soft_wrap=True)
