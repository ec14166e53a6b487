"""The registerLocation body (seed 002, `POST /location/{locationId}`, schema "Location") and its OCPI Location.

Names are the seed's schema names; import the module as a namespace (`csms.Location` against `ocpi.Location`).
Lengths and enums are OCPI's, so that msgspec rejects a wrong body with a path. What needs more than one field or
a lookup (our parties, ISO 3166, the GeoLocation patterns, a time zone) is checked by `seed_location_to_ocpi`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ocpi_hub.countries import alpha3_country
from ocpi_hub.evsevo.convert import ConversionError, verified
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import (
    CiString36,
    CiString48,
    CountryCode,
    PartyId,
    String10,
    String45,
    String255,
)
from ocpi_hub.timezones import time_zone_at

# The seed declares integer(int32).
Int32 = Annotated[int, Meta(ge=0, le=2**31 - 1)]


class _Body(msgspec.Struct, kw_only=True):
    """Base of the seed's bodies: snake_case as on the wire, unknown members ignored."""


class GeoLocation(_Body):
    # OCPI string(10)/string(11); the patterns are checked on conversion, to name the rule.
    latitude: Annotated[str, Meta(max_length=10)]
    longitude: Annotated[str, Meta(max_length=11)]


class Connector(_Body):
    id: CiString36
    # Any OCPI 2.2.1 ConnectorType, plus the seed's "UNKNOWN" that OCPI lacks: checked on conversion, because a
    # msgspec union cannot hold an enum and a literal string together.
    standard: str
    format: ocpi.ConnectorFormat
    power_type: Literal["AC_1_PHASE", "AC_3_PHASE", "DC"]  # the seed's subset of PowerType
    max_voltage: Int32
    max_amperage: Int32
    # Not in the seed: the ids of our Tariffs that apply (PUT /api/v0/tariffs/{id} first; OCPI Connector.tariff_ids).
    tariff_ids: list[CiString36] | None = None


class Evse(_Body, kw_only=True):  # kw_only repeated for mypy, which does not see it inherited
    uid: CiString36
    evse_id: CiString48 | None = None
    connectors: Annotated[list[Connector], Meta(min_length=1)]


class Location(_Body, kw_only=True):
    country_code: CountryCode
    party_id: PartyId
    name: String255 | None = None
    address: String255
    city: String45
    postal_code: String10 | None = None
    country: Annotated[str, Meta(min_length=2, max_length=3)]  # ISO 3166-1 alpha-2 or alpha-3
    coordinates: GeoLocation
    parking_type: ocpi.ParkingType | None = None
    evses: list[Evse] | None = None


def _standard(value: str, path: str) -> ocpi.ConnectorType:
    if value == "UNKNOWN":
        raise ConversionError(path, value, "is not an OCPI ConnectorType: register the connector's real standard")
    try:
        return ocpi.ConnectorType(value)
    except ValueError:
        raise ConversionError(path, value, "is not an OCPI 2.2.1 ConnectorType") from None


def _connector(body: Connector, path: str, now: datetime) -> ocpi.Connector:
    return ocpi.Connector(
        id=body.id,
        standard=_standard(body.standard, f"{path}.standard"),
        format=body.format,
        power_type=ocpi.PowerType(body.power_type),
        max_voltage=body.max_voltage,
        max_amperage=body.max_amperage,
        tariff_ids=body.tariff_ids or None,
        last_updated=now,
    )


def _evse(body: Evse, path: str, now: datetime) -> ocpi.EVSE:
    connectors: list[ocpi.Connector] = []
    for j, connector in enumerate(body.connectors):
        if any(c.id.upper() == connector.id.upper() for c in connectors):  # ids are CiStrings
            raise ConversionError(f"{path}.connectors[{j}].id", connector.id, "is not unique within the EVSE")
        connectors.append(_connector(connector, f"{path}.connectors[{j}]", now))
    # The CSMS registers equipment, not its state: the status stays UNKNOWN until a status update says otherwise.
    return ocpi.EVSE(
        uid=body.uid, evse_id=body.evse_id, status=ocpi.Status.UNKNOWN, connectors=connectors, last_updated=now
    )


def _conform(value: str, type_: object, path: str, what: str) -> None:
    try:
        msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise ConversionError(path, value, f"is not {what} ({exc})") from None


def _coordinates(body: GeoLocation) -> tuple[ocpi.GeoLocation, str]:
    """The GeoLocation and the IANA time zone at it."""
    _conform(body.latitude, ocpi.Latitude, "$.coordinates.latitude", "an OCPI GeoLocation latitude")
    _conform(body.longitude, ocpi.Longitude, "$.coordinates.longitude", "an OCPI GeoLocation longitude")
    time_zone = time_zone_at(float(body.latitude), float(body.longitude))
    if time_zone is None:
        raise ConversionError("$.coordinates", (body.latitude, body.longitude), "has no time zone (open sea?)")
    return ocpi.GeoLocation(latitude=body.latitude, longitude=body.longitude), time_zone


def seed_location_to_ocpi(
    body: Location, *, location_id: str, now: datetime, parties: Sequence[tuple[str, str]]
) -> ocpi.Location:
    """The OCPI Location that a registerLocation body describes, last changed `now`, published.

    What the body lacks is filled in: the time zone from the coordinates, and status UNKNOWN on every EVSE.
    """
    _conform(location_id, CiString36, "location_id", "an OCPI Location id")
    party = body.country_code.upper(), body.party_id.upper()
    if party not in {(c.upper(), p.upper()) for c, p in parties}:  # CiStrings
        raise ConversionError("$.party_id", (body.country_code, body.party_id), "is not one of our CPO parties")
    country = alpha3_country(body.country)
    if country is None:
        raise ConversionError("$.country", body.country, "is not an ISO 3166-1 alpha-2 or alpha-3 code")
    coordinates, time_zone = _coordinates(body.coordinates)
    evses: list[ocpi.EVSE] = []
    for i, evse in enumerate(body.evses or ()):
        if any(e.uid.upper() == evse.uid.upper() for e in evses):  # unique within the CPO platform
            raise ConversionError(f"$.evses[{i}].uid", evse.uid, "is not unique within the location")
        evses.append(_evse(evse, f"$.evses[{i}]", now))
    location = ocpi.Location(
        country_code=party[0],
        party_id=party[1],
        id=location_id,
        publish=True,
        name=body.name,
        address=body.address,
        city=body.city,
        postal_code=body.postal_code,
        country=country,
        coordinates=coordinates,
        parking_type=body.parking_type,
        evses=evses or None,
        time_zone=time_zone,
        last_updated=now,
    )
    return verified(location)
