"""The stats hot path in the OpenAPI description (it is served outside the framework's router)."""

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


def add_stats_path(api: FastAPI) -> None:
    """Make /openapi.json describe getCampaignStats too."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=api.routes
            )
            schema["paths"][PATH_PREFIX + "{campaignId}"] = _stats_operation()
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = {
                "type": "object",
                "properties": {
                    "success": {"type": "boolean"},
                    "message": {"type": "string"},
                    "error": {"type": "string"},
                },
                "required": ["success", "message", "error"],
            }
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
