"""The Sessions and CDRs store: a charging session from its start to its CDR, and credit CDRs
(docs/cpo-modules.md §4, §5, §4.7 our implementation).

Rules:
- A Session belongs to our party that owns its Location, and is seen by the eMSP that owns its token
  (cdr_token.country_code/party_id) and by no one else: its pushes are addressed to that eMSP's partner alone.
- The Tariff is the first of the Connector's tariff_ids in force at the start (its start_date_time/end_date_time);
  it is kept with the Session, as are the CdrLocation and the Location's time zone: the CDR is sealed as of the
  start. Without a Tariff the Session has no total_cost and its CDR a total_cost of zero.
- Every reading re-prices the session from all its readings (pricing.bill): total_cost, kwh and the charging
  periods always agree with each other, and the final total_cost of the Session is the CDR's.
- Pushes, in order: PUT at the start; a PATCH per reading with what changed (kwh, total_cost, and each newly
  closed charging period as `charging_periods@i`, which the eMSP appends); at the stop a PATCH with status
  COMPLETED and end_date_time, then a POST of the CDR (db/deliveries.py WAITS_FOR keeps that order).
- CDRs never change. A correction is a credit CDR: id + "-C", credit true, every cost negated (D8).

Nothing is committed here; each call returns the changes for the caller to queue (push/outbox.committed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import billing, errors, pricing
from ocpi_hub.changes import Change, Method, ObjectKey
from ocpi_hub.csms.session import MeterRequest, StartRequest, StopRequest
from ocpi_hub.db import commands as commands_db
from ocpi_hub.db import locations as locations_db
from ocpi_hub.db import partners
from ocpi_hub.db import sessions as db
from ocpi_hub.db import tariffs as tariffs_db
from ocpi_hub.db import tokens as tokens_db
from ocpi_hub.db.partners import PartnerState
from ocpi_hub.ocpi import locations as ocpi_locations
from ocpi_hub.ocpi.common import json_encoder, to_utc
from ocpi_hub.ocpi.sessions import CDR, AuthMethod, CdrLocation, CdrToken, ChargingPeriod, Session, SessionStatus
from ocpi_hub.ocpi.tariffs import Tariff
from ocpi_hub.ocpi.versions import ModuleID
from ocpi_hub.stores.locations import find

_session = msgspec.json.Decoder(Session)
_cdr = msgspec.json.Decoder(CDR)
_tariff = msgspec.json.Decoder(Tariff)
_location = msgspec.json.Decoder(CdrLocation)
_readings = msgspec.json.Decoder(list[tuple[datetime, Decimal, Decimal | None, Decimal | None]])
# Decimals as JSON strings in what we keep (exact), as numbers in what we send.
_keep = msgspec.json.Encoder()

CREDIT_SUFFIX = "-C"


@dataclass(frozen=True)
class Saved:
    session: Session
    changes: tuple[Change, ...]  # empty: nothing was written
    created: bool = False
    cdr: CDR | None = None


@dataclass(frozen=True)
class SavedCdr:
    cdr: CDR
    changes: tuple[Change, ...]
    created: bool = False


# --- Reading ---------------------------------------------------------------------------------------------------


async def get(session: AsyncSession, session_id: str) -> Session:
    stored = await db.load_session(session, session_id)
    if stored is None:
        raise errors.NotFound(f"unknown session {session_id}")
    return _session.decode(stored.body)


async def get_cdr(session: AsyncSession, cdr_id: str) -> db.StoredCdr:
    stored = await db.load_cdr(session, cdr_id)
    if stored is None:
        raise errors.NotFound(f"unknown CDR {cdr_id}")
    return stored


def cdr_of(stored: db.StoredCdr) -> CDR:
    return _cdr.decode(stored.body)


# --- Start, meter, stop ------------------------------------------------------------------------------------------


async def start(
    session: AsyncSession, session_id: str, request: StartRequest, *, now: datetime, currency: str
) -> Saved:
    """Open the Session (not committed). The same start again changes nothing; a different one is a Conflict."""
    request = msgspec.structs.replace(request, start_date_time=to_utc(request.start_date_time))
    canonical = _keep.encode(request)
    existing = await db.load_session(session, session_id)
    if existing is not None:
        if existing.start_request != canonical:
            raise errors.Conflict(f"session {session_id} was started with other values")
        return Saved(_session.decode(existing.body), ())

    token = await tokens_db.latest_by_uid(session, request.token_uid, request.token_type)
    if token is None:
        raise errors.Invalid(f"token_uid: no stored token {request.token_uid!r} of type {request.token_type}")
    stored_location = await locations_db.load(session, request.location_id)
    if stored_location is None:
        raise errors.Invalid(f"location_id: unknown location {request.location_id!r}")
    location = stored_location.location
    evse = find(location.evses or [], request.evse_uid, lambda e: e.uid)
    if evse is None:
        raise errors.Invalid(f"evse_uid: unknown EVSE {request.evse_uid!r} at location {location.id!r}")
    connector = find(evse.connectors, request.connector_id, lambda c: c.id)
    if connector is None:
        raise errors.Invalid(f"connector_id: unknown connector {request.connector_id!r} of EVSE {evse.uid!r}")
    if evse.status == ocpi_locations.Status.REMOVED:
        raise errors.Conflict(f"evse_uid: EVSE {evse.uid!r} is REMOVED: no session can start there")

    start_at = request.start_date_time
    tariff = await _tariff_in_force(session, connector.tariff_ids or [], start_at)
    reference = request.authorization_reference
    auth_method = request.auth_method or (AuthMethod.AUTH_REQUEST if reference else AuthMethod.WHITELIST)
    if request.command_id is not None:
        command = await commands_db.load(session, request.command_id)
        if command is None or command.command != "START_SESSION":
            raise errors.Invalid(f"command_id: {request.command_id} is not a START_SESSION command")
        reference, auth_method = command.authorization_reference or reference, AuthMethod.COMMAND
    opened = Session(
        country_code=location.country_code,
        party_id=location.party_id,
        id=session_id,
        start_date_time=start_at,
        kwh=0,
        cdr_token=CdrToken(
            country_code=token.country_code,
            party_id=token.party_id,
            uid=token.uid,
            type=token.type,
            contract_id=token.contract_id,
        ),
        auth_method=auth_method,
        authorization_reference=reference,
        location_id=location.id,
        evse_uid=evse.uid,
        connector_id=connector.id,
        currency=tariff.currency if tariff else currency,
        charging_periods=[],
        status=SessionStatus.ACTIVE,
        last_updated=now,
    )
    readings = [pricing.Reading(start_at, request.meter_start_wh)]
    opened = _priced(opened, tariff, location.time_zone, readings, closed_only=True)
    stored = db.StoredSession(
        id=session_id,
        country_code=location.country_code,
        party_id=location.party_id,
        emsp=(token.country_code, token.party_id),
        status=opened.status,
        start_request=canonical,
        readings=_keep.encode([_row(r) for r in readings]),
        tariff=_keep.encode(tariff) if tariff else None,
        time_zone=location.time_zone,
        cdr_location=_keep.encode(_cdr_location(location, evse, connector)),
        revision=1,
        body=json_encoder.encode(opened),
    )
    await db.insert_session(session, stored, last_updated=now)
    owner = await _owner(session, stored.emsp)
    return Saved(opened, _addressed(owner, ModuleID.SESSIONS, opened, Method.PUT), created=True)


async def meter(session: AsyncSession, session_id: str, request: MeterRequest, *, now: datetime) -> Saved:
    """Add a meter reading and re-price (not committed). The last reading again changes nothing."""
    stored, current, readings = await _open(session, session_id, what="a reading")
    reading = pricing.Reading(to_utc(request.timestamp), request.energy_wh, request.power_w, request.current_a)
    if readings[-1] == reading:
        return Saved(current, ())
    _check_next(readings[-1], reading.timestamp, reading.energy_wh, "timestamp", "energy_wh")
    readings.append(reading)
    return await _write(session, stored, current, readings, now=now)


async def stop(session: AsyncSession, session_id: str, request: StopRequest, *, now: datetime) -> Saved:
    """Complete the Session and make its CDR (not committed). Stopping again answers the same CDR."""
    stored = await db.load_session(session, session_id)
    if stored is None:
        raise errors.NotFound(f"unknown session {session_id}")
    if stored.status == SessionStatus.COMPLETED:
        made = await db.load_cdr(session, session_id)
        return Saved(_session.decode(stored.body), (), cdr=cdr_of(made) if made else None)
    current, readings = _state(stored)
    end = to_utc(request.end_date_time)
    last = readings[-1]
    if (end, request.meter_stop_wh) != (last.timestamp, last.energy_wh):
        _check_next(last, end, request.meter_stop_wh, "end_date_time", "meter_stop_wh")
        readings.append(pricing.Reading(end, request.meter_stop_wh))
    saved = await _write(session, stored, current, readings, now=now, status=SessionStatus.COMPLETED, end_date_time=end)
    cdr = _make_cdr(saved.session, stored, readings, now=now)
    posted = await _new_cdr(session, cdr, stored.emsp, session_key=session_id.upper(), credit_of=None)
    return Saved(saved.session, saved.changes + posted, cdr=cdr)


async def credit(session: AsyncSession, cdr_id: str, *, now: datetime) -> SavedCdr:
    """A credit CDR for the CDR `cdr_id` (not committed); asking again answers the same credit CDR."""
    original = await get_cdr(session, cdr_id)
    if original.credit_of is not None:
        raise errors.Conflict(f"CDR {cdr_id} is itself a credit CDR: it cannot be credited")
    made = await db.credit_of(session, cdr_id)
    if made is not None:
        return SavedCdr(cdr_of(made), ())
    cdr = cdr_of(original)
    negated = {
        name: msgspec.structs.replace(value, excl_vat=-value.excl_vat, incl_vat=_negate(value.incl_vat))
        for name in _COSTS
        if (value := getattr(cdr, name)) is not None
    }
    credited = msgspec.structs.replace(
        cdr,
        id=cdr.id + CREDIT_SUFFIX,
        credit=True,
        credit_reference_id=cdr.id,
        last_updated=now,
        **negated,
    )
    posted = await _new_cdr(
        session, credited, original.emsp, session_key=original.session_key, credit_of=original.id.upper()
    )
    return SavedCdr(credited, posted, created=True)


async def _new_cdr(
    session: AsyncSession, cdr: CDR, emsp: tuple[str, str], *, session_key: str | None, credit_of: str | None
) -> tuple[Change, ...]:
    """Store a CDR (it never changes after this); its POST to the eMSP."""
    stored = db.StoredCdr(
        id=cdr.id,
        country_code=cdr.country_code,
        party_id=cdr.party_id,
        emsp=emsp,
        session_key=session_key,
        credit_of=credit_of,
        last_updated=cdr.last_updated,
        sent_at=None,
        location_url=None,
        body=json_encoder.encode(cdr),
    )
    await db.insert_cdr(session, stored)
    return _addressed(await _owner(session, emsp), ModuleID.CDRS, cdr, Method.POST)


# --- Helpers -------------------------------------------------------------------------------------------------------

_COSTS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)


def _negate(value: float | None) -> float | None:
    return None if value is None else -value


async def _open(
    session: AsyncSession, session_id: str, *, what: str
) -> tuple[db.StoredSession, Session, list[pricing.Reading]]:
    stored = await db.load_session(session, session_id)
    if stored is None:
        raise errors.NotFound(f"unknown session {session_id}")
    if stored.status == SessionStatus.COMPLETED:
        raise errors.Conflict(f"session {session_id} is COMPLETED: {what} can no longer change it")
    return stored, *_state(stored)


def _state(stored: db.StoredSession) -> tuple[Session, list[pricing.Reading]]:
    readings = [pricing.Reading(*row) for row in _readings.decode(stored.readings)]
    return _session.decode(stored.body), readings


def _check_next(last: pricing.Reading, at: datetime, energy_wh: Decimal, time_field: str, energy_field: str) -> None:
    """A reading comes after the last one and its register never goes down (409 otherwise)."""
    if at <= last.timestamp:
        raise errors.Conflict(
            f"{time_field}: {at.isoformat()} is not after the last reading ({last.timestamp.isoformat()})"
        )
    if energy_wh < last.energy_wh:
        raise errors.Conflict(f"{energy_field}: the meter register went down from {last.energy_wh} to {energy_wh} Wh")


async def _write(
    session: AsyncSession,
    stored: db.StoredSession,
    current: Session,
    readings: list[pricing.Reading],
    *,
    now: datetime,
    **changes: Any,
) -> Saved:
    """Write the Session re-priced with `readings` and `changes`; the PATCH carries what differs from `current`."""
    tariff = _tariff.decode(stored.tariff) if stored.tariff else None
    updated = msgspec.structs.replace(current, last_updated=now, **changes)
    completed = updated.status == SessionStatus.COMPLETED
    updated = _priced(updated, tariff, stored.time_zone, readings, closed_only=not completed)
    fields = _changed(current, updated)
    await db.update_session(
        session,
        stored.id,
        revision=stored.revision,
        status=updated.status,
        readings=_keep.encode([_row(r) for r in readings]),
        body=json_encoder.encode(updated),
        now=now,
    )
    owner = await _owner(session, stored.emsp)
    return Saved(updated, _addressed(owner, ModuleID.SESSIONS, updated, Method.PATCH, fields))


def _priced(
    current: Session, tariff: Tariff | None, time_zone: str, readings: Sequence[pricing.Reading], *, closed_only: bool
) -> Session:
    bill = pricing.bill(tariff, time_zone, readings)
    kwh = (readings[-1].energy_wh - readings[0].energy_wh) / 1000
    return msgspec.structs.replace(
        current,
        kwh=float(kwh),
        charging_periods=billing.periods(bill, closed_only=closed_only),
        total_cost=billing.price(bill.total, current.currency) if tariff else None,
    )


_WATCHED = ("status", "end_date_time", "kwh", "total_cost")


def _changed(old: Session, new: Session) -> tuple[str, ...]:
    """The PATCH of `old` → `new`: changed fields, and each new charging period by its index (appended)."""
    fields = [name for name in _WATCHED if getattr(old, name) != getattr(new, name)]
    before, after = len(old.charging_periods or []), len(new.charging_periods or [])
    return (*fields, *(f"charging_periods@{i}" for i in range(before, after)))


def _make_cdr(
    completed: Session, stored: db.StoredSession, readings: Sequence[pricing.Reading], *, now: datetime
) -> CDR:
    tariff = _tariff.decode(stored.tariff) if stored.tariff else None
    bill = pricing.bill(tariff, stored.time_zone, readings)
    shown: list[ChargingPeriod] = completed.charging_periods or []
    if not shown:  # a CDR has at least one period: a session that lasted no time has one, empty
        shown = [billing.empty_period(completed.start_date_time, tariff.id if tariff else None)]
    totals = billing.totals(bill, shown, tariff, completed.currency)
    assert completed.end_date_time is not None
    return CDR(
        country_code=completed.country_code,
        party_id=completed.party_id,
        id=completed.id,
        start_date_time=completed.start_date_time,
        end_date_time=completed.end_date_time,
        session_id=completed.id,
        cdr_token=completed.cdr_token,
        auth_method=completed.auth_method,
        authorization_reference=completed.authorization_reference,
        cdr_location=_location.decode(stored.cdr_location),
        meter_id=completed.meter_id,
        currency=completed.currency,
        tariffs=[tariff] if tariff else None,
        charging_periods=shown,
        last_updated=now,
        **vars(totals),
    )


async def _tariff_in_force(session: AsyncSession, tariff_ids: Sequence[str], at: datetime) -> Tariff | None:
    """The first of the Connector's Tariffs valid at `at` (docs/cpo-modules.md §3.9)."""
    for tariff_id in tariff_ids:
        stored = await tariffs_db.load(session, tariff_id)
        if stored is None:
            continue
        tariff = _tariff.decode(stored.body)
        if (tariff.start_date_time is None or tariff.start_date_time <= at) and (
            tariff.end_date_time is None or at < tariff.end_date_time
        ):
            return tariff
    return None


def _cdr_location(
    location: ocpi_locations.Location, evse: ocpi_locations.EVSE, connector: ocpi_locations.Connector
) -> CdrLocation:
    """The Location as the CDR shows it; address and state cut to CdrLocation's lengths (docs/cpo-modules.md §10,
    defect 4)."""
    return CdrLocation(
        id=location.id,
        name=location.name,
        address=location.address[:45],
        city=location.city,
        postal_code=location.postal_code,
        state=location.state[:20] if location.state else None,
        country=location.country,
        coordinates=location.coordinates,
        evse_uid=evse.uid,
        evse_id=evse.evse_id or evse.uid,  # required in a CDR, optional on an EVSE: its uid stands in
        connector_id=connector.id,
        connector_standard=connector.standard,
        connector_format=connector.format,
        connector_power_type=connector.power_type,
    )


def _row(r: pricing.Reading) -> tuple[datetime, Decimal, Decimal | None, Decimal | None]:
    return (r.timestamp, r.energy_wh, r.power_w, r.current_a)


async def _owner(session: AsyncSession, emsp: tuple[str, str]) -> int | None:
    """The partner of the token's eMSP (registered, or suspended: its pushes wait for it); None when we have no
    such partner: then nothing is pushed, and the eMSP can still read it once registered."""
    return await partners.first_of_party(session, *emsp, states=(PartnerState.REGISTERED, PartnerState.SUSPENDED))


def _addressed(
    owner: int | None, module: ModuleID, obj: Session | CDR, method: Method, fields: tuple[str, ...] = ()
) -> tuple[Change, ...]:
    if owner is None or (method is Method.PATCH and not fields):
        return ()
    key = ObjectKey(obj.country_code, obj.party_id, obj.id)
    return (Change(module, key, method, fields, partner_id=owner),)
