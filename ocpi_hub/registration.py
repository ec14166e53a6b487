"""The credentials handshake in both directions, and the partner state machine (OCPI 2.2.1 §7.1, §7.2).

    pending ──POST credentials (token A)────────────▶ registered ──PUT credentials──▶ registered (new token)
    (none) ──POST /api/v0/register {url}: our handshake─▶ registered
    registered ──DELETE credentials──▶ unregistered        any ──operator──▶ suspended ──operator──▶ previous

Partner calls happen outside database transactions; each state change is written in one transaction, so a
failed handshake leaves nothing behind that grants access.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.auth import hash_token, issue_token
from ocpi_hub.client import OcpiClient, PartnerCallError
from ocpi_hub.db import partners
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.ocpi.common import BusinessDetails, Role
from ocpi_hub.ocpi.credentials import Credentials, CredentialsRole
from ocpi_hub.ocpi.versions import SUPPORTED, Endpoint, ModuleID, Version, VersionDetails
from ocpi_hub.push import outbox
from ocpi_hub.settings import Settings
from ocpi_hub.urlcheck import UnsafeUrlError, check_partner_url


class RegistrationError(Exception):
    """The handshake failed at `step`; `status_code` is the OCPI status to answer a partner's POST/PUT with."""

    def __init__(self, step: str, message: str, *, status_code: int = 3001) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.status_code = status_code


@dataclass(frozen=True)
class Discovery:
    versions_url: str
    version: str
    endpoints: list[Endpoint]


def our_credentials(settings: Settings, token: str) -> Credentials:
    """Our Credentials object: the token the partner must use, our versions URL, every CPO party we run."""
    return Credentials(
        token=token,
        url=settings.versions_url,
        roles=[
            CredentialsRole(
                role=Role.CPO,
                business_details=BusinessDetails(name=party.business_name),
                party_id=party.party_id,
                country_code=party.country_code,
            )
            for party in settings.parties
        ],
    )


async def discover(
    client: OcpiClient,
    versions_url: str,
    *,
    token: str,
    send_base64: bool = True,
    version: str | None = None,
    allow_private: bool = True,
) -> Discovery:
    """GET the partner's versions and the details of `version` (or the highest we share) with `token`."""
    try:
        versions = await client.fetch(versions_url, list[Version], token=token, send_base64=send_base64)
    except PartnerCallError as exc:
        raise RegistrationError("GET versions", str(exc)) from None
    offered = {v.version: v.url for v in versions}
    wanted = [version] if version else list(SUPPORTED)
    chosen = next((v for v in wanted if v in offered), None)
    if chosen is None:
        raise RegistrationError(
            "GET versions",
            f"no common version: the partner offers {sorted(offered) or 'none'}, we need {' or '.join(wanted)}",
            status_code=3002,
        )
    details_url = offered[chosen]
    await _check(details_url, allow_private)
    try:
        details = await client.fetch(details_url, VersionDetails, token=token, send_base64=send_base64)
    except PartnerCallError as exc:
        raise RegistrationError("GET version details", str(exc)) from None
    for endpoint in details.endpoints:
        await _check(endpoint.url, allow_private)
    if not any(e.identifier == ModuleID.CREDENTIALS for e in details.endpoints):
        raise RegistrationError(
            "GET version details", f"version {chosen} lists no credentials endpoint", status_code=3003
        )
    return Discovery(versions_url=versions_url, version=chosen, endpoints=details.endpoints)


async def _check(url: str, allow_private: bool, *, status_code: int = 3001) -> None:
    try:
        await check_partner_url(url, allow_private=allow_private)
    except UnsafeUrlError as exc:
        raise RegistrationError("check partner URL", str(exc), status_code=status_code) from None


def _apply(partner: Partner, discovery: Discovery) -> None:
    partner.versions_url = discovery.versions_url
    partner.version = discovery.version
    partner.endpoints = [msgspec.to_builtins(e) for e in discovery.endpoints]


def _receiving(partner: Partner) -> tuple[str, str | None, str | None]:
    """What decides whether the partner must be sent every Location (again)."""
    return partner.state, partner.endpoint("locations", "RECEIVER"), partner.version


def _roles(credentials: Credentials) -> list[dict[str, Any]]:
    seen = set()
    for role in credentials.roles:
        key = (role.role, role.country_code.upper(), role.party_id.upper())
        if key in seen:
            raise RegistrationError(
                "read credentials",
                f"roles: ({key[0]}, {key[1]}, {key[2]}) appears twice; each role must be unique",
                status_code=2001,
            )
        seen.add(key)
    return [
        msgspec.to_builtins(r) | {"country_code": r.country_code.upper(), "party_id": r.party_id.upper()}
        for r in credentials.roles
    ]


# --- The partner registers with us (they hold our token A) -------------------------------------------------


async def accept(
    session: AsyncSession,
    client: OcpiClient,
    settings: Settings,
    partner: Partner,
    credentials: Credentials,
    *,
    version: str,
    now: datetime,
) -> Credentials:
    """Handle a credentials POST (registration) or PUT (update): fetch their endpoints with their token, then
    replace our token for them. The old token keeps working until this commits."""
    roles = _roles(credentials)
    # The URL in the body is a parameter of the request (2001); URLs in their version details are their API (3001).
    await _check(credentials.url, settings.allow_private_partner_urls, status_code=2001)
    discovery = await discover(
        client,
        credentials.url,
        token=credentials.token,
        send_base64=partner.send_base64,
        version=version,
        allow_private=settings.allow_private_partner_urls,
    )
    token_c = issue_token()
    receiving = _receiving(partner)
    _apply(partner, discovery)
    partner.roles = roles
    partner.token = credentials.token
    partner.token_hash = hash_token(token_c)
    partner.state = PartnerState.REGISTERED
    partner.updated_at = now
    if _receiving(partner) != receiving:  # newly registered, or Locations now go elsewhere or in another version
        await outbox.enqueue_full_push(session, partner)
    await session.commit()
    return our_credentials(settings, token_c)


async def unregister(session: AsyncSession, partner: Partner, *, now: datetime) -> None:
    """Credentials DELETE: both tokens become invalid; the partner stays listed as unregistered."""
    partner.state = PartnerState.UNREGISTERED
    partner.token_hash = None
    partner.token = None
    partner.updated_at = now
    await session.commit()


# --- The operator registers a partner (POST /api/v0/register) ----------------------------------------------


class TokenInUseError(Exception):
    pass


async def add_pending(session: AsyncSession, token_a: str, *, registered: bool, now: datetime) -> Partner:
    """A token handed to a partner out of band: token A (PENDING), or a token agreed for everything (REGISTERED)."""
    await _ensure_unused(session, token_a)
    partner = Partner(
        state=PartnerState.REGISTERED if registered else PartnerState.PENDING,
        initiator=Initiator.PARTNER,
        token_hash=hash_token(token_a),
        token=None,
        send_base64=True,
        roles=[],
        endpoints=[],
        created_at=now,
        updated_at=now,
    )
    session.add(partner)
    await session.commit()
    return partner


async def register_with(
    sessions: async_sessionmaker[AsyncSession],
    client: OcpiClient,
    settings: Settings,
    *,
    versions_url: str,
    token: str,
    already_registered: bool,
    now: datetime,
) -> Partner:
    """We are the sender of the handshake: their versions URL and their token are given to us out of band.

    With `already_registered` the token is agreed for both directions: discover their endpoints and roles with
    it, no credentials POST. Otherwise: discover with their token A, POST our credentials with a new token B
    (which they use to GET our versions before answering), keep the token C they answer with.
    """
    async with sessions() as session:
        if already_registered:  # only then is their token also the one they present to us
            await _ensure_unused(session, token)
        if await partners.by_versions_url(session, versions_url, state=PartnerState.REGISTERED):
            raise TokenInUseError(f"a registered partner already has the versions URL {versions_url}")
    discovery = await discover(client, versions_url, token=token)
    credentials_url = next(e.url for e in discovery.endpoints if e.identifier == ModuleID.CREDENTIALS)

    if already_registered:
        try:
            theirs = await client.fetch(credentials_url, Credentials, token=token, send_base64=True)
        except PartnerCallError as exc:
            raise RegistrationError("GET credentials", str(exc)) from None
        async with sessions() as session:
            partner = _new_partner(Initiator.HUB, PartnerState.REGISTERED, hash_token(token), token, now)
            _apply(partner, discovery)
            partner.roles = _roles(theirs)
            session.add(partner)
            await session.flush()  # its id, for its deliveries
            await outbox.enqueue_full_push(session, partner)
            await session.commit()
            return partner

    token_b = issue_token()
    async with sessions() as session:
        # Committed before the POST: the partner GETs our versions with token B before it answers.
        pending = _new_partner(Initiator.HUB, PartnerState.PENDING, hash_token(token_b), token, now)
        _apply(pending, discovery)
        session.add(pending)
        await session.commit()
        partner_id = pending.id
    try:
        answer = await client.call(
            "POST",
            credentials_url,
            token=token,
            send_base64=True,
            body=our_credentials(settings, token_b),
        )
        try:
            theirs = msgspec.convert(answer, Credentials)
        except msgspec.ValidationError as exc:
            raise RegistrationError("POST credentials", f"the answer is not valid Credentials: {exc}") from None
        roles = _roles(theirs)
    except PartnerCallError as exc:
        await _forget(sessions, partner_id)
        raise RegistrationError("POST credentials", str(exc)) from None
    except RegistrationError:
        await _forget(sessions, partner_id)
        raise
    async with sessions() as session:
        done = await partners.by_id(session, partner_id)
        assert done is not None
        done.token = theirs.token
        done.versions_url = theirs.url
        done.roles = roles
        done.state = PartnerState.REGISTERED
        done.updated_at = now
        await outbox.enqueue_full_push(session, done)
        await session.commit()
        return done


def _new_partner(initiator: Initiator, state: PartnerState, token_hash: str, token: str, now: datetime) -> Partner:
    return Partner(
        state=state,
        initiator=initiator,
        token_hash=token_hash,
        token=token,
        send_base64=True,
        roles=[],
        endpoints=[],
        created_at=now,
        updated_at=now,
    )


async def _ensure_unused(session: AsyncSession, token: str) -> None:
    if await partners.by_presented_token(session, [token]) is not None:
        raise TokenInUseError("this token is already registered for a partner")


async def _forget(sessions: async_sessionmaker[AsyncSession], partner_id: int) -> None:
    """Undo a failed handshake of ours: token B must not keep working."""
    async with sessions() as session:
        partner = await partners.by_id(session, partner_id)
        if partner is not None:
            await session.delete(partner)
            await session.commit()
