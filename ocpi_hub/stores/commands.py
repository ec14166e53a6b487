"""The Commands store: what we answer to each command at once, what the station gateway is given, and the
CommandResult that follows (docs/cpo-modules.md §6, §6.5 our answers, D10).

Nothing is committed here; each call returns its changes (the CommandResult POSTs) for the caller to queue.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import errors
from ocpi_hub.changes import Change, Method, ObjectKey
from ocpi_hub.db import commands as db
from ocpi_hub.db import locations as locations_db
from ocpi_hub.db import sessions as sessions_db
from ocpi_hub.db import tokens as tokens_db
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi import commands as ocpi
from ocpi_hub.ocpi import locations as ocpi_locations
from ocpi_hub.ocpi.common import DisplayText, StatusCode, json_encoder, to_utc
from ocpi_hub.ocpi.sessions import Session
from ocpi_hub.ocpi.versions import ModuleID
from ocpi_hub.settings import Settings
from ocpi_hub.stores.locations import find

_response = msgspec.json.Decoder(ocpi.CommandResponse)
_session = msgspec.json.Decoder(Session)


@dataclass(frozen=True)
class Answered:
    """The synchronous answer to a command: the CommandResponse and its OCPI status_code."""

    response: ocpi.CommandResponse
    status_code: StatusCode = StatusCode.SUCCESS
    changes: tuple[Change, ...] = ()
    command_id: int | None = None


def fingerprint(command: ocpi.CommandType, body: ocpi.Command) -> str:
    """The same command with the same body (response_url included) is the same command."""
    return hashlib.sha256(command.encode() + b"\n" + json_encoder.encode(body)).hexdigest()


def _refused(result: ocpi.CommandResponseType, why: str, status: StatusCode = StatusCode.SUCCESS) -> Answered:
    message = [DisplayText(language="en", text=why)]
    return Answered(ocpi.CommandResponse(result=result, timeout=0, message=message), status)


def _rejected(why: str, status: StatusCode = StatusCode.SUCCESS) -> Answered:
    return _refused(ocpi.CommandResponseType.REJECTED, why, status)


async def receive(
    session: AsyncSession,
    partner: Partner,
    command: ocpi.CommandType,
    body: ocpi.Command,
    *,
    settings: Settings,
    now: datetime,
) -> Answered:
    """Decide on a command of `partner` and, when ACCEPTED, store it for the gateway (not committed)."""
    print_ = fingerprint(command, body)
    duplicate = await db.open_duplicate(session, partner.id, print_)
    if duplicate is not None:
        return Answered(_response.decode(duplicate.response), command_id=duplicate.id)
    values: dict[str, object] = {}
    match body:
        case ocpi.StartSession() | ocpi.ReserveNow():
            if not partner.has_party(body.token.country_code, body.token.party_id):
                return _rejected(f"token {body.token.uid} belongs to {body.token.country_code}/{body.token.party_id}")
            place = await _place(session, body.location_id, body.evse_uid, getattr(body, "connector_id", None))
            if isinstance(place, Answered):
                return place
            if isinstance(body, ocpi.ReserveNow):
                refused = _reservable(place, body, now)
                if refused is not None:
                    return refused
                values |= {"reservation_id": body.reservation_id, "expiry_date": to_utc(body.expiry_date)}
            # The eMSP's token is its data: stored or refreshed, so that the session that follows can use it.
            await tokens_db.put(
                session, msgspec.structs.replace(body.token, last_updated=to_utc(body.token.last_updated))
            )
            values |= _where(place) | {
                "token": json_encoder.encode(body.token),
                "authorization_reference": body.authorization_reference,
            }
        case ocpi.StopSession():
            stored = await sessions_db.load_session(session, body.session_id)
            if stored is None or not partner.has_party(*stored.emsp):
                return _refused(ocpi.CommandResponseType.UNKNOWN_SESSION, f"no session {body.session_id} of yours")
            if stored.status == "COMPLETED":
                return _rejected(f"session {body.session_id} is already COMPLETED")
            running = _session.decode(stored.body)
            values |= {
                "session_id": stored.id,
                "country_code": stored.country_code,
                "party_id": stored.party_id,
                "location_id": running.location_id,
                "evse_uid": running.evse_uid,
                "connector_id": running.connector_id,
            }
        case ocpi.UnlockConnector():
            place = await _place(session, body.location_id, body.evse_uid, body.connector_id)
            if isinstance(place, Answered):
                return place
            values |= _where(place)
        case ocpi.CancelReservation():
            reserved = await db.reservation(session, partner.id, body.reservation_id)
            values |= {"reservation_id": body.reservation_id}
            if reserved is not None:
                values |= {
                    "charger_reservation_id": reserved.id,
                    "location_id": reserved.location_id,
                    "evse_uid": reserved.evse_uid,
                    "country_code": reserved.country_code,
                    "party_id": reserved.party_id,
                }
    party = settings.default_party
    timeout = int(settings.command_timeout)
    response = ocpi.CommandResponse(result=ocpi.CommandResponseType.ACCEPTED, timeout=timeout)
    command_id = await db.insert(
        session,
        {"country_code": party.country_code, "party_id": party.party_id}
        | values
        | {
            "partner_id": partner.id,
            "command": command,
            "fingerprint": print_,
            "response_url": body.response_url,
            "response": json_encoder.encode(response),
            "received_at": now,
            "expires_at": now + timedelta(seconds=timeout),
        },
    )
    changes: tuple[Change, ...] = ()
    if isinstance(body, ocpi.CancelReservation) and "charger_reservation_id" not in values:
        # Not a reservation of this eMSP: no gateway is asked, the answer is known (docs/cpo-modules.md §6.5).
        changes = await _answer(session, command_id, ocpi.CommandResultType.UNKNOWN_RESERVATION, None, now=now)
    return Answered(response, changes=changes, command_id=command_id)


async def report(
    session: AsyncSession, command_id: int, result: ocpi.CommandResultType, message: str | None, *, now: datetime
) -> tuple[Change, ...]:
    """The gateway's result of an open command (not committed): 404 unknown, 409 answered or expired."""
    stored = await db.load(session, command_id)
    if stored is None:
        raise errors.NotFound(f"unknown command {command_id}")
    if stored.state == db.CommandState.ANSWERED:
        raise errors.Conflict(f"command {command_id} already has its result ({stored.result})")
    changes = await _answer(session, command_id, result, message, now=now)
    if not changes:
        raise errors.Conflict(
            f"command {command_id} expired at {stored.expires_at.isoformat()}: the eMSP is told TIMEOUT"
        )
    return changes


async def expire(session: AsyncSession, *, now: datetime) -> tuple[Change, ...]:
    """TIMEOUT for every open command past its expiry (not committed)."""
    return tuple(_result_change(c) for c in await db.expire(session, now=now))


async def _answer(
    session: AsyncSession, command_id: int, result: ocpi.CommandResultType, message: str | None, *, now: datetime
) -> tuple[Change, ...]:
    if not await db.answer(session, command_id, result, message, now=now):
        return ()
    stored = await db.load(session, command_id)
    assert stored is not None
    return (_result_change(stored),)


def _result_change(command: db.Stored) -> Change:
    key = ObjectKey(command.country_code, command.party_id, str(command.id))
    return Change(ModuleID.COMMANDS, key, Method.POST, partner_id=command.partner_id)


@dataclass(frozen=True)
class _Place:
    location: ocpi_locations.Location
    evse: ocpi_locations.EVSE | None
    connector: ocpi_locations.Connector | None


async def _place(
    session: AsyncSession, location_id: str, evse_uid: str | None, connector_id: str | None = None
) -> _Place | Answered:
    """The Location, EVSE and Connector a command names; REJECTED with 2003 when one is unknown (D10), REJECTED
    when the EVSE is REMOVED."""
    stored = await locations_db.load(session, location_id)
    if stored is None:
        return _rejected(f"unknown location {location_id}", StatusCode.UNKNOWN_LOCATION)
    location = stored.location
    evse = find(location.evses or [], evse_uid, lambda e: e.uid) if evse_uid else None
    if evse_uid and evse is None:
        return _rejected(f"unknown EVSE {evse_uid} at location {location_id}", StatusCode.UNKNOWN_LOCATION)
    connector = None
    if connector_id:
        connector = find(evse.connectors, connector_id, lambda c: c.id) if evse else None
        if connector is None:
            return _rejected(f"unknown connector {connector_id} of EVSE {evse_uid}", StatusCode.UNKNOWN_LOCATION)
    if evse is not None and evse.status == ocpi_locations.Status.REMOVED:
        return _rejected(f"EVSE {evse.uid} is REMOVED")
    return _Place(location, evse, connector)


def _reservable(place: _Place, body: ocpi.ReserveNow, now: datetime) -> Answered | None:
    if to_utc(body.expiry_date) <= now:
        return _rejected(f"expiry_date {body.expiry_date.isoformat()} has passed")
    evses = [place.evse] if place.evse else list(place.location.evses or [])
    capable = [e for e in evses if ocpi_locations.Capability.RESERVABLE in (e.capabilities or [])]
    if not capable:
        where = f"EVSE {place.evse.uid}" if place.evse else f"no EVSE of location {place.location.id}"
        return _rejected(f"{where} cannot be reserved (not RESERVABLE)")
    return None


def _where(place: _Place) -> dict[str, object]:
    return {
        "country_code": place.location.country_code,
        "party_id": place.location.party_id,
        "location_id": place.location.id,
        "evse_uid": place.evse.uid if place.evse else None,
        "connector_id": place.connector.id if place.connector else None,
    }
