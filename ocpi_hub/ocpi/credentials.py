"""Credentials module (OCPI 2.2.1 §7): Credentials and CredentialsRole."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from ocpi_hub.ocpi.common import (
    BusinessDetails,
    CountryCode,
    CredentialsToken,
    OcpiStruct,
    PartyId,
    Role,
    Url,
)


class CredentialsRole(OcpiStruct):
    role: Role
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode


class Credentials(OcpiStruct):
    token: CredentialsToken
    url: Url
    roles: Annotated[list[CredentialsRole], Meta(min_length=1)]
