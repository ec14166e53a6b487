"""A partner's pushes (the outbox, every module): what waits, what was given up (dead letters) and why, what arrived
lately (docs/operations.md §7.1), retrying the dead letters, and a resync (a PUT of every object of every module the
partner receives)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, QueryParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.changes import Method
from ocpi_hub.db import deliveries, partners, traffic
from ocpi_hub.db.deliveries import DeliveryState, Listed
from ocpi_hub.db.partners import Partner
from ocpi_hub.db.traffic import SentListed
from ocpi_hub.errors import seed_errors
from ocpi_hub.ocpi.versions import ModuleID
from ocpi_hub.push import outbox
from ocpi_hub.push.modules import BROADCAST

Offset = Annotated[int, QueryParameter(ge=0)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
# `state` is a name Litestar reserves for the app state, so the parameter has another name in Python and is read
# as a string: Litestar's own error would name the Python name.
StateParam = Annotated[
    str,
    QueryParameter(name="state", description="pending (waiting or retrying), dead (given up) or sent (arrived lately)"),
]
SENT = "sent"  # not a state of the outbox: what arrived is kept elsewhere, for OCPI_HUB_SENT_RETENTION
STATES = (*DeliveryState, SENT)


class DeliveryView(msgspec.Struct, omit_defaults=True):
    id: int  # the delivery order
    module: str  # locations, tariffs, ...
    country_code: str
    party_id: str
    object_id: str
    method: str  # PUT, PATCH, POST or DELETE
    state: str
    attempts: int
    first_enqueued_at: datetime
    revision: int  # changes of the object merged into this delivery
    next_attempt_at: datetime | None = None  # pending and dead
    evse_uid: str | None = None
    connector_id: str | None = None
    location_id: str | None = None  # Locations: the object_id, under the name it had before other modules
    fields: list[str] | None = None  # PATCH: the fields sent (with last_updated)
    last_error: str | None = None
    sent_at: datetime | None = None  # sent: when it arrived
    http_status: int | None = None  # sent: the partner's answer to its last call (absent: nothing had to be sent)
    ocpi_status: int | None = None
    request_id: str | None = None  # sent: the X-Request-ID of that call, as in the traffic log


class DeliveryList(msgspec.Struct):
    total: int
    deliveries: list[DeliveryView]


class Count(msgspec.Struct):
    count: int


def _what(d: Listed | SentListed) -> dict[str, Any]:
    """The object and the call of a delivery, waiting or sent, as the view names them."""
    return {
        "module": d.module,
        "country_code": d.key.country_code,
        "party_id": d.key.party_id,
        "object_id": d.key.id,
        "location_id": d.key.id if d.module == ModuleID.LOCATIONS else None,
        "evse_uid": d.key.evse_uid or None,
        "connector_id": d.key.connector_id or None,
        "method": d.method,
        "fields": list(d.fields) if d.method == Method.PATCH else None,
    }


def _view(d: Listed) -> DeliveryView:
    return DeliveryView(
        id=d.id,
        **_what(d),
        state=d.state,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        first_enqueued_at=d.first_enqueued_at,
        last_error=d.last_error,
        revision=d.revision,
    )


def _sent_view(d: SentListed) -> DeliveryView:
    return DeliveryView(
        id=d.delivery_id,
        **_what(d),
        state=SENT,
        attempts=d.attempts,
        first_enqueued_at=d.first_enqueued_at,
        revision=d.revision,
        sent_at=d.sent_at,
        http_status=d.http_status,
        ocpi_status=d.ocpi_status,
        request_id=d.request_id,
    )


async def _partner(db: deps.Db, partner_id: int) -> Partner:
    partner = await partners.by_id(db, partner_id)
    if partner is None:
        raise errors.NotFound(f"no partner with id {partner_id}")
    return partner


class DeliveriesController(Controller):
    path = "/partners/{partner_id:int}"

    @get("/deliveries", operation_id="listDeliveries", responses=seed_errors(400, 404))
    async def list_deliveries(
        self,
        partner_id: FromPath[int],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
        wanted: StateParam = DeliveryState.PENDING,
        offset: Offset = 0,
        limit: Limit = 100,
    ) -> DeliveryList:
        """The partner's deliveries in `state`: pending and dead ones in delivery order, with attempts, schedule
        and last error; sent ones (kept OCPI_HUB_SENT_RETENTION seconds) newest first, with the partner's answer."""
        if wanted not in STATES:
            raise errors.Invalid(f"state: {wanted!r} is not one of {', '.join(STATES)}")
        await _partner(db, partner_id)
        if wanted == SENT:
            since = now() - timedelta(seconds=config.sent_retention)
            total, sent = await traffic.sent_page(db, partner_id, since=since, offset=offset, limit=limit)
            return DeliveryList(total=total, deliveries=[_sent_view(d) for d in sent])
        total, listed = await deliveries.page(db, partner_id, state=DeliveryState(wanted), offset=offset, limit=limit)
        return DeliveryList(total=total, deliveries=[_view(d) for d in listed])

    @post("/deliveries/retry", status_code=200, operation_id="retryDeadDeliveries", responses=seed_errors(404))
    async def retry_all(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> Count:
        """Every dead delivery of the partner pending again (a PATCH as a PUT of its object): due now, attempts
        from zero."""
        await _partner(db, partner_id)
        return Count(await outbox.revive(db, partner_id, now=now()))

    @post(
        "/deliveries/{delivery_id:int}/retry",
        status_code=200,
        operation_id="retryDeadDelivery",
        responses=seed_errors(404),
    )
    async def retry_one(
        self, partner_id: FromPath[int], delivery_id: FromPath[int], db: deps.Db, now: deps.Clock
    ) -> Count:
        """One dead delivery pending again (a PATCH as a PUT of its object); 404 unless it is a dead delivery of
        this partner."""
        await _partner(db, partner_id)
        revived = await outbox.revive(db, partner_id, delivery_id=delivery_id, now=now())
        if revived == 0:
            raise errors.NotFound(f"partner {partner_id} has no dead delivery {delivery_id}")
        return Count(revived)

    @post("/resync", status_code=200, operation_id="resyncPartner", responses=seed_errors(404, 409))
    async def resync(self, partner_id: FromPath[int], db: deps.Db, now: deps.Clock) -> Count:
        """Queue a PUT of every object of every module the partner receives (Tariffs before Locations); 409 when
        it receives none."""
        partner = await _partner(db, partner_id)
        if partner.state not in outbox.RECEIVING:
            raise errors.Conflict(f"partner {partner_id} is {partner.state}")
        if not any(outbox.receives(partner, p.module) for p in BROADCAST):
            raise errors.Conflict(f"partner {partner_id} has no locations or tariffs RECEIVER endpoint")
        return Count(await outbox.queue_everything(db, partner, now=now()))
