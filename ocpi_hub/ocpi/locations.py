"""Locations module objects (OCPI 2.2.1 mod_locations; docs/ocpi.md §5.4 to §5.9), and the view of them a 2.2 peer may
see.

Cardinality follows the spec: `1` fields have no default, `?` fields are `X | None = None` and `*` lists are
`list[X] | None = None` (the spec lets an empty list be null, `[]` or absent), all omitted when unset. Rules that
tie two fields together live in `__post_init__`, which msgspec runs on decoding, so they also fail as a
`msgspec.ValidationError` naming the path.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from ocpi_hub.ocpi.common import (
    BusinessDetails,
    CiString36,
    CiString48,
    CountryCode,
    DisplayText,
    Image,
    OcpiStruct,
    PartyId,
    String4,
    String10,
    String16,
    String45,
    String64,
    String255,
    Url,
    json_encoder,
)
from ocpi_hub.ocpi.tokens import TokenType
from ocpi_hub.ocpi.versions import VersionNumber

# GeoLocation (docs/ocpi.md §5.8): strings, not JSON numbers, with 5 to 7 decimals. The spec's regexes are unanchored;
# msgspec searches, so they are anchored here.
Latitude = Annotated[str, Meta(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
Longitude = Annotated[str, Meta(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")]
# RegularHours period (docs/ocpi.md §5.8), with the 2.2.1 fix of the 2.2 typo `2[1-3]`.
HourMinute = Annotated[str, Meta(min_length=5, max_length=5, pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]
# Location.country is ISO 3166-1 alpha-3 (country_code is alpha-2).
CountryAlpha3 = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]


class ParkingType(enum.StrEnum):
    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class Facility(enum.StrEnum):
    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class Status(enum.StrEnum):
    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


class Capability(enum.StrEnum):
    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorType(enum.StrEnum):
    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class ConnectorFormat(enum.StrEnum):
    SOCKET = "SOCKET"
    CABLE = "CABLE"


class PowerType(enum.StrEnum):
    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class ParkingRestriction(enum.StrEnum):
    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"


class EnergySourceCategory(enum.StrEnum):
    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class EnvironmentalImpactCategory(enum.StrEnum):
    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class GeoLocation(OcpiStruct):
    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiStruct):
    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class RegularHours(OcpiStruct):
    weekday: Annotated[int, Meta(ge=1, le=7)]
    period_begin: HourMinute
    period_end: HourMinute

    def __post_init__(self) -> None:
        # "period_end must be later than period_begin": overnight periods are split over two weekdays.
        if self.period_end <= self.period_begin:
            raise ValueError("period_end must be later than period_begin")


class ExceptionalPeriod(OcpiStruct):
    period_begin: datetime
    period_end: datetime


class Hours(OcpiStruct):
    twentyfourseven: bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None

    def __post_init__(self) -> None:
        # regular_hours: "Only to be used if twentyfourseven=false, then this field needs to contain at least one
        # RegularHours object."
        if self.twentyfourseven and self.regular_hours:
            raise ValueError("regular_hours must be absent when twentyfourseven is true")
        if not self.twentyfourseven and not self.regular_hours:
            raise ValueError("regular_hours needs at least one entry when twentyfourseven is false")


class EnergySource(OcpiStruct):
    source: EnergySourceCategory
    percentage: Annotated[float, Meta(ge=0, le=100)]


class EnvironmentalImpact(OcpiStruct):
    category: EnvironmentalImpactCategory
    amount: float


class EnergyMix(OcpiStruct):
    is_green_energy: bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: String64 | None = None
    energy_product_name: String64 | None = None


class PublishTokenType(OcpiStruct):
    uid: CiString36 | None = None
    type: TokenType | None = None
    visual_number: String64 | None = None
    issuer: String64 | None = None
    group_id: CiString36 | None = None

    def __post_init__(self) -> None:
        # The three SHALLs of PublishTokenType (docs/ocpi.md §5.8).
        if self.uid is None and self.visual_number is None and self.group_id is None:
            raise ValueError("at least one of uid, visual_number or group_id must be set")
        if self.uid is not None and self.type is None:
            raise ValueError("type must be set when uid is set")
        if self.visual_number is not None and self.issuer is None:
            raise ValueError("issuer must be set when visual_number is set")


# `kw_only=True` is inherited from OcpiStruct; it is repeated on the classes that list a required field after an
# optional one (in the spec's order) because mypy does not see that Struct options are inherited.
class StatusSchedule(OcpiStruct, kw_only=True):
    period_begin: datetime
    period_end: datetime | None = None
    status: Status


class Connector(OcpiStruct, kw_only=True):
    id: CiString36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None = None
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: Url | None = None
    last_updated: datetime


class EVSE(OcpiStruct, kw_only=True):
    uid: CiString36
    evse_id: CiString48 | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], Meta(min_length=1)]
    floor_level: String4 | None = None
    coordinates: GeoLocation | None = None
    physical_reference: String16 | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: datetime


class Location(OcpiStruct, kw_only=True):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    publish: bool
    publish_allowed_to: list[PublishTokenType] | None = None
    name: String255 | None = None
    address: String255  # string(45) before the post-d2 erratum
    city: String45
    postal_code: String10 | None = None
    state: String45 | None = None  # string(20) before the post-d2 erratum
    country: CountryAlpha3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String255
    opening_times: Hours | None = None
    charging_when_closed: bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: datetime


# Values that OCPI 2.2 does not define (docs/ocpi.md §8.1), so a 2.2 peer must never receive them.
ONLY_IN_2_2_1: frozenset[ConnectorType | PowerType | Capability] = frozenset(
    {
        ConnectorType.CHAOJI,
        ConnectorType.DOMESTIC_M,
        ConnectorType.DOMESTIC_N,
        ConnectorType.DOMESTIC_O,
        ConnectorType.GBT_AC,
        ConnectorType.GBT_DC,
        ConnectorType.NEMA_5_20,
        ConnectorType.NEMA_6_30,
        ConnectorType.NEMA_6_50,
        ConnectorType.NEMA_10_30,
        ConnectorType.NEMA_10_50,
        ConnectorType.NEMA_14_30,
        ConnectorType.NEMA_14_50,
        PowerType.AC_2_PHASE,
        PowerType.AC_2_PHASE_SPLIT,
        Capability.START_SESSION_CONNECTOR_REQUIRED,
    }
)


def _for_2_2(version: str) -> bool:
    if version == VersionNumber.V2_2_1:
        return False
    if version == VersionNumber.V2_2:
        return True
    raise ValueError(f"no Locations view for OCPI version {version!r}")


def connector_for_version(connector: Connector, version: str) -> Connector | None:
    """The connector as a peer speaking `version` may see it, or None when its standard or power type is 2.2.1-only."""
    if _for_2_2(version) and (connector.standard in ONLY_IN_2_2_1 or connector.power_type in ONLY_IN_2_2_1):
        return None
    return connector


def evse_for_version(evse: EVSE, version: str) -> EVSE | None:
    """The EVSE as a peer speaking `version` may see it, or None when none of its connectors can be shown."""
    if not _for_2_2(version):
        return evse
    connectors = [c for c in evse.connectors if connector_for_version(c, version) is not None]
    if not connectors:
        return None  # EVSE.connectors is `+`: an EVSE without connectors is not an EVSE
    capabilities = [c for c in evse.capabilities or () if c not in ONLY_IN_2_2_1] or None
    return msgspec.structs.replace(evse, connectors=connectors, capabilities=capabilities)


def for_version(location: Location, version: str) -> Location:
    """The Location as a peer speaking `version` may see it: what 2.2 does not define is left out."""
    if not _for_2_2(version):
        return location
    evses = [e for e in (evse_for_version(e, version) for e in location.evses or ()) if e is not None]
    return msgspec.structs.replace(location, evses=evses or None)


def render(obj: object) -> bytes:
    """JSON of an OCPI object (or a list of them), unset optional fields left out."""
    return json_encoder.encode(obj)


S = TypeVar("S", bound=OcpiStruct)


def checked(obj: S) -> S:
    """`obj` after a round trip through JSON, which enforces every constraint that construction in Python skips.

    Raises msgspec.ValidationError naming the path and the rule of the first violation.
    """
    return msgspec.json.decode(json_encoder.encode(obj), type=type(obj))


def child(location: dict[str, Any], evse_uid: str, connector_id: str = "") -> dict[str, Any] | None:
    """The EVSE or Connector that `evse_uid` (and `connector_id`) name in a Location's JSON, or the Location itself
    when `evse_uid` is empty; ids compared case-insensitively (they are CiStrings)."""
    if not evse_uid:
        return location
    evse = _named(location.get("evses"), "uid", evse_uid)
    if evse is None or not connector_id:
        return evse
    return _named(evse.get("connectors"), "id", connector_id)


def _named(items: list[dict[str, Any]] | None, key: str, wanted: str) -> dict[str, Any] | None:
    return next((item for item in items or () if item[key].upper() == wanted.upper()), None)
