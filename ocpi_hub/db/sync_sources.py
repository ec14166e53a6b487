"""The locations the scheduled sync manages, with a hash of the source record each was last brought up to date from.

A location is managed by the sync from the first time a source record of it was stored, until it vanished from the
source and was removed: locations created only through the internal API have no row here and are never removed by
the sync. The hash lets a run skip an unchanged record without converting it or loading its location.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime, insert_on_conflict


class SyncSource(Base):
    __tablename__ = "sync_sources"

    key: Mapped[str] = mapped_column(String(36), primary_key=True)  # the location id upper-cased, as locations.key
    source_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


_table = cast(Table, SyncSource.__table__)


async def hashes(session: AsyncSession) -> dict[str, str]:
    """Every managed location's key with its source hash."""
    rows = await session.execute(select(_table.c.key, _table.c.source_hash))
    return {row.key: row.source_hash for row in rows}


async def upsert(session: AsyncSession, source_hashes: Mapping[str, str], *, now: datetime) -> None:
    """Record these hashes (key → hash), inserting or replacing; not committed."""
    if not source_hashes:
        return
    rows = [{"key": key, "source_hash": value, "updated_at": now} for key, value in source_hashes.items()]
    statement = insert_on_conflict(session, _table)
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[_table.c.key],
            set_={"source_hash": excluded.source_hash, "updated_at": excluded.updated_at},
        ),
        rows,
    )


async def forget(session: AsyncSession, keys: Collection[str]) -> None:
    """The sync no longer manages these locations; not committed."""
    if keys:
        await session.execute(delete(_table).where(_table.c.key.in_(keys)))
