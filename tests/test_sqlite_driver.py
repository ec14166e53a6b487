"""SQLite through aiosqlite with one round trip per statement (ocpi_hub/db/sqlite_driver.py): a statement is one call
on aiosqlite's thread, and it leaves what SQLAlchemy reads of a cursor as sqlite3 gives it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ocpi_hub.db import sqlite_driver


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    if engine.dialect.name != "sqlite":
        pytest.skip("the SQLite driver only")
    async with engine.connect() as connection:
        await connection.execute(text("CREATE TEMP TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)"))
        yield connection


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls made on aiosqlite's threads from now on."""
    made: list[str] = []
    execute: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_a_statement_is_one_round_trip_to_the_sqlite_thread(
    connection: AsyncConnection, calls: list[str]
) -> None:
    await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
    assert (await connection.execute(text("SELECT name, n FROM t"))).all() == [("a", 1)]
    assert len(calls) == 2  # SQLAlchemy's own adapter: 7 (cursor, execute, close; cursor, execute, fetchall, close)


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
