"""Bulk loading of Locations: `PUT /locations` with a JSON array of registerLocation bodies, each with its `id`
(README "Internal API > Locations", docs/ocpi.md §11, "Writes in bulk").

All or nothing: every item is validated and converted first, and the first problem of each item is reported,
naming the item (its index and id) and the field; if any item is wrong, nothing is written. Otherwise all are
stored in one transaction through the store's batch write (ocpi_hub.stores.locations.save_locations), exactly as
registerLocation stores one, with their pushes queued; a refusal of the store (an id of another party, an unknown
Tariff) likewise writes nothing. The answer is the outcome of each item, in order.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec
from litestar import Controller, put
from litestar.params import Body

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.changes import Change
from ocpi_hub.csms import location as csms
from ocpi_hub.errors import seed_errors
from ocpi_hub.evsevo.convert import ConversionError
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import CiString36
from ocpi_hub.push import outbox
from ocpi_hub.stores import locations as store

MAX_ITEMS = 1000  # per request: a body of about 1 MB per 500 Locations of 4 EVSEs
_SHOWN = 20  # item errors named in the 400; the rest are counted


class BulkLocation(csms.Location, kw_only=True):
    """A registerLocation body with the location id that the single operation takes from its path."""

    id: CiString36


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class ItemOutcome(msgspec.Struct):
    id: str
    outcome: Outcome


class _Stored(msgspec.Struct):
    saved: list[store.Saved]
    changes: tuple[Change, ...]


_decode_item = msgspec.json.Decoder(BulkLocation).decode
_encode = msgspec.json.encode


class BulkController(Controller):
    path = "/locations"

    @put(
        "/",
        status_code=200,
        operation_id="putLocations",
        summary="Creates or replaces many locations at once, all or nothing",
        responses=seed_errors(400, 409),
    )
    async def put_locations(
        self,
        data: Annotated[list[Any], Body(description=f"registerLocation bodies with their id, at most {MAX_ITEMS}")],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
    ) -> list[ItemOutcome]:
        """Each item is stored as registerLocation stores one (EVSE statuses kept). 400 naming every wrong item
        (`items[i] (id X): <field>: <rule>`), 409 when an id belongs to another party; either way nothing is
        written."""
        if len(data) > MAX_ITEMS:
            raise errors.Invalid(f"body: at most {MAX_ITEMS} locations per request, got {len(data)}")
        moment = now()
        parties = [p.key for p in config.parties]
        locations: list[ocpi.Location] = []
        problems: list[str] = []
        first_of: dict[str, int] = {}
        for i, raw in enumerate(data):
            said = raw.get("id") if isinstance(raw, dict) else None
            where = f"items[{i}]" + (f" (id {said})" if isinstance(said, str) else "")
            try:
                item = _decode_item(_encode(raw))
                location = csms.seed_location_to_ocpi(item, location_id=item.id, now=moment, parties=parties)
            except msgspec.ValidationError as exc:
                problems.append(f"{where}: {_located(str(exc))}")
                continue
            except ConversionError as exc:
                problems.append(f"{where}: {exc}")
                continue
            earlier = first_of.setdefault(location.id.upper(), i)
            if earlier != i:
                problems.append(f"{where}: $.id: repeats the id of items[{earlier}]")
                continue
            locations.append(location)
        if problems:
            raise errors.Invalid(_listed(problems))

        async def write() -> _Stored:
            results = await store.save_locations(db, locations, now=moment, keep_status=True)
            refused = [(i, r) for i, r in enumerate(results) if not isinstance(r, store.Saved)]
            if refused:  # raised inside the transaction: it is rolled back, nothing stays
                message = _listed([f"items[{i}] (id {locations[i].id}): {r.message}" for i, r in refused])
                if all(isinstance(r, errors.Conflict) for _, r in refused):
                    raise errors.Conflict(message)
                raise errors.Invalid(message)
            saved = [r for r in results if isinstance(r, store.Saved)]
            return _Stored(saved, tuple(c for s in saved for c in s.changes))

        stored = await outbox.committed(db, write, now=moment)
        return [ItemOutcome(s.location.id, _outcome(s)) for s in stored.saved]


def _outcome(saved: store.Saved) -> Outcome:
    if saved.created:
        return Outcome.CREATED
    return Outcome.UPDATED if saved.changes else Outcome.UNCHANGED


def _located(message: str) -> str:
    """msgspec's "<rule> - at `$.path`" as "$.path: <rule>", the way every 400 of ours names the field."""
    rule, at, path = message.rpartition(" - at `")
    return f"{path.rstrip('`')}: {rule}" if at else f"$: {message}"


def _listed(problems: list[str]) -> str:
    shown = "; ".join(problems[:_SHOWN])
    return shown if len(problems) <= _SHOWN else f"{shown}; and {len(problems) - _SHOWN} more"
