"""The OCPI traffic log's writer (docs/operations.md §7.2): every request a partner makes to /ocpi and every call we
make to a partner, one entry each, written in batches off the request path.

Who the partner is travels with the work, in a context variable (`Conversation`): authentication names the caller
of an inbound request, so that the calls we make while serving it (a registration's call back) are the caller's too;
the push worker names the partner it delivers to. A call made with no partner named (the operator's own
registration with a partner, before the partner exists) is not logged per partner.

Entries wait in a bounded buffer and are inserted by one background task every second (or sooner when many wait),
never one commit per request; when the buffer is full, new entries are dropped and counted
(`ocpi_hub_traffic_dropped_total`). A clean shutdown writes what waits; a killed process loses at most the last
second. No token is ever kept: the Authorization header is not recorded, a query parameter named like a secret is
replaced, and so is every `"token"` value of a body (bodies only with `OCPI_HUB_TRAFFIC_BODIES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import traffic
from ocpi_hub.db.outage import Outage
from ocpi_hub.db.text import storable
from ocpi_hub.logs import redact

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
FLUSH_AT = 500  # entries waiting that wake the writer before its second is up
CAPACITY = 20_000  # entries waiting at most; beyond, new ones are dropped and counted
BODY_LIMIT = 4000  # characters of a body kept (OCPI_HUB_TRAFFIC_BODIES)
_TAIL = 2048  # bytes of an inbound answer read for its status_code (the envelope ends with it)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class Direction(enum.StrEnum):
    INBOUND = "inbound"  # the partner called us
    OUTBOUND = "outbound"  # we called the partner


@dataclass(frozen=True)
class Answer:
    """What the partner answered to our last call (None fields: no answer, or not an envelope)."""

    http_status: int | None
    ocpi_status: int | None
    request_id: str | None


@dataclass
class Conversation:
    """The partner the current work talks to (None: not known), and the answer to the last call made in it."""

    partner_id: int | None = None
    last: Answer | None = None


_conversation: ContextVar[Conversation | None] = ContextVar("ocpi_hub_conversation", default=None)


def current() -> Conversation | None:
    return _conversation.get()


def attribute(partner_id: int) -> None:
    """The current request is `partner_id`'s (called by authentication once it knows the caller)."""
    conversation = _conversation.get()
    if conversation is None:
        _conversation.set(Conversation(partner_id))
    else:
        conversation.partner_id = partner_id


@contextlib.contextmanager
def talking_to(partner_id: int | None) -> Iterator[Conversation]:
    """Calls made inside are `partner_id`'s; the Conversation then holds the answer to the last one."""
    conversation = Conversation(partner_id)
    reset = _conversation.set(conversation)
    try:
        yield conversation
    finally:
        _conversation.reset(reset)


# A query parameter whose name says it holds a secret (a partner URL may carry an API key).
_SECRET_WORDS = "token|key|secret|passw|auth|sig|credential"
_SECRET_PARAMETER = re.compile(rf"(?i)([?&;](?:[^=&;]*(?:{_SECRET_WORDS})[^=&;]*)=)[^&;#]*")
# Whether a target may hold one at all: a fifth of the cost of the replacement, which a crawl's every page would
# otherwise pay (2.5 µs). On ASCII text, lowercasing is exactly what (?i) does; other text takes the replacement.
_SECRET_WORD = re.compile(_SECRET_WORDS)
# Every "token" member of a JSON body (Credentials), closed or cut off.
_TOKEN_MEMBER = re.compile(r'("token"\s*:\s*")(?:[^"\\]|\\.)*"?')


def safe_path(path: str, query: str) -> str:
    """`path?query` with the values of secret-looking query parameters replaced, fit to store."""
    target = f"{path}?{query}" if query else path
    if query and (not target.isascii() or _SECRET_WORD.search(target.lower())):
        target = _SECRET_PARAMETER.sub(r"\1<redacted>", target)
    return storable(target, traffic.PATH_LIMIT)


def safe_body(content: bytes | None) -> str | None:
    """A body as kept: text, every token replaced, cut to BODY_LIMIT characters."""
    if not content:
        return None
    text = content[: BODY_LIMIT * 4].decode("utf-8", errors="replace")
    return storable(redact(_TOKEN_MEMBER.sub(r'\1<redacted>"', text)), BODY_LIMIT)


_DIGITS = re.compile(rb"\s*(\d{1,9})")


def _ocpi_status(body: bytes) -> int | None:
    """The status_code of an envelope, from its last _TAIL bytes (searched in place, not copied): our envelopes
    (and most) end with status_code, status_message and timestamp, and a `"status_code":` inside a string would be
    escaped."""
    at = body.rfind(b'"status_code":', max(len(body) - _TAIL, 0))
    if at < 0:
        return None
    digits = _DIGITS.match(body, at + 14)
    return int(digits[1]) if digits else None


class _Seen(NamedTuple):
    """An exchange as recorded on the request path, before it is made a row."""

    partner_id: int
    direction: Direction
    method: str
    target: str  # outbound: the URL called; inbound: our path
    query: bytes  # inbound: the query string as received
    ended: float  # time.monotonic(): cheaper than the clock; made a time once per batch
    elapsed: float  # seconds
    http_status: int | None
    ocpi_status: int | None  # the envelope's
    request_id: str | None
    correlation_id: str | None
    error: str | None
    request_body: bytes | None
    response_body: bytes | None


class TrafficLog:
    """The buffer and its writer; `outbound` (ocpi_hub.client) and `watch` (ocpi_hub.api.observe) record."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        bodies: bool,
        clock: Callable[[], datetime],
        outage: Outage | None = None,
        registry: CollectorRegistry | None = None,
        capacity: int = CAPACITY,
    ) -> None:
        self.sessions = sessions
        self.outage = outage
        self.bodies = bodies
        self.clock = clock
        self.capacity = capacity
        self._waiting: deque[_Seen] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self._flushing = asyncio.Lock()
        self.dropped = Counter(
            "ocpi_hub_traffic_dropped",
            "Traffic log entries dropped because too many waited to be written",
            registry=registry,
        )

    # --- recording (no I/O, next to no work: called on the request path; rows are made when written) ----------

    def _add(self, seen: _Seen) -> None:
        if len(self._waiting) >= self.capacity:
            self.dropped.inc()
            return
        self._waiting.append(seen)
        if len(self._waiting) >= FLUSH_AT:
            self._wake.set()

    def outbound(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        elapsed: float,
        http_status: int | None,
        ocpi_status: int | None,
        error: str | None = None,
        request_body: bytes | None = None,
        response_body: bytes | None = None,
    ) -> None:
        """A call we made (ocpi_hub.client); kept when the current Conversation names the partner."""
        conversation = _conversation.get()
        if conversation is None or conversation.partner_id is None:
            return
        self._add(
            _Seen(
                conversation.partner_id,
                Direction.OUTBOUND,
                method,
                url,
                b"",
                time.monotonic(),
                elapsed,
                http_status,
                ocpi_status,
                headers.get("X-Request-ID"),
                headers.get("X-Correlation-ID"),
                error,
                request_body if self.bodies else None,
                response_body if self.bodies else None,
            )
        )

    def watch(self, scope: MutableMapping[str, Any], receive: Receive) -> tuple[Watch | None, Receive]:
        """Start watching an inbound request to /ocpi (None for any other: no partner calls them): a fresh
        Conversation for it, and (with bodies) its body read as it passes. Call `Watch.done` when it is answered,
        `Watch.close` in any case."""
        if not scope["path"].startswith("/ocpi"):
            return None, receive
        watch = Watch(self, scope)
        if not self.bodies:
            return watch, receive

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(watch.request_body) <= BODY_LIMIT * 4:
                watch.request_body += message.get("body", b"")
            return message

        return watch, reading

    def _row(self, seen: _Seen, now: datetime, monotonic: float) -> tuple[Any, ...]:
        """The table row of an exchange, its values in `traffic.COLUMNS` order: made when written, off the request
        path. `now` and `monotonic` are the same instant on the hub's clock and on time.monotonic."""
        if seen.direction is Direction.OUTBOUND:
            parts = urlsplit(seen.target)
            path = safe_path(parts.path or "/", parts.query)
        else:
            path = safe_path(seen.target, seen.query.decode("latin-1"))
        return (
            seen.partner_id,
            now - timedelta(seconds=monotonic - seen.ended + seen.elapsed),  # at
            seen.direction.value,
            seen.method[:7],
            path,
            seen.http_status,
            seen.ocpi_status,
            round(seen.elapsed * 1000, 2),  # duration_ms
            None if seen.request_id is None else storable(seen.request_id, traffic.ID_LIMIT),
            None if seen.correlation_id is None else storable(seen.correlation_id, traffic.ID_LIMIT),
            None if seen.error is None else storable(seen.error, traffic.ERROR_LIMIT),
            safe_body(seen.request_body),
            safe_body(seen.response_body),
        )

    # --- writing ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._writer = asyncio.create_task(self._run(), name="traffic log writer")

    async def stop(self) -> None:
        """Stop the writer and write what still waits (a clean shutdown loses nothing). The writer is let finish
        its batch rather than cancelled: a write cut off inside the database driver can leave its connection, and
        on SQLite the file's write lock, behind."""
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(10):
                if self._writer is not None:
                    await asyncio.gather(self._writer, return_exceptions=True)
                await self.flush()
        except Exception:
            log.warning("traffic log: %d entries not written at shutdown", len(self._waiting), exc_info=True)
        self._writer = None

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the database may be away for a while: the entries wait (bounded), never die
                if self.outage is None or not self.outage.noticed(exc):  # an outage is told once, by the Outage
                    log.warning("traffic log: cannot write %d entries", len(self._waiting), exc_info=True)

    async def flush(self) -> int:
        """Write what waits now (not what arrives meanwhile: the next flush takes that), FLUSH_AT entries per
        transaction; returns how many were written. On failure the entries of the failed transaction and those after
        it wait again, as many as the buffer holds."""
        written, left = 0, len(self._waiting)
        while left > 0:
            count = min(left, FLUSH_AT)
            written += await self._flush_some(count)
            left -= count
        return written

    async def _flush_some(self, count: int) -> int:
        # A bounded batch: making rows and their statement parameters runs on the event loop, and a busy crawl
        # leaves thousands waiting each second; all at once they held every request back by a tenth of a second.
        async with self._flushing:
            taken = [self._waiting.popleft() for _ in range(min(count, len(self._waiting)))]
            if not taken:
                return 0
            rows = []
            now, monotonic = self.clock(), time.monotonic()
            for seen in taken:
                try:
                    rows.append(self._row(seen, now, monotonic))
                except Exception:  # a bug must cost one entry, not the log
                    log.exception("traffic log: cannot record an exchange with partner %s", seen.partner_id)
                    self.dropped.inc()
            try:
                async with self.sessions() as session:
                    return await traffic.add_entries(session, rows)
            except BaseException:
                room = max(self.capacity - len(self._waiting), 0)
                kept = taken[-room:] if room else []
                self.dropped.inc(len(taken) - len(kept))
                self._waiting.extendleft(reversed(kept))
                raise


class Watch:
    """One inbound request under watch: logged when authentication named its partner."""

    def __init__(self, log_: TrafficLog, scope: MutableMapping[str, Any]) -> None:
        self.log = log_
        self.scope = scope
        self.conversation = Conversation()
        self._reset = _conversation.set(self.conversation)
        self.request_body = b""
        self.response_body = b""
        self.tail = b""  # the last bytes of an answer sent in parts, until its last part
        self.ocpi_status: int | None = None

    def sent(self, message: Message) -> None:
        """An ASGI message of the answer went out: at its last part, read its status_code (and with bodies, keep
        the body). The entry keeps the number, not the answer's last bytes: up to 20,000 entries may wait."""
        if message["type"] != "http.response.body" or self.conversation.partner_id is None:
            return
        chunk: bytes = message.get("body", b"")
        ending = self.tail + chunk[-_TAIL:] if self.tail else chunk  # a whole answer in one part is not copied
        if message.get("more_body", False):
            self.tail = ending[-_TAIL:]  # its status_code may straddle this part and the next
        else:
            self.tail, self.ocpi_status = b"", _ocpi_status(ending)
        if self.log.bodies and len(self.response_body) <= BODY_LIMIT * 4:
            self.response_body += chunk[: BODY_LIMIT * 4]

    def done(self, status: int, elapsed: float, request_id: str, correlation_id: str) -> None:
        partner_id = self.conversation.partner_id
        if partner_id is None:
            return
        scope, log_ = self.scope, self.log
        log_._add(
            _Seen(
                partner_id,
                Direction.INBOUND,
                scope["method"],
                scope["path"],
                scope.get("query_string", b""),
                time.monotonic(),
                elapsed,
                status,
                self.ocpi_status,
                request_id,
                correlation_id,
                None,
                self.request_body if log_.bodies else None,
                self.response_body if log_.bodies else None,
            )
        )

    def close(self) -> None:
        _conversation.reset(self._reset)
