"""The last runs of the location sync, whoever started them (the schedule, `ocpi-hub sync`, the internal API), with
their summaries: a bounded history, the newest `KEEP` runs (docs/operations.md §8.2).

A run is inserted when it starts (outcome `running`) and completed when it ends, so that a run in progress shows
too. Only the first `KEEP_MESSAGES` rejections and warnings of a run are kept; the counts say how many there were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import JSON, Integer, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime

KEEP = 20  # runs kept
KEEP_MESSAGES = 20  # rejections and warnings kept per run
_MESSAGE_LENGTH = 1000  # a message is cut there: a record's value may be long


class Outcome(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # went through (rejected records included)
    STOPPED = "stopped"  # the source could not be read, or it would have removed too much
    FAILED = "failed"  # an error ended it (the database away, a bug)
    INTERRUPTED = "interrupted"  # its process stopped (or died) before the end


class Trigger(StrEnum):
    SCHEDULE = "schedule"  # the scheduled sync of `ocpi-hub serve`
    COMMAND = "command"  # `ocpi-hub sync`
    API = "api"  # POST /api/v0/sync


class SyncRun(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(2000))  # as shown: a URL without user, password or query
    holder: Mapped[str] = mapped_column(String(64))  # the process that runs it (its sync-running lease holder)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    # The counts of SyncReport, and the number of warnings.
    records: Mapped[int] = mapped_column(Integer)
    created: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    removed: Mapped[int] = mapped_column(Integer)
    warnings: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(_MESSAGE_LENGTH), nullable=True)  # why it stopped or failed
    messages: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"rejected": [...], "warnings": [...]}, the first few


_t = cast(Table, SyncRun.__table__)
COUNTS = ("records", "created", "updated", "unchanged", "rejected", "removed", "warnings")


@dataclass(frozen=True)
class Ended:
    """What a run came to."""

    outcome: Outcome
    counts: dict[str, int]  # by the names of COUNTS
    reason: str | None
    rejected: list[str]
    warnings: list[str]


async def begin(session: AsyncSession, *, trigger: Trigger, source: str, holder: str, now: datetime) -> int:
    """Record a run that starts now, and forget the oldest beyond KEEP; its id. Not committed."""
    run_id = (
        await session.execute(
            insert(_t)
            .values(
                trigger=trigger,
                source=source[:2000],
                holder=holder,
                started_at=now,
                outcome=Outcome.RUNNING,
                **dict.fromkeys(COUNTS, 0),
                messages={"rejected": [], "warnings": []},
            )
            .returning(_t.c.id)
        )
    ).scalar_one()
    kept = select(_t.c.id).order_by(_t.c.id.desc()).limit(KEEP).scalar_subquery()
    await session.execute(delete(_t).where(_t.c.id.not_in(kept)))
    return int(run_id)


async def end(session: AsyncSession, run_id: int, ended: Ended, *, now: datetime) -> None:
    """Record how the run ended. Not committed."""
    await session.execute(
        update(_t)
        .where(_t.c.id == run_id)
        .values(
            finished_at=now,
            outcome=ended.outcome,
            **{name: ended.counts.get(name, 0) for name in COUNTS},
            reason=None if ended.reason is None else ended.reason[:_MESSAGE_LENGTH],
            messages={
                "rejected": [m[:_MESSAGE_LENGTH] for m in ended.rejected[:KEEP_MESSAGES]],
                "warnings": [m[:_MESSAGE_LENGTH] for m in ended.warnings[:KEEP_MESSAGES]],
            },
        )
    )


async def recent(session: AsyncSession) -> list[SyncRun]:
    """The runs kept, newest first."""
    return list((await session.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(KEEP))).scalars())


async def one(session: AsyncSession, run_id: int) -> SyncRun | None:
    return await session.get(SyncRun, run_id)
