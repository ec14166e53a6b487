"""What the status page counts besides the partners (docs/operations.md §5): Locations and their EVSEs by status,
open commands, and the locations the sync manages. Read-only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub.db.commands import CommandRow, CommandState
from ocpi_hub.db.locations import LocationDocument
from ocpi_hub.db.sync_sources import SyncSource


class _Evse(msgspec.Struct):
    status: str


class _Location(msgspec.Struct):
    """Only what is counted of a stored Location: decoding skips the rest of the document."""

    publish: bool = True
    evses: list[_Evse] = msgspec.field(default_factory=list)


_decode = msgspec.json.Decoder(_Location).decode


@dataclass(frozen=True)
class LocationCounts:
    published: int
    unpublished: int  # publish false: stored, not shown to eMSPs
    evses: dict[str, int]  # EVSEs by OCPI status, REMOVED included


async def location_counts(session: AsyncSession) -> LocationCounts:
    """Every stored Location's 2.2.1 document, streamed (the EVSE statuses live only in the documents)."""
    published = unpublished = 0
    statuses: Counter[str] = Counter()
    bodies = await session.stream_scalars(select(LocationDocument.body_221).execution_options(yield_per=1000))
    async for body in bodies:
        location = _decode(body)
        if location.publish:
            published += 1
        else:
            unpublished += 1
        statuses.update(evse.status for evse in location.evses)
    return LocationCounts(published, unpublished, dict(sorted(statuses.items())))


async def open_commands(session: AsyncSession) -> int:
    """Commands waiting for the charger's result."""
    query = select(func.count()).select_from(CommandRow).where(CommandRow.state == CommandState.OPEN)
    return int((await session.execute(query)).scalar_one())


@dataclass(frozen=True)
class SyncState:
    managed: int  # locations the sync manages
    last_change: datetime | None  # when a sync last stored a changed record


async def sync_state(session: AsyncSession) -> SyncState:
    row = (await session.execute(select(func.count(), func.max(SyncSource.updated_at)))).one()
    return SyncState(int(row[0]), row[1])
