"""The OpenAPI description (the stats hot path served outside the router, raw bodies, 400 not 422) and
the pages that show it, /docs (Swagger UI) and /redoc (ReDoc), served without any CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import TypeAdapter
from starlette.staticfiles import StaticFiles

from callstats.accounts.deps import read_key, write_key
from callstats.calls.routes import declaration as calls_declaration
from callstats.calls.schemas import RecordCallEventsBody
from callstats.campaigns.schemas import AddContactsBody, CreateCampaign
from callstats.carriers.routes import declaration as carriers_declaration
from callstats.db.deps import get_db
from callstats.errors import ApiError
from callstats.stats.routes import declaration as stats_declaration

ERROR_REF = "#/components/schemas/Error"
_CSV = {
    "type": "string",
    "description": "A header row naming the phone column (and optionally name), then one row a contact",
}

# Bodies the routes read raw (parsed with bodies.parse_json's depth limit, or as CSV), shown as the models
# their code checks them with.
RAW_BODIES: dict[tuple[str, str], dict[str, type[Any] | dict[str, Any]]] = {
    ("/createCampaign", "post"): {"application/json": CreateCampaign},
    ("/addContacts/{campaignId}", "post"): {"application/json": AddContactsBody, "text/csv": _CSV},
    ("/recordCallEvents", "post"): {"application/json": RecordCallEventsBody},
}


def _header(description: str, required: bool) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


# Each error status: what it means, and the headers it carries (docs/api.md, Errors).
ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Malformed id, query or body; the message says which and why", {}),
    401: ("Missing, unknown or revoked x-api-key", {}),
    403: ("The key is read-only; this route needs a write key", {}),
    404: ("No such campaign for this key's account", {}),
    413: (
        "Body over CALLSTATS_MAX_BODY_BYTES; the server closes the connection",
        {"Connection": _header("close", required=False)},
    ),
    500: (
        "Unexpected failure",
        {"X-Request-Id": _header("Names the one line the server logged about it", required=False)},
    ),
    503: (
        "A required backend (the database) is unavailable",
        {"Retry-After": _header("Seconds to wait before trying again", required=True)},
    ),
}


def error_codes() -> dict[int, set[str]]:
    """Every status an ApiError can have, with the `error` codes it is sent with."""
    found: dict[int, set[str]] = {}
    pending: list[type[ApiError]] = [ApiError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.status, set()).add(cls.code)
        pending.extend(cls.__subclasses__())
    return found


def _error_schema() -> dict[str, Any]:
    """The error envelope, as errors.ApiError.body() writes it."""
    codes = sorted({code for found in error_codes().values() for code in found})
    return {
        "type": "object",
        "description": "Every error, in the seed's envelope",
        "properties": {
            "success": {"type": "boolean", "const": False},
            "message": {"type": "string", "description": "What is wrong and why, for a person"},
            "error": {"type": "string", "enum": codes},
        },
        "required": ["success", "message", "error"],
    }


def _error_response(
    status: int, codes: dict[int, set[str]], description: str | None = None
) -> dict[str, Any]:
    meaning, headers = ERRORS.get(status, ("", {}))
    sent = sorted(codes.get(status, ()))
    schema: dict[str, Any] = {"$ref": ERROR_REF}
    if sent:
        schema = {"allOf": [schema, {"properties": {"error": {"enum": sent}}}]}
    response: dict[str, Any] = {
        "description": f"{' or '.join(sent)}: {description or meaning}",
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _dependency_calls(route: APIRoute) -> set[Any]:
    """Every dependency function a route runs (read_key, write_key, get_db, ...)."""
    calls: set[Any] = set()
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        calls.add(dependant.call)
        pending.extend(dependant.dependencies)
    return calls


def _errors_documented(
    operation: dict[str, Any], route: APIRoute, method: str, codes: dict[int, set[str]]
) -> None:
    """Every error status the route can answer, from what it takes and runs (docs/semantics.md, Errors):
    400 where it takes any input, 401 where it needs a key, 403 where a write key, 404 where it takes a
    campaignId, 413 where it takes a body (the dispatcher's limit), 503 where it uses the database, 500
    everywhere; never the framework's 422 (malformed input is a 400 VALIDATION_ERROR)."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    calls = _dependency_calls(route)
    names = {parameter["name"] for parameter in operation.get("parameters", [])}
    wanted = {500} | {int(status) for status in responses if int(status) >= 400}  # and those declared
    if names or "requestBody" in operation:
        wanted.add(400)
    if read_key in calls:
        wanted.add(401)
    if write_key in calls:
        wanted.add(403)
    if "campaignId" in names:
        wanted.add(404)
    if method in ("post", "put", "patch"):
        wanted.add(413)
    if get_db in calls:
        wanted.add(503)
    for status in sorted(wanted):
        declared = responses.get(str(status), {})
        fresh = _error_response(status, codes, declared.get("description"))
        fresh["headers"] = fresh.get("headers", {}) | declared.get("headers", {})
        responses[str(status)] = {k: v for k, v in fresh.items() if v}


def _add_schema(components: dict[str, Any], model: Any) -> dict[str, Any]:
    """A model's JSON Schema (pydantic's) in components/schemas, its nested models too; a $ref to it."""
    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
    for name, nested in schema.pop("$defs", {}).items():
        components.setdefault(name, nested)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _raw_bodies(schema: dict[str, Any], components: dict[str, Any]) -> None:
    for (path, method), content in RAW_BODIES.items():
        shown = {
            media: {"schema": body if isinstance(body, dict) else _add_schema(components, body)}
            for media, body in content.items()
        }
        schema["paths"][path][method]["requestBody"] = {"required": True, "content": shown}


def _comma_separated(operation: dict[str, Any], name: str) -> None:
    """A list query parameter read as `a,b` (`?include=attempts,durations`)."""
    for parameter in operation.get("parameters", []):
        if parameter["name"] == name and parameter["in"] == "query":
            parameter["style"], parameter["explode"] = "form", False


def operation_id(route: APIRoute) -> str:
    """A route's operationId: its name in the API (`/getCampaignStats/{campaignId}` is getCampaignStats)."""
    return route.path_format.strip("/").split("/")[0]


# The document lists the operations by tag, in this order (within a tag, in the order they are declared).
TAG_ORDER = ("health", "campaigns", "calls", "stats", "carriers")


def _tag_rank(context: RouteContext) -> int:
    route = context.original_route
    tags = route.tags if isinstance(route, APIRoute) else []
    first = str(tags[0]) if tags else ""
    return TAG_ORDER.index(first) if first in TAG_ORDER else len(TAG_ORDER)


def documented_routes(api: FastAPI) -> list[RouteContext]:
    """The routes /openapi.json describes, ordered by TAG_ORDER: the app's own API routes, and the two
    routes the dispatcher serves before the framework, recordCallEvents and getCampaignStats (declared in
    calls/routes.py and stats/routes.py, never mounted)."""
    declared = [*calls_declaration.routes, *stats_declaration.routes, *carriers_declaration.routes]
    found = iter_route_contexts([*api.routes, *declared])
    documented = [
        c for c in found if isinstance(c.original_route, APIRoute) and c.original_route.include_in_schema
    ]
    return sorted(documented, key=_tag_rank)


def describe(api: FastAPI) -> None:
    """Make /openapi.json describe every route as it really behaves, from the models the code uses."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            routes = documented_routes(api)
            schema = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components["Error"] = _error_schema()
            _raw_bodies(schema, components)
            codes = error_codes()
            for context in routes:
                route = context.original_route
                assert isinstance(route, APIRoute)
                for method in sorted(context.methods or ()):
                    operation = schema["paths"][context.path_format][method.lower()]
                    _errors_documented(operation, route, method.lower(), codes)
                    _comma_separated(operation, "include")
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


# Swagger UI's and ReDoc's files as the fastapi-offline package ships them (swagger-ui-bundle.js,
# swagger-ui.css, redoc.standalone.js, favicon.png), served by this server under DOCS_ASSETS.
DOCS_FILES = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS = "/docs/static"
# The pages may load only this server's files and talk only to it: on an air-gapped host nothing is
# attempted off the server (ReDoc's footer logo from its CDN is blocked, not requested). The inline
# script is Swagger UI's configuration; the inline styles and the blob: worker are ReDoc's.
DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install_docs(api: FastAPI) -> None:
    """Serve /docs (Swagger UI) and /redoc (ReDoc) for /openapi.json, with their files from the package.

    The app is built with `docs_url=None, redoc_url=None`: FastAPI's own pages load their scripts
    from a CDN and stay blank without internet.
    """
    api.mount(DOCS_ASSETS, StaticFiles(directory=DOCS_FILES), name="docs-static")

    @api.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        """Swagger UI: every operation, "Try it out", and Authorize for the x-api-key header."""
        page = get_swagger_ui_html(
            openapi_url=str(api.openapi_url),
            title=f"{api.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )
        page.headers.update(DOCS_HEADERS)
        return page

    @api.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        """ReDoc: the same document as one reading page (no web fonts)."""
        page = get_redoc_html(
            openapi_url=str(api.openapi_url),
            title=f"{api.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(DOCS_HEADERS)
        return page
