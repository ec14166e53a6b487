"""Our HTTP client towards partners: the outbound headers in one place, the envelope read in one place.

Every call has the timeout the client is given (`OCPI_HUB_HTTP_TIMEOUT`), or a shorter one of its own (`timeout`,
such as a real-time authorization's), so a partner that hangs cannot hang a request of ours.

Requests go straight to an httpx transport, not through `httpx.AsyncClient`: the client's layer (auth and redirect
flows, cookies, event hooks, default headers) is none of what a partner call needs, and cost about a fifth of the
CPU of a push (bench/README.md, `push_bench.py`). Redirects are not followed (a partner's URL is checked before we
call it, and a redirect would go where nothing was checked); no cookie is kept (README, "Security").
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec

from ocpi_hub.credentials_token import authorization_header
from ocpi_hub.ocpi.common import Envelope, StatusCode
from ocpi_hub.traffic import Answer, TrafficLog, current

T = TypeVar("T")

# `data` stays builtins here: `call` hands it on as such, `fetch` converts it to the type it was asked for.
_envelope_decoder = msgspec.json.Decoder(Envelope[Any])


class PartnerCallError(Exception):
    """A call to a partner failed; the message says which call and what the partner answered."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status_code: int | None = None,
        http_status: int | None = None,
        retry_after: str | None = None,
        status_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_message = status_message  # the partner's OCPI status_message, trimmed (docs/operations.md §3)
        self.transient = transient
        self.status_code = status_code
        self.http_status = http_status  # None when no answer came (connection error, timeout)
        self.retry_after = retry_after  # the Retry-After header of a 429 or 503, as sent (seconds or HTTP date)


@dataclass(frozen=True)
class Answered:
    data: Any  # the envelope's data
    headers: httpx.Headers


class Routing(msgspec.Struct, frozen=True):
    """OCPI-from/OCPI-to of a functional-module request (never sent on configuration modules, spec §4.1.5)."""

    from_country_code: str
    from_party_id: str
    to_country_code: str
    to_party_id: str


# A partner's status_message is repeated in logs and in the internal API: a long one is cut (docs/operations.md §3).
MESSAGE_LIMIT = 200


def trimmed(status_message: str | None) -> str | None:
    if status_message is None or len(status_message) <= MESSAGE_LIMIT:
        return status_message
    return status_message[: MESSAGE_LIMIT - 1] + "…"


def _colon(status_message: str | None) -> str:
    return f": {trimmed(status_message)}" if status_message else ""


def join_url(base: str, *segments: str) -> str:
    """`base` + `/seg/seg`, whether or not the partner's base URL ends with a slash."""
    return urljoin(base.rstrip("/") + "/", "/".join(segments))


# Who calls, for the partner's logs and firewalls (some refuse a request that names no agent).
USER_AGENT = "ocpi-hub"

# Every partner's pool keeps as many connections as calls are in flight to it (the push worker's lanes bound them).
UNBOUNDED = httpx.Limits(max_connections=None, max_keepalive_connections=None)


class PoolPerOrigin(httpx.AsyncBaseTransport):
    """httpx's transport with a connection pool of its own for every origin (scheme, host, port: a partner).

    At the start and the end of every request, httpcore looks over every connection of its pool (is it still
    usable? for an idle one, a system call), so with one pool the push worker's requests cost in proportion to the
    connections of all partners together: at 3 partners of 8 lanes, a sixth of the hub's CPU under a stream of
    status changes (bench/writes_bench.py). A pool per origin costs in proportion to that partner's own."""

    def __init__(self, limits: httpx.Limits = UNBOUNDED) -> None:
        self._limits = limits
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = httpx.AsyncHTTPTransport(limits=self._limits)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


class OcpiClient:
    def __init__(
        self, transport: httpx.AsyncBaseTransport, *, timeout: float, traffic: TrafficLog | None = None
    ) -> None:
        self.transport = transport  # its owner closes it
        self.timeout = timeout  # seconds, for connecting and for each read and write
        self.traffic = traffic  # every call is told to it (docs/operations.md §7.2)

    def headers(self, token: str, *, send_base64: bool, routing: Routing | None = None) -> dict[str, str]:
        request_id = str(uuid.uuid4())
        headers = {
            "User-Agent": USER_AGENT,
            "Authorization": authorization_header(token, send_base64=send_base64),
            "X-Request-ID": request_id,
            "X-Correlation-ID": request_id,
        }
        if routing is not None:
            headers |= {
                "OCPI-from-country-code": routing.from_country_code,
                "OCPI-from-party-id": routing.from_party_id,
                "OCPI-to-country-code": routing.to_country_code,
                "OCPI-to-party-id": routing.to_party_id,
            }
        return headers

    async def call(
        self,
        method: str,
        url: str,
        *,
        token: str,
        send_base64: bool,
        body: Any = None,
        routing: Routing | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpx's timeouts for this one call, not a cancel scope)
    ) -> Any:
        """One OCPI request; returns the envelope's `data` on HTTP 2xx with status_code 1000, else raises."""
        answered = await self.request(
            method, url, token=token, send_base64=send_base64, body=body, routing=routing, timeout=timeout
        )
        return answered.data

    async def request(
        self,
        method: str,
        url: str,
        *,
        token: str,
        send_base64: bool,
        body: Any = None,
        routing: Routing | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpx's timeouts for this one call, not a cancel scope)
    ) -> Answered:
        """`call`, with the answer's headers too (a CDR POST's answer names the stored CDR in `Location`).

        `timeout` (seconds) replaces the client's own for this call."""
        what = f"{method} {url}"
        content = None if body is None else msgspec.json.encode(body)
        headers = self.headers(token, send_base64=send_base64, routing=routing)
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            # A port out of range or an unclosed `[` (urlsplit's checks; httpx lets the first reach the socket).
            urlsplit(url).port  # noqa: B018
        except ValueError as exc:
            raise PartnerCallError(f"{what}: not a valid URL ({exc})", transient=False) from None
        extensions = {"timeout": httpx.Timeout(self.timeout if timeout is None else timeout).as_dict()}
        started = time.perf_counter()
        try:
            request = httpx.Request(method, url, content=content, headers=headers, extensions=extensions)
            response = await self.transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            self._told(method, url, headers, started, content, None, None, "no answer within the timeout")
            raise PartnerCallError(f"{what}: no answer within the timeout", transient=True) from None
        except httpx.HTTPError as exc:
            self._told(method, url, headers, started, content, None, None, f"{type(exc).__name__}: {exc}")
            raise PartnerCallError(f"{what}: {type(exc).__name__}: {exc}", transient=True) from None
        except httpx.InvalidURL as exc:  # a bad port or bracket in a URL a partner gave: asking again will not help
            raise PartnerCallError(f"{what}: not a valid URL ({exc})", transient=False) from None
        except asyncio.CancelledError:  # the caller's own deadline (a real-time authorization's), or a shutdown
            self._told(method, url, headers, started, content, None, None, "cancelled before the answer came")
            raise
        try:
            envelope: Envelope[Any] | None = _envelope_decoder.decode(response.content)
            not_an_envelope = ""
        except msgspec.DecodeError as exc:  # ValidationError included: JSON, but not shaped like an envelope
            envelope, not_an_envelope = None, str(exc) if response.content else "the body is empty"
        self._told(method, url, headers, started, content, response, envelope)
        if not response.is_success:
            said = f" (status_code {envelope.status_code}{_colon(envelope.status_message)})" if envelope else ""
            transient = response.status_code >= 500 or response.status_code in (408, 429)
            retry_after = response.headers.get("Retry-After") if response.status_code in (429, 503) else None
            raise PartnerCallError(
                f"{what}: HTTP {response.status_code}{said}",
                transient=transient,
                status_code=envelope.status_code if envelope else None,
                http_status=response.status_code,
                retry_after=retry_after,
                status_message=trimmed(envelope.status_message) if envelope else None,
            )
        if envelope is None:
            raise PartnerCallError(
                f"{what}: the answer is not an OCPI envelope ({not_an_envelope})",
                transient=False,
                http_status=response.status_code,
            )
        if envelope.status_code != StatusCode.SUCCESS:
            raise PartnerCallError(
                f"{what}: status_code {envelope.status_code}{_colon(envelope.status_message)}",
                transient=3000 <= envelope.status_code < 4000,
                status_code=envelope.status_code,
                http_status=response.status_code,
                status_message=trimmed(envelope.status_message),
            )
        return Answered(envelope.data, response.headers)

    def _told(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        started: float,
        content: bytes | None,
        response: httpx.Response | None,
        envelope: Envelope[Any] | None,
        error: str | None = None,
    ) -> None:
        """The answer to the current Conversation (the push worker keeps it with a sent delivery), the call to the
        traffic log (never its Authorization header: only the ids are read from `headers`)."""
        http_status = None if response is None else response.status_code
        ocpi_status = None if envelope is None else envelope.status_code
        conversation = current()
        if conversation is not None:
            conversation.last = Answer(http_status, ocpi_status, headers.get("X-Request-ID"))
        if self.traffic is not None:
            self.traffic.outbound(
                method,
                url,
                headers=headers,
                elapsed=time.perf_counter() - started,
                http_status=http_status,
                ocpi_status=ocpi_status,
                error=error,
                request_body=content,
                response_body=None if response is None else response.content,
            )

    async def fetch(self, url: str, type_: type[T], *, token: str, send_base64: bool) -> T:
        """GET a configuration object (versions, version details, credentials) and validate its shape."""
        data = await self.call("GET", url, token=token, send_base64=send_base64)
        try:
            return msgspec.convert(data, type_)
        except msgspec.ValidationError as exc:
            raise PartnerCallError(f"GET {url}: invalid {type_.__name__}: {exc}", transient=False) from None
