"""Leases: work that one process of the cluster does at a time, held in the database (no coordinator of our own;
README "Running at scale").

A lease has a name, a holder (a process) and an expiry. Taking it succeeds when it is free, expired, or already
ours; holding it means renewing it before it expires. A process that dies simply stops renewing: the lease
expires and another process takes it. Each take is one conditional UPDATE (or the first INSERT), atomic on both
databases, so two processes can never both hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import String, Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime, insert_on_conflict

log = logging.getLogger(__name__)


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


_t = cast(Table, Lease.__table__)


def holder_name() -> str:
    """A name for one holder: this host, this process, and a random part (two holders in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def take(session: AsyncSession, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease `name` for `holder` until now + ttl (not committed); False when another holds it."""
    renewed = await session.execute(
        update(_t)
        .where(_t.c.name == name, or_(_t.c.holder == holder, _t.c.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl)
    )
    if cast(Any, renewed).rowcount:
        return True
    created = await session.execute(
        insert_on_conflict(session, _t)
        .values(name=name, holder=holder, expires_at=now + ttl)
        .on_conflict_do_nothing(index_elements=[_t.c.name])
    )
    return bool(cast(Any, created).rowcount)


async def holder_of(session: AsyncSession, name: str, *, now: datetime) -> str | None:
    """Who holds the lease `name` now; None when it is free or expired."""
    found = await session.execute(select(_t.c.holder).where(_t.c.name == name, _t.c.expires_at > now))
    return found.scalar_one_or_none()


async def release(session: AsyncSession, name: str, holder: str) -> None:
    """Give the lease up now, if we hold it (not committed)."""
    await session.execute(
        update(_t).where(_t.c.name == name, _t.c.holder == holder).values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
    )


@contextlib.asynccontextmanager
async def holding(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    holder: str,
    *,
    clock: Callable[[], datetime],
    ttl: timedelta,
) -> AsyncIterator[bool]:
    """Hold the lease `name` while inside (True), renewed every third of `ttl`, released on the way out; False when
    another process holds it."""
    async with sessions() as session:
        taken = await take(session, name, holder, now=clock(), ttl=ttl)
        await session.commit()
    if not taken:
        yield False
        return

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl.total_seconds() / 3)
            try:
                async with sessions() as session:
                    await take(session, name, holder, now=clock(), ttl=ttl)
                    await session.commit()
            except Exception:  # the database away for a moment: the next third may renew it in time
                log.debug("lease %s: a renewal failed", name, exc_info=True)

    renewing = asyncio.create_task(renew(), name=f"lease {name}")
    try:
        yield True
    finally:
        renewing.cancel()
        try:
            # wait(), not `await renewing`: the renewal's own cancellation is expected, but one of this task that
            # arrives meanwhile must go on out (absorbed, it kept a stopping schedule running forever).
            await asyncio.wait([renewing])
        finally:  # given up even then; should that fail (the database away), the lease runs out by itself, and
            # the failure must not hide how the holder left (a cancellation above all: the stop would never end)
            with contextlib.suppress(Exception):
                async with sessions() as session:
                    await release(session, name, holder)
                    await session.commit()
