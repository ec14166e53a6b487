"""Freshness, the validator of the read caches, on the test database (SQLite file or PostgreSQL): every change
committed by another connection to what answers are read from is seen by the next request, in the counter of its
kind only; one question serves one turn of the event loop, no later one; the push worker's bookkeeping moves no
counter; concurrent misses of one answer share one read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ocpi_hub.api.ocpi.answer_cache import Answer, Answers, ReadCache
from ocpi_hub.changes import Change, Method, ObjectKey
from ocpi_hub.db.deliveries import Delivery, Outcomes, settle
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.freshness import Freshness, Kind, location_blocks
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.ocpi.versions import ModuleID
from ocpi_hub.push import outbox
from ocpi_hub.stores import locations as store
from tests.test_locations_store import T1, evse, location
from tests.test_ocpi_locations_sender import add, add_emsp


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
    cache: ReadCache[str, str] = ReadCache(max_entries=2, depends=(Kind.PARTNERS,))
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
    cache: ReadCache[str, str] = ReadCache(max_entries=2, depends=(Kind.PARTNERS,))
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


@pytest.fixture
async def freshness(engine: AsyncEngine) -> AsyncIterator[Freshness]:
    asking = Freshness(engine)
    asking.open()
    yield asking
    await asking.close()


async def ask(freshness: Freshness) -> tuple[int, ...]:
    """The counters as a request arriving now sees them (a task of its own: a later turn of the loop)."""
    versions = await asyncio.create_task(freshness.version())
    assert versions is not None
    return versions


async def test_each_kind_moves_only_with_its_own_tables(
    freshness: Freshness, sessions: async_sessionmaker[AsyncSession]
) -> None:
    before = await ask(freshness)
    await add(sessions, location(evse("E1"), id="L1"))  # another connection, as another process would
    after_location = await ask(freshness)
    added = (Kind.LOCATIONS, Kind.LOCATIONS_ADDED)
    assert all(after_location[k] > before[k] for k in added)
    assert [n for k, n in enumerate(after_location) if k not in added] == [
        n for k, n in enumerate(before) if k not in added
    ]

    async with sessions() as session:
        await store.set_evse_status(session, "L1", "E1", ocpi.Status.CHARGING, now=T1 + timedelta(minutes=1))
        await session.commit()
    after_status = await ask(freshness)
    updated = (Kind.LOCATIONS, *location_blocks(1, 1))  # L1 is seq 1: the first block
    assert all(after_status[k] > after_location[k] for k in updated)
    assert [n for k, n in enumerate(after_status) if k not in updated] == [
        n for k, n in enumerate(after_location) if k not in updated
    ]

    await add_emsp(sessions, "token-1")
    after_partner = await ask(freshness)
    assert after_partner[Kind.PARTNERS] > after_status[Kind.PARTNERS]
    assert after_partner[Kind.LOCATIONS] == after_status[Kind.LOCATIONS]


async def test_a_revocation_moves_the_partners_counter(
    freshness: Freshness, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_emsp(sessions, "token-1")
    before = await ask(freshness)
    async with sessions() as session:
        await session.execute(update(Partner).values(token_hash=None, state="suspended"))
        await session.commit()
    assert (await ask(freshness))[Kind.PARTNERS] > before[Kind.PARTNERS]


async def test_the_push_workers_bookkeeping_moves_no_counter(
    freshness: Freshness, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_emsp(sessions, "token-1")
    async with sessions() as session:
        partner_id = (await session.execute(select(Partner.id))).scalar_one()
        change = Change(ModuleID.LOCATIONS, ObjectKey("NL", "OHB", "L1"), Method.PUT, partner_id=partner_id)
        await outbox.queue(session, [change], now=utc_now())  # a delivery queued (with a change, in real life)
        await session.commit()
    before = await ask(freshness)
    async with sessions() as session:  # what the worker commits when it sent it: the delivery settled
        delivery_id, revision = (await session.execute(select(Delivery.id, Delivery.revision))).one()
        await settle(session, Outcomes(sent=[(delivery_id, revision)]), now=utc_now())
        await session.commit()
    async with sessions() as session:
        assert (await session.execute(select(Delivery.id))).first() is None
    assert await ask(freshness) == before


async def made(reads: list[int], release: asyncio.Event, *, fail: bool = False) -> Answer:
    reads.append(1)
    await release.wait()
    if fail:
        raise RuntimeError("the database went away")
    return Answer(b"[]", {}, utc_now)


async def test_concurrent_misses_of_one_answer_share_one_read(freshness: Freshness) -> None:
    answers = Answers(Kind.LOCATIONS)
    reads: list[int] = []
    release = asyncio.Event()
    seen = await ask(freshness)
    waiting = [asyncio.create_task(answers.answer(("q",), seen, lambda: made(reads, release))) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    got = await asyncio.gather(*waiting)
    assert len(reads) == 1
    assert all(answer is got[0] for answer in got)
    assert (answers.reads, answers.shared) == (1, 4)


async def test_a_miss_after_a_change_does_not_share_a_read_begun_before_it(
    freshness: Freshness, sessions: async_sessionmaker[AsyncSession]
) -> None:
    answers = Answers(Kind.LOCATIONS)
    reads: list[int] = []
    release = asyncio.Event()
    seen = await ask(freshness)
    first = asyncio.create_task(answers.answer(("q",), seen, lambda: made(reads, release)))
    await asyncio.sleep(0)
    await add(sessions, location(evse("E1"), id="L1"))  # committed while the first read runs
    later = await ask(freshness)
    second = asyncio.create_task(answers.answer(("q",), later, lambda: made(reads, release)))
    await asyncio.sleep(0)
    release.set()
    assert await first is not await second
    assert len(reads) == 2


async def test_a_failed_read_is_not_shared(freshness: Freshness) -> None:
    answers = Answers(Kind.LOCATIONS)
    reads: list[int] = []
    release = asyncio.Event()
    seen = await ask(freshness)
    failing = asyncio.create_task(answers.answer(("q",), seen, lambda: made(reads, release, fail=True)))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(answers.answer(("q",), seen, lambda: made(reads, release)))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(RuntimeError):
        await failing
    assert isinstance(await waiting, Answer)  # it read for itself
    assert len(reads) == 2
