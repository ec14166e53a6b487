"""The one way a caller commits a write: a transaction of its own, run again when a concurrent writer got there
first."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import errors

T = TypeVar("T")

_ATTEMPTS = 8
_PAUSE = 0.005  # seconds, times the number of tries so far


def _locked(exc: OperationalError) -> bool:
    """SQLite's refusal of a second writer, when its wait for the lock ran out or could not help (a read
    transaction that would have to become a write transaction)."""
    return "database is locked" in str(exc.orig)


def _deadlocked(exc: DBAPIError) -> bool:
    """PostgreSQL's abort of one of two transactions that waited for each other (deadlock_detected), as two writers
    of two kinds can when they bump the same change counters in opposite orders (docs/ocpi.md §11)."""
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def _lost_race(exc: DBAPIError) -> bool:
    """Whether another writer was first, so that the work may succeed when run again."""
    if isinstance(exc, OperationalError):
        return _locked(exc)
    return isinstance(exc, IntegrityError) or _deadlocked(exc)


class ConcurrentWriteError(Exception):
    """A row changed between our read and our write: read again and retry."""


async def committed(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` (store writes and the outbox rows of their changes) and commit. A concurrent writer of the same
    object (ConcurrentWriteError, or an IntegrityError on a key taken meanwhile), SQLite's lock or a PostgreSQL
    deadlock rolls it back and runs it again; any other error rolls back and propagates, so nothing is
    half-written."""
    tries = 0
    while True:
        tries += 1
        try:
            result = await work()
            await session.commit()
        except (ConcurrentWriteError, DBAPIError) as exc:
            await session.rollback()
            if isinstance(exc, DBAPIError) and not _lost_race(exc):
                raise
            if tries < _ATTEMPTS:
                # A random pause that grows with each try, so that the writers who lost do not collide again.
                await asyncio.sleep(random.uniform(0, _PAUSE * tries))
                continue
            if isinstance(exc, IntegrityError):
                raise
            # Still losing to other writers (docs/ocpi.md §11): refused cleanly, nothing written, 503 Retry-After.
            raise errors.Unavailable("too many concurrent changes of the same object: try again") from None
        except Exception:
            await session.rollback()
            raise
        return result
