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


def ocpi_error_response(http_status: int, status_code: int, message: str) -> Response[bytes]:
    body = Envelope[None](status_code=status_code, status_message=message, timestamp=utc_now())
    return Response(json_encoder.encode(body), status_code=http_status, media_type="application/json")


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
    on_ocpi = request.url.path.startswith("/ocpi")
    if isinstance(exc, OcpiError):
        return ocpi_error_response(exc.http_status, exc.status_code, exc.message)
    if isinstance(exc, HubError):
        if on_ocpi:
            code = StatusCode.CLIENT_ERROR if exc.http_status < 500 else StatusCode.SERVER_ERROR
            return ocpi_error_response(exc.http_status, code, exc.message)
        return api_error_response(exc.http_status, exc.message)
    if isinstance(exc, HTTPException):
        message = _validation_message(exc) if isinstance(exc, ValidationException) else exc.detail
        if on_ocpi:
            code = StatusCode.CLIENT_ERROR if exc.status_code < 500 else StatusCode.SERVER_ERROR
            return ocpi_error_response(exc.status_code, code, message)
        return api_error_response(exc.status_code, message)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    if on_ocpi:
        return ocpi_error_response(500, StatusCode.SERVER_ERROR, "internal server error")
    return api_error_response(500, "internal server error")
