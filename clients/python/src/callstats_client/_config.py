"""What Client and AsyncClient are made of, and the batching both do: the settings of a client, the
bodies of add_contacts and record_events, the summaries' id chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any

import httpx

from callstats_client._batches import (
    MAX_CONTACTS_PER_REQUEST,
    MAX_EVENTS_PER_REQUEST,
    Body,
    ContactSource,
    checked_batch_size,
    csv_batches,
    csv_layout,
    is_path,
    json_batches,
)
from callstats_client._retry import OnRetry, RetryPolicy
from callstats_client._version import __version__

MAX_SUMMARY_IDS = 200  # getCampaignSummaries' limit per request
DEFAULT_TIMEOUT = 30.0
DEFAULT_STREAM_READ_TIMEOUT = 45.0  # three heartbeats of 15 s: then the stream is taken for dead


@dataclass(frozen=True, slots=True)
class Settings:
    """A client's settings (see Client's arguments)."""

    base_url: str
    api_key: str
    timeout: float
    stream_read_timeout: float
    retry: RetryPolicy
    on_retry: OnRetry | None

    def headers(self) -> dict[str, str]:
        """Headers of every request: the key and who is asking."""
        return {"x-api-key": self.api_key, "user-agent": f"callstats-client/{__version__}"}

    def stream_timeout(self) -> httpx.Timeout:
        """The live stream's timeouts: a read may wait `stream_read_timeout` (pings keep it alive)."""
        return httpx.Timeout(self.timeout, read=self.stream_read_timeout)


def settings(
    base_url: str,
    api_key: str,
    timeout: float,
    stream_read_timeout: float,
    retry: RetryPolicy | None,
    on_retry: OnRetry | None,
) -> Settings:
    """Checked settings: the URL must be http(s) with a host (ValueError otherwise)."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http:// or https:// URL with a host, got {base_url!r}")
    if not api_key or api_key != api_key.strip():
        raise ValueError("api_key must be a key without surrounding spaces")
    return Settings(
        str(base_url).rstrip("/"), api_key, timeout, stream_read_timeout, retry or RetryPolicy(), on_retry
    )


def contact_bodies(
    contacts: ContactSource, encoding: str, batch_size: int
) -> tuple[Iterator[Body], int | None]:
    """addContacts bodies for rows or a CSV path, and the number of rows when known. A file is read
    through once first (InvalidCsv, nothing sent, when it cannot be read)."""
    size = checked_batch_size(batch_size, MAX_CONTACTS_PER_REQUEST)
    if is_path(contacts):
        layout = csv_layout(contacts, encoding)  # type: ignore[arg-type]  # is_path checked it
        return csv_batches(layout, size), layout.rows
    rows: Iterable[Mapping[str, Any]] = contacts  # type: ignore[assignment]
    return json_batches("contacts", rows, size), len(rows) if isinstance(rows, Sized) else None


def event_bodies(events: Iterable[Mapping[str, Any]], batch_size: int) -> Iterator[Body]:
    """recordCallEvents bodies of at most `batch_size` (1..1,000) events."""
    return json_batches("events", events, checked_batch_size(batch_size, MAX_EVENTS_PER_REQUEST))


def id_chunks(campaign_ids: Iterable[str]) -> list[list[str]]:
    """The ids in chunks getCampaignSummaries takes (200), repeats dropped, order kept."""
    unique = list(dict.fromkeys(campaign_ids))
    return [unique[i : i + MAX_SUMMARY_IDS] for i in range(0, len(unique), MAX_SUMMARY_IDS)]
