"""Over-long request lines and header fields, answered in our format (docs/ocpi.md §11, "A request too long"): a
request target (path and query) over MAX_TARGET bytes is HTTP 414, header fields over MAX_HEADERS bytes in all
are HTTP 431; on /ocpi with the envelope (status 2000), elsewhere with the seed's Status body. Nothing behind this
wrapper (routing, authentication, the database) sees such a request.

The limits are ours, below those of the server, so that the server lets such requests through to us: uvicorn with
httptools (`ocpi-hub serve`) refuses a request target over 65,535 bytes itself, with a plain-text 400, and has no
limit on header fields; with h11 a request whose head is still incomplete after 16 KiB may be refused the same way
(how much arrives at once decides). Beyond those limits the server answers, not us."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

from ocpi_hub.api.ocpi.transport import error_body
from ocpi_hub.errors import SeedStatus
from ocpi_hub.ocpi.common import StatusCode, json_encoder

# As nginx's defaults (large_client_header_buffers 4 8k): a request line up to 8 KiB, the head up to 32 KiB. The
# longest OCPI URL (a Location's connector, with paging parameters) is a few hundred bytes.
MAX_TARGET = 8 * 1024
MAX_HEADERS = 32 * 1024

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def bounded(app: Any, clock: Callable[[], datetime]) -> ASGIApp:
    """`app` behind the limits on the request target and the header fields."""
    inner: ASGIApp = app

    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (refusal := _too_long(scope)) is not None:
            status, message = refusal
            await _answer(scope, send, status, message, clock)
            return
        await inner(scope, receive, send)

    return check


def _too_long(scope: Scope) -> tuple[HTTPStatus, str] | None:
    query = scope["query_string"]
    target = len(scope.get("raw_path") or scope["path"].encode()) + (len(query) + 1 if query else 0)
    if target > MAX_TARGET:
        return HTTPStatus.REQUEST_URI_TOO_LONG, f"the request target is {target} bytes long, above {MAX_TARGET}"
    # Counted as on the wire: "name: value" and its line end.
    headers = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    if headers > MAX_HEADERS:
        return (
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            f"the header fields are {headers} bytes long, above {MAX_HEADERS}",
        )
    return None


async def _answer(scope: Scope, send: Send, status: HTTPStatus, message: str, clock: Callable[[], datetime]) -> None:
    if scope["path"].startswith("/ocpi"):
        body = error_body(StatusCode.CLIENT_ERROR, message, clock())
    else:
        body = json_encoder.encode(SeedStatus(status=status.phrase, error=message))
    # The request's body is not read: the connection is closed after the answer rather than reused.
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": int(status), "headers": headers})
    await send({"type": "http.response.body", "body": body})
