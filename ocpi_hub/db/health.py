"""How each partner's pushes are going, per module (docs/operations.md §3): since when they fail, the last success,
and the last error with the partner's own answer. Written by the push worker after every round, in the transaction
that settles the round's deliveries, so that every process (and a restart) sees the same state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, ForeignKey, Integer, String, Table, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db.base import Base, UtcDateTime, insert_on_conflict
from ocpi_hub.db.deliveries import Delivery, DeliveryState
from ocpi_hub.db.text import storable


class PartnerHealth(Base):
    __tablename__ = "partner_health"

    partner_id: Mapped[int] = mapped_column(Integer, ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True)
    module: Mapped[str] = mapped_column(String(16), primary_key=True)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)  # None: the last round delivered
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(1000))  # which call, and what the partner answered
    last_http_status: Mapped[int | None] = mapped_column(Integer)  # None: no answer came
    last_ocpi_status: Mapped[int | None] = mapped_column(Integer)
    last_ocpi_message: Mapped[str | None] = mapped_column(String(255))


@dataclass(frozen=True)
class Failure:
    """A failed attempt as the health keeps it."""

    error: str
    http_status: int | None
    ocpi_status: int | None
    ocpi_message: str | None


@dataclass(frozen=True)
class Outcome:
    """What one round of the worker did for one module of one partner."""

    module: str
    sent: int
    failure: Failure | None  # the last failed attempt, if any


_h = cast(Table, PartnerHealth.__table__)
_STILL_HEALTHY = (
    update(_h)
    .where(_h.c.partner_id == bindparam("partner"), _h.c.module == bindparam("of_module"), _h.c.failing_since.is_(None))
    .values(last_success_at=bindparam("at"))
)


async def record(
    session: AsyncSession, partner_id: int, outcomes: Sequence[Outcome], *, now: datetime
) -> dict[str, bool]:
    """Record a round; not committed. Returns, per module whose state changed, whether it is now failing
    (True: it started failing; False: it recovered). A round that delivered anything counts as a success."""
    changed: dict[str, bool] = {}
    for outcome in outcomes:
        # Most rounds deliver everything to a partner that was not failing: then one statement records it, and it
        # changes no state (the row, held until commit, is not failing; a concurrent worker's UPDATE waits).
        if outcome.sent and outcome.failure is None:
            healthy = {"partner": partner_id, "of_module": outcome.module, "at": now}
            if cast(CursorResult[Any], await session.execute(_STILL_HEALTHY, healthy)).rowcount == 1:
                continue
        # Workers on other processes may record the same partner at once: create the row without a conflict,
        # then hold it until commit, so that exactly one of them sees (and logs) a change of state.
        key = {"partner_id": partner_id, "module": outcome.module}
        await session.execute(insert_on_conflict(session, PartnerHealth).values(key).on_conflict_do_nothing())
        row = await session.get(
            PartnerHealth, (partner_id, outcome.module), with_for_update=True, populate_existing=True
        )
        assert row is not None
        if outcome.failure is not None:
            row.last_error_at = now
            row.last_error = storable(outcome.failure.error, 1000)
            row.last_http_status = outcome.failure.http_status
            row.last_ocpi_status = outcome.failure.ocpi_status
            row.last_ocpi_message = storable(outcome.failure.ocpi_message or "", 255) or None
        if outcome.sent:
            row.last_success_at = now
            if row.failing_since is not None:
                row.failing_since = None
                changed[outcome.module] = False
        elif outcome.failure is not None and row.failing_since is None:
            row.failing_since = now
            changed[outcome.module] = True
    return changed


async def of_partners(session: AsyncSession, partner_ids: Sequence[int] | None = None) -> list[PartnerHealth]:
    query = select(PartnerHealth).order_by(PartnerHealth.partner_id, PartnerHealth.module)
    if partner_ids is not None:
        query = query.where(PartnerHealth.partner_id.in_(partner_ids))
    return list(await session.scalars(query))


@dataclass(frozen=True)
class Queue:
    """A partner's deliveries of one module: how many wait, since when the oldest, how many were given up."""

    partner_id: int
    module: str
    waiting: int
    oldest_waiting_since: datetime | None
    dead: int


_d = cast(Table, Delivery.__table__)


async def queues(session: AsyncSession, partner_ids: Sequence[int] | None = None) -> list[Queue]:
    """Per partner and module, from the deliveries table itself (so right across processes)."""
    query: Any = select(
        _d.c.partner_id, _d.c.module, _d.c.state, func.count(), func.min(_d.c.first_enqueued_at)
    ).group_by(_d.c.partner_id, _d.c.module, _d.c.state)
    if partner_ids is not None:
        query = query.where(_d.c.partner_id.in_(partner_ids))
    found: dict[tuple[int, str], Queue] = {}
    for partner_id, module, state, count, oldest in await session.execute(query):
        queue = found.get((partner_id, module)) or Queue(partner_id, module, 0, None, 0)
        if state == DeliveryState.PENDING:
            queue = Queue(partner_id, module, count, oldest, queue.dead)
        else:
            queue = Queue(partner_id, module, queue.waiting, queue.oldest_waiting_since, count)
        found[(partner_id, module)] = queue
    return [found[key] for key in sorted(found)]


async def drop_deliveries(session: AsyncSession, partner_id: int) -> None:
    """Every delivery of an unregistered partner, waiting or given up on: none can reach it any more."""
    await session.execute(delete(_d).where(_d.c.partner_id == partner_id))
