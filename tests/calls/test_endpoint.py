"""recordCallEvents' plain ASGI endpoint keeps the route's contract: methods, limits, which error wins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

from callstats.accounts import keys
from callstats.accounts.service import create_key
from callstats.app import CallstatsApp
from callstats.calls.endpoint import PATH, RecordEventsEndpoint
from callstats.config import Settings
from tests.apps import serving
from tests.conftest import new_campaign
from tests.envelope import assert_error
from tests.factories import call_event, campaign_with_contact


async def test_wrong_method_is_405(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Only POST records events."""
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, "/recordCallEvents", headers=auth)
        assert_error(response, 405, "METHOD_NOT_ALLOWED")


async def test_key_errors_win_over_body_errors(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """A bad body is told only to a valid write key: others hear 401 or 403 first."""
    unknown = {"x-api-key": keys.generate().plaintext}
    read_only = {"x-api-key": make_key("acme", "read")}
    assert_error(
        await client.post("/recordCallEvents", content=b"nope", headers=unknown), 401, "UNAUTHORIZED"
    )
    assert_error(await client.post("/recordCallEvents", content=b"nope", headers=read_only), 403, "FORBIDDEN")
    assert_error(await client.post("/recordCallEvents", content=b"nope"), 401, "UNAUTHORIZED")
    assert_error(
        await client.post("/recordCallEvents", content=b"nope", headers=auth), 400, "VALIDATION_ERROR"
    )


async def test_streamed_body_over_the_limit(database_url: str) -> None:
    """A streamed body over the limit is 413 for a write key, 401 for an unknown one; nothing is stored."""
    async with serving(Settings(database_url=database_url, max_body_bytes=1000)) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme").plaintext}
        campaign_id = await campaign_with_contact(http, auth)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"events": ['
            for n in range(30):
                yield b'{"event_id": "e%d", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},' % n
            yield b"{}]}"

        streamed = await http.post("/recordCallEvents", content=chunks(), headers=auth)
        assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")
        stranger = {"x-api-key": keys.generate().plaintext}
        assert_error(
            await http.post("/recordCallEvents", content=chunks(), headers=stranger), 401, "UNAUTHORIZED"
        )
        event = call_event(campaign_id, "e1", "c1", "call.started")
        small = await http.post("/recordCallEvents", json={"events": [event]}, headers=auth)
        assert small.status_code == 200, small.text
        stats = (await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
        assert stats["calls_in_progress"] == 1


async def test_answer_is_the_documented_envelope(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """200 with every field of RecordEventsEnvelope, nulls included, in order."""
    campaign_id = await new_campaign(client, auth)
    response = await client.post(
        "/recordCallEvents",
        json={"events": [{"event_id": "e1"}, call_event(campaign_id, "e2", "c2", "call.started")]},
        headers=auth,
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["success", "data"] and body["success"] is True
    assert list(body["data"]) == ["received", "applied", "duplicate", "rejected", "results"]
    first, second = body["data"]["results"]
    assert list(first) == ["index", "event_id", "status", "error", "reason"]
    assert (first["status"], first["error"]) == ("rejected", "VALIDATION_ERROR")
    assert second == {
        "index": 1,
        "event_id": "e2",
        "status": "rejected",
        "error": "NOT_FOUND",
        "reason": "contact not found in this campaign",
    }


def test_one_implementation_the_declaration_only_describes_it(app: CallstatsApp) -> None:
    """RecordEventsEndpoint serves recordCallEvents; calls/routes.py's declaration is in /openapi.json
    but never mounted, so it cannot become a second implementation."""
    assert isinstance(app.hot[PATH], RecordEventsEndpoint)
    assert all(getattr(route, "path", None) != PATH for route in app.api.routes)
    assert "post" in app.api.openapi()["paths"][PATH]
