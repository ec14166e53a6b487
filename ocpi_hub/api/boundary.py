"""The boundary: every exception that escapes a handler becomes an answer here, in the shape of the interface it
reached (ocpi_hub.errors has the kinds and their answers), so that no response of ours ever leaves without its
envelope: /ocpi the OCPI envelope with the routing headers of the one rule, /api/v0 the seed's Status body.
Litestar's own 404/405/400 and a bug (500, logged with its traceback) are rendered the same way."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any, TypeVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from ocpi_hub.api.ocpi.authentication import known_caller
from ocpi_hub.api.ocpi.transport import error_body, routing_headers
from ocpi_hub.db.outage import Outage, unreachable
from ocpi_hub.errors import API_ANSWERS, OCPI_ANSWERS, HubError, Malformed, SeedStatus, Unavailable
from ocpi_hub.ocpi.common import StatusCode, json_encoder
from ocpi_hub.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


def handler(settings: Settings, clock: Callable[[], datetime], outage: Outage | None = None) -> Any:
    """The app's exception handler. `outage` hears of every failure to reach the database."""

    def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        exc = _recognised(exc, outage)
        http_status, message = _translate(request, exc)
        retry = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else {}
        if not request.url.path.startswith("/ocpi"):
            if isinstance(exc, HubError):
                http_status = _kind(API_ANSWERS, exc)
            body = json_encoder.encode(SeedStatus(status=HTTPStatus(http_status).phrase, error=message))
            return Response(body, status_code=http_status, media_type="application/json", headers=retry)
        code = StatusCode.CLIENT_ERROR if http_status < 500 else StatusCode.SERVER_ERROR
        if isinstance(exc, HubError):
            http_status, code = _kind(OCPI_ANSWERS, exc)
            code = exc.ocpi_status or code
        who = known_caller(request)
        return Response(
            error_body(code, message, clock()),
            status_code=http_status,
            media_type="application/json",
            headers=routing_headers(request, settings, who.party if who else None) | retry,
        )

    return handle_exception


def _kind(answers: dict[type[HubError], T], exc: HubError) -> T:
    """The answer to the error's kind (a subclass answers as the kind it refines)."""
    return next(answers[kind] for kind in type(exc).__mro__ if kind in answers)


def _recognised(exc: Exception, outage: Outage | None) -> Exception:
    """Failures that are not bugs of ours although no handler raised them as a HubError (docs/ocpi.md §11)."""
    if unreachable(exc):
        if outage is not None:
            outage.begun(exc)  # logged once, when it starts: not a traceback per request
        return Unavailable("the database cannot be reached: try again shortly", retry_after=5)
    if isinstance(exc, RecursionError) and "deserializing" in str(exc):
        # msgspec's own limit on nesting, reached by JSON nested thousands deep: a body we will not read.
        return Malformed("the body is not acceptable JSON: nested too deeply")
    return exc


def _translate(request: Request[Any, Any, Any], exc: Exception) -> tuple[int, str]:
    """The HTTP status and the message of any exception that reached the boundary."""
    if isinstance(exc, HubError):
        return 0, exc.message
    if isinstance(exc, ValidationException):
        return exc.status_code, _validation_message(exc)
    if isinstance(exc, HTTPException):
        return exc.status_code, exc.detail
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return 500, "internal server error"


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
