"""Latest wins, per-object order and isolation of partners (README: "Durability, order, latest wins"), over real
HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.push.worker import PushWorker
from tests.conftest import Hub, HubFactory, MovableClock
from tests.fake_emsp import Failure, FakeEmsp
from tests.servers import serve
from tests.test_push_delivery import (
    LOCATIONS,
    connect,
    deliveries,
    drained,
    eventually,
    failed,
    listed,
    make_due,
    pushes,
    put_location,
    set_status,
)

STATUSES = ["CHARGING", "AVAILABLE", "BLOCKED", "RESERVED", "OUTOFORDER"]


async def test_latest_wins_while_a_delivery_waits(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    emsp.failures = [Failure(http_status=500)]
    await set_status(hub, "LOC1", "E1", STATUSES[0])
    first = await failed(hub, partner_id, 1)

    for status in STATUSES[1:]:
        last = await set_status(hub, "LOC1", "E1", status)
    [waiting] = await deliveries(hub, partner_id)
    assert (waiting["id"], waiting["revision"], waiting["fields"]) == (first["id"], len(STATUSES), ["status"])
    make_due(hub)
    await drained(hub, partner_id)
    patches = pushes(emsp, "/LOC1/E1")
    assert [r.body for r in patches] == [
        {"status": STATUSES[0], "last_updated": patches[0].body["last_updated"]},  # the failed attempt
        {"status": STATUSES[-1], "last_updated": last["last_updated"]},  # then only the newest state
    ]


async def test_a_change_during_the_send_is_sent_again(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    emsp.failures = [Failure(delay=0.5)]  # a slow answer, then success
    await set_status(hub, "LOC1", "E1", "CHARGING")
    await eventually(lambda: len(pushes(emsp)) == 2)  # on its way
    last = await set_status(hub, "LOC1", "E1", "AVAILABLE")
    await eventually(lambda: len(pushes(emsp)) == 3)
    await drained(hub, partner_id)
    assert [r.body["status"] for r in pushes(emsp, "/LOC1/E1")] == ["CHARGING", "AVAILABLE"]
    assert pushes(emsp)[-1].body["last_updated"] == last["last_updated"]


async def test_a_location_waiting_for_a_retry_holds_back_only_its_own_later_changes(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(status_code=3000)]  # the eMSP cannot take this Location just now
    await put_location(hub, "LOC1")
    await failed(hub, partner_id, 1)
    await set_status(hub, "LOC1", "E1", "CHARGING")
    await put_location(hub, "LOC2")
    await set_status(hub, "LOC2", "E1", "CHARGING")
    await eventually(lambda: len(pushes(emsp, "/LOC2/E1")) == 1)  # LOC2 is not held back
    assert [r.path for r in pushes(emsp)] == [f"{LOCATIONS}/LOC1", f"{LOCATIONS}/LOC2", f"{LOCATIONS}/LOC2/E1"]
    # The eMSP has LOC2's status before the hub records that it arrived: wait for that, then only LOC1's wait.
    waiting = await listed(hub, partner_id, "pending", lambda pending: len(pending) == 2)
    assert [(d["location_id"], d.get("evse_uid")) for d in waiting] == [("LOC1", None), ("LOC1", "E1")]

    make_due(hub)
    await drained(hub, partner_id)
    assert [(r.method, r.path) for r in pushes(emsp)[3:]] == [
        ("PUT", f"{LOCATIONS}/LOC1"),
        ("PATCH", f"{LOCATIONS}/LOC1/E1"),
    ]


@pytest.fixture
async def other_emsp() -> AsyncIterator[FakeEmsp]:
    fake = FakeEmsp(accepted_tokens={"token-of-the-other-emsp"})
    async with serve(fake.app):
        yield fake


async def test_a_hanging_partner_does_not_delay_the_others(
    hub_factory: HubFactory, emsp: FakeEmsp, other_emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(http_timeout=60)
    hanging = await connect(hub, emsp)
    healthy = await connect(hub, other_emsp, token="token-of-the-other-emsp")
    gate = asyncio.Event()
    emsp.failures = [Failure(http_status=503, until=gate)]  # no answer until the gate opens
    stored = await put_location(hub, "LOC1")
    for status in STATUSES:
        evse = await set_status(hub, "LOC1", "E1", status)
    await eventually(lambda: [r.body for r in pushes(other_emsp, "/E1")][-1:] == [evse_patch(evse)])
    await drained(hub, healthy)
    assert [r.path for r in pushes(emsp)] == [f"{LOCATIONS}/LOC1"]  # still waiting for its answer

    gate.set()  # it answers 503 at last: a retry, then everything arrives
    await listed(hub, hanging, "pending", lambda pending: bool(pending) and pending[0]["attempts"] == 1)
    make_due(hub)
    await drained(hub, hanging)
    assert [(r.method, r.body) for r in pushes(emsp)[1:]] == [
        ("PUT", stored | {"evses": [evse], "last_updated": evse["last_updated"]}),
        ("PATCH", evse_patch(evse)),
    ]


def evse_patch(evse: dict[str, Any]) -> dict[str, Any]:
    return {"status": evse["status"], "last_updated": evse["last_updated"]}


async def test_a_round_that_outlasts_its_claim_begins_no_delivery_another_worker_may_have_taken(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A worker claims a batch for OCPI_HUB_PUSH_LEASE seconds (README "Running at scale"); then other workers may
    take it. A partner that answers slowly must not make the worker go on sending past that: from three quarters of
    the claim on, it begins no delivery and releases the rest, which the next round sends, each exactly once."""
    hub = await hub_factory(push_worker=False, push_lease=60)
    partner_id = await connect(hub, emsp)
    for n in range(4):
        await put_location(hub, f"LOC{n}")
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    emsp.on_request = lambda _: clock.advance(20)  # each answer takes 20 s of the hub's time
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock, lanes=1)
        await worker.step()
        assert [r.path.rsplit("/", 1)[-1] for r in pushes(emsp)] == ["LOC0", "LOC1", "LOC2"]  # at 0, 20, 40 s
        [waiting] = await deliveries(hub, partner_id)
        assert (waiting["object_id"], waiting["attempts"]) == ("LOC3", 0)  # released, not failed
        await worker.step()
    assert [r.path.rsplit("/", 1)[-1] for r in pushes(emsp)] == ["LOC0", "LOC1", "LOC2", "LOC3"]
    await drained(hub, partner_id)
