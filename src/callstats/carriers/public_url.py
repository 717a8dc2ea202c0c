"""The public base of the URLs callstats hands out, and the webhook URL of a carrier connection.

The base is CALLSTATS_PUBLIC_URL when set. Otherwise it is the request's own scheme and `Host`, as
the server received them; `X-Forwarded-Proto` and `X-Forwarded-Host` replace them only when the
direct peer (the ASGI scope's `client`) is in CALLSTATS_TRUSTED_PROXIES, and then the last value of
each (the one the proxy next to callstats wrote). So the result depends on that setting alone, the
scope must hold what the socket saw: `callstats serve` and `callstats demo` start uvicorn with its own
proxy-header rewrite off (docs/carriers.md, The public URL).

A carrier signs the very URL it calls (Twilio's signature covers it), so the webhook URL must be
exactly what the request's base and path rebuild: both come from this module.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from callstats.config import Settings
from callstats.errors import ValidationFailed

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# RFC 9110's Host: a host name (or IPv4 address), or an IPv6 literal in brackets, then an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?")
_DEFAULT_PORT = {"http": ":80", "https": ":443"}
_SCHEMES = frozenset({"http", "https"})
_HINT = "set CALLSTATS_PUBLIC_URL to the address carriers reach this server at"


@functools.lru_cache(maxsize=8)
def trusted_networks(trusted_proxies: str) -> tuple[Network, ...]:
    """CALLSTATS_TRUSTED_PROXIES (comma-separated IPs and CIDR networks, checked at settings load) parsed."""
    parts = (part.strip() for part in trusted_proxies.split(","))
    return tuple(ipaddress.ip_network(part, strict=False) for part in parts if part)


def is_trusted(peer: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether the peer's address (text, as the ASGI scope's client holds it) is in one of the networks.

    An IPv4 address seen as IPv6 (`::ffff:10.0.0.1`) counts as the IPv4 one; a peer that is no IP
    address (a Unix socket, none) is never trusted.
    """
    if not peer or not networks:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any(address in network or (mapped is not None and mapped in network) for network in networks)


def _header(scope: Mapping[str, Any], name: bytes, last: bool) -> str | None:
    """A request header's value (latin-1): the first occurrence's, or with `last` the last item of all
    occurrences read as one comma-separated list (RFC 9110, section 5.3); None when absent or empty."""
    values = [value for key, value in scope.get("headers", ()) if key == name]
    if not values:
        return None
    if not last:
        return bytes(values[0]).decode("latin-1").strip() or None
    items = [item.strip() for value in values for item in bytes(value).decode("latin-1").split(",")]
    return items[-1] or None


def _checked_host(host: str, where: str) -> str:
    """`host` when it is `host[:port]` (a port at most 65535); else ValidationFailed naming `where`."""
    match = _HOST.fullmatch(host)
    if match is None or int(match["port"] or 0) > 65535:
        raise ValidationFailed(f"{where}: {host[:100]!r} is not a host[:port]; {_HINT}")
    return host


def _server_host(scope: Mapping[str, Any]) -> str:
    """The server's own address and port (scope["server"]) as a Host value, for a request without one."""
    server = scope.get("server")
    if not server or server[1] is None:
        raise ValidationFailed(f"Host header: the request has none; {_HINT}")
    address, port = str(server[0]), int(server[1])
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def request_base(scope: Mapping[str, Any], networks: tuple[Network, ...]) -> str:
    """`scheme://host[:port]` of a request, forwarded headers believed only from a trusted peer.

    A default port (80 for http, 443 for https) is left out. Raises ValidationFailed (400) for a
    Host (or believed X-Forwarded-Host) that is not `host[:port]`, or an X-Forwarded-Proto that is
    neither http nor https.
    """
    scheme = str(scope.get("scheme", "http"))
    host = _header(scope, b"host", last=False)
    where = "Host header"
    client = scope.get("client")
    if is_trusted(str(client[0]) if client else None, networks):
        proto = _header(scope, b"x-forwarded-proto", last=True)
        if proto is not None:
            if proto.lower() not in _SCHEMES:
                raise ValidationFailed(f"X-Forwarded-Proto: {proto[:20]!r} is neither http nor https")
            scheme = proto.lower()
        forwarded = _header(scope, b"x-forwarded-host", last=True)
        if forwarded is not None:
            host, where = forwarded, "X-Forwarded-Host header"
    host = _checked_host(host, where) if host is not None else _server_host(scope)
    default_port = _DEFAULT_PORT.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}"


def public_base(scope: Mapping[str, Any], settings: Settings) -> str:
    """The public base URL (no trailing slash) for a request's ASGI scope: CALLSTATS_PUBLIC_URL when
    set, else request_base under CALLSTATS_TRUSTED_PROXIES. Raises ValidationFailed (see request_base)."""
    if settings.public_url:
        return settings.public_url
    return request_base(scope, trusted_networks(settings.trusted_proxies))


def webhook_url(base: str, provider: str, connection_id: str) -> str:
    """The URL a carrier calls for one connection: `<base>/webhooks/<provider>/<connection id>`."""
    return f"{base}/webhooks/{provider}/{connection_id}"
