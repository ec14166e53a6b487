"""The charge station operations of seed 002 (`/cs/{csId}...`), and the two the station gateway uses: read what
it must apply (lookupChargeStation) and report what it did (reportChargeStationStatus). README: "Charge stations"."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, MediaType, get, post
from litestar.enums import RequestEncodingType
from litestar.params import BodyKwarg, JSONBody, PathParameter

from ocpi_hub import certificates, errors
from ocpi_hub.api import deps
from ocpi_hub.api.internal.certificates import load_certificate
from ocpi_hub.csms import chargestation as csms
from ocpi_hub.db import chargestations
from ocpi_hub.db.chargestations import ChargeStation
from ocpi_hub.errors import seed_errors

# The station's OCPP identity, which the gateway sees in the station's URL and basic-auth user name: OCPP 2.0.1's
# identifierString (at most 48 characters), without the `:` that cannot be in a basic-auth user name.
# The seed's parameter name is kept (noqa: N803 below) because Litestar names it in its 400 messages.
CsId = Annotated[
    str,
    PathParameter(max_length=48, pattern=r"^[A-Za-z0-9*\-_=+|@.]+$", description="The charge station identifier"),
]

# The seed's ChargeStationSettings: setting name to value. Its rules are checked by csms.settings_problem, which
# names the setting; msgspec could not. Written down here for the OpenAPI document.
ChargeStationSettings = Annotated[
    dict[str, str],
    BodyKwarg(
        media_type=RequestEncodingType.JSON,
        title="ChargeStationSettings",
        description="Setting name (for OCPP 2.0.1 `<component>/<variable>`) to value",
        schema_extra={
            "propertyNames": {"minLength": 1, "maxLength": csms.SETTING_NAME_MAX},
            "additionalProperties": {"type": "string", "maxLength": csms.SETTING_VALUE_MAX},
        },
    ),
]


async def _station(db: deps.Db, cs_id: str) -> ChargeStation:
    station = await chargestations.get(db, cs_id)
    if station is None:
        raise errors.NotFound(f"unknown charge station {cs_id}: register it first (POST /api/v0/cs/{cs_id})")
    return station


def _auth(station: ChargeStation) -> csms.ChargeStationAuth:
    return csms.ChargeStationAuth(
        security_profile=csms.SecurityProfile(station.security_profile),
        base64_sha256_password=station.base64_sha256_password,
        invalid_username_allowed=station.invalid_username_allowed,
    )


async def _view(db: deps.Db, station: ChargeStation) -> csms.ChargeStation:
    settings, installs, triggers = await chargestations.details(db, station.id)
    return csms.ChargeStation(
        cs_id=station.id,
        auth=_auth(station),
        registration_status=csms.StationRegistrationStatus(station.registration_status),
        registered_at=station.registered_at,
        updated_at=station.updated_at,
        settings=[
            csms.Setting(name=s.name, value=s.value, status=csms.SettingStatus(s.status), updated_at=s.updated_at)
            for s in settings
        ],
        certificates=[
            csms.StationCertificate(
                certificate_hash=c.certificate_hash,
                type=csms.CertificateType(c.type),
                certificate=c.certificate,
                status=csms.CertificateStatus(c.status),
                updated_at=c.updated_at,
            )
            for c in installs
        ],
        triggers=[
            csms.Trigger(
                trigger=csms.TriggerType(t.trigger), status=csms.TriggerStatus(t.status), updated_at=t.updated_at
            )
            for t in triggers
        ],
    )


class ChargeStationController(Controller):
    path = "/cs"

    @post(
        "/{csId:str}",
        status_code=201,
        media_type=MediaType.TEXT,
        operation_id="registerChargeStation",
        summary="Register a new charge station",
        responses=seed_errors(400),
    )
    async def register(
        self,
        csId: CsId,  # noqa: N803
        data: JSONBody[csms.ChargeStationAuth],
        db: deps.Db,
        now: deps.Clock,
    ) -> None:
        """Registers the station, or registers it again with new details; either way its registration status is
        Pending, so that the gateway provisions it when it sends a BootNotification."""
        await chargestations.register(db, csId, data, now=now())

    @get(
        "/{csId:str}/auth",
        operation_id="lookupChargeStationAuth",
        summary="Returns the authentication details",
        responses=seed_errors(400, 404),
    )
    async def lookup_auth(self, csId: CsId, db: deps.Db) -> csms.ChargeStationAuth:  # noqa: N803
        """What the gateway needs to authenticate the station."""
        return _auth(await _station(db, csId))

    @get(
        "/{csId:str}",
        operation_id="lookupChargeStation",
        summary="Returns what is recorded for the charge station",
        responses=seed_errors(400, 404),
    )
    async def lookup(self, csId: CsId, db: deps.Db) -> csms.ChargeStation:  # noqa: N803
        """For the gateway: the registration, and the settings, certificates and triggers asked of the station
        with their status; it applies what is Pending and reports back with reportChargeStationStatus."""
        return await _view(db, await _station(db, csId))

    @post(
        "/{csId:str}/reconfigure",
        status_code=200,
        media_type=MediaType.TEXT,
        operation_id="reconfigureChargeStation",
        summary="Reconfigure the charge station",
        responses=seed_errors(400, 404),
    )
    async def reconfigure(
        self,
        csId: CsId,  # noqa: N803
        data: ChargeStationSettings,
        db: deps.Db,
        now: deps.Clock,
    ) -> None:
        """Records settings (name to value) for the gateway to apply; each is Pending until it reports."""
        if problem := csms.settings_problem(data):
            raise errors.Invalid(problem)
        await chargestations.reconfigure(db, (await _station(db, csId)).id, data, now=now())

    @post(
        "/{csId:str}/certificates",
        status_code=200,
        media_type=MediaType.TEXT,
        operation_id="installChargeStationCertificates",
        summary="Install certificates on the charge station",
        responses=seed_errors(400, 404),
    )
    async def install_certificates(
        self,
        csId: CsId,  # noqa: N803
        data: JSONBody[csms.ChargeStationInstallCertificates],
        db: deps.Db,
        now: deps.Clock,
    ) -> None:
        """Records certificates for the gateway to install, by the hash of their DER bytes."""
        installs: dict[str, csms.InstallCertificate] = {}
        for i, item in enumerate(data.certificates):
            certificate = load_certificate(item.certificate, f"certificates[{i}].certificate")
            canonical = msgspec.structs.replace(item, certificate=certificates.to_pem(certificate))
            installs[certificates.der_hash(certificate)] = canonical
        await chargestations.install_certificates(db, (await _station(db, csId)).id, installs, now=now())

    @post(
        "/{csId:str}/trigger",
        status_code=200,
        media_type=MediaType.TEXT,
        operation_id="triggerChargeStation",
        summary="Trigger a charge station action",
        responses=seed_errors(400, 404),
    )
    async def trigger(
        self,
        csId: CsId,  # noqa: N803
        data: JSONBody[csms.ChargeStationTrigger],
        db: deps.Db,
        now: deps.Clock,
    ) -> None:
        """Records a TriggerMessage for the gateway to send; Pending until it reports."""
        await chargestations.trigger(db, (await _station(db, csId)).id, data.trigger, now=now())

    @post(
        "/{csId:str}/status",
        status_code=200,
        operation_id="reportChargeStationStatus",
        summary="Report what the gateway did",
        responses=seed_errors(400, 404, 409),
    )
    async def report(
        self,
        csId: CsId,  # noqa: N803
        data: JSONBody[csms.ChargeStationReport],
        db: deps.Db,
        now: deps.Clock,
    ) -> csms.ChargeStation:
        """For the gateway: the outcome of what it applied. All or nothing: an entry that matches no request (a
        setting changed since it was read, say) is a 409 and nothing is recorded."""
        station = await _station(db, csId)
        await chargestations.apply_report(db, station, data, now=now())
        return await _view(db, station)
