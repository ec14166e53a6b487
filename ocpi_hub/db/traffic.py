"""What happened with a partner (docs/operations.md §7): the OCPI traffic log (every request a partner made to us and
every call we made to it) and the deliveries that arrived, each kept for a while and pruned in batches.

Both tables are written on hot paths, so each write is cheap: traffic entries are inserted in batches by
ocpi_hub.traffic (never one commit per request), a sent delivery is one more row in the transaction that settles its
round. Neither ever holds a token: the Authorization header is not a column, and bodies (kept only when
`OCPI_HUB_TRAFFIC_BODIES` asks for them) have their `token` values replaced before they get here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.changes import Method, ObjectKey
from ocpi_hub.db.base import Base, UtcDateTime
from ocpi_hub.db.deliveries import decode_fields, encode_fields
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi.versions import ModuleID

PATH_LIMIT = 2000
ID_LIMIT = 255  # X-Request-ID and X-Correlation-ID as the caller sent them, cut to fit
ERROR_LIMIT = 300
PRUNE_BATCH = 5000  # rows deleted per statement: a long prune never holds a long transaction


class TrafficEntry(Base):
    """One HTTP exchange with a partner, in either direction."""

    __tablename__ = "traffic"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the order entries were recorded in
    partner_id: Mapped[int] = mapped_column(Integer, ForeignKey("partners.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)  # when the request started
    direction: Mapped[str] = mapped_column(String(8))  # inbound (the partner called us) or outbound
    method: Mapped[str] = mapped_column(String(7))
    path: Mapped[str] = mapped_column(String(PATH_LIMIT))  # path and query; outbound without credentials
    http_status: Mapped[int | None] = mapped_column(Integer)  # None: no answer came (outbound)
    ocpi_status: Mapped[int | None] = mapped_column(Integer)  # the envelope's status_code, when there was one
    duration_ms: Mapped[float] = mapped_column(Float)
    request_id: Mapped[str | None] = mapped_column(String(ID_LIMIT))
    correlation_id: Mapped[str | None] = mapped_column(String(ID_LIMIT))
    error: Mapped[str | None] = mapped_column(String(ERROR_LIMIT))  # outbound: why no answer came
    request_body: Mapped[str | None] = mapped_column(Text)  # only with OCPI_HUB_TRAFFIC_BODIES
    response_body: Mapped[str | None] = mapped_column(Text)


class SentDelivery(Base):
    """A delivery that arrived: what was sent and what the partner answered, kept for `OCPI_HUB_SENT_RETENTION`."""

    __tablename__ = "sent_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the order they arrived in
    partner_id: Mapped[int] = mapped_column(Integer, ForeignKey("partners.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(Integer)  # its id in `deliveries` (the delivery order) while it waited
    module: Mapped[str] = mapped_column(String(16))
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    object_id: Mapped[str] = mapped_column(String(36))
    evse_uid: Mapped[str] = mapped_column(String(36))
    connector_id: Mapped[str] = mapped_column(String(36))
    method: Mapped[str] = mapped_column(String(6))
    fields: Mapped[str] = mapped_column(Text)  # PATCH: ",name,name,"; "" otherwise
    revision: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)  # this one included
    first_enqueued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
    http_status: Mapped[int | None] = mapped_column(Integer)  # None: nothing had to be sent (docs/operations.md §7.1)
    ocpi_status: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(ID_LIMIT))  # the last call's: find it in the traffic log


_traffic = cast(Table, TrafficEntry.__table__)
_sent = cast(Table, SentDelivery.__table__)
# A partner's entries newest first; the prune by age.
Index("ix_traffic_partner", _traffic.c.partner_id, _traffic.c.id)
Index("ix_traffic_at", _traffic.c.at)
Index("ix_sent_deliveries_partner", _sent.c.partner_id, _sent.c.id)
Index("ix_sent_deliveries_sent_at", _sent.c.sent_at)


# --- The traffic log --------------------------------------------------------------------------------------------


# The values of a traffic entry, in the order `add_entries` takes them.
COLUMNS = tuple(c.name for c in _traffic.c if c.name != "id")
_PARTNER_ID = COLUMNS.index("partner_id")


async def add_entries(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert traffic entries (values in COLUMNS order) and commit; returns how many were kept. An entry of a
    partner removed meanwhile (its pending registration deleted) is left out rather than failing the batch."""
    if not rows:
        return 0
    connection = await session.connection()
    _, convert = _driver_insert(connection.dialect)
    values = [convert(row) for row in rows]
    try:
        await _insert(connection, values)
        await session.commit()
        return len(rows)
    except IntegrityError:
        await session.rollback()
    wanted = {row[_PARTNER_ID] for row in rows}
    known = set((await session.execute(select(Partner.id).where(Partner.id.in_(wanted)))).scalars())
    kept = [value for value in values if value[_PARTNER_ID] in known]
    if kept:
        await _insert(await session.connection(), kept)
    await session.commit()
    return len(kept)


# Rows per INSERT on SQLite: 13 parameters each, within SQLite's 32,766 parameters per statement.
_SQLITE_ROWS = 1000


async def _insert(connection: AsyncConnection, values: list[tuple[Any, ...]]) -> None:
    """Insert traffic entries (the driver's values). On SQLite, one statement of many rows: sqlite3's executemany
    lets go of Python's lock (the GIL) around every row, and aiosqlite's thread must then take it back from the
    event loop, which under a busy crawl costs far more than the insert (docs/operations.md §7.2). asyncpg sends
    a batch in one go anyway."""
    sql, _ = _driver_insert(connection.dialect)
    if connection.dialect.name != "sqlite":
        await connection.exec_driver_sql(sql, values)
        return
    head, _, row = sql.partition(" VALUES ")
    for start in range(0, len(values), _SQLITE_ROWS):
        chunk = values[start : start + _SQLITE_ROWS]
        flat = tuple(value for entry in chunk for value in entry)
        await connection.exec_driver_sql(f"{head} VALUES {', '.join([row] * len(chunk))}", flat)


@functools.cache
def _driver_insert(dialect: Dialect) -> tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]]:
    """The INSERT of a traffic entry in the driver's own terms, and what makes an entry's values the driver's.
    A crawl makes thousands of entries a second, and SQLAlchemy's handling of each row's parameters cost more than
    the database's insert (README, "Performance of the Locations list"): so the statement is compiled once, and
    only the columns whose type converts (the time) are converted, by their type's own processor."""
    columns = [_traffic.c[name] for name in COLUMNS]
    compiled = (
        insert(_traffic)
        .inline()
        .values({c.name: bindparam(c.name, type_=c.type) for c in columns})
        .compile(dialect=dialect)
    )
    # Both our drivers (sqlite3's qmark, asyncpg's $n) take positional parameters.
    assert compiled.positiontup == list(COLUMNS), compiled.positiontup
    processors = [(i, p) for i, c in enumerate(columns) if (p := c.type.dialect_impl(dialect).bind_processor(dialect))]

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i, process in processors:
            values[i] = process(values[i])
        return tuple(values)

    return compiled.string, convert


@dataclass(frozen=True)
class Exchange:
    """A traffic entry as the internal API shows it."""

    id: int
    at: datetime
    direction: str
    method: str
    path: str
    http_status: int | None
    ocpi_status: int | None
    duration_ms: float
    request_id: str | None
    correlation_id: str | None
    error: str | None
    request_body: str | None
    response_body: str | None


async def entries(
    session: AsyncSession, partner_id: int, *, direction: str | None, before: int | None, limit: int
) -> list[Exchange]:
    """The partner's entries newest first (by the order they were recorded), those older than entry `before`."""
    conditions = [_traffic.c.partner_id == partner_id]
    if direction is not None:
        conditions.append(_traffic.c.direction == direction)
    if before is not None:
        conditions.append(_traffic.c.id < before)
    rows = await session.execute(select(_traffic).where(*conditions).order_by(_traffic.c.id.desc()).limit(limit))
    return [Exchange(**{name: getattr(row, name) for name in Exchange.__dataclass_fields__}) for row in rows]


# --- Sent deliveries --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrived:
    """A delivery that arrived, as the worker knows it."""

    delivery_id: int
    revision: int
    module: ModuleID
    key: ObjectKey
    method: Method
    fields: tuple[str, ...]
    attempts: int
    first_enqueued_at: datetime
    http_status: int | None
    ocpi_status: int | None
    request_id: str | None


async def add_sent(session: AsyncSession, partner_id: int, arrived: Sequence[Arrived], *, now: datetime) -> None:
    """Keep the deliveries that arrived, in one INSERT; not committed (the caller's transaction settles them)."""
    if not arrived:
        return
    rows = [
        {
            "partner_id": partner_id,
            "delivery_id": a.delivery_id,
            "module": a.module,
            "country_code": a.key.country_code,
            "party_id": a.key.party_id,
            "object_id": a.key.id,
            "evse_uid": a.key.evse_uid,
            "connector_id": a.key.connector_id,
            "method": a.method,
            "fields": encode_fields(a.fields) if a.method is Method.PATCH else "",
            "revision": a.revision,
            "attempts": a.attempts,
            "first_enqueued_at": a.first_enqueued_at,
            "sent_at": now,
            "http_status": a.http_status,
            "ocpi_status": a.ocpi_status,
            "request_id": a.request_id,
        }
        for a in arrived
    ]
    await session.execute(insert(_sent), rows)


@dataclass(frozen=True)
class SentListed:
    """A sent delivery as the internal API shows it."""

    delivery_id: int
    module: ModuleID
    key: ObjectKey
    method: Method
    fields: tuple[str, ...]
    revision: int
    attempts: int
    first_enqueued_at: datetime
    sent_at: datetime
    http_status: int | None
    ocpi_status: int | None
    request_id: str | None


async def sent_page(
    session: AsyncSession, partner_id: int, *, since: datetime, offset: int, limit: int
) -> tuple[int, list[SentListed]]:
    """(how many, one page of them newest first) of the partner's deliveries that arrived after `since` (those
    older wait for the prune; they are no longer shown)."""
    where = and_(_sent.c.partner_id == partner_id, _sent.c.sent_at >= since)
    total = (await session.execute(select(func.count()).select_from(_sent).where(where))).scalar_one()
    rows = await session.execute(select(_sent).where(where).order_by(_sent.c.id.desc()).offset(offset).limit(limit))
    listed = [
        SentListed(
            delivery_id=r.delivery_id,
            module=ModuleID(r.module),
            key=ObjectKey(r.country_code, r.party_id, r.object_id, r.evse_uid, r.connector_id),
            method=Method(r.method),
            fields=decode_fields(r.fields),
            revision=r.revision,
            attempts=r.attempts,
            first_enqueued_at=r.first_enqueued_at,
            sent_at=r.sent_at,
            http_status=r.http_status,
            ocpi_status=r.ocpi_status,
            request_id=r.request_id,
        )
        for r in rows
    ]
    return total, listed


# --- Pruning ----------------------------------------------------------------------------------------------------


async def prune(session: AsyncSession, *, traffic_before: datetime, sent_before: datetime) -> int:
    """Delete up to PRUNE_BATCH traffic entries older than `traffic_before` and as many sent deliveries older than
    `sent_before`; committed. Returns the larger count: PRUNE_BATCH means that more may be left."""
    deleted = 0
    for table, column, cutoff in ((_traffic, _traffic.c.at, traffic_before), (_sent, _sent.c.sent_at, sent_before)):
        # DELETE … LIMIT is not portable (PostgreSQL has none): the ids of one batch, oldest first.
        batch = select(table.c.id).where(column < cutoff).order_by(table.c.id).limit(PRUNE_BATCH)
        result: Any = await session.execute(delete(table).where(table.c.id.in_(batch.scalar_subquery())))
        deleted = max(deleted, int(result.rowcount))
    await session.commit()
    return deleted
