"""Sessions and CDRs module objects (OCPI 2.2.1 mod_sessions and mod_cdrs; docs/cpo-modules.md §2, §4.2, §5.3).

We only send these objects (we are the Sender of both modules), so the models describe what we emit; they are
also what a strict receiver checks, which tests/test_sessions_e2e.py does with them. Cardinality as in
ocpi/locations.py. One body serves 2.2.1 and 2.2 peers: the only difference is CdrToken.country_code/party_id,
new in 2.2.1, which a 2.2 receiver ignores as an unknown field (docs/cpo-modules.md §4.7).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from msgspec import Meta

from ocpi_hub.ocpi.common import (
    CiString36,
    CiString39,
    CiString48,
    CountryCode,
    OcpiStruct,
    PartyId,
    String10,
    String20,
    String45,
    String255,
)
from ocpi_hub.ocpi.locations import ConnectorFormat, ConnectorType, CountryAlpha3, GeoLocation, PowerType
from ocpi_hub.ocpi.tariffs import CurrencyCode, Price, Tariff
from ocpi_hub.ocpi.tokens import ContractId, ProfileType, TokenType, TokenUid


class AuthMethod(enum.StrEnum):
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class SessionStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class CdrDimensionType(enum.StrEnum):
    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


class ChargingPreferencesResponse(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    DEPARTURE_REQUIRED = "DEPARTURE_REQUIRED"
    ENERGY_NEED_REQUIRED = "ENERGY_NEED_REQUIRED"
    NOT_POSSIBLE = "NOT_POSSIBLE"
    PROFILE_TYPE_NOT_SUPPORTED = "PROFILE_TYPE_NOT_SUPPORTED"


class ChargingPreferences(OcpiStruct, kw_only=True):
    profile_type: ProfileType
    departure_time: datetime | None = None
    energy_need: float | None = None
    discharge_allowed: bool | None = None


class CdrToken(OcpiStruct, kw_only=True):
    country_code: CountryCode
    party_id: PartyId
    uid: TokenUid
    type: TokenType
    contract_id: ContractId


class CdrDimension(OcpiStruct, kw_only=True):
    type: CdrDimensionType
    volume: float  # within the period, not cumulative


class ChargingPeriod(OcpiStruct, kw_only=True):
    start_date_time: datetime
    dimensions: Annotated[list[CdrDimension], Meta(min_length=1)]
    tariff_id: CiString36 | None = None


class Session(OcpiStruct, kw_only=True):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    start_date_time: datetime
    end_date_time: datetime | None = None
    kwh: float
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: String255 | None = None
    currency: CurrencyCode
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None  # absent is not free: it is unknown (no Tariff)
    status: SessionStatus
    last_updated: datetime


class CdrLocation(OcpiStruct, kw_only=True):
    id: CiString36
    name: String255 | None = None
    address: String45  # 45, not the Location's 255 (docs/cpo-modules.md §10, defect 4)
    city: String45
    postal_code: String10 | None = None
    state: String20 | None = None
    country: CountryAlpha3
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: CiString48
    connector_id: CiString36
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class CDR(OcpiStruct, kw_only=True):
    country_code: CountryCode
    party_id: PartyId
    id: CiString39
    start_date_time: datetime
    end_date_time: datetime
    session_id: CiString36 | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    cdr_location: CdrLocation
    meter_id: String255 | None = None
    currency: CurrencyCode
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Meta(min_length=1)]
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: float
    total_energy_cost: Price | None = None
    total_time: float
    total_time_cost: Price | None = None
    total_parking_time: float | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: String255 | None = None
    invoice_reference_id: CiString39 | None = None
    credit: bool | None = None
    credit_reference_id: CiString39 | None = None
    home_charging_compensation: bool | None = None
    last_updated: datetime
