"""The answer cache of the /ocpi Sender interfaces: whole answers, kept for the next request that asks the same
question, for every module's list and object GETs (docs/ocpi.md §11).

An answer is a function of the question and of the database: the URL (version, path, query string), the caller
(authenticated before any answer is looked up, cached or not: ocpi_hub.api.ocpi.authentication), the routing
headers (which narrow the data and are answered swapped) and what is stored of the module's kind and of the
partners (whose roles shape the answer). So a kept answer is valid for the same question until one of those two
kinds changes: the cache asks the change counters (ocpi_hub.db.freshness) once per event-loop turn, and an answer
whose counters moved since it was read is a miss. An answer may name fewer counters than its module's kind: a
Locations page without filters, or one Location, depends on the blocks of the Locations it holds, so a status
change makes only the answers of its block read again. A status change never touches the Tariffs' answers; the
push worker's bookkeeping touches none. What changes by itself is made per request: the envelope's timestamp,
and the request ids (added by ocpi_hub.api.observe).

Concurrent requests that miss the same question under the same counters share one read (single flight): the
first reads, the others wait for its answer, which is exact for them as a kept answer would be (nothing of its
kinds was committed between their questions). A read that fails is not shared: each waiter then reads for itself,
so an error is never handed to another request.

A kept answer is an ASGI app: Litestar sends what a handler returns as is when it is one, which spares converting
a Response, header by header, on every request (bench/locations_bench.py).
"""

from __future__ import annotations

import asyncio
import functools
import operator
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Generic, TypeVar

from litestar.types import Receive, Scope, Send
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ocpi_hub.api.ocpi.transport import enveloped
from ocpi_hub.db.freshness import Freshness, Kind, Versions
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
    """A bounded map whose entries are each valid only while the counters it depends on stay what they were when
    it was read: by default those of the kinds the cache `depends` on; an entry can name fewer (`put`). A request
    asks the counters once, and a change committed since to what an entry depends on makes it a miss, so a kept
    value never hides a change from the next request. Without counters (an in-memory database) it keeps nothing."""

    def __init__(self, *, max_entries: int, depends: Iterable[int]) -> None:
        self._max_entries = max_entries
        self._depends = tuple(depends)
        self._asked: Versions | None = None  # the last counters seen, and what they say of the default counters
        self._version_of_asked: tuple[int, ...] | None = None
        # key -> (value, what takes its counters out of a Versions, their numbers when it was read)
        self._entries: dict[K, tuple[V, Callable[[Versions], object], object]] = {}
        self.hits = 0  # answers given from the map (for the metric and the tests)

    def version(self, seen: Versions | None) -> tuple[int, ...] | None:
        """What `seen` says of the kinds this cache depends on (None: cannot tell)."""
        if seen is None:
            return None
        if seen is not self._asked:  # one Versions object serves a turn of the loop: computed once per turn
            self._asked, self._version_of_asked = seen, tuple(seen[kind] for kind in self._depends)
        return self._version_of_asked

    def get(self, key: K, seen: Versions | None) -> V | None:
        entry = self._entries.get(key)
        if entry is None or seen is None:
            return None
        value, counters, read_at = entry
        if counters(seen) != read_at:
            del self._entries[key]
            return None
        self.hits += 1
        return value

    def put(self, key: K, value: V, *, seen: Versions | None, depends: tuple[int, ...] | None = None) -> None:
        """Keep `value`, read from the database after the counters `seen` were asked, valid while the counters at
        `depends` (places in Versions; by default the cache's kinds) stay as `seen` has them. Stamped with what was
        asked before the read, a value read across a change is at worst a miss next time, never stale."""
        if seen is None:
            return
        counters = _counters(self._depends if depends is None else depends)
        self._entries.pop(key, None)  # re-inserted last: oldest first is the order of eviction
        if len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))  # oldest first: crawls move on, they rarely come back
        self._entries[key] = (value, counters, counters(seen))


@functools.cache
def _counters(places: tuple[int, ...]) -> Callable[[Versions], object]:
    """What takes the counters at `places` out of a Versions: an itemgetter, the cheapest way (it runs for every
    kept answer), one per set of places."""
    return operator.itemgetter(*places)


class Answer:
    """A 200 answer around JSON data, sent as an ASGI app. Its envelope is reused within the same second (the
    envelope's timestamp has whole seconds, so it is byte for byte the same) rather than copying 160 kB again."""

    __slots__ = ("_at", "_body", "_data", "_headers", "_now", "depends")

    def __init__(
        self,
        data: bytes,
        headers: dict[str, str],
        now: Callable[[], datetime],
        *,
        depends: tuple[int, ...] | None = None,
    ) -> None:
        self._data, self._now = data, now
        # The counters (places in Versions) the answer is read from, when fewer than its module's kinds (ReadCache)
        self.depends = depends
        self._at: datetime | None = None  # the clock's time the envelope in _body was made at
        self._body = b""
        self._headers = [(b"content-type", b"application/json")]
        self._headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        now = self._now()
        if now != self._at:
            self._at, self._body = now, enveloped(self._data, json_encoder.encode(now))
        headers = [*self._headers, (b"content-length", str(len(self._body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._body, "more_body": False})


class Answers:
    """One module's kept answers, and the reads in flight (single flight)."""

    def __init__(self, kind: Kind) -> None:
        # Pages are ~160 kB: 64 of them per module. The partners' roles shape the answers (routing headers, the
        # parties whose Sessions a caller reads), so a partners change empties them too.
        self.kept: ReadCache[tuple[object, ...], Answer] = ReadCache(max_entries=64, depends=(kind, Kind.PARTNERS))
        self._flights: dict[tuple[object, ...], tuple[tuple[int, ...], asyncio.Future[Answer | None]]] = {}
        self.shared = 0  # answers a request got from another's read in flight
        self.reads = 0  # answers read from the database

    async def answer(
        self, key: tuple[object, ...], seen: Versions | None, make: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """The kept answer to `key`, the one being read for it under the same counters, or a new one made (and kept
        unless a change was seen meanwhile)."""
        answer = self.kept.get(key, seen)
        if answer is not None:
            return answer
        version = self.kept.version(seen)
        if version is None:
            self.reads += 1
            return await make()
        flight = self._flights.get(key)
        if flight is not None and flight[0] == version:
            # Shielded: a waiter that goes away must not cancel the read the others wait for.
            shared = await asyncio.shield(flight[1])
            if shared is not None:
                self.shared += 1
                return shared
            return await self._read(key, seen, version, make)  # the read failed: read for ourselves
        return await self._read(key, seen, version, make)

    async def _read(
        self,
        key: tuple[object, ...],
        seen: Versions | None,
        version: tuple[int, ...],
        make: Callable[[], Awaitable[Answer]],
    ) -> Answer:
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        flight = (version, future)
        self._flights[key] = flight
        answer: Answer | None = None
        try:
            self.reads += 1
            answer = await make()
            self.kept.put(key, answer, seen=seen, depends=answer.depends)
            return answer
        finally:
            # None (never an exception) for a read that failed or was cancelled: the waiters read for themselves.
            future.set_result(answer)
            if self._flights.get(key) is flight:
                del self._flights[key]


class AnswerCache(Collector):
    """Answers per module and authenticated callers, exact per process (see the module docstring). Its counts
    are the `ocpi_hub_answers` metric (docs/operations.md §2.2)."""

    def __init__(self, freshness: Freshness) -> None:
        self.freshness = freshness
        self._modules: dict[str, Answers] = {}
        # Authorization header → (partner, the token as presented), for ocpi_hub.api.ocpi.authentication: valid
        # while no partner changed (a revocation, a suspension, a new token).
        self.callers: ReadCache[bytes, tuple[Partner, str]] = ReadCache(max_entries=1024, depends=(Kind.PARTNERS,))

    async def version(self) -> Versions | None:
        return await self.freshness.version()

    def module(self, module: str, kind: Kind) -> Answers:
        """The answers of `module` (the same for every OCPI version), read from data of `kind`."""
        return self._modules.setdefault(module, Answers(kind))

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "ocpi_hub_answers",
            "OCPI Sender answers by module and how they were made: kept (from the answer cache), shared (another "
            "request's read in flight), read (from the database)",
            labels=("module", "how"),
        )
        for module, answers in sorted(self._modules.items()):
            family.add_metric([module, "kept"], answers.kept.hits)
            family.add_metric([module, "shared"], answers.shared)
            family.add_metric([module, "read"], answers.reads)
        return [family]
