"""The database's commit number, for exact per-process caches: has anything been committed since we last looked?

Each database answers with a number that every commit changes, made by any connection of any process:
- SQLite: `PRAGMA data_version` on a connection of our own that never writes. It reads the WAL index in shared
  memory: microseconds, so it is asked on the event loop thread itself rather than paying a thread hand-off.
- PostgreSQL: `pg_current_wal_insert_lsn()`, the position where the next WAL record goes, which every commit moves
  forward. It is conservative (commits to other databases of the same server move it too) and costs a round trip,
  asked on connections held for it.
An in-memory SQLite database has no such number: there `version()` is None and nothing is cached.

Under load even the pragma is the largest cost of a cached answer, so one question serves every request the loop
runs before its next turn, and no later one. That is exact: the question is asked when the first of those requests
runs, after all of them arrived; a request that arrives after it was asked gets a task whose first step the loop
schedules after the callback that forgets the question (asyncio and uvloop run `call_soon` callbacks first in,
first out), so it asks again and sees every commit that completed before it arrived.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

_ASK_TIMEOUT = 5.0  # seconds; without an answer the caches are bypassed, never trusted
_CONNECTIONS = 4  # PostgreSQL: at most this many questions in flight, taken from the engine's pool


class Freshness:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite: sqlite3.Connection | None = None
        self._postgres = engine.url.get_backend_name() == "postgresql"
        self._held: list[AsyncConnection] = []  # PostgreSQL: the idle connections for questions
        self._connections_in_use = asyncio.Semaphore(_CONNECTIONS)
        self._question: asyncio.Future[int | None] | None = None
        self._failing = False  # the last question found no answer
        database = engine.url.database
        self._sqlite_file = database if engine.url.get_backend_name() == "sqlite" and database != ":memory:" else None

    def open(self) -> None:
        """Open what asking needs (called when the app starts, so that an app never started holds nothing)."""
        if self._sqlite_file:
            # Not opened read-only: a read-only connection cannot open a WAL database whose -shm file the last
            # writer removed. It never writes. check_same_thread=False: opened in the lifespan, used by the loop.
            self._sqlite = sqlite3.connect(self._sqlite_file, check_same_thread=False, isolation_level=None)

    async def version(self) -> int | None:
        """A number that changes whenever anything was committed; None when the database cannot tell.

        Ask it in a request, before reading what it validates."""
        question = self._question
        if question is None:
            loop = asyncio.get_running_loop()
            if self._sqlite is not None:
                question = loop.create_future()
                question.set_result(int(self._sqlite.execute("PRAGMA data_version").fetchone()[0]))
            elif self._postgres:
                question = loop.create_task(self._wal_insert_position())
            else:
                return None
            if loop.get_task_factory() is None:  # an eager task factory would run a new request's first step at once
                self._question = question
                loop.call_soon(self._forget)
        # Shielded: a request that goes away must not cancel the question the others of its turn wait for.
        return await asyncio.shield(question)

    def _forget(self) -> None:
        self._question = None

    async def _wal_insert_position(self) -> int | None:
        # A question waits for no other: with one connection the requests of a turn would wait for the question
        # of the turn before theirs, and the hub would mostly wait. A few held connections take them in turn.
        async with self._connections_in_use:
            connection = self._held.pop() if self._held else None
            try:
                if connection is None:
                    connection = await self._engine.connect()
                raw = await connection.get_raw_connection()
                # The driver's connection (asyncpg) directly: outside any transaction, and a fraction of the cost.
                position: int = await raw.driver_connection.fetchval(  # type: ignore[union-attr]
                    "SELECT pg_current_wal_insert_lsn()", timeout=_ASK_TIMEOUT
                )
            except Exception as exc:  # any failure means "cannot tell": read the database, reconnect next time
                # Said once until it works again, not once per request (docs/ocpi.md §11, an outage).
                log.log(
                    logging.DEBUG if self._failing else logging.WARNING,
                    "cannot ask PostgreSQL for its WAL position, read caches bypassed: %r",
                    exc,
                )
                self._failing = True
                if connection is not None:
                    await _discard(connection)
                return None
            if self._failing:
                log.info("PostgreSQL answers for its WAL position again: read caches in use")
                self._failing = False
            self._held.append(connection)
            return position

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        while self._held:
            await self._held.pop().close()


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
    except Exception:  # the connection is already gone: nothing more to release
        log.debug("discarding a broken freshness connection failed", exc_info=True)
