"""Who may call the internal API: a bearer of `OCPI_HUB_ADMIN_TOKEN` when it is set, otherwise only loopback
clients (so that a hub started without configuration is not an open door).

The operations of /api/v0 are admitted by one `before_request` hook (`admitted`): this rule, then the integer
parameters' range (ocpi_hub.api.internal.limits). A hook rather than Litestar guards, because Litestar copies the
route handler for every guard it calls, which cost a status change a tenth of its time (bench/writes_bench.py).
The few routes outside /api/v0 that the rule closes (metrics, the status page, the OpenAPI document) keep it as a
guard."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ocpi_hub import errors
from ocpi_hub.api.internal.limits import integer_parameters
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


async def admitted(request: Request[Any, Any, Any]) -> None:
    """The `before_request` hook of /api/v0: who may call (above), then the integer parameters' range."""
    await internal_api_guard(request, request.route_handler)
    await integer_parameters(request, request.route_handler)
