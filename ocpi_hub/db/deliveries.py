"""The push outbox: one row per (partner, object) change waiting to reach the partner's Locations Receiver.

A row names the object (location, EVSE uid, connector id; "" where absent) and what to send (PUT, or PATCH of the
fields in the `fields` bitmask), never the body: the body is read from the stored Location when it is sent, so that
the partner always gets the newest state. There is at most one pending row per (partner, object): a new change of
the same object updates that row in place (its `revision` goes up, its `id`, which is the delivery order, stays).
Dead rows (given up on) sit outside that rule, so a new change of the object starts a new pending row.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Insert,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import UPSERT_DIALECTS, Base, UtcDateTime, insert_on_conflict
from ocpi_hub.db.locations import LocationDocument, LocationRow
from ocpi_hub.ocpi.versions import VersionNumber


class Method(enum.StrEnum):
    PUT = "PUT"
    PATCH = "PATCH"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DEAD = "dead"  # given up on after the permanent failure or the last attempt; kept with its error


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the delivery order
    partner_id: Mapped[int] = mapped_column(Integer, ForeignKey("partners.id", ondelete="CASCADE"))
    location_seq: Mapped[int] = mapped_column(Integer, ForeignKey("locations.seq"))
    evse_uid: Mapped[str] = mapped_column(String(36))  # "" for a Location
    connector_id: Mapped[str] = mapped_column(String(36))  # "" for a Location or an EVSE
    method: Mapped[str] = mapped_column(String(5))
    fields: Mapped[int] = mapped_column(Integer)  # PATCH: bit i = field i of the object's struct; PUT: 0
    state: Mapped[str] = mapped_column(String(7))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_enqueued_at: Mapped[datetime] = mapped_column(UtcDateTime)  # of the oldest change merged into the row
    last_error: Mapped[str | None] = mapped_column(String(1000))
    revision: Mapped[int] = mapped_column(Integer)  # +1 on every change merged in: a send covers one revision


_t = cast(Table, Delivery.__table__)
_locations = cast(Table, LocationRow.__table__)
_documents = cast(Table, LocationDocument.__table__)
# A literal, not a parameter: it is also the predicate of the partial index, which ON CONFLICT must name as such.
_PENDING: ColumnElement[bool] = _t.c.state == literal_column(f"'{DeliveryState.PENDING}'")
_KEY = [_t.c.partner_id, _t.c.location_seq, _t.c.evse_uid, _t.c.connector_id]

# The coalescing rule needs this index: at most one pending row per (partner, object).
Index("uq_deliveries_pending", *_KEY, unique=True, sqlite_where=_PENDING, postgresql_where=_PENDING)
# A partner's queue in delivery order.
Index("ix_deliveries_queue", _t.c.partner_id, _t.c.state, _t.c.id)


@dataclass(frozen=True)
class Pending:
    """A change to deliver to one partner."""

    partner_id: int
    location_key: str  # the Location's id upper-cased (locations.key)
    evse_uid: str
    connector_id: str
    method: Method
    fields: int


def _coalescing(statement: Any) -> Insert:
    """… ON CONFLICT (pending row of the same object) merge into it: PATCH + PATCH is a PATCH of both field sets,
    anything with a PUT is a PUT. The row keeps its place, its attempts and its schedule."""
    new = statement.excluded
    both_patch = and_(_t.c.method == Method.PATCH, new.method == Method.PATCH)
    merged: Insert = statement.on_conflict_do_update(
        index_elements=_KEY,
        index_where=_PENDING,
        set_={
            "method": case((both_patch, Method.PATCH), else_=Method.PUT),
            "fields": case((both_patch, _t.c.fields.bitwise_or(new.fields)), else_=0),
            "revision": _t.c.revision + 1,
        },
    )
    return merged


# Built once per dialect: this runs with every change of the store. The Location is named by its key, its seq
# looked up in the same statement.
_ADD = {
    name: _coalescing(
        dialect.insert(_t).values(
            location_seq=select(_locations.c.seq).where(_locations.c.key == bindparam("location_key")).scalar_subquery()
        )
    )
    for name, dialect in UPSERT_DIALECTS.items()
}


async def add(session: AsyncSession, pending: Sequence[Pending], *, now: datetime) -> None:
    """Queue these changes, merged into the pending rows of the same objects; not committed."""
    if not pending:
        return
    rows = [
        {
            "partner_id": p.partner_id,
            "location_key": p.location_key,
            "evse_uid": p.evse_uid,
            "connector_id": p.connector_id,
            "method": p.method,
            "fields": p.fields,
            "state": DeliveryState.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "first_enqueued_at": now,
            "revision": 1,
        }
        for p in pending
    ]
    await session.execute(_ADD[session.get_bind().dialect.name], rows)


async def add_every_location(session: AsyncSession, partner_id: int, *, now: datetime) -> int:
    """Queue a PUT of every stored Location for the partner, in one INSERT … SELECT; not committed."""
    values = {
        "partner_id": literal(partner_id),
        "location_seq": _locations.c.seq,
        "evse_uid": literal(""),
        "connector_id": literal(""),
        "method": literal(Method.PUT.value),
        "fields": literal(0),
        "state": literal(DeliveryState.PENDING.value),
        "attempts": literal(0),
        "next_attempt_at": literal(now, UtcDateTime),
        "first_enqueued_at": literal(now, UtcDateTime),
        "revision": literal(1),
    }
    # SQLite needs a WHERE in INSERT … SELECT … ON CONFLICT, or its parser reads ON as a join constraint.
    every = select(*values.values()).where(true()).order_by(_locations.c.seq)
    return _rowcount(
        await session.execute(_coalescing(insert_on_conflict(session, _t).from_select(list(values), every)))
    )


@dataclass(frozen=True)
class Due:
    """A pending delivery with what sending it needs: the Location's owner and its JSON for the partner's version."""

    id: int
    revision: int
    method: Method
    fields: int
    attempts: int
    first_enqueued_at: datetime
    location_seq: int
    location_id: str
    evse_uid: str
    connector_id: str
    country_code: str
    party_id: str
    body: bytes


async def due(session: AsyncSession, partner_id: int, *, version: str, now: datetime, limit: int) -> list[Due]:
    """The partner's next pending deliveries that are due, in delivery order, except those of Locations with a
    delivery that waits for its retry: one Location's pushes reach the partner in order."""
    # Not correlated: the (few) Locations waiting for a retry are found once per batch, not once per row.
    waiting = select(_t.c.location_seq).where(_t.c.partner_id == partner_id, _PENDING, _t.c.next_attempt_at > now)
    body = _documents.c.body_22 if version == VersionNumber.V2_2 else _documents.c.body_221
    query = (
        select(
            _t.c.id,
            _t.c.revision,
            _t.c.method,
            _t.c.fields,
            _t.c.attempts,
            _t.c.first_enqueued_at,
            _t.c.location_seq,
            _locations.c.id.label("location_id"),
            _t.c.evse_uid,
            _t.c.connector_id,
            _locations.c.country_code,
            _locations.c.party_id,
            body.label("body"),
        )
        .join_from(_t, _locations, _locations.c.seq == _t.c.location_seq)
        .join(_documents, _documents.c.seq == _t.c.location_seq)
        .where(
            _t.c.partner_id == partner_id,
            _PENDING,
            _t.c.next_attempt_at <= now,
            _t.c.location_seq.not_in(waiting),
        )
        .order_by(_t.c.id)
        .limit(limit)
    )
    return [Due(**(row._asdict() | {"method": Method(row.method)})) for row in await session.execute(query)]


async def waiting(session: AsyncSession, delivery_id: int, *, now: datetime) -> bool:
    """Whether the delivery is still pending and not yet due."""
    query = select(_t.c.id).where(_t.c.id == delivery_id, _PENDING, _t.c.next_attempt_at > now)
    return (await session.execute(query)).first() is not None


@dataclass(frozen=True)
class Retry:
    id: int
    next_attempt_at: datetime
    error: str


@dataclass(frozen=True)
class Dead:
    id: int
    revision: int
    error: str


async def settle(
    session: AsyncSession, *, sent: Sequence[tuple[int, int]], retry: Sequence[Retry], dead: Sequence[Dead]
) -> None:
    """Record what happened to sent deliveries; not committed.

    `sent` (id, revision): delivered, deleted unless a change was merged in while it was on its way (its revision
    went up), in which case it is sent again. `dead`: given up, unless likewise changed meanwhile.
    """
    ids = [i for i, _ in sent] + [r.id for r in retry] + [d.id for d in dead]
    if not ids:
        return
    # On PostgreSQL a row that a change is being merged into is locked by the change's transaction: skip it rather
    # than wait (which could deadlock with that transaction); it stays pending and is sent again, as it must be.
    # SQLite has no row locks (one writer at a time): nothing is skipped there.
    free = set(
        (await session.execute(select(_t.c.id).where(_t.c.id.in_(ids)).with_for_update(skip_locked=True))).scalars()
    )
    sent = [s for s in sent if s[0] in free]
    retry = [r for r in retry if r.id in free]
    dead = [d for d in dead if d.id in free]
    if sent:
        await session.execute(delete(_t).where(tuple_(_t.c.id, _t.c.revision).in_(sent)))
    for r in retry:
        await session.execute(
            update(_t)
            .where(_t.c.id == r.id)
            .values(attempts=_t.c.attempts + 1, next_attempt_at=r.next_attempt_at, last_error=r.error[:1000])
        )
    for d in dead:
        await session.execute(
            update(_t)
            .where(_t.c.id == d.id, _t.c.revision == d.revision)
            .values(state=DeliveryState.DEAD, attempts=_t.c.attempts + 1, last_error=d.error[:1000])
        )


@dataclass(frozen=True)
class Listed:
    """A delivery as the internal API shows it."""

    id: int
    location_id: str
    evse_uid: str
    connector_id: str
    method: Method
    fields: int
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    first_enqueued_at: datetime
    last_error: str | None
    revision: int


async def page(
    session: AsyncSession, partner_id: int, *, state: DeliveryState, offset: int, limit: int
) -> tuple[int, list[Listed]]:
    """(how many, one page of them in delivery order) of the partner's deliveries in `state`."""
    where = and_(_t.c.partner_id == partner_id, _t.c.state == state)
    total = (await session.execute(select(func.count()).select_from(_t).where(where))).scalar_one()
    query = (
        select(
            _t.c.id,
            _locations.c.id.label("location_id"),
            _t.c.evse_uid,
            _t.c.connector_id,
            _t.c.method,
            _t.c.fields,
            _t.c.state,
            _t.c.attempts,
            _t.c.next_attempt_at,
            _t.c.first_enqueued_at,
            _t.c.last_error,
            _t.c.revision,
        )
        .join_from(_t, _locations, _locations.c.seq == _t.c.location_seq)
        .where(where)
        .order_by(_t.c.id)
        .offset(offset)
        .limit(limit)
    )
    rows = await session.execute(query)
    listed = [Listed(**(r._asdict() | {"method": Method(r.method), "state": DeliveryState(r.state)})) for r in rows]
    return total, listed


async def revive(session: AsyncSession, partner_id: int, *, delivery_id: int | None, now: datetime) -> int:
    """Dead deliveries of the partner (all, or one) pending again, due now, attempts from zero; not committed.
    Returns how many dead deliveries were retried.

    A retried delivery is sent as a PUT of the whole object: after a failure, what the eMSP has is unknown. Per
    object one pending row remains: the pending one if there is one (it becomes the PUT), else the oldest dead one,
    which keeps its place in the order.
    """

    def chosen(rows: Any) -> ColumnElement[bool]:
        where = and_(rows.c.partner_id == partner_id, rows.c.state == DeliveryState.DEAD)
        return where if delivery_id is None else and_(where, rows.c.id == delivery_id)

    def same_object(rows: Any) -> ColumnElement[bool]:
        return and_(*(rows.c[column.name] == column for column in _KEY))

    dead, pending = _t.alias("dead"), _t.alias("pending")
    has_pending = exists().where(same_object(pending), pending.c.state == DeliveryState.PENDING)
    put = {"method": Method.PUT, "fields": 0}
    await session.execute(
        update(_t)
        .where(_PENDING, exists().where(same_object(dead), chosen(dead)))
        .values({**put, "revision": _t.c.revision + 1})
    )
    retried = await session.execute(delete(_t).where(chosen(_t), has_pending))
    older = exists().where(same_object(dead), chosen(dead), dead.c.id < _t.c.id)
    retried_too = await session.execute(delete(_t).where(chosen(_t), older))
    revived = await session.execute(
        update(_t)
        .where(chosen(_t))
        .values(
            {**put, "state": DeliveryState.PENDING, "attempts": 0, "next_attempt_at": now, "first_enqueued_at": now}
        )
    )
    return sum(_rowcount(r) for r in (retried, retried_too, revived))


def _rowcount(result: Any) -> int:
    """Rows a DML statement matched (the typed Result of AsyncSession.execute does not show it)."""
    return int(result.rowcount)
