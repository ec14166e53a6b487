"""The answer cache of the /ocpi Sender interfaces: whole answers, kept for the next request that asks the same
question, for every module's list and object GETs.

An answer is a function of the question and of the database: the URL (version, path, query string), the caller
(authenticated before any answer is looked up, cached or not: ocpi_hub.api.ocpi.authentication), the routing
headers (which narrow the data and are answered swapped) and what is stored. So a kept answer is valid for the same
question until anything is committed, a revocation included: the cache asks the database's commit number
(ocpi_hub.db.freshness) once per event-loop turn and empties itself when it moved. What changes by itself is made
per request: the envelope's timestamp, and the request ids (added by transport.echo_request_ids).

A kept answer is an ASGI app: Litestar sends what a handler returns as is when it is one, which spares converting
a Response, header by header, on every request (bench/locations_bench.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

from litestar.types import Receive, Scope, Send

from ocpi_hub.api.ocpi.transport import enveloped
from ocpi_hub.db.freshness import Freshness
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi.common import json_encoder

K = TypeVar("K")
V = TypeVar("V")

# The request headers an answer depends on besides the caller (names as ASGI gives them: lower case).
_SHAPING_HEADERS = frozenset(
    (b"ocpi-from-country-code", b"ocpi-from-party-id", b"ocpi-to-country-code", b"ocpi-to-party-id")
)


def question(scope: Scope, partner_id: int) -> tuple[object, ...]:
    """What the request asks: path, query string, the caller and the headers that shape the answer. Headers are
    taken as sent (order and repetitions included): a question asked differently is only a miss."""
    shaping = tuple(header for header in scope["headers"] if header[0] in _SHAPING_HEADERS)
    return scope["path"], scope["query_string"], partner_id, shaping


class ReadCache(Generic[K, V]):
    """A bounded map whose entries are valid only while the database's commit number stays what it was when they
    were read: a request asks the number once, and any commit anywhere since empties the map, so a kept value never
    hides a change from the next request. Without a number (an in-memory database) it keeps nothing."""

    def __init__(self, *, max_entries: int) -> None:
        self._max_entries = max_entries
        self._version: int | None = None
        self._entries: dict[K, V] = {}

    def get(self, key: K, version: int | None) -> V | None:
        if version != self._version:
            self._entries.clear()
            self._version = version
        return None if version is None else self._entries.get(key)

    def put(self, key: K, value: V, *, seen: int | None) -> None:
        """Keep `value`, read from the database after the number `seen` was asked."""
        if seen is None or seen != self._version:
            return  # a commit was seen while we read: the value may already be stale
        if len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))  # oldest first: crawls move on, they rarely come back
        self._entries[key] = value


class Answer:
    """A 200 answer around JSON data, sent as an ASGI app. Its envelope is reused within the same second (the
    envelope's timestamp has whole seconds, so it is byte for byte the same) rather than copying 160 kB again."""

    __slots__ = ("_body", "_data", "_headers", "_now", "_timestamp")

    def __init__(self, data: bytes, headers: dict[str, str], now: Callable[[], datetime]) -> None:
        self._data, self._now = data, now
        self._timestamp, self._body = b"", b""
        self._headers = [(b"content-type", b"application/json")]
        self._headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        timestamp = json_encoder.encode(self._now())
        if timestamp != self._timestamp:
            self._timestamp, self._body = timestamp, enveloped(self._data, timestamp)
        headers = [*self._headers, (b"content-length", str(len(self._body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._body, "more_body": False})


class AnswerCache:
    """Answers and authenticated callers, exact per process (see the module docstring)."""

    def __init__(self, freshness: Freshness) -> None:
        self.freshness = freshness
        self.answers: ReadCache[tuple[object, ...], Answer] = ReadCache(max_entries=64)  # a page is ~160 kB
        # Authorization header → (partner, the token as presented), for ocpi_hub.api.ocpi.authentication.
        self.callers: ReadCache[bytes, tuple[Partner, str]] = ReadCache(max_entries=1024)

    async def version(self) -> int | None:
        return await self.freshness.version()

    async def answer(self, key: tuple[object, ...], seen: int | None, make: Callable[[], Awaitable[Answer]]) -> Answer:
        """The kept answer to `key`, or a new one made (and kept unless a commit was seen meanwhile)."""
        answer = self.answers.get(key, seen)
        if answer is None:
            answer = await make()
            self.answers.put(key, answer, seen=seen)
        return answer
