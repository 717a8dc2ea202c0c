"""The webhooks end to end, in process on SQLite and PostgreSQL: signed callbacks through
/webhooks/<provider>/<connection id> become the campaign's numbers; bad signatures and unknown
connections store nothing; unmatched callbacks are listed and replayed. Signatures are made with
the platforms' own SDKs (twilio's RequestValidator, retell-sdk's sign)."""

from __future__ import annotations

import io
import logging
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pythonjsonlogger.orjson import OrjsonFormatter
from sqlalchemy import MetaData, select

from callstats.app import CallstatsApp
from callstats.config import Settings
from callstats.db.schema import carrier_callbacks, contacts
from callstats.logs import log_config
from tests.apps import access_to
from tests.carriers.webhook_kit import (
    BASE_URL,
    T0,
    VAPI_SCHEMES,
    Callback,
    Hooked,
    create_campaign,
    deliver,
    hooked,
    json_body,
    numbers,
    planned_call,
    retell_signature,
    stored_verdicts,
    twilio_signature,
    vapi_headers,
)

PHONES = ["+14155550101", "+14155550102", "+14155550103"]
STRANGER = "+14155550199"  # a number in no campaign


def callback(sid: str, to: str, status: str, **extra: str) -> dict[str, str]:
    """A Twilio status callback's form."""
    return {
        "CallSid": sid,
        "To": to,
        "CallStatus": status,
        "Timestamp": "Tue, 16 Jan 2024 09:00:00 +0000",
        **extra,
    }


async def test_twilio_calls_become_the_campaigns_numbers(settings: Settings) -> None:
    """Through the webhook_url createCarrierConnection handed out: an answered call, a busy one and a
    voicemail found by answering machine detection, then Twilio's retry of the last callback."""
    async with hooked(settings, "twilio", PHONES) as hook:
        listed = await hook.http.get("/getCarrierConnections", headers=hook.auth)
        (connection,) = listed.json()["data"]["connections"]
        url = connection["webhook_url"] + "?" + urlencode({"campaign_id": hook.campaign_id})
        sent = [
            callback("CA1", PHONES[0], "initiated"),
            callback("CA1", PHONES[0], "in-progress"),
            callback("CA1", PHONES[0], "completed", CallDuration="42"),
            callback("CA2", PHONES[1], "initiated"),
            callback("CA2", PHONES[1], "busy"),
            callback("CA3", PHONES[2], "completed", CallDuration="20", AnsweredBy="machine_end_beep"),
            callback("CA1", PHONES[0], "completed", CallDuration="42"),  # Twilio's retry
        ]
        for params in sent:
            signature = twilio_signature(hook.secret, url, params)
            response = await hook.http.post(url, data=params, headers={"X-Twilio-Signature": signature})
            assert response.status_code == 204, response.text
        assert await numbers(hook) == {
            "calls_completed": 1,
            "calls_failed": 0,
            "calls_pending": 2,  # busy and voicemail: retried
            "calls_in_progress": 0,
            "call_status_breakdown": {"answered": 1, "busy": 1, "no_answer": 0, "failed": 0, "voicemail": 1},
            "total_call_duration": 42,
            "average_call_duration": 42,
            "success_rate": 100.0,
        }
        assert stored_verdicts(hook.app) == {"applied": 6, "duplicate": 1}
        # each ended call keeps Twilio's own word for it: AnsweredBy when sent, else CallStatus
        stats = await hook.http.get(
            f"/getCampaignStats/{hook.campaign_id}?include=raw_outcomes", headers=hook.auth
        )
        assert stats.json()["data"]["raw_outcomes"] == {
            "twilio:busy": 1,
            "twilio:completed": 1,
            "twilio:machine_end_beep": 1,
        }


# -- what each platform sends besides the calls ----------------------------------------------------


async def test_twilio_names_the_contact_by_contact_id(settings: Settings) -> None:
    """contact_id in the query string names the contact whatever number Twilio reports; one of another
    campaign is no such contact."""
    async with hooked(settings, "twilio", PHONES) as hook:
        with hook.app.db.read() as conn:
            ids = dict(conn.execute(select(contacts.c.phone, contacts.c.id)).all())
        other = await create_campaign(hook.http, hook.auth, ["+14155550177"])
        with hook.app.db.read() as conn:
            foreign = conn.execute(select(contacts.c.id).where(contacts.c.campaign_id == other)).scalar_one()
        for call_id, contact_id in (("CA-id", ids[PHONES[1]]), ("CA-foreign", foreign)):
            url = hook.url(campaign_id=hook.campaign_id, contact_id=str(contact_id))
            params = callback(call_id, "+19995550000", "initiated")
            signature = twilio_signature(hook.secret, url, params)
            sent = await hook.http.post(url, data=params, headers={"X-Twilio-Signature": signature})
            assert sent.status_code == 204
        assert (await numbers(hook))["calls_in_progress"] == 1
        with hook.app.db.read() as conn:
            rows = dict(conn.execute(select(carrier_callbacks.c.call_id, carrier_callbacks.c.reason)).all())
        assert rows == {"CA-id": None, "CA-foreign": "no such contact in this campaign"}


async def test_twilio_an_answering_machine_result_alone_changes_nothing(settings: Settings) -> None:
    """Asynchronous AMD posts AnsweredBy without CallStatus: kept (ignored), no number moves."""
    async with hooked(settings, "twilio", PHONES) as hook:
        amd = Callback("CA-amd", "amd", {"CallSid": "CA-amd", "To": PHONES[0], "AnsweredBy": "machine_start"})
        assert (await deliver(hook, amd)).status_code == 204
        assert stored_verdicts(hook.app) == {"ignored": 1}
        assert (await numbers(hook))["calls_pending"] == len(PHONES)


async def test_retell_call_analyzed_changes_no_number_and_metadata_names_the_campaign(
    settings: Settings,
) -> None:
    """A Retell URL without campaign_id: the call's metadata names it. call_analyzed is ignored, even
    for a call never seen."""
    async with hooked(settings, "retell", PHONES) as hook:
        call = planned_call("retell", "R-meta", PHONES[0], "answered", 4, T0, hook.campaign_id)
        started, ended, analyzed = call.callbacks
        bare = Hooked(
            hook.app, hook.http, hook.auth, hook.campaign_id, "retell", hook.connection_id, hook.secret
        )
        url = BASE_URL + bare.path
        assert (await post_retell(bare, url, analyzed.payload)).json()["data"]["verdict"] == "ignored"
        assert (await numbers(hook))["calls_pending"] == len(PHONES)
        for sent in (started, ended):
            sent.payload["call"]["metadata"] = {"campaign_id": hook.campaign_id}
            assert (await post_retell(bare, url, sent.payload)).json()["data"]["verdict"] == "applied"
        figures = await numbers(hook)
        assert figures["calls_completed"] == 1 and figures["total_call_duration"] == call.talk_seconds == 16


async def test_vapi_other_messages_are_acknowledged_and_ignored(settings: Settings) -> None:
    async with hooked(settings, "vapi", PHONES) as hook:
        call = planned_call("vapi", "V-other", PHONES[0], "answered", 0, T0, hook.campaign_id)
        ringing = call.callbacks[0].payload["message"]
        for kind in ("transcript", "conversation-update", "speech-update", "hang", "tool-calls"):
            other = Callback("V-other", kind, {"message": {**ringing, "type": kind}})
            answer = await deliver(hook, other)
            assert answer.status_code == 200 and answer.json()["data"]["verdict"] == "ignored"
        bare = {"message": {"type": "assistant-request", "call": {"id": "V-in"}}}  # names no campaign
        answer = await deliver(hook, Callback("V-in", "assistant-request", bare))
        assert answer.status_code == 200 and answer.json()["data"]["verdict"] == "ignored"
        assert stored_verdicts(hook.app) == {"ignored": 6}
        assert (await numbers(hook))["calls_pending"] == len(PHONES)


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'"text"', b'{"message": 3}'])
async def test_vapi_a_body_that_says_nothing_usable_is_kept_unmatched(
    settings: Settings, body: bytes
) -> None:
    """Authenticated but unreadable: kept and listed (nothing lost), never guessed."""
    async with hooked(settings, "vapi", PHONES) as hook:
        answer = await hook.http.post(
            hook.url(), content=body, headers=vapi_headers("bearer", hook.secret, body)
        )
        assert answer.status_code == 200 and answer.json()["data"]["verdict"] == "unmatched"
        listed = (await hook.http.get("/getUnmatchedCallbacks", headers=hook.auth)).json()["data"]
        assert [item["body"] for item in listed] == [body.decode()]


async def post_retell(hook: Hooked, url: str, payload: dict[str, Any]) -> httpx.Response:
    body = json_body(payload)
    return await hook.http.post(
        url, content=body, headers={"x-retell-signature": retell_signature(body, hook.secret)}
    )


# -- the secret ------------------------------------------------------------------------------------


def every_stored_value(app: CallstatsApp) -> list[str]:
    """Every value of every column of every table in the database (reflected, so none is missed), as text."""
    values: list[str] = []
    with app.db.read() as conn:
        reflected = MetaData()
        reflected.reflect(bind=conn)
        for table in reflected.sorted_tables:
            for row in conn.execute(select(table)):
                values.extend(str(value) for value in row if value is not None)
    return values


async def exercise(hook: Hooked, provider: str, secret: str) -> list[httpx.Response]:
    """A connection's life: genuine, unmatched and forged callbacks, listing, replay, deletion, its
    webhook after deletion; every answer."""
    answers = []
    call = planned_call(provider, f"{provider}-s", PHONES[0], "answered", 0, T0, hook.campaign_id)
    for sent in call.callbacks:
        answers.append(await deliver(hook, sent))
    stray = planned_call(provider, f"{provider}-stray", STRANGER, "busy", 0, T0, hook.campaign_id)
    answers.append(await deliver(hook, stray.callbacks[-1]))
    if provider == "vapi":  # Vapi's messages may carry the assistant, with its server secret
        echoed = planned_call(provider, "vapi-echo", STRANGER, "live", 0, T0, hook.campaign_id).callbacks[0]
        echoed.payload["message"]["call"]["assistant"] = {"server": {"url": hook.url(), "secret": secret}}
        answers.append(await deliver(hook, echoed))
        assert answers[-1].json()["data"]["verdict"] == "unmatched"
        body = json_body(call.callbacks[0].payload)
        for scheme in VAPI_SCHEMES:
            answers.append(
                await hook.http.post(hook.url(), content=body, headers=vapi_headers(scheme, secret, body))
            )
            answers.append(
                await hook.http.post(
                    hook.url(), content=body, headers=vapi_headers(scheme, secret[:-1], body)
                )
            )
    forged = Hooked(
        hook.app, hook.http, hook.auth, hook.campaign_id, provider, hook.connection_id, secret + "0"
    )
    answers.append(await deliver(forged, call.callbacks[0]))
    answers.append(await hook.http.get("/getCarrierConnections", headers=hook.auth))
    listed = await hook.http.get("/getUnmatchedCallbacks", headers=hook.auth)
    answers.append(listed)
    for item in listed.json()["data"]:
        answers.append(await hook.http.post(f"/replayCallback/{item['callback_id']}", headers=hook.auth))
    answers.append(await hook.http.post(f"/deleteCarrierConnection/{hook.connection_id}", headers=hook.auth))
    answers.append(await deliver(hook, call.callbacks[0]))
    return answers


@pytest.mark.parametrize("provider", ["twilio", "retell", "vapi"])
async def test_the_secret_never_appears_in_answers_logs_or_the_database(
    settings: Settings, provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a connection's whole life, Vapi's secret sent in clear in its headers included: no
    answer's body or headers, no log record (formatted as the JSON log formats it, extras included),
    no access log line and no stored value holds the secret."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements with their values
    access = io.StringIO()
    async with hooked(settings, provider, PHONES) as hook:
        secret = hook.secret
        with access_to(access):
            answers = await exercise(hook, provider, secret)
            hook.app.access.flush()
        statuses = Counter(answer.status_code for answer in answers)
        assert statuses[403] >= 1 and statuses[404] == 1 and statuses[200] >= 3
        assert not [answer for answer in answers if secret in answer.text or secret in str(answer.headers)]
        values = every_stored_value(hook.app)
        assert any(value.startswith("gAAAA") for value in values)  # the sealed secret was scanned
        assert any(hook.connection_id in value for value in values)
        assert not [value for value in values if secret in value]
    json_lines = OrjsonFormatter(
        **{k: v for k, v in log_config("info")["formatters"]["stderr"].items() if k != "()"}
    )
    assert caplog.records and access.getvalue().count("\n") >= len(answers)
    assert secret not in caplog.text and secret not in access.getvalue()
    assert not [record for record in caplog.records if secret in json_lines.format(record)]


@pytest.mark.parametrize("provider", ["retell", "vapi"])
async def test_a_signed_body_nested_past_any_parser_is_kept_unmatched(
    settings: Settings, provider: str
) -> None:
    """100,000 levels of JSON, signed: answered 2xx and kept raw as unmatched, never a 500 (the body is
    read only once its signature holds; an unsigned one is refused before)."""
    body = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    async with hooked(settings, provider, PHONES) as hook:
        if provider == "retell":
            headers = {"x-retell-signature": retell_signature(body, hook.secret)}
        else:
            headers = vapi_headers(VAPI_SCHEMES[0], hook.secret, body)
        response = await hook.http.post(
            hook.url(), content=body, headers={"content-type": "application/json", **headers}
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["verdict"] == "unmatched"
        assert stored_verdicts(hook.app) == {"unmatched": 1}
