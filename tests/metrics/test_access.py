"""Who may read /metrics: with CALLSTATS_METRICS_TOKEN only its bearer; without it only a loopback
client that did not come through a proxy. In process, the client's address set on the ASGI transport
(no network traffic); refusals in the envelope."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from callstats.app import CallstatsApp, create_app
from callstats.config import Settings
from callstats.metrics.access import bearer, is_loopback
from tests.metrics.scrape import parsed

TOKEN = "m3tr1cs-t0ken-for-the-tests-7f3e9a1c"
REMOTE = ("10.1.2.3", 1234)


async def get_metrics(
    app: CallstatsApp, client: tuple[str, int], headers: dict[str, str] | dict[bytes, bytes] | None = None
) -> httpx.Response:
    """GET /metrics from a client at `client` (host, port)."""
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://callstats.test") as http:
        return await http.get("/metrics", headers=headers)


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    """A refusal in the seed's envelope, giving away no metric."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == code and body["message"], body
    assert "callstats_" not in response.text


@pytest.fixture
async def tokened(settings: Settings) -> object:
    application = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}))
    yield application
    await application.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1"])
async def test_without_a_token_loopback_clients_read_it(app: CallstatsApp, host: str) -> None:
    response = await get_metrics(app, (host, 5000))
    assert response.status_code == 200, response.text
    assert ("callstats_events_total", frozenset({("result", "applied")})) in parsed(response.text)


async def test_without_a_token_other_clients_are_refused(app: CallstatsApp) -> None:
    assert_refused(await get_metrics(app, REMOTE), 403, "FORBIDDEN")
    # a token sent where none is set opens nothing
    assert_refused(await get_metrics(app, REMOTE, {"Authorization": f"Bearer {TOKEN}"}), 403, "FORBIDDEN")


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
async def test_without_a_token_a_request_through_a_local_proxy_is_refused(
    app: CallstatsApp, header: str
) -> None:
    """A reverse proxy on the same host connects from loopback for anyone: its forwarding header tells."""
    assert_refused(await get_metrics(app, ("127.0.0.1", 5000), {header: "203.0.113.7"}), 403, "FORBIDDEN")


async def test_with_a_token_its_bearer_reads_it_from_anywhere(tokened: CallstatsApp) -> None:
    for client in (REMOTE, ("127.0.0.1", 5000)):
        for scheme in ("Bearer", "bearer"):
            response = await get_metrics(tokened, client, {"Authorization": f"{scheme} {TOKEN}"})
            assert response.status_code == 200, (client, scheme, response.text)
            assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer é".encode("latin-1"),
    ],
    ids=["none", "empty", "no-token", "short", "long", "basic", "no-scheme", "non-ascii"],
)
async def test_with_a_token_anything_else_is_refused(
    tokened: CallstatsApp, authorization: str | bytes | None
) -> None:
    headers: dict[bytes, bytes] | None = None
    if authorization is not None:  # as raw bytes: httpx would refuse a str header that is not ASCII
        raw = authorization if isinstance(authorization, bytes) else authorization.encode()
        headers = {b"Authorization": raw}
    for client in (REMOTE, ("127.0.0.1", 5000)):  # loopback needs the token too, once it is set
        response = await get_metrics(tokened, client, headers)
        assert_refused(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["short", "has a space in it, sixteen+", "\x00" * 20])
def test_a_weak_token_stops_the_server_at_start_up_without_being_echoed(token: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(metrics_token=token)
    assert token not in str(refused.value)
    assert "at least 16" in str(refused.value)


def test_a_blank_token_is_no_token() -> None:
    assert Settings(metrics_token="  ").metrics_token is None


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("127.255.255.254", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.0.0.1", False), ("::2", False), ("128.0.0.1", False), ("localhost", False), (None, False)],
)  # fmt: skip
def test_loopback_is_127_0_0_0_8_and_ipv6_1(host: str | None, local: bool) -> None:
    assert is_loopback(host) is local


@pytest.mark.parametrize(
    ("authorization", "token"),
    [("Bearer abc", "abc"), ("  bearer   abc  ", "abc"), ("BEARER abc", "abc"), ("Bearer", None),
     ("Basic abc", None), (None, None), ("Bearerabc", None)],
)  # fmt: skip
def test_the_bearer_token_is_read_in_any_case(authorization: str | None, token: str | None) -> None:
    assert bearer(authorization) == token
