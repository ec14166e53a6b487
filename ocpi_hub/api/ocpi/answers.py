"""Whole answers of the Locations list, kept for the next request that asks the same question.

An answer is a function of the question and of the database: the URL's version and query string, the headers that
shape it (the token, which decides the caller, and the routing headers, which narrow the data and are answered
swapped) and what is stored. So a kept answer is valid for the same question until anything is committed: it lives
in a ReadCache (ocpi_hub.db.freshness), which empties itself on the first request after a commit. What changes by
itself is left out and added when sending: the envelope's timestamp, and the request ids (added by the app's
`before_send` hook, transport.echo_request_ids).

A kept answer is an ASGI app: Litestar sends what a handler returns as is when it is one, which spares converting
a Response, header by header, on every request (bench/locations_bench.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from litestar.types import Receive, Scope, Send

from ocpi_hub.ocpi.common import json_encoder

# The request headers an answer depends on (names as ASGI gives them: lower case).
_SHAPING_HEADERS = frozenset(
    (b"authorization", b"ocpi-from-country-code", b"ocpi-from-party-id", b"ocpi-to-country-code", b"ocpi-to-party-id")
)


def question(scope: Scope) -> tuple[object, ...]:
    """What the request asks, for looking its answer up: path, query string and the headers that shape the answer.
    Headers are taken as sent (order and repetitions included): a question asked differently is only a miss."""
    shaping = tuple(header for header in scope["headers"] if header[0] in _SHAPING_HEADERS)
    return scope["path"], scope["query_string"], shaping


def envelope(data: bytes, timestamp: bytes) -> bytes:
    """The success envelope (§4.1.7) around JSON that is already encoded, in the field order of `Envelope`."""
    return b"".join(
        (b'{"data":', data, b',"status_code":1000,"status_message":"Success","timestamp":', timestamp, b"}")
    )


class Page:
    """A page of stored objects: their counts, their data, and its last envelope, which is reused within the same
    second (the envelope's timestamp has whole seconds, so it is byte for byte the same) rather than copying
    160 kB again."""

    __slots__ = ("_body", "_timestamp", "data", "returned", "total")

    def __init__(self, total: int, bodies: list[bytes]) -> None:
        self.total, self.returned = total, len(bodies)
        self.data = b"[" + b",".join(bodies) + b"]"
        self._timestamp, self._body = b"", b""

    def enveloped(self, now: Callable[[], datetime]) -> bytes:
        timestamp = json_encoder.encode(now())
        if timestamp != self._timestamp:
            self._timestamp, self._body = timestamp, envelope(self.data, timestamp)
        return self._body


class Answer:
    """A 200 answer with `page` as its data and `headers`, sent as an ASGI app."""

    __slots__ = ("_headers", "_now", "_page")

    def __init__(self, page: Page, headers: dict[str, str], now: Callable[[], datetime]) -> None:
        self._page, self._now = page, now
        self._headers = [(b"content-type", b"application/json")]
        self._headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._page.enveloped(self._now)
        headers = [*self._headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
