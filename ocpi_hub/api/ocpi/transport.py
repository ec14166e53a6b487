"""OCPI transport rules shared by every module (OCPI 2.2.1 §4): envelope, request ids, authentication,
request bodies and routing headers."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.auth import hash_token, presented_tokens, same_hash
from ocpi_hub.db import partners
from ocpi_hub.db.freshness import Freshness, ReadCache
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.errors import OcpiError
from ocpi_hub.ocpi.common import Envelope, StatusCode, json_encoder
from ocpi_hub.settings import Settings

T = TypeVar("T")

AnyRequest = Request[Any, Any, Any]


def envelope(
    data: Any,
    *,
    now: Callable[[], Any],
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = Envelope[Any](data=data, status_code=StatusCode.SUCCESS, status_message="Success", timestamp=now())
    return Response(json_encoder.encode(body), status_code=http_status, media_type="application/json", headers=headers)


class _RequestIds:
    """Fresh request ids shaped like UUIDs: a random prefix per process and a counter. They need to be unique, not
    secret, and a uuid4 per request cost 4% of the Locations list's time."""

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]  # 8-4-4-4 hex digits and their dashes
        self._counter = itertools.count()

    def next(self) -> bytes:
        return f"{self._prefix}{next(self._counter) % 2**48:012x}".encode()


_request_ids = _RequestIds()


async def echo_request_ids(message: Message, scope: Scope) -> None:
    """`before_send` hook: X-Request-ID and X-Correlation-ID on every response, errors and 404s included
    (§4.1.4). A caller that sent none gets fresh ones rather than an error."""
    if message["type"] != "http.response.start":
        return
    headers = dict(scope["headers"])
    request_id = headers.get(b"x-request-id") or _request_ids.next()
    correlation_id = headers.get(b"x-correlation-id") or request_id
    message["headers"] = [
        *message.get("headers", []),
        (b"x-request-id", request_id),
        (b"x-correlation-id", correlation_id),
    ]


class Access:
    """Which partners a module accepts (§4.1.3): token A only on versions and credentials; functional modules
    only for registered partners; our own token B during a handshake we started only on versions."""

    @staticmethod
    def versions(partner: Partner) -> bool:
        return partner.state in (PartnerState.PENDING, PartnerState.REGISTERED)

    @staticmethod
    def credentials(partner: Partner) -> bool:
        return partner.state == PartnerState.REGISTERED or (
            partner.state == PartnerState.PENDING and partner.initiator == Initiator.PARTNER
        )

    @staticmethod
    def functional(partner: Partner) -> bool:
        return partner.state == PartnerState.REGISTERED


@dataclass(frozen=True)
class Caller:
    partner: Partner
    token: str  # the token as presented, needed to answer a credentials GET

    @property
    def registered(self) -> bool:
        return self.partner.state == PartnerState.REGISTERED


def _unknown_token() -> OcpiError:
    return OcpiError(StatusCode.CLIENT_ERROR, "missing or unknown credentials token", http_status=401)


async def authenticate(request: AnyRequest, session: AsyncSession, allowed: Callable[[Partner], bool]) -> Caller:
    candidates = presented_tokens(request.headers.get("authorization"))
    partner = await partners.by_presented_token(session, candidates)
    if partner is None or not allowed(partner):
        raise _unknown_token()
    token = next(c for c in candidates if same_hash(hash_token(c), partner.token_hash or ""))
    return Caller(partner=partner, token=token)


@dataclass(frozen=True)
class ReadPath:
    """What the read-only hot handlers (the Locations Sender) use, taken from the app rather than injected:
    resolving dependencies per request cost half of the list's throughput (bench/locations_bench.py).

    `callers`, `pages` and `answers` are exact per-process caches (ocpi_hub.db.freshness): any commit, in any
    process, empties them before the next request reads them.
    """

    settings: Settings
    now: Callable[[], datetime]
    sessions: async_sessionmaker[AsyncSession]
    freshness: Freshness
    callers: ReadCache[tuple[str, ...], Caller]
    pages: ReadCache[tuple[object, ...], Any]
    answers: ReadCache[tuple[object, ...], Any]

    @staticmethod
    def of(request: AnyRequest) -> ReadPath:
        read_path: ReadPath = request.app.state.read_path
        return read_path

    async def version(self) -> int | None:
        """Asked once per request, before any read (see Freshness for what it costs and why it is exact)."""
        return await self.freshness.version()

    async def authenticate(
        self, request: AnyRequest, allowed: Callable[[Partner], bool], version: int | None
    ) -> Caller:
        """`authenticate`, served from the cache when nothing was committed since the caller was last seen.

        Only a success is cached (an unknown token always reaches the database), and only for read-only handlers:
        the cached Partner is detached from any session."""
        key = tuple(presented_tokens(request.headers.get("authorization")))
        caller = self.callers.get(key, version)
        if caller is None:
            async with self.sessions() as session:
                caller = await authenticate(request, session, allowed)
            self.callers.put(key, caller, seen=version)
        elif not allowed(caller.partner):
            raise _unknown_token()
        return caller


async def decode_body(request: AnyRequest, type_: type[T]) -> T:
    """Not JSON: HTTP 400. JSON of the wrong shape: HTTP 200 with 2001 naming the field and the rule (§4.1.7)."""
    raw = await request.body()
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise OcpiError(StatusCode.INVALID_PARAMETERS, f"invalid {type_.__name__}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise OcpiError(StatusCode.CLIENT_ERROR, f"the body is not valid JSON: {exc}", http_status=400) from None


def routing_headers(request: AnyRequest, caller: Caller, settings: Settings) -> dict[str, str]:
    """The routing headers of our answer on a functional module: the request's, from and to swapped (§4.1.5).

    Absent request headers are filled in from what we know: our default party, the caller's first role.
    """
    sent = request.headers  # parsed from the scope on every access: read once
    ours = settings.default_party
    role = caller.partner.roles[0] if caller.partner.roles else {}
    headers = {
        "OCPI-from-country-code": sent.get("ocpi-to-country-code") or ours.country_code,
        "OCPI-from-party-id": sent.get("ocpi-to-party-id") or ours.party_id,
        "OCPI-to-country-code": sent.get("ocpi-from-country-code") or role.get("country_code", ""),
        "OCPI-to-party-id": sent.get("ocpi-from-party-id") or role.get("party_id", ""),
    }
    return {k: v for k, v in headers.items() if v}
