"""The outbox: what a change means for each partner, written as rows of the deliveries table in the transaction of
the change (the caller's, which this does not commit), so that a crash between a change and its delivery loses
nothing.

A change addressed to one partner (a Session, a CDR, a command result) is queued for that partner; any other change
is queued for every partner that is registered (or suspended: its pushes wait for it to resume) and has the
module's RECEIVER endpoint. A new partner, or one that asks for a resync, gets a PUT of every object of every module
it receives, Tariffs before Locations (push/modules.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub.changes import Change
from ocpi_hub.db import deliveries, partners, transaction
from ocpi_hub.db.base import AdvisoryLock, advisory_lock
from ocpi_hub.db.partners import Partner, PartnerState
from ocpi_hub.db.sender import read_now
from ocpi_hub.ocpi.versions import InterfaceRole, ModuleID
from ocpi_hub.push.modules import BROADCAST

# session.info key of the in-process worker's wake() (set on the app's session factory): a session that queued
# deliveries calls it after its commit, so that a status change leaves within milliseconds, not at the next poll.
WAKE = "ocpi_hub.push.wake"
_QUEUED = "ocpi_hub.push.queued"
_LISTENING = "ocpi_hub.push.listening"

RECEIVING = (PartnerState.REGISTERED, PartnerState.SUSPENDED)

# The receivers lock (AdvisoryLock.RECEIVERS; PostgreSQL, held until the transaction ends): a change holds it shared
# from before it reads who receives it, a partner made a receiver (its PUT of every object) holds it exclusively.
# Without it a registration could commit between a change's read of the receivers and the change's commit: the
# worker could read the new partner's PUT before the change commits and send the old object, while the change queued
# nothing for that partner, which would then keep the old state. With it the registration waits for the changes in
# flight, and the changes after it wait for it and then see the partner (each statement reads what was committed
# before it began). SQLite needs nothing: a change reads the receivers after its first write, under the database's
# one write lock, so no registration can commit until the change has.
#
# That is also why, on SQLite, the receivers are read at once on the event loop's own connection (db.sender.read_now,
# the freshness connection's LoopReader) rather than through the session: what any connection reads while the change
# holds the write lock is everything committed, and the read saves the session's thread a hand-off while the lock
# is held (every other writer waits for it). A transaction that changes partners must therefore not broadcast
# changes: its own partner rows would not be read (registrations queue with `queue_everything`).


def receives(partner: Partner, module: ModuleID) -> bool:
    return partner.endpoint(module, InterfaceRole.RECEIVER) is not None


async def queue(session: AsyncSession, changes: Sequence[Change], *, now: datetime) -> None:
    """Queue the pushes of `changes`, inside the caller's transaction (before its commit)."""
    if not changes:
        return
    receivers: dict[ModuleID, list[int]] = {}
    if any(c.partner_id is None for c in changes):
        # Read after the change's writes, never cached across changes: a partner registered or gone meanwhile counts.
        listening = await _receivers(session)
        for module in {c.module for c in changes}:
            receivers[module] = [partner_id for partner_id, modules in listening if module in modules]
    pending = [
        deliveries.Pending(partner_id, c.module, c.key, c.method, c.fields)
        for c in changes
        for partner_id in ([c.partner_id] if c.partner_id is not None else receivers[c.module])
    ]
    if pending:
        await deliveries.add(session, pending, now=now)
        _wake_after_commit(session)


async def _receivers(session: AsyncSession) -> list[tuple[int, frozenset[str]]]:
    read = read_now(session)  # SQLite, in the app (above)
    if read is not None and (found := partners.receivers_now(read, states=RECEIVING)) is not None:
        return found
    await advisory_lock(session, AdvisoryLock.RECEIVERS, shared=True)  # the receivers lock (above)
    return await partners.receivers(session, states=RECEIVING)


async def queue_everything(session: AsyncSession, partner: Partner, *, now: datetime) -> int:
    """Queue a PUT of every object of every module the partner receives (registration, resync), inside the
    caller's transaction. Returns how many were queued."""
    await advisory_lock(session, AdvisoryLock.RECEIVERS)  # the receivers lock (above): changes in flight first
    queued = 0
    for pushed in BROADCAST:
        if receives(partner, pushed.module):
            queued += await deliveries.add_every(session, partner.id, pushed.module, pushed.every, now=now)
    if queued:
        _wake_after_commit(session)
    return queued


async def revive(session: AsyncSession, partner_id: int, *, delivery_id: int | None = None, now: datetime) -> int:
    """Dead deliveries of the partner (all, or one) pending again and due now; returns how many."""
    revived = await deliveries.revive(session, partner_id, delivery_id=delivery_id, now=now)
    if revived:
        _wake_after_commit(session)
    return revived


def _wake_after_commit(session: AsyncSession) -> None:
    wake: Callable[[], None] | None = session.info.get(WAKE)
    if wake is None:  # no worker in this process: it polls the table
        return
    session.info[_QUEUED] = True
    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True

        def after_commit(sync_session: Any) -> None:
            if sync_session.info.pop(_QUEUED, False):
                wake()

        event.listen(session.sync_session, "after_commit", after_commit)


class _Writes(Protocol):
    @property
    def changes(self) -> Sequence[Change]: ...


W = TypeVar("W", bound=_Writes)


async def committed(session: AsyncSession, write: Callable[[], Awaitable[W]], *, now: datetime) -> W:
    """The way a caller commits a store write: `write()` (a store call returning its changes), its changes queued,
    one commit; run again when a concurrent writer of the same object got there first (db/transaction.py)."""

    async def work() -> W:
        saved = await write()
        await queue(session, saved.changes, now=now)
        return saved

    return await transaction.committed(session, work)
