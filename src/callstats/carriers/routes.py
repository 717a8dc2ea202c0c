"""HTTP routes of the carrier connections: create, list, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from callstats.accounts.deps import ReadKey, WriteKey
from callstats.carriers import service
from callstats.carriers.public_url import public_base
from callstats.carriers.schemas import (
    CarrierConnectionEnvelope,
    CarrierConnections,
    CarrierConnectionsEnvelope,
    CreateCarrierConnection,
    DeletedConnectionEnvelope,
    connection_uuid,
    create_connection_body,
)
from callstats.db.deps import Db
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
    connection_id: ConnectionId, key: WriteKey, db: Db
) -> DeletedConnectionEnvelope:
    """Delete a connection: its webhooks answer 404 from then on; the callbacks stored stay."""
    return DeletedConnectionEnvelope(data=service.delete_connection(db, key.account_id, connection_id))
