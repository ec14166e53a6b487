"""The location sync of `ocpi-hub serve`: one run at start, then one every OCPI_HUB_SYNC_INTERVAL seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.settings import Settings
from ocpi_hub.sync.run import sync

logger = logging.getLogger(__name__)


@asynccontextmanager
async def scheduled_sync(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, clock: Callable[[], datetime]
) -> AsyncIterator[None]:
    """Runs the sync in the background while open, when OCPI_HUB_SYNC_SOURCE is set."""
    if settings.sync_source is None:
        yield
        return
    task = asyncio.create_task(_every(sessions, settings, settings.sync_source, clock), name="location sync")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _every(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, source: str, clock: Callable[[], datetime]
) -> None:
    """Runs start `sync_interval` apart, one after the other: a run longer than that delays the next, never
    overlaps it."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            report = await sync(sessions, settings, source, clock=clock)
        except Exception:
            # A failed run (the database away, a bug) must not end the schedule: the next run may succeed.
            logger.exception("location sync of %s failed", source)
        else:
            logger.log(logging.WARNING if report.stopped else logging.INFO, "%s", report.summary())
        await asyncio.sleep(max(0.0, settings.sync_interval - (loop.time() - started)))
