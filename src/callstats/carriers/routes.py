"""HTTP routes of the carriers: the connections (create, list, delete), the three platforms' webhooks,
and the unmatched callbacks (list, replay). The webhooks take no API key: the platform's signature
is the credential (carriers/callbacks.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from callstats.accounts.deps import ReadKey, WriteKey
from callstats.bodies import WholeNumber
from callstats.carriers import callbacks, service
from callstats.carriers.public_url import public_base
from callstats.carriers.schemas import (
    CallbackVerdict,
    CallbackVerdictEnvelope,
    CarrierConnectionEnvelope,
    CarrierConnections,
    CarrierConnectionsEnvelope,
    CreateCarrierConnection,
    DeletedConnectionEnvelope,
    Provider,
    UnmatchedCallbacksPage,
    callback_uuid,
    connection_uuid,
    create_connection_body,
)
from callstats.db.deps import Db
from callstats.pages import PageSize, Pagination
from callstats.sealing import SecretBox
from callstats.web import RawBody

router = APIRouter(tags=["carriers"])

# The body is read raw and parsed with the depth limit of every route (bodies.parse_json); OpenAPI
# still shows the model it must fit.
_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CreateCarrierConnection.model_json_schema()}},
    }
}
_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such connection for this key's account (or already deleted)"}
}


def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


def _base(request: Request) -> str:
    """The public base URL of this request's webhook URLs (carriers.public_url)."""
    return public_base(request.scope, request.app.state.settings)


def _connection_id_param(
    connection_id: Annotated[str, Path(alias="connectionId", json_schema_extra={"format": "uuid"})],
) -> str:
    return connection_uuid(connection_id)


Box = Annotated[SecretBox, Depends(_secret_box)]
PublicBase = Annotated[str, Depends(_base)]
ConnectionId = Annotated[str, Depends(_connection_id_param)]


@router.post("/createCarrierConnection", status_code=201, openapi_extra=_CREATE_BODY)
def create_carrier_connection(
    key: WriteKey, db: Db, box: Box, base: PublicBase, body: RawBody
) -> CarrierConnectionEnvelope:
    """Connect a Twilio, Retell or Vapi account: 201 with the webhook_url to give the platform.

    The secret is stored encrypted and never returned; 503 when the server has no key to encrypt
    it with (set CALLSTATS_SECRET_KEY, docs/carriers.md).
    """
    fields = create_connection_body(body)
    return CarrierConnectionEnvelope(data=service.create_connection(db, box, key.account_id, fields, base))


@router.get("/getCarrierConnections")
def get_carrier_connections(key: ReadKey, db: Db, base: PublicBase) -> CarrierConnectionsEnvelope:
    """The account's carrier connections, newest first, without their secrets."""
    connections = service.list_connections(db, key.account_id, base)
    return CarrierConnectionsEnvelope(data=CarrierConnections(connections=connections))


@router.post("/deleteCarrierConnection/{connectionId}", responses=_UNKNOWN)
def delete_carrier_connection(
    request: Request, connection_id: ConnectionId, key: WriteKey, db: Db
) -> DeletedConnectionEnvelope:
    """Delete a connection: its webhooks answer 404 from then on; the callbacks stored stay."""
    deleted = service.delete_connection(db, key.account_id, connection_id)
    request.app.state.connections.forget(connection_id)
    return DeletedConnectionEnvelope(data=deleted)


# Read from the raw query string (it is part of what Twilio signs), declared here for OpenAPI.
_WEBHOOK_QUERY: list[dict[str, Any]] = [
    {
        "name": "campaign_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "uuid"},
        "description": "The campaign the call belongs to (else the call's metadata must name it)",
    },
    {
        "name": "contact_id",
        "in": "query",
        "required": False,
        "schema": {"type": "integer"},
        "description": "The contact called (else the call's metadata, else the dialed number)",
    },
]
_WEBHOOK_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Retell and Vapi: the callback's verdict (stored raw with it)"},
    400: {
        "description": "Only a body the client stopped sending midway. A verified callback whose query or"
        " body callstats cannot use is stored unmatched and answered 2xx (see getUnmatchedCallbacks)"
    },
    204: {"description": "Twilio: stored raw with its verdict (unmatched too: see getUnmatchedCallbacks)"},
    403: {"description": "Signature missing, expired or wrong: nothing stored"},
    404: {"description": "No such connection (unknown, deleted, or of another platform)"},
    503: {
        "description": "The database cannot be reached, or no configured key opens the connection's"
        " secret: nothing stored, the platform retries"
    },
}


# Served by carriers/endpoint.py (WebhookEndpoint) before the framework sees the path; this declaration
# is never mounted: openapi.describe adds it to the document.
declaration = APIRouter(tags=["carriers"])


@declaration.post(
    "/webhooks/{provider}/{connectionId}",
    response_model=CallbackVerdictEnvelope,
    responses=_WEBHOOK_ANSWERS,
    openapi_extra={"parameters": _WEBHOOK_QUERY},
    operation_id="receiveCallback",
)
def receive_callback(
    provider: Annotated[Provider, Path()],
    connection_id: Annotated[str, Path(alias="connectionId", json_schema_extra={"format": "uuid"})],
    body: RawBody,
) -> CallbackVerdictEnvelope:
    """A platform's callback: Twilio status callbacks (form), Retell webhooks and Vapi server messages
    (JSON). No API key: verified with the connection's secret as the platform's SDK verifies it, kept
    raw with its verdict, and its call events applied (docs/carriers.md).

    The campaign is `campaign_id` in the query string (else the call's metadata); the contact
    `contact_id` there (else the metadata), else the dialed number. Twilio gets 204; Retell and Vapi
    the verdict. An unmatched callback is answered 2xx too (the platform must not retry it for ever).
    403 for a bad signature and 404 for an unknown connection, nothing stored.
    """
    raise NotImplementedError("WebhookEndpoint serves the webhooks")


@router.get("/getUnmatchedCallbacks")
def get_unmatched_callbacks(
    key: ReadKey,
    db: Db,
    connection_id: Annotated[str | None, Query(json_schema_extra={"format": "uuid"})] = None,
    limit: Annotated[PageSize, WholeNumber, Query()] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UnmatchedCallbacksPage:
    """The account's callbacks that could not be applied (unknown campaign or contact, unknown status,
    a conflicting state), newest first, raw as they arrived, with why; one page at a time (pass back
    `next_cursor`). `connection_id` keeps one connection's."""
    connection = connection_uuid(connection_id) if connection_id is not None else None
    page, next_cursor = callbacks.unmatched(db, key.account_id, connection, limit, cursor)
    return UnmatchedCallbacksPage(data=page, pagination=Pagination(next_cursor=next_cursor, limit=limit))


@router.post(
    "/replayCallback/{callbackId}",
    responses={404: {"description": "No such callback, or its connection was deleted"}},
)
async def replay_callback(
    request: Request,
    callback_id: Annotated[str, Path(alias="callbackId", json_schema_extra={"format": "uuid"})],
    key: WriteKey,
    box: Box,
) -> CallbackVerdictEnvelope:
    """Apply a stored callback again, once its cause is fixed (the contact added, the campaign created,
    an outcome_map entry for its status); it takes the new verdict. Events it applied before are
    duplicates now, so a replay never counts twice."""
    state = request.app.state
    verdict = await callbacks.replay(state.db, state.groups, box, key.account_id, callback_uuid(callback_id))
    state.feed.publish_many(verdict.campaigns)
    return CallbackVerdictEnvelope(data=_shown(verdict))


def _shown(verdict: callbacks.Verdict) -> CallbackVerdict:
    return CallbackVerdict(callback_id=verdict.callback_id, verdict=verdict.verdict, reason=verdict.reason)
