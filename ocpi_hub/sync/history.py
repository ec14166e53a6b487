"""Every location sync run recorded in `sync_runs` (docs/operations.md §8.2), whoever started it: the schedule,
`ocpi-hub sync` or `POST /api/v0/sync`. The caller holds the `sync-running` lease; this only records around the run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import sync_runs
from ocpi_hub.db.sync_runs import Ended, Outcome, Trigger
from ocpi_hub.settings import Settings
from ocpi_hub.sync.run import Progress, SyncReport, sync

Begun = Callable[[int], None]  # told the run's id once it is recorded


async def recorded(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    source: str,
    *,
    trigger: Trigger,
    holder: str,
    clock: Callable[[], datetime],
    progress: Progress | None = None,
    begun: Begun | None = None,
) -> SyncReport:
    """One sync of `source`, recorded when it starts and when it ends, however it ends: an error or a cancellation
    is recorded (failed, interrupted) and raised again."""
    async with sessions() as session:
        run_id = await sync_runs.begin(
            session, trigger=trigger, source=shown_source(source), holder=holder, now=clock()
        )
        await session.commit()
    if begun is not None:
        begun(run_id)
    try:
        report = await sync(sessions, settings, source, clock=clock, progress=progress)
    except asyncio.CancelledError:
        await _end_anyway(sessions, run_id, _broken(Outcome.INTERRUPTED, "the process stopped during the run"), clock)
        raise
    except Exception as exc:
        await _end_anyway(sessions, run_id, _broken(Outcome.FAILED, _first_line(exc)), clock)
        raise
    async with sessions() as session:
        await sync_runs.end(session, run_id, ended(report), now=clock())
        await session.commit()
    return report


def ended(report: SyncReport) -> Ended:
    counts = {name: getattr(report, name) for name in sync_runs.COUNTS if name != "warnings"}
    return Ended(
        outcome=Outcome.STOPPED if report.stopped else Outcome.COMPLETED,
        counts=counts | {"warnings": report.warned},
        reason=report.stopped,
        rejected=report.reasons,
        warnings=report.warnings,
    )


def shown_source(source: str) -> str:
    """The source without what could be a secret: a URL's user, password and query (docs/operations.md §1.6)."""
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https"):
        return source
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _broken(outcome: Outcome, reason: str) -> Ended:
    return Ended(outcome=outcome, counts={}, reason=reason, rejected=[], warnings=[])


def _first_line(exc: Exception) -> str:
    # SQLAlchemy's messages go on with the statement and its parameters: the first line says what happened.
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


async def _end_anyway(
    sessions: async_sessionmaker[AsyncSession], run_id: int, how: Ended, clock: Callable[[], datetime]
) -> None:
    """Record a run's end on the way out of a failure; the database may be what failed, so this may fail too: the
    run's first error is the one raised, and a run left `running` shows as interrupted (api/internal/sync.py)."""
    with contextlib.suppress(Exception):
        async with sessions() as session:
            await sync_runs.end(session, run_id, how, now=clock())
            await session.commit()
