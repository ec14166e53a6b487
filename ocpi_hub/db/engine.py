"""Engine and session factory for the configured database (SQLite file by default, or PostgreSQL)."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ocpi_hub.db import sqlite_driver

BUSY_TIMEOUT = 30  # SQLite: seconds a connection waits for a lock before "database is locked"


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT}, module=sqlite_driver.dbapi())
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "invalidate", _roll_back_before_closing)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the OCPI readers go on while a sync writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A replaced or revoked token is overwritten with zeros in the file, not left in a free page (docs/operations.md
    # §9; the WAL is truncated after such a change by db.partners.scrub).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _roll_back_before_closing(dbapi_connection: Any, _record: Any, _exception: BaseException | None) -> None:
    # A task cancelled during a statement (the stop of a sync or of the push worker) makes SQLAlchemy close its
    # connection. SQLite cannot close a connection that a live cursor still uses (the cancelled statement's, kept
    # by the traceback): the connection lingers with its transaction, and its write lock makes every other writer
    # of the process wait, the clean-up of the cancelled task included. Rolled back first, it holds no lock.
    with contextlib.suppress(Exception):
        dbapi_connection.rollback()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
