"""A partner's Location pushes (issue 4 §3): what waits, what was given up (dead letters) and why, retrying those,
and a resync (a PUT of every Location)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, QueryParameter

from ocpi_hub.api import deps
from ocpi_hub.db import deliveries, partners
from ocpi_hub.db.deliveries import DeliveryState, Listed, Method
from ocpi_hub.db.partners import Partner, PartnerState
from ocpi_hub.errors import ApiError, seed_errors
from ocpi_hub.push import outbox

Offset = Annotated[int, QueryParameter(ge=0)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
# `state` is a name Litestar reserves for the app state, so the parameter has another name in Python and is read
# as a string: Litestar's own error would name the Python name.
StateParam = Annotated[
    str, QueryParameter(name="state", description="pending (waiting or retrying) or dead (given up)")
]


class DeliveryView(msgspec.Struct, omit_defaults=True):
    id: int  # the delivery order
    location_id: str
    method: str  # PUT or PATCH
    state: str
    attempts: int
    next_attempt_at: datetime
    first_enqueued_at: datetime
    revision: int  # changes of the object merged into this delivery
    evse_uid: str | None = None
    connector_id: str | None = None
    fields: list[str] | None = None  # PATCH: the fields sent (with last_updated)
    last_error: str | None = None


class DeliveryList(msgspec.Struct):
    total: int
    deliveries: list[DeliveryView]


class Count(msgspec.Struct):
    count: int


def _view(d: Listed) -> DeliveryView:
    kind = outbox.object_type(d.evse_uid, d.connector_id)
    return DeliveryView(
        id=d.id,
        location_id=d.location_id,
        evse_uid=d.evse_uid or None,
        connector_id=d.connector_id or None,
        method=d.method,
        fields=list(outbox.field_names(kind, d.fields)) if d.method == Method.PATCH else None,
        state=d.state,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        first_enqueued_at=d.first_enqueued_at,
        last_error=d.last_error,
        revision=d.revision,
    )


async def _partner(db: deps.Db, partner_id: int) -> Partner:
    partner = await partners.by_id(db, partner_id)
    if partner is None:
        raise ApiError(404, f"no partner with id {partner_id}")
    return partner


class DeliveriesController(Controller):
    path = "/partners/{partner_id:int}"

    @get("/deliveries", operation_id="listDeliveries", responses=seed_errors(400, 404))
    async def list_deliveries(
        self,
        partner_id: FromPath[int],
        db: deps.Db,
        wanted: StateParam = DeliveryState.PENDING,
        offset: Offset = 0,
        limit: Limit = 100,
    ) -> DeliveryList:
        """The partner's deliveries in `state`, in delivery order, with attempts, schedule and last error."""
        if wanted not in set(DeliveryState):
            raise ApiError(400, f"state: {wanted!r} is not one of {', '.join(DeliveryState)}")
        await _partner(db, partner_id)
        total, listed = await deliveries.page(db, partner_id, state=DeliveryState(wanted), offset=offset, limit=limit)
        return DeliveryList(total=total, deliveries=[_view(d) for d in listed])

    @post("/deliveries/retry", status_code=200, operation_id="retryDeadDeliveries", responses=seed_errors(404))
    async def retry_all(self, partner_id: FromPath[int], db: deps.Db) -> Count:
        """Every dead delivery of the partner pending again, as a PUT of its object: due now, attempts from zero."""
        await _partner(db, partner_id)
        return Count(await self._revive(db, partner_id, None))

    @post(
        "/deliveries/{delivery_id:int}/retry",
        status_code=200,
        operation_id="retryDeadDelivery",
        responses=seed_errors(404),
    )
    async def retry_one(self, partner_id: FromPath[int], delivery_id: FromPath[int], db: deps.Db) -> Count:
        """One dead delivery pending again, as a PUT of its object; 404 unless it is a dead delivery of this
        partner."""
        await _partner(db, partner_id)
        revived = await self._revive(db, partner_id, delivery_id)
        if revived == 0:
            raise ApiError(404, f"partner {partner_id} has no dead delivery {delivery_id}")
        return Count(revived)

    @post("/resync", status_code=200, operation_id="resyncPartner", responses=seed_errors(404, 409))
    async def resync(self, partner_id: FromPath[int], db: deps.Db) -> Count:
        """Queue a PUT of every Location for the partner; 409 when it cannot receive Locations."""
        partner = await _partner(db, partner_id)
        if partner.state not in (PartnerState.REGISTERED, PartnerState.SUSPENDED):
            raise ApiError(409, f"partner {partner_id} is {partner.state}")
        if not outbox.receives_locations(partner):
            raise ApiError(409, f"partner {partner_id} has no locations RECEIVER endpoint")
        queued = await outbox.enqueue_full_push(db, partner)
        await db.commit()
        return Count(queued)

    @staticmethod
    async def _revive(db: deps.Db, partner_id: int, delivery_id: int | None) -> int:
        revived = await outbox.revive(db, partner_id, delivery_id=delivery_id)
        await db.commit()
        return revived
