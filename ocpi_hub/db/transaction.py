"""The one way a caller commits a write: a transaction of its own, run again when a concurrent writer got there
first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

_ATTEMPTS = 5


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
        except (ConcurrentWriteError, IntegrityError):
            await session.rollback()
            if tries < _ATTEMPTS:
                continue
            raise
        except Exception:
            await session.rollback()
            raise
        return result
