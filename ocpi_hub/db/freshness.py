"""Exact validation of per-process read caches: has anything been committed since we last looked?

SQLite answers that for free: `PRAGMA data_version` on a connection changes whenever another connection, in this
process or any other, commits to the database file. Our validator connection only ever reads that pragma, so
every commit by the hub's writers (its request handlers, the push worker, an `ocpi-hub sync` in another process)
changes it. The pragma reads the WAL index in shared memory: microseconds, so it is asked on the event loop
thread itself rather than paying a thread hand-off that would cost more than the answer.

Under load the pragma is still the largest cost of a cached answer (it takes and drops a file lock and the GIL),
so one answer serves every request the loop runs before its next turn, and no later one. That is exact: a request
that arrives after the pragma was asked gets a task whose first step the loop schedules after the callback that
forgets the answer (asyncio and uvloop run `call_soon` callbacks first in, first out), so it asks again and sees
every commit that completed before it arrived.

PostgreSQL has no such cheap exact signal, so there `version()` is None and callers read the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Generic, TypeVar

from sqlalchemy.engine import make_url

K = TypeVar("K")
V = TypeVar("V")


class Freshness:
    def __init__(self, database_url: str) -> None:
        self._connection: sqlite3.Connection | None = None
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            # Not opened read-only: a read-only connection cannot open a WAL database whose -shm file the last
            # writer removed. It never writes. check_same_thread=False: opened in the lifespan, used by the loop.
            self._connection = sqlite3.connect(url.database, check_same_thread=False, isolation_level=None)
        self._answer: int | None = None

    def version(self) -> int | None:
        """A number that changes whenever anything was committed; None when the database cannot tell cheaply.

        Call it from the event loop, before reading what it validates."""
        if self._connection is None:
            return None
        if self._answer is None:
            self._answer = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
            loop = asyncio.get_running_loop()
            if loop.get_task_factory() is None:  # an eager task factory would run a new request's first step at once
                loop.call_soon(self._forget)
            else:
                self._forget()
        return self._answer

    def _forget(self) -> None:
        self._answer = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


class ReadCache(Generic[K, V]):
    """A bounded map whose entries are valid only while `Freshness.version()` stays what it was when they were
    read from the database: a request asks the version once, and any commit anywhere since empties the map, so a
    cached answer never hides a change from the next request. Without a version (PostgreSQL) it caches nothing."""

    def __init__(self, *, max_entries: int) -> None:
        self._max_entries = max_entries
        self._version: int | None = None
        self._entries: dict[K, V] = {}

    def get(self, key: K, version: int | None) -> V | None:
        if version != self._version:
            self._entries.clear()
            self._version = version
        return None if version is None else self._entries.get(key)

    def put(self, key: K, value: V, *, seen: int | None) -> None:
        """Keep `value`, read from the database after the version `seen` was asked."""
        if seen is None or seen != self._version:
            return  # a commit was seen while we read: the value may already be stale
        if len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))  # oldest first: crawls move on, they rarely come back
        self._entries[key] = value
