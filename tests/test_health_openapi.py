"""/health, /ready, /openapi.json and /docs."""

from __future__ import annotations

from typing import Any

import httpx

from callstats import __version__

ROUTES = {
    "/createCampaign": "post",
    "/getCampaigns": "get",
    "/getCampaign/{campaignId}": "get",
    "/addContacts/{campaignId}": "post",
    "/recordCallEvents": "post",
    "/getCampaignStats/{campaignId}": "get",
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
    """Every API route, the stats hot path included, is described with its method and key header."""
    paths = (await openapi(client))["paths"]
    assert {"/health", "/ready", *ROUTES} <= set(paths)
    for path, method in ROUTES.items():
        operation = paths[path][method]
        names = {(p["in"], p["name"].lower()) for p in operation.get("parameters", [])}
        assert ("header", "x-api-key") in names, path
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
