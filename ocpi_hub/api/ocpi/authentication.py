"""Who is calling /ocpi (OCPI 2.2.1 §4.1.3, docs/ocpi.md §1.3): one authentication step on every OCPI route, run
before any answer is made or taken from the answer cache.

It reads the credentials token off the request (ocpi_hub.credentials_token), finds the partner by the token's hash,
checks that the partner's state opens the route (`Access`, named by the route's `opt["access"]`, functional
modules by default) and leaves the Caller on the request's state for the handler. A known token is kept in the
answer cache's exact caller map, so that a crawl does not read the partners table once per page; any change to the
partners table (a revocation included: its change counter, ocpi_hub.db.freshness) empties that map before the next
request.

It is the routers' `before_request` hook rather than a Litestar guard: Litestar copies the route handler for every
guard call, which cost a fifth of the Locations list's throughput (bench/locations_bench.py).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import errors, traffic
from ocpi_hub.api.ocpi.answer_cache import AnswerCache
from ocpi_hub.credentials_token import presented_tokens
from ocpi_hub.db import partners
from ocpi_hub.db.freshness import Versions
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.ocpi.common import Role
from ocpi_hub.secret_key import Keyring


class Access(enum.StrEnum):
    """Which partners a route accepts: token A only on versions and credentials; functional modules only for
    registered partners; our own token B, during a handshake we started, only on versions."""

    VERSIONS = "versions"
    CREDENTIALS = "credentials"
    FUNCTIONAL = "functional"

    def allows(self, partner: Partner) -> bool:
        match self:
            case Access.VERSIONS:
                return partner.state in (PartnerState.PENDING, PartnerState.REGISTERED)
            case Access.CREDENTIALS:
                return partner.state == PartnerState.REGISTERED or (
                    partner.state == PartnerState.PENDING and partner.initiator == Initiator.PARTNER
                )
            case Access.FUNCTIONAL:
                return partner.state == PartnerState.REGISTERED


@dataclass(frozen=True)
class Caller:
    partner: Partner  # detached from any session: read it, never change it
    token: str  # the token as presented, needed to answer a credentials GET
    seen: Versions | None  # the change counters asked before the partner was read (for the answer cache)

    @property
    def registered(self) -> bool:
        return self.partner.state == PartnerState.REGISTERED

    @property
    def party(self) -> tuple[str, str] | None:
        """The caller's own party, for the routing headers of our answers: its first EMSP role, else its first."""
        roles = sorted(self.partner.roles, key=lambda r: r.role != Role.EMSP)
        return (roles[0].country_code, roles[0].party_id) if roles else None

    @property
    def parties(self) -> tuple[tuple[str, str], ...]:
        """Every party of the caller (upper-cased): the owners whose Sessions and CDRs it may read."""
        return tuple((r.country_code.upper(), r.party_id.upper()) for r in self.partner.roles)


_STATE_KEY = "ocpi_caller"


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The Caller that authentication left on the request."""
    found: Caller = connection.scope["state"][_STATE_KEY]
    return found


def leave_caller(scope: Scope, found: Caller) -> None:
    """Leave the authenticated Caller on the request, for `caller` (the one place it is put)."""
    scope.setdefault("state", {})[_STATE_KEY] = found


def known_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller | None:
    """The Caller, when authentication got as far as knowing it (an error answer may come before)."""
    found: Caller | None = connection.scope.get("state", {}).get(_STATE_KEY)
    return found


Authenticate = Callable[[Request[Any, Any, Any]], Awaitable[None]]


def authorization_of(scope: Scope) -> bytes | None:
    """The Authorization header as sent, straight from the scope (cheaper than building Litestar's Headers)."""
    return next((value for name, value in scope["headers"] if name == b"authorization"), None)


def kept_caller(cache: AnswerCache, authorization: bytes | None, seen: Versions | None) -> tuple[Partner, str] | None:
    """The partner and token of an Authorization header seen before under the same partners counters. Kept under
    the header as sent: a crawl's every page is one look-up, without decoding the token again."""
    return cache.callers.get(authorization, seen) if authorization else None


def authenticator(sessions: async_sessionmaker[AsyncSession], cache: AnswerCache, keyring: Keyring) -> Authenticate:
    """The one authentication path of /ocpi, as a `before_request` hook."""

    async def authenticate(request: Request[Any, Any, Any]) -> None:
        access: Access = request.route_handler.opt.get("access", Access.FUNCTIONAL)
        authorization = authorization_of(request.scope)
        seen = await cache.version()
        found = kept_caller(cache, authorization, seen)
        if found is None and authorization:
            candidates = presented_tokens(authorization.decode("latin-1"))
            if candidates:
                async with sessions() as session:
                    found = await partners.authenticate(session, candidates, keyring)
                if found is not None:
                    cache.callers.put(authorization, found, seen=seen)
        if found is not None:  # the request, and the calls made while serving it, are the partner's traffic
            traffic.attribute(found[0].id)
        if found is None or not access.allows(found[0]):
            raise errors.Unauthorized("missing or unknown credentials token")
        leave_caller(request.scope, Caller(found[0], found[1], seen))

    return authenticate
