"""EvseVO ingestion (docs/evsevo-to-ocpi.md): `PUT /evsevo/locations/{locationId}` with one location record of
the EvseVO family, `POST /evsevo/locations` with a JSON array of them, converted (ocpi_hub.evsevo.convert) and
stored with the Tariffs their prices make (ocpi_hub.stores.evsevo).

Each record gets a report: its id, its outcome (created, updated, unchanged, rejected), errors naming the JSON
path, the value and the rule, and the converter's warnings. A rejected record changes nothing. Records of an array
are independent: each is stored in its own transaction, and one rejected record does not stop the others.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, post, put
from litestar.params import FromQuery, JSONBody, PathParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.errors import seed_errors
from ocpi_hub.evsevo.convert import (
    ConversionError,
    Mode,
    decode_location_record,
    location_to_ocpi,
    said_location_id,
)
from ocpi_hub.push import outbox
from ocpi_hub.settings import Settings
from ocpi_hub.stores import evsevo

# The path parameter is named like the seed's (noqa: N803 below), because Litestar names it in its 400 messages.
LocationId = Annotated[str, PathParameter(min_length=1, max_length=36)]


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class RecordError(msgspec.Struct):
    path: str  # JSON path in the record, e.g. $.evses[0].connectors[1].connectorType
    value: Any
    rule: str


class Report(msgspec.Struct):
    id: str | None  # the location id; for a rejected record, what it says its id is, if anything
    outcome: Outcome
    errors: list[RecordError]
    warnings: list[str]


_HTTP_STATUS = {Outcome.CREATED: 201, Outcome.UPDATED: 200, Outcome.UNCHANGED: 200, Outcome.REJECTED: 400}


class EvseVoController(Controller):
    path = "/evsevo/locations"

    @put("/{locationId:str}", operation_id="putEvseVoLocation", responses=seed_errors(400))
    async def put_location(
        self,
        locationId: LocationId,  # noqa: N803
        data: JSONBody[Any],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
        mode: FromQuery[Mode] = Mode.STRICT,
    ) -> Response[Report]:
        """One location record, whose uid (or externalId) must be `locationId` when it has one. 201 created, 200
        updated or unchanged, 400 rejected; the body is the record's report either way."""
        report = await _ingest(db, config, data, location_id=locationId, mode=mode, now=now)
        return Response(report, status_code=_HTTP_STATUS[report.outcome])

    @post("/", status_code=200, operation_id="postEvseVoLocations", responses=seed_errors(400))
    async def post_locations(
        self,
        data: JSONBody[list[Any]],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
        mode: FromQuery[Mode] = Mode.STRICT,
    ) -> list[Report]:
        """A JSON array of location records (400 when the body is not an array): a report per record, in order."""
        return [await _ingest(db, config, record, location_id=None, mode=mode, now=now) for record in data]


async def _ingest(
    db: deps.Db, settings: Settings, raw: Any, *, location_id: str | None, mode: Mode, now: deps.Clock
) -> Report:
    moment = now()
    try:
        record = decode_location_record(raw)
    except ConversionError as exc:  # a wrong shape: msgspec's message says where
        return _rejected(location_id or said_location_id(raw), _shape_error(exc.rule, raw))
    try:
        converted = location_to_ocpi(
            record,
            location_id=location_id,
            parties=[p.key for p in settings.parties],
            default_party=settings.default_party.key,
            mode=mode,
            now=moment,
        )
    except ConversionError as exc:
        return _rejected(location_id or said_location_id(raw), RecordError(exc.path, exc.value, exc.rule))
    location, warnings = converted.value, list(converted.warnings)
    try:
        saved = await outbox.committed(
            db, lambda: evsevo.save_record(db, location, converted.tariffs, now=moment), now=moment
        )
    except (errors.Conflict, errors.Invalid) as exc:
        error = RecordError("$", f"{location.country_code}/{location.party_id}", exc.message)
        return Report(id=location.id, outcome=Outcome.REJECTED, errors=[error], warnings=warnings)
    if not saved.changes:
        outcome = Outcome.UNCHANGED
    elif saved.created:
        outcome = Outcome.CREATED
    else:
        outcome = Outcome.UPDATED
    return Report(id=saved.location.id, outcome=outcome, errors=[], warnings=warnings)


def _rejected(record_id: str | None, error: RecordError) -> Report:
    return Report(id=record_id, outcome=Outcome.REJECTED, errors=[error], warnings=[])


# msgspec's validation message: "<rule> - at `<path>`", without the suffix when the record itself is wrong.
_MSGSPEC_ERROR = re.compile(r"(?P<rule>.*?)(?: - at `(?P<path>\$[^`]*)`)?", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[([0-9]+)\]")


def _shape_error(message: str, raw: Any) -> RecordError:
    match = _MSGSPEC_ERROR.fullmatch(message)
    assert match is not None  # the pattern matches any text
    path = match["path"] or "$"
    value = raw
    for name, index in _STEP.findall(path):  # msgspec's path leads to a value of this very document
        value = value[int(index)] if index else value[name]
    return RecordError(path, value, match["rule"])
