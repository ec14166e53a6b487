"""Declarative base, the naming convention and the column types every table shares; PostgreSQL's advisory locks."""

from __future__ import annotations

import enum
import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, Select, TypeDecorator, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

# Constraint names identical on SQLite and PostgreSQL, so that migrations can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class AdvisoryLock(enum.IntEnum):
    """PostgreSQL advisory lock keys, one per use, kept together so that no two uses share one."""

    LOCATION_INSERTS = 0x6F637069_6C6F63  # db/locations.py: new Locations take their positions in turn
    RECEIVERS = 0x6F637069_726376  # push/outbox.py: who receives a change, against a registration


async def advisory_lock(session: AsyncSession, lock: AdvisoryLock, *, shared: bool = False) -> None:
    """On PostgreSQL, hold `lock` until the session's transaction ends (`shared`: alongside other shared holders,
    against an exclusive one). On SQLite nothing: it has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        # Core on the connection, as the status change's other statements: every broadcast change takes a lock.
        connection = await session.connection()
        await connection.execute(_lock_statement(lock, shared))


@functools.cache
def _lock_statement(lock: AdvisoryLock, shared: bool) -> Select[Any]:
    # Built once: building the function call and its cache key cost more than sending it.
    take = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    return select(take(int(lock)))


# INSERT … ON CONFLICT: both databases spell it the same way, each in its dialect's own module.
UPSERT_DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}


def insert_on_conflict(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` (a model or a Table) that takes ON CONFLICT clauses, for the session's database."""
    statement: postgresql.Insert | sqlite.Insert = UPSERT_DIALECTS[session.get_bind().dialect.name].insert(table)
    return statement


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both backends (SQLite keeps no zone; we store naive UTC and reattach it)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
