"""Who may call the internal API: a bearer of `OCPI_HUB_ADMIN_TOKEN` when it is set, otherwise only loopback
clients (so that a hub started without configuration is not an open door)."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ocpi_hub import errors
from ocpi_hub.settings import Settings


# async although it never awaits: Litestar runs a plain function guard in a worker thread, which cost a
# status change about a tenth of its time.
async def internal_api_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    settings: Settings = connection.app.state.settings
    if settings.admin_token is not None:
        scheme, _, presented = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), settings.admin_token.encode()):
            raise errors.Unauthorized("Authorization: Bearer <OCPI_HUB_ADMIN_TOKEN> required")
        return
    host = connection.client.host if connection.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise errors.Forbidden("the internal API accepts only loopback clients while OCPI_HUB_ADMIN_TOKEN is unset")
