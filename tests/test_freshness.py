"""Freshness, the validator of the read caches: one answer serves one turn of the event loop and no request that
arrives after it was asked."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from ocpi_hub.db.freshness import Freshness, ReadCache


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "fresh.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x INTEGER)")
    return str(path)


def commit(database: str) -> None:
    """A commit by another connection, as another process would make it."""
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO t VALUES (1)")


async def test_a_request_that_arrives_after_the_question_sees_the_commit(database: str) -> None:
    freshness = Freshness(f"sqlite+aiosqlite:///{database}")
    try:
        asked = freshness.version()
        commit(database)
        # In the same turn of the loop the answer is reused: the requests that run now arrived before it was asked.
        assert freshness.version() == asked
        # A request arriving now gets a task, whose first step runs after the answer is forgotten.
        assert await asyncio.create_task(_version(freshness)) != asked
    finally:
        freshness.close()


async def _version(freshness: Freshness) -> int | None:
    return freshness.version()


async def test_the_next_turn_asks_again(database: str) -> None:
    freshness = Freshness(f"sqlite+aiosqlite:///{database}")
    try:
        asked = freshness.version()
        await asyncio.sleep(0)
        assert freshness.version() == asked  # nothing committed
        commit(database)
        await asyncio.sleep(0)
        assert freshness.version() != asked
    finally:
        freshness.close()


async def test_a_cache_empties_on_a_commit_and_drops_what_was_read_across_one(database: str) -> None:
    freshness = Freshness(f"sqlite+aiosqlite:///{database}")
    cache: ReadCache[str, str] = ReadCache(max_entries=2)
    try:
        seen = freshness.version()
        assert cache.get("a", seen) is None
        cache.put("a", "A", seen=seen)
        assert cache.get("a", seen) == "A"

        commit(database)
        await asyncio.sleep(0)
        later = freshness.version()
        assert cache.get("a", later) is None
        cache.put("b", "B", seen=seen)  # read after the old version was asked: maybe stale, not kept
        assert cache.get("b", later) is None
    finally:
        freshness.close()


def test_postgresql_and_memory_databases_cache_nothing() -> None:
    cache: ReadCache[str, str] = ReadCache(max_entries=2)
    for url in ("postgresql+asyncpg://postgres@127.0.0.1/test", "sqlite+aiosqlite:///:memory:"):
        assert Freshness(url).version() is None
    cache.put("a", "A", seen=None)
    assert cache.get("a", None) is None
