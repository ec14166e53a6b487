"""The push worker: delivers the deliveries table (the outbox of every module) to the partners. One per database:
with several processes on one database, run it in one of them (`OCPI_HUB_PUSH_WORKER`).

- Isolation: a task per partner, so that a slow, failing or unreachable partner never delays another.
- Throughput: a partner's due deliveries are fetched in batches and sent by a few lanes at once; an object's
  deliveries (a Location's with its EVSEs and Connectors) stay in one lane, in order, so that one object never has
  two requests in flight.
- Order: a delivery that failed and waits for its retry holds back the other deliveries of its object (durably:
  see deliveries.due), not those of other objects; across modules, deliveries.WAITS_FOR.
- Pressure: when the partner itself fails (no answer, HTTP 5xx, 408, 429) and nothing in the batch arrived, the
  partner's task waits until the first failed delivery is due again, instead of trying every queued object.
- Latency: woken by a commit that queued deliveries (outbox.WAKE); polls every second for work of other
  processes (`ocpi-hub sync`) and retries coming due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient, PartnerCallError
from ocpi_hub.db import deliveries, partners
from ocpi_hub.db.deliveries import Dead, Due, Retry
from ocpi_hub.db.partners import PartnerState
from ocpi_hub.push import outbox, retry
from ocpi_hub.push.deliver import Receiver, deliver
from ocpi_hub.push.modules import BODIES
from ocpi_hub.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
LANES = 8  # requests in flight per partner
BATCH = 500  # deliveries fetched (and settled) at once per partner


@contextlib.asynccontextmanager
async def running(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[PushWorker | None]:
    """The push worker running for the lifetime of the app (None when `OCPI_HUB_PUSH_WORKER` is false), woken by
    every commit of `sessions` that queued deliveries."""
    if not settings.push_worker:
        yield None
        return
    # Its own connection pool, sized so that every lane keeps its connection alive.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(
        timeout=settings.http_timeout, transport=transport, follow_redirects=False, limits=limits
    ) as http:
        worker = PushWorker(sessions, OcpiClient(http), settings, clock=clock)
        sessions.configure(info={outbox.WAKE: worker.wake})
        worker.start()
        try:
            yield worker
        finally:
            await worker.stop()


class PushWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: OcpiClient,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        lanes: int = LANES,
        batch: int = BATCH,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.clock = clock
        self.lanes = lanes
        self.batch = batch
        self.policy = retry.policy(max_attempts=settings.push_max_attempts, max_age=settings.push_max_age)
        self._wakeup = asyncio.Event()
        self._partners: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._main: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New deliveries were committed: look now rather than at the next poll."""
        self._wakeup.set()
        for _, event in self._partners.values():
            event.set()

    def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="push worker")

    async def stop(self) -> None:
        tasks = [task for task, _ in self._partners.values()]
        if self._main is not None:
            tasks.append(self._main)
        for task in tasks:
            task.cancel()
        # A delivery cut off here is sent again after the restart (at least once, never lost).
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        """Keep a task running for every partner that receives Locations."""
        while True:
            self._wakeup.clear()
            try:
                async with self.sessions() as session:
                    eligible = [p.id for p in await partners.registered(session) if Receiver.of(p) is not None]
            except Exception:  # the database may be away for a while: keep trying, never die
                log.exception("push worker: cannot read the partners")
                eligible = []
            for partner_id in eligible:
                if partner_id not in self._partners:
                    self._start_partner(partner_id)
            await _wait(self._wakeup, POLL_SECONDS)

    def _start_partner(self, partner_id: int) -> None:
        event = asyncio.Event()
        task = asyncio.create_task(self._serve(partner_id, event), name=f"push to partner {partner_id}")
        self._partners[partner_id] = (task, event)
        task.add_done_callback(lambda _: self._partners.pop(partner_id, None))

    async def step(self) -> int:
        """One round for every partner that receives anything, one after the other; returns how many deliveries
        were tried. For tests, which drive the worker with the clock they hand to create_app."""
        async with self.sessions() as session:
            eligible = [p.id for p in await partners.registered(session) if Receiver.of(p) is not None]
        tried = 0
        for partner_id in eligible:
            with contextlib.suppress(_GoneError):
                tried += (await self._round(partner_id, None))[0]
        return tried

    async def _serve(self, partner_id: int, event: asyncio.Event) -> None:
        """Deliver to one partner until it no longer receives anything (the supervisor restarts it if it does
        again)."""
        head: int | None = None  # while the partner itself fails: the delivery whose retry the task waits for
        while True:
            event.clear()  # before reading: a wake during the round makes the next wait return at once
            try:
                tried, head = await self._round(partner_id, head)
            except _GoneError:
                return
            except Exception:  # the database may be away for a while: keep trying, never die
                log.exception("push worker: round for partner %s failed", partner_id)
                tried = 0
            if not tried or head is not None:
                await _wait(event, POLL_SECONDS)

    async def _round(self, partner_id: int, head: int | None) -> tuple[int, int | None]:
        """Send the partner's next batch of due deliveries; returns (how many were tried, the delivery whose retry
        to wait for while the partner itself fails)."""
        async with self.sessions() as session:
            partner = await partners.by_id(session, partner_id)
            receiver = Receiver.of(partner) if partner and partner.state == PartnerState.REGISTERED else None
            if receiver is None:
                raise _GoneError
            now = self.clock()
            # The wait is read from the table, so that it is the one a restart (or an operator) sees.
            if head is not None and await deliveries.waiting(session, head, now=now):
                return 0, head
            batch = await deliveries.due(session, partner_id, now=now, limit=self.batch)
            bodies: dict[tuple[str, str], bytes] = {}
            for module in {d.module for d in batch}:
                ids = [d.key.id for d in batch if d.module == module]
                found = await BODIES[module](session, ids, receiver.version) if module in BODIES else {}
                bodies |= {(module, key): body for key, body in found.items()}
        if not batch:
            return 0, None
        return len(batch), await self._send(receiver, batch, bodies)

    async def _send(self, receiver: Receiver, batch: list[Due], bodies: dict[tuple[str, str], bytes]) -> int | None:
        """Send a batch, each object's deliveries in order in one lane; record the outcomes in one transaction.
        Returns, when the partner itself failed and nothing arrived, the delivery whose retry to wait for."""
        chains = deque(_by_object(batch))
        sent: list[tuple[int, int]] = []
        retries: list[Retry] = []
        dead: list[Dead] = []
        partner_down = False

        async def lane() -> None:
            nonlocal partner_down
            while chains and not partner_down:
                for due in chains.popleft():
                    try:
                        await deliver(self.client, receiver, due, bodies.get(due.chain))
                    except PartnerCallError as exc:
                        now = self.clock()
                        attempts = due.attempts + 1
                        when = retry.next_attempt_at(
                            self.policy, exc, attempts=attempts, first_enqueued_at=due.first_enqueued_at, now=now
                        )
                        if when is None:
                            dead.append(Dead(due.id, due.revision, str(exc)))
                            continue  # given up: the object's next deliveries go on
                        retries.append(Retry(due.id, when, str(exc)))
                        partner_down = partner_down or _partner_failing(exc)
                        break  # the rest of this object waits for this one's retry
                    sent.append((due.id, due.revision))

        await asyncio.gather(*(lane() for _ in range(min(self.lanes, len(chains)))))
        async with self.sessions() as session:
            await deliveries.settle(session, sent=sent, retry=retries, dead=dead)
            await session.commit()
        return min(r.id for r in retries) if partner_down and not sent else None


class _GoneError(Exception):
    """The partner no longer receives anything: its task ends."""


def _by_object(batch: Iterable[Due]) -> list[list[Due]]:
    """The batch as one chain per object, in delivery order (dicts keep insertion order)."""
    chains: dict[tuple[str, str], list[Due]] = {}
    for due in batch:
        chains.setdefault(due.chain, []).append(due)
    return list(chains.values())


def _partner_failing(error: PartnerCallError) -> bool:
    """The partner, not this object, failed: no answer, or an HTTP error status (rather than an OCPI 3xxx)."""
    return error.transient and (error.http_status is None or not 200 <= error.http_status < 300)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
