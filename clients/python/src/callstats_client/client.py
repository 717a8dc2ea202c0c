"""Client: the callstats API from synchronous code, one method per route (docs/client.md)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

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
from callstats_client.errors import ConnectionFailed, error_from_response

T = TypeVar("T")
ProgressCallback = Callable[[models.AddContactsProgress], None]


class Client:
    """A synchronous client of one callstats server, authenticated by one API key.

    `base_url` is the server's root (`http://127.0.0.1:8000`); `api_key` is sent as `x-api-key` on
    every request. `timeout` (seconds) bounds each step of a request; `stream_read_timeout` how long
    the live stream may stay silent (the server pings every 15 s). `retry` sets how often and how long
    to retry (RetryPolicy); `on_retry` is told of every retry before its wait. `http`, an httpx.Client
    of your own (proxies, certificates), is used instead of one made here (its base URL is replaced).

    Use it as a context manager, or call close(). Every method raises a callstats_client.errors class
    for an error answer (ValidationError, Unauthorized, Forbidden, NotFound, Conflict, RateLimited,
    ServiceUnavailable, ...) and ConnectionFailed when the server cannot be reached after the retries.
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
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings(base_url, api_key, timeout, stream_read_timeout, retry, on_retry)
        self._http = http or httpx.Client(timeout=timeout)
        self._http.base_url = httpx.URL(self.settings.base_url)
        self._http.headers.update(self.settings.headers())

    def close(self) -> None:
        """Close the connections (the httpx client, also one passed in)."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------------------

    def _wait(self, notice: RetryNotice) -> None:
        if self.settings.on_retry is not None:
            self.settings.on_retry(notice)
        time.sleep(notice.delay)

    def _response(self, op: ops.Operation[T], stream: bool = False) -> httpx.Response:
        """The 2xx answer to `op`, after the retries the policy allows; the error it stands for else."""
        policy = self.settings.retry
        transport_retries = status_retries = 0
        while True:
            request = self._http.build_request(
                op.method, op.path, params=op.params, content=op.content, headers=op.headers()
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = policy.after_transport_error(exc, op.repeatable, transport_retries)
                if delay is None:
                    raise ConnectionFailed(
                        f"{op.name}: {describe(exc)} ({self.settings.base_url})", exc
                    ) from exc
                transport_retries += 1
                self._wait(RetryNotice(op.name, transport_retries, delay, None, describe(exc)))
                continue
            if response.is_success:
                return response
            if stream:
                response.read()
                response.close()
            error = error_from_response(response)
            delay = policy.after_answer(error, op.repeatable, status_retries) if op.retry_status else None
            if delay is None:
                raise error
            status_retries += 1
            self._wait(RetryNotice(op.name, status_retries, delay, error.status, error.message))

    def _send(self, op: ops.Operation[T]) -> T:
        return op.parse(self._response(op))

    def _walk(self, fetch: Callable[[str | None], models.Page[T]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- campaigns ---------------------------------------------------------------------------------

    def create_campaign(
        self,
        name: str,
        *,
        max_attempts: int | None = None,
        retry_on: Sequence[str] | None = None,
        default_region: str | None = None,
        stall_after_minutes: int | None = None,
    ) -> models.Campaign:
        """POST /createCampaign: a new campaign named `name` (1-200 characters).

        `max_attempts` 1-100 (server default 3); `retry_on` the outcomes retried, a subset of busy,
        no_answer, voicemail, failed (default all; [] none); `default_region` ISO 3166-1 alpha-2 of
        numbers without +country; `stall_after_minutes` 1-43200 (default 30). Returns the Campaign.
        Raises ValidationError (a field), Unauthorized, Forbidden (a read key).
        """
        return self._send(
            ops.create_campaign(name, max_attempts, retry_on, default_region, stall_after_minutes)
        )

    def get_campaigns(
        self, *, limit: int | None = None, cursor: str | None = None, status: str | None = None
    ) -> models.Page[models.Campaign]:
        """GET /getCampaigns: one page of the account's campaigns, newest first.

        `limit` 1-200 (default 50), `cursor` a page's next_cursor, `status` one of not_started,
        running, stalled, completed. Returns a Page of Campaign. Raises ValidationError, Unauthorized.
        """
        return self._send(ops.get_campaigns(limit, cursor, status))

    def iter_campaigns(self, *, status: str | None = None, page_size: int = 200) -> Iterator[models.Campaign]:
        """Every campaign of the account (getCampaigns page after page), newest first; as get_campaigns."""
        return self._walk(lambda cursor: self.get_campaigns(limit=page_size, cursor=cursor, status=status))

    def get_campaign(self, campaign_id: str) -> models.Campaign:
        """GET /getCampaign/{campaignId}: one campaign with its status now.

        Returns the Campaign. Raises NotFound (none for this account), ValidationError (not a UUID),
        Unauthorized.
        """
        return self._send(ops.get_campaign(campaign_id))

    def delete_campaign(self, campaign_id: str) -> models.DeletedCampaign:
        """POST /deleteCampaign/{campaignId}: delete the campaign and everything stored for it.

        Returns DeletedCampaign. Raises NotFound (also when deleted already), Forbidden (a read key),
        ValidationError, Unauthorized.
        """
        return self._send(ops.delete_campaign(campaign_id))

    def forget_contact(self, campaign_id: str, contact_id: int) -> models.ForgottenContact:
        """POST /forgetContact/{campaignId}/{contactId}: erase a contact's phone, name and metadata.

        Safe to repeat (the first erasure's time is kept). Returns ForgottenContact. Raises NotFound
        (no such contact), Forbidden, ValidationError, Unauthorized.
        """
        return self._send(ops.forget_contact(campaign_id, contact_id))

    def add_contacts(
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
        """POST /addContacts/{campaignId}, as many times as needed: add contacts to a campaign.

        `contacts` is rows (mappings with `phone`, optional `name` and `metadata`) or the path of a CSV
        file (a header row naming the phone column; `,` `;` tab or `|`; read in `encoding`), sent
        `batch_size` (at most 10,000) rows per request. `region` reads numbers without +country,
        `phone_column` names the CSV's phone column. `on_progress` gets an AddContactsProgress after
        each request. Returns the AddContactsResult of every request, rows numbered from 1 across
        them. Raises InvalidCsv before any request for a file that cannot be read; ValidationError,
        NotFound, Forbidden, Unauthorized (the requests before it stay done; sending the same rows
        again adds nothing twice: repeats are duplicates).
        """
        bodies, total = contact_bodies(contacts, encoding, batch_size)
        result, sent = models.AddContactsResult(), 0
        for body in bodies:
            data = self._send(
                ops.add_contacts(campaign_id, body.content, body.content_type, region, phone_column)
            )
            result, sent = result.plus(data, sent), sent + body.count
            if on_progress is not None:
                on_progress(models.AddContactsProgress(sent, total, result))
        return result

    def add_contacts_csv(
        self,
        campaign_id: str,
        csv: bytes,
        *,
        charset: str = "utf-8",
        region: str | None = None,
        phone_column: str | None = None,
    ) -> models.AddContactsResult:
        """POST /addContacts/{campaignId} once, with `csv` as the body (a header row, then at most 10,000
        rows, in `charset`), as it is: for callers that split a file themselves.

        Returns its AddContactsResult (rows numbered as the body holds them, from 1). Raises
        ValidationError (malformed CSV, no phone column, too many rows), NotFound, Forbidden,
        Unauthorized, PayloadTooLarge.
        """
        op = ops.add_contacts(campaign_id, csv, f"text/csv; charset={charset}", region, phone_column)
        return models.AddContactsResult().plus(self._send(op), 0)

    def get_campaign_summaries(self, campaign_ids: Iterable[str]) -> list[models.CampaignSummary]:
        """GET /getCampaignSummaries: the contact counts and success rate of campaigns, for lists.

        Any number of ids (sent 200 per request); ids the account has no campaign for are left out,
        the others come in the order given. Not counted against any stats rate limit. Returns a list
        of CampaignSummary. Raises ValidationError (an id not a UUID), Unauthorized.
        """
        return [s for chunk in id_chunks(campaign_ids) for s in self._send(ops.get_campaign_summaries(chunk))]

    # -- events and statistics ---------------------------------------------------------------------

    def record_events(
        self, events: Iterable[Mapping[str, Any]], *, batch_size: int = 1_000
    ) -> models.RecordEventsResult:
        """POST /recordCallEvents, as many times as needed: record call events.

        `events` are recordCallEvents items (event_id, campaign_id, contact_id or phone, call_id, type,
        outcome, duration_seconds, occurred_at, ...; docs/api.md), sent `batch_size` (at most 1,000)
        per request. Idempotent by event_id, so a request whose connection broke is sent again.
        Returns the RecordEventsResult of every event, in order (`index` over all of them); a
        rejected event is a result, not an error. Raises ValidationError (a body the server cannot
        read), ServiceUnavailable, Forbidden, Unauthorized; resending every event is then safe.
        """
        result, sent = models.RecordEventsResult(), 0
        for body in event_bodies(events, batch_size):
            result, sent = (
                result.plus(self._send(ops.record_call_events(body.content)), sent),
                sent + body.count,
            )
        return result

    record_call_events = record_events

    def get_campaign_stats(self, campaign_id: str, *, include: Sequence[str] = ()) -> models.CampaignStats:
        """GET /getCampaignStats/{campaignId}: the campaign's statistics, exactly the seed's.

        `include` adds sections: attempts, durations, raw_outcomes. Returns CampaignStats. Raises
        RateLimited (over the campaign's quota, after the retries: `retry_after`), NotFound,
        ValidationError, Unauthorized.
        """
        return self._send(ops.get_campaign_stats(campaign_id, include))

    def stream_stats(
        self, campaign_id: str, *, last_event_id: str | None = None
    ) -> Generator[models.CampaignStats, None, None]:
        """GET /streamCampaignStats/{campaignId}: the campaign's statistics now and at every change.

        Yields CampaignStats for each `stats` message, for ever: when the stream ends or breaks it
        reconnects with Last-Event-ID (at once after a stream that brought news, after `retry.backoff`
        after one that brought none, with back-off after a failure, honouring Retry-After on 429/503),
        so numbers already yielded are not yielded again; it gives up with ConnectionFailed after
        `retry.max_stream_reconnects` failed attempts in a row. Stop by leaving the loop (or close()
        on the iterator). Raises NotFound (also once the campaign is deleted), ValidationError,
        Unauthorized, ConnectionFailed.
        """
        policy = self.settings.retry
        failures, last_id = 0, last_event_id
        while True:
            headers = {} if last_id is None else {"last-event-id": last_id}
            try:
                with connect_sse(
                    self._http,
                    "GET",
                    ops.stream_path(campaign_id),
                    headers=headers,
                    timeout=self.settings.stream_timeout(),
                ) as source:
                    response = source.response
                    if not response.is_success:
                        response.read()
                        error = error_from_response(response)
                        delay = policy.after_answer(error, True, failures)
                        if delay is None or failures >= policy.max_stream_reconnects:
                            raise error
                        failures += 1
                        self._wait(
                            RetryNotice("streamCampaignStats", failures, delay, error.status, error.message)
                        )
                        continue
                    delivered = False
                    for event in source.iter_sse():
                        if event.event == "stats" and event.data:
                            failures, last_id, delivered = 0, event.id or last_id, True
                            yield ops.stats_message(event.data)
                # The server ended the stream: reconnect at once, or after a pause when it brought
                # nothing (a quiet campaign's stream timing out, or a server that closes every stream).
                if not delivered:
                    time.sleep(policy.backoff)
            except httpx.TransportError as exc:
                if failures >= policy.max_stream_reconnects:
                    raise ConnectionFailed(f"streamCampaignStats: {describe(exc)}", exc) from exc
                failures += 1
                self._wait(
                    RetryNotice(
                        "streamCampaignStats",
                        failures,
                        policy.backoff_delay(failures - 1),
                        None,
                        describe(exc),
                    )
                )

    stream_campaign_stats = stream_stats

    def get_campaign_timeseries(
        self,
        campaign_id: str,
        *,
        interval: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        tz: str | None = None,
    ) -> models.Timeseries:
        """GET /getCampaignTimeseries/{campaignId}: the campaign's figures per minute, hour or day.

        `interval` minute, hour (default) or day; `from_` and `to` ISO 8601 bounds (the API's `from`
        and `to`); `tz` an IANA zone (default UTC). Returns Timeseries. Raises ValidationError,
        NotFound, Unauthorized.
        """
        return self._send(ops.get_campaign_timeseries(campaign_id, interval, from_, to, tz))

    # -- drill-down and exports --------------------------------------------------------------------

    def get_contacts(
        self,
        campaign_id: str,
        *,
        state: str | None = None,
        last_outcome: str | None = None,
        phone: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Contact]:
        """GET /getContacts/{campaignId}: one page of the campaign's contacts, in the order added.

        Filters `state`, `last_outcome`, `phone`; `limit` 1-1000 (default 100); `cursor` a page's
        next_cursor. Returns a Page of Contact. Raises ValidationError, NotFound, Unauthorized.
        """
        return self._send(ops.get_contacts(campaign_id, state, last_outcome, phone, limit, cursor))

    def iter_contacts(
        self,
        campaign_id: str,
        *,
        state: str | None = None,
        last_outcome: str | None = None,
        phone: str | None = None,
        page_size: int = 1_000,
    ) -> Iterator[models.Contact]:
        """Every contact getContacts lists for these filters, page after page; as get_contacts."""
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

    def get_contact(self, campaign_id: str, contact_id: int) -> models.ContactDetail:
        """GET /getContact/{campaignId}/{contactId}: one contact and its calls in attempt order.

        Returns ContactDetail. Raises NotFound, ValidationError, Unauthorized.
        """
        return self._send(ops.get_contact(campaign_id, contact_id))

    def get_calls(
        self,
        campaign_id: str,
        *,
        outcome: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> models.Page[models.Call]:
        """GET /getCalls/{campaignId}: one page of the campaign's calls, newest first.

        `outcome` filters ended calls; `from_`/`to` bound their start, [from, to), ISO 8601; `limit`
        1-1000; `cursor` a page's next_cursor. Returns a Page of Call. Raises ValidationError,
        NotFound, Unauthorized.
        """
        return self._send(ops.get_calls(campaign_id, outcome, from_, to, limit, cursor))

    def iter_calls(
        self,
        campaign_id: str,
        *,
        outcome: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        page_size: int = 1_000,
    ) -> Iterator[models.Call]:
        """Every call getCalls lists for these filters, page after page; as get_calls."""
        return self._walk(
            lambda cursor: self.get_calls(
                campaign_id, outcome=outcome, from_=from_, to=to, limit=page_size, cursor=cursor
            )
        )

    def _export(self, op: ops.Operation[None], out: models.Sink | str | os.PathLike[str]) -> models.Export:
        response = self._response(op, stream=True)
        written = 0
        try:
            with contextlib.ExitStack() as files:
                sink = (
                    files.enter_context(Path(out).open("wb")) if isinstance(out, str | os.PathLike) else out
                )
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{op.name}: {describe(exc)} after {written} bytes", exc) from exc
        finally:
            response.close()
        return models.Export(ops.file_name(response), written)

    def export_contacts(
        self,
        campaign_id: str,
        out: models.Sink | str | os.PathLike[str],
        *,
        format: str = "csv",
        state: str | None = None,
        last_outcome: str | None = None,
        phone: str | None = None,
    ) -> models.Export:
        """GET /exportContacts/{campaignId}: every contact getContacts lists, as one file, into `out`.

        `out` is a binary file (any object with `write(bytes)`) or a path, written as the bytes arrive;
        `format` csv or ndjson.
        Returns Export (the server's file name, bytes written). Raises ValidationError, NotFound,
        Unauthorized (before anything is written), ConnectionFailed (the download broke).
        """
        return self._export(ops.export_contacts(campaign_id, format, state, last_outcome, phone), out)

    def export_calls(
        self,
        campaign_id: str,
        out: models.Sink | str | os.PathLike[str],
        *,
        format: str = "csv",
        outcome: str | None = None,
        from_: str | None = None,
        to: str | None = None,
    ) -> models.Export:
        """GET /exportCalls/{campaignId}: every call getCalls lists, as one file, into `out`.

        As export_contacts, with getCalls' filters. Returns Export. Raises ValidationError, NotFound,
        Unauthorized, ConnectionFailed.
        """
        return self._export(ops.export_calls(campaign_id, format, outcome, from_, to), out)

    # -- carriers ----------------------------------------------------------------------------------

    def create_carrier_connection(
        self,
        provider: str,
        secret: str,
        *,
        name: str | None = None,
        outcome_map: Mapping[str, str] | None = None,
    ) -> models.CarrierConnection:
        """POST /createCarrierConnection: connect a twilio, retell or vapi account.

        `secret` is the platform's signing secret (stored encrypted, never returned); `outcome_map`
        overrides the mapping of raw statuses. Returns the CarrierConnection with its webhook_url.
        Raises ValidationError, Forbidden, Unauthorized, ServiceUnavailable (no key to seal secrets).
        """
        return self._send(ops.create_carrier_connection(provider, secret, name, outcome_map))

    def get_carrier_connections(self) -> list[models.CarrierConnection]:
        """GET /getCarrierConnections: the account's connections, newest first. Raises Unauthorized."""
        return self._send(ops.get_carrier_connections())

    def delete_carrier_connection(self, connection_id: str) -> models.DeletedConnection:
        """POST /deleteCarrierConnection/{connectionId}: delete a connection (its webhooks then 404).

        Returns DeletedConnection. Raises NotFound, ValidationError, Forbidden, Unauthorized.
        """
        return self._send(ops.delete_carrier_connection(connection_id))

    def get_unmatched_callbacks(
        self, *, connection_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> models.Page[models.UnmatchedCallback]:
        """GET /getUnmatchedCallbacks: one page of the callbacks that could not be applied, newest first.

        `connection_id` keeps one connection's; `limit` 1-200; `cursor` a page's next_cursor. Returns a
        Page of UnmatchedCallback. Raises ValidationError, Unauthorized.
        """
        return self._send(ops.get_unmatched_callbacks(connection_id, limit, cursor))

    def iter_unmatched_callbacks(
        self, *, connection_id: str | None = None, page_size: int = 200
    ) -> Iterator[models.UnmatchedCallback]:
        """Every unmatched callback, page after page; as get_unmatched_callbacks."""
        return self._walk(
            lambda cursor: self.get_unmatched_callbacks(
                connection_id=connection_id, limit=page_size, cursor=cursor
            )
        )

    def replay_callback(self, callback_id: str) -> models.CallbackVerdict:
        """POST /replayCallback/{callbackId}: apply a stored callback again; never counts twice.

        Returns its new CallbackVerdict. Raises NotFound, ValidationError, Forbidden, Unauthorized.
        """
        return self._send(ops.replay_callback(callback_id))

    # -- the server --------------------------------------------------------------------------------

    def health(self) -> models.Health:
        """GET /health: the process is up; returns Health (its version). Raises ConnectionFailed."""
        return self._send(ops.health())

    def ready(self) -> bool:
        """GET /ready: True when the server's database answers. Raises ServiceUnavailable (not retried)."""
        return self._send(ops.ready())

    def metrics(self, *, token: str | None = None) -> str:
        """GET /metrics: the Prometheus text; `token` is the server's CALLSTATS_METRICS_TOKEN if set.

        Raises Unauthorized (token missing or wrong), Forbidden (no token set and not a local client).
        """
        return self._send(ops.metrics(token))
