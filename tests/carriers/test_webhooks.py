"""The webhooks end to end, in process on SQLite and PostgreSQL: signed callbacks through
/webhooks/<provider>/<connection id> become the campaign's numbers; bad signatures and unknown
connections store nothing; unmatched callbacks are listed and replayed. Signatures are made with
the platforms' own SDKs (twilio's RequestValidator, retell-sdk's sign)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp
from callstats.config import Settings
from callstats.db.schema import carrier_callbacks
from tests.apps import serving
from tests.envelope import assert_error
from tests.factories import add

TOKEN = "tw-auth-0123456789abcdef0123456789ab"
PHONES = ["+14155550101", "+14155550102", "+14155550103"]


@asynccontextmanager
async def twilio_setup(
    settings: Settings,
) -> AsyncIterator[tuple[CallstatsApp, httpx.AsyncClient, dict[str, str], str, str]]:
    """An app with a key, a campaign of three contacts and a Twilio connection: (app, client, auth,
    campaign id, webhook URL with ?campaign_id=)."""
    keyed = settings.model_copy(update={"secret_key": SecretStr(Fernet.generate_key().decode())})
    async with serving(keyed) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme", "write").plaintext}
        created = await http.post("/createCampaign", json={"name": "hooks"}, headers=auth)
        campaign_id = created.json()["data"]["campaign_id"]
        await add(http, auth, campaign_id, json={"contacts": [{"phone": p} for p in PHONES]})
        connection = await http.post(
            "/createCarrierConnection", json={"provider": "twilio", "secret": TOKEN}, headers=auth
        )
        url = connection.json()["data"]["webhook_url"] + "?" + urlencode({"campaign_id": campaign_id})
        yield app, http, auth, campaign_id, url


async def post_twilio(
    http: httpx.AsyncClient, url: str, params: dict[str, str], token: str = TOKEN
) -> httpx.Response:
    """A status callback signed as Twilio signs it (the SDK's own validator computes the signature)."""
    signature = RequestValidator(token).compute_signature(url, params)
    return await http.post(url, data=params, headers={"X-Twilio-Signature": signature})


def callback(sid: str, to: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "CallSid": sid,
        "To": to,
        "CallStatus": status,
        "Timestamp": "Tue, 16 Jan 2024 09:00:00 +0000",
        **extra,
    }


def stored(app: CallstatsApp) -> int:
    with app.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(carrier_callbacks)).scalar_one())


async def test_twilio_calls_become_the_campaigns_numbers(settings: Settings) -> None:
    async with twilio_setup(settings) as (app, http, auth, campaign_id, url):
        calls = [
            (
                "CA1",
                PHONES[0],
                [
                    callback("CA1", PHONES[0], "initiated"),
                    callback("CA1", PHONES[0], "in-progress"),
                    callback("CA1", PHONES[0], "completed", CallDuration="42"),
                ],
            ),
            ("CA2", PHONES[1], [callback("CA2", PHONES[1], "initiated"), callback("CA2", PHONES[1], "busy")]),
            (
                "CA3",
                PHONES[2],
                [callback("CA3", PHONES[2], "completed", CallDuration="20", AnsweredBy="machine_end_beep")],
            ),
        ]
        for _, _, sent in calls:
            for params in sent:
                response = await post_twilio(http, url, params)
                assert response.status_code == 204, response.text
        again = await post_twilio(http, url, calls[0][2][2])  # Twilio's retry of the same callback
        assert again.status_code == 204
        stats = (await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
        assert stats["total_contacts"] == 3
        assert stats["calls_completed"] == 1 and stats["calls_pending"] == 2  # busy, voicemail: retried
        assert stats["call_status_breakdown"]["answered"] == 1
        assert stats["call_status_breakdown"]["busy"] == 1
        assert stats["call_status_breakdown"]["voicemail"] == 1
        assert stats["total_call_duration"] == 42
        assert stored(app) == 7
        with app.db.read() as conn:
            verdicts = [row.verdict for row in conn.execute(select(carrier_callbacks.c.verdict))]
        assert sorted(verdicts) == ["applied"] * 6 + ["duplicate"]


async def test_a_bad_signature_stores_nothing(settings: Settings) -> None:
    async with twilio_setup(settings) as (app, http, auth, campaign_id, url):
        response = await post_twilio(
            http, url, callback("CA9", PHONES[0], "initiated"), token="not-the-token"
        )
        assert_error(response, 403, "FORBIDDEN")
        assert stored(app) == 0


async def test_unmatched_are_listed_and_replayed(settings: Settings) -> None:
    async with twilio_setup(settings) as (app, http, auth, campaign_id, url):
        late = "+14155550199"
        response = await post_twilio(http, url, callback("CA7", late, "completed", CallDuration="5"))
        assert response.status_code == 204
        page = (await http.get("/getUnmatchedCallbacks", headers=auth)).json()
        assert [c["reason"] for c in page["data"]] == ["no such contact in this campaign"]
        await add(http, auth, campaign_id, json={"contacts": [{"phone": late}]})
        replayed = await http.post(f"/replayCallback/{page['data'][0]['callback_id']}", headers=auth)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["data"]["verdict"] == "applied"
        assert (await http.get("/getUnmatchedCallbacks", headers=auth)).json()["data"] == []
        stats = (await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
        assert stats["calls_completed"] == 1
