"""Acceptance: a webhook's signature is its credential. A tampered parameter, a wrong URL, a missing or
expired signature, another connection's secret: 403 in our envelope, nothing stored. An unknown,
deleted or other platform's connection: 404, nothing stored. Twilio URLs with and without their
port, behind CALLSTATS_PUBLIC_URL and behind trusted (or untrusted) forwarding proxies, are accepted
exactly when twilio's own RequestValidator accepts them; Retell's tolerance is retell-sdk's own.
On SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any, NamedTuple

import httpx
import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from callstats.accounts.service import create_key
from callstats.config import Settings
from tests.carriers.webhook_kit import (
    BASE_URL,
    T0,
    Callback,
    Hooked,
    connect,
    deliver,
    hooked,
    json_body,
    numbers,
    phone,
    planned_call,
    retell_signature,
    retell_verdict,
    stored_rows,
    twilio_signature,
    vapi_headers,
)
from tests.envelope import assert_error

PHONES = [phone(0), phone(1)]


def first_callback(hook: Hooked, kind: str = "answered") -> Callback:
    """The first callback of an answered call to the campaign's first contact."""
    call = planned_call(hook.provider, "CA-sig", PHONES[0], kind, 0, T0, hook.campaign_id)
    return call.callbacks[0]


async def refused(hook: Hooked, response: httpx.Response, status: int = 403) -> None:
    """The answer is the envelope's FORBIDDEN (or NOT_FOUND) and nothing was stored or counted."""
    assert_error(response, status, "FORBIDDEN" if status == 403 else "NOT_FOUND")
    assert hook.secret not in response.text
    assert stored_rows(hook.app) == (0, 0)
    figures = await numbers(hook)
    assert figures["calls_pending"] == len(PHONES) and figures["calls_in_progress"] == 0


async def post_form(
    hook: Hooked, url: str, params: dict[str, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    return await hook.http.post(url, data=params, headers=headers or {})


async def post_json(
    hook: Hooked, body: bytes, headers: dict[str, str], url: str | None = None
) -> httpx.Response:
    return await hook.http.post(
        url or hook.url(), content=body, headers={"content-type": "application/json", **headers}
    )


# -- Twilio ----------------------------------------------------------------------------------------


async def test_twilio_a_genuine_callback_is_taken(settings: Settings) -> None:
    """The reference point of the refusals below: the same callback, correctly signed, is stored."""
    async with hooked(settings, "twilio", PHONES) as hook:
        response = await deliver(hook, first_callback(hook))
        assert response.status_code == 204
        assert stored_rows(hook.app) == (1, 1)


@pytest.mark.parametrize(
    "tamper",
    [
        {"CallStatus": "completed"},
        {"To": PHONES[1]},
        {"CallDuration": "3600"},
        {"Extra": "added"},
        {"CallSid": "CA-other"},
    ],
)
async def test_twilio_a_tampered_parameter_is_refused(settings: Settings, tamper: dict[str, str]) -> None:
    async with hooked(settings, "twilio", PHONES) as hook:
        params = first_callback(hook).payload
        signature = twilio_signature(hook.secret, hook.url(), params)
        response = await post_form(hook, hook.url(), {**params, **tamper}, {"X-Twilio-Signature": signature})
        await refused(hook, response)


async def test_twilio_a_dropped_parameter_is_refused(settings: Settings) -> None:
    async with hooked(settings, "twilio", PHONES) as hook:
        params = first_callback(hook).payload
        signature = twilio_signature(hook.secret, hook.url(), params)
        kept = {name: value for name, value in params.items() if name != "SequenceNumber"}
        await refused(hook, await post_form(hook, hook.url(), kept, {"X-Twilio-Signature": signature}))


@pytest.mark.parametrize(
    "signed_for",
    [
        "other campaign",
        "no query",
        "other connection",
        "other host",
        "https",
        "trailing slash",
    ],
)
async def test_twilio_a_signature_for_another_url_is_refused(settings: Settings, signed_for: str) -> None:
    """Twilio signs the URL it calls: a signature made for any other URL does not hold here."""
    async with hooked(settings, "twilio", PHONES) as hook:
        params = first_callback(hook).payload
        other = {
            "other campaign": hook.url(campaign_id=str(uuid.uuid4())),
            "no query": BASE_URL + hook.path,
            "other connection": hook.url().replace(hook.connection_id, str(uuid.uuid4())),
            "other host": hook.url(base="http://elsewhere.test"),
            "https": hook.url(base="https://callstats.test"),
            "trailing slash": BASE_URL + hook.path + "/?campaign_id=" + hook.campaign_id,
        }[signed_for]
        signature = twilio_signature(hook.secret, other, params)
        await refused(hook, await post_form(hook, hook.url(), params, {"X-Twilio-Signature": signature}))


@pytest.mark.parametrize("header", [None, "", "not-base64!", "AAAA"])
async def test_twilio_a_missing_or_malformed_signature_is_refused(
    settings: Settings, header: str | None
) -> None:
    async with hooked(settings, "twilio", PHONES) as hook:
        headers = {} if header is None else {"X-Twilio-Signature": header}
        await refused(hook, await post_form(hook, hook.url(), first_callback(hook).payload, headers))


async def test_twilio_another_connections_token_is_refused(settings: Settings) -> None:
    """Another account's Twilio connection (its own token) signs a callback for this URL: refused;
    the same token does open its own connection."""
    async with hooked(settings, "twilio", PHONES) as hook:
        other_auth = {"x-api-key": create_key(hook.app.db, "globex", "write").plaintext}
        other_token = "tw-auth-ffffeeeeddddccccbbbbaaaa99998888"
        other_id = await connect(hook.http, other_auth, "twilio", secret=other_token)
        params = first_callback(hook).payload
        signature = twilio_signature(other_token, hook.url(), params)
        await refused(hook, await post_form(hook, hook.url(), params, {"X-Twilio-Signature": signature}))
        own = hook.url().replace(hook.connection_id, other_id)
        taken = await post_form(
            hook, own, params, {"X-Twilio-Signature": twilio_signature(other_token, own, params)}
        )
        assert taken.status_code == 204
        assert stored_rows(hook.app)[0] == 1


async def test_twilio_a_shared_key_signature_is_judged_by_its_settings_header(settings: Settings) -> None:
    """Signed with HMAC-SHA256 (a webhook SharedKey): taken when X-Twilio-Webhooks-Signature-Settings
    names that algorithm, refused without the header, as the validator decides."""
    async with hooked(settings, "twilio", PHONES) as hook:
        params = first_callback(hook).payload
        validator = RequestValidator(hook.secret)
        signature = str(validator.compute_signature(hook.url(), params, "HMAC_SHA256"))
        assert validator.validate(hook.url(), params, signature) is False
        bare = await post_form(hook, hook.url(), params, {"X-Twilio-Signature": signature})
        await refused(hook, bare)
        settings_header = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sk_1,algorithm=HMAC_SHA256"}
        assert validator.validate(hook.url(), params, signature, "HMAC_SHA256")
        taken = await post_form(
            hook, hook.url(), params, {"X-Twilio-Signature": signature, **settings_header}
        )
        assert taken.status_code == 204
        assert stored_rows(hook.app) == (1, 1)


# -- Twilio's URL, as the validator judges it ------------------------------------------------------


class Route(NamedTuple):
    """How a callback reaches callstats: the settings, the URL base the client posts to, the headers
    that come with it, and the base of the URL that callstats may take Twilio to have called (the one
    the validator is given)."""

    settings: dict[str, Any]
    posted_to: str
    headers: dict[str, str]
    called: str


ROUTES = {
    "direct": Route({}, "http://callstats.test", {}, "http://callstats.test"),
    "direct, default port in Host": Route(
        {}, "http://callstats.test", {"host": "callstats.test:80"}, "http://callstats.test:80"
    ),
    "direct https": Route({}, "https://callstats.test", {}, "https://callstats.test"),
    "direct https, 443 in Host": Route(
        {}, "https://callstats.test", {"host": "callstats.test:443"}, "https://callstats.test:443"
    ),
    "direct, another port": Route({}, "http://callstats.test:8080", {}, "http://callstats.test:8080"),
    "public URL with a path": Route(
        {"public_url": "https://hooks.example.com/callstats"},
        "http://callstats.test",
        {"x-forwarded-proto": "http", "x-forwarded-host": "evil.test"},
        "https://hooks.example.com/callstats",
    ),
    "public URL with a port": Route(
        {"public_url": "https://hooks.example.com:8443"},
        "http://callstats.test",
        {},
        "https://hooks.example.com:8443",
    ),
    "trusted proxy": Route(
        {"trusted_proxies": "127.0.0.1"},
        "http://callstats.test",
        {"x-forwarded-proto": "https", "x-forwarded-host": "hooks.example.com"},
        "https://hooks.example.com",
    ),
    "trusted proxy network, default port forwarded": Route(
        {"trusted_proxies": "10.0.0.0/8,127.0.0.0/8"},
        "http://callstats.test",
        {"x-forwarded-proto": "https", "x-forwarded-host": "hooks.example.com:443"},
        "https://hooks.example.com:443",
    ),
    "trusted proxy, another port forwarded": Route(
        {"trusted_proxies": "127.0.0.1"},
        "http://callstats.test",
        {"x-forwarded-proto": "https", "x-forwarded-host": "hooks.example.com:8443"},
        "https://hooks.example.com:8443",
    ),
    "untrusted proxy": Route(
        {"trusted_proxies": "10.0.0.0/8"},
        "http://callstats.test",
        {"x-forwarded-proto": "https", "x-forwarded-host": "hooks.example.com"},
        "http://callstats.test",
    ),
}
SIGNED_BASES = (
    "http://callstats.test",
    "http://callstats.test:80",
    "https://callstats.test",
    "https://callstats.test:443",
    "http://callstats.test:8080",
    "http://hooks.example.com",
    "https://hooks.example.com",
    "https://hooks.example.com:443",
    "https://hooks.example.com:8443",
    "https://hooks.example.com/callstats",
    "https://hooks.example.com:443/callstats",
)
"""The URL bases signatures are made for: the validator accepts some of them for each route."""


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
async def test_twilio_urls_are_accepted_exactly_when_the_validator_accepts_them(
    settings: Settings, route: str
) -> None:
    """For each base a signature may have been made for, the webhook takes the callback (204) exactly
    when RequestValidator.validate accepts that signature for the URL Twilio called (403 otherwise)."""
    way = ROUTES[route]
    async with hooked(settings.model_copy(update=way.settings), "twilio", PHONES) as hook:
        validator = RequestValidator(hook.secret)
        verdicts: dict[str, tuple[bool, bool]] = {}
        for number, signed_base in enumerate(SIGNED_BASES):
            params = {**first_callback(hook).payload, "CallSid": f"CA-url-{number}"}
            signature = twilio_signature(hook.secret, hook.url(base=signed_base), params)
            expected = validator.validate(hook.url(base=way.called), params, signature)
            response = await post_form(
                hook, hook.url(base=way.posted_to), params, {"X-Twilio-Signature": signature, **way.headers}
            )
            assert response.status_code in (204, 403), response.text
            verdicts[signed_base] = (response.status_code == 204, expected)
        assert {base: ours for base, (ours, _) in verdicts.items()} == {
            base: theirs for base, (_, theirs) in verdicts.items()
        }
        accepted = sum(theirs for _, theirs in verdicts.values())
        assert 0 < accepted < len(SIGNED_BASES)
        assert stored_rows(hook.app)[0] == accepted


async def test_twilio_the_url_as_requested_is_what_is_checked(settings: Settings) -> None:
    """A webhook URL written with the connection id in capitals and the query escaped otherwise
    still routes to the connection; Twilio signed that very URL, and the validator accepts it."""
    async with hooked(settings, "twilio", PHONES) as hook:
        url = BASE_URL + hook.path.upper().replace("/WEBHOOKS/TWILIO/", "/webhooks/twilio/")
        url += f"?campaign_id={hook.campaign_id.upper()}&note=a%20b"
        params = first_callback(hook).payload
        signature = twilio_signature(hook.secret, url, params)
        assert RequestValidator(hook.secret).validate(url, params, signature)
        response = await post_form(hook, url, params, {"X-Twilio-Signature": signature})
        assert response.status_code == 204, response.text
        assert stored_rows(hook.app) == (1, 1)


# -- Retell ----------------------------------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_retell_a_genuine_webhook_is_taken(settings: Settings) -> None:
    async with hooked(settings, "retell", PHONES) as hook:
        response = await deliver(hook, first_callback(hook))
        assert response.status_code == 200 and response.json()["data"]["verdict"] == "applied"
        assert stored_rows(hook.app) == (1, 2)  # call_started: started and answered


async def test_retell_a_tampered_body_is_refused(settings: Settings) -> None:
    async with hooked(settings, "retell", PHONES) as hook:
        body = json_body(first_callback(hook).payload)
        header = retell_signature(body, hook.secret)
        tampered = body.replace(PHONES[0].encode(), PHONES[1].encode())
        assert retell_verdict(tampered, hook.secret, header) is False
        await refused(hook, await post_json(hook, tampered, {"x-retell-signature": header}))


@pytest.mark.parametrize("header", [None, "", "v=1,d=00", "d=" + "0" * 64])
async def test_retell_a_missing_or_malformed_signature_is_refused(
    settings: Settings, header: str | None
) -> None:
    async with hooked(settings, "retell", PHONES) as hook:
        body = json_body(first_callback(hook).payload)
        await refused(
            hook, await post_json(hook, body, {} if header is None else {"x-retell-signature": header})
        )


@pytest.mark.parametrize("offset_ms", [-(5 * 60_000 + 5_000), 5 * 60_000 + 5_000, -3_600_000])
async def test_retell_an_expired_or_future_signature_is_refused(settings: Settings, offset_ms: int) -> None:
    """Signed over five minutes before (or after) it arrives: retell-sdk's verify refuses it, and so do we."""
    async with hooked(settings, "retell", PHONES) as hook:
        body = json_body(first_callback(hook).payload)
        header = retell_signature(body, hook.secret, now_ms() + offset_ms)
        assert retell_verdict(body, hook.secret, header) is False
        await refused(hook, await post_json(hook, body, {"x-retell-signature": header}))


@pytest.mark.parametrize("offset_ms", [-(4 * 60_000), 4 * 60_000])
async def test_retell_a_signature_within_the_tolerance_is_taken(settings: Settings, offset_ms: int) -> None:
    async with hooked(settings, "retell", PHONES) as hook:
        body = json_body(first_callback(hook).payload)
        header = retell_signature(body, hook.secret, now_ms() + offset_ms)
        assert retell_verdict(body, hook.secret, header)
        response = await post_json(hook, body, {"x-retell-signature": header})
        assert response.status_code == 200, response.text


async def test_retell_another_connections_key_is_refused(settings: Settings) -> None:
    async with hooked(settings, "retell", PHONES) as hook:
        other_auth = {"x-api-key": create_key(hook.app.db, "globex", "write").plaintext}
        other_key = "key_ffffeeeeddddccccbbbbaaaa9999"
        await connect(hook.http, other_auth, "retell", secret=other_key)
        body = json_body(first_callback(hook).payload)
        await refused(
            hook, await post_json(hook, body, {"x-retell-signature": retell_signature(body, other_key)})
        )


# -- Vapi ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["bearer", "hmac", "secret"])
async def test_vapi_each_scheme_with_the_secret_is_taken(settings: Settings, scheme: str) -> None:
    async with hooked(settings, "vapi", PHONES) as hook:
        body = json_body(first_callback(hook).payload)
        response = await post_json(hook, body, vapi_headers(scheme, hook.secret, body))
        assert response.status_code == 200 and response.json()["data"]["verdict"] == "applied"
        assert stored_rows(hook.app) == (1, 1)


@pytest.mark.parametrize("scheme", ["bearer", "hmac", "secret"])
async def test_vapi_another_connections_secret_is_refused(settings: Settings, scheme: str) -> None:
    async with hooked(settings, "vapi", PHONES) as hook:
        other_auth = {"x-api-key": create_key(hook.app.db, "globex", "write").plaintext}
        other_secret = "vapi-credential-secret-of-globex"
        await connect(hook.http, other_auth, "vapi", secret=other_secret)
        body = json_body(first_callback(hook).payload)
        await refused(hook, await post_json(hook, body, vapi_headers(scheme, other_secret, body)))


@pytest.mark.parametrize(
    "credential",
    [
        "none",
        "hmac of another body",
        "hmac with the secret as its text",
        "bearer prefix only",
        "basic scheme",
        "secret with a suffix",
    ],
)
async def test_vapi_a_wrong_or_missing_credential_is_refused(settings: Settings, credential: str) -> None:
    async with hooked(settings, "vapi", PHONES) as hook:
        body = json_body(first_callback(hook).payload)
        headers = {
            "none": {},
            "hmac of another body": vapi_headers("hmac", hook.secret, body + b" "),
            "hmac with the secret as its text": {"x-vapi-signature": hook.secret},
            "bearer prefix only": {"Authorization": "Bearer "},
            "basic scheme": {"Authorization": f"Basic {hook.secret}"},
            "secret with a suffix": {"x-vapi-secret": hook.secret + "x"},
        }[credential]
        await refused(hook, await post_json(hook, body, headers))


async def test_vapi_a_tampered_body_under_hmac_is_refused(settings: Settings) -> None:
    async with hooked(settings, "vapi", PHONES) as hook:
        body = json_body(first_callback(hook).payload)
        headers = vapi_headers("hmac", hook.secret, body)
        await refused(hook, await post_json(hook, body.replace(b"ringing", b"in-progress"), headers))


# -- the connection a path names -------------------------------------------------------------------


def signed_request(hook: Hooked, url: str) -> tuple[bytes | dict[str, str], dict[str, str]]:
    """The hook's first callback, signed as its platform would sign it for `url`."""
    payload = first_callback(hook).payload
    if hook.provider == "twilio":
        return payload, {"X-Twilio-Signature": twilio_signature(hook.secret, url, payload)}
    body = json_body(payload)
    if hook.provider == "retell":
        return body, {
            "x-retell-signature": retell_signature(body, hook.secret),
            "content-type": "application/json",
        }
    return body, {**vapi_headers("bearer", hook.secret, body), "content-type": "application/json"}


async def post_signed(hook: Hooked, url: str) -> httpx.Response:
    content, headers = signed_request(hook, url)
    if isinstance(content, dict):
        return await hook.http.post(url, data=content, headers=headers)
    return await hook.http.post(url, content=content, headers=headers)


@pytest.mark.parametrize("provider", ["twilio", "retell", "vapi"])
async def test_an_unknown_connection_is_a_404(settings: Settings, provider: str) -> None:
    async with hooked(settings, provider, PHONES) as hook:
        for connection in (str(uuid.uuid4()), "not-a-uuid", hook.connection_id[:-1]):
            url = hook.url().replace(hook.connection_id, connection)
            await refused(hook, await post_signed(hook, url), status=404)


@pytest.mark.parametrize("provider", ["twilio", "retell", "vapi"])
async def test_a_deleted_connection_is_a_404(settings: Settings, provider: str) -> None:
    """Correctly signed with the secret it had: its webhook is gone once it is deleted."""
    async with hooked(settings, provider, PHONES) as hook:
        deleted = await hook.http.post(f"/deleteCarrierConnection/{hook.connection_id}", headers=hook.auth)
        assert deleted.status_code == 200
        await refused(hook, await post_signed(hook, hook.url()), status=404)


@pytest.mark.parametrize(
    ("provider", "path_provider"),
    [("twilio", "retell"), ("retell", "vapi"), ("vapi", "twilio"), ("twilio", "plivo")],
)
async def test_another_providers_path_is_a_404(settings: Settings, provider: str, path_provider: str) -> None:
    """A connection is reached under its own platform's path only."""
    async with hooked(settings, provider, PHONES) as hook:
        url = hook.url().replace(f"/webhooks/{provider}/", f"/webhooks/{path_provider}/")
        response = await post_signed(hook, url)
        await refused(hook, response, status=404)


async def test_refusals_leave_what_was_stored_alone(settings: Settings) -> None:
    """After a genuine callback, refused ones add nothing: counts stay at the genuine one's."""
    async with hooked(settings, "twilio", PHONES) as hook:
        assert (await deliver(hook, first_callback(hook))).status_code == 204
        before = stored_rows(hook.app), await numbers(hook)
        params = {**first_callback(hook, "busy").payload, "CallStatus": "busy", "CallSid": "CA-x"}
        forged = await post_form(
            hook, hook.url(), params, {"X-Twilio-Signature": twilio_signature("x", hook.url(), params)}
        )
        assert_error(forged, 403, "FORBIDDEN")
        assert (stored_rows(hook.app), await numbers(hook)) == before
