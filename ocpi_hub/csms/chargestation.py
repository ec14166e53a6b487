"""The charge station operations of seed 002 (`/cs/{csId}...`: registerChargeStation, lookupChargeStationAuth,
reconfigureChargeStation, installChargeStationCertificates, triggerChargeStation), and the gateway's view.

ocpi-hub does not speak OCPP: it records what the station gateway must apply. The gateway reads a station with
`ChargeStation` and reports what it did with `ChargeStationReport`; the statuses are OCPP's (BootNotification's
RegistrationStatus, ChangeConfiguration / SetVariables', TriggerMessage's) so that the gateway can copy them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

# The seed: setting names may be up to 500 characters ("the maximum length for OCPP 1.6"). Values: OCPP 2.0.1
# SetVariables' attributeValue is string[0..1000] (1.6's value is CiString500), so 1000.
SETTING_NAME_MAX = 500
SETTING_VALUE_MAX = 1000

# Standard base64 of the 32 bytes of a SHA-256 hash: 43 characters (the last one's low 2 bits zero) and one `=`.
Base64Sha256 = Annotated[str, Meta(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]


class _Body(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of the seed's bodies: camelCase on the wire, unknown members ignored, unset optionals left out."""


class SecurityProfile(enum.IntEnum):
    UNSECURED_BASIC_AUTH = 0
    TLS_BASIC_AUTH = 1
    TLS_CLIENT_CERTIFICATE = 2


class ChargeStationAuth(_Body):
    security_profile: SecurityProfile
    base64_sha256_password: Base64Sha256 | None = msgspec.field(default=None, name="base64SHA256Password")
    invalid_username_allowed: bool | None = None


class CertificateType(enum.StrEnum):
    V2G = "V2G"
    MO = "MO"
    MF = "MF"
    CSMS = "CSMS"


class CertificateStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    PENDING = "Pending"


class InstallCertificate(_Body):
    type: CertificateType
    certificate: str  # PEM; judged by ocpi_hub.certificates.load_pem
    status: CertificateStatus = CertificateStatus.PENDING


class ChargeStationInstallCertificates(_Body):
    certificates: list[InstallCertificate]


class TriggerType(enum.StrEnum):
    BOOT_NOTIFICATION = "BootNotification"
    STATUS_NOTIFICATION = "StatusNotification"
    SIGN_V2G_CERTIFICATE = "SignV2GCertificate"
    SIGN_CHARGING_STATION_CERTIFICATE = "SignChargingStationCertificate"
    SIGN_COMBINED_CERTIFICATE = "SignCombinedCertificate"


class ChargeStationTrigger(_Body):
    trigger: TriggerType


def settings_problem(settings: Mapping[str, str]) -> str | None:
    """What is wrong with a ChargeStationSettings map, naming the setting, or None. Checked here rather than in
    the type because msgspec cannot say which key of a map broke a rule."""
    for name, value in settings.items():
        if not 0 < len(name) <= SETTING_NAME_MAX:
            return f"{name[:40]!r}: a setting name has 1 to {SETTING_NAME_MAX} characters"
        if len(value) > SETTING_VALUE_MAX:
            return f"{name!r}: a setting value has at most {SETTING_VALUE_MAX} characters"
    return None


# The gateway's side.


class StationRegistrationStatus(enum.StrEnum):
    """What the gateway answers the station's BootNotification: Pending until it has provisioned the station."""

    PENDING = "Pending"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class SettingStatus(enum.StrEnum):
    PENDING = "Pending"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"


class TriggerStatus(enum.StrEnum):
    PENDING = "Pending"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    NOT_IMPLEMENTED = "NotImplemented"


class Setting(_Body):
    name: str
    value: str
    status: SettingStatus
    updated_at: datetime


class StationCertificate(_Body):
    certificate_hash: str
    type: CertificateType
    certificate: str
    status: CertificateStatus
    updated_at: datetime


class Trigger(_Body):
    trigger: TriggerType
    status: TriggerStatus
    updated_at: datetime


class ChargeStation(_Body):
    """Everything recorded for a station (lookupChargeStation): what the gateway must apply has status Pending."""

    cs_id: str
    auth: ChargeStationAuth
    registration_status: StationRegistrationStatus
    registered_at: datetime
    updated_at: datetime
    settings: list[Setting]
    certificates: list[StationCertificate]
    triggers: list[Trigger]


class SettingReport(_Body):
    name: str
    value: str  # the value the gateway applied: a report about a value changed since is refused
    status: SettingStatus


class CertificateReport(_Body):
    certificate_hash: str
    status: CertificateStatus


class TriggerReport(_Body):
    trigger: TriggerType
    status: TriggerStatus


class ChargeStationReport(_Body):
    """What the gateway did (reportChargeStationStatus); every part is optional, the whole applies or nothing."""

    registration_status: StationRegistrationStatus | None = None
    settings: list[SettingReport] = msgspec.field(default_factory=list)
    certificates: list[CertificateReport] = msgspec.field(default_factory=list)
    triggers: list[TriggerReport] = msgspec.field(default_factory=list)
