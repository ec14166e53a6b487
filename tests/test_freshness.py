"""Freshness, the validator of the read caches, on the test database (SQLite file or PostgreSQL): every commit by
another connection is seen by the next request, and one question serves one turn of the event loop, no later one."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ocpi_hub.api.ocpi.answer_cache import ReadCache
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.freshness import Freshness
from tests.test_ocpi_locations_sender import add_emsp


async def test_a_commit_by_another_connection_is_seen_by_the_next_request(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    freshness = Freshness(engine)
    freshness.open()
    try:
        before = await freshness.version()
        assert before is not None
        await add_emsp(sessions, "token-1")  # the tests' own engine: like another process
        assert await freshness.version() != before
    finally:
        await freshness.close()


def commit_elsewhere(url: str, token: str) -> None:
    """A commit by another connection, made while this event loop waits for it: no turn of the loop passes."""

    async def commit() -> None:
        engine = create_engine(url)
        try:
            await add_emsp(session_factory(engine), token)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, commit()).result()


async def test_requests_of_one_turn_share_a_question_asked_after_they_all_arrived(
    engine: AsyncEngine, database_url: str
) -> None:
    freshness = Freshness(engine)
    freshness.open()
    try:
        before = await freshness.version()
        await asyncio.sleep(0)
        first = asyncio.create_task(freshness.version())
        commit_elsewhere(database_url, "token-1")  # `first` has not run yet
        second = asyncio.create_task(freshness.version())  # arrives after the commit
        assert await first == await second != before
    finally:
        await freshness.close()


async def test_a_question_serves_its_turn_and_no_request_arriving_later(engine: AsyncEngine, database_url: str) -> None:
    freshness = Freshness(engine)
    freshness.open()
    try:
        asked = await freshness.version()
        commit_elsewhere(database_url, "token-1")
        if engine.url.get_backend_name() == "sqlite":  # on PostgreSQL asking takes turns of the loop: none is left
            assert await freshness.version() == asked  # still the turn in which it was asked
        assert await asyncio.create_task(freshness.version()) != asked
    finally:
        await freshness.close()


async def test_a_cache_empties_on_a_commit_and_drops_what_was_read_across_one(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    freshness = Freshness(engine)
    freshness.open()
    cache: ReadCache[str, str] = ReadCache(max_entries=2)
    try:
        seen = await freshness.version()
        assert cache.get("a", seen) is None
        cache.put("a", "A", seen=seen)
        assert cache.get("a", seen) == "A"

        await add_emsp(sessions, "token-1")
        later = await freshness.version()
        assert cache.get("a", later) is None
        cache.put("b", "B", seen=seen)  # read after the old version was asked: maybe stale, not kept
        assert cache.get("b", later) is None
    finally:
        await freshness.close()


async def test_a_memory_database_caches_nothing() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    freshness = Freshness(engine)
    freshness.open()
    cache: ReadCache[str, str] = ReadCache(max_entries=2)
    assert await freshness.version() is None
    cache.put("a", "A", seen=None)
    assert cache.get("a", None) is None
    await freshness.close()
    await engine.dispose()


async def test_postgresql_unreachable_means_no_cache_and_no_error() -> None:
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_args={"timeout": 2})
    freshness = Freshness(engine)
    freshness.open()
    assert await freshness.version() is None
    await freshness.close()
    await engine.dispose()
