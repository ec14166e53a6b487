"""Commands module objects (OCPI 2.2.1 mod_commands; docs/cpo-modules.md §6.3). The same in 2.2 and 2.2.1 but for
StartSession.connector_id, new in 2.2.1, which a 2.2 eMSP simply does not send."""

from __future__ import annotations

import enum
from datetime import datetime

from ocpi_hub.ocpi.common import CiString36, DisplayText, OcpiStruct, Url
from ocpi_hub.ocpi.tokens import Token


class CommandType(enum.StrEnum):
    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class CommandResponse(OcpiStruct, kw_only=True):
    result: CommandResponseType
    timeout: int  # seconds within which the CommandResult will come
    message: list[DisplayText] | None = None


class CommandResult(OcpiStruct, kw_only=True):
    result: CommandResultType
    message: list[DisplayText] | None = None


class CancelReservation(OcpiStruct, kw_only=True):
    response_url: Url
    reservation_id: CiString36


class ReserveNow(OcpiStruct, kw_only=True):
    response_url: Url
    token: Token
    expiry_date: datetime
    reservation_id: CiString36
    location_id: CiString36
    evse_uid: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class StartSession(OcpiStruct, kw_only=True):
    response_url: Url
    token: Token
    location_id: CiString36
    evse_uid: CiString36 | None = None
    connector_id: CiString36 | None = None
    authorization_reference: CiString36 | None = None

    def __post_init__(self) -> None:
        if self.connector_id is not None and self.evse_uid is None:
            raise ValueError("evse_uid is required when connector_id is given")


class StopSession(OcpiStruct, kw_only=True):
    response_url: Url
    session_id: CiString36


class UnlockConnector(OcpiStruct, kw_only=True):
    response_url: Url
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36


Command = CancelReservation | ReserveNow | StartSession | StopSession | UnlockConnector

BODY: dict[CommandType, type[Command]] = {
    CommandType.CANCEL_RESERVATION: CancelReservation,
    CommandType.RESERVE_NOW: ReserveNow,
    CommandType.START_SESSION: StartSession,
    CommandType.STOP_SESSION: StopSession,
    CommandType.UNLOCK_CONNECTOR: UnlockConnector,
}
