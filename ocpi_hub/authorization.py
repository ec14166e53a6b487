"""Real-time authorization of a token (OCPI 2.2.1 mod_tokens §12.2.1 `authorize`; docs/cpo-modules.md §7, D11 and
D12): decide from the stored token or ask the eMSP that issued it, as the token's whitelist says.

| whitelist         | we answer                                                                                  |
|-------------------|--------------------------------------------------------------------------------------------|
| `ALWAYS`          | the stored token alone                                                                     |
| `ALLOWED`         | the stored token when it is valid; otherwise the eMSP, and the stored token if it cannot    |
| `ALLOWED_OFFLINE` | the eMSP; the stored token when the eMSP cannot answer                                     |
| `NEVER`           | the eMSP; NOT_ALLOWED when it cannot answer                                                |

The stored token alone says ALLOWED when it is valid, BLOCKED when it is not (D12: refuse; BLOCKED rather than
NOT_ALLOWED, which the spec keeps for a valid token that may not charge at that location). "Cannot answer" is a
timeout (`OCPI_HUB_AUTHORIZATION_TIMEOUT`), a network error, HTTP 5xx or any refusal other than "token unknown"
(HTTP 404 / 2004) and "needs a location" (2002), which both mean NOT_ALLOWED; no registered eMSP with the token's
party, or one without a Tokens Sender endpoint, cannot answer either.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import assert_never
from urllib.parse import quote, urlencode

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import traffic
from ocpi_hub.client import OcpiClient, PartnerCallError, Routing, join_url
from ocpi_hub.db import partners, tokens
from ocpi_hub.ocpi import tokens as ocpi
from ocpi_hub.ocpi.common import CiString36, DisplayText, OcpiStruct, StatusCode, to_utc
from ocpi_hub.ocpi.versions import InterfaceRole, ModuleID
from ocpi_hub.secret_key import Keyring, keyring_of
from ocpi_hub.settings import Settings

log = logging.getLogger(__name__)


class AllowedType(enum.StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class LocationReferences(OcpiStruct):
    """Where the driver wants to charge. `evse_uids` None is "not said" (the whole location), which the eMSP's
    answer distinguishes from an empty list (none of the EVSEs)."""

    location_id: CiString36
    evse_uids: list[CiString36] | None = None


class AuthorizationInfo(OcpiStruct):
    allowed: AllowedType
    token: ocpi.Token
    location: LocationReferences | None = None
    authorization_reference: CiString36 | None = None
    info: DisplayText | None = None


class Source(enum.StrEnum):
    """What decided: the stored token ("local", auth_method WHITELIST) or the eMSP's answer ("realtime",
    auth_method AUTH_REQUEST)."""

    LOCAL = "local"
    REALTIME = "realtime"


@dataclass(frozen=True)
class Authorization:
    allowed: AllowedType
    token: ocpi.Token
    authorization_reference: str | None
    source: Source


@dataclass(frozen=True)
class Emsp:
    """Where and how to ask the eMSP of a token: its Tokens Sender endpoint and the credentials we call it with."""

    partner_id: int  # whose traffic the call is (docs/operations.md §7.2)
    tokens_url: str
    token: str
    send_base64: bool


# HTTP 404 / 2004: the eMSP does not know the token; 2002: it needs a location we did not send. Both are its answer.
_REFUSALS = frozenset({StatusCode.UNKNOWN_TOKEN, StatusCode.NOT_ENOUGH_INFORMATION})


def local(token: ocpi.Token) -> Authorization:
    """The stored token's own answer (D12: a token that is not valid is refused, whatever its whitelist)."""
    allowed = AllowedType.ALLOWED if token.valid else AllowedType.BLOCKED
    return Authorization(allowed, token, None, Source.LOCAL)


def _asks(token: ocpi.Token) -> bool:
    match token.whitelist:
        case ocpi.WhitelistType.ALWAYS:
            return False
        case ocpi.WhitelistType.ALLOWED:
            return not token.valid
        case ocpi.WhitelistType.ALLOWED_OFFLINE | ocpi.WhitelistType.NEVER:
            return True
        case unreachable:
            assert_never(unreachable)


def offline(token: ocpi.Token) -> Authorization:
    """The answer when the eMSP cannot give one: NEVER refuses, the other whitelists fall back on the stored token."""
    if token.whitelist == ocpi.WhitelistType.NEVER:
        return Authorization(AllowedType.NOT_ALLOWED, token, None, Source.LOCAL)
    return local(token)


async def emsp_of(session: AsyncSession, token: ocpi.Token, keyring: Keyring) -> Emsp | None:
    """The registered partner with a role of the token's party and a Tokens Sender endpoint, if there is one."""
    for partner in await partners.registered(session):
        url = partner.endpoint(ModuleID.TOKENS, InterfaceRole.SENDER)
        if partner.has_party(token.country_code, token.party_id) and url and partner.token:
            ours = partners.outbound_token(partner, keyring)  # docs/operations.md §9
            assert ours is not None
            return Emsp(partner.id, url, ours, partner.send_base64)
    return None


def _same_token(a: ocpi.Token, b: ocpi.Token) -> bool:
    return (a.country_code.upper(), a.party_id.upper(), a.uid, a.type) == (
        b.country_code.upper(),
        b.party_id.upper(),
        b.uid,
        b.type,
    )


def _at_requested_evses(info: AuthorizationInfo, asked: LocationReferences | None) -> AllowedType:
    """docs/cpo-modules.md §7.3: an ALLOWED whose location lists the driver's EVSEs, without one we asked about,
    is NOT_ALLOWED there."""
    if info.allowed != AllowedType.ALLOWED or not asked or not asked.evse_uids:
        return info.allowed
    if info.location is None or info.location.evse_uids is None:
        return info.allowed
    permitted = {uid.upper() for uid in info.location.evse_uids}
    if all(uid.upper() in permitted for uid in asked.evse_uids):
        return info.allowed
    return AllowedType.NOT_ALLOWED


async def ask(
    client: OcpiClient,
    emsp: Emsp,
    token: ocpi.Token,
    location: LocationReferences | None,
    *,
    routing: Routing,
    within: float,
) -> Authorization | None:
    """The eMSP's answer about `token` at `location` (OCPI 2.2.1 §12.2.1.1), or None when it cannot give one."""
    url = join_url(emsp.tokens_url, quote(token.uid, safe=""), "authorize") + "?" + urlencode({"type": token.type})
    try:
        # httpx's timeout bounds each phase of the call; the driver waits for all of them together.
        with traffic.talking_to(emsp.partner_id):
            async with asyncio.timeout(within):
                data = await client.call(
                    "POST",
                    url,
                    token=emsp.token,
                    send_base64=emsp.send_base64,
                    body=location,
                    routing=routing,
                    timeout=within,
                )
    except TimeoutError:
        log.warning("POST %s: no answer within %s s; deciding without the eMSP", url, within)
        return None
    except PartnerCallError as exc:
        if exc.http_status == 404 or exc.status_code in _REFUSALS:
            return Authorization(AllowedType.NOT_ALLOWED, token, None, Source.REALTIME)
        log.warning("%s; deciding without the eMSP", exc)
        return None
    try:
        info = msgspec.convert(data, AuthorizationInfo)
    except msgspec.ValidationError as exc:
        log.warning("POST %s: invalid AuthorizationInfo (%s); deciding without the eMSP", url, exc)
        return None
    if not _same_token(info.token, token):
        log.warning("POST %s: the answer is about another token; deciding without the eMSP", url)
        return None
    refreshed = msgspec.structs.replace(info.token, last_updated=to_utc(info.token.last_updated))
    allowed = _at_requested_evses(info, location)
    return Authorization(allowed, refreshed, info.authorization_reference, Source.REALTIME)


async def authorize(
    sessions: async_sessionmaker[AsyncSession],
    client: OcpiClient,
    settings: Settings,
    *,
    uid: str,
    type_: ocpi.TokenType,
    location: LocationReferences | None,
) -> Authorization | None:
    """May the token with this uid and type charge at `location`? None when no such token is stored (D11: we know
    no eMSP to ask). A token the eMSP sends back with its answer replaces the stored one."""
    # Read, then close the session: the eMSP is never waited for inside a database transaction.
    async with sessions() as session:
        # Of several eMSPs' tokens with this uid and type, the most recently updated (as lookupToken).
        token = await tokens.latest_by_uid(session, uid, type_)
        if token is None:
            return None
        if not _asks(token):
            return local(token)
        emsp = await emsp_of(session, token, keyring_of(settings))
    if emsp is None:
        log.warning(
            "no registered eMSP of %s/%s with a Tokens Sender endpoint to ask", token.country_code, token.party_id
        )
        return offline(token)
    ours = settings.default_party
    routing = Routing(ours.country_code, ours.party_id, token.country_code, token.party_id)
    answer = await ask(client, emsp, token, location, routing=routing, within=settings.authorization_timeout)
    if answer is None:
        return offline(token)
    if answer.token is not token:  # the eMSP sent the token with its answer: its data replaces ours
        async with sessions() as session:
            await tokens.put(session, answer.token)
            await session.commit()
            stored = await tokens.get(session, ocpi.key_of(answer.token))
        answer = Authorization(answer.allowed, stored or answer.token, answer.authorization_reference, answer.source)
    return answer
