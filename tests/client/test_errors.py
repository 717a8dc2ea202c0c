"""The client's error classes: raised for real answers of a served process, each carrying the server's
message, and chosen by the envelope's code (else the HTTP status) for the codes no route answers now."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from callstats_client import (
    ApiError,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from callstats_client.errors import error_from_response
from tests.client.conftest import FAST, Retries, Served
from tests.client.proxy import dropping_proxy
from tests.factories import ended_call
from tests.servers import free_port


def test_a_malformed_field_is_a_validation_error_with_the_servers_message(api: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        api.create_campaign("Bad", max_attempts=0)
    assert caught.value.status == 400 and caught.value.code == "VALIDATION_ERROR"
    assert "max_attempts" in caught.value.message


def test_an_unknown_key_is_unauthorized(served: Served) -> None:
    with Client(served.base_url, "cs_not_a_key") as api, pytest.raises(Unauthorized) as caught:
        api.get_campaigns()
    assert caught.value.status == 401 and caught.value.message


def test_a_read_key_may_not_write(served: Served) -> None:
    with Client(served.base_url, served.read_key) as api, pytest.raises(Forbidden) as caught:
        api.create_campaign("Read only")
    assert caught.value.status == 403 and "read-only" in caught.value.message


def test_an_unknown_campaign_is_not_found(api: Client) -> None:
    with pytest.raises(NotFound) as caught:
        api.get_campaign_stats(str(uuid.uuid4()))
    assert (caught.value.status, caught.value.code) == (404, "NOT_FOUND")


def test_a_body_over_the_servers_limit_is_payload_too_large(api: Client) -> None:
    """A batch of 1,000 events padded past the server's 5 MiB limit: 413, and nothing recorded."""
    campaign = api.create_campaign("Too large")
    pad = "x" * 6_000
    events = [
        {**ended_call(campaign.campaign_id, "+14155550100", f"big-{uuid.uuid4().hex}", "busy"), "pad": pad}
        for _ in range(1_000)
    ]
    with pytest.raises(PayloadTooLarge) as caught:
        api.record_events(events)
    assert caught.value.status == 413
    assert api.get_campaign_stats(campaign.campaign_id).call_status_breakdown.busy == 0


def test_no_server_is_connection_failed_after_the_bounded_retries() -> None:
    """Nothing listens: a GET is tried 1 + max_retries times, each wait longer, then ConnectionFailed."""
    retries = Retries()
    policy = RetryPolicy(max_retries=2, backoff=0.01)
    url = f"http://127.0.0.1:{free_port()}"
    with (
        Client(url, "cs_x", retry=policy, on_retry=retries) as api,
        pytest.raises(ConnectionFailed) as caught,
    ):
        api.get_campaigns()
    assert isinstance(caught.value.cause, httpx.ConnectError)
    assert [(n.operation, n.retry, n.delay) for n in retries.notices] == [
        ("getCampaigns", 1, 0.01),
        ("getCampaigns", 2, 0.02),
    ]


def test_a_create_whose_answer_was_lost_is_not_sent_again(served: Served) -> None:
    """createCampaign is not safe to repeat: when the connection breaks after the request went out,
    the client raises ConnectionFailed instead of retrying, and the campaign exists once."""
    name = f"Once {uuid.uuid4().hex[:8]}"
    retries = Retries()
    with (
        dropping_proxy(served.server.port, b"POST /createCampaign", drop=1) as proxy,
        Client(proxy.base_url, served.write_key, retry=FAST, on_retry=retries) as api,
    ):
        with pytest.raises(ConnectionFailed):
            api.create_campaign(name)
        assert [c.name for c in api.iter_campaigns()].count(name) == 1
    assert proxy.dropped == 1 and retries.notices == []


def _answer(status: int, body: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("VALIDATION_ERROR", 400, ValidationError),
        ("UNAUTHORIZED", 401, Unauthorized),
        ("FORBIDDEN", 403, Forbidden),
        ("NOT_FOUND", 404, NotFound),
        ("METHOD_NOT_ALLOWED", 405, MethodNotAllowed),
        ("CONFLICT", 409, Conflict),
        ("PAYLOAD_TOO_LARGE", 413, PayloadTooLarge),
        ("RATE_LIMITED", 429, RateLimited),
        ("INTERNAL_SERVER_ERROR", 500, ServerError),
        ("SERVICE_UNAVAILABLE", 503, ServiceUnavailable),
    ],
)
def test_every_error_code_has_its_class(code: str, status: int, cls: type[ApiError]) -> None:
    """The envelope's code picks the class (whatever the status), the status does without an envelope."""
    envelope = f'{{"success": false, "message": "said {code}", "error": "{code}"}}'.encode()
    by_code = error_from_response(_answer(418, envelope, **{"x-request-id": "r-1"}))
    assert type(by_code) is cls and by_code.message == f"said {code}" and by_code.request_id == "r-1"
    by_status = error_from_response(_answer(status, b"<html>proxy error</html>"))
    assert type(by_status) is cls and by_status.message == "<html>proxy error</html>"


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    envelope = b'{"success": false, "message": "busy", "error": "SERVICE_UNAVAILABLE"}'
    seconds = error_from_response(_answer(503, envelope, **{"retry-after": "7"}))
    assert isinstance(seconds, ServiceUnavailable) and seconds.retry_after == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    dated = error_from_response(_answer(429, b"", **{"retry-after": later}))
    assert isinstance(dated, RateLimited) and dated.retry_after is not None and 100 < dated.retry_after <= 120
    other = error_from_response(_answer(418, b""))
    assert type(other) is ApiError and other.status == 418
