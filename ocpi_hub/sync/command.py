"""`ocpi-hub sync [--source S]`: one location sync from the command line, with a progress bar and a summary."""

from __future__ import annotations

import asyncio
import sys

from tqdm import tqdm

from ocpi_hub.db import leases
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.sync_runs import Trigger
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Settings
from ocpi_hub.sync import history
from ocpi_hub.sync.run import SyncReport
from ocpi_hub.sync.schedule import running_sync


def sync_once(settings: Settings, source: str, *, database: str) -> int:
    """Exit status: 0 when the run went through, 1 when it stopped (unreadable source, too many removals) or
    another process is syncing (it refuses rather than overlap). The summary names the rejected records and the
    warnings of the stored ones (the first few of each, docs/operations.md §8.3) and ends with the database written
    to (`database`, shown without its password). The run is recorded like every other (docs/operations.md §8.2)."""
    report = asyncio.run(_sync_once(settings, source))
    if report is None:
        sys.stderr.write(f"another process is syncing {database} right now: try again when it has finished\n")
        return 1
    sys.stdout.write(report.summary() + f"\ndatabase: {database}\n")
    return 1 if report.stopped else 0


async def _sync_once(settings: Settings, source: str) -> SyncReport | None:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        holder = leases.holder_name()
        async with running_sync(sessions, holder, utc_now) as alone:
            if not alone:
                return None
            with tqdm(desc="sync", unit=" records", file=sys.stderr, dynamic_ncols=True) as bar:

                def progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                return await history.recorded(
                    sessions, settings, source, trigger=Trigger.COMMAND, holder=holder, clock=utc_now, progress=progress
                )
    finally:
        await engine.dispose()
