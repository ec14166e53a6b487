"""The location sync of `ocpi-hub serve`: one run at start, then one every OCPI_HUB_SYNC_INTERVAL seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import leases
from ocpi_hub.db.outage import Outage
from ocpi_hub.db.sync_runs import Trigger
from ocpi_hub.settings import Settings
from ocpi_hub.sync import history
from ocpi_hub.sync.run import MAX_REASONS, SyncReport

logger = logging.getLogger(__name__)


@asynccontextmanager
async def scheduled_sync(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    on_report: OnReport | None = None,
    outage: Outage | None = None,
) -> AsyncIterator[None]:
    """Runs the sync in the background while open, when OCPI_HUB_SYNC_SOURCE is set; `on_report` is told of every
    run (None: the run failed); `outage` (the process's, db/outage.py) of every run the database was away for."""
    if settings.sync_source is None:
        yield
        return
    bind = sessions.kw.get("bind")
    outage = outage or (Outage(bind) if bind is not None else None)
    task = asyncio.create_task(
        _every(sessions, settings, settings.sync_source, clock, on_report or _ignore, outage), name="location sync"
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # a cancellation of the app's stop itself goes on out (see db/leases.holding)


async def _every(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    source: str,
    clock: Callable[[], datetime],
    on_report: OnReport,
    outage: Outage | None,
) -> None:
    """Runs start `sync_interval` apart, one after the other: a run longer than that delays the next, never
    overlaps it. Across the processes of a cluster the sync runs once per interval: the process that takes the
    interval's lease runs it (README "Running at scale")."""
    loop = asyncio.get_running_loop()
    told = _Rejections()
    holder = leases.holder_name()
    interval = timedelta(seconds=settings.sync_interval)
    while True:
        started = loop.time()
        try:
            async with sessions() as session:
                ours = await leases.take(session, SYNC_INTERVAL_LEASE, holder, now=clock(), ttl=interval)
                await session.commit()
            if ours:
                async with running_sync(sessions, holder, clock) as alone:
                    if alone:
                        report = await history.recorded(
                            sessions, settings, source, trigger=Trigger.SCHEDULE, holder=holder, clock=clock
                        )
                        logger.log(logging.WARNING if report.stopped else logging.INFO, "%s", told.summary(report))
                        on_report(report)
                    else:
                        logger.info("scheduled sync skipped: a sync started by hand is running")
        except Exception as exc:
            # A failed run (the database away, a bug) must not end the schedule: the next run may succeed. The
            # database away is the outage's one WARNING, not a traceback per run.
            if outage is None or not outage.noticed(exc):
                logger.exception("location sync of %s failed", source)
            on_report(None)
        await asyncio.sleep(max(0.0, settings.sync_interval - (loop.time() - started)))


# Leases (db/leases.py): which process runs this interval's scheduled sync, and which one is syncing right now.
SYNC_INTERVAL_LEASE = "sync-interval"
SYNC_RUNNING_LEASE = "sync-running"
_RUNNING_TTL = timedelta(seconds=60)  # renewed every 20 s while a run goes on


def running_sync(
    sessions: async_sessionmaker[AsyncSession], holder: str, clock: Callable[[], datetime]
) -> contextlib.AbstractAsyncContextManager[bool]:
    """Hold the right to sync while inside (True); False when another process is syncing."""
    return leases.holding(sessions, SYNC_RUNNING_LEASE, holder, clock=clock, ttl=_RUNNING_TTL)


OnReport = Callable[[SyncReport | None], None]


def _ignore(report: SyncReport | None) -> None:
    pass


class _Rejections:
    """A schedule repeats its runs' rejections: the log names a rejected record only when its reason is new
    (docs/operations.md §1.5); the counts say how many there are."""

    _RECORD = re.compile(r"^record \d+ ")  # its place in the source may change from run to run; its reason not

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def summary(self, report: SyncReport) -> str:
        reasons = {self._RECORD.sub("record ", reason): reason for reason in report.reasons}
        new = [reason for key, reason in reasons.items() if key not in self.seen]
        self.seen = set(reasons)  # a rejection that went away and comes back is new again
        known = report.rejected - len(new)
        shown = SyncReport(report.source, **{k: getattr(report, k) for k in _COUNTS}, stopped=report.stopped)
        shown.reasons = new
        lines = shown.summary().splitlines()
        lines = [line for line in lines if not line.startswith("... and ")]
        if known:
            lines.append(f"... and {known} more rejected, named by an earlier run or beyond the first {MAX_REASONS}")
        return "\n".join(lines)


_COUNTS = ("records", "created", "updated", "unchanged", "rejected", "removed")
