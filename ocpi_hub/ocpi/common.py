"""Types shared by every OCPI module: transport envelope, status codes, data types (OCPI 2.2.1 §4, §5, §16).

Constraints live in the types, so that msgspec's validation errors name the JSON path and the rule, which is
exactly the status_message a partner needs with status 2001.
"""

from __future__ import annotations

import enum
import functools
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar, get_args

import msgspec
from msgspec import Meta

# OCPI string(n) is printable UTF-8 without CR/LF/TAB; CiString(n) is printable ASCII.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_PRINTABLE_ASCII = r"^[\x20-\x7e]*$"


def _string(n: int) -> Meta:
    return Meta(max_length=n, pattern=_PRINTABLE)


def _cistring(n: int) -> Meta:
    return Meta(max_length=n, pattern=_PRINTABLE_ASCII)


# OCPI string(n) and CiString(n), by the lengths the spec uses.
String4 = Annotated[str, _string(4)]
String5 = Annotated[str, _string(5)]
String10 = Annotated[str, _string(10)]
String16 = Annotated[str, _string(16)]
String20 = Annotated[str, _string(20)]
String45 = Annotated[str, _string(45)]
String64 = Annotated[str, _string(64)]
String100 = Annotated[str, _string(100)]
String255 = Annotated[str, _string(255)]
String512 = Annotated[str, _string(512)]
CiString2 = Annotated[str, _cistring(2)]
CiString3 = Annotated[str, _cistring(3)]
CiString4 = Annotated[str, _cistring(4)]
CiString36 = Annotated[str, _cistring(36)]
CiString39 = Annotated[str, _cistring(39)]  # CDR ids: 36, and 3 more for a credit CDR's suffix
CiString48 = Annotated[str, _cistring(48)]

CountryCode = Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
PartyId = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Za-z0-9]{3}$")]
Url = Annotated[str, Meta(max_length=255, pattern=_PRINTABLE_ASCII)]
# Credentials token: printable non-whitespace ASCII (post-d2 erratum), at most 64 characters.
CredentialsToken = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
LanguageCode = Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[a-z]{2}$")]


def utc_now() -> datetime:
    """The clock used in production. Whole seconds: every DateTime we emit is `YYYY-MM-DDTHH:MM:SSZ`.

    Every kept answer asks it for its timestamp: the datetime of the current second is made once, not per call
    (`datetime.now(UTC)` costs microseconds, `time.time()` a tenth of one)."""
    return _second(int(time.time()))


@functools.lru_cache(maxsize=1)
def _second(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


def outside_utc(value: datetime) -> str | None:
    """Why a DateTime from the wire cannot be taken, or None: it must be a moment of the UTC calendar (years 1 to
    9999), which year 1 with +01:00 or year 9999 with -01:00 is not (docs/ocpi.md §11). Rejected as it arrives, so
    that converting, comparing or storing it later cannot fail."""
    if value.tzinfo is None:
        return None
    try:
        value.astimezone(UTC)
    except OverflowError:
        return "is outside the years 1 to 9999 once converted to UTC"
    return None


@functools.cache
def _datetime_fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    def holds_datetime(t: Any) -> bool:
        return t is datetime or any(holds_datetime(a) for a in get_args(t))

    return tuple(f.name for f in msgspec.structs.fields(cls) if holds_datetime(f.type))


def to_utc(value: datetime) -> datetime:
    """Normalise a DateTime from the wire: no designator means UTC (OCPI 2.2.1 §16.1.1); offsets are converted.

    Fractions are dropped so that what we store and emit always fits string(25) and compares equal to itself.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


class OcpiStruct(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every OCPI object: snake_case names as in the spec; unset optional fields are omitted."""

    def __post_init__(self) -> None:
        # msgspec turns the ValueError into a ValidationError naming the JSON path: a 2001, not a 500.
        for name in _datetime_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, datetime) and (rule := outside_utc(value)) is not None:
                raise ValueError(f"`{name}` {value.isoformat()} {rule}")


class StatusCode(enum.IntEnum):
    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    UNABLE_TO_USE_CLIENT_API = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003
    HUB_ERROR = 4000


T = TypeVar("T")


class Envelope(msgspec.Struct, Generic[T], kw_only=True, omit_defaults=True):
    """The response envelope of OCPI 2.2.1 §4.1.7, on every response including errors."""

    data: T | None = None
    status_code: int
    status_message: str | None = None
    timestamp: datetime


class Role(enum.StrEnum):
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class ImageCategory(enum.StrEnum):
    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class Image(OcpiStruct):
    url: Url
    category: ImageCategory
    type: CiString4
    thumbnail: Url | None = None
    width: Annotated[int, Meta(ge=0, le=99999)] | None = None
    height: Annotated[int, Meta(ge=0, le=99999)] | None = None


class BusinessDetails(OcpiStruct):
    name: String100
    website: Url | None = None
    logo: Image | None = None


class DisplayText(OcpiStruct):
    language: Annotated[str, Meta(min_length=2, max_length=2)]
    text: String512


json_encoder = msgspec.json.Encoder()
