"""Holding a lease (db/leases.py) in one process: taken on the way in, given up on the way out, however the holder
leaves; a stopping task is never kept running by it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import leases
from ocpi_hub.ocpi.common import utc_now

Sessions = async_sessionmaker[AsyncSession]
TTL = timedelta(seconds=60)


async def _holder(sessions: Sessions) -> str | None:
    async with sessions() as session:
        return await leases.holder_of(session, "work", now=utc_now())


async def test_a_holding_takes_the_lease_and_gives_it_up_on_the_way_out(sessions: Sessions) -> None:
    async with leases.holding(sessions, "work", "a", clock=utc_now, ttl=TTL) as ours:
        assert ours
        assert await _holder(sessions) == "a"
        async with leases.holding(sessions, "work", "b", clock=utc_now, ttl=TTL) as theirs:
            assert not theirs
    assert await _holder(sessions) is None


async def test_a_cancellation_that_arrives_while_the_lease_is_given_up_still_stops_the_task(
    sessions: Sessions,
) -> None:
    # The scheduled sync is stopped by cancelling it; when the cancellation landed just as a run ended, inside the
    # holding's clean-up, the holding absorbed it and the schedule ran on, so the hub never finished stopping.
    inside, done_working = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        async with leases.holding(sessions, "work", "a", clock=utc_now, ttl=TTL):
            inside.set()
            await done_working.wait()
        await asyncio.Event().wait()  # what a task that missed its cancellation would do: go on

    task = asyncio.create_task(work())
    await inside.wait()
    done_working.set()
    await asyncio.sleep(0)  # the task wakes first (FIFO): it leaves its work and waits for the renewal to stop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
    assert await _holder(sessions) is None  # given up all the same


async def test_a_release_that_fails_does_not_hide_the_cancellation(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database away at the stop: the release fails, the lease runs out by itself, and the task still stops
    # (a scheduled sync that took the failure for its own would run on and the stop would never end).
    async def database_away(*_: object) -> None:
        raise OperationalError("UPDATE leases", {}, Exception("the database is away"))

    monkeypatch.setattr(leases, "release", database_away)
    inside = asyncio.Event()

    async def work() -> None:
        async with leases.holding(sessions, "work", "a", clock=utc_now, ttl=TTL):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
    assert await _holder(sessions) == "a"  # not given up: it runs out after TTL


async def test_a_renewal_that_fails_is_tried_again_at_the_next_third(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database away for a moment during a long sync: had the renewals stopped there, the lease would lapse
    # while the sync went on, and another process could start a second one.
    real_take, calls, taken = leases.take, 0, 0

    async def away_once(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls, taken
        calls += 1
        if calls == 2:  # the first renewal (the first call takes the lease)
            raise OperationalError("UPDATE leases", {}, Exception("the database is away"))
        got = await real_take(*args, **kwargs)
        taken += got
        return got

    monkeypatch.setattr(leases, "take", away_once)
    async with leases.holding(sessions, "work", "a", clock=utc_now, ttl=timedelta(seconds=0.3)) as ours:
        assert ours
        for _ in range(100):  # renewals every 0.1 s: wait for one after the failure
            if taken >= 2:
                break
            await asyncio.sleep(0.1)
    assert taken >= 2  # taken, then renewed after the failed renewal
