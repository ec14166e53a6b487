"""What a change of the Locations store means for each eMSP (issue 4 §1, §2): rows of the deliveries table, written
in the transaction of the change, so that a crash between the change and its delivery loses nothing.

Per change, the smallest push that carries it (OCPI 2.2.1 §8.3, Receiver interface):

    new Location                       PUT Location
    Location fields changed            PATCH Location {those fields, last_updated}
    new EVSE, EVSE changed otherwise   PUT EVSE
    EVSE status alone changed          PATCH EVSE {status, last_updated}   (REMOVED included)
    Connector changed                  PUT Connector

Every partner that is registered (or suspended: its pushes wait for it to resume) and has a locations RECEIVER
endpoint gets every change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import locations as store
from ocpi_hub.db import deliveries, partners
from ocpi_hub.db.deliveries import Method
from ocpi_hub.db.partners import Partner, PartnerState
from ocpi_hub.ocpi import locations as ocpi

# session.info key of the in-process worker's wake() (set on the app's session factory): a session that queued
# deliveries calls it after its commit, so that a status change leaves within milliseconds, not at the next poll.
WAKE = "ocpi_hub.push.wake"
_QUEUED = "ocpi_hub.push.queued"
_LISTENING = "ocpi_hub.push.listening"

_RECEIVING = (PartnerState.REGISTERED, PartnerState.SUSPENDED)


def clock() -> datetime:
    """The outbox's time: with fractions (unlike the OCPI timestamps'), so that what is due now is sent now."""
    return datetime.now(UTC)


def receives_locations(partner: Partner) -> bool:
    return partner.endpoint("locations", "RECEIVER") is not None


def object_type(evse_uid: str, connector_id: str) -> type[msgspec.Struct]:
    """The OCPI class a delivery's object key names ("" where a level is absent)."""
    if connector_id:
        return ocpi.Connector
    return ocpi.EVSE if evse_uid else ocpi.Location


# PATCH field sets are bitmasks over the fields of the object's class, in the class's (the spec's) order, so that
# merging two PATCHes of one object is a bitwise OR inside the database. New fields go last.
def fields_mask(kind: type[msgspec.Struct], names: Sequence[str]) -> int:
    order = kind.__struct_fields__
    return sum(1 << order.index(name) for name in set(names))


def field_names(kind: type[msgspec.Struct], mask: int) -> tuple[str, ...]:
    return tuple(name for i, name in enumerate(kind.__struct_fields__) if mask >> i & 1)


def _push(change: store.Change) -> tuple[str, str, Method, int]:
    """(evse_uid, connector_id, method, fields) of the push that carries `change`."""
    evse_uid, connector_id = change.evse_uid or "", change.connector_id or ""
    match change.kind:
        case store.ChangeKind.LOCATION_UPDATED | store.ChangeKind.EVSE_STATUS:
            return evse_uid, connector_id, Method.PATCH, fields_mask(object_type(evse_uid, connector_id), change.fields)
        case (
            store.ChangeKind.LOCATION_CREATED
            | store.ChangeKind.EVSE_CREATED
            | store.ChangeKind.EVSE_UPDATED
            | store.ChangeKind.CONNECTOR_UPDATED
        ):
            return evse_uid, connector_id, Method.PUT, 0
    raise AssertionError(f"unhandled change kind {change.kind}")


async def enqueue(session: AsyncSession, changes: Sequence[store.Change], *, now: datetime | None = None) -> None:
    """Queue the pushes of `changes` for every receiving partner, inside the caller's transaction (before its
    commit, which this does not do)."""
    if not changes:
        return
    receivers = [p.id for p in await partners.all_partners(session) if p.state in _RECEIVING and receives_locations(p)]
    if not receivers:
        return
    pending = [
        deliveries.Pending(partner_id, change.location_id.upper(), *_push(change))
        for change in changes
        for partner_id in receivers
    ]
    await deliveries.add(session, pending, now=now or clock())
    _wake_after_commit(session)


async def enqueue_full_push(session: AsyncSession, partner: Partner, *, now: datetime | None = None) -> int:
    """Queue a PUT of every Location for `partner` (registration, resync), inside the caller's transaction.
    Returns how many were queued; none when the partner has no locations RECEIVER endpoint."""
    if not receives_locations(partner):
        return 0
    queued = await deliveries.add_every_location(session, partner.id, now=now or clock())
    _wake_after_commit(session)
    return queued


async def revive(
    session: AsyncSession, partner_id: int, *, delivery_id: int | None = None, now: datetime | None = None
) -> int:
    """Dead deliveries of the partner (all, or one) pending again and due now; returns how many."""
    revived = await deliveries.revive(session, partner_id, delivery_id=delivery_id, now=now or clock())
    if revived:
        _wake_after_commit(session)
    return revived


def _wake_after_commit(session: AsyncSession) -> None:
    wake: Callable[[], None] | None = session.info.get(WAKE)
    if wake is None:  # no worker in this process: it polls the table
        return
    session.info[_QUEUED] = True
    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True

        def after_commit(sync_session: Any) -> None:
            if sync_session.info.pop(_QUEUED, False):
                wake()

        event.listen(session.sync_session, "after_commit", after_commit)
