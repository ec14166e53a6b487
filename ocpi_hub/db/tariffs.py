"""Tariffs as stored (OCPI 2.2.1 §11 Tariffs, docs/cpo-modules.md §3): one row per Tariff with its OCPI JSON, and
which Connectors name which Tariff.

`tariffs.seq` is the creation order the Sender list pages in (docs/ocpi.md §1.7). The body is the same for 2.2 and
2.2.1 peers: Tariffs did not change between the two. `origin` says who wrote the Tariff: the sync deletes the ones
it made once no Connector names them, and never one an operator put.

`connector_tariffs` holds, per Location, the (EVSE uid, Connector id, Tariff key) triples of its Connectors'
tariff_ids, rewritten with every write of the Location: a Tariff that a Connector names cannot be deleted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ForeignKey,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Select,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime
from ocpi_hub.db.locations import LocationRow
from ocpi_hub.db.sender import Document, PageQuery, bodies_of


class Origin(enum.StrEnum):
    API = "api"  # PUT /api/v0/tariffs/{id}
    SYNC = "sync"  # made from an EvseVO connector's prices (EvseVO endpoints and the sync)


class TariffRow(Base):
    __tablename__ = "tariffs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(36))  # as first given
    key: Mapped[str] = mapped_column(String(36), unique=True)  # id upper-cased: ids are CiStrings
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    origin: Mapped[str] = mapped_column(String(4))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class ConnectorTariff(Base):
    __tablename__ = "connector_tariffs"
    __table_args__ = (PrimaryKeyConstraint("location_seq", "evse_uid", "connector_id", "tariff_key"),)

    location_seq: Mapped[int] = mapped_column(Integer, ForeignKey("locations.seq"))
    evse_uid: Mapped[str] = mapped_column(String(36))
    connector_id: Mapped[str] = mapped_column(String(36))
    tariff_key: Mapped[str] = mapped_column(String(36), index=True)


_t = cast(Table, TariffRow.__table__)
_uses = cast(Table, ConnectorTariff.__table__)
_locations = cast(Table, LocationRow.__table__)

# Every Tariff, oldest first, as the outbox's initial push selects them.
EVERY: Select[Any] = select(_t.c.country_code, _t.c.party_id, _t.c.id).order_by(_t.c.seq)


@dataclass(frozen=True)
class Stored:
    id: str
    country_code: str
    party_id: str
    origin: Origin
    body: bytes


async def load(session: AsyncSession, tariff_id: str, *, for_update: bool = False) -> Stored | None:
    query = select(_t.c.id, _t.c.country_code, _t.c.party_id, _t.c.origin, _t.c.body).where(
        _t.c.key == tariff_id.upper()
    )
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else Stored(row.id, row.country_code, row.party_id, Origin(row.origin), row.body)


async def insert_tariff(
    session: AsyncSession,
    tariff_id: str,
    country_code: str,
    party_id: str,
    *,
    last_updated: datetime,
    origin: Origin,
    body: bytes,
) -> None:
    await session.execute(
        insert(_t).values(
            id=tariff_id,
            key=tariff_id.upper(),
            country_code=country_code,
            party_id=party_id,
            last_updated=last_updated,
            origin=origin,
            body=body,
        )
    )


async def update_tariff(session: AsyncSession, tariff_id: str, *, last_updated: datetime, body: bytes) -> None:
    await session.execute(update(_t).where(_t.c.key == tariff_id.upper()).values(last_updated=last_updated, body=body))


async def delete_tariff(session: AsyncSession, tariff_id: str) -> None:
    await session.execute(delete(_t).where(_t.c.key == tariff_id.upper()))


async def keys_of_party(session: AsyncSession, party: tuple[str, str], tariff_ids: Sequence[str]) -> set[str]:
    """Which of `tariff_ids` (upper-cased) are stored Tariffs of `party`."""
    if not tariff_ids:
        return set()
    query = select(_t.c.key).where(
        _t.c.key.in_({i.upper() for i in tariff_ids}), _t.c.country_code == party[0], _t.c.party_id == party[1]
    )
    return set((await session.execute(query)).scalars())


async def set_connector_tariffs(session: AsyncSession, location_key: str, uses: Sequence[tuple[str, str, str]]) -> None:
    """The (EVSE uid, Connector id, Tariff id) triples of a Location's Connectors, replacing what was recorded."""
    seq = select(_locations.c.seq).where(_locations.c.key == location_key.upper()).scalar_subquery()
    await session.execute(delete(_uses).where(_uses.c.location_seq == seq))
    if uses:
        rows = {(evse, connector, tariff.upper()) for evse, connector, tariff in uses}
        await session.execute(
            insert(_uses).values(location_seq=seq),
            [{"evse_uid": e, "connector_id": c, "tariff_key": t} for e, c, t in sorted(rows)],
        )


async def set_connector_tariffs_of(session: AsyncSession, uses: Mapping[int, Sequence[tuple[str, str, str]]]) -> None:
    """`set_connector_tariffs` for many Locations at once, by their seq: one DELETE and one INSERT of many rows."""
    seqs = list(uses)
    for first in range(0, len(seqs), 500):
        await session.execute(delete(_uses).where(_uses.c.location_seq.in_(seqs[first : first + 500])))
    rows = [
        {"location_seq": seq, "evse_uid": e, "connector_id": c, "tariff_key": t}
        for seq, triples in uses.items()
        for e, c, t in sorted({(evse, connector, tariff.upper()) for evse, connector, tariff in triples})
    ]
    if rows:
        await session.execute(insert(_uses), rows)


@dataclass(frozen=True)
class Use:
    location_id: str
    evse_uid: str
    connector_id: str


async def connectors_naming(session: AsyncSession, tariff_id: str, *, limit: int = 20) -> list[Use]:
    """Connectors whose tariff_ids name the Tariff (the first `limit`, in Location order)."""
    query = (
        select(_locations.c.id, _uses.c.evse_uid, _uses.c.connector_id)
        .join_from(_uses, _locations, _locations.c.seq == _uses.c.location_seq)
        .where(_uses.c.tariff_key == tariff_id.upper())
        .order_by(_locations.c.seq, _uses.c.evse_uid, _uses.c.connector_id)
        .limit(limit)
    )
    return [Use(*row) for row in await session.execute(query)]


async def unused(session: AsyncSession, *, origin: Origin) -> list[str]:
    """Ids of the Tariffs of `origin` that no Connector names."""
    named = select(_uses.c.tariff_key)
    query = select(_t.c.id).where(_t.c.origin == origin, _t.c.key.not_in(named)).order_by(_t.c.seq)
    return list((await session.execute(query)).scalars())


async def bodies(session: AsyncSession, tariff_ids: Sequence[str], version: str) -> dict[str, bytes]:
    """The JSON of these Tariffs (by upper-cased id); the same for every version."""
    return await bodies_of(session, _t, tariff_ids)


async def page(session: AsyncSession, query: PageQuery, *, version: str) -> tuple[int, list[bytes]]:
    """(total matching, the bodies of the page in creation order)."""
    conditions = []
    if query.date_from is not None:
        conditions.append(_t.c.last_updated >= query.date_from)
    if query.date_to is not None:
        conditions.append(_t.c.last_updated < query.date_to)
    if query.party is not None:
        conditions.append(and_(_t.c.country_code == query.party[0], _t.c.party_id == query.party[1]))
    total = (await session.execute(select(func.count()).select_from(_t).where(*conditions))).scalar_one()
    rows = await session.execute(
        select(_t.c.body).where(*conditions).order_by(_t.c.seq).offset(query.offset).limit(query.limit)
    )
    return total, list(rows.scalars())


async def document(session: AsyncSession, tariff_id: str, *, version: str) -> Document | None:
    """One Tariff's JSON with its owner."""
    row = (
        await session.execute(select(_t.c.body, _t.c.country_code, _t.c.party_id).where(_t.c.key == tariff_id.upper()))
    ).first()
    return None if row is None else Document(row.body, row.country_code, row.party_id)
