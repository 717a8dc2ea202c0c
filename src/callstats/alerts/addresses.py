"""Where a webhook may be sent: http(s) URLs whose host is a public address.

A key holder must not make the server probe its own network, so a URL whose host is (or resolves
to) a loopback, private, link-local, multicast, reserved or unspecified address is refused, unless
CALLSTATS_WEBHOOK_ALLOW_PRIVATE is set (tests, a receiver on the same host). The check runs when the
endpoint is created and again before each delivery (a name can be pointed elsewhere later).
"""

from __future__ import annotations

import ipaddress
import socket

import httpx

from callstats.errors import ValidationFailed


class RefusedUrl(ValidationFailed):
    """The webhook URL is not an http(s) URL of a public host."""

    default_message = "url: not an http(s) URL of a public host"


def checked_url(url: str, allow_private: bool) -> str:
    """The URL, once it is http(s) with a host that is public (or any host with `allow_private`).

    Raises RefusedUrl (400) saying why not; resolves the host's name (a blocking DNS lookup).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise RefusedUrl("url: not a URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise RefusedUrl("url: must be http:// or https:// with a host")
    if parsed.userinfo:
        raise RefusedUrl("url: must not hold a user or password")
    if not allow_private:
        problem = private_host(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
        if problem:
            raise RefusedUrl(f"url: {problem} (set CALLSTATS_WEBHOOK_ALLOW_PRIVATE to allow it)")
    return url


def private_host(host: str, port: int) -> str | None:
    """Why `host` may not be sent to (it is or resolves to a non-public address), or None."""
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return "the host is this machine"
    try:
        addresses = {ipaddress.ip_address(host.strip("[]"))}
    except ValueError:
        try:
            found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return "the host's name does not resolve"
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found}
    for address in addresses:
        if not _public(address):
            return "the host is a loopback, private or link-local address"
    return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
