"""AsyncClient: Client's methods for asyncio, the same requests, retries, batching and results.

Each method's arguments, return value and errors are those of the Client method of the same name
(callstats_client/client.py, docs/client.md); its docstring names the route.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

from callstats_client import _ops as ops
from callstats_client import models
from callstats_client._batches import ContactSource
from callstats_client._config import (
    DEFAULT_STREAM_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    contact_bodies,
    event_bodies,
    id_chunks,
    settings,
)
from callstats_client._retry import OnRetry, RetryNotice, RetryPolicy, describe
from callstats_client.client import ProgressCallback
from callstats_client.errors import ConnectionFailed, error_from_response

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of one callstats server: Client's arguments (`http` an httpx.AsyncClient).

    Use it as an async context manager, or await aclose().
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stream_read_timeout: float = DEFAULT_STREAM_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_retry: OnRetry | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings(base_url, api_key, timeout, stream_read_timeout, retry, on_retry)
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._http.base_url = httpx.URL(self.settings.base_url)
        self._http.headers.update(self.settings.headers())

    async def aclose(self) -> None:
        """Close the connections (the httpx client, also one passed in)."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- sending -----------------------------------------------------------------------------------

    async def _wait(self, notice: RetryNotice) -> None:
        if self.settings.on_retry is not None:
            self.settings.on_retry(notice)
        await asyncio.sleep(notice.delay)

    async def _response(self, op: ops.Operation[T], stream: bool = False) -> httpx.Response:
        """The 2xx answer to `op`, after the retries the policy allows (as Client._response)."""
        policy = self.settings.retry
        transport_retries = status_retries = 0
        while True:
            request = self._http.build_request(
                op.method, op.path, params=op.params, content=op.content, headers=op.headers()
            )
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = policy.after_transport_error(exc, op.repeatable, transport_retries)
                if delay is None:
                    raise ConnectionFailed(
                        f"{op.name}: {describe(exc)} ({self.settings.base_url})", exc
                    ) from exc
                transport_retries += 1
                await self._wait(RetryNotice(op.name, transport_retries, delay, None, describe(exc)))
                continue
            if response.is_success:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            error = error_from_response(response)
            delay = policy.after_answer(error, op.repeatable, status_retries) if op.retry_status else None
            if delay is None:
                raise error
            status_retries += 1
            await self._wait(RetryNotice(op.name, status_retries, delay, error.status, error.message))

    async def _send(self, op: ops.Operation[T]) -> T:
        return op.parse(await self._response(op))

    async def _walk(self, fetch: Callable[[str | None], Awaitable[models.Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            page = await fetch(cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- campaigns ---------------------------------------------------------------------------------

    async def create_campaign(
        self,
        name: str,
        *,
        max_attempts: int | None = None,
        retry_on: Sequence[str] | None = None,
        default_region: str | None = None,
        stall_after_minutes: int | None = None,
    ) -> models.Campaign:
        """POST /createCampaign; as Client.create_campaign."""
        op = ops.create_campaign(name, max_attempts, retry_on, default_region, stall_after_minutes)
        return await self._send(op)

    async def get_campaigns(
        self, *, limit: int | None = None, cursor: str | None = None, status: str | None = None
    ) -> models.Page[models.Campaign]:
        """GET /getCampaigns; as Client.get_campaigns."""
        return await self._send(ops.get_campaigns(limit, cursor, status))

    def iter_campaigns(
        self, *, status: str | None = None, page_size: int = 200
    ) -> AsyncIterator[models.Campaign]:
        """Every campaign, getCampaigns page after page (`async for`); as Client.iter_campaigns."""
        return self._walk(lambda cursor: self.get_campaigns(limit=page_size, cursor=cursor, status=status))

    async def get_campaign(self, campaign_id: str) -> models.Campaign:
        """GET /getCampaign/{campaignId}; as Client.get_campaign."""
        return await self._send(ops.get_campaign(campaign_id))

    async def delete_campaign(self, campaign_id: str) -> models.DeletedCampaign:
        """POST /deleteCampaign/{campaignId}; as Client.delete_campaign."""
        return await self._send(ops.delete_campaign(campaign_id))

    async def forget_contact(self, campaign_id: str, contact_id: int) -> models.ForgottenContact:
        """POST /forgetContact/{campaignId}/{contactId}; as Client.forget_contact."""
        return await self._send(ops.forget_contact(campaign_id, contact_id))

    async def add_contacts(
        self,
        campaign_id: str,
        contacts: ContactSource,
        *,
        region: str | None = None,
        phone_column: str | None = None,
        encoding: str = "utf-8-sig",
        batch_size: int = 10_000,
        on_progress: ProgressCallback | None = None,
    ) -> models.AddContactsResult:
        """POST /addContacts/{campaignId} by batches of `batch_size` rows; as Client.add_contacts."""
        bodies, total = contact_bodies(contacts, encoding, batch_size)
        result, sent = models.AddContactsResult(), 0
        for body in bodies:
            op = ops.add_contacts(campaign_id, body.content, body.content_type, region, phone_column)
            result, sent = result.plus(await self._send(op), sent), sent + body.count
            if on_progress is not None:
                on_progress(models.AddContactsProgress(sent, total, result))
        return result

    async def add_contacts_csv(
        self,
        campaign_id: str,
        csv: bytes,
        *,
        charset: str = "utf-8",
        region: str | None = None,
        phone_column: str | None = None,
    ) -> models.AddContactsResult:
        """POST /addContacts/{campaignId} once with `csv` as the body; as Client.add_contacts_csv."""
        op = ops.add_contacts(campaign_id, csv, f"text/csv; charset={charset}", region, phone_column)
        return models.AddContactsResult().plus(await self._send(op), 0)

    async def get_campaign_summaries(self, campaign_ids: Iterable[str]) -> list[models.CampaignSummary]:
        """GET /getCampaignSummaries, 200 ids per request; as Client.get_campaign_summaries."""
        found: list[models.CampaignSummary] = []
        for chunk in id_chunks(campaign_ids):
            summaries = await self._send(ops.get_campaign_summaries(chunk))
            found.extend(summaries)
        return found

    # -- events and statistics ---------------------------------------------------------------------

    async def record_events(
        self, events: Iterable[Mapping[str, Any]], *, batch_size: int = 1_000
    ) -> models.RecordEventsResult:
        """POST /recordCallEvents by batches of `batch_size` events; as Client.record_events."""
        result, sent = models.RecordEventsResult(), 0
        for body in event_bodies(events, batch_size):
            data = await self._send(ops.record_call_events(body.content))
            result, sent = result.plus(data, sent), sent + body.count
        return result

    record_call_events = record_events

    async def get_campaign_stats(
        self, campaign_id: str, *, include: Sequence[str] = ()
    ) -> models.CampaignStats:
        """GET /getCampaignStats/{campaignId}; as Client.get_campaign_stats."""
        return await self._send(ops.get_campaign_stats(campaign_id, include))

    async def stream_stats(
        self, campaign_id: str, *, last_event_id: str | None = None
    ) -> AsyncGenerator[models.CampaignStats, None]:
        """GET /streamCampaignStats/{campaignId}, reconnecting with Last-Event-ID (`async for`); as
        Client.stream_stats."""
        policy = self.settings.retry
        failures, last_id = 0, last_event_id
        while True:
            headers = {} if last_id is None else {"last-event-id": last_id}
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    ops.stream_path(campaign_id),
                    headers=headers,
                    timeout=self.settings.stream_timeout(),
                ) as source:
                    response = source.response
                    if not response.is_success:
                        await response.aread()
                        error = error_from_response(response)
                        delay = policy.after_answer(error, True, failures)
                        if delay is None or failures >= policy.max_stream_reconnects:
                            raise error
                        failures += 1
                        await self._wait(
                            RetryNotice("streamCampaignStats", failures, delay, error.status, error.message)
                        )
                        continue
                    delivered = False
                    async for event in source.aiter_sse():
                        if event.event == "stats" and event.data:
                            failures, last_id, delivered = 0, event.id or last_id, True
                            yield ops.stats_message(event.data)
                # The server ended the stream: reconnect at once, or after a pause when it brought
                # nothing (a quiet campaign's stream timing out, or a server that closes every stream).
                if not delivered:
                    await asyncio.sleep(policy.backoff)
            except httpx.TransportError as exc:
                if failures >= policy.max_stream_reconnects:
                    raise ConnectionFailed(f"streamCampaignStats: {describe(exc)}", exc) from exc
                failures += 1
                delay = policy.backoff_delay(failures - 1)
                await self._wait(RetryNotice("streamCampaignStats", failures, delay, None, describe(exc)))

    stream_campaign_stats = stream_stats

    async def get_campaign_timeseries(
        self,
        campaign_id: str,
        *,
        interval: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        tz: str | None = None,
    ) -> models.Timeseries:
        """GET /getCampaignTimeseries/{campaignId}; as Client.get_campaign_timeseries."""
        return await self._send(ops.get_campaign_timeseries(campaign_id, interval, from_, to, tz))

    # -- drill-down and exports --------------------------------------------------------------------

    async def get_contacts(
        self,
        campaign_id: str,
        *,
        state: str | None = None,
        last_outcome: str | None = None,
        phone: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Contact]:
        """GET /getContacts/{campaignId}; as Client.get_contacts."""
        return await self._send(ops.get_contacts(campaign_id, state, last_outcome, phone, limit, cursor))

    def iter_contacts(
        self,
        campaign_id: str,
        *,
        state: str | None = None,
        last_outcome: str | None = None,
        phone: str | None = None,
        page_size: int = 1_000,
    ) -> AsyncIterator[models.Contact]:
        """Every contact, getContacts page after page (`async for`); as Client.iter_contacts."""
        return self._walk(
            lambda cursor: self.get_contacts(
                campaign_id,
                state=state,
                last_outcome=last_outcome,
                phone=phone,
                limit=page_size,
                cursor=cursor,
            )
        )

    async def get_contact(self, campaign_id: str, contact_id: int) -> models.ContactDetail:
        """GET /getContact/{campaignId}/{contactId}; as Client.get_contact."""
        return await self._send(ops.get_contact(campaign_id, contact_id))

    async def get_calls(
        self,
        campaign_id: str,
        *,
        outcome: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Call]:
        """GET /getCalls/{campaignId}; as Client.get_calls."""
        return await self._send(ops.get_calls(campaign_id, outcome, from_, to, limit, cursor))

    def iter_calls(
        self,
        campaign_id: str,
        *,
        outcome: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        page_size: int = 1_000,
    ) -> AsyncIterator[models.Call]:
        """Every call, getCalls page after page (`async for`); as Client.iter_calls."""
        return self._walk(
            lambda cursor: self.get_calls(
                campaign_id, outcome=outcome, from_=from_, to=to, limit=page_size, cursor=cursor
            )
        )

    async def _export(
        self, op: ops.Operation[None], out: models.Sink | str | os.PathLike[str]
    ) -> models.Export:
        response = await self._response(op, stream=True)
        written = 0
        try:
            with contextlib.ExitStack() as files:
                sink = (
                    files.enter_context(Path(out).open("wb")) if isinstance(out, str | os.PathLike) else out
                )
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{op.name}: {describe(exc)} after {written} bytes", exc) from exc
        finally:
            await response.aclose()
        return models.Export(ops.file_name(response), written)

    async def export_contacts(
        self,
        campaign_id: str,
        out: models.Sink | str | os.PathLike[str],
        *,
        format: str = "csv",
        state: str | None = None,
        last_outcome: str | None = None,
        phone: str | None = None,
    ) -> models.Export:
        """GET /exportContacts/{campaignId} into `out`; as Client.export_contacts."""
        return await self._export(ops.export_contacts(campaign_id, format, state, last_outcome, phone), out)

    async def export_calls(
        self,
        campaign_id: str,
        out: models.Sink | str | os.PathLike[str],
        *,
        format: str = "csv",
        outcome: str | None = None,
        from_: str | None = None,
        to: str | None = None,
    ) -> models.Export:
        """GET /exportCalls/{campaignId} into `out`; as Client.export_calls."""
        return await self._export(ops.export_calls(campaign_id, format, outcome, from_, to), out)

    # -- carriers ----------------------------------------------------------------------------------

    async def create_carrier_connection(
        self,
        provider: str,
        secret: str,
        *,
        name: str | None = None,
        outcome_map: Mapping[str, str] | None = None,
    ) -> models.CarrierConnection:
        """POST /createCarrierConnection; as Client.create_carrier_connection."""
        return await self._send(ops.create_carrier_connection(provider, secret, name, outcome_map))

    async def get_carrier_connections(self) -> list[models.CarrierConnection]:
        """GET /getCarrierConnections; as Client.get_carrier_connections."""
        return await self._send(ops.get_carrier_connections())

    async def delete_carrier_connection(self, connection_id: str) -> models.DeletedConnection:
        """POST /deleteCarrierConnection/{connectionId}; as Client.delete_carrier_connection."""
        return await self._send(ops.delete_carrier_connection(connection_id))

    async def get_unmatched_callbacks(
        self, *, connection_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> models.Page[models.UnmatchedCallback]:
        """GET /getUnmatchedCallbacks; as Client.get_unmatched_callbacks."""
        return await self._send(ops.get_unmatched_callbacks(connection_id, limit, cursor))

    def iter_unmatched_callbacks(
        self, *, connection_id: str | None = None, page_size: int = 200
    ) -> AsyncIterator[models.UnmatchedCallback]:
        """Every unmatched callback, page after page (`async for`); as Client.iter_unmatched_callbacks."""
        return self._walk(
            lambda cursor: self.get_unmatched_callbacks(
                connection_id=connection_id, limit=page_size, cursor=cursor
            )
        )

    async def replay_callback(self, callback_id: str) -> models.CallbackVerdict:
        """POST /replayCallback/{callbackId}; as Client.replay_callback."""
        return await self._send(ops.replay_callback(callback_id))

    # -- the server --------------------------------------------------------------------------------

    async def health(self) -> models.Health:
        """GET /health; as Client.health."""
        return await self._send(ops.health())

    async def ready(self) -> bool:
        """GET /ready; as Client.ready."""
        return await self._send(ops.ready())

    async def metrics(self, *, token: str | None = None) -> str:
        """GET /metrics; as Client.metrics."""
        return await self._send(ops.metrics(token))
