"""What the station gateway reports about a charging session on the internal API (/api/v0/sessions/{sessionId}/
start, /meter, /stop; docs/cpo-modules.md §4.7). snake_case like the OCPI objects they become.

Energy is the meter register in Wh, cumulative as OCPP reports it; numbers are decoded as Decimals so that nothing
is lost on the way to the price.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from ocpi_hub.ocpi.common import CiString36
from ocpi_hub.ocpi.sessions import AuthMethod
from ocpi_hub.ocpi.tokens import TokenType, TokenUid

Wh = Decimal  # >= 0: msgspec cannot constrain a Decimal, so Request checks it


class Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Unknown fields are refused: a misspelt optional field would otherwise be silently dropped."""

    def __post_init__(self) -> None:
        for name in ("meter_start_wh", "energy_wh", "meter_stop_wh"):
            value = getattr(self, name, None)
            if value is not None and not (value.is_finite() and value >= 0):
                raise ValueError(f"{name}: must be a number >= 0 (Wh), not {value}")


class StartRequest(Request, kw_only=True):
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    token_uid: TokenUid
    token_type: TokenType = TokenType.RFID
    start_date_time: datetime
    meter_start_wh: Wh = Decimal(0)  # absent: energy_wh counts this session's energy from 0
    authorization_reference: CiString36 | None = None
    auth_method: AuthMethod | None = None  # absent: AUTH_REQUEST with an authorization_reference, else WHITELIST
    # The START_SESSION command this session answers: its authorization_reference, and auth_method COMMAND.
    command_id: int | None = None


class MeterRequest(Request, kw_only=True):
    timestamp: datetime
    energy_wh: Wh
    power_w: Decimal | None = None
    current_a: Decimal | None = None  # summed over the phases


class StopRequest(Request, kw_only=True):
    end_date_time: datetime
    meter_stop_wh: Wh
