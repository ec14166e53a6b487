"""Versions module (OCPI 2.2.1 §6): Version, VersionDetails, Endpoint."""

from __future__ import annotations

import enum
from typing import Annotated

from msgspec import Meta

from ocpi_hub.ocpi.common import OcpiStruct, Url


class VersionNumber(enum.StrEnum):
    V2_0 = "2.0"
    V2_1 = "2.1"
    V2_1_1 = "2.1.1"
    V2_2 = "2.2"
    V2_2_1 = "2.2.1"


# The versions we speak, best first: the registration handshake picks the first one the partner also has.
SUPPORTED = ("2.2.1", "2.2")


class ModuleID(enum.StrEnum):
    CDRS = "cdrs"
    CHARGINGPROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUBCLIENTINFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class InterfaceRole(enum.StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class Version(OcpiStruct):
    # A partner may list versions we do not know (2.3.0, custom): keep them as strings and ignore them.
    version: str
    url: Url


class Endpoint(OcpiStruct):
    # Custom module ids are allowed (spec §6.2.2), and the role of a partner's credentials endpoint is to be
    # ignored (d2), so both stay strings on input; we only emit our own enum values.
    identifier: str
    role: str
    url: Url


class VersionDetails(OcpiStruct):
    version: str
    endpoints: Annotated[list[Endpoint], Meta(min_length=1)]
