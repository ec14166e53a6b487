"""Commands as stored (OCPI 2.2.1 mod_commands; docs/cpo-modules.md §6.5): one row per command we accepted, from its
arrival until its CommandResult reached the eMSP.

A command is `open` until the station gateway reports its result or it expires (`expires_at`), then `answered`;
both happen in one UPDATE … WHERE state = 'open', so a result and the expiry can never both win, whichever process
runs them. The CommandResult is then POSTed to `response_url` through the outbox (push/modules.py), and
`result_sent_at` records when the eMSP accepted it. The expiry lives here, not in a timer: a hub restarted after
`expires_at` still sends TIMEOUT.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime
from ocpi_hub.ocpi.commands import CommandResult, CommandResultType
from ocpi_hub.ocpi.common import DisplayText, json_encoder


class CommandState(enum.StrEnum):
    OPEN = "open"  # waiting for the gateway's result
    ANSWERED = "answered"  # the result is known (the gateway's, or TIMEOUT): it is on its way to the eMSP


class CommandRow(Base):
    __tablename__ = "commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(Integer, ForeignKey("partners.id", ondelete="CASCADE"))
    command: Mapped[str] = mapped_column(String(18))
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the command, its body and response_url
    response_url: Mapped[str] = mapped_column(String(255))
    country_code: Mapped[str] = mapped_column(String(2))  # our party the command is about
    party_id: Mapped[str] = mapped_column(String(3))
    location_id: Mapped[str | None] = mapped_column(String(36))
    evse_uid: Mapped[str | None] = mapped_column(String(36))
    connector_id: Mapped[str | None] = mapped_column(String(36))
    session_id: Mapped[str | None] = mapped_column(String(36))
    reservation_id: Mapped[str | None] = mapped_column(String(36))  # the eMSP's
    charger_reservation_id: Mapped[int | None] = mapped_column(Integer)  # ours: the RESERVE_NOW command's id
    expiry_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    token: Mapped[bytes | None] = mapped_column(LargeBinary)  # the OCPI Token of START_SESSION, RESERVE_NOW
    authorization_reference: Mapped[str | None] = mapped_column(String(36))
    response: Mapped[bytes] = mapped_column(LargeBinary)  # the CommandResponse we answered
    state: Mapped[str] = mapped_column(String(8))
    result: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(String(512))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    result_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


_t = cast(Table, CommandRow.__table__)
_OPEN: ColumnElement[bool] = _t.c.state == literal_column(f"'{CommandState.OPEN}'")
# One open command per (partner, fingerprint): the same command sent twice while open is one command.
Index("uq_commands_open", _t.c.partner_id, _t.c.fingerprint, unique=True, sqlite_where=_OPEN, postgresql_where=_OPEN)
Index("ix_commands_open", _t.c.state, _t.c.expires_at)


@dataclass(frozen=True)
class Stored:
    id: int
    partner_id: int
    command: str
    response_url: str
    country_code: str
    party_id: str
    location_id: str | None
    evse_uid: str | None
    connector_id: str | None
    session_id: str | None
    reservation_id: str | None
    charger_reservation_id: int | None
    expiry_date: datetime | None
    token: bytes | None
    authorization_reference: str | None
    response: bytes
    state: CommandState
    result: str | None
    message: str | None
    received_at: datetime
    expires_at: datetime
    answered_at: datetime | None
    result_sent_at: datetime | None


def _stored(row: Any) -> Stored:
    values = {name: getattr(row, name) for name in Stored.__dataclass_fields__}
    return Stored(**(values | {"state": CommandState(row.state)}))


async def insert(session: AsyncSession, values: dict[str, Any]) -> int:
    """A new open command (not committed); its id."""
    inserted = await session.execute(_t.insert().values(values | {"state": CommandState.OPEN}).returning(_t.c.id))
    return int(inserted.scalar_one())


async def load(session: AsyncSession, command_id: int) -> Stored | None:
    row = (await session.execute(select(_t).where(_t.c.id == command_id))).first()
    return None if row is None else _stored(row)


async def open_duplicate(session: AsyncSession, partner_id: int, fingerprint: str) -> Stored | None:
    row = (
        await session.execute(select(_t).where(_OPEN, _t.c.partner_id == partner_id, _t.c.fingerprint == fingerprint))
    ).first()
    return None if row is None else _stored(row)


async def reservation(session: AsyncSession, partner_id: int, reservation_id: str) -> Stored | None:
    """The partner's latest RESERVE_NOW with this reservation_id."""
    query = (
        select(_t)
        .where(_t.c.partner_id == partner_id, _t.c.command == "RESERVE_NOW", _t.c.reservation_id == reservation_id)
        .order_by(_t.c.id.desc())
        .limit(1)
    )
    row = (await session.execute(query)).first()
    return None if row is None else _stored(row)


async def pending(session: AsyncSession, *, limit: int) -> list[Stored]:
    """Open commands, oldest first."""
    rows = await session.execute(select(_t).where(_OPEN).order_by(_t.c.id).limit(limit))
    return [_stored(row) for row in rows]


async def answer(session: AsyncSession, command_id: int, result: str, message: str | None, *, now: datetime) -> bool:
    """Record the gateway's result of an open, unexpired command (not committed); False when it is not one."""
    updated = await session.execute(
        update(_t)
        .where(_t.c.id == command_id, _OPEN, _t.c.expires_at > now)
        .values(state=CommandState.ANSWERED, result=result, message=message, answered_at=now)
    )
    return bool(cast(Any, updated).rowcount)


async def expire(session: AsyncSession, *, now: datetime) -> list[Stored]:
    """Every open command past its expiry answered TIMEOUT (not committed); the ones it answered."""
    expired = await session.execute(
        update(_t)
        .where(_OPEN, _t.c.expires_at <= now)
        .values(state=CommandState.ANSWERED, result="TIMEOUT", answered_at=now)
        .returning(*_t.c)
    )
    return [_stored(row) for row in expired]


async def results(session: AsyncSession, ids: Sequence[str], version: str) -> dict[str, bytes]:
    """The CommandResult JSON of answered commands, by id (push/modules.py Bodies)."""
    wanted = [int(i) for i in ids if i.isdigit()]
    query = select(_t.c.id, _t.c.result, _t.c.message).where(_t.c.id.in_(wanted), _t.c.state == CommandState.ANSWERED)
    return {str(row.id): _result_json(row.result, row.message) for row in await session.execute(query)}


def _result_json(result: str, message: str | None) -> bytes:
    said = [DisplayText(language="en", text=message)] if message else None
    return json_encoder.encode(CommandResult(result=CommandResultType(result), message=said))


async def response_urls(session: AsyncSession, ids: Sequence[str]) -> dict[str, str]:
    """Where each command's CommandResult goes, by id (push/modules.py Targets)."""
    wanted = [int(i) for i in ids if i.isdigit()]
    query = select(_t.c.id, _t.c.response_url).where(_t.c.id.in_(wanted))
    return {str(row.id): row.response_url for row in await session.execute(query)}


async def record_sent(session: AsyncSession, command_id: str, *, at: datetime, location_url: str | None) -> None:
    """The eMSP accepted the CommandResult (push/modules.py ACCEPTED)."""
    await session.execute(update(_t).where(_t.c.id == int(command_id)).values(result_sent_at=at))
