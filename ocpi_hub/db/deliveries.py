"""The outbox table: one row per (partner, object) change waiting to reach that partner's Receiver interface.

A row names the module, the object (ObjectKey: country_code, party_id, id, and in Locations the EVSE uid and
Connector id, "" where absent) and what to send: the method and, for a PATCH, the changed fields by name. Never the
body: the body is read from the store when it is sent, so that the partner always gets the newest state. There is
at most one pending row per (partner, object): a new change of the same object is merged into that row (its
`revision` goes up, its `id`, which is the delivery order, stays). Dead rows (given up on) sit outside that rule,
so a new change of the object starts a new pending row.

A PATCH's fields are kept as names between commas (",status,last_updated,"), so that merging two PATCHes happens
inside the INSERT … ON CONFLICT and no struct's field order is part of what a stored row means.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    ForeignKey,
    Index,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.changes import Method, ObjectKey
from ocpi_hub.db.base import UPSERT_DIALECTS, Base, UtcDateTime, insert_on_conflict
from ocpi_hub.db.text import storable
from ocpi_hub.ocpi.versions import ModuleID


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DEAD = "dead"  # given up on after the permanent failure or the last attempt; kept with its error


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the delivery order
    partner_id: Mapped[int] = mapped_column(Integer, ForeignKey("partners.id", ondelete="CASCADE"))
    module: Mapped[str] = mapped_column(String(16))  # the OCPI module id (locations, tariffs, ...)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    object_id: Mapped[str] = mapped_column(String(36))
    evse_uid: Mapped[str] = mapped_column(String(36))  # Locations only; "" otherwise
    connector_id: Mapped[str] = mapped_column(String(36))  # Locations only; "" otherwise
    method: Mapped[str] = mapped_column(String(6))
    fields: Mapped[str] = mapped_column(Text)  # PATCH: ",name,name,"; "" otherwise
    state: Mapped[str] = mapped_column(String(7))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    first_enqueued_at: Mapped[datetime] = mapped_column(UtcDateTime)  # of the oldest change merged into the row
    last_error: Mapped[str | None] = mapped_column(String(1000))
    revision: Mapped[int] = mapped_column(Integer)  # +1 on every change merged in: a send covers one revision


_t = cast(Table, Delivery.__table__)
# A literal, not a parameter: it is also the predicate of the partial index, which ON CONFLICT must name as such.
_PENDING: ColumnElement[bool] = _t.c.state == literal_column(f"'{DeliveryState.PENDING}'")
_OBJECT = [_t.c.module, _t.c.country_code, _t.c.party_id, _t.c.object_id, _t.c.evse_uid, _t.c.connector_id]
_KEY = [_t.c.partner_id, *_OBJECT]

# The coalescing rule needs this index: at most one pending row per (partner, object).
Index("uq_deliveries_pending", *_KEY, unique=True, sqlite_where=_PENDING, postgresql_where=_PENDING)
# A partner's queue in delivery order.
Index("ix_deliveries_queue", _t.c.partner_id, _t.c.state, _t.c.id)


def encode_fields(names: Sequence[str]) -> str:
    return "," + ",".join(sorted(set(names))) + "," if names else ""


def decode_fields(stored: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for name in stored.split(",") if name))  # merges may repeat a name


# Which deliveries wait for which (OCPI 2.2.1 §8.3 and docs/cpo-modules.md §3.6): a Connector may only name a
# Tariff the eMSP has, so a Locations delivery waits for every Tariffs PUT queued before it; and a Tariff is
# deleted only after the Locations that stopped naming it, so a Tariffs DELETE waits for every Locations delivery
# queued before it. A CDR arrives after its Session's last update (docs/cpo-modules.md §4.7), so a CDRs POST waits
# for every Sessions delivery queued before it. (module, method or None for any) waits for (module, method or None).
WAITS_FOR: tuple[tuple[ModuleID, Method | None, ModuleID, Method | None], ...] = (
    (ModuleID.LOCATIONS, None, ModuleID.TARIFFS, Method.PUT),
    (ModuleID.TARIFFS, Method.DELETE, ModuleID.LOCATIONS, None),
    (ModuleID.CDRS, None, ModuleID.SESSIONS, None),
)


def _of(rows: Any, module: ModuleID, method: Method | None) -> ColumnElement[bool]:
    condition = rows.c.module == module
    return condition if method is None else and_(condition, rows.c.method == method)


def _coalescing(statement: Any, dialect: str) -> Insert:
    """… ON CONFLICT (pending row of the same object) merge into it: PATCH + PATCH is a PATCH of both field sets,
    otherwise the newest method wins (PATCH after PUT is a PUT: the PUT reads the newest state anyway). The row keeps
    its place, its attempts and its schedule."""
    new = statement.excluded
    both_patch = and_(_t.c.method == Method.PATCH, new.method == Method.PATCH)
    patch_after_put = and_(_t.c.method == Method.PUT, new.method == Method.PATCH)
    contains = func.strpos if dialect == "postgresql" else func.instr
    fields = case(
        (contains(_t.c.fields, new.fields) > 0, _t.c.fields),  # the usual case: the same field again
        else_=_t.c.fields + func.substr(new.fields, 2),
    )
    merged: Insert = statement.on_conflict_do_update(
        index_elements=_KEY,
        index_where=_PENDING,
        set_={
            "method": case((patch_after_put, Method.PUT), else_=new.method),
            "fields": case((both_patch, fields), else_=""),
            "revision": _t.c.revision + 1,
        },
    )
    return merged


_ADD = {name: _coalescing(dialect.insert(_t), name) for name, dialect in UPSERT_DIALECTS.items()}


@dataclass(frozen=True)
class Pending:
    """A change to deliver to one partner."""

    partner_id: int
    module: ModuleID
    key: ObjectKey
    method: Method
    fields: tuple[str, ...] = ()


def _row(p: Pending, now: datetime) -> dict[str, Any]:
    return {
        "partner_id": p.partner_id,
        "module": p.module,
        "country_code": p.key.country_code,
        "party_id": p.key.party_id,
        "object_id": p.key.id,
        "evse_uid": p.key.evse_uid,
        "connector_id": p.key.connector_id,
        "method": p.method,
        "fields": encode_fields(p.fields) if p.method == Method.PATCH else "",
        "state": DeliveryState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "first_enqueued_at": now,
        "revision": 1,
    }


async def add(session: AsyncSession, pending: Sequence[Pending], *, now: datetime) -> None:
    """Queue these changes, merged into the pending rows of the same objects; not committed.

    A DELETE takes the last place in the order: what was queued before it (a Location that stops naming a Tariff)
    must arrive first, so a pending row of the object is replaced rather than merged into."""
    if not pending:
        return
    deletes = [p for p in pending if p.method == Method.DELETE]
    for p in deletes:
        await session.execute(
            delete(_t).where(_PENDING, *(c == v for c, v in zip(_KEY, _row(p, now).values(), strict=False)))
        )
    # Core on the connection: the ORM's execute path costs more than this INSERT, which every change runs.
    connection = await session.connection()
    await connection.execute(_ADD[connection.dialect.name], [_row(p, now) for p in pending])


async def add_every(
    session: AsyncSession, partner_id: int, module: ModuleID, objects: Select[Any], *, now: datetime
) -> int:
    """Queue a PUT of every object `objects` selects (country_code, party_id, id, in order) for the partner, in one
    INSERT … SELECT; not committed. Returns how many."""
    values = {
        "partner_id": literal(partner_id),
        "module": literal(module.value),
        "country_code": objects.selected_columns[0],
        "party_id": objects.selected_columns[1],
        "object_id": objects.selected_columns[2],
        "evse_uid": literal(""),
        "connector_id": literal(""),
        "method": literal(Method.PUT.value),
        "fields": literal(""),
        "state": literal(DeliveryState.PENDING.value),
        "attempts": literal(0),
        "next_attempt_at": literal(now, UtcDateTime),
        "first_enqueued_at": literal(now, UtcDateTime),
        "revision": literal(1),
    }
    # SQLite needs a WHERE in INSERT … SELECT … ON CONFLICT, or its parser reads ON as a join constraint.
    columns: list[Any] = list(values.values())
    every = objects.with_only_columns(*columns).where(true())
    dialect = session.get_bind().dialect.name
    statement = _coalescing(insert_on_conflict(session, _t).from_select(list(values), every), dialect)
    return _rowcount(await session.execute(statement))


@dataclass(frozen=True)
class Due:
    """A pending delivery, as the worker sends it."""

    id: int
    revision: int
    module: ModuleID
    key: ObjectKey
    method: Method
    fields: tuple[str, ...]
    attempts: int
    first_enqueued_at: datetime

    @property
    def chain(self) -> tuple[str, str]:
        """What must be sent in order: every delivery of one object (a Location with its EVSEs and Connectors)."""
        return self.module, self.key.id.upper()


def _due_query() -> Select[Any]:
    mine = and_(_t.c.partner_id == bindparam("partner_id"), _PENDING)
    now = bindparam("now", type_=UtcDateTime)
    # Not correlated: the (few) objects waiting for a retry are found once per batch, not once per row.
    waiting = select(_t.c.module, func.upper(_t.c.object_id)).where(mine, _t.c.next_attempt_at > now)
    conditions = [mine, _t.c.next_attempt_at <= now, tuple_(_t.c.module, func.upper(_t.c.object_id)).not_in(waiting)]
    for module, method, first, first_method in WAITS_FOR:
        barrier = select(func.min(_t.c.id)).where(mine, _of(_t, first, first_method)).scalar_subquery()
        conditions.append(or_(~_of(_t, module, method), barrier.is_(None), _t.c.id < barrier))
    return select(_t).where(*conditions).order_by(_t.c.id).limit(bindparam("limit", type_=Integer))


# The push worker's statements, built once with parameters: each of its rounds makes them, and building a
# statement and its cache key cost more than SQLite takes to run it (docs/ocpi.md §11, "The push worker's rounds").
_DUE = _due_query()
_ROWS = select(_t.c.id).where(_t.c.id.in_(bindparam("ids", expanding=True))).with_for_update(skip_locked=True)
_PENDING_ROWS = _ROWS.where(_PENDING)
_TAKE = (
    update(_t)
    .where(_t.c.id.in_(bindparam("ids", expanding=True)), _PENDING, _t.c.next_attempt_at <= bindparam("now"))
    .values(next_attempt_at=bindparam("until"))
    .returning(_t.c.id, _t.c.revision, _t.c.method, _t.c.fields)
)
_DUE_AGAIN = (
    update(_t).where(_t.c.id.in_(bindparam("ids", expanding=True)), _PENDING).values(next_attempt_at=bindparam("now"))
)
_SENT = delete(_t).where(tuple_(_t.c.id, _t.c.revision).in_(bindparam("sent", expanding=True)))


async def due(session: AsyncSession, partner_id: int, *, now: datetime, limit: int) -> list[Due]:
    """The partner's next pending deliveries that are due, in delivery order, except those of objects with a
    delivery that waits for its retry (one object's pushes reach the partner in order) and those that wait for a
    delivery of another module (WAITS_FOR)."""
    rows = await session.execute(_DUE, {"partner_id": partner_id, "now": now, "limit": limit})
    return [_due(row) for row in rows]


async def _free(session: AsyncSession, rows: Select[Any], ids: Iterable[int]) -> set[int]:
    """Those of `ids` that `rows` finds and no other transaction holds, locked until commit (PostgreSQL). SQLite
    has one writer at a time and no row locks: there all are taken as found, and the statements that write them
    check what `rows` would have, at no extra round trip."""
    if session.get_bind().dialect.name != "postgresql":
        return set(ids)
    return set((await session.execute(rows, {"ids": list(ids)})).scalars())


def _due(row: Any) -> Due:
    return Due(
        id=row.id,
        revision=row.revision,
        module=ModuleID(row.module),
        key=ObjectKey(row.country_code, row.party_id, row.object_id, row.evse_uid, row.connector_id),
        method=Method(row.method),
        fields=decode_fields(row.fields),
        attempts=row.attempts,
        first_enqueued_at=row.first_enqueued_at,
    )


async def claim(session: AsyncSession, partner_id: int, *, now: datetime, limit: int, lease: timedelta) -> list[Due]:
    """The partner's next due deliveries (`due`), taken for one worker until now + lease (not committed: the caller
    commits before sending). Taking moves their next_attempt_at: to every other worker they, and by the rule of
    `due` every later delivery of their objects, now wait, until `settle` records them or, should their worker
    die, the lease runs out and they are due again (README "Running at scale").

    On PostgreSQL the rows are locked FOR UPDATE SKIP LOCKED: a row another transaction holds (another worker
    taking it, a change being merged into it) is skipped, and with it the rest of its object, so that no object's
    deliveries are ever taken out of order. SQLite has one writer at a time and one worker per file."""
    candidates = await due(session, partner_id, now=now, limit=limit)
    if not candidates:
        return []
    locked = await _free(session, _PENDING_ROWS, (d.id for d in candidates))
    # Taken only if still due when written: SQLite reads the candidates before its transaction begins (at the
    # first write), so another process may have taken some in between.
    taken = await session.execute(_TAKE, {"ids": sorted(locked), "now": now, "until": now + lease})
    # The delivery as taken: a change merged in between the query and the write raised its revision and may have
    # changed its method and fields. The bodies are read after this, in this transaction, so a send covers what was
    # taken; with the queried method and fields, the merged change's fields would be left out and yet counted sent.
    taken_as: dict[int, Any] = {row.id: row for row in taken}
    ours = set(taken_as)
    skipped: set[tuple[str, str]] = set()
    claimed, given_back = [], []
    for d in candidates:
        if d.chain in skipped or d.id not in ours:
            skipped.add(d.chain)  # the rest of an object waits behind a delivery someone else holds
            if d.id in ours:
                given_back.append(d.id)
            continue
        row = taken_as[d.id]
        claimed.append(
            dataclasses.replace(d, revision=row.revision, method=Method(row.method), fields=decode_fields(row.fields))
        )
    if given_back:
        await session.execute(update(_t).where(_t.c.id.in_(given_back)).values(next_attempt_at=now))
    return claimed


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


@dataclass(frozen=True)
class Outcomes:
    """What happened to claimed deliveries, as `settle` records it.

    `sent` (id, revision): delivered. `retry`: failed, due again later. `dead`: given up on. `appended` (id, names):
    the list items (`name@i`) a sent PATCH carried. `released`: claimed but not tried (the partner failed first).
    """

    sent: Sequence[tuple[int, int]] = ()
    retry: Sequence[Retry] = ()
    dead: Sequence[Dead] = ()
    appended: Sequence[tuple[int, tuple[str, ...]]] = ()
    released: Sequence[int] = ()

    def ids(self) -> set[int]:
        return {i for i, _ in self.sent} | {r.id for r in self.retry} | {d.id for d in self.dead} | set(self.released)

    def of(self, ids: set[int]) -> Outcomes:
        """Only the outcomes of these deliveries."""
        return Outcomes(
            sent=tuple(s for s in self.sent if s[0] in ids),
            retry=tuple(r for r in self.retry if r.id in ids),
            dead=tuple(d for d in self.dead if d.id in ids),
            appended=tuple(a for a in self.appended if a[0] in ids),
            released=tuple(i for i in self.released if i in ids),
        )


async def settle(session: AsyncSession, outcomes: Outcomes, *, now: datetime) -> Outcomes:
    """Record what happened to claimed deliveries; not committed. Returns the outcomes it could not record yet
    (PostgreSQL: their rows were locked), for the caller to settle again.

    A sent delivery is deleted, unless a change was merged in while it was on its way (its revision went up): then
    it is due again at `now`. A dead one is given up on, unless likewise changed meanwhile. A retry counts an
    attempt and waits for its time. A released one is due again at `now`. The list items a sent PATCH carried are
    dropped from a row sent again, since the partner appends what it receives and must not get an item twice.
    """
    ids = outcomes.ids()
    if not ids:
        return Outcomes()
    # On PostgreSQL a row that a change is being merged into is locked by the change's transaction: skip it rather
    # than wait (which could deadlock with that transaction). Until it is settled it keeps the claim's
    # next_attempt_at, so the caller settles it again once the change has committed; were that never to happen,
    # the lease runs out and it is sent again, as it must be. SQLite has no row locks: nothing is skipped there.
    free = await _free(session, _ROWS, ids)
    here = outcomes.of(free)
    changed_on_the_way: list[int] = []  # sent, but a change merged in meanwhile raised the revision
    if here.sent:
        deleted = cast(CursorResult[Any], await session.execute(_SENT, {"sent": list(here.sent)})).rowcount
        if deleted != len(here.sent):  # (id, revision) names one row: when all went, none is left to look for
            changed_on_the_way = [i for i, _ in here.sent]
    for r in here.retry:
        await session.execute(
            update(_t)
            .where(_t.c.id == r.id)
            .values(attempts=_t.c.attempts + 1, next_attempt_at=r.next_attempt_at, last_error=storable(r.error, 1000))
        )
    for d in here.dead:
        await session.execute(
            update(_t)
            .where(_t.c.id == d.id, _t.c.revision == d.revision)
            .values(state=DeliveryState.DEAD, attempts=_t.c.attempts + 1, last_error=storable(d.error, 1000))
        )
    due_again = changed_on_the_way + [d.id for d in here.dead] + list(here.released)
    if due_again:  # those still pending (changed meanwhile, or never tried): due at once
        await session.execute(_DUE_AGAIN, {"ids": due_again, "now": now})
    delivered = dict(here.appended)
    if delivered:
        again = await session.execute(select(_t.c.id, _t.c.fields).where(_t.c.id.in_(delivered), _PENDING))
        for row in again.all():
            kept = [name for name in decode_fields(row.fields) if name not in delivered[row.id]]
            await session.execute(update(_t).where(_t.c.id == row.id).values(fields=encode_fields(kept)))
    return outcomes.of(ids - free)


@dataclass(frozen=True)
class Listed:
    """A delivery as the internal API shows it."""

    id: int
    module: ModuleID
    key: ObjectKey
    method: Method
    fields: tuple[str, ...]
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
    rows = await session.execute(select(_t).where(where).order_by(_t.c.id).offset(offset).limit(limit))
    listed = [
        Listed(
            id=r.id,
            module=ModuleID(r.module),
            key=ObjectKey(r.country_code, r.party_id, r.object_id, r.evse_uid, r.connector_id),
            method=Method(r.method),
            fields=decode_fields(r.fields),
            state=DeliveryState(r.state),
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
            first_enqueued_at=r.first_enqueued_at,
            last_error=r.last_error,
            revision=r.revision,
        )
        for r in rows
    ]
    return total, listed


async def revive(session: AsyncSession, partner_id: int, *, delivery_id: int | None, now: datetime) -> int:
    """Dead deliveries of the partner (all, or one) pending again, due now, attempts from zero; not committed.
    Returns how many dead deliveries were retried.

    A retried PATCH is sent as a PUT of the whole object: after a failure, what the eMSP has is unknown. Per object
    one pending row remains: the pending one if there is one (a PATCH of it becomes the PUT), else the oldest dead
    one, which keeps its place in the order.
    """

    def chosen(rows: Any) -> ColumnElement[bool]:
        where = and_(rows.c.partner_id == partner_id, rows.c.state == DeliveryState.DEAD)
        return where if delivery_id is None else and_(where, rows.c.id == delivery_id)

    def same_object(rows: Any) -> ColumnElement[bool]:
        return and_(*(rows.c[column.name] == column for column in _KEY))

    dead, pending = _t.alias("dead"), _t.alias("pending")
    has_pending = exists().where(same_object(pending), pending.c.state == DeliveryState.PENDING)
    whole = {"method": case((_t.c.method == Method.PATCH, Method.PUT), else_=_t.c.method), "fields": ""}
    await session.execute(
        update(_t)
        .where(_PENDING, exists().where(same_object(dead), chosen(dead)))
        .values({**whole, "revision": _t.c.revision + 1})
    )
    retried = await session.execute(delete(_t).where(chosen(_t), has_pending))
    older = exists().where(same_object(dead), chosen(dead), dead.c.id < _t.c.id)
    retried_too = await session.execute(delete(_t).where(chosen(_t), older))
    revived = await session.execute(
        update(_t)
        .where(chosen(_t))
        .values(
            {**whole, "state": DeliveryState.PENDING, "attempts": 0, "next_attempt_at": now, "first_enqueued_at": now}
        )
    )
    return sum(_rowcount(r) for r in (retried, retried_too, revived))


def _rowcount(result: Any) -> int:
    """Rows a DML statement matched (the typed Result of AsyncSession.execute does not show it)."""
    return int(result.rowcount)
