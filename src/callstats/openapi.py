"""The OpenAPI description: the stats hot path (served outside the router), raw bodies, 400 not 422."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from callstats.stats.routes import PATH_PREFIX

_ERROR = {"$ref": "#/components/schemas/Error"}


def _stats_operation() -> dict[str, Any]:
    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": _ERROR}}}

    return {
        "get": {
            "tags": ["stats"],
            "summary": "Get Campaign Stats",
            "description": "Current statistics of one campaign, exactly as VoiceGenie's getCampaignStats.",
            "operationId": "getCampaignStats",
            "parameters": [
                {
                    "name": "campaignId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                },
                {"name": "x-api-key", "in": "header", "required": True, "schema": {"type": "string"}},
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "Campaign statistics",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "304": {"description": "Not modified since the ETag given"},
                "400": error("Malformed campaign id"),
                "401": error("Missing, unknown or revoked key"),
                "404": error("Campaign not found"),
                "429": error("Rate limited"),
                "500": error("Failed to retrieve campaign statistics"),
                "503": error("Database unreachable"),
            },
        }
    }


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "message": {"type": "string"},
        "error": {"type": "string"},
    },
    "required": ["success", "message", "error"],
}

_CONTACTS_JSON = {
    "type": "object",
    "required": ["contacts"],
    "properties": {
        "contacts": {
            "type": "array",
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "required": ["phone"],
                "properties": {
                    "phone": {"type": "string"},
                    "name": {"type": "string"},
                    "metadata": {"type": "object"},
                },
            },
        }
    },
}

_EVENTS_JSON = {
    "type": "object",
    "required": ["events"],
    "properties": {
        "events": {"type": "array", "minItems": 1, "maxItems": 1_000, "items": {"type": "object"}}
    },
}

_RAW_BODIES = {
    ("/addContacts/{campaignId}", "post"): {
        "application/json": {"schema": _CONTACTS_JSON},
        "text/csv": {"schema": {"type": "string", "description": "Header row with phone and optional name."}},
    },
    ("/recordCallEvents", "post"): {"application/json": {"schema": _EVENTS_JSON}},
}


def _validation_is_400(schema: dict[str, Any]) -> None:
    """The API answers malformed input with 400 VALIDATION_ERROR, never the framework's 422."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses.setdefault(
                "400",
                {"description": "Validation error", "content": {"application/json": {"schema": _ERROR}}},
            )


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _errors_documented(schema: dict[str, Any]) -> None:
    """Every error status a route can answer is in its responses (docs/semantics.md, Errors): 404 where it
    takes a campaignId, 401 where it takes a key, 403 where it writes, 413 where it takes a body, and
    500/503 everywhere (fuzzers check each answer's status against these)."""
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            responses = operation.setdefault("responses", {})
            wanted = {"500": "Unexpected error", "503": "A required backend is unavailable (Retry-After)"}
            if "campaignId" in names:
                wanted["404"] = "Campaign not found for this key's account"
            if "x-api-key" in names:
                wanted["401"] = "Missing, unknown or revoked key"
            if method == "post":
                wanted |= {"403": "The key is read-only", "413": "Body over the configured limit"}
            for status, description in wanted.items():
                responses.setdefault(status, _error(description))


def describe(api: FastAPI) -> None:
    """Make /openapi.json describe every route as it really behaves."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=api.routes
            )
            schema["paths"][PATH_PREFIX + "{campaignId}"] = _stats_operation()
            for (path, method), content in _RAW_BODIES.items():
                schema["paths"][path][method]["requestBody"] = {"required": True, "content": content}
            _validation_is_400(schema)
            _errors_documented(schema)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Error"] = _ERROR_SCHEMA
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
