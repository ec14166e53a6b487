"""Tolerant wire models of the EvseVO family (docs/evsevo-to-ocpi.md §2).

Every field is optional and every scalar is typed loosely (`Scalar`), so that decoding only rejects a record whose
shape is wrong (an array where an object belongs). The values are judged by the converter, which names the path,
the value and the rule. Only the fields the converter maps are declared: the others (`updatedBy`, `structure`,
`locationType`, ...) are ignored, because validating unmapped fields broke other clients of this API when a new
value appeared (§1.3, `Hubpp`).
"""

from __future__ import annotations

import msgspec

# The SDK declares int, float, string or enum here; real data differs (uid int or string, externalId sometimes a
# number), so the converter decides.
Scalar = str | int | float | bool | None


class _Record(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of the EvseVO models: camelCase on the wire, unknown members ignored."""


class ElectricalProperties(_Record):
    power_type: Scalar = None
    voltage: Scalar = None
    amperage: Scalar = None
    max_electric_power: Scalar = None  # kW


class TariffVO(_Record):
    """A connector's prices (§2.6); `updated`, `updatedBy` and `structure` are not mapped."""

    start_fee: Scalar = None
    per_minute: Scalar = None
    # "perKWh" on the wire, which the camel-case rule would spell "perKwh".
    per_kwh: Scalar = msgspec.field(default=None, name="perKWh")
    currency: Scalar = None


class ConnectorVO(_Record):
    uid: Scalar = None
    external_id: Scalar = None
    connector_type: Scalar = None
    electrical_properties: ElectricalProperties | None = None
    fixed_cable: Scalar = None
    tariff: TariffVO | None = None
    updated: Scalar = None
    deleted: Scalar = None


class EvseVO(_Record):
    uid: Scalar = None
    external_id: Scalar = None
    evse_id: Scalar = None
    status: Scalar = None
    connectors: list[ConnectorVO] | None = None
    # A single enum in the SDK, an array on the wire (§3.3).
    authorization_methods: Scalar | list[Scalar] = None
    updated: Scalar = None
    deleted: Scalar = None
    physical_reference: Scalar = None


class Coordinates(_Record):
    latitude: Scalar = None
    longitude: Scalar = None


class Address(_Record):
    street_and_number: Scalar = None
    postal_code: Scalar = None
    city: Scalar = None
    country: Scalar = None


class Accessibility(_Record):
    status: Scalar = None


class OpeningHours(_Record):
    week_day: Scalar = None
    start_time: Scalar = None
    end_time: Scalar = None


class EvseVOLocation(_Record):
    """The parent location record (`LocationResponeObject` in the SDK), with the members seen in real data (§2.5)."""

    uid: Scalar = None
    external_id: Scalar = None
    coordinates: Coordinates | None = None
    operator_name: Scalar = None
    suboperator_name: Scalar = None
    operator_id: Scalar = None
    country_code: Scalar = None
    party_id: Scalar = None
    address: Address | None = None
    accessibility: Accessibility | None = None
    opening_hours: list[OpeningHours] | None = None
    open_twenty_four_seven: Scalar = None
    updated: Scalar = None
    evses: list[EvseVO] | None = None
