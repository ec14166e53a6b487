"""registerLocation (seed 002, `POST /location/{locationId}`) and the EVSE status change that follows it in real
life (`POST /location/{locationId}/evse/{evseUid}/status`), both stored as OCPI Locations
(ocpi_hub.stores.locations); and what we publish, as stored: `GET /location/{locationId}` and the list
`GET /locations` (docs/operations.md §8.1)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.csms import location as csms
from ocpi_hub.db import locations as locations_db
from ocpi_hub.db import sqlite_driver
from ocpi_hub.db.sender import PageQuery
from ocpi_hub.errors import seed_errors
from ocpi_hub.evsevo.convert import ConversionError
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.versions import VersionNumber
from ocpi_hub.push import outbox
from ocpi_hub.stores import locations as store

# The seed's parameter names are kept (noqa: N803 below) because Litestar names them in its 400 messages.
LocationId = Annotated[str, PathParameter(min_length=1, max_length=36)]
EvseUid = Annotated[str, PathParameter(min_length=1, max_length=36)]
Offset = Annotated[int, QueryParameter(ge=0, description="Locations to skip, in creation order")]
Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Locations in the page, at most 1000")]

# The four statuses of the EvseVO family, as ocpi_hub.evsevo.convert maps them (docs/evsevo-to-ocpi.md §4.2).
_EVSEVO_STATUS = {
    "available": ocpi.Status.AVAILABLE,
    "occupied": ocpi.Status.CHARGING,
    "unavailable": ocpi.Status.INOPERATIVE,
    "unknown": ocpi.Status.UNKNOWN,
}
_OCPI_STATUS = {s.value: s for s in ocpi.Status}
_ALLOWED = ", ".join([*ocpi.Status, "or the EvseVO Available, Occupied, Unavailable, Unknown"])


class EvseStatus(msgspec.Struct):
    status: str  # an OCPI Status, or an EvseVO status in any letter case


def _status(value: str) -> ocpi.Status:
    status = _OCPI_STATUS.get(value.upper()) or _EVSEVO_STATUS.get(value.lower())
    if status is None:
        raise errors.Invalid(f"status: {value!r} is not one of {_ALLOWED}")
    return status


class LocationController(Controller):
    path = "/location"

    @post(
        "/{locationId:str}",
        status_code=201,
        operation_id="registerLocation",
        summary="Registers a location with the CSMS",
        responses=seed_errors(400, 409),
    )
    async def register_location(
        self,
        locationId: LocationId,  # noqa: N803
        data: JSONBody[csms.Location],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
    ) -> ocpi.Location:
        """Creates or replaces the location, answering the full OCPI Location as stored. What the body lacks is
        filled in: the time zone from the coordinates, publish true, and EVSE status UNKNOWN until a status
        arrives (an EVSE already stored keeps its status)."""
        moment = now()
        parties = [p.key for p in config.parties]
        try:
            location = csms.seed_location_to_ocpi(data, location_id=locationId, now=moment, parties=parties)
        except ConversionError as exc:
            raise errors.Invalid(str(exc)) from None
        saved = await outbox.committed(
            db, lambda: store.save_location(db, location, now=moment, keep_status=True), now=moment
        )
        return saved.location

    @post(
        "/{locationId:str}/evse/{evseUid:str}/status",
        status_code=200,
        operation_id="setEvseStatus",
        summary="Sets the status of an EVSE",
        responses=seed_errors(400, 404),
    )
    async def set_status(
        self,
        locationId: LocationId,  # noqa: N803
        evseUid: EvseUid,  # noqa: N803
        data: JSONBody[EvseStatus],
        db: deps.Db,
        now: deps.Clock,
    ) -> ocpi.EVSE:
        """Answers the EVSE as stored. The same status again changes nothing (last_updated included)."""
        status = _status(data.status)
        moment = now()
        with sqlite_driver.on_the_loop():  # one row and its deliveries: short statements
            saved = await outbox.committed(
                db, lambda: store.set_evse_status(db, locationId, evseUid, status, now=moment), now=moment
            )
        evse = store.find(saved.location.evses or (), evseUid, lambda e: e.uid)
        assert evse is not None  # set_evse_status found it
        return evse

    @get(
        "/{locationId:str}",
        operation_id="getLocation",
        summary="A location as stored",
        responses=seed_errors(404),
    )
    async def get_location(self, locationId: LocationId, db: deps.Db) -> Response[bytes]:  # noqa: N803
        """The OCPI 2.2.1 Location as stored, byte for byte what the Locations Sender serves; 404 unknown."""
        found = await locations_db.document(db, locationId, version=VersionNumber.V2_2_1)
        if found is None:
            raise errors.NotFound(f"locationId: no location {locationId!r}")
        return Response(found.body, media_type="application/json")


class LocationsController(Controller):
    path = "/locations"

    @get("/", operation_id="listLocations", summary="List the locations as stored", responses=seed_errors(400))
    async def list_locations(self, db: deps.Db, offset: Offset = 0, limit: Limit = 100) -> Response[bytes]:
        """`{"total": n, "offset": o, "limit": l, "locations": [...]}`: every stored Location of our parties, in
        the order they were created (a stable order: a new Location comes last), as the OCPI 2.2.1 JSON stored."""
        total, bodies = await locations_db.page(db, PageQuery(offset, limit), version=VersionNumber.V2_2_1)
        head = f'{{"total":{total},"offset":{offset},"limit":{limit},"locations":['.encode()
        return Response(head + b",".join(bodies) + b"]}", media_type="application/json")
