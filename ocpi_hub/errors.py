"""One error vocabulary, rendered once at each boundary.

    HubError
     ├── OcpiError(http_status, status_code, message)   rendered on /ocpi as the OCPI envelope
     └── ApiError(http_status, message)                   rendered on /api/v0 as the seed's {status, error}

Anything else that escapes a handler (Litestar's own 404/405/400, or a bug) is rendered in the same two shapes by
`handle_exception`, chosen by the path, so that no response of ours ever leaves without its envelope.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from ocpi_hub.ocpi.common import Envelope, StatusCode, json_encoder, utc_now

log = logging.getLogger(__name__)


class HubError(Exception):
    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message


class OcpiError(HubError):
    """An OCPI failure: the HTTP status and the OCPI status_code are both part of the contract (spec §4.1.7)."""

    def __init__(self, status_code: StatusCode, message: str, *, http_status: int = 200) -> None:
        super().__init__(http_status, message)
        self.status_code = status_code


class ApiError(HubError):
    """A failure of the internal API, rendered as the seed's Status body."""


class SeedStatus(msgspec.Struct, omit_defaults=True):
    """The seed's `Status` schema: the HTTP status description and the error details."""

    status: str
    error: str | None = None


def seed_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI: the seed's Status body on these error statuses (what errors.handle_exception renders)."""
    return {
        status: ResponseSpec(SeedStatus, description=HTTPStatus(status).phrase, generate_examples=False)
        for status in statuses
    }


def ocpi_error_response(
    http_status: int, status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = Envelope[None](status_code=status_code, status_message=message, timestamp=utc_now())
    return Response(json_encoder.encode(body), status_code=http_status, media_type="application/json", headers=headers)


# Configuration modules are not routed (§4.1.5): their answers carry no routing headers, errors included.
_CONFIGURATION_MODULES = {"credentials", "hubclientinfo"}


def _swapped_routing(request: Request[Any, Any, Any]) -> dict[str, str]:
    """An error on a functional module (/ocpi/{version}/{module}/...) answers with the request's routing headers,
    from and to swapped, as a success does (§4.1.5)."""
    parts = request.url.path.strip("/").split("/")
    if len(parts) < 3 or parts[2] in _CONFIGURATION_MODULES:
        return {}
    other = {"from": "to", "to": "from"}
    return {
        f"OCPI-{other[side]}-{field}": value
        for side in ("from", "to")
        for field in ("country-code", "party-id")
        if (value := request.headers.get(f"ocpi-{side}-{field}"))
    }


def api_error_response(http_status: int, message: str) -> Response[bytes]:
    body = SeedStatus(status=HTTPStatus(http_status).phrase, error=message)
    return Response(json_encoder.encode(body), status_code=http_status, media_type="application/json")


_MISSING = re.compile(r"Object missing required field `([^`]+)`")


def _validation_message(exc: ValidationException) -> str:
    """Litestar lists each failing field as {message, key}; name the field first, as every error of ours does.

    A missing field comes with the path of its parent as key ("data" for the body itself): name the field itself.
    """
    parts = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            parts.append(str(item))
            continue
        key, message = item.get("key") or "data", str(item.get("message"))
        if missing := _MISSING.search(message):
            field = missing.group(1) if key == "data" else f"{key}.{missing.group(1)}"
            parts.append(f"{field}: is required")
        else:
            parts.append(f"{key}: {message}")
    return "; ".join(parts) or exc.detail


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    http_status, message = _translate(request, exc)
    if not request.url.path.startswith("/ocpi"):
        return api_error_response(http_status, message)
    if isinstance(exc, OcpiError):
        code = exc.status_code
    else:
        code = StatusCode.CLIENT_ERROR if http_status < 500 else StatusCode.SERVER_ERROR
    return ocpi_error_response(http_status, code, message, _swapped_routing(request))


def _translate(request: Request[Any, Any, Any], exc: Exception) -> tuple[int, str]:
    """The HTTP status and the message of any exception that reached the boundary."""
    if isinstance(exc, HubError):
        return exc.http_status, exc.message
    if isinstance(exc, ValidationException):
        return exc.status_code, _validation_message(exc)
    if isinstance(exc, HTTPException):
        return exc.status_code, exc.detail
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return 500, "internal server error"
