"""Each route of the API as an Operation: the request to send and how its answer becomes the returned
object. Client and AsyncClient send the same Operations, so both speak the API the same way.

`repeatable` marks a request safe to send twice (every GET; recordCallEvents, idempotent by event_id):
only those are retried after a connection broke mid-request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from callstats_client import models
from callstats_client.errors import ApiError

T = TypeVar("T")
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Operation(Generic[T]):
    """One request of the API (`name` is its operationId) and the parser of its 2xx body."""

    name: str
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    content_type: str | None = None
    repeatable: bool = False
    retry_status: bool = True  # 429 / 503 retried after Retry-After (off for /ready: it reports them)
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        """The request's own headers (the client adds the key)."""
        own = {"content-type": self.content_type} if self.content_type else {}
        return own | self.extra_headers


def segment(value: object) -> str:
    """A path segment (an id), percent-encoded."""
    return quote(str(value), safe="")


def _query(**values: object) -> dict[str, str]:
    """The query parameters given (None left out), as the API writes them."""
    return {name: _text(value) for name, value in values.items() if value is not None}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in body.items() if v is not None}, separators=(",", ":")).encode()


def data_of(envelope: Any) -> Any:
    """The envelope's `data`; an ApiError when the answer is not the success envelope."""
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise ApiError("the answer is not callstats' envelope", status=200, code="BAD_ANSWER")
    return envelope["data"]


def envelope_of(response: httpx.Response) -> Any:
    """The answer's JSON; an ApiError when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        raise ApiError("the answer is not JSON", status=response.status_code, code="BAD_ANSWER") from None


def _one(build: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    return lambda response: build(data_of(envelope_of(response)))


def _list(build: Callable[[Any], T], key: str | None = None) -> Callable[[httpx.Response], list[T]]:
    def parse(response: httpx.Response) -> list[T]:
        data = data_of(envelope_of(response))
        return [build(item) for item in (data if key is None else data[key])]

    return parse


def _page(build: Callable[[Json], T]) -> Callable[[httpx.Response], models.Page[T]]:
    def parse(response: httpx.Response) -> models.Page[T]:
        envelope = envelope_of(response)
        pagination = envelope.get("pagination") or {}
        return models.Page(
            items=[build(item) for item in data_of(envelope)],
            next_cursor=pagination.get("next_cursor"),
            limit=int(pagination.get("limit", 0)),
        )

    return parse


def _post(
    name: str, path: str, parse: Callable[[httpx.Response], T], body: bytes | None = None, **kw: Any
) -> Operation[T]:
    content_type = "application/json" if body is not None else None
    return Operation(name, "POST", path, parse, content=body, content_type=content_type, **kw)


def _get(name: str, path: str, parse: Callable[[httpx.Response], T], **params: object) -> Operation[T]:
    return Operation(name, "GET", path, parse, params=_query(**params), repeatable=True)


def create_campaign(
    name: str,
    max_attempts: int | None,
    retry_on: Sequence[str] | None,
    default_region: str | None,
    stall_after_minutes: int | None,
) -> Operation[models.Campaign]:
    body = {
        "name": name,
        "max_attempts": max_attempts,
        "retry_on": None if retry_on is None else list(retry_on),
        "default_region": default_region,
        "stall_after_minutes": stall_after_minutes,
    }
    return _post("createCampaign", "/createCampaign", _one(models.Campaign.from_json), _json(body))


def get_campaigns(
    limit: int | None, cursor: str | None, status: str | None
) -> Operation[models.Page[models.Campaign]]:
    return _get(
        "getCampaigns",
        "/getCampaigns",
        _page(models.Campaign.from_json),
        limit=limit,
        cursor=cursor,
        status=status,
    )


def get_campaign(campaign_id: str) -> Operation[models.Campaign]:
    return _get("getCampaign", f"/getCampaign/{segment(campaign_id)}", _one(models.Campaign.from_json))


def delete_campaign(campaign_id: str) -> Operation[models.DeletedCampaign]:
    path = f"/deleteCampaign/{segment(campaign_id)}"
    return _post("deleteCampaign", path, _one(models.DeletedCampaign.from_json))


def forget_contact(campaign_id: str, contact_id: int) -> Operation[models.ForgottenContact]:
    path = f"/forgetContact/{segment(campaign_id)}/{segment(contact_id)}"
    return _post("forgetContact", path, _one(models.ForgottenContact.from_json))


def add_contacts(
    campaign_id: str, content: bytes, content_type: str, region: str | None, phone_column: str | None
) -> Operation[Json]:
    """One addContacts request; its parse gives the raw `data` (the client sums the requests)."""
    return Operation(
        "addContacts",
        "POST",
        f"/addContacts/{segment(campaign_id)}",
        _one(dict),
        params=_query(region=region, phone_column=phone_column),
        content=content,
        content_type=content_type,
    )


def get_campaign_summaries(campaign_ids: Iterable[str]) -> Operation[list[models.CampaignSummary]]:
    parse = _list(models.CampaignSummary.from_json)
    return _get("getCampaignSummaries", "/getCampaignSummaries", parse, campaignIds=",".join(campaign_ids))


def record_call_events(content: bytes) -> Operation[Json]:
    """One recordCallEvents request (idempotent by event_id, so repeatable); parse gives the raw `data`."""
    return _post("recordCallEvents", "/recordCallEvents", _one(dict), content, repeatable=True)


def get_campaign_stats(campaign_id: str, include: Sequence[str]) -> Operation[models.CampaignStats]:
    path = f"/getCampaignStats/{segment(campaign_id)}"
    return _get("getCampaignStats", path, _one(models.CampaignStats.from_json), include=list(include) or None)


def get_campaign_timeseries(
    campaign_id: str, interval: str | None, start: str | None, end: str | None, tz: str | None
) -> Operation[models.Timeseries]:
    path = f"/getCampaignTimeseries/{segment(campaign_id)}"
    params = _query(interval=interval, to=end, tz=tz) | _query(**{"from": start})
    return Operation(
        "getCampaignTimeseries", "GET", path, _one(models.Timeseries.from_json), params, repeatable=True
    )


def get_contacts(
    campaign_id: str,
    state: str | None,
    last_outcome: str | None,
    phone: str | None,
    limit: int | None,
    cursor: str | None,
) -> Operation[models.Page[models.Contact]]:
    path = f"/getContacts/{segment(campaign_id)}"
    return _get(
        "getContacts",
        path,
        _page(models.Contact.from_json),
        state=state,
        last_outcome=last_outcome,
        phone=phone,
        limit=limit,
        cursor=cursor,
    )


def get_contact(campaign_id: str, contact_id: int) -> Operation[models.ContactDetail]:
    path = f"/getContact/{segment(campaign_id)}/{segment(contact_id)}"
    return _get("getContact", path, _one(models.ContactDetail.from_json))


def call_filter(outcome: str | None, start: str | None, end: str | None) -> dict[str, str]:
    """getCalls' and exportCalls' filters as query parameters."""
    return _query(outcome=outcome, to=end) | _query(**{"from": start})


def get_calls(
    campaign_id: str,
    outcome: str | None,
    start: str | None,
    end: str | None,
    limit: int | None,
    cursor: str | None,
) -> Operation[models.Page[models.Call]]:
    path = f"/getCalls/{segment(campaign_id)}"
    params = call_filter(outcome, start, end) | _query(limit=limit, cursor=cursor)
    return Operation("getCalls", "GET", path, _page(models.Call.from_json), params, repeatable=True)


def export_contacts(
    campaign_id: str, format: str, state: str | None, last_outcome: str | None, phone: str | None
) -> Operation[None]:
    """exportContacts: the client streams the body itself (parse is unused)."""
    params = _query(format=format, state=state, last_outcome=last_outcome, phone=phone)
    path = f"/exportContacts/{segment(campaign_id)}"
    return Operation("exportContacts", "GET", path, lambda response: None, params, repeatable=True)


def export_calls(
    campaign_id: str, format: str, outcome: str | None, start: str | None, end: str | None
) -> Operation[None]:
    """exportCalls: the client streams the body itself (parse is unused)."""
    params = _query(format=format) | call_filter(outcome, start, end)
    path = f"/exportCalls/{segment(campaign_id)}"
    return Operation("exportCalls", "GET", path, lambda response: None, params, repeatable=True)


def create_carrier_connection(
    provider: str, secret: str, name: str | None, outcome_map: Mapping[str, str] | None
) -> Operation[models.CarrierConnection]:
    body = {"provider": provider, "secret": secret, "name": name, "outcome_map": outcome_map}
    parse = _one(models.CarrierConnection.from_json)
    return _post("createCarrierConnection", "/createCarrierConnection", parse, _json(body))


def get_carrier_connections() -> Operation[list[models.CarrierConnection]]:
    parse = _list(models.CarrierConnection.from_json, "connections")
    return _get("getCarrierConnections", "/getCarrierConnections", parse)


def delete_carrier_connection(connection_id: str) -> Operation[models.DeletedConnection]:
    path = f"/deleteCarrierConnection/{segment(connection_id)}"
    return _post("deleteCarrierConnection", path, _one(models.DeletedConnection.from_json))


def get_unmatched_callbacks(
    connection_id: str | None, limit: int | None, cursor: str | None
) -> Operation[models.Page[models.UnmatchedCallback]]:
    parse = _page(models.UnmatchedCallback.from_json)
    return _get(
        "getUnmatchedCallbacks",
        "/getUnmatchedCallbacks",
        parse,
        connection_id=connection_id,
        limit=limit,
        cursor=cursor,
    )


def replay_callback(callback_id: str) -> Operation[models.CallbackVerdict]:
    path = f"/replayCallback/{segment(callback_id)}"
    return _post("replayCallback", path, _one(models.CallbackVerdict.from_json))


def health() -> Operation[models.Health]:
    return _get("health", "/health", _one(lambda d: models.Health(d["status"], d["version"])))


def ready() -> Operation[bool]:
    return Operation("ready", "GET", "/ready", lambda response: True, repeatable=True, retry_status=False)


def metrics(token: str | None) -> Operation[str]:
    """GET /metrics: Prometheus' text; `token` is CALLSTATS_METRICS_TOKEN when the server has one."""
    op = Operation("metrics", "GET", "/metrics", lambda response: response.text, repeatable=True)
    return op if token is None else _with_header(op, "authorization", f"Bearer {token}")


def _with_header(op: Operation[T], name: str, value: str) -> Operation[T]:
    return Operation(
        op.name,
        op.method,
        op.path,
        op.parse,
        op.params,
        op.content,
        op.content_type,
        op.repeatable,
        op.retry_status,
        {**op.extra_headers, name: value},
    )


def stream_path(campaign_id: str) -> str:
    """streamCampaignStats' path."""
    return f"/streamCampaignStats/{segment(campaign_id)}"


def stats_message(data: str) -> models.CampaignStats:
    """The stats a `stats` event's data (getCampaignStats' body) carries."""
    envelope = json.loads(data)
    return models.CampaignStats.from_json(data_of(envelope))


def file_name(response: httpx.Response) -> str | None:
    """The file name an export's Content-Disposition gives (`attachment; filename="..."`)."""
    _, _, name = response.headers.get("content-disposition", "").partition('filename="')
    return name.rstrip('"') or None
