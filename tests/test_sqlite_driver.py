"""SQLite through aiosqlite with one round trip per statement (ocpi_hub/db/sqlite_driver.py): a statement or a commit
is one call on aiosqlite's thread, or none in an `on_the_loop()` block unless it meets another writer's lock (or is
the one commit in LOOP_COMMITS_PER_CHECKPOINT left to the thread, to checkpoint there), and it leaves what SQLAlchemy
reads of a cursor as sqlite3 gives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ocpi_hub.db import sqlite_driver
from ocpi_hub.db.engine import create_engine


@pytest.fixture(params=["thread", "loop"])
async def connection(engine: AsyncEngine, request: pytest.FixtureRequest) -> AsyncIterator[AsyncConnection]:
    """A connection whose statements run on aiosqlite's thread, or on the event loop's (`on_the_loop`)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite driver only")
    where = sqlite_driver.on_the_loop() if request.param == "loop" else contextlib.nullcontext()
    with where:
        async with engine.connect() as connection:
            await connection.execute(text("CREATE TEMP TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)"))
            yield connection


async def test_a_statement_is_one_round_trip_to_the_sqlite_thread_and_none_on_the_loop(
    connection: AsyncConnection, calls: list[str]
) -> None:
    await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
    assert (await connection.execute(text("SELECT name, n FROM t"))).all() == [("a", 1)]
    on_the_loop = sqlite_driver._ON_THE_LOOP.get()
    # SQLAlchemy's own adapter: 7 (cursor, execute, close; cursor, execute, fetchall, close)
    assert calls == ([] if on_the_loop else ["_run", "_run"])
    await connection.commit()
    assert calls == ([] if on_the_loop else ["_run", "_run", "commit"])


async def test_a_connection_given_back_after_its_commit_costs_no_call(engine: AsyncEngine, calls: list[str]) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite driver only")
    async with engine.connect() as connection:  # the pool's connection, already open
        await connection.execute(text("UPDATE change_counters SET version = version WHERE 0"))
        await connection.commit()
    assert calls == ["_run", "commit"]  # SQLAlchemy's pool then rolls back: no transaction is open, no call
    async with engine.connect() as connection:
        await connection.execute(text("UPDATE change_counters SET version = version WHERE 0"))
    assert calls == ["_run", "commit", "_run", "rollback"]  # given back with its transaction open
    async with engine.connect() as connection:
        await connection.execute(text("SELECT count(*) FROM change_counters"))
        await connection.commit()  # a read opens no transaction: nothing to commit, no call
    assert calls == ["_run", "commit", "_run", "rollback", "_run"]


async def test_a_connection_has_written_from_its_first_write_to_its_commit(connection: AsyncConnection) -> None:
    """What decides whether a Location may be read at once on the loop's connection (db/locations.py `load`)."""
    await connection.commit()  # the fixture's CREATE
    await connection.execute(text("SELECT count(*) FROM t"))
    assert not sqlite_driver.has_written(connection)
    await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
    assert sqlite_driver.has_written(connection)
    await connection.commit()
    assert not sqlite_driver.has_written(connection)


async def test_what_a_statement_leaves_is_what_sqlite_says(connection: AsyncConnection) -> None:
    first = await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
    assert first.lastrowid == 1
    many = [{"name": "b", "n": 2}, {"name": "c", "n": 3}, {"name": "d", "n": 4}]
    assert (await connection.execute(text("INSERT INTO t (name, n) VALUES (:name, :n)"), many)).rowcount == 3
    changed = await connection.execute(text("UPDATE t SET n = n + 10 WHERE n >= 2"))
    assert changed.rowcount == 3
    returned = await connection.execute(text("UPDATE t SET n = n + 1 WHERE name IN ('a', 'b') RETURNING name, n"))
    assert sorted(returned.all()) == [("a", 2), ("b", 13)]
    rows = await connection.execute(text("SELECT name FROM t ORDER BY id"))
    assert rows.keys() == ["name"]
    assert (rows.fetchone(), rows.fetchmany(2), rows.fetchall()) == (("a",), [("b",), ("c",)], [("d",)])
    assert (await connection.execute(text("SELECT name FROM t WHERE n > 100"))).all() == []
    streamed = await connection.stream(text("SELECT n FROM t ORDER BY n"))  # SQLAlchemy's server-side cursor
    assert [n async for (n,) in streamed] == [2, 13, 13, 14]


async def test_errors_are_sqlalchemys_and_name_the_cause(connection: AsyncConnection) -> None:
    await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
    with pytest.raises(IntegrityError, match=r"UNIQUE constraint failed: t\.name"):
        await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 2)"))
    with pytest.raises(OperationalError, match="no such column: missing"):
        await connection.execute(text("SELECT missing FROM t"))
    assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1  # still usable


@contextlib.contextmanager
def another_writer(engine: AsyncEngine) -> Iterator[sqlite3.Connection]:
    """SQLite's write lock, held by another connection (as `ocpi-hub sync` in its own process holds it)."""
    assert engine.url.database
    other = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
    finally:
        other.close()


async def test_on_the_loop_a_write_that_meets_a_lock_waits_for_it_on_the_sqlite_thread(
    engine: AsyncEngine, calls: list[str]
) -> None:
    """The loop goes on serving while the write waits; the write is made once the lock is free, and the
    connection's wait for locks is as it was."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite driver only")
    insert = text("INSERT INTO change_counters (kind, shard, version) VALUES ('a', 0, 0)")

    async def write() -> None:
        with sqlite_driver.on_the_loop():
            async with engine.connect() as connection:
                before = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
                await connection.exec_driver_sql("PRAGMA busy_timeout = 5000")  # a wait on the loop: 5 s blocked
                await connection.execute(insert)
                await connection.commit()
                assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() == 5000
                await connection.exec_driver_sql(f"PRAGMA busy_timeout = {before}")

    with another_writer(engine) as other:
        writing = asyncio.create_task(write())
        started = time.monotonic()
        await asyncio.sleep(0.2)
        assert time.monotonic() - started < 1  # the loop was not stopped by the write's wait
        assert not writing.done()  # neither failed ("database is locked") nor written past the lock
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
    # On aiosqlite's thread: the two PRAGMAs before, the insert (once, as it found the lock) and the two PRAGMAs
    # after. The commit, of a write that holds the lock by then, on the loop.
    assert calls == ["_run", "_run", "_run", "_run", "_run"]
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT kind FROM change_counters"))).all() == [("a",)]


def file_size(path: str) -> int:
    """A stat of a local file, microseconds: outside the async test so that ruff's ASYNC240 lets it be."""
    return os.path.getsize(path)


async def test_on_the_loop_commits_never_checkpoint_and_one_in_a_hundred_goes_to_the_thread_to_do_it(
    engine: AsyncEngine, calls: list[str]
) -> None:
    """A checkpoint writes the WAL into the database file and syncs it: the database file grows only by checkpoints,
    so its size tells where they ran."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite driver only")
    assert engine.url.database
    every = sqlite_driver.LOOP_COMMITS_PER_CHECKPOINT
    insert = text("INSERT INTO change_counters (kind, shard, version) VALUES (:kind, 0, 0)")
    pages = 1 + sqlite_driver._AUTOCHECKPOINT // (every - 1)  # so that the WAL is past due before the last
    with sqlite_driver.on_the_loop():
        async with engine.connect() as connection:
            size = file_size(engine.url.database)
            for n in range(every - 1):
                await connection.execute(insert, {"kind": f"{n:04d}" + "x" * 4096 * pages})
                await connection.commit()
            assert calls == []
            assert file_size(engine.url.database) == size  # the WAL holds more than 1,000 pages, unwritten
            await connection.execute(insert, {"kind": "last"})
            await connection.commit()
    assert calls == ["commit"]
    assert file_size(engine.url.database) > size + 4096 * pages * (every - 1)  # checkpointed there
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM change_counters"))).scalar_one() == every


async def test_on_the_loop_a_commit_that_meets_a_reader_waits_for_it_on_the_sqlite_thread(
    tmp_path: Path, calls: list[str]
) -> None:
    """Outside WAL mode (a file system without shared memory) a commit needs the readers gone: it waits for them on
    aiosqlite's thread, not on the loop, and commits once they are."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/rollback-journal.db")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA journal_mode=DELETE")
            await connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
            await connection.commit()
        reader = sqlite3.connect(f"{tmp_path}/rollback-journal.db", isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # a shared lock, held until its transaction ends
        calls.clear()

        async def write() -> None:
            with sqlite_driver.on_the_loop():
                async with engine.connect() as connection:
                    await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
                    await connection.commit()

        writing = asyncio.create_task(write())
        started = time.monotonic()
        await asyncio.sleep(0.2)
        assert time.monotonic() - started < 1  # the loop was not stopped by the commit's wait
        assert not writing.done()
        reader.execute("COMMIT")
        reader.close()
        await asyncio.wait_for(writing, 5)
        assert calls == ["commit"]  # the insert on the loop; the commit, refused there, on the thread
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("SELECT n FROM t")).all() == [(1,)]
    finally:
        await engine.dispose()
