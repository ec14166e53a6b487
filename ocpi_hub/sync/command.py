"""`ocpi-hub sync [--source S]`: one location sync from the command line, with a progress bar and a summary."""

from __future__ import annotations

import asyncio
import sys

from tqdm import tqdm

from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Settings
from ocpi_hub.sync.run import SyncReport, sync


def sync_once(settings: Settings, source: str) -> int:
    """Exit status: 0 when the run went through, 1 when it stopped (unreadable source, too many removals)."""
    report = asyncio.run(_sync_once(settings, source))
    sys.stdout.write(report.summary() + "\n")
    return 1 if report.stopped else 0


async def _sync_once(settings: Settings, source: str) -> SyncReport:
    engine = create_engine(settings.database_url)
    try:
        with tqdm(desc="sync", unit=" records", file=sys.stderr, dynamic_ncols=True) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            return await sync(session_factory(engine), settings, source, clock=utc_now, progress=progress)
    finally:
        await engine.dispose()
