"""The Tariffs store (OCPI 2.2.1 §11, docs/cpo-modules.md §3): every write of a Tariff and what it changes.

- A Tariff is compared ignoring last_updated; storing what is stored changes and writes nothing.
- A changed or new Tariff gets last_updated = max(now, the given value, the stored value), as Locations do.
- A tariff id belongs to one party for good, and is unique on the whole platform.
- A Tariff that a Connector names cannot be deleted: the Connector must stop naming it first, so that no eMSP is
  left with a Connector pointing at nothing (docs/cpo-modules.md §3.6).

Each write returns its change: PUT of the whole Tariff, or DELETE (Tariffs have no PATCH). Not committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import errors
from ocpi_hub.changes import Change, Method, ObjectKey, Written
from ocpi_hub.db import tariffs as db
from ocpi_hub.db.tariffs import Origin
from ocpi_hub.ocpi import tariffs as ocpi
from ocpi_hub.ocpi.common import to_utc
from ocpi_hub.ocpi.versions import ModuleID

_decode = msgspec.json.Decoder(ocpi.Tariff).decode


@dataclass(frozen=True)
class Saved:
    tariff: ocpi.Tariff  # as stored after the call
    changes: tuple[Change, ...]  # empty: nothing changed and nothing was written
    created: bool = False


def _change(tariff: ocpi.Tariff | db.Stored, method: Method) -> Change:
    return Change(ModuleID.TARIFFS, ObjectKey(tariff.country_code, tariff.party_id, tariff.id), method)


async def get(session: AsyncSession, tariff_id: str) -> ocpi.Tariff:
    stored = await db.load(session, tariff_id)
    if stored is None:
        raise errors.NotFound(f"no tariff {tariff_id}")
    return _decode(stored.body)


async def put_tariff(session: AsyncSession, tariff: ocpi.Tariff, *, now: datetime, origin: Origin) -> Saved:
    """Create or replace a Tariff (not committed). Raises errors.Conflict when its id belongs to another party."""
    tariff = msgspec.structs.replace(tariff, country_code=tariff.country_code.upper(), party_id=tariff.party_id.upper())
    stored = await db.load(session, tariff.id, for_update=True)
    if stored is None:
        new = msgspec.structs.replace(tariff, last_updated=max(to_utc(now), to_utc(tariff.last_updated)))
        await db.insert_tariff(
            session,
            new.id,
            new.country_code,
            new.party_id,
            last_updated=new.last_updated,
            origin=origin,
            body=ocpi.render(new),
        )
        return Saved(new, (_change(new, Method.PUT),), created=True)
    if (stored.country_code, stored.party_id) != (tariff.country_code, tariff.party_id):
        raise errors.Conflict(
            f"tariff {stored.id} belongs to {stored.country_code}/{stored.party_id}: a tariff id belongs to one party"
        )
    old = _decode(stored.body)
    tariff = msgspec.structs.replace(tariff, id=old.id)
    if msgspec.structs.replace(tariff, last_updated=old.last_updated) == old:
        return Saved(old, ())
    new = msgspec.structs.replace(tariff, last_updated=max(to_utc(now), to_utc(tariff.last_updated), old.last_updated))
    await db.update_tariff(session, new.id, last_updated=new.last_updated, body=ocpi.render(new))
    return Saved(new, (_change(new, Method.PUT),))


async def delete_tariff(session: AsyncSession, tariff_id: str) -> Written:
    """Delete a Tariff no Connector names (not committed). Raises errors.NotFound, or errors.Conflict naming the
    Connectors that still name it."""
    stored = await db.load(session, tariff_id, for_update=True)
    if stored is None:
        raise errors.NotFound(f"no tariff {tariff_id}")
    uses = await db.connectors_naming(session, tariff_id)
    if uses:
        named = ", ".join(f"{u.location_id}/{u.evse_uid}/{u.connector_id}" for u in uses)
        raise errors.Conflict(
            f"tariff {stored.id} is named by connectors {named}: remove it from their tariff_ids first"
        )
    await db.delete_tariff(session, tariff_id)
    return Written((_change(stored, Method.DELETE),))


async def delete_unused(session: AsyncSession, *, origin: Origin) -> Written:
    """Delete the Tariffs of `origin` that no Connector names (the sync's own, once no connector has their prices)."""
    changes: list[Change] = []
    for tariff_id in await db.unused(session, origin=origin):
        changes += (await delete_tariff(session, tariff_id)).changes
    return Written(tuple(changes))
