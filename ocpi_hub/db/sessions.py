"""Sessions and CDRs as stored (OCPI 2.2.1 mod_sessions and mod_cdrs; docs/cpo-modules.md §4, §5).

A row keeps the OCPI JSON we serve and push (`body`) beside what the store needs to compute the next one: for a
Session, the start request (to tell a repeated start from a different one), the meter readings, the Tariff and
the CdrLocation as they were at the start (a CDR is sealed as of the session start), and the Location's time zone.
Each row also names the eMSP that owns the token (`emsp_country_code`, `emsp_party_id`): only that eMSP sees it.

`seq` is the creation order lists page in (docs/ocpi.md §1.7); `revision` goes up with every write of a Session,
so that two concurrent writes of one Session cannot both win (db/transaction.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    false,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime
from ocpi_hub.db.sender import Document, PageQuery, bodies_of
from ocpi_hub.db.text import storable
from ocpi_hub.db.transaction import ConcurrentWriteError


class SessionRow(Base):
    __tablename__ = "sessions"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36))
    key: Mapped[str] = mapped_column(String(36), unique=True)  # id upper-cased: ids are CiStrings
    country_code: Mapped[str] = mapped_column(String(2))  # our party, the owner of the Session
    party_id: Mapped[str] = mapped_column(String(3))
    emsp_country_code: Mapped[str] = mapped_column(String(2))  # the token's owner: the one eMSP that sees it
    emsp_party_id: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(11))
    start_request: Mapped[bytes] = mapped_column(LargeBinary)
    readings: Mapped[bytes] = mapped_column(LargeBinary)  # JSON [[timestamp, energy_wh, power_w, current_a], ...]
    tariff: Mapped[bytes | None] = mapped_column(LargeBinary)  # the Tariff in force at the start
    time_zone: Mapped[str] = mapped_column(String(255))
    cdr_location: Mapped[bytes] = mapped_column(LargeBinary)
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revision: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class CdrRow(Base):
    __tablename__ = "cdrs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(39))
    key: Mapped[str] = mapped_column(String(39), unique=True)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    emsp_country_code: Mapped[str] = mapped_column(String(2))
    emsp_party_id: Mapped[str] = mapped_column(String(3))
    session_key: Mapped[str | None] = mapped_column(String(36), index=True)
    credit_of: Mapped[str | None] = mapped_column(String(39), unique=True)  # the key of the CDR it credits
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # when the owning eMSP accepted our POST
    location_url: Mapped[str | None] = mapped_column(String(512))  # the Location header of its answer
    body: Mapped[bytes] = mapped_column(LargeBinary)


_s = cast(Table, SessionRow.__table__)
_c = cast(Table, CdrRow.__table__)


# --- Sessions ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredSession:
    id: str
    country_code: str
    party_id: str
    emsp: tuple[str, str]
    status: str
    start_request: bytes
    readings: bytes
    tariff: bytes | None
    time_zone: str
    cdr_location: bytes
    revision: int
    body: bytes


async def load_session(session: AsyncSession, session_id: str) -> StoredSession | None:
    row = (await session.execute(select(_s).where(_s.c.key == session_id.upper()))).first()
    if row is None:
        return None
    return StoredSession(
        id=row.id,
        country_code=row.country_code,
        party_id=row.party_id,
        emsp=(row.emsp_country_code, row.emsp_party_id),
        status=row.status,
        start_request=row.start_request,
        readings=row.readings,
        tariff=row.tariff,
        time_zone=row.time_zone,
        cdr_location=row.cdr_location,
        revision=row.revision,
        body=row.body,
    )


async def insert_session(session: AsyncSession, stored: StoredSession, *, last_updated: datetime) -> None:
    await session.execute(
        insert(_s).values(
            id=stored.id,
            key=stored.id.upper(),
            country_code=stored.country_code,
            party_id=stored.party_id,
            emsp_country_code=stored.emsp[0],
            emsp_party_id=stored.emsp[1],
            status=stored.status,
            start_request=stored.start_request,
            readings=stored.readings,
            tariff=stored.tariff,
            time_zone=stored.time_zone,
            cdr_location=stored.cdr_location,
            last_updated=last_updated,
            revision=stored.revision,
            body=stored.body,
        )
    )


async def update_session(
    session: AsyncSession, session_id: str, *, revision: int, status: str, readings: bytes, body: bytes, now: datetime
) -> None:
    """Write the next state of a Session read at `revision`; ConcurrentWriteError when another write came first."""
    result = await session.execute(
        update(_s)
        .where(_s.c.key == session_id.upper(), _s.c.revision == revision)
        .values(status=status, readings=readings, body=body, last_updated=now, revision=revision + 1)
    )
    if cast(Any, result).rowcount != 1:
        raise ConcurrentWriteError(f"session {session_id} changed meanwhile")


# --- CDRs ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCdr:
    id: str
    country_code: str
    party_id: str
    emsp: tuple[str, str]
    session_key: str | None
    credit_of: str | None
    last_updated: datetime
    sent_at: datetime | None
    location_url: str | None
    body: bytes


def _cdr(row: Any) -> StoredCdr:
    return StoredCdr(
        id=row.id,
        country_code=row.country_code,
        party_id=row.party_id,
        emsp=(row.emsp_country_code, row.emsp_party_id),
        session_key=row.session_key,
        credit_of=row.credit_of,
        last_updated=row.last_updated,
        sent_at=row.sent_at,
        location_url=row.location_url,
        body=row.body,
    )


async def load_cdr(session: AsyncSession, cdr_id: str) -> StoredCdr | None:
    row = (await session.execute(select(_c).where(_c.c.key == cdr_id.upper()))).first()
    return None if row is None else _cdr(row)


async def credit_of(session: AsyncSession, cdr_id: str) -> StoredCdr | None:
    """The credit CDR of the CDR `cdr_id`, if one was made."""
    row = (await session.execute(select(_c).where(_c.c.credit_of == cdr_id.upper()))).first()
    return None if row is None else _cdr(row)


async def insert_cdr(session: AsyncSession, cdr: StoredCdr) -> None:
    await session.execute(
        insert(_c).values(
            id=cdr.id,
            key=cdr.id.upper(),
            country_code=cdr.country_code,
            party_id=cdr.party_id,
            emsp_country_code=cdr.emsp[0],
            emsp_party_id=cdr.emsp[1],
            session_key=cdr.session_key,
            credit_of=cdr.credit_of,
            last_updated=cdr.last_updated,
            body=cdr.body,
        )
    )


async def record_sent(session: AsyncSession, cdr_id: str, *, at: datetime, location_url: str | None) -> None:
    """The owning eMSP accepted the CDR, and answered with this Location URL (None: it gave none)."""
    if location_url is not None:
        location_url = storable(location_url, 512)  # the partner's text: never stops the outcome being recorded
    await session.execute(update(_c).where(_c.c.key == cdr_id.upper()).values(sent_at=at, location_url=location_url))


async def cdr_pages(session: AsyncSession, *, offset: int, limit: int) -> tuple[int, list[StoredCdr]]:
    """Every CDR, in creation order (the internal API)."""
    total = (await session.execute(select(func.count()).select_from(_c))).scalar_one()
    rows = await session.execute(select(_c).order_by(_c.c.seq).offset(offset).limit(limit))
    return total, [_cdr(row) for row in rows]


# --- Both: the Sender lists, the object GETs and the pushes ------------------------------------------------------


def _visible(table: Table, query: PageQuery) -> list[ColumnElement[bool]]:
    """The rows a page may show: only those of the reader's parties (the token owners), and the usual filters."""
    conditions: list[ColumnElement[bool]] = []
    if query.readers is not None:
        owners = tuple_(table.c.emsp_country_code, table.c.emsp_party_id)
        conditions.append(owners.in_(query.readers) if query.readers else false())
    if query.date_from is not None:
        conditions.append(table.c.last_updated >= query.date_from)
    if query.date_to is not None:
        conditions.append(table.c.last_updated < query.date_to)
    if query.party is not None:
        conditions.append(and_(table.c.country_code == query.party[0], table.c.party_id == query.party[1]))
    return conditions


async def _page(session: AsyncSession, table: Table, query: PageQuery) -> tuple[int, list[bytes]]:
    conditions = _visible(table, query)
    total = (await session.execute(select(func.count()).select_from(table).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(table.c.body).where(*conditions).order_by(table.c.seq).offset(query.offset).limit(query.limit)
    )
    return total, list(rows.scalars())


async def _document(session: AsyncSession, table: Table, object_id: str) -> Document | None:
    columns = (table.c.body, table.c.country_code, table.c.party_id, table.c.emsp_country_code, table.c.emsp_party_id)
    row = (await session.execute(select(*columns).where(table.c.key == object_id.upper()))).first()
    if row is None:
        return None
    return Document(row.body, row.country_code, row.party_id, reader=(row.emsp_country_code, row.emsp_party_id))


async def session_page(session: AsyncSession, query: PageQuery, *, version: str) -> tuple[int, list[bytes]]:
    return await _page(session, _s, query)


async def cdr_page(session: AsyncSession, query: PageQuery, *, version: str) -> tuple[int, list[bytes]]:
    return await _page(session, _c, query)


async def session_document(session: AsyncSession, session_id: str, *, version: str) -> Document | None:
    return await _document(session, _s, session_id)


async def cdr_document(session: AsyncSession, cdr_id: str, *, version: str) -> Document | None:
    return await _document(session, _c, cdr_id)


async def session_bodies(session: AsyncSession, ids: Sequence[str], version: str) -> dict[str, bytes]:
    return await bodies_of(session, _s, ids)


async def cdr_bodies(session: AsyncSession, ids: Sequence[str], version: str) -> dict[str, bytes]:
    return await bodies_of(session, _c, ids)


async def active_count(session: AsyncSession) -> int:
    """Sessions not yet COMPLETED or INVALID (for the operator's view)."""
    finished = _s.c.status.in_(("COMPLETED", "INVALID"))
    return int((await session.execute(select(func.count()).select_from(_s).where(~finished))).scalar_one())
