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

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import errors
from ocpi_hub.client import OcpiClient, PartnerCallError
from ocpi_hub.credentials_token import issue_token
from ocpi_hub.db import partners
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.ocpi.common import BusinessDetails, Role, StatusCode
from ocpi_hub.ocpi.credentials import Credentials, CredentialsRole
from ocpi_hub.ocpi.versions import SUPPORTED, Endpoint, ModuleID, Version, VersionDetails
from ocpi_hub.push import outbox
from ocpi_hub.secret_key import PLAIN, Keyring, keyring_of
from ocpi_hub.settings import Settings
from ocpi_hub.urlcheck import UnsafeUrlError, check_partner_url


def _failed(
    step: str, message: str, *, status_code: StatusCode = StatusCode.UNABLE_TO_USE_CLIENT_API
) -> errors.HubError:
    """The handshake failed at `step`: the partner did not do its part (3001, 3002, 3003: a /api/v0 502), or what
    it sent breaks a rule (2001: invalid)."""
    if status_code == StatusCode.INVALID_PARAMETERS:
        return errors.Invalid(f"{step}: {message}")
    return errors.PartnerFailed(f"registration failed at {step}: {message}", ocpi_status=status_code)


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
    allow_private: bool,
) -> Discovery:
    """GET the partner's versions and the details of `version` (or the highest we share) with `token`."""
    try:
        versions = await client.fetch(versions_url, list[Version], token=token, send_base64=send_base64)
    except PartnerCallError as exc:
        raise _failed("GET versions", str(exc)) from None
    offered = {v.version: v.url for v in versions}
    wanted = [version] if version else list(SUPPORTED)
    chosen = next((v for v in wanted if v in offered), None)
    if chosen is None:
        raise _failed(
            "GET versions",
            f"no common version: the partner offers {sorted(offered) or 'none'}, we need {' or '.join(wanted)}",
            status_code=StatusCode.UNSUPPORTED_VERSION,
        )
    details_url = offered[chosen]
    await _check(details_url, allow_private)
    try:
        details = await client.fetch(details_url, VersionDetails, token=token, send_base64=send_base64)
    except PartnerCallError as exc:
        raise _failed("GET version details", str(exc)) from None
    for endpoint in details.endpoints:
        await _check(endpoint.url, allow_private)
    if not any(e.identifier == ModuleID.CREDENTIALS for e in details.endpoints):
        raise _failed(
            "GET version details",
            f"version {chosen} lists no credentials endpoint",
            status_code=StatusCode.NO_MATCHING_ENDPOINTS,
        )
    return Discovery(versions_url=versions_url, version=chosen, endpoints=details.endpoints)


async def _check(
    url: str, allow_private: bool, *, status_code: StatusCode = StatusCode.UNABLE_TO_USE_CLIENT_API
) -> None:
    try:
        await check_partner_url(url, allow_private=allow_private)
    except UnsafeUrlError as exc:
        raise _failed("check partner URL", str(exc), status_code=status_code) from None


def _apply(partner: Partner, discovery: Discovery) -> None:
    partner.versions_url = discovery.versions_url
    partner.version = discovery.version
    partner.endpoints = list(discovery.endpoints)


def _receiving(partner: Partner) -> tuple[str, str | None, str | None]:
    """What decides whether the partner must be sent every Location (again)."""
    return partner.state, partner.endpoint("locations", "RECEIVER"), partner.version


def _roles(credentials: Credentials, *, step: str, status_code: StatusCode) -> list[CredentialsRole]:
    """The roles, upper-cased; a repeated role fails `step`: invalid in a request to us, a partner's failure in
    its answer to ours."""
    seen = set()
    for role in credentials.roles:
        key = (role.role, role.country_code.upper(), role.party_id.upper())
        if key in seen:
            raise _failed(
                step,
                f"roles: ({key[0]}, {key[1]}, {key[2]}) appears twice; each role must be unique",
                status_code=status_code,
            )
        seen.add(key)
    return [
        msgspec.structs.replace(r, country_code=r.country_code.upper(), party_id=r.party_id.upper())
        for r in credentials.roles
    ]


# --- The partner registers with us (they hold our token A) -------------------------------------------------


async def accept(
    sessions: async_sessionmaker[AsyncSession],
    client: OcpiClient,
    settings: Settings,
    partner_id: int,
    credentials: Credentials,
    *,
    presented_token: str,
    version: str,
    now: datetime,
) -> Credentials:
    """Handle a credentials POST (registration) or PUT (update) of the partner `partner_id`, authenticated with
    `presented_token`: fetch their endpoints with their token, with no transaction open, then replace our token for
    them in one short transaction. The old token keeps working until this commits; if the partner's state or token
    changed meanwhile (a DELETE, a suspension, another POST or PUT), nothing changes."""
    roles = _roles(credentials, step="read credentials", status_code=StatusCode.INVALID_PARAMETERS)
    keyring = keyring_of(settings)
    async with sessions() as session:
        before = await partners.by_id(session, partner_id)
    # Checked again here: the caller was authenticated a moment ago, from a read that may be older than this one.
    if (
        before is None
        or before.state not in (PartnerState.PENDING, PartnerState.REGISTERED)
        or not keyring.matches(presented_token, before.token_hash)
    ):
        raise _changed(before)
    # The URL in the body is a parameter of the request (2001); URLs in their version details are their API (3001).
    await _check(credentials.url, settings.allow_private_partner_urls, status_code=StatusCode.INVALID_PARAMETERS)
    discovery = await discover(
        client,
        credentials.url,
        token=credentials.token,
        send_base64=before.send_base64,
        version=version,
        allow_private=settings.allow_private_partner_urls,
    )
    token_c = issue_token()
    async with sessions() as session:
        partner = await partners.by_id(session, partner_id, for_update=True)
        if partner is None or (partner.state, partner.token_hash) != (before.state, before.token_hash):
            raise _changed(partner)
        receiving = _receiving(partner)
        _apply(partner, discovery)
        partner.roles = roles
        partners.set_outbound_token(partner, credentials.token, keyring)
        partner.token_hash = keyring.token_hash(token_c)
        partner.state = PartnerState.REGISTERED
        partner.updated_at = now
        if _receiving(partner) != receiving:  # newly registered, or pushes now go elsewhere or in another version
            await outbox.queue_everything(session, partner, now=now)
        await session.commit()
        await partners.scrub(session)  # the replaced tokens
    return our_credentials(settings, token_c)


def _changed(partner: Partner | None) -> errors.Conflict:
    state = partner.state if partner is not None else "removed"
    return errors.Conflict(
        f"your registration changed while we called you back (it is now {state}): nothing was changed"
    )


async def unregister(sessions: async_sessionmaker[AsyncSession], partner_id: int, *, now: datetime) -> None:
    """Credentials DELETE: both tokens become invalid; the partner stays listed as unregistered."""
    async with sessions() as session:
        partner = await partners.by_id(session, partner_id)
        assert partner is not None
        partner.state = PartnerState.UNREGISTERED
        partner.token_hash = None
        partner.token = None
        partner.updated_at = now
        await session.commit()
        await partners.scrub(session)


# --- The operator registers a partner (POST /api/v0/register) ----------------------------------------------


async def add_pending(
    session: AsyncSession, token_a: str, *, registered: bool, now: datetime, keyring: Keyring = PLAIN
) -> Partner:
    """A token handed to a partner out of band: token A (PENDING), or a token agreed for everything (REGISTERED)."""
    await _ensure_unused(session, token_a, keyring)
    partner = Partner(
        state=PartnerState.REGISTERED if registered else PartnerState.PENDING,
        initiator=Initiator.PARTNER,
        token_hash=keyring.token_hash(token_a),
        token=None,
        send_base64=True,
        roles=[],
        endpoints=[],
        created_at=now,
        updated_at=now,
    )
    session.add(partner)
    await session.flush()  # its id; committed by the caller
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
    keyring = keyring_of(settings)
    async with sessions() as session:
        if already_registered:  # only then is their token also the one they present to us
            await _ensure_unused(session, token, keyring)
        if await partners.by_versions_url(session, versions_url, state=PartnerState.REGISTERED):
            raise errors.Conflict(f"a registered partner already has the versions URL {versions_url}")
    # Their versions URL was given by the operator; what the partner answers is checked like any partner URL.
    discovery = await discover(client, versions_url, token=token, allow_private=settings.allow_private_partner_urls)
    credentials_url = next(e.url for e in discovery.endpoints if e.identifier == ModuleID.CREDENTIALS)

    if already_registered:
        try:
            theirs = await client.fetch(credentials_url, Credentials, token=token, send_base64=True)
        except PartnerCallError as exc:
            raise _failed("GET credentials", str(exc)) from None
        async with sessions() as session:
            partner = _new_partner(Initiator.HUB, PartnerState.REGISTERED, keyring.token_hash(token), now)
            _apply(partner, discovery)
            partner.roles = _roles(theirs, step="GET credentials", status_code=StatusCode.UNABLE_TO_USE_CLIENT_API)
            session.add(partner)
            await session.flush()  # its id, for its deliveries and its sealed token
            partners.set_outbound_token(partner, token, keyring)
            await outbox.queue_everything(session, partner, now=now)
            await session.commit()
            return partner

    token_b = issue_token()
    async with sessions() as session:
        # Committed before the POST: the partner GETs our versions with token B before it answers.
        pending = _new_partner(Initiator.HUB, PartnerState.PENDING, keyring.token_hash(token_b), now)
        _apply(pending, discovery)
        session.add(pending)
        await session.flush()  # its id, for its sealed token
        partners.set_outbound_token(pending, token, keyring)
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
            raise _failed("POST credentials", f"the answer is not valid Credentials: {exc}") from None
        roles = _roles(theirs, step="POST credentials", status_code=StatusCode.UNABLE_TO_USE_CLIENT_API)
    except PartnerCallError as exc:
        await _forget(sessions, partner_id)
        raise _failed("POST credentials", str(exc)) from None
    except errors.HubError:
        await _forget(sessions, partner_id)
        raise
    async with sessions() as session:
        done = await partners.by_id(session, partner_id)
        assert done is not None
        partners.set_outbound_token(done, theirs.token, keyring)
        done.versions_url = theirs.url
        done.roles = roles
        done.state = PartnerState.REGISTERED
        done.updated_at = now
        await outbox.queue_everything(session, done, now=now)
        await session.commit()
        await partners.scrub(session)  # their token A
        return done


def _new_partner(initiator: Initiator, state: PartnerState, token_hash: str, now: datetime) -> Partner:
    """Without the token we present to them: it is sealed to the row's id, known once the row is flushed."""
    return Partner(
        state=state,
        initiator=initiator,
        token_hash=token_hash,
        token=None,
        send_base64=True,
        roles=[],
        endpoints=[],
        created_at=now,
        updated_at=now,
    )


async def _ensure_unused(session: AsyncSession, token: str, keyring: Keyring) -> None:
    if await partners.by_presented_token(session, [token], keyring) is not None:
        raise errors.Conflict("this token is already registered for a partner")


async def _forget(sessions: async_sessionmaker[AsyncSession], partner_id: int) -> None:
    """Undo a failed handshake of ours: token B must not keep working."""
    async with sessions() as session:
        partner = await partners.by_id(session, partner_id)
        if partner is not None:
            await session.delete(partner)
            await session.commit()
            await partners.scrub(session)
