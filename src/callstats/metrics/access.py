"""Who may read /metrics: a bearer of CALLSTATS_METRICS_TOKEN, or, without that setting, a loopback
client that did not come through a proxy.

With the token set, every request must send `Authorization: Bearer <token>` (compared in constant
time), loopback ones included. Without it, only a client on 127.0.0.0/8 or ::1 is answered, and
not one whose request carries a proxy's forwarding header (Forwarded, X-Forwarded-For, X-Real-IP):
a reverse proxy on the same host connects from loopback on behalf of anyone. deploy/nginx.conf
does not forward /metrics at all; behind another local proxy, set the token.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from pydantic import SecretStr

from callstats.errors import Forbidden, Unauthorized

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class MetricsTokenRefused(Unauthorized):
    """The metrics token is set and the request did not present it (401, `UNAUTHORIZED`)."""

    default_message = "Missing or wrong metrics token: send Authorization: Bearer <CALLSTATS_METRICS_TOKEN>"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": 'Bearer realm="callstats metrics"'})


class MetricsLoopbackOnly(Forbidden):
    """No metrics token is set and the client is not local (403, `FORBIDDEN`)."""

    default_message = (
        "/metrics answers only loopback clients that do not come through a proxy; "
        "set CALLSTATS_METRICS_TOKEN to read it from elsewhere"
    )


def check_access(token: SecretStr | None, headers: Mapping[str, str], client_host: str | None) -> None:
    """Return if the request may read /metrics; raise MetricsTokenRefused (401) or MetricsLoopbackOnly
    (403). `headers` are the request's (lower-case names), `client_host` the peer's address."""
    if token is not None:
        presented = bearer(headers.get("authorization"))
        expected = token.get_secret_value().encode()
        # latin-1: the header's bytes as they came (Starlette decodes header values so)
        if presented is None or not hmac.compare_digest(presented.encode("latin-1"), expected):
            raise MetricsTokenRefused()
        return
    if not is_loopback(client_host) or any(name in headers for name in FORWARDING_HEADERS):
        raise MetricsLoopbackOnly()


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (the scheme in any case), else None."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    token = credentials.strip()
    return token if scheme.lower() == "bearer" and token else None


def is_loopback(host: str | None) -> bool:
    """Whether an address is on 127.0.0.0/8 or ::1 (an IPv4-mapped ::ffff:127.x too); a name is not."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _LOOPBACK)
