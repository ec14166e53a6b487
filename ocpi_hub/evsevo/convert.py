"""EvseVO family → OCPI 2.2.1 Location, EVSE, Connector (docs/evsevo-to-ocpi.md §4 to §6) and Tariff (§5.3).

Pure: no I/O and no clock; a reference time is passed in where a rule needs one. Two modes (§6.5): STRICT (the
default) fails on unknown or unmappable connector types and unknown statuses; LENIENT drops the connector (and an
EVSE left without connectors), or uses UNKNOWN for the status, and reports a warning next to the result. In both
modes an optional OCPI field with a bad value is left out with a warning (§6.3), and a required one that cannot
be produced raises ConversionError naming the JSON path of the source, the value and the rule (§6.2).

Status choice (§4.2): `Unavailable` → INOPERATIVE, not OUTOFORDER. The source folds OCPP Unavailable and Faulted
into one value, so it cannot claim "broken" (OUTOFORDER); INOPERATIVE ("temporarily unavailable, not broken") is
the usual OCPP → OCPI convention.

Tariffs (§2.6, §5.3; our rules, the mapping document only sketches them). A connector's `tariff` (TariffVO) becomes
one OCPI Tariff of one element: `startFee` → FLAT, `perKWh` → ENERGY (per kWh), `perMinute` → TIME at perMinute * 60
per hour (OCPI prices time per hour; TIME, not PARKING_TIME: we read it as charging time). Every step_size is 1 (the
errata's advice for our own tariffs); no `vat`, since the source does not say and OCPI prices exclude VAT. Zero and
absent prices are left out; a TariffVO without any price above 0 becomes the free-of-charge tariff (one FLAT of 0).
`updated`, `updatedBy` and `structure` are not mapped. The Tariff belongs to the Location's party and its id is
"EVSEVO-" + 29 hex digits of a SHA-256 over (country_code, party_id, currency, the prices as normalised decimals):
connectors with the same prices share one Tariff, and a price change gives a new id, so a Tariff is never edited
under a running session (docs/cpo-modules.md §3.6). Its last_updated is the conversion's `now`; the connector gets
`tariff_ids = [id]`. A bad TariffVO (currency not ISO 4217, a price that is not a number ≥ 0) follows the mode:
STRICT fails, LENIENT leaves the tariff out (no tariff_ids) with a warning. Only location_to_ocpi converts tariffs:
an EVSE alone does not name the party that owns them.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Generic, TypeVar

import msgspec

from ocpi_hub.countries import alpha3_country
from ocpi_hub.evsevo.models import ConnectorVO, EvseVO, EvseVOLocation, OpeningHours, Scalar, TariffVO
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi import tariffs as ocpi_tariffs
from ocpi_hub.ocpi.common import BusinessDetails, OcpiStruct, to_utc
from ocpi_hub.timezones import time_zone_at

T = TypeVar("T")
S = TypeVar("S", bound=OcpiStruct)


class ConversionError(Exception):
    """A source value that cannot become the OCPI value it must: where it is, what it is, and the rule it breaks."""

    def __init__(self, path: str, value: object, rule: str) -> None:
        super().__init__(path, value, rule)
        self.path = path
        self.value = value
        self.rule = rule

    def __str__(self) -> str:
        return f"{self.path}: {self.value!r} {self.rule}"


class _NoConnectorsError(ConversionError):
    """An EVSE without a connector that OCPI can show: LENIENT drops the EVSE instead (§4.4)."""


class Mode(enum.StrEnum):
    STRICT = "strict"
    LENIENT = "lenient"


@dataclass(frozen=True)
class Converted(Generic[T]):
    value: T
    warnings: tuple[str, ...]
    tariffs: tuple[ocpi_tariffs.Tariff, ...] = ()
    """The Tariffs named in the value's `tariff_ids`, one per id, in order of first mention (location_to_ocpi)."""


@dataclass
class _Run:
    mode: Mode
    warnings: list[str] = field(default_factory=list)

    def warn(self, path: str, value: object, message: str) -> None:
        self.warnings.append(str(ConversionError(path, value, message)))

    def optional(self, produce: Callable[[], T]) -> T | None:
        """An optional OCPI field: a bad value leaves the field out with a warning, in every mode (§6.3)."""
        try:
            return produce()
        except ConversionError as exc:
            self.warnings.append(f"{exc}; left out")
            return None

    def lenient(self, produce: Callable[[], T], consequence: str = "left out") -> T | None:
        """A value STRICT mode fails on and LENIENT mode does without, with a warning."""
        try:
            return produce()
        except ConversionError as exc:
            if self.mode is Mode.STRICT:
                raise
            self.warnings.append(f"{exc}; {consequence}")
            return None


def _present(value: Scalar) -> bool:
    """Null, absent and "" all mean "no value" in this source (§4.5.3)."""
    return value is not None and value != ""


# --- Strings and identifiers -------------------------------------------------------------------------------------


# What string(n) may not hold: C0 controls, DEL, and lone surrogates (which UTF-8 cannot encode).
_NOT_PRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _text_problem(value: str, max_length: int, *, ascii_only: bool) -> str | None:
    """Why `value` is not an OCPI CiString(n) (printable ASCII) or string(n) (printable UTF-8), or None (§1.9)."""
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    if ascii_only:
        # Among ASCII characters, exactly " " to "~" are printable.
        if not (value.isascii() and value.isprintable()):
            return "is not printable ASCII"
    elif _NOT_PRINTABLE.search(value):
        return "contains control characters or lone surrogates"
    return None


def _string(value: Scalar, path: str, max_length: int, *, ascii_only: bool = False) -> str | None:
    """The value as an OCPI string; None when it is absent."""
    if not _present(value):
        return None
    if not isinstance(value, str):
        raise ConversionError(path, value, "is not a string")
    problem = _text_problem(value, max_length, ascii_only=ascii_only)
    if problem is not None:
        raise ConversionError(path, value, problem)
    return value


def _required_string(value: Scalar, path: str, max_length: int, run: _Run) -> str:
    """A required string(n); too long → STRICT: error, LENIENT: truncated with a warning (§5.2 address/city)."""
    if isinstance(value, str) and len(value) > max_length and run.mode is Mode.LENIENT:
        run.warn(path, value, f"is longer than {max_length} characters; truncated")
        value = value[:max_length]
    text = _string(value, path, max_length)
    if text is None:
        raise ConversionError(path, value, "is required")
    return text


_INT64 = 2**63


def _identifier(path: str, candidates: Sequence[tuple[str, Scalar]]) -> str:
    """CiString(36) from the first present candidate: `str(uid)` (an int in VO, a string in V2), then fallbacks."""
    for name, value in candidates:
        if not _present(value):
            continue
        where = f"{path}.{name}"
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConversionError(where, value, "is not an integer or a string")
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            raise ConversionError(where, value, "is out of range")
        text = str(value)
        problem = _text_problem(text, 36, ascii_only=True)
        if problem is not None:
            raise ConversionError(where, value, problem)
        return text
    names = " and ".join(name for name, _ in candidates)
    raise ConversionError(f"{path}.{candidates[0][0]}", None, f"is required ({names} are all absent)")


# --- Dates (§4.5) ------------------------------------------------------------------------------------------------

_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-5][0-9])?"
)
# The APIMatic doc rendering (.NET invariant culture), month first (§3.1).
_LEGACY = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2})")


def _datetime(value: Scalar, path: str) -> datetime | None:
    """A UTC datetime in whole seconds, like every DateTime the hub emits (OCPI DateTime is string(25), and
    msgspec would write six fractional digits); None when absent. The fraction is truncated, never rounded up."""
    if not _present(value):
        return None
    if not isinstance(value, str):
        raise ConversionError(path, value, "is not a date-time string")
    parsed = _parsed_datetime(value)
    if isinstance(parsed, str):
        raise ConversionError(path, value, parsed)
    return parsed


# A record repeats its few dates in every EVSE and connector. The parse is a pure function of the string (the
# result, an immutable datetime, or the rule it breaks), so a cache of it is exact; bounded, as strings vary.
@functools.lru_cache(maxsize=4096)
def _parsed_datetime(value: str) -> datetime | str:
    """The UTC datetime a date-time string means, or the rule it breaks."""
    try:
        if iso := _ISO.fullmatch(value):
            year, month, day, hour, minute, second, _fraction, designator = iso.groups()
            tz = UTC
            if designator is not None and designator not in "Zz":
                sign = -1 if designator[0] == "-" else 1
                offset = timedelta(hours=int(designator[1:3]), minutes=int(designator[4:6]))
                tz = timezone(sign * offset)
            parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
            return parsed.astimezone(UTC)
        if legacy := _LEGACY.fullmatch(value):
            month, day, year, hour, minute, second = legacy.groups()
            return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except (ValueError, OverflowError):
        # Impossible calendar values (month 13, 30 February, hour 24) or an offset that leaves the calendar.
        return "is not a valid date and time"
    return "is neither ISO 8601 nor MM/DD/YYYY HH:MM:SS"


def _effective(deleted: datetime | None, now: datetime | None) -> bool:
    """A deletion has happened unless a reference time is given and the deletion lies after it (§4.2)."""
    return deleted is not None and (now is None or deleted <= now)


# --- Numbers (§6.7) ----------------------------------------------------------------------------------------------

_INT32_MAX = 2**31 - 1


def _number(value: Scalar, path: str) -> int | float:
    """A finite, positive JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversionError(path, value, "is not a number")
    if not 0 < value <= _INT32_MAX:  # also False for NaN
        raise ConversionError(path, value, f"is not a number in (0, {_INT32_MAX}]")
    return value


def _round_half_up(value: int | float, scale: int = 1) -> int:
    """value * scale, rounded half up in `Decimal(str(value))`, so that 46.5 is exactly 46.5 before rounding."""
    if type(value) is int:
        return value * scale  # already whole: the Decimal path would give the same int
    # Not round(): Python rounds half to even, round(46.5) == 46.
    return int((Decimal(str(value)) * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _whole(value: Scalar, path: str) -> int:
    rounded = _round_half_up(_number(value, path))
    if rounded < 1:
        raise ConversionError(path, value, "rounds to 0")
    return rounded


# --- Case-insensitive enum tables (§2.2: no two wire values differ only by case) ---------------------------------


def _key(value: Scalar) -> str | None:
    return value.lower() if isinstance(value, str) else None


_STATUS = {
    "available": ocpi.Status.AVAILABLE,
    "occupied": ocpi.Status.CHARGING,
    "unavailable": ocpi.Status.INOPERATIVE,
    "unknown": ocpi.Status.UNKNOWN,
}

# PnC has no 2.2.1 capability (2.3.0 adds Plug & Charge at connector level): dropped without a warning (§4.3).
_CAPABILITY: dict[str, ocpi.Capability | None] = {
    "rfidtoken": ocpi.Capability.RFID_READER,
    "newmotionapp": ocpi.Capability.REMOTE_START_STOP_CAPABLE,
    "pnc": None,
}

_CAPABILITY_ORDER = tuple(ocpi.Capability)  # iterating the enum itself is slow

_POWER_TYPE = {
    "ac1phase": ocpi.PowerType.AC_1_PHASE,
    "ac3phase": ocpi.PowerType.AC_3_PHASE,
    "dc": ocpi.PowerType.DC,
}
_PHASES = {ocpi.PowerType.AC_1_PHASE: 1, ocpi.PowerType.AC_3_PHASE: 3, ocpi.PowerType.DC: 1}

_STANDARD = {
    "type1": ocpi.ConnectorType.IEC_62196_T1,
    "saej1772": ocpi.ConnectorType.IEC_62196_T1,
    "type1combo": ocpi.ConnectorType.IEC_62196_T1_COMBO,
    "type2": ocpi.ConnectorType.IEC_62196_T2,
    "type2combo": ocpi.ConnectorType.IEC_62196_T2_COMBO,
    "type3": ocpi.ConnectorType.IEC_62196_T3C,
    "tepcochademo": ocpi.ConnectorType.CHADEMO,
    "tesla": ocpi.ConnectorType.TESLA_S,
    "nema520": ocpi.ConnectorType.NEMA_5_20,
}
# Mapped with context: Domestic by the Location's country, the IEC 60309 types by amperage.
_DOMESTIC = "domestic"
_SINGLE_PHASE_60309 = "industrialpneac"
_THREE_PHASE_60309 = frozenset({"industrial3peac", "industrial3penac"})
_MAPPABLE = frozenset({*_STANDARD, _DOMESTIC, _SINGLE_PHASE_60309, *_THREE_PHASE_60309})
_UNMAPPABLE = frozenset({"avcon", "industrial2pdc", "lpi", "spi", "unspecified"})

# Household plugs by the Location's ISO 3166-1 alpha-3 country (§4.4). The mapping document ends its Schuko row
# with "…"; the other EU/EEA countries whose household plug is CEE 7/4 complete it.
_SCHUKO_LISTED = ("DEU", "NLD", "AUT", "SWE", "NOR", "FIN", "ESP", "PRT", "LUX", "HUN", "GRC")
_SCHUKO_EU_EEA = ("ROU", "BGR", "HRV", "SVN", "EST", "LVA", "LTU", "ISL")
_DOMESTIC_BY_COUNTRY: dict[str, ocpi.ConnectorType] = {
    **dict.fromkeys((*_SCHUKO_LISTED, *_SCHUKO_EU_EEA), ocpi.ConnectorType.DOMESTIC_F),
    **dict.fromkeys(["FRA", "BEL", "POL", "CZE", "SVK"], ocpi.ConnectorType.DOMESTIC_E),
    **dict.fromkeys(["GBR", "IRL", "MLT", "CYP"], ocpi.ConnectorType.DOMESTIC_G),
    **dict.fromkeys(["CHE", "LIE"], ocpi.ConnectorType.DOMESTIC_J),
    "DNK": ocpi.ConnectorType.DOMESTIC_K,
    "ITA": ocpi.ConnectorType.DOMESTIC_L,
    **dict.fromkeys(["USA", "CAN", "MEX"], ocpi.ConnectorType.DOMESTIC_B),
    **dict.fromkeys(["AUS", "NZL"], ocpi.ConnectorType.DOMESTIC_I),
}
DOMESTIC_DEFAULT = ocpi.ConnectorType.DOMESTIC_F

# Plugs that come with a cable in practice: SOCKET on them is physically implausible (§4.4, format).
_CABLED = frozenset({"type1combo", "type2combo", "tepcochademo", "tesla"})
# DC-only plugs (§4.4, power_type).
_DC_ONLY = frozenset({"type1combo", "type2combo", "tepcochademo"})


# --- Tariffs (§2.6, §5.3; the rules are in the module docstring) --------------------------------------------------


@dataclass
class _Tariffs:
    """The Tariffs of one Location's conversion, by id."""

    country_code: str
    party_id: str
    now: datetime
    by_id: dict[str, ocpi_tariffs.Tariff] = field(default_factory=dict)


_TARIFF_ID_PREFIX = "EVSEVO-"
_TARIFF_ID_DIGITS = 36 - len(_TARIFF_ID_PREFIX)  # Tariff.id is CiString(36)
_MINUTES_PER_HOUR = 60


def _price(value: Scalar, path: str) -> str | None:
    """A price as `str(x)`, for `Decimal(str(x))` (exact before * 60, §6.7); None when absent."""
    if not _present(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversionError(path, value, "is not a number")
    if not 0 <= value <= _INT32_MAX:  # also False for NaN; the bound keeps * 60 a finite float
        raise ConversionError(path, value, f"is not a number in [0, {_INT32_MAX}]")
    return str(value)


_PriceComponents = tuple[tuple[ocpi_tariffs.TariffDimensionType, float], ...]


# Connectors repeat a few price lists. The id and the price components are a pure function of the arguments, the
# prices spelt as `str(x)` from which they are computed, so a cache of them is exact; bounded, as prices vary.
@functools.lru_cache(maxsize=1024)
def _priced(
    country_code: str, party_id: str, currency: str, start_fee: str | None, per_kwh: str | None, per_minute: str | None
) -> tuple[str, _PriceComponents]:
    """The Tariff id and (type, price) components of valid prices."""
    per_hour = None if per_minute is None else Decimal(per_minute) * _MINUTES_PER_HOUR
    kinds = ocpi_tariffs.TariffDimensionType
    candidates = (
        (kinds.FLAT, None if start_fee is None else Decimal(start_fee)),
        (kinds.ENERGY, None if per_kwh is None else Decimal(per_kwh)),
        (kinds.TIME, per_hour),
    )
    prices = [(kind, price) for kind, price in candidates if price]  # 0 and absent price nothing
    if not prices:
        prices = [(kinds.FLAT, Decimal(0))]  # free of charge, as OCPI spells it (docs/cpo-modules.md §3.5)
    return _tariff_id(country_code, party_id, currency, prices), tuple((kind, float(p)) for kind, p in prices)


def _tariff_id(country_code: str, party_id: str, currency: str, prices: Sequence[tuple[str, Decimal]]) -> str:
    # Normalised so that 0.5, 0.50 and 5E-1 give one id; the party is hashed too, as ids are unique per platform.
    canonical = [country_code, party_id, currency, [[kind, f"{price.normalize():f}"] for kind, price in prices]]
    digest = hashlib.sha256(msgspec.json.encode(canonical)).hexdigest()
    return _TARIFF_ID_PREFIX + digest[:_TARIFF_ID_DIGITS]


def _tariff(src: TariffVO, path: str, owner: _Tariffs) -> str:
    """The id of the connector's Tariff, which `owner` keeps from its first mention."""
    currency = src.currency
    if not _present(currency):
        raise ConversionError(f"{path}.currency", currency, "is required")
    # Case-insensitive like every code this source sends (§6.1); ISO 4217 codes are upper case.
    code = currency.upper() if isinstance(currency, str) else None
    if code not in ocpi_tariffs.CURRENCIES:
        raise ConversionError(f"{path}.currency", currency, "is not an ISO 4217 currency code")
    start_fee = _price(src.start_fee, f"{path}.startFee")
    per_kwh = _price(src.per_kwh, f"{path}.perKWh")
    per_minute = _price(src.per_minute, f"{path}.perMinute")
    tariff_id, components = _priced(owner.country_code, owner.party_id, code, start_fee, per_kwh, per_minute)
    if tariff_id not in owner.by_id:
        owner.by_id[tariff_id] = ocpi_tariffs.Tariff(
            country_code=owner.country_code,
            party_id=owner.party_id,
            id=tariff_id,
            currency=code,
            elements=[
                ocpi_tariffs.TariffElement(
                    price_components=[
                        ocpi_tariffs.PriceComponent(type=kind, price=price, step_size=1) for kind, price in components
                    ]
                )
            ],
            last_updated=owner.now,
        )
    return tariff_id


def _tariff_ids(run: _Run, src: ConnectorVO, path: str, tariffs: _Tariffs | None) -> list[str] | None:
    """The connector's tariff_ids, its Tariff kept in `tariffs`; None without a tariff or party to own it."""
    tariff_vo = src.tariff
    if tariffs is None or tariff_vo is None:
        return None
    tariff_id = run.lenient(lambda: _tariff(tariff_vo, f"{path}.tariff", tariffs), "tariff left out")
    return None if tariff_id is None else [tariff_id]


# --- Connector (§4.4) --------------------------------------------------------------------------------------------


def _connector_kind(value: Scalar, path: str) -> str:
    """The lower-cased connectorType when OCPI has a value for it; unknown or unmappable types raise."""
    kind = _key(value) or ""
    if kind in _UNMAPPABLE:
        raise ConversionError(path, value, "has no OCPI 2.2.1 ConnectorType")
    if kind not in _MAPPABLE:
        raise ConversionError(path, value, "is not a known connectorType")
    return kind


def _standard(run: _Run, kind: str, path: str, *, amperage: int, country_alpha3: str | None) -> ocpi.ConnectorType:
    if kind == _DOMESTIC:
        standard = _DOMESTIC_BY_COUNTRY.get(country_alpha3 or "")
        if standard is None:
            where = f"{path}.connectorType"
            run.warn(where, "Domestic", f"in country {country_alpha3!r}: plug unknown, {DOMESTIC_DEFAULT} used")
            return DOMESTIC_DEFAULT
        return standard
    if kind == _SINGLE_PHASE_60309:
        if amperage > 16:  # OCPI has only the 16 A single-phase code
            run.warn(f"{path}.electricalProperties.amperage", amperage, "exceeds IEC_60309_2_single_16")
        return ocpi.ConnectorType.IEC_60309_2_single_16
    if kind in _THREE_PHASE_60309:
        if amperage <= 16:
            return ocpi.ConnectorType.IEC_60309_2_three_16
        return ocpi.ConnectorType.IEC_60309_2_three_32 if amperage <= 32 else ocpi.ConnectorType.IEC_60309_2_three_64
    return _STANDARD[kind]


def _max_electric_power(
    run: _Run, value: Scalar, path: str, *, power_type: ocpi.PowerType, voltage: int, amperage: int
) -> int | None:
    """kW in the source, W in OCPI; absent stays absent (it is not computed from voltage and amperage)."""
    if not _present(value):
        return None
    watts = _round_half_up(_number(value, path), 1000)
    limit = voltage * amperage * _PHASES[power_type]
    if watts > limit * 1.1:
        run.warn(path, value, f"is {watts} W, about {watts / limit:.0f} times voltage x amperage x phases ({limit} W)")
    return watts


def _connector(
    run: _Run,
    src: ConnectorVO,
    path: str,
    *,
    evse_updated: datetime | None,
    country_alpha3: str | None,
    tariffs: _Tariffs | None,
) -> ocpi.Connector | None:
    """The OCPI Connector, or None when LENIENT mode leaves it out for its connector type."""
    connector_id = _identifier(path, (("uid", src.uid), ("externalId", src.external_id)))
    kind = run.lenient(lambda: _connector_kind(src.connector_type, f"{path}.connectorType"), "connector left out")
    if kind is None:
        return None

    # The connector's own `updated`, else its EVSE's (the documented fallback of §4.4).
    updated = _datetime(src.updated, f"{path}.updated") or evse_updated
    if updated is None:
        raise ConversionError(f"{path}.updated", src.updated, "is required (neither connector nor EVSE has one)")

    props_path = f"{path}.electricalProperties"
    props = src.electrical_properties
    if props is None:
        raise ConversionError(props_path, None, "is required")
    power_type = _POWER_TYPE.get(_key(props.power_type) or "")
    if power_type is None:
        raise ConversionError(f"{props_path}.powerType", props.power_type, "is not AC1Phase, AC3Phase or DC")
    voltage = _whole(props.voltage, f"{props_path}.voltage")
    amperage = _whole(props.amperage, f"{props_path}.amperage")
    if power_type is ocpi.PowerType.AC_3_PHASE and voltage > 250:
        # OCPI wants line to neutral for AC_3_PHASE; above 250 V this may be line to line or a US value (§3.4).
        run.warn(f"{props_path}.voltage", props.voltage, "is high for a line-to-neutral AC3Phase voltage")
    if kind in _DC_ONLY and power_type is not ocpi.PowerType.DC:
        run.warn(f"{props_path}.powerType", props.power_type, f"is not DC on a {src.connector_type} connector")

    if src.fixed_cable is True:
        connector_format = ocpi.ConnectorFormat.CABLE
    elif src.fixed_cable is None or src.fixed_cable is False:  # "False by default (not sent in this case)"
        connector_format = ocpi.ConnectorFormat.SOCKET
        if kind in _CABLED:
            run.warn(f"{path}.fixedCable", src.fixed_cable, f"makes a {src.connector_type} connector a SOCKET")
    else:
        raise ConversionError(f"{path}.fixedCable", src.fixed_cable, "is not a boolean")

    max_electric_power = run.optional(
        lambda: _max_electric_power(
            run,
            props.max_electric_power,
            f"{props_path}.maxElectricPower",
            power_type=power_type,
            voltage=voltage,
            amperage=amperage,
        )
    )
    return ocpi.Connector(
        id=connector_id,
        standard=_standard(run, kind, path, amperage=amperage, country_alpha3=country_alpha3),
        format=connector_format,
        power_type=power_type,
        max_voltage=voltage,
        max_amperage=amperage,
        max_electric_power=max_electric_power,
        tariff_ids=_tariff_ids(run, src, path, tariffs),
        last_updated=updated,
    )


# --- EVSE (§4.1 to §4.3) --------------------------------------------------------------------------------------------


def _status(run: _Run, value: Scalar, path: str) -> ocpi.Status:
    if not _present(value):
        return ocpi.Status.UNKNOWN  # "No status information available": a documented default, not an error
    status = _STATUS.get(_key(value) or "")
    if status is None:
        if run.mode is Mode.STRICT:
            raise ConversionError(path, value, "is not a known status")
        run.warn(path, value, "is not a known status; UNKNOWN used")
        return ocpi.Status.UNKNOWN
    return status


def _capabilities(run: _Run, value: Scalar | list[Scalar], path: str) -> list[ocpi.Capability] | None:
    """Deduplicated, in the enum's order; unknown methods are ignored with a warning in both modes (§4.3)."""
    items = value if isinstance(value, list) else [value] if _present(value) else []
    found: set[ocpi.Capability] = set()
    for i, item in enumerate(items):
        key = _key(item)
        if key not in _CAPABILITY:
            where = f"{path}[{i}]" if isinstance(value, list) else path
            run.warn(where, item, "is not a known authorization method; ignored")
        elif (capability := _CAPABILITY[key]) is not None:
            found.add(capability)
    return [c for c in _CAPABILITY_ORDER if c in found] or None


def _evse(
    run: _Run,
    src: EvseVO,
    path: str,
    *,
    country_alpha3: str | None,
    now: datetime | None,
    tariffs: _Tariffs | None = None,
) -> ocpi.EVSE:
    uid = _identifier(path, (("uid", src.uid), ("externalId", src.external_id), ("evseId", src.evse_id)))
    evse_id = run.lenient(lambda: _string(src.evse_id, f"{path}.evseId", 48, ascii_only=True))
    physical_reference = run.lenient(lambda: _string(src.physical_reference, f"{path}.physicalReference", 16))
    updated = _datetime(src.updated, f"{path}.updated")
    deleted = _datetime(src.deleted, f"{path}.deleted")
    stamps = [updated]
    if _effective(deleted, now):
        status = ocpi.Status.REMOVED  # "they MUST update the EVSE's status field to REMOVED", whatever `status` says
        stamps.append(deleted)
        status_schedule = None
    else:
        status = _status(run, src.status, f"{path}.status")
        # A deletion announced for later is a planned status, not yet a change (§4.2, optional refinement).
        status_schedule = (
            None if deleted is None else [ocpi.StatusSchedule(period_begin=deleted, status=ocpi.Status.REMOVED)]
        )

    if not src.connectors:
        raise _NoConnectorsError(f"{path}.connectors", src.connectors, "is required (an EVSE needs a connector)")
    live: list[tuple[str, ConnectorVO]] = []
    gone: list[tuple[str, ConnectorVO]] = []
    for j, connector in enumerate(src.connectors):
        connector_path = f"{path}.connectors[{j}]"
        connector_deleted = _datetime(connector.deleted, f"{connector_path}.deleted")
        stamps.append(_datetime(connector.updated, f"{connector_path}.updated"))
        if _effective(connector_deleted, now):
            stamps.append(connector_deleted)
            gone.append((connector_path, connector))
        else:
            live.append((connector_path, connector))
    last_updated = max((s for s in stamps if s is not None), default=None)
    if last_updated is None:
        raise ConversionError(f"{path}.updated", src.updated, "is required (no date on the EVSE or its connectors)")

    # OCPI has no connector status, so deleted connectors are left out; a REMOVED EVSE keeps them to stay valid.
    chosen = live or (gone if status is ocpi.Status.REMOVED else [])
    connectors: list[ocpi.Connector] = []
    for connector_path, connector in chosen:
        converted = _connector(
            run, connector, connector_path, evse_updated=updated, country_alpha3=country_alpha3, tariffs=tariffs
        )
        if converted is None:
            continue
        if any(c.id.upper() == converted.id.upper() for c in connectors):  # ids are CiStrings
            raise ConversionError(connector_path, converted.id, "repeats the id of another connector of this EVSE")
        connectors.append(converted)
    if not connectors:
        rule = "connectors, none that OCPI can show (an EVSE needs one)"
        raise _NoConnectorsError(f"{path}.connectors", len(src.connectors), rule)
    return ocpi.EVSE(
        uid=uid,
        evse_id=evse_id,
        status=status,
        status_schedule=status_schedule,
        capabilities=_capabilities(run, src.authorization_methods, f"{path}.authorizationMethods"),
        connectors=connectors,
        physical_reference=physical_reference,
        last_updated=last_updated,
    )


# --- Location (§5.2) ---------------------------------------------------------------------------------------------

_WEEKDAY = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_HOUR_MINUTE = re.compile(r"([0-1][0-9]|2[0-3]):[0-5][0-9]")  # RegularHours' own pattern
_WHOLE_DAY = ("00:00", "23:59")


def _hour_minute(value: Scalar, path: str) -> str:
    if not isinstance(value, str) or not _HOUR_MINUTE.fullmatch(value):
        raise ConversionError(path, value, "is not a time HH:MM")
    return value


def _periods(entries: Sequence[OpeningHours], path: str) -> list[tuple[int, str, str]]:
    """(weekday, begin, end) periods; one that ends at or before its start runs overnight and is split."""
    periods = set()
    for i, entry in enumerate(entries):
        day = _WEEKDAY.get(_key(entry.week_day) or "")
        if day is None:
            raise ConversionError(f"{path}[{i}].weekDay", entry.week_day, "is not a weekday Mon to Sun")
        begin = _hour_minute(entry.start_time, f"{path}[{i}].startTime")
        end = _hour_minute(entry.end_time, f"{path}[{i}].endTime")
        if begin < end:
            periods.add((day, begin, end))
            continue
        # OCPI: period_end must be later than period_begin, so the part after midnight goes to the next day.
        if begin < _WHOLE_DAY[1]:
            periods.add((day, begin, _WHOLE_DAY[1]))
        if end > _WHOLE_DAY[0]:
            periods.add((day % 7 + 1, _WHOLE_DAY[0], end))
    return sorted(periods)


def _opening_times(run: _Run, record: EvseVOLocation) -> ocpi.Hours | None:
    if record.open_twenty_four_seven is True:
        return ocpi.Hours(twentyfourseven=True)
    if record.open_twenty_four_seven not in (None, False):
        run.warn("$.openTwentyFourSeven", record.open_twenty_four_seven, "is not a boolean; ignored")
    if not record.opening_hours:
        return None
    # One bad entry drops all opening hours: dropping only that day would announce it as closed.
    periods = run.optional(lambda: _periods(record.opening_hours or (), "$.openingHours"))
    if periods is None:
        return None
    if all((day, *_WHOLE_DAY) in periods for day in range(1, 8)):
        return ocpi.Hours(twentyfourseven=True)
    if not periods:
        run.warn("$.openingHours", None, "has only empty periods; left out")
        return None
    regular = [ocpi.RegularHours(weekday=d, period_begin=b, period_end=e) for d, b, e in periods]
    return ocpi.Hours(twentyfourseven=False, regular_hours=regular)


_MICRODEGREE = Decimal("0.000001")


def _coordinate(value: Scalar, path: str, limit: int) -> Decimal:
    """Degrees with 6 decimals (GeoLocation wants 5 to 7), rounded half up from `Decimal(str(x))` (§6.7)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversionError(path, value, "is not a number")
    if not -limit <= value <= limit:  # also False for NaN
        raise ConversionError(path, value, f"is not within ±{limit}")
    return Decimal(str(value)).quantize(_MICRODEGREE, rounding=ROUND_HALF_UP)


def _business_details(value: Scalar, path: str) -> BusinessDetails | None:
    name = _string(value, path, 100)
    return None if name is None else BusinessDetails(name=name)


_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")
_PARTY_ID = re.compile(r"[A-Za-z0-9]{3}")
_OPERATOR_ID = re.compile(r"([A-Za-z]{2})[-*]([A-Za-z0-9]{3})")
# eMI3 EVSE ID: <country> [*] <operator> [*] E <outlet> (docs/ocpi.md §5.7); only the prefix is read.
_EVSE_ID_PREFIX = re.compile(r"([A-Za-z]{2})\*?([A-Za-z0-9]{3})\*?[Ee]")


def _named_party(record: EvseVOLocation) -> tuple[str, object, tuple[str, str]] | None:
    """The party the record names, with the path and value that name it; None when it names none."""
    if _present(record.country_code) and _present(record.party_id):
        country_code, party_id = record.country_code, record.party_id
        if not isinstance(country_code, str) or not _COUNTRY_CODE.fullmatch(country_code):
            raise ConversionError("$.countryCode", country_code, "is not an ISO 3166-1 alpha-2 code")
        if not isinstance(party_id, str) or not _PARTY_ID.fullmatch(party_id):
            raise ConversionError("$.partyId", party_id, "is not a party id of 3 letters or digits")
        return "$.partyId", (country_code, party_id), (country_code, party_id)
    if _present(record.operator_id):
        operator_id = record.operator_id
        match = _OPERATOR_ID.fullmatch(operator_id) if isinstance(operator_id, str) else None
        if match is None:
            raise ConversionError("$.operatorId", operator_id, "is not an operator id such as DE-ALL or DE*ALL")
        return "$.operatorId", operator_id, (match[1], match[2])
    for i, evse in enumerate(record.evses or ()):
        if isinstance(evse.evse_id, str) and (match := _EVSE_ID_PREFIX.match(evse.evse_id)):
            return f"$.evses[{i}].evseId", evse.evse_id, (match[1], match[2])
    return None


def _party(record: EvseVOLocation, parties: Sequence[tuple[str, str]], default: tuple[str, str]) -> tuple[str, str]:
    named = _named_party(record)
    if named is None:
        return default[0].upper(), default[1].upper()
    path, value, (country_code, party_id) = named
    party = country_code.upper(), party_id.upper()
    if party not in {(c.upper(), p.upper()) for c, p in parties}:  # CiStrings
        raise ConversionError(path, value, "is not one of our CPO parties")
    return party


def _location_id(record: EvseVOLocation, location_id: str | None) -> str:
    """str(uid) → externalId; a `location_id` given by the caller (from a URL) must be that same id."""
    if location_id is not None:
        problem = _text_problem(location_id, 36, ascii_only=True) if location_id else "is empty"
        if problem is not None:
            raise ConversionError("location_id", location_id, problem)
    sources = (("uid", record.uid), ("externalId", record.external_id))
    if location_id is not None and not any(_present(value) for _, value in sources):
        return location_id
    own = _identifier("$", sources)
    if location_id is not None and location_id.upper() != own.upper():  # ids are CiStrings
        name = "uid" if _present(record.uid) else "externalId"
        raise ConversionError(f"$.{name}", own, f"is not the location id {location_id!r}")
    return location_id or own


def verified(obj: S) -> S:
    """`ocpi.checked`, a violation reported as a ConversionError: converters call it on what they return."""
    try:
        return ocpi.checked(obj)
    except msgspec.ValidationError as exc:
        raise ConversionError("$", type(obj).__name__, f"is not valid OCPI: {exc}") from exc


# --- Public API --------------------------------------------------------------------------------------------------


def said_location_id(raw: object) -> str | None:
    """The id a location record gives itself before it is decoded (str(uid), else externalId: the rule of
    `_location_id`), for telling records apart and naming a rejected one; None when it names none. Whether the id
    is valid is for the conversion to judge."""
    if not isinstance(raw, dict):
        return None
    value = raw.get("uid") if _present(raw.get("uid")) else raw.get("externalId")
    return str(value) if isinstance(value, int | str) and not isinstance(value, bool) and _present(value) else None


def evse_to_ocpi(
    evse: EvseVO,
    *,
    country_alpha3: str | None,
    mode: Mode = Mode.STRICT,
    path: str = "$",
    now: datetime | None = None,
) -> Converted[ocpi.EVSE]:
    """The OCPI EVSE of an EvseVO; `country_alpha3` (the Location's country) picks the Domestic plug.

    With `now`, a `deleted` after it becomes a status_schedule entry instead of REMOVED. Connector tariffs are not
    converted (no tariff_ids, `tariffs` empty): a Tariff belongs to the Location's party; see location_to_ocpi.
    """
    run = _Run(mode)
    value = _evse(run, evse, path, country_alpha3=country_alpha3, now=None if now is None else to_utc(now))
    return Converted(verified(value), tuple(run.warnings))


def location_to_ocpi(
    record: EvseVOLocation,
    *,
    location_id: str | None,
    parties: Sequence[tuple[str, str]],
    default_party: tuple[str, str],
    mode: Mode = Mode.STRICT,
    now: datetime,
) -> Converted[ocpi.Location]:
    """The OCPI Location of a location record, owned by the party the record names, else `default_party`, and in
    `.tariffs` the Tariffs its connectors name (owned by the same party).

    `now` is the reference time for a future `deleted` and the Tariffs' last_updated: every other last_updated comes
    from the data.
    """
    run = _Run(mode)
    now = to_utc(now)
    country_code, party_id = _party(record, parties, default_party)
    location_id = _location_id(record, location_id)
    tariffs = _Tariffs(country_code, party_id, now)

    address = record.address
    if address is None:
        raise ConversionError("$.address", None, "is required")
    country = address.country
    country_alpha3 = alpha3_country(country) if isinstance(country, str) else None
    if country_alpha3 is None:
        raise ConversionError("$.address.country", country, "is not an ISO 3166-1 alpha-2 or alpha-3 code")

    coordinates = record.coordinates
    if coordinates is None:
        raise ConversionError("$.coordinates", None, "is required")
    latitude = _coordinate(coordinates.latitude, "$.coordinates.latitude", 90)
    longitude = _coordinate(coordinates.longitude, "$.coordinates.longitude", 180)
    time_zone = time_zone_at(float(latitude), float(longitude))
    if time_zone is None:
        raise ConversionError("$.coordinates", (f"{latitude}", f"{longitude}"), "has no time zone (open sea?)")

    if _key(record.accessibility.status if record.accessibility else None) == "restricted":
        # OCPI says this with EVSE parking_restrictions, which the record does not let us infer (§5.2 publish).
        run.warn("$.accessibility.status", "Restricted", "cannot be expressed in OCPI; published anyway")

    evses: list[ocpi.EVSE] = []
    for i, src in enumerate(record.evses or ()):
        path = f"$.evses[{i}]"
        try:
            evse = _evse(run, src, path, country_alpha3=country_alpha3, now=now, tariffs=tariffs)
        except _NoConnectorsError as exc:
            if mode is Mode.STRICT:
                raise
            run.warnings.append(f"{exc}; EVSE left out")
            continue
        if any(e.uid.upper() == evse.uid.upper() for e in evses):  # unique within the CPO platform
            raise ConversionError(path, evse.uid, "repeats the uid of another EVSE of this location")
        evses.append(evse)

    # OCPI: a Location's last_updated covers its EVSEs and Connectors.
    stamps = [_datetime(record.updated, "$.updated"), *(e.last_updated for e in evses)]
    last_updated = max((s for s in stamps if s is not None), default=None)
    if last_updated is None:
        raise ConversionError("$.updated", record.updated, "is required (no date on the location or its EVSEs)")

    location = ocpi.Location(
        country_code=country_code,
        party_id=party_id,
        id=location_id,
        publish=True,  # a public locations feed (§5.2)
        address=_required_string(address.street_and_number, "$.address.streetAndNumber", 255, run),
        city=_required_string(address.city, "$.address.city", 45, run),
        postal_code=run.optional(lambda: _string(address.postal_code, "$.address.postalCode", 10)),
        country=country_alpha3,
        coordinates=ocpi.GeoLocation(latitude=f"{latitude:f}", longitude=f"{longitude:f}"),
        evses=evses or None,
        operator=run.optional(lambda: _business_details(record.operator_name, "$.operatorName")),
        suboperator=run.optional(lambda: _business_details(record.suboperator_name, "$.suboperatorName")),
        time_zone=time_zone,
        opening_times=_opening_times(run, record),
        last_updated=last_updated,
    )
    return Converted(verified(location), tuple(run.warnings), tuple(verified(t) for t in tariffs.by_id.values()))


_decoder = msgspec.json.Decoder(EvseVOLocation)


def decode_location_record(raw: bytes | object) -> EvseVOLocation:
    """A location record from JSON bytes or from already parsed JSON; only a wrong shape fails here."""
    try:
        if isinstance(raw, bytes):
            return _decoder.decode(raw)
        return msgspec.convert(raw, EvseVOLocation)
    except msgspec.DecodeError as exc:  # also msgspec.ValidationError, its subclass
        raise ConversionError("$", raw, str(exc)) from exc
