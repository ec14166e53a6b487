"""Partners (the eMSP platforms we are connected to), their credentials tokens, roles and endpoints."""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import (
    JSON,
    Boolean,
    Dialect,
    Integer,
    Select,
    String,
    Text,
    TypeDecorator,
    bindparam,
    cast,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from ocpi_hub.db.base import Base, UtcDateTime
from ocpi_hub.db.engine import BUSY_TIMEOUT
from ocpi_hub.db.sender import ReadNow
from ocpi_hub.ocpi.credentials import CredentialsRole
from ocpi_hub.ocpi.versions import Endpoint
from ocpi_hub.secret_key import Keyring

# The checkpoint after a credentials change: how long each try waits for readers (and holds off writers), how often.
SCRUB_WAIT_MS = 200
SCRUB_TRIES = 5
log = logging.getLogger(__name__)


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


def _widened(length: int) -> TypeEngine[str]:
    """A token column as 0013 widened it for sealed tokens and keyed hashes. SQLite never enforces a VARCHAR's
    length, so there the columns keep the length of 0001: widening them would copy the table, and dropping the old
    one would cascade to every table that refers to partners."""
    return String(length).with_variant(String(64), "sqlite")


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    initiator: Mapped[str] = mapped_column(String(8))
    # The hash of the token the partner presents to us (A, then C), never the token itself: a bare SHA-256, or a
    # keyed hash under the secret key (ocpi_hub/secret_key.py). Compare with Keyring.matches.
    token_hash: Mapped[str | None] = mapped_column(_widened(96), unique=True)
    # The token we present to the partner (their B or C), as stored: in clear, or sealed under the secret key.
    # Read it with `outbound_token`, write it with `set_outbound_token`.
    token: Mapped[str | None] = mapped_column(_widened(255))
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


def outbound_token(partner: Partner, keyring: Keyring) -> str | None:
    """The token we present to the partner, in clear (SecretKeyError when the keyring cannot open it)."""
    return None if partner.token is None else keyring.open(partner.token, partner.id)


def set_outbound_token(partner: Partner, token: str, keyring: Keyring) -> None:
    """Store the token we present to the partner, sealed to its row when there is a key (so the row needs its id:
    flush a new partner first)."""
    assert partner.id is not None, "flush the partner first: its sealed token is bound to its id"
    partner.token = keyring.seal(token, partner.id)


async def by_presented_token(session: AsyncSession, candidates: list[str], keyring: Keyring) -> Partner | None:
    """The partner whose stored token hash matches one of the presented token forms, under any key of the keyring
    or none (a database that had no key), if any."""
    if not candidates:
        return None
    hashes = [h for c in candidates for h in keyring.lookup_hashes(c)]
    return (await session.scalars(select(Partner).where(Partner.token_hash.in_(hashes)))).first()


async def authenticate(session: AsyncSession, candidates: list[str], keyring: Keyring) -> tuple[Partner, str] | None:
    """The partner that presented one of `candidates`, and which form it was. A hash found in an older scheme (no
    key, or the previous key) is replaced by its hash under the current key and committed, once: a keyed hash
    cannot be converted without the token (docs/operations.md §9)."""
    partner = await by_presented_token(session, candidates, keyring)
    if partner is None or partner.token_hash is None:
        return None
    stored = partner.token_hash
    token = next(c for c in candidates if keyring.matches(c, stored))
    if keyring.current is not None and not keyring.is_current_hash(stored):
        fresh = keyring.token_hash(token)
        # Only if nothing changed it meanwhile: a credentials update or revocation wins over this conversion.
        query = update(Partner).where(Partner.id == partner.id, Partner.token_hash == stored).values(token_hash=fresh)
        if (await session.execute(query)).rowcount == 1:  # type: ignore[attr-defined]
            partner.token_hash = fresh
        await session.commit()
    return partner, token


async def scrub(session: AsyncSession) -> None:
    """After a commit that replaced or removed a token: on SQLite, move the WAL into the database file and truncate
    it, so that the old token's bytes (zeroed in the file by `secure_delete`) do not stay in old WAL frames
    (docs/operations.md §9.6). A pending truncating checkpoint holds off every writer, so each try waits for readers
    only briefly, and writers go on between tries; when readers never let it finish, the log is truncated by the
    next credentials change."""
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = await session.connection()
    await connection.exec_driver_sql(f"PRAGMA busy_timeout={SCRUB_WAIT_MS}")
    try:
        for _ in range(SCRUB_TRIES):
            # One row: busy (1 when readers kept it from finishing), frames in the log, frames checkpointed.
            outcome = (await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).one()
            if not outcome[0]:
                return
            await asyncio.sleep(SCRUB_WAIT_MS / 1000)
        log.info("the write-ahead log could not be truncated after a credentials change: readers were busy")
    finally:
        await connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000}")
        await session.commit()


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


# The endpoints as stored text: the outbox asks this on every change, so it skips the ORM and decodes each distinct
# text once (the text is the row's current value, so the answer is exact).
@functools.cache
def _receivers_query(states: tuple[str, ...]) -> Select[int, str]:
    state = [Partner.state == bindparam(f"state{i}", value) for i, value in enumerate(states)]
    return select(Partner.id, cast(Partner.endpoints, Text)).where(or_(*state)).order_by(Partner.id)


async def receivers(session: AsyncSession, *, states: tuple[str, ...]) -> list[tuple[int, frozenset[str]]]:
    """(id, the modules it lists a RECEIVER endpoint of) of every partner in one of `states`, by id."""
    rows = await session.execute(_receivers_query(states))
    return [(int(row[0]), _receiving(row[1])) for row in rows]


def receivers_now(read: ReadNow, *, states: tuple[str, ...]) -> list[tuple[int, frozenset[str]]] | None:
    """`receivers`, read at once on SQLite (db.sender.LoopReader): what is committed; None when not read there."""
    rows = read(_receivers_query(states), {})
    return None if rows is None else [(int(row[0]), _receiving(row[1])) for row in rows]


@functools.lru_cache(maxsize=1024)
def _receiving(endpoints: str | None) -> frozenset[str]:
    listed: list[dict[str, Any]] = msgspec.json.decode(endpoints or "[]")
    return frozenset(str(e.get("identifier")) for e in listed if e.get("role") == "RECEIVER")


async def first_of_party(
    session: AsyncSession, country_code: str, party_id: str, *, states: tuple[str, ...]
) -> int | None:
    """`of_party` for the hot paths (every Session update asks it): the roles read as stored text, decoded once per
    distinct text, without the ORM; the rows are read in the caller's transaction, so the answer is exact."""
    key = (country_code.upper(), party_id.upper())
    for row in await session.execute(_roles_query(states)):
        if key in _parties(row[1]):
            return int(row[0])
    return None


@functools.cache
def _roles_query(states: tuple[str, ...]) -> Select[int, str]:
    state = [Partner.state == bindparam(f"state{i}", value) for i, value in enumerate(states)]
    return select(Partner.id, cast(Partner.roles, Text)).where(or_(*state)).order_by(Partner.id)


@functools.lru_cache(maxsize=1024)
def _parties(roles: str | None) -> frozenset[tuple[str, str]]:
    listed: list[dict[str, Any]] = msgspec.json.decode(roles or "[]")
    return frozenset((str(r.get("country_code")).upper(), str(r.get("party_id")).upper()) for r in listed)
