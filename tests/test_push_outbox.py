"""The outbox (README: "Durability, order, latest wins"): one pending delivery per (partner, object) that later changes
merge into, written in the transaction of the change; who gets deliveries; the deliveries listing. No worker runs here
(push_worker=False), so what is queued stays in the table to be looked at."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ocpi_hub.changes import Change, Method, ObjectKey
from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.db import deliveries as outbox_table
from ocpi_hub.db import partners
from ocpi_hub.db.deliveries import Delivery, DeliveryState, Outcomes, settle
from ocpi_hub.ocpi.locations import Status
from ocpi_hub.ocpi.versions import ModuleID
from ocpi_hub.push import outbox
from ocpi_hub.push.worker import PushWorker
from ocpi_hub.stores import locations as store
from tests.conftest import Hub, HubFactory, MovableClock
from tests.fake_emsp import Failure, FakeEmsp
from tests.servers import serve
from tests.test_push_delivery import connect, connector, deliveries, poll, put_location, seed_location, set_status


@pytest.fixture
async def quiet_hub(hub_factory: HubFactory) -> Hub:
    return await hub_factory(push_worker=False)


def queued(listed: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d["location_id"], d.get("evse_uid"), d["method"], d.get("fields"), d["revision"]) for d in listed]


async def test_changes_of_one_object_merge_into_its_pending_delivery(quiet_hub: Hub, emsp: FakeEmsp) -> None:
    hub = quiet_hub
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await set_status(hub, "LOC1", "E1", "CHARGING")
    await set_status(hub, "LOC1", "E1", "AVAILABLE")  # PATCH + PATCH of the same field
    await put_location(hub, "LOC1", seed_location(name="Renamed"))  # PUT + PATCH is a PUT
    await put_location(hub, "LOC2")
    await set_status(hub, "LOC2", "E1", "CHARGING")
    more = {"uid": "E1", "connectors": [connector(max_amperage=16)]}
    await put_location(hub, "LOC2", seed_location(more))  # a PUT of the connector: another object
    assert queued(await deliveries(hub, partner_id)) == [
        ("LOC1", None, "PUT", None, 2),
        ("LOC1", "E1", "PATCH", ["status"], 2),
        ("LOC2", None, "PUT", None, 1),
        ("LOC2", "E1", "PATCH", ["status"], 1),
        ("LOC2", "E1", "PUT", None, 1),  # connector 1 of E1
    ]
    [*_, connector_push] = await deliveries(hub, partner_id)
    assert connector_push["connector_id"] == "1"


def _change(method: Method, fields: tuple[str, ...] = (), evse_uid: str = "") -> Change:
    return Change(ModuleID.LOCATIONS, ObjectKey("NL", "OHB", "LOC1", evse_uid), method, fields)


NOW = datetime.now(UTC)


async def test_merging_rules(quiet_hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]) -> None:
    hub = quiet_hub
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    async with sessions() as session:  # the Location's PUT went out: only what follows waits
        await session.execute(update(Delivery).values(state=DeliveryState.DEAD))
        await session.commit()

    patch, put = Method.PATCH, Method.PUT
    async with sessions() as session:
        await outbox.queue(session, [_change(patch, ("name",)), _change(patch, ("status",), "E1")], now=NOW)
        await outbox.queue(session, [_change(patch, ("postal_code", "name"))], now=NOW)  # PATCH + PATCH: both sets
        await outbox.queue(session, [_change(put, (), "E1")], now=NOW)  # then PUT
        await outbox.queue(session, [_change(patch, ("status",), "E1")], now=NOW)  # PUT + PATCH stays a PUT
        await session.commit()
    assert queued(await deliveries(hub, partner_id)) == [
        ("LOC1", None, "PATCH", ["name", "postal_code"], 2),
        ("LOC1", "E1", "PUT", None, 3),
    ]
    # The dead delivery of the Location is not merged into: it stays as it was.
    assert queued(await deliveries(hub, partner_id, "dead")) == [("LOC1", None, "PUT", None, 1)]


async def test_a_pending_patch_names_its_fields(
    quiet_hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """By name, not by position in a struct: reordering ocpi.EVSE's fields cannot change what a waiting PATCH
    sends (the rows written before names were used are converted by migration 0006, tests/test_migrations.py)."""
    await connect(quiet_hub, emsp)
    await put_location(quiet_hub, "LOC1")
    await set_status(quiet_hub, "LOC1", "E1", "CHARGING")
    await put_location(quiet_hub, "LOC1", seed_location(name="Renamed", postal_code="3521 AL"))
    async with sessions() as session:
        rows = (await session.execute(select(Delivery.evse_uid, Delivery.method, Delivery.fields))).all()
    assert sorted(tuple(row) for row in rows) == [("", "PUT", ""), ("E1", "PATCH", ",status,")]


async def test_a_change_rolled_back_queues_nothing(
    quiet_hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner_id = await connect(quiet_hub, emsp)
    await put_location(quiet_hub, "LOC1")
    async with sessions() as session:
        await outbox.queue(session, [_change(Method.PATCH, ("status",), "E1")], now=NOW)
        await session.rollback()
    assert queued(await deliveries(quiet_hub, partner_id)) == [("LOC1", None, "PUT", None, 1)]


async def test_who_gets_deliveries(quiet_hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    hub = quiet_hub
    async with AsyncExitStack() as stack:
        fakes = [FakeEmsp(accepted_tokens=set()) for _ in range(3)]
        for fake in fakes:
            await stack.enter_async_context(serve(fake.app))
        registered = await connect(hub, fakes[0], token="token-of-a-registered-emsp")
        suspended = await connect(hub, fakes[1], token="token-of-a-suspended-emsp")
        assert (await hub.api("POST", f"/partners/{suspended}/suspend")).status_code == 200
        fakes[2].modules = [("credentials", "SENDER")]
        await connect(hub, fakes[2], token="token-of-an-emsp-without-locations")
        assert (await hub.api("POST", "/register", json={"token": "token-a-for-someone"})).status_code == 201
        await put_location(hub, "LOC1")
    async with sessions() as session:
        receivers = (await session.execute(select(Delivery.partner_id).order_by(Delivery.partner_id))).scalars()
        assert list(receivers) == [registered, suspended]  # a suspended partner gets its pushes when resumed


async def test_the_listing_pages_and_its_errors(quiet_hub: Hub, emsp: FakeEmsp) -> None:
    hub = quiet_hub
    for n in range(3):
        await put_location(hub, f"LOC{n}")
    partner_id = await connect(hub, emsp)  # the initial full push: three PUTs
    response = await hub.api("GET", f"/partners/{partner_id}/deliveries", params={"offset": 1, "limit": 1})
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 3
    [delivery] = page["deliveries"]
    assert set(delivery) == {
        "id",
        "module",
        "country_code",
        "party_id",
        "object_id",
        "location_id",
        "method",
        "state",
        "attempts",
        "next_attempt_at",
        "first_enqueued_at",
        "revision",
    }
    assert (delivery["location_id"], delivery["state"], delivery["attempts"]) == ("LOC1", "pending", 0)

    response = await hub.api("GET", f"/partners/{partner_id}/deliveries", params={"state": "lost"})
    assert (response.status_code, response.json()["error"]) == (400, "state: 'lost' is not one of pending, dead, sent")
    assert (await hub.api("GET", f"/partners/{partner_id}/deliveries", params={"limit": 0})).status_code == 400
    response = await hub.api("GET", f"/partners/{partner_id + 1}/deliveries")
    assert (response.status_code, response.json()["error"]) == (404, f"no partner with id {partner_id + 1}")


async def test_settling_skips_a_delivery_a_change_is_merging_into(
    quiet_hub: Hub, emsp: FakeEmsp, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    await connect(quiet_hub, emsp)
    await put_location(quiet_hub, "LOC1")
    now = datetime.now(UTC).replace(microsecond=0)
    async with sessions() as merging, sessions() as worker:
        [(delivery_id, revision)] = (await merging.execute(select(Delivery.id, Delivery.revision))).all()
        await merging.execute(  # locks the row, as a change merged into it does; the claim's lease runs on
            update(Delivery).values(revision=Delivery.revision + 1, next_attempt_at=now + timedelta(minutes=1))
        )
        # Sent meanwhile: not waited for (which could deadlock), not deleted, handed back to settle again.
        sent = Outcomes(sent=((delivery_id, revision),))
        assert await asyncio.wait_for(settle(worker, sent, now=now), 5) == sent
        await worker.commit()
        await merging.commit()
    async with sessions() as session:
        assert await settle(session, sent, now=now) == Outcomes()  # the lock is gone: due again at once
        await session.commit()
        assert (await session.execute(select(Delivery.revision, Delivery.next_attempt_at))).all() == [
            (revision + 1, now)
        ]


async def test_a_change_merged_into_a_delivery_on_its_way_is_sent_as_soon_as_it_commits(
    quiet_hub: Hub, emsp: FakeEmsp, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Not when the claim's lease runs out (a minute): the worker settles what a change's lock made it skip."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    await put_location(quiet_hub, "LOC1")
    partner_id = await connect(quiet_hub, emsp)  # queues the first PUT of LOC1
    on_its_way, answer = asyncio.Event(), asyncio.Event()
    emsp.failures = [Failure(reached=on_its_way, until=answer)]  # a success, answered once `answer` is set
    clock = MovableClock()
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=5), quiet_hub.settings, clock=clock)
        first = asyncio.create_task(worker.step())
        await asyncio.wait_for(on_its_way.wait(), 5)
        async with sessions() as merging:
            change = Change(ModuleID.LOCATIONS, ObjectKey("NL", "OHB", "LOC1"), Method.PUT, partner_id=partner_id)
            await outbox.queue(merging, [change], now=clock())  # merged into the delivery on its way: row locked
            answer.set()
            assert await asyncio.wait_for(first, 5) == 1
            await merging.commit()
        assert await worker.step() == 1  # the clock has not moved: sent again at once
        assert await worker.step() == 0
    assert [r.method for r in emsp.requests if r.path == "/2.2.1/locations/NL/OHB/LOC1"] == ["PUT", "PUT"]
    assert await deliveries(quiet_hub, partner_id, "pending") == []


@pytest.mark.parametrize("at_once", [True, False])
async def test_on_sqlite_a_change_reads_its_receivers_at_once_else_through_its_session(
    quiet_hub: Hub, emsp: FakeEmsp, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, at_once: bool
) -> None:
    """At once: on the event loop's own connection, while the change holds the write lock (push/outbox.py). When
    that read cannot be made there, the session reads them. The partners registered before the change get it."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL reads them in the change's transaction, under the receivers lock")
    partner_id = await connect(quiet_hub, emsp)
    await put_location(quiet_hub, "LOC1")
    read_at_once, read_by_session = partners.receivers_now, partners.receivers
    ways: list[str] = []

    def now(*args: Any, **kwargs: Any) -> Any:
        ways.append("at once")
        return read_at_once(*args, **kwargs) if at_once else None

    async def by_session(*args: Any, **kwargs: Any) -> Any:
        ways.append("session")
        return await read_by_session(*args, **kwargs)

    monkeypatch.setattr(partners, "receivers_now", now)
    monkeypatch.setattr(partners, "receivers", by_session)
    await set_status(quiet_hub, "LOC1", "E1", "CHARGING")
    assert ways == (["at once"] if at_once else ["at once", "session"])
    assert ("LOC1", "E1", "PATCH", ["status"], 1) in queued(await deliveries(quiet_hub, partner_id))


_WAITING_ADVISORY_LOCK = text(
    "locktype = 'advisory' AND NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def test_a_registration_waits_for_a_change_that_read_the_receivers_before_it(
    quiet_hub: Hub, emsp: FakeEmsp, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Otherwise the worker could send the new partner the object as it was before the change, while the change,
    which saw no such partner, queued nothing for it: the partner would keep the old status."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    await put_location(quiet_hub, "LOC1")  # E1 AVAILABLE
    clock = MovableClock()
    async with sessions() as change:
        saved = await store.set_evse_status(change, "LOC1", "E1", Status.CHARGING, now=clock())
        await outbox.queue(change, saved.changes, now=clock())  # no partner receives yet: nothing queued
        registering = asyncio.create_task(connect(quiet_hub, emsp))

        async def waiting_for_a_lock() -> bool:
            async with sessions() as probe:
                waiting = select(func.count()).select_from(text("pg_locks")).where(_WAITING_ADVISORY_LOCK)
                return bool((await probe.execute(waiting)).scalar_one()) or registering.done()

        await poll(waiting_for_a_lock, bool, seconds=10)
        assert not registering.done()  # it waits for the change to commit
        await change.commit()
    await asyncio.wait_for(registering, 10)
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=5), quiet_hub.settings, clock=clock)
        while await worker.step():
            pass
    sent = [r.body["evses"][0]["status"] for r in emsp.requests if r.path == "/2.2.1/locations/NL/OHB/LOC1"]
    assert sent == ["CHARGING"]


async def test_a_claim_takes_a_delivery_as_a_change_merged_meanwhile_left_it(
    quiet_hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change merged in between the claim's query and its write raised the revision and added fields: the claim
    sends those fields too, or the merged change would be counted sent (deleted with its revision) without them."""
    partner_id = await connect(quiet_hub, emsp)
    now = datetime.now(UTC)

    async def queue(fields: tuple[str, ...]) -> None:
        key = ObjectKey("NL", "OHB", "S1")
        pending = outbox_table.Pending(partner_id, ModuleID.SESSIONS, key, Method.PATCH, fields)
        async with sessions() as session:  # another connection, as a change committed by a request
            await outbox_table.add(session, [pending], now=now)
            await session.commit()

    await queue(("kwh",))
    query = outbox_table.due

    async def due_then_a_change(*args: Any, **kwargs: Any) -> list[outbox_table.Due]:
        found = await query(*args, **kwargs)
        await queue(("charging_periods@0",))
        return found

    monkeypatch.setattr(outbox_table, "due", due_then_a_change)
    async with sessions() as session:
        [claimed] = await outbox_table.claim(session, partner_id, now=now, limit=10, lease=timedelta(minutes=1))
        await session.commit()
    assert (claimed.revision, set(claimed.fields)) == (2, {"kwh", "charging_periods@0"})
