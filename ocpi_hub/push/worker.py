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
  processes (`ocpi-hub sync`) and retries coming due. A partner's rounds begin at most every ROUND_INTERVAL, so
  that a stream of changes is sent in batches.
- Telling: a partner and module that start failing are one WARNING, their recovery one INFO, deliveries given up on
  one WARNING per round; never a line per attempt (docs/operations.md §1.4). The state is kept in db.health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import traffic
from ocpi_hub.changes import Method, Written
from ocpi_hub.client import OcpiClient, PartnerCallError, PoolPerOrigin
from ocpi_hub.db import deliveries, health, leases, partners, sqlite_driver
from ocpi_hub.db import traffic as kept
from ocpi_hub.db.deliveries import Dead, Due, Outcomes, Retry
from ocpi_hub.db.outage import Outage
from ocpi_hub.db.partners import PartnerState
from ocpi_hub.metrics import Metrics
from ocpi_hub.push import outbox, retry
from ocpi_hub.push.deliver import Receiver, deliver
from ocpi_hub.push.modules import ACCEPTED, BODIES, TARGETS
from ocpi_hub.secret_key import keyring_of
from ocpi_hub.settings import Settings
from ocpi_hub.stores import commands

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# SQLite: the lease of the one worker per database file, renewed every poll (README "Running at scale").
EXCLUSIVE_LEASE = "push-worker"
EXCLUSIVE_TTL = timedelta(seconds=5)
LANES = 8  # requests in flight per partner
BATCH = 500  # deliveries fetched (and settled) at once per partner
# A partner's rounds begin at most this often (seconds). A round costs two transactions whatever it carries, so a
# stream of changes (50 status changes a second) goes out in rounds of several deliveries rather than one round
# per change (then, on PostgreSQL, the push worker and its statements took about a third of the hub's CPU:
# bench/crawl_under_writes.py). A change after a quiet moment still leaves at once; under a stream it waits at
# most this long.
ROUND_INTERVAL = 0.1
PRUNE_SECONDS = 60.0  # how often old traffic and sent deliveries are pruned (sooner while a batch came back full)


@contextlib.asynccontextmanager
async def running(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    transport: httpx.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
    outage: Outage | None = None,
    traffic_log: traffic.TrafficLog | None = None,
) -> AsyncIterator[PushWorker | None]:
    """The push worker running for the lifetime of the app (None when `OCPI_HUB_PUSH_WORKER` is false), woken by
    every commit of `sessions` that queued deliveries. `outage`: the process's (db/outage.py), told when the database
    cannot be reached."""
    if not settings.push_worker:
        yield None
        return
    # Its own connection pools, one per partner, sized so that every lane keeps its connection alive.
    async with transport or PoolPerOrigin() as pools:
        client = OcpiClient(pools, timeout=settings.http_timeout, traffic=traffic_log)
        worker = PushWorker(sessions, client, settings, clock=clock, metrics=metrics, outage=outage)
        sessions.configure(info={**sessions.kw.get("info", {}), outbox.WAKE: worker.wake})
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
        metrics: Metrics | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.sessions = sessions
        self.metrics = metrics
        self.client = client
        self.clock = clock
        self.lanes = lanes
        self.batch = batch
        self.policy = retry.policy(max_attempts=settings.push_max_attempts, max_age=settings.push_max_age)
        self.lease = timedelta(seconds=settings.push_lease)
        self.keyring = keyring_of(settings)  # opens the tokens we present to partners (docs/operations.md §9)
        self.traffic_retention = timedelta(seconds=settings.traffic_retention)
        self.sent_retention = timedelta(seconds=settings.sent_retention)
        self._prune_due = 0.0
        self.holder = leases.holder_name()
        # SQLite: one worker per database file at a time (a lease); PostgreSQL: any number, claiming rows.
        bind = sessions.kw.get("bind")
        # While the database is away: one WARNING and one INFO for the outage, not a traceback per round.
        self.outage = outage or (Outage(bind) if bind is not None else None)
        self.exclusive = bind is not None and bind.dialect.name == "sqlite"
        self._holding = not self.exclusive
        self._wakeup = asyncio.Event()
        self._partners: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        # Per partner: outcomes that settle skipped (a change held the row), to record again until the lease ends.
        self._unsettled: dict[int, tuple[Outcomes, datetime]] = {}
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
        if self.exclusive and self._holding:  # hand the lease over now rather than at its expiry
            with contextlib.suppress(Exception):
                async with self.sessions() as session:
                    await leases.release(session, EXCLUSIVE_LEASE, self.holder)
                    await session.commit()

    async def _run(self) -> None:
        """Keep a task running for every partner we can call (on SQLite: while this process holds the worker's
        lease); answer expired commands."""
        loop = asyncio.get_running_loop()
        chores_due = loop.time()
        while True:
            self._wakeup.clear()
            # Woken by every commit that queued deliveries: the writes below run once a poll, not once a change.
            chores = loop.time() >= chores_due
            try:
                if chores:
                    chores_due = loop.time() + POLL_SECONDS
                    await self._expire_commands()
                async with self.sessions() as session:
                    if self.exclusive and chores:
                        self._holding = await leases.take(
                            session, EXCLUSIVE_LEASE, self.holder, now=self.clock(), ttl=EXCLUSIVE_TTL
                        )
                        await session.commit()
                    eligible = [
                        p.id for p in await partners.registered(session) if Receiver.of(p, self.keyring) is not None
                    ]
                if chores and loop.time() >= self._prune_due:
                    more = await self.prune()
                    self._prune_due = loop.time() + (POLL_SECONDS if more else PRUNE_SECONDS)
            except Exception as exc:  # the database may be away for a while: keep trying, never die
                if not self._outage(exc):
                    log.exception("push worker: cannot read the partners")
                eligible = []
            if not self._holding:
                eligible = []  # another process's worker delivers; its partner tasks end at their next round
            for partner_id in eligible:
                if partner_id not in self._partners:
                    self._start_partner(partner_id)
            await _wait(self._wakeup, POLL_SECONDS)

    def _outage(self, exc: Exception) -> bool:
        """Whether the round failed because the database cannot be reached (then logged once, by the outage)."""
        return self.outage is not None and self.outage.noticed(exc)

    async def _expire_commands(self) -> None:
        """TIMEOUT for the commands past their expiry, queued like any result (docs/cpo-modules.md §6.5). Here,
        because this loop runs every second in every hub process with a worker, and the expiry is in the table."""
        async with self.sessions() as session:
            now = self.clock()

            async def expire() -> Written:
                return Written(await commands.expire(session, now=now))

            await outbox.committed(session, expire, now=now)

    async def prune(self) -> bool:
        """Delete one batch of the traffic log and of the sent deliveries past their retention (docs/operations.md
        §7.3); True when a batch was full (more may be left). Here, for the reason commands expire here."""
        async with self.sessions() as session:
            now = self.clock()
            pruned = await kept.prune(
                session, traffic_before=now - self.traffic_retention, sent_before=now - self.sent_retention
            )
        return pruned >= kept.PRUNE_BATCH

    def _start_partner(self, partner_id: int) -> None:
        event = asyncio.Event()
        task = asyncio.create_task(self._serve(partner_id, event), name=f"push to partner {partner_id}")
        self._partners[partner_id] = (task, event)
        task.add_done_callback(lambda _: self._partners.pop(partner_id, None))

    async def step(self) -> int:
        """One round for every partner that receives anything, one after the other; returns how many deliveries
        were tried. For tests, which drive the worker with the clock they hand to create_app."""
        await self._expire_commands()
        await self.prune()
        async with self.sessions() as session:
            eligible = [p.id for p in await partners.registered(session) if Receiver.of(p, self.keyring) is not None]
        tried = 0
        for partner_id in eligible:
            with contextlib.suppress(_GoneError):
                tried += (await self._round(partner_id, None))[0]
        return tried

    async def _serve(self, partner_id: int, event: asyncio.Event) -> None:
        """Deliver to one partner until it no longer receives anything (the supervisor restarts it if it does
        again)."""
        head: int | None = None  # while the partner itself fails: the delivery whose retry the task waits for
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while self._holding:  # on SQLite, while this process's worker holds the lease
            await asyncio.sleep(max(0.0, next_round - loop.time()))
            next_round = loop.time() + ROUND_INTERVAL
            event.clear()  # before reading: a wake during the round makes the next wait return at once
            try:
                tried, head = await self._round(partner_id, head)
            except _GoneError:
                return
            except Exception as exc:  # the database may be away for a while: keep trying, never die
                if not self._outage(exc):
                    log.exception("push worker: round for partner %s failed", partner_id)
                tried = 0
            if not tried or head is not None:
                await _wait(event, POLL_SECONDS)

    async def _round(self, partner_id: int, head: int | None) -> tuple[int, int | None]:
        """Send the partner's next batch of due deliveries; returns (how many were tried, the delivery whose retry
        to wait for while the partner itself fails)."""
        with sqlite_driver.on_the_loop():  # a round makes short statements only (claim, bodies, outcomes)
            await self._settle_again(partner_id)
            async with self.sessions() as session:
                partner = await partners.by_id(session, partner_id)
                receiver = (
                    Receiver.of(partner, self.keyring) if partner and partner.state == PartnerState.REGISTERED else None
                )
                if receiver is None:
                    raise _GoneError
                now = self.clock()
                # The wait is read from the table, so that it is the one a restart (or an operator) sees.
                if head is not None and await deliveries.waiting(session, head, now=now):
                    return 0, head
                batch = await deliveries.claim(session, partner_id, now=now, limit=self.batch, lease=self.lease)
                bodies: dict[tuple[str, str], bytes] = {}
                targets: dict[tuple[str, str], str] = {}
                for module in {d.module for d in batch}:
                    ids = [d.key.id for d in batch if d.module == module]
                    found = await BODIES[module](session, ids, receiver.version) if module in BODIES else {}
                    bodies |= {(module, key): body for key, body in found.items()}
                    urls = await TARGETS[module](session, ids) if module in TARGETS else {}
                    targets |= {(module, key.upper()): url for key, url in urls.items()}
                await session.commit()  # the claim: other workers see it before anything is sent
            if not batch:
                return 0, None
            return len(batch), await self._send(partner_id, receiver, batch, bodies, targets, claimed_at=now)

    async def _settle_again(self, partner_id: int) -> None:
        """Record the outcomes of the partner's last round that a change's lock made `settle` skip, so that a change
        merged into a delivery on its way is sent as soon as it commits rather than when the lease runs out. Past
        the lease they are dropped: the deliveries are due again to every worker, and are sent again."""
        held = self._unsettled.pop(partner_id, None)
        if held is None or self.clock() >= held[1]:
            return
        unsettled, lease_end = held
        async with self.sessions() as session:
            still = await deliveries.settle(session, unsettled, now=self.clock())
            await session.commit()
        if still.ids():
            self._unsettled[partner_id] = (still, lease_end)

    async def _send(
        self,
        partner_id: int,
        receiver: Receiver,
        batch: list[Due],
        bodies: dict[tuple[str, str], bytes],
        targets: dict[tuple[str, str], str],
        *,
        claimed_at: datetime,
    ) -> int | None:
        """Send a batch, each object's deliveries in order in one lane; record the outcomes in one transaction.
        Returns, when the partner itself failed and nothing arrived, the delivery whose retry to wait for."""
        # The claim runs out at claimed_at + lease, when another worker may take these deliveries: none is begun
        # after three quarters of it (a slow partner, a busy machine), so that none is sent twice; the rest are
        # released.
        lease_end = claimed_at + self.lease
        until = claimed_at + self.lease * 0.75
        chains = deque(_by_object(batch))
        sent: list[tuple[int, int]] = []
        appended: list[tuple[int, tuple[str, ...]]] = []
        accepted: list[tuple[Due, str | None]] = []  # POSTs of modules that record the answer (CDRs)
        retries: list[Retry] = []
        dead: list[Dead] = []
        tried: set[int] = set()
        arrived: list[kept.Arrived] = []  # kept a while as sent deliveries (docs/operations.md §7.1)
        partner_down = False
        tally = _Tally()

        async def lane() -> None:
            nonlocal partner_down
            while chains and not partner_down and self.clock() < until:
                for due in chains.popleft():
                    tried.add(due.id)
                    try:
                        with traffic.talking_to(partner_id) as conversation:
                            location = await deliver(
                                self.client, receiver, due, bodies.get(due.chain), targets.get(due.chain)
                            )
                    except PartnerCallError as exc:
                        now = self.clock()
                        tally.failed(due.module, exc)
                        attempts = due.attempts + 1
                        when = retry.next_attempt_at(
                            self.policy, exc, attempts=attempts, first_enqueued_at=due.first_enqueued_at, now=now
                        )
                        if when is None:
                            dead.append(Dead(due.id, due.revision, str(exc)))
                            tally.dead[due.module] += 1
                            continue  # given up: the object's next deliveries go on
                        retries.append(Retry(due.id, when, str(exc)))
                        partner_down = partner_down or _partner_failing(exc)
                        break  # the rest of this object waits for this one's retry
                    sent.append((due.id, due.revision))
                    arrived.append(_arrived(due, conversation.last))
                    if items := tuple(name for name in due.fields if "@" in name):
                        appended.append((due.id, items))
                    if due.method is Method.POST and due.module in ACCEPTED:
                        accepted.append((due, location))
                    tally.sent[due.module] += 1

        await asyncio.gather(*(lane() for _ in range(min(self.lanes, len(chains)))))
        async with self.sessions() as session:
            released = [d.id for d in batch if d.id not in tried]
            outcomes = Outcomes(sent=sent, retry=retries, dead=dead, appended=appended, released=released)
            unsettled = await deliveries.settle(session, outcomes, now=self.clock())
            await kept.add_sent(session, partner_id, arrived, now=self.clock())
            for due, location in accepted:
                await ACCEPTED[due.module](session, due.key.id, at=self.clock(), location_url=location)
            changed = await health.record(session, partner_id, tally.outcomes(), now=self.clock())
            await session.commit()
        if unsettled.ids():
            self._unsettled[partner_id] = (unsettled, lease_end)
        self._tell(partner_id, receiver, tally, changed)
        return min(r.id for r in retries) if partner_down and not sent else None

    def _tell(self, partner_id: int, receiver: Receiver, tally: _Tally, changed: dict[str, bool]) -> None:
        """The round in the log (state changes and dead letters only) and in the metrics."""
        who = f"partner {partner_id}" + (f" ({'/'.join(receiver.party)})" if receiver.party else "")
        for module, failing in changed.items():
            if failing:
                log.warning("pushes to %s failing (%s): %s", who, module, tally.last_error[module])
            else:
                log.info("pushes to %s recovered (%s)", who, module)
        for module, count in tally.dead.items():
            log.warning(
                "gave up on %d %s deliver%s to %s: %s",
                count,
                module,
                "y" if count == 1 else "ies",
                who,
                tally.last_error[module],
            )
        if self.metrics is not None:
            for module, count in tally.sent.items():
                self.metrics.sent.labels(str(partner_id), module).inc(count)
            for module, count in tally.retried.items():
                self.metrics.failed.labels(str(partner_id), module).inc(count)
            for module, count in tally.dead.items():
                self.metrics.dead.labels(str(partner_id), module).inc(count)


class _Tally:
    """What a round did, per module."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()  # failed attempts, dead ones included (the `failed` metric)
        self.dead: Counter[str] = Counter()
        self.errors: dict[str, PartnerCallError] = {}
        self.last_error: dict[str, str] = {}

    def failed(self, module: str, error: PartnerCallError) -> None:
        self.retried[module] += 1
        self.errors[module] = error
        self.last_error[module] = str(error)

    def outcomes(self) -> list[health.Outcome]:
        return [
            health.Outcome(
                module,
                self.sent[module],
                None
                if module not in self.errors
                else health.Failure(
                    str(self.errors[module]),
                    self.errors[module].http_status,
                    self.errors[module].status_code,
                    self.errors[module].status_message,
                ),
            )
            for module in sorted({*self.sent, *self.errors})
        ]


class _GoneError(Exception):
    """The partner no longer receives anything: its task ends."""


def _arrived(due: Due, answer: traffic.Answer | None) -> kept.Arrived:
    """A delivery that arrived, with the partner's answer to its last call (None: nothing had to be sent)."""
    return kept.Arrived(
        delivery_id=due.id,
        revision=due.revision,
        module=due.module,
        key=due.key,
        method=due.method,
        fields=due.fields,
        attempts=due.attempts + 1,
        first_enqueued_at=due.first_enqueued_at,
        http_status=None if answer is None else answer.http_status,
        ocpi_status=None if answer is None else answer.ocpi_status,
        request_id=None if answer is None else answer.request_id,
    )


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
