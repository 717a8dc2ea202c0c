"""The public base of webhook URLs: CALLSTATS_PUBLIC_URL wins; otherwise the request's scheme and Host,
forwarded headers believed only from CALLSTATS_TRUSTED_PROXIES (IPs and CIDRs); default ports dropped."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from callstats.accounts.service import create_key
from callstats.app import create_app
from callstats.carriers.public_url import is_trusted, public_base, trusted_networks, webhook_url
from callstats.config import Settings
from callstats.errors import ValidationFailed
from tests.envelope import assert_error

FORWARDED = {"x-forwarded-proto": "https", "x-forwarded-host": "calls.example.com"}


def scope(
    headers: dict[str, str] | list[tuple[str, str]],
    peer: str | None = "203.0.113.9",
    scheme: str = "http",
    server: tuple[str, int] | None = ("10.1.2.3", 8000),
) -> dict[str, Any]:
    """An ASGI HTTP scope as the server hands it over: lower-case header names as bytes."""
    items = headers.items() if isinstance(headers, dict) else headers
    return {
        "type": "http",
        "scheme": scheme,
        "headers": [(name.lower().encode(), value.encode("latin-1")) for name, value in items],
        "client": (peer, 51234) if peer else None,
        "server": server,
    }


def base(trusted: str = "", public_url: str | None = None, **request: Any) -> str:
    """public_base of a request under these two settings."""
    settings = Settings(trusted_proxies=trusted, public_url=public_url)
    return public_base(scope(**request), settings)


def test_the_setting_wins_over_everything() -> None:
    """CALLSTATS_PUBLIC_URL is the base whatever the request says, trusted forwarded headers included."""
    headers = {"host": "internal:8000", **FORWARDED}
    assert base(public_url="https://hooks.example.org/callstats/", headers=headers) == (
        "https://hooks.example.org/callstats"
    )
    assert (
        base("0.0.0.0/0", "http://a.example:8080", headers=headers, peer="10.0.0.1")
        == "http://a.example:8080"
    )


def test_without_a_proxy_the_request_scheme_and_host() -> None:
    """The scope's scheme and the Host header as sent."""
    assert base(headers={"host": "callstats.example.com:8000"}) == "http://callstats.example.com:8000"
    assert base(headers={"host": "callstats.example.com"}, scheme="https") == "https://callstats.example.com"
    assert base(headers={"host": "[2001:db8::7]:9000"}) == "http://[2001:db8::7]:9000"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    """Nothing trusted, or a peer outside the trusted networks: X-Forwarded-* change nothing."""
    headers = {"host": "internal:8000", **FORWARDED}
    assert base(headers=headers, peer="127.0.0.1") == "http://internal:8000"
    assert base("10.0.0.0/8", headers=headers, peer="192.168.1.5") == "http://internal:8000"
    assert base("10.0.0.1", headers=headers, peer="10.0.0.2") == "http://internal:8000"
    assert base("10.0.0.0/8", headers=headers, peer=None) == "http://internal:8000"
    assert base("10.0.0.0/8", headers=headers, peer="testclient") == "http://internal:8000"


@pytest.mark.parametrize(
    ("trusted", "peer"),
    [
        ("10.0.0.7", "10.0.0.7"),
        ("192.168.0.1, 10.0.0.0/8", "10.200.3.4"),
        ("172.16.0.0/12", "172.31.255.254"),
        ("2001:db8::/32", "2001:db8:1::5"),
        ("::1", "::1"),
        ("10.0.0.0/8", "::ffff:10.0.0.7"),
    ],
)
def test_forwarded_headers_from_a_trusted_peer_are_used(trusted: str, peer: str) -> None:
    """A peer listed by IP, inside a listed CIDR (IPv4 or IPv6, an IPv4 peer seen as IPv6 too): its
    X-Forwarded-Proto and X-Forwarded-Host make the base."""
    headers = {"host": "internal:8000", **FORWARDED}
    assert base(trusted, headers=headers, peer=peer) == "https://calls.example.com"


def test_a_trusted_proxy_may_forward_only_the_scheme() -> None:
    """X-Forwarded-Proto alone (deploy/nginx.conf passes Host on): the Host header, the forwarded scheme."""
    headers = {"host": "calls.example.com", "x-forwarded-proto": "https"}
    assert base("127.0.0.1", headers=headers, peer="127.0.0.1") == "https://calls.example.com"


def test_the_last_forwarded_value_is_the_one_believed() -> None:
    """Several values (a client's own, then the proxy's): the last, the one the trusted proxy wrote."""
    headers = [
        ("host", "internal"),
        ("x-forwarded-proto", "http, https"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-host", "calls.example.com"),
    ]
    assert base("10.0.0.0/8", headers=headers, peer="10.0.0.2") == "https://calls.example.com"


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("http", "a.example:80", "http://a.example"),
        ("https", "a.example:443", "https://a.example"),
        ("http", "a.example:443", "http://a.example:443"),
        ("https", "a.example:80", "https://a.example:80"),
        ("http", "a.example:8080", "http://a.example:8080"),
        ("https", "[::1]:443", "https://[::1]"),
    ],
)
def test_a_default_port_is_left_out(scheme: str, host: str, expected: str) -> None:
    """80 for http and 443 for https are dropped (a carrier is given the plain URL); other ports kept."""
    assert base(headers={"host": host}, scheme=scheme) == expected
    forwarded = {"host": "internal", "x-forwarded-proto": scheme, "x-forwarded-host": host}
    assert base("10.0.0.0/8", headers=forwarded, peer="10.0.0.1") == expected


def test_a_request_without_host_uses_the_server_address() -> None:
    """HTTP/1.0 without Host: the address and port the server listens on."""
    assert base(headers={}, server=("10.1.2.3", 8000)) == "http://10.1.2.3:8000"
    assert base(headers={}, server=("::1", 80)) == "http://[::1]"
    with pytest.raises(ValidationFailed, match="CALLSTATS_PUBLIC_URL"):
        base(headers={}, server=None)


@pytest.mark.parametrize(
    ("headers", "names"),
    [
        ({"host": "evil.example/path?x="}, "Host"),
        ({"host": "a b"}, "Host"),
        ({"host": "user@a.example"}, "Host"),
        ({"host": "a.example:99999"}, "Host"),
        ({"host": "ok.example", "x-forwarded-host": "bad/host"}, "X-Forwarded-Host"),
        ({"host": "ok.example", "x-forwarded-proto": "gopher"}, "X-Forwarded-Proto"),
    ],
)
def test_a_host_that_is_no_host_is_a_400(headers: dict[str, str], names: str) -> None:
    """A Host (or a trusted X-Forwarded-*) that cannot be a URL's host or scheme: a 400 naming the header."""
    with pytest.raises(ValidationFailed, match=names):
        base("10.0.0.0/8", headers=headers, peer="10.0.0.1")


def test_trusted_networks_and_peers() -> None:
    """The setting parsed once per value; a peer that is no IP address is never trusted."""
    networks = trusted_networks("10.0.0.0/8,2001:db8::/32")
    assert trusted_networks("10.0.0.0/8,2001:db8::/32") is networks
    assert is_trusted("10.9.9.9", networks) and is_trusted("2001:db8::1", networks)
    assert not is_trusted("11.0.0.1", networks) and not is_trusted("unix:/tmp/s", networks)
    assert not is_trusted("10.9.9.9", ()) and not is_trusted(None, networks)


def test_the_webhook_url() -> None:
    """`<base>/webhooks/<provider>/<connection id>`."""
    assert webhook_url("https://h.example/cs", "vapi", "abc") == "https://h.example/cs/webhooks/vapi/abc"


@pytest.mark.parametrize(
    ("settings", "peer", "headers", "expected"),
    [
        ({}, "10.0.0.5", {"host": "internal:8000", **FORWARDED}, "http://internal:8000"),
        ({"trusted_proxies": "10.0.0.0/24"}, "10.0.0.5", {"host": "internal:8000", **FORWARDED},
         "https://calls.example.com"),
        ({"trusted_proxies": "10.0.0.0/24"}, "10.0.1.5", {"host": "internal:8000", **FORWARDED},
         "http://internal:8000"),
        ({"public_url": "https://hooks.example.org/cs"}, "10.0.0.5", {"host": "internal:8000"},
         "https://hooks.example.org/cs"),
    ],
)  # fmt: skip
async def test_the_app_hands_out_webhook_urls_under_the_public_base(
    database_url: str, settings: dict[str, str], peer: str, headers: dict[str, str], expected: str
) -> None:
    """createCarrierConnection and getCarrierConnections build webhook_url from the same base."""
    key = SecretStr(Fernet.generate_key().decode())
    app = create_app(
        Settings.model_validate(
            {"database_url": database_url, "redis_url": None, "secret_key": key, **settings}
        )
    )
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ignored.test") as http:
            auth = {**headers, "x-api-key": create_key(app.db, "acme").plaintext}
            created = await http.post("/createCarrierConnection", json={"provider": "twilio", "secret": "s"},
                                      headers=auth)  # fmt: skip
            assert created.status_code == 201, created.text
            connection_id = created.json()["data"]["connection_id"]
            assert created.json()["data"]["webhook_url"] == f"{expected}/webhooks/twilio/{connection_id}"
            listed = await http.get("/getCarrierConnections", headers=auth)
            assert (
                listed.json()["data"]["connections"][0]["webhook_url"]
                == created.json()["data"]["webhook_url"]
            )
            bad = await http.get(
                "/getCarrierConnections", headers={**auth, "host": "a b", "x-forwarded-host": "a b"}
            )
            if "public_url" not in settings:
                assert_error(bad, 400, "VALIDATION_ERROR", names="Host")
    finally:
        await app.aclose()
