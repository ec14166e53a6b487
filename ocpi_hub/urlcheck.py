"""Checks on partner URLs that arrive over OCPI, before we call them (server-side request forgery guard).

A credentials POST/PUT hands us URLs we will call with our tokens; without this check any holder of a token A
could make the hub probe its own network. URLs an operator gives through the internal API are trusted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeUrlError(ValueError):
    pass


async def check_partner_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrlError unless `url` is http(s) and (unless allowed) resolves only to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrlError(f"{url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrlError(f"{url!r}: host {parts.hostname!r} does not resolve ({exc.strerror})") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise UnsafeUrlError(
                f"{url!r} points at a loopback, private or link-local address ({address}), "
                "which partner URLs may not do"
            )
