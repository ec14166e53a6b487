"""The setToken / listTokens / lookupToken body (seed 002, `/token`, schema "Token") and its OCPI Token.

The seed's Token is OCPI's Token in camelCase with three names changed: cacheMode is whitelist, languageCode is
language, and it has no default_profile_type or energy_contract. Lengths are OCPI's, so that a token stored
through either API can be sent through the other.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ocpi_hub.ocpi import tokens as ocpi
from ocpi_hub.ocpi.common import CiString36, CountryCode, LanguageCode, PartyId, String64


class Token(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    country_code: CountryCode
    party_id: PartyId
    type: ocpi.TokenType
    uid: ocpi.TokenUid
    contract_id: ocpi.ContractId
    visual_number: String64 | None = None
    issuer: String64
    group_id: CiString36 | None = None
    valid: bool
    language_code: LanguageCode | None = None
    cache_mode: ocpi.WhitelistType
    # Ignored on input (the seed: "ignored on create/update"); always set on output.
    last_updated: datetime | None = None


# The OCPI fields the seed cannot express: a setToken of a stored token keeps them (db.tokens.put), so that an
# operator's update does not erase what the eMSP sent; a new token has none.
NOT_IN_THE_SEED = ("default_profile_type", "energy_contract")


def token_to_ocpi(token: Token, *, last_updated: datetime) -> ocpi.Token:
    """The OCPI token a setToken stores (without the fields NOT_IN_THE_SEED)."""
    return ocpi.Token(
        country_code=token.country_code.upper(),
        party_id=token.party_id.upper(),
        uid=token.uid,
        type=token.type,
        contract_id=token.contract_id,
        visual_number=token.visual_number,
        issuer=token.issuer,
        group_id=token.group_id,
        valid=token.valid,
        whitelist=token.cache_mode,
        language=token.language_code,
        last_updated=last_updated,
    )


def ocpi_to_token(token: ocpi.Token) -> Token:
    return Token(
        country_code=token.country_code,
        party_id=token.party_id,
        type=token.type,
        uid=token.uid,
        contract_id=token.contract_id,
        visual_number=token.visual_number,
        issuer=token.issuer,
        group_id=token.group_id,
        valid=token.valid,
        language_code=token.language,
        cache_mode=token.whitelist,
        last_updated=token.last_updated,
    )
