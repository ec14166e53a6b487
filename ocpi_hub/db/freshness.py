"""What changed, per kind of data, for exact per-process caches: has anything an answer is read from been committed
since we last looked? (docs/ocpi.md §11)

The `change_counters` table holds one number per kind of data (Locations, Tariffs, Sessions, CDRs, partners),
which triggers on that kind's tables bump in the transaction that changes them (migrations 0015). So every writer
in every process is counted, with no code on its write path, and a counter is committed together with the change
it counts: a reader that sees the old number reads data at least as new. Tables no cached answer reads (the push
worker's deliveries and partner health, leases, the traffic log) have no trigger: the push worker's bookkeeping of
each delivery, or another tenant's commits on the same PostgreSQL server, no longer empty the caches.

Asking:
- SQLite: `PRAGMA data_version` on a connection of our own that never writes (it reads the WAL index in shared
  memory: microseconds, so it is asked on the event loop thread itself), and only when it moved, the counters, on
  the same connection (a read of a few rows, still microseconds).
- PostgreSQL: one query of the counters, a round trip, on connections held for it.
An in-memory SQLite database has no such numbers: there `version()` is None and nothing is cached.

One question serves every request the loop runs before its next turn, and no later one. That is exact: the question
is asked when the first of those requests runs, after all of them arrived; a request that arrives after it was
asked gets a task whose first step the loop schedules after the callback that forgets the question (asyncio and
uvloop run `call_soon` callbacks first in, first out), so it asks again and sees every commit that completed before
it arrived.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sqlite3

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base
from ocpi_hub.db.sender import LoopReader

log = logging.getLogger(__name__)

_ASK_TIMEOUT = 5.0  # seconds; without an answer the caches are bypassed, never trusted
_CONNECTIONS = 4  # PostgreSQL: at most this many questions in flight, taken from the engine's pool


class Kind(enum.IntEnum):
    """A kind of data answers are read from; its value is its place in a `Versions` tuple. The tables each kind
    counts are listed in migrations/versions/0015_change_counters.py and 0016_location_blocks.py."""

    LOCATIONS = 0  # any change of a Location
    TARIFFS = 1
    SESSIONS = 2
    CDRS = 3
    PARTNERS = 4
    LOCATIONS_ADDED = 5  # a Location inserted or deleted: what every Location answer depends on besides its own


# Finer than LOCATIONS, for the answers that read known Locations (an unfiltered page, one Location): an update of
# a Location counts in its block's counter, placed after the Kinds in a `Versions` tuple. The Location of seq s is
# in block ((s - 1) // BLOCK_SIZE) % BLOCKS: a page of 50 consecutive Locations depends on one or two blocks, and
# the number of counters stays fixed however many Locations there are (migration 0016 spells the same).
BLOCKS = 64
BLOCK_SIZE = 64


def location_blocks(first_seq: int, last_seq: int) -> tuple[int, ...]:
    """The places in `Versions` of the counters that count updates of the Locations first_seq..last_seq."""
    if last_seq - first_seq >= BLOCKS * BLOCK_SIZE:
        return tuple(range(len(Kind), len(Kind) + BLOCKS))
    first, last = (first_seq - 1) // BLOCK_SIZE, (last_seq - 1) // BLOCK_SIZE
    return tuple(sorted({len(Kind) + block % BLOCKS for block in range(first, last + 1)}))


# The counters, in Kind order, then the Location blocks: a request's view of what was committed when it asked.
Versions = tuple[int, ...]

# A kind counts on several rows on PostgreSQL (shards, so that concurrent writers lock different rows): its number
# is their sum, which every commit of the kind increases.
_COUNTERS = "SELECT kind, sum(version) FROM change_counters GROUP BY kind"
_PLACE_BY_NAME = {kind.name.lower(): int(kind) for kind in Kind} | {
    f"loc_block_{block}": len(Kind) + block for block in range(BLOCKS)
}


class ChangeCounter(Base):
    """Written by triggers only (migrations 0015)."""

    __tablename__ = "change_counters"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


def _versions(rows: list[tuple[str, int]]) -> Versions:
    # A counter without rows counts as 0 (none changed yet): the triggers' upsert adds its row at its first change.
    found = [0] * len(_PLACE_BY_NAME)
    for name, version in rows:
        place = _PLACE_BY_NAME.get(name)
        if place is not None:
            found[place] = int(version)
    return tuple(found)


class Freshness:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite: sqlite3.Connection | None = None
        self._data_version: int | None = None  # SQLite: the data_version the last counters were read at
        self._sqlite_versions: Versions | None = None
        self._postgres = engine.url.get_backend_name() == "postgresql"
        self._held: list[AsyncConnection] = []  # PostgreSQL: the idle connections for questions
        self._connections_in_use = asyncio.Semaphore(_CONNECTIONS)
        self._question: asyncio.Future[Versions | None] | None = None
        self._failing = False  # the last question found no answer
        database = engine.url.database
        self._sqlite_file = database if engine.url.get_backend_name() == "sqlite" and database != ":memory:" else None
        # SQLite: reads at once on the same connection (Sender pages and objects), once open.
        self.read_now: LoopReader | None = None

    def open(self) -> None:
        """Open what asking needs (called when the app starts, so that an app never started holds nothing)."""
        if self._sqlite_file:
            # Not opened read-only: a read-only connection cannot open a WAL database whose -shm file the last
            # writer removed. It never writes. check_same_thread=False: opened in the lifespan, used by the loop.
            # timeout=0: a question or a read on the loop never waits for a lock (WAL readers hardly ever have to);
            # when one would, the caches are bypassed for that turn, or the read goes through the session.
            self._sqlite = sqlite3.connect(self._sqlite_file, check_same_thread=False, isolation_level=None, timeout=0)
            self.read_now = LoopReader(self._sqlite)

    async def version(self) -> Versions | None:
        """The change counters, in Kind order; None when the database cannot tell.

        Ask it in a request, before reading what it validates."""
        question = self._question
        if question is None:
            loop = asyncio.get_running_loop()
            if self._sqlite is not None:
                question = loop.create_future()
                question.set_result(self._sqlite_counters(self._sqlite))
            elif self._postgres:
                question = loop.create_task(self._postgres_counters())
            else:
                return None
            if loop.get_task_factory() is None:  # an eager task factory would run a new request's first step at once
                self._question = question
                loop.call_soon(self._forget)
        if question.done():  # SQLite's, always: its answer without the cost of waiting for it
            return question.result()
        # Shielded: a request that goes away must not cancel the question the others of its turn wait for.
        return await asyncio.shield(question)

    def _forget(self) -> None:
        self._question = None

    def _sqlite_counters(self, connection: sqlite3.Connection) -> Versions | None:
        try:
            data_version = int(connection.execute("PRAGMA data_version").fetchone()[0])
            if data_version != self._data_version or self._sqlite_versions is None:
                # data_version is read first: a commit between it and the counters shows in the counters now, and
                # moves data_version again, so the counters are read once more next time (never too few reads).
                self._sqlite_versions = _versions(connection.execute(_COUNTERS).fetchall())
                self._data_version = data_version
        except sqlite3.Error as exc:  # no counters table (a database not migrated): cannot tell
            log.warning("cannot read the change counters, read caches bypassed: %r", exc)
            self._data_version = self._sqlite_versions = None
            return None
        return self._sqlite_versions

    async def _postgres_counters(self) -> Versions | None:
        # A question waits for no other: with one connection the requests of a turn would wait for the question
        # of the turn before theirs, and the hub would mostly wait. A few held connections take them in turn.
        async with self._connections_in_use:
            connection = self._held.pop() if self._held else None
            try:
                if connection is None:
                    connection = await self._engine.connect()
                raw = await connection.get_raw_connection()
                # The driver's connection (asyncpg) directly: outside any transaction, and a fraction of the cost.
                rows = await raw.driver_connection.fetch(_COUNTERS, timeout=_ASK_TIMEOUT)  # type: ignore[union-attr]
            except Exception as exc:  # any failure means "cannot tell": read the database, reconnect next time
                # Said once until it works again, not once per request (docs/ocpi.md §11, an outage).
                log.log(
                    logging.DEBUG if self._failing else logging.WARNING,
                    "cannot read PostgreSQL's change counters, read caches bypassed: %r",
                    exc,
                )
                self._failing = True
                if connection is not None:
                    await _discard(connection)
                return None
            if self._failing:
                log.info("PostgreSQL answers for its change counters again: read caches in use")
                self._failing = False
            self._held.append(connection)
            return _versions([(row[0], row[1]) for row in rows])

    async def close(self) -> None:
        if self._sqlite is not None:
            self.read_now = None
            self._sqlite.close()
            self._sqlite = None
        while self._held:
            await self._held.pop().close()


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
    except Exception:  # the connection is already gone: nothing more to release
        log.debug("discarding a broken freshness connection failed", exc_info=True)
