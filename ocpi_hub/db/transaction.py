"""The one way a caller commits a write: a transaction of its own, run again when a concurrent writer got there
first."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import errors

T = TypeVar("T")

_ATTEMPTS = 8
_PAUSE = 0.005  # seconds, times the number of tries so far


def _locked(exc: OperationalError) -> bool:
    """SQLite's refusal of a second writer, when its wait for the lock ran out or could not help (a read
    transaction that would have to become a write transaction)."""
    return "database is locked" in str(exc.orig)


class ConcurrentWriteError(Exception):
    """A row changed between our read and our write: read again and retry."""


async def committed(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` (store writes and the outbox rows of their changes) and commit. A concurrent writer of the same
    object (ConcurrentWriteError, or an IntegrityError on a key taken meanwhile) rolls it back and runs it again;
    any other error rolls back and propagates, so nothing is half-written."""
    tries = 0
    while True:
        tries += 1
        try:
            result = await work()
            await session.commit()
        except (ConcurrentWriteError, IntegrityError, OperationalError) as exc:
            await session.rollback()
            if isinstance(exc, OperationalError) and not _locked(exc):
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
