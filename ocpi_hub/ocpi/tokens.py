"""Tokens module objects (OCPI 2.2.1 mod_tokens; docs/ocpi.md §6.3): Token, EnergyContract and the PATCH body.

A token is identified by its owner (country_code, party_id), its uid and its type (2.2.1: the uid is unique
"combined with the Token type"). The same objects serve 2.2, whose Token has the same fields.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, NamedTuple

from msgspec import UNSET, Meta, UnsetType

from ocpi_hub.ocpi.common import CiString36, CountryCode, LanguageCode, OcpiStruct, PartyId, String64, to_utc

# Required CiString(36) identifiers: an empty uid or contract_id identifies nothing.
TokenUid = Annotated[str, Meta(min_length=1, max_length=36, pattern=r"^[\x20-\x7e]*$")]
ContractId = TokenUid


class TokenType(enum.StrEnum):
    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class WhitelistType(enum.StrEnum):
    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class ProfileType(enum.StrEnum):
    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


class EnergyContract(OcpiStruct):
    supplier_name: String64
    contract_id: String64 | None = None


# kw_only=True repeated: msgspec and mypy want it on every class where a required field follows an optional one.
class Token(OcpiStruct, kw_only=True):
    country_code: CountryCode
    party_id: PartyId
    uid: TokenUid
    type: TokenType
    contract_id: ContractId
    visual_number: String64 | None = None
    issuer: String64
    group_id: CiString36 | None = None
    valid: bool
    whitelist: WhitelistType
    language: LanguageCode | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: datetime


class TokenPatch(OcpiStruct, kw_only=True):
    """A PATCH body: absent fields stay as they are, `null` clears an optional field (a required one cannot be
    null), and `last_updated` is required (§1.12; its absence is status 2001)."""

    country_code: CountryCode | UnsetType = UNSET
    party_id: PartyId | UnsetType = UNSET
    uid: TokenUid | UnsetType = UNSET
    type: TokenType | UnsetType = UNSET
    contract_id: ContractId | UnsetType = UNSET
    visual_number: String64 | UnsetType | None = UNSET
    issuer: String64 | UnsetType = UNSET
    group_id: CiString36 | UnsetType | None = UNSET
    valid: bool | UnsetType = UNSET
    whitelist: WhitelistType | UnsetType = UNSET
    language: LanguageCode | UnsetType | None = UNSET
    default_profile_type: ProfileType | UnsetType | None = UNSET
    energy_contract: EnergyContract | UnsetType | None = UNSET
    last_updated: datetime


class TokenKey(NamedTuple):
    """What identifies a token: the Tokens Receiver URL `{country_code}/{party_id}/{token_uid}?type=`."""

    country_code: str
    party_id: str
    uid: str
    type: TokenType


def key_of(token: Token) -> TokenKey:
    return TokenKey(token.country_code, token.party_id, token.uid, token.type)


def key_conflict(key: TokenKey, body: Token | TokenPatch) -> str | None:
    """Why `body` is about another token than the URL's `key`, or None. The URL's country_code and party_id SHALL
    equal the body's (docs/ocpi.md §6.3); a differing uid or type is the "URL id differs from body id" case (§1.8). Both
    are status 2001. country_code and party_id are CiStrings, compared without case."""
    for field, expected in zip(TokenKey._fields, key, strict=True):
        value = getattr(body, field)
        if value is UNSET:
            continue
        same = value.upper() == expected.upper() if field in ("country_code", "party_id") else value == expected
        if not same:
            return f"{field}: {value!r} in the body differs from {expected!r} in the URL"
    return None


def patched_fields(patch: TokenPatch) -> dict[str, Any]:
    """The fields a PATCH changes: those it carries (an `energy_contract` is replaced as a whole), last_updated in
    UTC, without the identity fields (key_conflict compared them with the URL)."""
    changes = {
        f: getattr(patch, f)
        for f in patch.__struct_fields__
        if getattr(patch, f) is not UNSET and f not in TokenKey._fields
    }
    changes["last_updated"] = to_utc(patch.last_updated)
    return changes
