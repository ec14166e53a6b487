"""Partners (the eMSP platforms we are connected to), their credentials tokens, roles and endpoints."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import JSON, Boolean, Dialect, Integer, String, TypeDecorator, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.credentials_token import hash_token
from ocpi_hub.db.base import Base, UtcDateTime
from ocpi_hub.ocpi.credentials import CredentialsRole
from ocpi_hub.ocpi.versions import Endpoint


class PartnerState(enum.StrEnum):
    PENDING = "pending"  # registration not finished: a token A handed out, or our own handshake under way
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"  # credentials DELETEd: no token works any more
    SUSPENDED = "suspended"  # set by an operator: no token works until resumed


class Initiator(enum.StrEnum):
    """Who starts the credentials handshake: the partner (we gave them a token A) or we (they gave us theirs)."""

    PARTNER = "partner"
    HUB = "hub"


class _Json(TypeDecorator[Any]):
    """A msgspec type stored as JSON: the partner's roles and endpoints are typed in Python, plain JSON in the
    table (the same JSON as the wire's)."""

    impl = JSON
    cache_ok = True

    def __init__(self, type_: Any) -> None:
        super().__init__()
        self.type_ = type_

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return msgspec.to_builtins(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return msgspec.convert(value, self.type_)


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    initiator: Mapped[str] = mapped_column(String(8))
    # SHA-256 of the token the partner presents to us (A, then C); never the token itself.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The token we present to the partner (their B or C). Needed in clear to call them.
    token: Mapped[str | None] = mapped_column(String(64))
    send_base64: Mapped[bool] = mapped_column(Boolean, default=True)
    versions_url: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(8))
    roles: Mapped[list[CredentialsRole]] = mapped_column(_Json(list[CredentialsRole]), default=list)
    endpoints: Mapped[list[Endpoint]] = mapped_column(_Json(list[Endpoint]), default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def endpoint(self, identifier: str, role: str) -> str | None:
        return next((e.url for e in self.endpoints if e.identifier == identifier and e.role == role), None)

    def has_party(self, country_code: str, party_id: str) -> bool:
        key = (country_code.upper(), party_id.upper())
        return any((r.country_code.upper(), r.party_id.upper()) == key for r in self.roles)


async def by_presented_token(session: AsyncSession, candidates: list[str]) -> Partner | None:
    """The partner whose stored token hash matches one of the presented token forms, if any."""
    if not candidates:
        return None
    hashes = [hash_token(c) for c in candidates]
    return (await session.scalars(select(Partner).where(Partner.token_hash.in_(hashes)))).first()


async def by_id(session: AsyncSession, partner_id: int, *, for_update: bool = False) -> Partner | None:
    return await session.get(Partner, partner_id, with_for_update=for_update)


async def by_versions_url(session: AsyncSession, url: str, *, state: PartnerState) -> Partner | None:
    query = select(Partner).where(Partner.versions_url == url, Partner.state == state)
    return (await session.scalars(query)).first()


async def all_partners(session: AsyncSession) -> list[Partner]:
    return list(await session.scalars(select(Partner).order_by(Partner.id)))


async def of_party(session: AsyncSession, country_code: str, party_id: str, *, states: tuple[str, ...]) -> int | None:
    """The id of the first partner (by id) in one of `states` that has the party among its roles."""
    key = (country_code.upper(), party_id.upper())
    query = select(Partner.id, Partner.roles).where(Partner.state.in_(states)).order_by(Partner.id)
    for partner_id, roles in await session.execute(query):
        if any((r.country_code.upper(), r.party_id.upper()) == key for r in roles):
            return int(partner_id)
    return None


async def registered(session: AsyncSession) -> list[Partner]:
    query = select(Partner).where(Partner.state == PartnerState.REGISTERED).order_by(Partner.id)
    return list(await session.scalars(query))
