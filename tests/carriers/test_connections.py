"""createCarrierConnection, getCarrierConnections, deleteCarrierConnection: the round trip, validation,
keys and tenancy, the secret kept out of every answer, log line and stored column, the SQLite key file,
PostgreSQL without a key, rotation, and the connection a webhook looks up."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import stat
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import event, select

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp
from callstats.carriers.service import (
    ConnectionNotFound,
    LiveConnections,
    connection_for_webhook,
    delete_connection,
)
from callstats.config import Settings
from callstats.db.schema import carrier_connections
from callstats.sealing import KEY_FILE_SUFFIX, SecretBox, UnreadableSecret, key_file_path
from tests.apps import access_to, serving
from tests.envelope import assert_error

SECRET = "tw-auth-9f8e7d6c5b4a39281706f5e4d3c2b1a0"  # what a Twilio auth token looks like
KEY = Fernet.generate_key().decode()


def keyed(settings: Settings, key: str = KEY) -> Settings:
    """The test's settings with CALLSTATS_SECRET_KEY set (PostgreSQL needs one to store a secret)."""
    return settings.model_copy(update={"secret_key": SecretStr(key)})


@asynccontextmanager
async def keyed_app(
    settings: Settings,
) -> AsyncIterator[tuple[CallstatsApp, httpx.AsyncClient, dict[str, str]]]:
    """The app with a secret key, a client, and the write-key headers of account acme."""
    async with serving(keyed(settings)) as (app, http):
        yield app, http, {"x-api-key": create_key(app.db, "acme", "write").plaintext}


async def create(http: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    """createCarrierConnection's 201 answer's data (provider twilio and SECRET unless given)."""
    response = await http.post(
        "/createCarrierConnection", json={"provider": "twilio", "secret": SECRET, **body}, headers=auth
    )
    assert response.status_code == 201, response.text
    envelope: dict[str, Any] = response.json()
    assert set(envelope) == {"success", "data"} and envelope["success"] is True
    data: dict[str, Any] = envelope["data"]
    return data


async def listed(http: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    """getCarrierConnections' connections."""
    response = await http.get("/getCarrierConnections", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    connections: list[dict[str, Any]] = response.json()["data"]["connections"]
    return connections


def stored_rows(app: CallstatsApp) -> list[dict[str, Any]]:
    """Every carrier_connections row, read from the database itself."""
    with app.db.read() as conn:
        return [dict(row) for row in conn.execute(select(carrier_connections)).mappings()]


async def test_create_list_delete_round_trip(settings: Settings) -> None:
    """Created connections are listed newest first with their webhook URLs; a deleted one is gone from
    the list, its row kept with deleted_at; deleting it again is a 404."""
    async with keyed_app(settings) as (app, http, auth):
        first = await create(http, auth, name="Main Twilio", outcome_map={"machine_start": "voicemail"})
        await asyncio.sleep(0.005)  # a later millisecond: "newest first" is then a fact to check
        second = await create(http, auth, provider="retell")
        assert set(first) == {"connection_id", "provider", "name", "webhook_url", "outcome_map", "created_at"}
        assert uuid.UUID(first["connection_id"]).version == 4
        assert (first["provider"], first["name"]) == ("twilio", "Main Twilio")
        assert first["webhook_url"] == f"http://callstats.test/webhooks/twilio/{first['connection_id']}"
        assert second["webhook_url"] == f"http://callstats.test/webhooks/retell/{second['connection_id']}"
        assert first["outcome_map"] == {"machine_start": "voicemail"} and second["outcome_map"] == {}
        assert second["name"] is None and first["created_at"].endswith("Z")
        created = [datetime.fromisoformat(c["created_at"].replace("Z", "+00:00")) for c in (first, second)]
        assert created[0] < created[1]

        assert [c["connection_id"] for c in await listed(http, auth)] == [
            second["connection_id"],
            first["connection_id"],
        ]
        assert (await listed(http, auth))[1] == first

        response = await http.post(f"/deleteCarrierConnection/{first['connection_id']}", headers=auth)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "success": True,
            "data": {"connection_id": first["connection_id"], "deleted": True},
        }
        assert [c["connection_id"] for c in await listed(http, auth)] == [second["connection_id"]]
        deleted = [row for row in stored_rows(app) if row["id"] == first["connection_id"]]
        assert len(deleted) == 1 and deleted[0]["deleted_at"] is not None
        again = await http.post(f"/deleteCarrierConnection/{first['connection_id']}", headers=auth)
        assert_error(again, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"provider": "plivo", "secret": SECRET}, "provider"),
        ({"provider": "Twilio", "secret": SECRET}, "provider"),
        ({"secret": SECRET}, "provider"),
        ({"provider": "twilio"}, "secret"),
        ({"provider": "twilio", "secret": ""}, "secret"),
        ({"provider": "twilio", "secret": "   "}, "secret"),
        ({"provider": "twilio", "secret": 12345}, "secret"),
        ({"provider": "twilio", "secret": "x" * 513}, "secret"),
        ({"provider": "twilio", "secret": "a\u0000b"}, "secret"),
        ({"provider": "twilio", "secret": SECRET, "outcome_map": {"ivr_reached": "maybe"}}, "outcome_map"),
        ({"provider": "twilio", "secret": SECRET, "outcome_map": {"": "voicemail"}}, "outcome_map"),
        ({"provider": "twilio", "secret": SECRET, "outcome_map": {" busy": "busy"}}, "outcome_map"),
        ({"provider": "twilio", "secret": SECRET, "outcome_map": {"busy": 3}}, "outcome_map"),
        ({"provider": "twilio", "secret": SECRET, "outcome_map": ["busy"]}, "outcome_map"),
        ({"provider": "twilio", "secret": SECRET, "name": "  "}, "name"),
        ({"provider": "twilio", "secret": SECRET, "name": "n" * 201}, "name"),
        ({"provider": "twilio", "secret": SECRET, "webhook_url": "http://evil"}, "webhook_url"),
        ({"provider": "twilio", "secret": SECRET, "account_id": "other"}, "account_id"),
    ],
)
async def test_invalid_bodies_are_a_400_naming_the_field(
    settings: Settings, body: dict[str, Any], names: str
) -> None:
    """Each malformed body is a 400 VALIDATION_ERROR in the envelope naming the field; nothing is stored,
    and the message never quotes the secret."""
    async with keyed_app(settings) as (app, http, auth):
        response = await http.post("/createCarrierConnection", json=body, headers=auth)
        assert_error(response, 400, "VALIDATION_ERROR", names=names)
        assert SECRET not in response.text
        assert stored_rows(app) == []


@pytest.mark.parametrize("raw", [b"provider=twilio", b"[1, 2]", b'{"provider": "twilio", "secret": '])
async def test_a_body_that_is_no_json_object_is_a_400(settings: Settings, raw: bytes) -> None:
    """Not JSON, or JSON but no object: a 400 saying what the route reads."""
    async with keyed_app(settings) as (_app, http, auth):
        response = await http.post("/createCarrierConnection", content=raw, headers=auth)
        assert_error(response, 400, "VALIDATION_ERROR")


async def test_outcome_map_accepts_every_outcome(settings: Settings) -> None:
    """Any raw status may be mapped to any of the five outcomes, and is shown back as given."""
    overrides = {"ivr_reached": "voicemail", "machine_end_other": "answered", "fax": "failed",
                 "dial_busy": "busy", "no-answer": "no_answer"}  # fmt: skip
    async with keyed_app(settings) as (_app, http, auth):
        created = await create(http, auth, outcome_map=overrides)
        assert created["outcome_map"] == overrides
        assert (await listed(http, auth))[0]["outcome_map"] == overrides


async def test_keys_are_required_as_on_other_routes(settings: Settings) -> None:
    """No key: 401 on all three routes. A read key: 403 on the two writing routes, and it may list."""
    async with keyed_app(settings) as (app, http, auth):
        created = await create(http, auth)
        delete = f"/deleteCarrierConnection/{created['connection_id']}"
        body = {"provider": "twilio", "secret": SECRET}
        assert_error(await http.post("/createCarrierConnection", json=body), 401, "UNAUTHORIZED")
        assert_error(await http.get("/getCarrierConnections"), 401, "UNAUTHORIZED")
        assert_error(await http.post(delete), 401, "UNAUTHORIZED")
        bad = {"x-api-key": "cs_nope"}
        assert_error(await http.post("/createCarrierConnection", json=body, headers=bad), 401, "UNAUTHORIZED")
        read = {"x-api-key": create_key(app.db, "acme", "read").plaintext}
        assert_error(await http.post("/createCarrierConnection", json=body, headers=read), 403, "FORBIDDEN")
        assert_error(await http.post(delete, headers=read), 403, "FORBIDDEN")
        assert [c["connection_id"] for c in await listed(http, read)] == [created["connection_id"]]
        assert len(stored_rows(app)) == 1 and stored_rows(app)[0]["deleted_at"] is None


async def test_another_accounts_connection_is_invisible(settings: Settings) -> None:
    """Another account's connection: absent from this account's list, and 404 on delete (untouched)."""
    async with keyed_app(settings) as (app, http, auth):
        theirs = await create(http, {"x-api-key": create_key(app.db, "globex", "write").plaintext})
        assert await listed(http, auth) == []
        response = await http.post(f"/deleteCarrierConnection/{theirs['connection_id']}", headers=auth)
        assert_error(response, 404, "NOT_FOUND")
        assert stored_rows(app)[0]["deleted_at"] is None


@pytest.mark.parametrize("raw", ["not-a-uuid", "12345", "550e8400-e29b-41d4-a716-44665544000g"])
async def test_a_malformed_connection_id_is_a_400(settings: Settings, raw: str) -> None:
    """deleteCarrierConnection's id must be a UUID: else a 400 naming connectionId."""
    async with keyed_app(settings) as (_app, http, auth):
        response = await http.post(f"/deleteCarrierConnection/{raw}", headers=auth)
        assert_error(response, 400, "VALIDATION_ERROR", names="connectionId")


async def test_an_unknown_connection_is_a_404_and_any_uuid_form_names_the_same(settings: Settings) -> None:
    """A well-formed id the account never had is a 404; an upper-case id names the same connection."""
    async with keyed_app(settings) as (_app, http, auth):
        assert_error(
            await http.post(f"/deleteCarrierConnection/{uuid.uuid4()}", headers=auth), 404, "NOT_FOUND"
        )
        created = await create(http, auth)
        response = await http.post(
            f"/deleteCarrierConnection/{created['connection_id'].upper()}", headers=auth
        )
        assert (
            response.status_code == 200
            and response.json()["data"]["connection_id"] == created["connection_id"]
        )


async def test_the_secret_is_never_shown_or_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """No answer (body or header) and no log line, the access log's included, holds the secret."""
    access = io.StringIO()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # every statement with its values
    async with keyed_app(settings) as (app, http, auth):
        with access_to(access):
            body = {"provider": "vapi", "secret": SECRET}
            answers = [await http.post("/createCarrierConnection", json=body, headers=auth)]
            created = answers[0].json()["data"]
            answers.append(await http.get("/getCarrierConnections", headers=auth))
            refused = {**body, "outcome_map": {"x": "nope"}}
            answers.append(await http.post("/createCarrierConnection", json=refused, headers=auth))
            answers.append(
                await http.post(f"/deleteCarrierConnection/{created['connection_id']}", headers=auth)
            )
            app.access.flush()
    assert [a.status_code for a in answers] == [201, 200, 400, 200]
    assert not [a for a in answers if SECRET in a.text or SECRET in str(a.headers)]
    assert access.getvalue().count("\n") == 4 and SECRET not in access.getvalue()
    assert SECRET not in caplog.text
    (sealed,) = [row["secret_sealed"] for row in stored_rows(app)]
    assert (
        sealed in caplog.text
    )  # the statements were logged with their values: the token went, not the secret


async def test_the_stored_secret_is_sealed(settings: Settings) -> None:
    """The row holds a Fernet token, not the secret (nor any column does); the app's box opens it."""
    async with keyed_app(settings) as (app, http, auth):
        created = await create(http, auth)
        (row,) = stored_rows(app)
        assert SECRET not in json.dumps(row)
        assert row["secret_sealed"].startswith("gAAAA")  # a Fernet token's version byte and time stamp
        box: SecretBox = app.api.state.secret_box
        assert box.unseal(row["secret_sealed"]) == SECRET
        assert SecretBox([KEY]).unseal(row["secret_sealed"]) == SECRET
        found = connection_for_webhook(app.db, box, "twilio", created["connection_id"])
        assert found.secret == SECRET


async def test_webhooks_find_only_a_live_connection_of_their_provider(settings: Settings) -> None:
    """connection_for_webhook: the account, the secret opened and the overrides; another provider's
    path, an unknown id and a deleted connection are ConnectionNotFound (404)."""
    async with keyed_app(settings) as (app, http, auth):
        created = await create(http, auth, provider="retell", outcome_map={"ivr_reached": "voicemail"})
        box: SecretBox = app.api.state.secret_box
        found = connection_for_webhook(app.db, box, "retell", created["connection_id"])
        with app.db.read() as conn:
            (account_id,) = conn.execute(select(carrier_connections.c.account_id)).one()
        assert found == (account_id, SECRET, {"ivr_reached": "voicemail"})
        for provider, connection_id in (("twilio", created["connection_id"]), ("retell", str(uuid.uuid4()))):
            with pytest.raises(ConnectionNotFound) as refused:
                connection_for_webhook(app.db, box, provider, connection_id)
            assert refused.value.status == 404
        assert (
            await http.post(f"/deleteCarrierConnection/{created['connection_id']}", headers=auth)
        ).status_code == 200
        with pytest.raises(ConnectionNotFound):
            connection_for_webhook(app.db, box, "retell", created["connection_id"])


def sqlite_settings(database_url: str) -> Settings:
    """Settings on the test's database with no secret key, whatever the environment says."""
    return Settings(database_url=database_url, redis_url=None, secret_key=None)


async def test_sqlite_without_a_key_makes_a_private_key_file_and_reuses_it(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """SQLite with no CALLSTATS_SECRET_KEY: the first connection makes `<database>.secret-key`, mode
    0600; a second app on the same file (a restart, another worker) opens the first one's secret with it
    and leaves the file as it was."""
    database = tmp_path / "callstats.db"
    database.write_bytes(sqlite_template.read_bytes())
    settings = sqlite_settings(f"sqlite:///{database}")
    key_file = tmp_path / ("callstats.db" + KEY_FILE_SUFFIX)
    assert key_file_path(settings.database_url) == key_file
    async with serving(settings) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme").plaintext}
        assert not key_file.exists()  # made on first need, not at start-up
        created = await create(http, auth)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text()
    assert Fernet(content.strip().encode())  # one Fernet key
    async with serving(settings) as (app, http):
        found = connection_for_webhook(app.db, app.api.state.secret_box, "twilio", created["connection_id"])
        assert found.secret == SECRET
        await create(http, auth, provider="vapi")
    assert key_file.read_text() == content
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(key_file.name + ".")]  # no leftovers


async def test_with_a_key_set_no_key_file_is_made(sqlite_template: Path, tmp_path: Path) -> None:
    """CALLSTATS_SECRET_KEY set on SQLite: secrets are sealed with it, and no file appears."""
    database = tmp_path / "callstats.db"
    database.write_bytes(sqlite_template.read_bytes())
    async with keyed_app(sqlite_settings(f"sqlite:///{database}")) as (app, http, auth):
        await create(http, auth)
        assert SecretBox([KEY]).unseal(stored_rows(app)[0]["secret_sealed"]) == SECRET
    assert [p.name for p in tmp_path.iterdir() if KEY_FILE_SUFFIX in p.name] == []


async def test_postgresql_without_a_key_refuses_clearly_and_nothing_else_breaks(settings: Settings) -> None:
    """PostgreSQL with no CALLSTATS_SECRET_KEY: createCarrierConnection is a 503 saying to set it and how
    to make one, nothing is stored; listing, campaigns and events work as before."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite keeps a key file beside the database")
    async with serving(settings.model_copy(update={"secret_key": None})) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme").plaintext}
        response = await http.post("/createCarrierConnection", json={"provider": "twilio", "secret": SECRET},
                                   headers=auth)  # fmt: skip
        assert_error(response, 503, "SERVICE_UNAVAILABLE", names="CALLSTATS_SECRET_KEY")
        assert "Fernet.generate_key()" in response.json()["message"] and SECRET not in response.text
        assert "Retry-After" in response.headers
        assert stored_rows(app) == []
        assert await listed(http, auth) == []
        campaign = await http.post("/createCampaign", json={"name": "still works"}, headers=auth)
        assert campaign.status_code == 201, campaign.text


async def test_rotation_new_key_first_still_opens_old_secrets(settings: Settings) -> None:
    """A new key put first, the old one after: old secrets still open, new ones are sealed with the new
    key (the new key alone opens them, the old one alone does not)."""
    new_key = Fernet.generate_key().decode()
    async with keyed_app(settings) as (app, http, auth):
        old = await create(http, auth)
    async with serving(keyed(settings, f"{new_key},{KEY}")) as (app, http):
        box: SecretBox = app.api.state.secret_box
        assert connection_for_webhook(app.db, box, "twilio", old["connection_id"]).secret == SECRET
        fresh = await create(http, auth, provider="vapi", secret="vapi-secret-2")
        sealed = {row["id"]: row["secret_sealed"] for row in stored_rows(app)}
    assert SecretBox([new_key]).unseal(sealed[fresh["connection_id"]]) == "vapi-secret-2"
    with pytest.raises(UnreadableSecret) as refused:
        SecretBox([KEY]).unseal(sealed[fresh["connection_id"]])
    assert refused.value.status == 503


async def test_webhooks_keep_a_live_connection_for_a_moment_and_forget_a_deleted_one(
    settings: Settings,
) -> None:
    """LiveConnections: a connection read once is kept for its TTL (a delete by another process is seen
    once it expires), and forget (this process's delete) drops it at once; unknown ids are never kept."""
    async with keyed_app(settings) as (app, http, auth):
        made = await create(http, auth)
        kept = LiveConnections(app.db, app.api.state.secret_box, ttl_seconds=3600)
        fresh = LiveConnections(app.db, app.api.state.secret_box, ttl_seconds=0)
        for connections in (kept, fresh):
            assert (await connections.get("twilio", made["connection_id"])).secret == SECRET
        owner = connection_for_webhook(app.db, app.api.state.secret_box, "twilio", made["connection_id"])
        delete_connection(app.db, owner.account_id, made["connection_id"])  # as another process would
        assert (await kept.get("twilio", made["connection_id"])).secret == SECRET  # within its TTL
        with pytest.raises(ConnectionNotFound):
            await fresh.get("twilio", made["connection_id"])  # expired: read again
        kept.forget(made["connection_id"])
        with pytest.raises(ConnectionNotFound):
            await kept.get("twilio", made["connection_id"])
        with pytest.raises(ConnectionNotFound):
            await kept.get("twilio", str(uuid.uuid4()))


async def test_callbacks_arriving_together_share_one_read_of_their_connection(settings: Settings) -> None:
    """When a connection must be read, the callbacks asking meanwhile wait for that one read."""
    async with keyed_app(settings) as (app, http, auth):
        made = await create(http, auth)
        reads: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            if "FROM carrier_connections" in statement:
                reads.append(statement)

        event.listen(app.db.engine, "before_cursor_execute", seen)
        try:
            connections = LiveConnections(app.db, app.api.state.secret_box)
            found = await asyncio.gather(
                *(connections.get("twilio", made["connection_id"]) for _ in range(20))
            )
        finally:
            event.remove(app.db.engine, "before_cursor_execute", seen)
        assert {connection.secret for connection in found} == {SECRET}
        assert len(reads) == 1
