"""registerParty (`POST /register`) and the partner list and state operations that go with it; each partner is
shown with how its pushes are going (docs/operations.md §3)."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from msgspec import Meta

from ocpi_hub import errors, registration
from ocpi_hub.api import deps
from ocpi_hub.db import health, partners
from ocpi_hub.db.partners import Partner, PartnerState
from ocpi_hub.errors import seed_errors
from ocpi_hub.ocpi.common import CredentialsToken
from ocpi_hub.ocpi.credentials import CredentialsRole
from ocpi_hub.ocpi.versions import Endpoint
from ocpi_hub.secret_key import keyring_of

log = logging.getLogger(__name__)


class RegistrationStatus(StrEnum):
    PENDING = "PENDING"
    REGISTERED = "REGISTERED"


class Registration(msgspec.Struct, forbid_unknown_fields=False):
    """The seed's Registration body."""

    token: CredentialsToken
    url: Annotated[str, Meta(max_length=255, pattern=r"^https?://\S+$")] | None = None
    status: RegistrationStatus = RegistrationStatus.PENDING


class PartnerError(msgspec.Struct):
    """The last failed push, with what the partner answered (docs/operations.md §3)."""

    at: datetime
    module: str
    error: str  # which call, and the answer in words
    http_status: int | None  # None: no answer came (connection refused, timeout)
    ocpi_status: int | None
    ocpi_message: str | None  # the partner's status_message, trimmed


class ModuleHealth(msgspec.Struct):
    """How the pushes of one module to the partner are going."""

    module: str
    health: str  # ok, failing, dead letters
    failing_since: datetime | None
    backlog: int  # deliveries waiting
    oldest_waiting_seconds: float | None  # age of the oldest waiting delivery
    dead: int  # deliveries given up on
    last_success_at: datetime | None
    last_error: PartnerError | None


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
    # How its pushes are going (docs/operations.md §3): the worst of its modules, and each module.
    health: str = "ok"  # ok, failing (the last attempts failed), dead letters (some deliveries were given up)
    backlog: int = 0
    oldest_waiting_seconds: float | None = None
    last_success_at: datetime | None = None
    last_error: PartnerError | None = None
    modules: list[ModuleHealth] = msgspec.field(default_factory=list)


class PartnerSettings(msgspec.Struct):
    send_base64: bool


def _view(p: Partner, modules: list[ModuleHealth] | None = None) -> PartnerView:
    modules = modules or []
    errors_ = [m.last_error for m in modules if m.last_error is not None]
    successes = [m.last_success_at for m in modules if m.last_success_at is not None]
    ages = [m.oldest_waiting_seconds for m in modules if m.oldest_waiting_seconds is not None]
    worst = next((h for h in ("failing", "dead letters") if any(m.health == h for m in modules)), "ok")
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
        health=worst,
        backlog=sum(m.backlog for m in modules),
        oldest_waiting_seconds=max(ages, default=None),
        last_success_at=max(successes, default=None),
        last_error=max(errors_, key=lambda e: e.at, default=None),
        modules=modules,
    )


async def _health(db: deps.Db, partner_ids: list[int], now: datetime) -> dict[int, list[ModuleHealth]]:
    """Each partner's modules as the deliveries table and the health table have them."""
    queues = {(q.partner_id, q.module): q for q in await health.queues(db, partner_ids)}
    rows = {(h.partner_id, h.module): h for h in await health.of_partners(db, partner_ids)}
    found: dict[int, list[ModuleHealth]] = {}
    for key in sorted({*queues, *rows}):
        q, h = queues.get(key), rows.get(key)
        failing = h is not None and h.failing_since is not None
        last_error = None
        if h is not None and h.last_error_at is not None:
            last_error = PartnerError(
                at=h.last_error_at,
                module=h.module,
                error=h.last_error or "",
                http_status=h.last_http_status,
                ocpi_status=h.last_ocpi_status,
                ocpi_message=h.last_ocpi_message,
            )
        oldest = q.oldest_waiting_since if q is not None else None
        found.setdefault(key[0], []).append(
            ModuleHealth(
                module=key[1],
                health="failing" if failing else "dead letters" if q is not None and q.dead else "ok",
                failing_since=h.failing_since if h is not None else None,
                backlog=q.waiting if q is not None else 0,
                oldest_waiting_seconds=None if oldest is None else max((now - oldest).total_seconds(), 0.0),
                dead=q.dead if q is not None else 0,
                last_success_at=h.last_success_at if h is not None else None,
                last_error=last_error,
            )
        )
    return found


async def partner_views(db: deps.Db, now: datetime) -> list[PartnerView]:
    """Every partner as listPartners shows it (the status page shows the same, docs/operations.md §5)."""
    found = await partners.all_partners(db)
    modules = await _health(db, [p.id for p in found], now)
    return [_view(p, modules.get(p.id)) for p in found]


class PartnersController(Controller):
    path = "/"

    @post("/register", status_code=201, operation_id="registerParty", responses=seed_errors(409, 502))
    async def register(
        self,
        data: JSONBody[Registration],
        db: deps.Db,
        sessions: deps.Sessions,
        config: deps.Config,
        client: deps.Client,
        now: deps.Clock,
    ) -> PartnerView:
        """Registers an OCPI party: a token A to hand out (PENDING), a token agreed for everything (REGISTERED),
        or, with `url`, the credentials handshake with the partner's versions endpoint started by us."""
        registered = data.status == RegistrationStatus.REGISTERED
        if data.url is None:
            partner = await registration.add_pending(
                db, data.token, registered=registered, now=now(), keyring=keyring_of(config)
            )
            log.info("partner %s added (%s, token handed out of band)", partner.id, partner.state)
            return _view(partner)
        try:
            partner = await registration.register_with(
                sessions,
                client,
                config,
                versions_url=data.url,
                token=data.token,
                already_registered=registered,
                now=now(),
            )
        except errors.HubError as exc:
            log.info("registration with %s refused: %s", data.url, exc.message)  # docs/operations.md §1.3
            raise
        log.info("registered with %s as partner %s (%s)", data.url, partner.id, partner.version)
        return _view(partner)

    @get("/partners", operation_id="listPartners")
    async def list_partners(self, db: deps.Db, now: deps.Clock) -> list[PartnerView]:
        """Every partner with its state, roles, version and endpoints (never a token), and how its pushes go."""
        return await partner_views(db, now())

    @get("/partners/{partner_id:int}", operation_id="getPartner", responses=seed_errors(404))
    async def get_partner(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> PartnerView:
        """One partner as the list shows it."""
        partner = await _get(db, partner_id)
        return _view(partner, (await _health(db, [partner_id], now())).get(partner_id))

    @delete("/partners/{partner_id:int}", operation_id="deletePartner", responses=seed_errors(404, 409))
    async def delete_partner(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> None:
        """A pending partner is removed (its unused token A stops working); a registered or suspended one is
        unregistered: its token stops working and its deliveries are dropped. 409 when already unregistered."""
        partner = await _get(db, partner_id, for_update=True)
        if partner.state == PartnerState.PENDING:
            await db.delete(partner)
        elif partner.state == PartnerState.UNREGISTERED:
            raise errors.Conflict(f"partner {partner_id} is already unregistered")
        else:
            partner.state = PartnerState.UNREGISTERED
            partner.token_hash = None
            partner.token = None
            partner.updated_at = now()
            await health.drop_deliveries(db, partner_id)
        await db.commit()
        await partners.scrub(db)  # the revoked tokens (docs/operations.md §9.6)

    @post(
        "/partners/{partner_id:int}/suspend",
        status_code=200,
        operation_id="suspendPartner",
        responses=seed_errors(404, 409),
    )
    async def suspend(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> PartnerView:
        """Stop accepting the partner's token, keeping its registration so that it can be resumed."""
        return _view(await _set_state(db, partner_id, PartnerState.SUSPENDED, now()))

    @post(
        "/partners/{partner_id:int}/resume",
        status_code=200,
        operation_id="resumePartner",
        responses=seed_errors(404, 409),
    )
    async def resume(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> PartnerView:
        """Accept a suspended partner's token again."""
        return _view(await _set_state(db, partner_id, PartnerState.REGISTERED, now()))

    @post(
        "/partners/{partner_id:int}/settings",
        status_code=200,
        operation_id="configurePartner",
        responses=seed_errors(404),
    )
    async def configure(
        self, partner_id: FromPath[int], data: JSONBody[PartnerSettings], db: deps.Db, now: deps.Clock
    ) -> PartnerView:
        """Per-partner settings: `send_base64` false sends our token raw, for 2.1.1/2.2 peers that need it."""
        partner = await _get(db, partner_id)
        partner.send_base64 = data.send_base64
        partner.updated_at = now()
        return _view(partner)


async def _get(db: deps.Db, partner_id: int, *, for_update: bool = False) -> Partner:
    partner = await partners.by_id(db, partner_id, for_update=for_update)
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
