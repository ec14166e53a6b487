"""Tokens (OCPI 2.2.1 mod_tokens), one store for both ways in: the eMSPs' Tokens Receiver PUT/PATCH and the
internal API's setToken. Keyed by (country_code, party_id, uid, type), country_code and party_id upper-case."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    CursorResult,
    Integer,
    String,
    UniqueConstraint,
    and_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime, insert_on_conflict
from ocpi_hub.ocpi import tokens as ocpi


class Token(Base):
    __tablename__ = "tokens"
    __table_args__ = (UniqueConstraint("country_code", "party_id", "uid", "type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # creation order: the stable order of lists
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    uid: Mapped[str] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(16))
    contract_id: Mapped[str] = mapped_column(String(36))
    visual_number: Mapped[str | None] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[str | None] = mapped_column(String(36))
    valid: Mapped[bool] = mapped_column(Boolean)
    whitelist: Mapped[str] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(2))
    default_profile_type: Mapped[str | None] = mapped_column(String(16))
    energy_contract: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime)


def _to_ocpi(row: Token) -> ocpi.Token:
    return ocpi.Token(
        country_code=row.country_code,
        party_id=row.party_id,
        uid=row.uid,
        type=ocpi.TokenType(row.type),
        contract_id=row.contract_id,
        visual_number=row.visual_number,
        issuer=row.issuer,
        group_id=row.group_id,
        valid=row.valid,
        whitelist=ocpi.WhitelistType(row.whitelist),
        language=row.language,
        default_profile_type=ocpi.ProfileType(row.default_profile_type) if row.default_profile_type else None,
        energy_contract=msgspec.convert(row.energy_contract, ocpi.EnergyContract) if row.energy_contract else None,
        last_updated=row.last_updated,
    )


def _is(key: ocpi.TokenKey) -> ColumnElement[bool]:
    return and_(
        Token.country_code == key.country_code.upper(),
        Token.party_id == key.party_id.upper(),
        Token.uid == key.uid,
        Token.type == key.type,
    )


async def get(session: AsyncSession, key: ocpi.TokenKey) -> ocpi.Token | None:
    row = (await session.scalars(select(Token).where(_is(key)))).first()
    return _to_ocpi(row) if row else None


# Every write below writes what it is given and reads nothing first. A read followed by a write of the whole token
# would undo what another writer committed in between: an eMSP's PATCH that revokes the token, lost to a setToken or
# to a PATCH of another field that had read the token before it.


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Token fields (ocpi.Token's names) as their columns hold them."""
    values = dict(fields)
    for name in ("country_code", "party_id"):
        if name in values:
            values[name] = values[name].upper()
    if values.get("energy_contract") is not None:
        values["energy_contract"] = msgspec.to_builtins(values["energy_contract"])
    return values


async def put(session: AsyncSession, token: ocpi.Token, *, keep: Collection[str] = ()) -> bool:
    """Store the token, replacing the one with its key but for the fields in `keep`, which a stored token keeps
    (setToken's: what the seed cannot express); True when it is new (not committed).

    Insert unless the key is taken, then replace: two first PUTs of a token at once both succeed, one creating it
    and the other replacing it (reading first and inserting when absent let both insert, and one fail on the
    unique key). The database decides which insert is first: a PostgreSQL insert waits for a concurrent one of
    the same key to commit; SQLite has one writer at a time."""
    values = _columns(msgspec.structs.asdict(token))
    insert = (
        insert_on_conflict(session, Token)
        .values(values)
        .on_conflict_do_nothing(index_elements=[Token.country_code, Token.party_id, Token.uid, Token.type])
        .returning(Token.id)
    )
    created = (await session.execute(insert)).first() is not None
    if not created:
        # An update, not a delete and insert: the token keeps its id, and so its place in lists.
        replaced = {name: value for name, value in values.items() if name not in keep}
        await session.execute(update(Token).where(_is(ocpi.key_of(token))).values(replaced))
    return created


async def patch(session: AsyncSession, key: ocpi.TokenKey, fields: dict[str, Any]) -> bool:
    """Change these fields (ocpi.Token's names) of the token with `key`, and no other, in one UPDATE; False when
    there is no such token (not committed)."""
    changed = await session.execute(update(Token).where(_is(key)).values(_columns(fields)))
    return cast(CursorResult[Any], changed).rowcount == 1


async def latest_by_uid(session: AsyncSession, uid: str, type_: ocpi.TokenType | None = None) -> ocpi.Token | None:
    """The token with this uid (and type, if given); of several (other owners or types), the most recently
    updated."""
    query = select(Token).where(Token.uid == uid)
    if type_ is not None:
        query = query.where(Token.type == type_)
    query = query.order_by(Token.last_updated.desc(), Token.id.desc()).limit(1)
    row = (await session.scalars(query)).first()
    return _to_ocpi(row) if row else None


async def page(session: AsyncSession, *, offset: int, limit: int) -> list[ocpi.Token]:
    """Tokens in the order they were first stored, which an update does not change."""
    query = select(Token).order_by(Token.id).offset(offset).limit(limit)
    return [_to_ocpi(row) for row in await session.scalars(query)]
