"""registerParty (`POST /register`) and the partner list and state operations that go with it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody
from msgspec import Meta

from ocpi_hub import errors, registration
from ocpi_hub.api import deps
from ocpi_hub.db import partners
from ocpi_hub.db.partners import Partner, PartnerState
from ocpi_hub.ocpi.common import CredentialsToken
from ocpi_hub.ocpi.credentials import CredentialsRole
from ocpi_hub.ocpi.versions import Endpoint


class RegistrationStatus(StrEnum):
    PENDING = "PENDING"
    REGISTERED = "REGISTERED"


class Registration(msgspec.Struct, forbid_unknown_fields=False):
    """The seed's Registration body."""

    token: CredentialsToken
    url: Annotated[str, Meta(max_length=255, pattern=r"^https?://\S+$")] | None = None
    status: RegistrationStatus = RegistrationStatus.PENDING


class PartnerView(msgspec.Struct):
    """What an operator sees of a partner: never a token."""

    id: int
    state: str
    initiator: str
    version: str | None
    versions_url: str | None
    roles: list[CredentialsRole]
    endpoints: list[Endpoint]
    send_base64: bool
    created_at: datetime
    updated_at: datetime


class PartnerSettings(msgspec.Struct):
    send_base64: bool


def _view(p: Partner) -> PartnerView:
    return PartnerView(
        id=p.id,
        state=p.state,
        initiator=p.initiator,
        version=p.version,
        versions_url=p.versions_url,
        roles=p.roles,
        endpoints=p.endpoints,
        send_base64=p.send_base64,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


class PartnersController(Controller):
    path = "/"

    @post("/register", status_code=201, summary="registerParty")
    async def register(
        self,
        data: JSONBody[Registration],
        db: deps.Db,
        sessions: deps.Sessions,
        settings: deps.Config,
        client: deps.Client,
        now: deps.Clock,
    ) -> PartnerView:
        """Registers an OCPI party: a token A to hand out (PENDING), a token agreed for everything (REGISTERED),
        or, with `url`, the credentials handshake with the partner's versions endpoint started by us."""
        registered = data.status == RegistrationStatus.REGISTERED
        if data.url is None:
            return _view(await registration.add_pending(db, data.token, registered=registered, now=now()))
        partner = await registration.register_with(
            sessions,
            client,
            settings,
            versions_url=data.url,
            token=data.token,
            already_registered=registered,
            now=now(),
        )
        return _view(partner)

    @get("/partners", summary="listPartners")
    async def list_partners(self, db: deps.Db) -> list[PartnerView]:
        """Every partner with its state, roles, version and endpoints (never a token)."""
        return [_view(p) for p in await partners.all_partners(db)]

    @post("/partners/{partner_id:int}/suspend", status_code=200, summary="suspendPartner")
    async def suspend(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> PartnerView:
        """Stop accepting the partner's token, keeping its registration so that it can be resumed."""
        return _view(await _set_state(db, partner_id, PartnerState.SUSPENDED, now()))

    @post("/partners/{partner_id:int}/resume", status_code=200, summary="resumePartner")
    async def resume(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> PartnerView:
        """Accept a suspended partner's token again."""
        return _view(await _set_state(db, partner_id, PartnerState.REGISTERED, now()))

    @post("/partners/{partner_id:int}/settings", status_code=200, summary="configurePartner")
    async def configure(
        self, partner_id: FromPath[int], data: JSONBody[PartnerSettings], db: deps.Db, now: deps.Clock
    ) -> PartnerView:
        """Per-partner settings: `send_base64` false sends our token raw, for 2.1.1/2.2 peers that need it."""
        partner = await _get(db, partner_id)
        partner.send_base64 = data.send_base64
        partner.updated_at = now()
        return _view(partner)


async def _get(db: deps.Db, partner_id: int) -> Partner:
    partner = await partners.by_id(db, partner_id)
    if partner is None:
        raise errors.NotFound(f"no partner with id {partner_id}")
    return partner


async def _set_state(db: deps.Db, partner_id: FromPath[int], state: PartnerState, now: datetime) -> Partner:
    partner = await _get(db, partner_id)
    expected = PartnerState.REGISTERED if state == PartnerState.SUSPENDED else PartnerState.SUSPENDED
    if partner.state != expected:
        raise errors.Conflict(f"partner {partner_id} is {partner.state}, not {expected}")
    partner.state = state
    partner.updated_at = now
    return partner
