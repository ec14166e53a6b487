"""A sync started through the internal API (`POST /api/v0/sync`, docs/operations.md §8.2): it runs in the background
of the process that was asked, under the same `sync-running` lease as every other run, so that it never overlaps
one anywhere in the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import errors
from ocpi_hub.db import leases
from ocpi_hub.db.sync_runs import Trigger
from ocpi_hub.settings import Settings
from ocpi_hub.sync import history
from ocpi_hub.sync.schedule import OnReport, running_sync

logger = logging.getLogger(__name__)


class ManualSyncs:
    """The runs this process started on request; `running()` (the app's lifespan) stops them when the app stops."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        on_report: OnReport,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.on_report = on_report
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Start a run of OCPI_HUB_SYNC_SOURCE; the id of its record in `sync_runs` once it is recorded. Conflict
        when no source is set or another run (of any process) holds the lease."""
        source = self.settings.sync_source
        if source is None:
            raise errors.Conflict("sync: no sync source is configured: set OCPI_HUB_SYNC_SOURCE")
        begun: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._run(source, begun), name="location sync (api)")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        run_id = await begun
        if run_id is None:
            raise errors.Conflict("sync: a sync is running right now: try again when it has finished")
        return run_id

    async def _run(self, source: str, begun: asyncio.Future[int | None]) -> None:
        holder = leases.holder_name()

        def tell(run_id: int | None) -> None:
            if not begun.done():  # the request may have gone (its client hung up): the run goes on
                begun.set_result(run_id)

        try:
            async with running_sync(self.sessions, holder, self.clock) as alone:
                if not alone:
                    tell(None)
                    return
                report = await history.recorded(
                    self.sessions,
                    self.settings,
                    source,
                    trigger=Trigger.API,
                    holder=holder,
                    clock=self.clock,
                    begun=tell,
                )
            shown = dataclasses.replace(report, source=history.shown_source(report.source))
            logger.log(logging.WARNING if report.stopped else logging.INFO, "%s", shown.summary())
            self.on_report(report)
        except asyncio.CancelledError:
            if not begun.done():
                begun.cancel()
            raise
        except Exception as exc:
            if not begun.done():  # before the run began: the request answers with it
                begun.set_exception(exc)
                return
            logger.exception("location sync of %s failed", history.shown_source(source))
            self.on_report(None)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
