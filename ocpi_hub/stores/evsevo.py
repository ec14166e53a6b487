"""An EvseVO record as stored: the Tariffs its connectors' prices make, then its Location, in the caller's
transaction (docs/evsevo-to-ocpi.md §5.3). Used by the EvseVO endpoints and the sync alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub.changes import Change
from ocpi_hub.db.tariffs import Origin
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi import tariffs as ocpi_tariffs
from ocpi_hub.stores import locations, tariffs


@dataclass(frozen=True)
class Saved:
    location: ocpi.Location
    changes: tuple[Change, ...]  # the Tariffs' first: a Connector may only name a Tariff a partner already has
    created: bool  # the Location is new


async def save_record(
    session: AsyncSession,
    location: ocpi.Location,
    record_tariffs: Sequence[ocpi_tariffs.Tariff],
    *,
    now: datetime,
) -> Saved:
    changes: list[Change] = []
    for tariff in record_tariffs:
        changes += (await tariffs.put_tariff(session, tariff, now=now, origin=Origin.SYNC)).changes
    saved = await locations.save_location(session, location, now=now)
    return Saved(saved.location, (*changes, *saved.changes), saved.created)
