"""Tariffs module objects (OCPI 2.2.1 mod_tariffs; docs/cpo-modules.md §3.3 and §3.4).

Tariffs have the same shape in OCPI 2.2 and 2.2.1 (docs/cpo-modules.md §3.7: no field changes; 2.2.1 only fixed the
`start_time` regex typo `2[1-3]`), so one set of models serves peers of both versions.

Cardinality as in ocpi/locations.py: `?` fields are `X | None = None`, `*` lists are `list[X] | None = None`, `+` lists
have at least one item; all omitted when unset. Prices and other numbers are JSON numbers decoded as floats: a round
trip keeps their value, not their spelling (`0.50` is sent back as `0.5`, `2.00` as `2.0`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

import pycountry
from msgspec import Meta

from ocpi_hub.ocpi.common import CiString36, CountryCode, DisplayText, OcpiStruct, PartyId, Url, json_encoder
from ocpi_hub.ocpi.locations import EnergyMix, HourMinute

CURRENCIES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)
"""The ISO 4217 alphabetic codes."""

if TYPE_CHECKING:
    CurrencyCode = str
else:
    # A Literal of every code rather than a pattern: msgspec then says "Invalid enum value 'XYZ' - at `$.currency`"
    # instead of quoting a 700-character regex, and the JSON schema lists the codes. Type checkers see `str`.
    CurrencyCode = Literal[tuple(sorted(CURRENCIES))]

# TariffRestrictions.start_date/end_date: the spec's regex, anchored (msgspec searches).
Date = Annotated[
    str, Meta(min_length=10, max_length=10, pattern=r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
]


class TariffType(enum.StrEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class TariffDimensionType(enum.StrEnum):
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class DayOfWeek(enum.StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class ReservationRestrictionType(enum.StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class Price(OcpiStruct, kw_only=True):
    excl_vat: float
    incl_vat: float | None = None


class PriceComponent(OcpiStruct, kw_only=True):
    type: TariffDimensionType
    price: float  # excluding VAT, per kWh, per hour, or per occurrence (FLAT)
    vat: float | None = None  # a percentage; absent means no VAT applies, which is not the same as 0.0
    step_size: Annotated[int, Meta(ge=0)]


class TariffRestrictions(OcpiStruct, kw_only=True):
    start_time: HourMinute | None = None
    end_time: HourMinute | None = None
    start_date: Date | None = None
    end_date: Date | None = None
    min_kwh: float | None = None
    max_kwh: float | None = None
    min_current: float | None = None
    max_current: float | None = None
    min_power: float | None = None
    max_power: float | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None


# A reservation element prices only FLAT and TIME, TIME being the reserved duration (docs/cpo-modules.md §3.4,
# `reservation`).
_RESERVATION_DIMENSIONS = frozenset({TariffDimensionType.FLAT, TariffDimensionType.TIME})


class TariffElement(OcpiStruct, kw_only=True):
    price_components: Annotated[list[PriceComponent], Meta(min_length=1)]
    restrictions: TariffRestrictions | None = None

    def __post_init__(self) -> None:
        reservation = self.restrictions is not None and self.restrictions.reservation is not None
        if reservation and any(c.type not in _RESERVATION_DIMENSIONS for c in self.price_components):
            raise ValueError("an element with a reservation restriction may only have FLAT and TIME components")


class Tariff(OcpiStruct, kw_only=True):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    currency: CurrencyCode
    type: TariffType | None = None  # absent: valid for every session
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: Url | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: Annotated[list[TariffElement], Meta(min_length=1)]  # order is significant
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: datetime


def render(obj: Tariff | Sequence[Tariff]) -> bytes:
    """JSON of a Tariff (or a list of them), unset optional fields left out."""
    return json_encoder.encode(obj)
