"""SQLite through aiosqlite with one round trip to its thread per statement (docs/ocpi.md §11, "One round trip per
SQLite statement").

aiosqlite runs a connection's calls on a thread of its own, one call at a time. SQLAlchemy's adapter makes four such
calls for a statement that returns rows (open a cursor, execute, fetch the rows, close the cursor) and three for
one that does not. Each is a round trip between the event loop and that thread: about 45 µs of CPU, and under a busy
crawl one turn of the event loop, several milliseconds. A status change made six statements, so its round trips
were most of its CPU, and they held SQLite's write lock for tens of milliseconds (README, "Issue 15").

This cursor makes one call of the four: the statement is executed, its rows fetched and its cursor closed on the
thread in one go, and what SQLAlchemy asks of the cursor afterwards (description, rowcount, lastrowid, the rows) is
kept. And a commit or a rollback with no transaction open (the pool's rollback, after a commit) is no call at all.
Everything else is SQLAlchemy's adapter: the connection, commit and rollback, and the server-side cursor of streamed
results (`stream()`), which fetches as it goes.

In an `on_the_loop()` block (short writes: a status change, the push worker's rounds) a statement and the commit run
on the event loop's own thread, with no round trip at all, unless SQLite finds a lock taken: then they go to
aiosqlite's thread to wait there. SQLite's automatic checkpoint is set aside for a commit on the loop, and one such
commit in LOOP_COMMITS_PER_CHECKPOINT goes to the thread, where the checkpoint runs (docs/ocpi.md §11, "Short writes
on the event loop's thread").
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import itertools
import sqlite3
from collections.abc import Iterator
from typing import Any

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# What one statement leaves: its cursor's description, rowcount and lastrowid, and its rows (None: no result set).
_Outcome = tuple[Any, int, int | None, list[Any] | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On aiosqlite's thread: the whole statement."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


_ON_THE_LOOP = contextvars.ContextVar("ocpi_hub.sqlite_on_the_loop", default=False)


@contextlib.contextmanager
def on_the_loop() -> Iterator[None]:
    """SQLite statements made in this block (this task, and the tasks it starts) run on the event loop's thread.
    For short statements only: a long one (a sync's batch, a prune) would stop every request while it runs."""
    token = _ON_THE_LOOP.set(True)
    try:
        yield
    finally:
        _ON_THE_LOOP.reset(token)


def _at_once(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome | None:
    """On the event loop's thread: the whole statement, or None when it would have to wait for a lock (another
    connection writes), having changed nothing, or is a PRAGMA (rare, and the busy timeout this sets for a moment
    must read as it was set)."""
    if operation.lstrip()[:6].upper() == "PRAGMA":
        return None
    began = connection.in_transaction
    # No wait on the loop: SQLite answers "busy" at once instead of sleeping in its busy handler.
    timeout = connection.execute("PRAGMA busy_timeout").fetchone()[0]
    connection.execute("PRAGMA busy_timeout=0")
    try:
        return _run(connection, operation, parameters, many)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
            raise
        # SQLite undid the statement; it runs again on aiosqlite's thread, where it waits as it would have in the
        # first place. The transaction sqlite3 began for it (a first write) holds nothing yet: it is rolled back, as
        # SQLite's documentation asks of a busy statement in a transaction, and begun again there. One that was
        # open before is left open.
        if not began and connection.in_transaction:
            connection.rollback()
        return None
    finally:
        connection.execute(f"PRAGMA busy_timeout={timeout}")


# A checkpoint copies the WAL into the database file and syncs the file: thousands of pages at worst, milliseconds to
# far more on a slow disk, which must not stop the loop. So a commit on the loop never checkpoints, and one in this
# many goes to aiosqlite's thread, where SQLite checkpoints as usual once the WAL holds more than
# _AUTOCHECKPOINT pages. Commits made elsewhere (the traffic log's, a sync's) all go there.
LOOP_COMMITS_PER_CHECKPOINT = 100
_AUTOCHECKPOINT = 1000  # SQLite's default wal_autocheckpoint, in pages
_loop_commits = itertools.count(1)


def _commit_at_once(connection: sqlite3.Connection) -> bool:
    """On the event loop's thread: commit without checkpointing. False, the transaction left open, for a commit
    left to aiosqlite's thread: the one in LOOP_COMMITS_PER_CHECKPOINT, or one that would have to wait for a lock
    (not in WAL mode, where a commit needs the readers gone)."""
    if next(_loop_commits) % LOOP_COMMITS_PER_CHECKPOINT == 0:
        return False
    connection.execute("PRAGMA wal_autocheckpoint=0")
    try:
        return _at_once(connection, "COMMIT", None, False) is not None
    finally:
        connection.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No aiosqlite cursor (SQLAlchemy's opens one here, a round trip): each statement opens and closes its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._rows = collections.deque()
        self._soft_closed_memoized = EMPTY_DICT
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1  # sqlite3's: fetchmany() without a size fetches one row

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # the rows are all fetched already

    async def _async_soft_close(self) -> None:
        pass  # the statement's cursor is closed already

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._statement(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._statement(operation, seq_of_parameters, many=True)

    async def _statement(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection = self._connection
        async with self._adapt_connection._execute_mutex:
            outcome = _at_once(connection._conn, operation, parameters, many) if _ON_THE_LOOP.get() else None
            if outcome is None:
                outcome = await connection._execute(_run, connection._conn, operation, parameters, many)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows or ())


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _Cursor

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open, which on SQLite means a statement has written: sqlite3 begins one before
        the first write, not before a read. Asked between this connection's calls, while its thread is idle (each
        call waits for the one before)."""
        connection = self._connection._connection
        return connection is None or connection.in_transaction

    def commit(self) -> None:
        connection = self._connection._connection
        if connection is None or not connection.in_transaction:
            return  # nothing written: nothing to commit, no round trip
        if _ON_THE_LOOP.get():
            try:
                if _commit_at_once(connection):
                    return
            except Exception as error:
                self._handle_exception(error)
        super().commit()

    def rollback(self) -> None:
        # SQLAlchemy's pool rolls back every connection it takes back, after a commit too: with no transaction open
        # that is a round trip for nothing.
        if self.in_transaction:
            super().rollback()


def has_written(connection: AsyncConnection) -> bool:
    """Whether `connection` (an AsyncConnection of an engine made with `dbapi()`) has written in its transaction."""
    adapted = connection.sync_connection.connection.dbapi_connection if connection.sync_connection else None
    return not isinstance(adapted, _Connection) or adapted.in_transaction


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's adapter: a process never waits for it at exit
        return _Connection(self, await_(connection))


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The module SQLAlchemy's aiosqlite dialect is given (`create_async_engine(..., module=dbapi())`)."""
    return _DBAPI(aiosqlite, sqlite3)
