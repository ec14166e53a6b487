"""What every Sender list reads from its module's tables (docs/ocpi.md §1.7): a page and one object, and how they
can be read at once on a SQLite database (LoopReader); and the bodies the push worker sends."""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

log = logging.getLogger(__name__)


async def bodies_of(session: AsyncSession, table: Table, ids: Sequence[str]) -> dict[str, bytes]:
    """The `body` of these objects of `table` (by its upper-cased `key`), as the push worker sends them."""
    keys = sorted({i.upper() for i in ids})
    return {row.key: row.body for row in await session.execute(_bodies_statement(table), {"keys": keys})}


# Built once per table: the push worker asks it every round (docs/ocpi.md §11, "The push worker's rounds").
@functools.cache
def _bodies_statement(table: Table) -> Select[tuple[str, bytes]]:
    return select(table.c.key, table.c.body).where(table.c.key.in_(bindparam("keys", expanding=True)))


@dataclass(frozen=True)
class PageQuery:
    """A page of a list: date_from inclusive, date_to exclusive, optionally of one of our parties; for the
    modules whose objects belong to one eMSP (Sessions, CDRs), only the objects of the `readers`' parties."""

    offset: int
    limit: int
    date_from: datetime | None = None
    date_to: datetime | None = None
    party: tuple[str, str] | None = None
    readers: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class Document:
    """One stored object's JSON for a version, with its owner and, for an object of one eMSP, that eMSP's party."""

    body: bytes
    country_code: str
    party_id: str
    reader: tuple[str, str] | None = None
    # The change counters (places in ocpi_hub.db.freshness.Versions) the object's answers depend on, when fewer
    # than its module's kind: a Location, on its block's.
    depends: tuple[int, ...] | None = None


# A read of one statement at once, on the event loop's own SQLite connection: its rows, or None when it could not
# be read there (then read through the session as usual).
ReadNow = Callable[[ClauseElement, Mapping[str, Any]], list[tuple[Any, ...]] | None]

# The app's sessions carry its LoopReader on SQLite (`session.info`, set when the app starts), for the writes that
# read at once what they are about to change: the outbox's receivers, a Location before its status change.
READ_NOW = "ocpi_hub.read_now"


def read_now(session: AsyncSession) -> ReadNow | None:
    read: ReadNow | None = session.info.get(READ_NOW)
    return read


_SQLITE = sqlite.dialect(paramstyle="named")
_MAPPED = 1 << 30  # 1 GiB: a database of 80,000 Locations; the rest of a larger file is read as usual


class LoopReader:
    """Reads on a SQLite connection of the event loop's own, without the thread hand-offs of aiosqlite (four per
    read: begin, execute, fetch, rollback) or SQLAlchemy's execution path. A page of Locations is one range read on
    the primary key of ~160 kB from SQLite's page cache, about 0.1 ms: cheaper than those hand-offs, so it is not
    worth moving off the loop (bench/crawl_under_writes.py). SQLite in WAL mode never makes a reader wait for a
    writer; when it would have to wait anyway (busy: no timeout is set), the read is left to the session.

    The connection is the freshness connection (ocpi_hub.db.freshness), which never writes. Each statement is its
    own read transaction: one statement per answer, so an answer is one snapshot.

    It reads the database file through a memory map (up to _MAPPED bytes of it) rather than a read() call per 4 kB
    page: a page of 50 Locations from 10,000 took 90 µs of SQLite's time instead of 200 (docs/ocpi.md §11, where
    the choice and its costs are written).
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        connection.execute(f"PRAGMA mmap_size={_MAPPED}")
        self._connection = connection
        self._compiled: dict[ClauseElement, tuple[str, dict[str, Any]]] = {}

    def __call__(self, statement: ClauseElement, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
        compiled = self._compiled.get(statement)
        if compiled is None:  # statements are built once (functools.cache), so this is once per shape
            sql = statement.compile(dialect=_SQLITE)
            compiled = self._compiled[statement] = (str(sql), dict(sql.params))
        sql_text, defaults = compiled
        try:
            return self._connection.execute(sql_text, defaults | dict(parameters)).fetchall()
        except sqlite3.Error:
            log.debug("read on the loop's SQLite connection failed; read through the session", exc_info=True)
            return None
