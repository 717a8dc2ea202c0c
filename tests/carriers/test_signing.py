"""The signing side of the three platforms (twilio.sign, retell.sign, vapi.sign), pure: what each
makes is what the platform's own SDK makes, and what the verifying side accepts."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from retell.lib.webhook_auth import symmetric
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from callstats.carriers import retell, twilio, vapi

TOKEN = "12345678901234567890123456789012"
URL = "https://callstats.example.com/webhooks/twilio/6c0e2a4f-1b7d-4a59-9d0e-3f2b8c1d7e55?campaign_id=9b2f"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "CallStatus": "completed",
    "To": "+14155550101",
    "CallDuration": "42",
    "AnsweredBy": "",
}
NOW = 1_714_608_500_000
BODY = (
    b'{"event":"call_ended","call":{"call_id":"Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6","to_number":"+14155550101"}}'
)

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
forms = st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10), texts)


# ---------- Twilio ----------


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256", "hmac_sha256"])
def test_twilio_sign_is_the_sdks_compute_signature(algorithm: str) -> None:
    expected = RequestValidator(TOKEN).compute_signature(URL, PARAMS, algorithm)
    assert twilio.sign(TOKEN, URL, PARAMS, algorithm) == expected


def test_twilio_sign_defaults_to_sha1_and_the_sdk_validates_it() -> None:
    signature = twilio.sign(TOKEN, URL, PARAMS)
    assert signature == RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    assert RequestValidator(TOKEN).validate(URL, PARAMS, signature)
    assert twilio.signature_valid(TOKEN, URL, PARAMS, signature)
    assert not RequestValidator(TOKEN).validate(URL, {**PARAMS, "CallDuration": "43"}, signature)


def test_twilio_sign_covers_every_value_of_a_repeated_name() -> None:
    """A repeated name's values, as the SDK reads them from a multi-dict (Flask's, Starlette's)."""
    pairs = [("To", "+14155550101"), ("Tag", "b"), ("Tag", "a"), ("Tag", "b")]
    signature = twilio.sign(TOKEN, URL, {"To": "+14155550101", "Tag": ["b", "a", "b"]})
    assert signature == RequestValidator(TOKEN).compute_signature(URL, ImmutableMultiDict(pairs))
    assert signature != twilio.sign(TOKEN, URL, {"To": "+14155550101", "Tag": "b"})


@given(url=texts, params=forms, token=texts)
def test_twilio_sign_agrees_with_the_sdk_on_any_text(url: str, params: dict[str, str], token: str) -> None:
    assert twilio.sign(token, url, params) == RequestValidator(token).compute_signature(url, params)


def test_twilio_sign_refuses_an_unknown_algorithm_as_the_sdk_does() -> None:
    with pytest.raises(ValueError):
        RequestValidator(TOKEN).compute_signature(URL, PARAMS, "HMAC_MD5")
    with pytest.raises(ValueError, match="HMAC_MD5"):
        twilio.sign(TOKEN, URL, PARAMS, "HMAC_MD5")


# ---------- Retell ----------


def test_retell_sign_is_the_sdks_sign() -> None:
    expected = symmetric["sign"](BODY.decode(), TOKEN, NOW)
    assert retell.sign(TOKEN, BODY, NOW) == expected


def test_retell_signature_passes_the_sdks_verify_and_ours() -> None:
    signature = retell.sign(TOKEN, BODY, NOW)
    assert symmetric["verify"](BODY.decode(), TOKEN, signature, {"timestamp": NOW + 1000})
    assert retell.signature_valid(TOKEN, BODY, signature, NOW + 1000)
    assert not retell.signature_valid(TOKEN, BODY + b" ", signature, NOW)
    assert not retell.signature_valid(TOKEN, BODY, signature, NOW + retell.TOLERANCE_MS + 1)


@given(body=texts, key=texts.filter(bool), now=st.integers(0, 10**13))
def test_retell_sign_agrees_with_the_sdk_on_any_body(body: str, key: str, now: int) -> None:
    assert retell.sign(key, body.encode(), now) == symmetric["sign"](body, key, now)


# ---------- Vapi ----------


def test_vapi_sign_is_the_hex_hmac_sha256_of_the_body() -> None:
    expected = hmac.new(TOKEN.encode(), BODY, hashlib.sha256).hexdigest()
    assert vapi.sign(TOKEN, BODY) == expected
    assert len(expected) == 64


def test_vapi_signature_authenticates_only_its_body_and_secret() -> None:
    signature = vapi.sign(TOKEN, BODY)
    assert vapi.authenticated(TOKEN, {"x-vapi-signature": signature}, BODY)
    assert not vapi.authenticated(TOKEN, {"x-vapi-signature": signature}, BODY + b" ")
    assert not vapi.authenticated("another-secret", {"x-vapi-signature": signature}, BODY)
