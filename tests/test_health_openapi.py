"""/health, /ready, /openapi.json and /docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import TypeAdapter

from callstats import __version__
from callstats.app import CallstatsApp, HealthEnvelope, ReadyEnvelope
from callstats.calls.schemas import RecordEventsEnvelope
from callstats.stats.schemas import CampaignStats, StatsEnvelope
from callstats.stream.routes import STREAM_HEADERS, STREAM_RESPONSES
from callstats.stream.sse import PING, RETRY_MS
from callstats.timeseries.schemas import TimeseriesEnvelope
from tests.conftest import new_campaign
from tests.factories import add_contacts, create_campaign, phones
from tests.stream.helpers import new_key, serving

ROUTES = {
    "/createCampaign": "post",
    "/getCampaigns": "get",
    "/getCampaign/{campaignId}": "get",
    "/addContacts/{campaignId}": "post",
    "/recordCallEvents": "post",
    "/getCampaignStats/{campaignId}": "get",
    "/deleteCampaign/{campaignId}": "post",
    "/forgetContact/{campaignId}/{contactId}": "post",
    "/getContacts/{campaignId}": "get",
    "/getContact/{campaignId}/{contactId}": "get",
    "/getCalls/{campaignId}": "get",
    "/exportContacts/{campaignId}": "get",
    "/exportCalls/{campaignId}": "get",
}


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    """The served OpenAPI document."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    """/health answers without a key, in the envelope, with the version."""
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"status": "ok", "version": __version__}}


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    """/ready is 200 on a reachable database (the 503 case is in test_errors)."""
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"status": "ready"}}


async def test_openapi_lists_every_route(client: httpx.AsyncClient) -> None:
    """Every API route, the stats hot path included, is described with its method and the key scheme."""
    document = await openapi(client)
    paths = document["paths"]
    assert {"/health", "/ready", *ROUTES} <= set(paths)
    assert document["components"]["securitySchemes"]["x-api-key"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "An API key (`callstats keys create`)",
    }
    for path, method in ROUTES.items():
        operation = paths[path][method]
        assert operation["operationId"] == path.split("/")[1], path
        assert operation["security"] == [{"x-api-key": []}], path
        names = {(p["in"], p["name"].lower()) for p in operation.get("parameters", [])}
        if "{campaignId}" in path:
            assert ("path", "campaignid") in names, path
    stats = paths["/getCampaignStats/{campaignId}"]["get"]
    assert {"200", "304", "400", "401", "404", "429", "500", "503"} <= set(stats["responses"])
    assert ("query", "limit") in {(p["in"], p["name"]) for p in paths["/getCampaigns"]["get"]["parameters"]}


async def test_openapi_write_routes_document_their_body(client: httpx.AsyncClient) -> None:
    """createCampaign documents its JSON body."""
    paths = (await openapi(client))["paths"]
    assert "application/json" in paths["/createCampaign"]["post"]["requestBody"]["content"]


async def test_openapi_documents_raw_bodies(client: httpx.AsyncClient) -> None:
    """addContacts (JSON or CSV) and recordCallEvents (JSON) describe what they take."""
    paths = (await openapi(client))["paths"]
    contacts = paths["/addContacts/{campaignId}"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv"} <= set(contacts)
    assert "application/json" in paths["/recordCallEvents"]["post"]["requestBody"]["content"]


async def test_openapi_documents_400_not_422(client: httpx.AsyncClient) -> None:
    """Validation failures are 400 VALIDATION_ERROR, and the document says so."""
    paths = (await openapi(client))["paths"]
    for path, method in ROUTES.items():
        responses = paths[path][method]["responses"]
        assert "422" not in responses, path
        assert "400" in responses, path


async def test_docs_serve_html(client: httpx.AsyncClient) -> None:
    """/docs is an HTML page pointing at the OpenAPI document."""
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text and "swagger" in response.text.lower()


async def test_openapi_declares_every_campaign_id_a_uuid(client: httpx.AsyncClient) -> None:
    """Every `campaignId` path parameter says it is a UUID, as the server checks (fuzzers read it)."""
    paths = (await openapi(client))["paths"]
    declared = [
        (path, parameter["schema"].get("format"))
        for path, operations in paths.items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "campaignId"
    ]
    assert len(declared) >= 5
    assert all(found == "uuid" for _path, found in declared), declared


async def test_openapi_documents_every_error_a_route_answers(client: httpx.AsyncClient) -> None:
    """A valid UUID of no campaign is a 404, a missing key a 401, a read key writing a 403: all declared."""
    paths = (await openapi(client))["paths"]
    for path, method in ROUTES.items():
        responses = paths[path][method]["responses"]
        assert {"400", "500", "503"} <= set(responses), path
        if "{campaignId}" in path:
            assert "404" in responses, path
        if method == "post":
            assert {"401", "403", "413"} <= set(responses), path


PAGES = {"/openapi.json", "/docs", "/redoc", "/dashboard", "/metrics"}  # served, rightly not API operations


async def test_openapi_matches_the_routes(app: CallstatsApp, client: httpx.AsyncClient) -> None:
    """The document holds every route the server answers, with exactly its methods, and nothing else.

    The app's routes are read from the framework; the two served before it by the dispatcher (stats and
    recordCallEvents) are found by asking: each documented method answers something other than 404/405,
    and each other method answers 405.
    """
    paths = (await openapi(client))["paths"]
    documented = {(path, method.upper()) for path, operations in paths.items() for method in operations}
    served: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.api.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format not in PAGES:
            assert route.include_in_schema, context.path_format
            served |= {(str(context.path_format), m) for m in context.methods or ()}
    raw = {(app.stats_prefix + "{campaignId}", "GET"), *((path, "POST") for path in app.hot)}
    raw |= {(template, "POST") for _endpoint, template in app.prefixed.values()}
    assert documented == served | raw
    campaign = "550e8400-e29b-41d4-a716-446655440000"
    for path in {path for path, _method in documented}:
        url = path.replace("{campaignId}", campaign)
        methods = {m for p, m in documented if p == path}
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            response = await client.request(method, url)
            if method in methods:
                # a route that answers for a resource its path names, here an unknown one: our 404, not
                # the router's "No such route" (a webhook URL's connection, a campaign)
                unknown_resource = "{" in path and response.json()["message"] != "No such route"
                assert response.status_code not in (404, 405) or unknown_resource, (method, path)
            else:
                assert response.status_code == 405, (method, path, response.status_code)


async def test_stats_route_declares_its_answer(client: httpx.AsyncClient) -> None:
    """getCampaignStats: the seed's fields typed, `include` an enum read comma-separated, the rate-limit
    headers, and every error with the envelope."""
    document = await openapi(client)
    schemas = document["components"]["schemas"]
    stats = document["paths"]["/getCampaignStats/{campaignId}"]["get"]
    ok = stats["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/StatsEnvelope"}
    data = schemas["CampaignStats"]
    assert set(data["required"]) == {
        "campaign_id", "campaign_name", "total_contacts", "calls_completed", "calls_failed",
        "calls_in_progress", "calls_pending", "success_rate", "average_call_duration",
        "total_call_duration", "call_status_breakdown", "started_at", "completed_at",
    }  # fmt: skip
    assert {"attempts", "durations", "raw_outcomes"} <= set(data["properties"])
    assert data["properties"]["success_rate"]["type"] == "number"
    assert set(schemas["StatusBreakdown"]["required"]) == {
        "answered",
        "busy",
        "no_answer",
        "failed",
        "voicemail",
    }
    include = next(p for p in stats["parameters"] if p["name"] == "include")
    assert include["schema"]["items"]["enum"] == ["attempts", "durations", "raw_outcomes"]
    assert (include["in"], include["style"], include["explode"]) == ("query", "form", False)
    assert ok["headers"]["ETag"]["required"] and ok["headers"]["RateLimit-Policy"]["required"]
    assert stats["responses"]["429"]["headers"]["Retry-After"]["required"]
    limited = stats["responses"]["429"]["content"]["application/json"]["schema"]
    assert limited["allOf"][1]["properties"]["error"]["enum"] == ["RATE_LIMITED"]


async def test_bodies_are_typed(client: httpx.AsyncClient) -> None:
    """recordCallEvents' items are CallEventIn, createCampaign's retry_on items an enum of outcomes."""
    document = await openapi(client)
    schemas = document["components"]["schemas"]
    events = schemas["RecordCallEventsBody"]["properties"]["events"]
    assert events["items"] == {"$ref": "#/components/schemas/CallEventIn"}
    assert (events["minItems"], events["maxItems"]) == (1, 1000)
    event = schemas["CallEventIn"]
    assert event["properties"]["type"]["enum"] == ["call.started", "call.answered", "call.ended"]
    assert event["properties"]["campaign_id"]["format"] == "uuid"
    assert event["properties"]["occurred_at"]["format"] == "date-time"
    retry_on = schemas["CreateCampaign"]["properties"]["retry_on"]
    assert retry_on["items"]["enum"] == ["busy", "no_answer", "failed", "voicemail"]
    assert schemas["Campaign"]["properties"]["retry_on"]["items"]["enum"] == retry_on["items"]["enum"]


async def test_every_error_status_is_declared_with_the_envelope(client: httpx.AsyncClient) -> None:
    """Each route's error statuses: exactly those it can answer, each with the envelope and its code."""
    paths = (await openapi(client))["paths"]
    codes = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
             413: "PAYLOAD_TOO_LARGE", 500: "INTERNAL_SERVER_ERROR", 503: "SERVICE_UNAVAILABLE"}  # fmt: skip
    expected = {
        "/health": {500},
        "/ready": {500, 503},
        "/createCampaign": {400, 401, 403, 413, 500, 503},
        "/getCampaign/{campaignId}": {400, 401, 404, 500, 503},
        "/recordCallEvents": {400, 401, 403, 413, 500, 503},
        "/getCampaignStats/{campaignId}": {400, 401, 404, 429, 500, 503},
    }
    for path, statuses in expected.items():
        (operation,) = paths[path].values()
        errors = {int(s) for s in operation["responses"] if int(s) >= 400}
        assert errors == statuses, path
        for status in statuses - {429}:
            schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}, (path, status)
            assert schema["allOf"][1]["properties"]["error"]["enum"] == [codes[status]], (path, status)
        if 503 in statuses:
            assert operation["responses"]["503"]["headers"]["Retry-After"]["required"]


async def test_answers_fit_the_declared_models(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """What the hot paths send validates, strictly, against the models the document is made from."""
    campaign = await new_campaign(client, auth)
    added = await client.post(
        f"/addContacts/{campaign}", json={"contacts": [{"phone": "+14155552671"}]}, headers=auth
    )
    assert added.status_code == 200
    events = [
        {"event_id": "d1", "campaign_id": campaign, "phone": "+14155552671", "call_id": "c1",
         "type": "call.started", "occurred_at": "2024-01-16T09:00:00Z"},
        {"event_id": "d2", "campaign_id": campaign, "phone": "+14155552671", "call_id": "c1",
         "type": "call.ended", "outcome": "answered", "duration_seconds": 42,
         "raw_outcome": "twilio:completed", "occurred_at": "2024-01-16T09:01:00Z"},
        {"event_id": "d3", "campaign_id": campaign, "type": "call.started"},
    ]  # fmt: skip
    recorded = await client.post("/recordCallEvents", json={"events": events}, headers=auth)
    assert recorded.status_code == 200
    RecordEventsEnvelope.model_validate(recorded.json(), strict=False)
    assert [r["status"] for r in recorded.json()["data"]["results"]] == ["applied", "applied", "rejected"]
    envelope = TypeAdapter(StatsEnvelope)
    sections = {"attempts", "durations", "raw_outcomes"}
    for query, extras in (
        ("", set()),
        ("?include=attempts,durations", {"attempts", "durations"}),
        ("?include=attempts&include=durations", {"attempts", "durations"}),
        ("?include=attempts,durations,raw_outcomes", sections),
    ):
        answer = await client.get(f"/getCampaignStats/{campaign}{query}", headers=auth)
        assert answer.status_code == 200
        data = envelope.validate_python(answer.json(), strict=True)["data"]
        seed_fields = set(CampaignStats.__annotations__) - sections
        assert set(answer.json()["data"]) == seed_fields | extras
        assert data["call_status_breakdown"]["answered"] == 1
    bad = await client.get(f"/getCampaignStats/{campaign}?include=everything", headers=auth)
    assert (bad.status_code, bad.json()["error"]) == (400, "VALIDATION_ERROR")


async def test_docs_pages_load_nothing_from_outside(client: httpx.AsyncClient) -> None:
    """/docs and /redoc name only this server's files (no CDN), which are served, with a strict CSP."""
    for page, assets in (
        ("/docs", ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css")),
        ("/redoc", ("/docs/static/redoc.standalone.js",)),
    ):
        response = await client.get(page)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text, page
        assert "img-src 'self' data:" in response.headers["content-security-policy"]
        for asset in assets:
            assert f'"{asset}"' in response.text, asset
            served = await client.get(asset)
            assert served.status_code == 200 and len(served.content) > 100_000, asset


# 2xx answers that are not one JSON document, and why: each *event* of a stream is declared instead
# (the media type's `itemSchema`, as FastAPI declares its own SSE routes and schemathesis checks them).
STREAMS = {
    ("/streamCampaignStats/{campaignId}", "200"): "text/event-stream",
}
FILES = {"text/csv", "application/x-ndjson"}  # the exports' 200: a file, declared as a string


def untyped_parts(schema: dict[str, Any], schemas: dict[str, Any], where: str = "") -> list[str]:
    """Where a schema (its $refs followed) holds an object with no declared fields, or no type at all."""
    seen: set[str] = set()
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        schema = schemas[name]
    found: list[str] = []
    typed = {"type", "const", "enum", "anyOf", "oneOf", "allOf"} & set(schema)
    free = schema.get("type") == "object" and not schema.get("properties")
    if not typed or (free and not isinstance(schema.get("additionalProperties"), dict)):
        found.append(where or "<answer>")
    for name, field in schema.get("properties", {}).items():
        found += untyped_parts(field, schemas, f"{where}.{name}")
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            found += untyped_parts(schema[keyword], schemas, f"{where}[{keyword}]")
    for keyword in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(keyword, [])):
            found += untyped_parts(option, schemas, f"{where}|{keyword}{index}")
    return found


async def test_no_success_answer_is_an_untyped_object(client: httpx.AsyncClient) -> None:
    """Every 2xx of every route declares its body, field by field, down to the leaves: no `{"type":
    "object"}` without properties, no schema-less media type; the event stream, the one 2xx that is not
    JSON, is a string whose description names each kind of message and the schema of its data."""
    document = await openapi(client)
    schemas = document["components"]["schemas"]
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                if status == "204":  # No Content (a Twilio webhook's answer): no body to declare
                    assert "content" not in response, (method, path)
                    continue
                assert response.get("content"), (method, path, status)
                for media, content in response["content"].items():
                    checked += 1
                    if (path, status) in STREAMS:
                        assert media == STREAMS[path, status] and "schema" not in content
                        item = content["itemSchema"]
                        assert untyped_parts(item, schemas) == [], (method, path, status)
                        data = item["properties"]["data"]["contentSchema"]
                        assert untyped_parts(data, schemas) == [], (method, path, status)
                        continue
                    if path.startswith("/export"):
                        assert media in FILES and content["schema"]["type"] == "string", (path, media)
                        continue
                    assert media == "application/json", (method, path, status, media)
                    assert "schema" in content, (method, path, status)
                    assert untyped_parts(content["schema"], schemas) == [], (method, path, status)
    assert checked >= len(ROUTES) + 5  # every route: health, ready, summaries, timeseries, stream too
    stream = document["paths"]["/streamCampaignStats/{campaignId}"]["get"]["responses"]["200"]
    for kind in (f"retry: {RETRY_MS}", "event: stats", PING.decode().strip(), "StatsEnvelope"):
        assert kind in stream["description"], kind
    event = stream["content"]["text/event-stream"]["itemSchema"]
    assert event["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/StatsEnvelope"}
    assert event["required"] == ["event", "id", "data"]
    assert set(stream["headers"]) == set(STREAM_HEADERS)
    assert untyped_parts({"type": "object", "additionalProperties": True}, schemas) == ["<answer>"]
    assert untyped_parts({}, schemas) == ["<answer>"]


def fits(model: Any, answer: dict[str, Any]) -> Any:
    """The answer validated strictly against the model, with not one field more than it declares."""
    adapter = TypeAdapter(model)
    validated = adapter.validate_python(answer, strict=True)
    assert adapter.dump_python(validated, mode="json") == answer  # nothing dropped, nothing coerced
    return validated


async def test_health_and_timeseries_answers_fit_the_declared_models(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """/health, /ready and getCampaignTimeseries (empty, then with calls, in several zones and intervals)
    send exactly the models the document is made from."""
    document = await openapi(client)
    paths = document["paths"]
    for path, model in (("/health", HealthEnvelope), ("/ready", ReadyEnvelope)):
        declared = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert declared == {"$ref": f"#/components/schemas/{model.__name__}"}
        fits(model, (await client.get(path)).json())
    series = paths["/getCampaignTimeseries/{campaignId}"]["get"]["responses"]["200"]
    schema = series["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/TimeseriesEnvelope"}
    assert document["components"]["schemas"]["Timeseries"]["required"] == [
        "campaign_id", "interval", "tz", "from", "to", "buckets", "totals",
    ]  # fmt: skip
    campaign = await new_campaign(client, auth)
    url = f"/getCampaignTimeseries/{campaign}"
    empty = fits(TimeseriesEnvelope, (await client.get(url, headers=auth)).json())
    assert empty["data"]["totals"]["success_rate"] == 0.0
    added = await client.post(
        f"/addContacts/{campaign}",
        json={"contacts": [{"phone": "+14155552671"}, {"phone": "+14155552672"}]},
        headers=auth,
    )
    assert added.status_code == 200
    events = [
        {"event_id": "t1", "campaign_id": campaign, "phone": "+14155552671", "call_id": "c1",
         "type": "call.started", "occurred_at": "2024-03-10T06:30:00Z"},
        {"event_id": "t2", "campaign_id": campaign, "phone": "+14155552671", "call_id": "c1",
         "type": "call.ended", "outcome": "answered", "duration_seconds": 42,
         "occurred_at": "2024-03-10T07:10:00Z"},
        {"event_id": "t3", "campaign_id": campaign, "phone": "+14155552672", "call_id": "c2",
         "type": "call.ended", "outcome": "busy", "occurred_at": "2024-03-10T07:20:00Z"},
    ]  # fmt: skip
    recorded = await client.post("/recordCallEvents", json={"events": events}, headers=auth)
    assert [r["status"] for r in recorded.json()["data"]["results"]] == ["applied"] * 3
    window = "from=2024-03-09T00:00:00&to=2024-03-11T00:00:00"
    queries = (
        f"interval=hour&tz=America/New_York&{window}",  # the spring-forward day: a 23-hour day
        f"interval=day&tz=Asia/Kolkata&{window}",
        "interval=minute&from=2024-03-10T06:00:00Z&to=2024-03-10T08:00:00Z",
        "interval=day",  # the default window, from the first recorded minute until now
    )
    for query in queries:
        answer = await client.get(f"{url}?{query}", headers=auth)
        assert answer.status_code == 200, (query, answer.text)
        data = fits(TimeseriesEnvelope, answer.json())["data"]
        assert list(answer.json()["data"]["buckets"][0])[:2] == ["start", "end"]
        totals = data["totals"]
        assert (totals["calls_started"], totals["answered"], totals["busy"]) == (2, 1, 1), (
            query
        )  # c2 opened by its end
        assert (totals["answered_talk_seconds"], totals["success_rate"]) == (42, 100.0), query


def test_stream_sends_the_declared_events(database_url: str, tmp_path: Path) -> None:
    """streamCampaignStats sends the declared headers and only the three declared kinds of message:
    the retry hint, events of the declared event schema whose data is a StatsEnvelope, and pings."""
    declared = STREAM_RESPONSES[200]["content"]["text/event-stream"]["itemSchema"]["properties"]
    event_name = declared["event"]["const"]
    key = new_key(database_url)
    settings = {"stream_heartbeat_seconds": "0.2", "stream_max_seconds": "1"}
    with serving(database_url, tmp_path, **settings) as server, httpx.Client(timeout=30) as http:
        base = server.base_url
        http.headers["x-api-key"] = key
        campaign_id = create_campaign(http, base, "declared")
        add_contacts(http, base, campaign_id, phones(2))
        with http.stream("GET", f"{base}/streamCampaignStats/{campaign_id}") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert {name: response.headers[name] for name in STREAM_HEADERS} == STREAM_HEADERS
            messages = "".join(response.iter_text()).split("\n\n")
    assert messages.pop() == ""  # the stream ends with a whole message
    assert messages[0] == f"retry: {RETRY_MS}"
    kinds = set()
    for message in messages[1:]:
        if message == PING.decode().strip():
            kinds.add("ping")
            continue
        id_line, event_line, data_line = message.split("\n")
        assert int(id_line.removeprefix("id: ")) > 0 and event_line == f"event: {event_name}", message
        stats = fits(StatsEnvelope, json.loads(data_line.removeprefix("data: ")))
        assert stats["data"]["total_contacts"] == 2
        kinds.add("stats")
    assert kinds == {"stats", "ping"}
