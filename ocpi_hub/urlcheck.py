"""Checks on partner URLs that arrive over OCPI, before we call them (server-side request forgery guard).

A credentials POST/PUT hands us URLs we will call with our tokens; without this check any holder of a token A
could make the hub probe its own network. URLs an operator gives through the internal API are trusted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import urlsplit

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translation, never global
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 deprecates it; a stack that still honours it reaches IPv4
_NOT_PUBLIC = "a non-public address (such as loopback, private or link-local), which partner URLs may not do"


class UnsafeUrlError(ValueError):
    pass


def is_public_address(address: IPv4Address | IPv6Address) -> bool:
    """Whether a partner may point us at `address`: globally routable, and so is any IPv4 address it embeds."""
    if isinstance(address, IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        # Python's is_global judges these forms by their IPv6 prefix, but a connection reaches the embedded IPv4.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or address in _IPV4_COMPATIBLE):
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global


async def check_partner_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrlError unless `url` is http(s) and (unless allowed) resolves only to public addresses."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a bad port or an unclosed [ of an IPv6 literal
        raise UnsafeUrlError(f"{url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeUrlError(f"{url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not is_public_address(literal):
            raise UnsafeUrlError(f"{url!r} points at {literal}, {_NOT_PUBLIC}")
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrlError(f"{url!r}: host {host!r} does not resolve ({exc.strerror})") from None
    # The message never names what the host resolved to: that would let a partner map our internal DNS.
    if not all(is_public_address(ipaddress.ip_address(info[4][0])) for info in infos):
        raise UnsafeUrlError(f"{url!r} points at {_NOT_PUBLIC}")
