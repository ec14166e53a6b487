"""Failed pushes (README: "Retries and dead letters"): transient failures retried until delivered, permanent ones not,
the PATCH fallback, dead letters and their retry. Time is made to pass on the hub's clock (make_due)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.push.worker import PushWorker
from tests.conftest import Hub, HubFactory, MovableClock
from tests.fake_emsp import Failure, FakeEmsp
from tests.test_push_delivery import (
    LOCATIONS,
    LONGEST_WAIT,
    connect,
    deliveries,
    drained,
    eventually,
    failed,
    listed,
    make_due,
    pushes,
    put_location,
    seed_location,
    set_status,
)


async def test_transient_failures_are_retried_until_delivered(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner_id = await connect(hub, emsp)
    failures = [
        (Failure(http_status=500), "HTTP 500"),
        (Failure(drop=True), "RemoteProtocolError"),
        (Failure(delay=3), "no answer within the timeout"),  # the hub's timeout is 2 s in the tests
        (Failure(status_code=3000), "status_code 3000"),  # HTTP 200 with an OCPI server error
        (Failure(http_status=429), "HTTP 429"),
        (Failure(http_status=503, status_code=3002), "HTTP 503"),
    ]
    emsp.failures = [failure for failure, _ in failures]
    stored = await put_location(hub, "LOC1")
    for attempts, (_, error) in enumerate(failures, start=1):
        pending = await failed(hub, partner_id, attempts)
        assert error in pending["last_error"]
        assert datetime.fromisoformat(pending["next_attempt_at"]) > datetime.now(UTC)  # waits for its retry
        make_due(hub)
    await drained(hub, partner_id)
    assert [r.method for r in pushes(emsp)] == ["PUT"] * (len(failures) + 1)
    assert pushes(emsp)[-1].body == stored


async def test_retry_after_puts_the_next_attempt_at_least_that_far(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(http_status=429, retry_after="600")]
    before = datetime.now(UTC).replace(microsecond=0)  # the hub's clock has whole seconds
    await put_location(hub, "LOC1")
    pending = await failed(hub, partner_id, 1)
    assert datetime.fromisoformat(pending["next_attempt_at"]) >= before + timedelta(seconds=600)


@pytest.mark.parametrize(
    "refusal",
    [Failure(http_status=404, status_code=2003), Failure(status_code=2001)],
    ids=["unknown object", "refused with 2001"],
)
async def test_a_refused_patch_is_followed_by_get_and_put(hub: Hub, emsp: FakeEmsp, refusal: Failure) -> None:
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    emsp.failures = [refusal]
    evse = await set_status(hub, "LOC1", "E1", "CHARGING")
    await eventually(lambda: len(pushes(emsp)) == 4)
    await drained(hub, partner_id)
    assert [(r.method, r.path) for r in pushes(emsp)[1:]] == [
        ("PATCH", f"{LOCATIONS}/LOC1/E1"),
        ("GET", f"{LOCATIONS}/LOC1/E1"),  # the fake does not have the EVSE on its own: 404
        ("PUT", f"{LOCATIONS}/LOC1/E1"),
    ]
    assert pushes(emsp)[-1].body == evse


async def test_no_put_after_a_refused_patch_when_the_emsp_has_this_version(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    emsp.failures = [Failure(http_status=500)]
    evse = await set_status(hub, "LOC1", "E1", "CHARGING")
    await failed(hub, partner_id, 1)

    emsp.stored[f"{LOCATIONS}/LOC1/E1"] = evse  # the eMSP got this version some other way
    emsp.failures = [Failure(status_code=2001)]
    make_due(hub)
    await drained(hub, partner_id)
    assert [r.method for r in pushes(emsp)[1:]] == ["PATCH", "PATCH", "GET"]
    assert await deliveries(hub, partner_id, "dead") == []


async def test_a_refused_patch_whose_put_fails_too_is_a_dead_letter(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    emsp.failures = [Failure(status_code=2001), Failure(http_status=404), Failure(status_code=2001)]
    await set_status(hub, "LOC1", "E1", "CHARGING")
    [letter] = await listed(hub, partner_id, "dead", bool)
    assert [r.method for r in pushes(emsp)[1:]] == ["PATCH", "GET", "PUT"]
    assert letter["method"] == "PATCH"
    assert letter["fields"] == ["status"]
    assert letter["last_error"].startswith(f"PATCH {emsp.base_url}{LOCATIONS}/LOC1/E1: status_code 2001")
    assert f"; then PUT {emsp.base_url}{LOCATIONS}/LOC1/E1: status_code 2001" in letter["last_error"]


async def test_a_permanent_failure_is_not_retried(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(http_status=400, status_code=2001)]
    await put_location(hub, "LOC1")
    [letter] = await listed(hub, partner_id, "dead", bool)
    assert (letter["attempts"], letter["method"]) == (1, "PUT")
    assert "HTTP 400 (status_code 2001: told to fail)" in letter["last_error"]
    assert await deliveries(hub, partner_id) == []
    assert len(pushes(emsp)) == 1


async def test_after_the_last_attempt_a_dead_letter_that_can_be_retried(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_max_attempts=2)
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(http_status=500), Failure(http_status=502)]
    stored = await put_location(hub, "LOC1")
    await failed(hub, partner_id, 1)
    make_due(hub)
    [letter] = await listed(hub, partner_id, "dead", bool)
    assert (letter["location_id"], letter["method"], letter["attempts"]) == ("LOC1", "PUT", 2)
    assert "HTTP 502" in letter["last_error"]

    assert (await hub.api("POST", f"/partners/{partner_id}/deliveries/{letter['id'] + 1}/retry")).status_code == 404
    assert (await hub.api("POST", f"/partners/{partner_id + 1}/deliveries/retry")).status_code == 404
    response = await hub.api("POST", f"/partners/{partner_id}/deliveries/{letter['id']}/retry")
    assert (response.status_code, response.json()) == (200, {"count": 1})
    await drained(hub, partner_id)
    assert [(r.method, r.body) for r in pushes(emsp)] == [("PUT", stored)] * 3
    assert await deliveries(hub, partner_id, "dead") == []


async def test_a_retried_dead_letter_becomes_a_put_with_what_is_pending(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_max_attempts=2)
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(http_status=500)] * 2
    await put_location(hub, "LOC1")
    await failed(hub, partner_id, 1)
    make_due(hub)
    await listed(hub, partner_id, "dead", bool)

    emsp.failures = [Failure(status_code=3000)]  # the rename waits for its retry as a pending PATCH
    renamed = await put_location(hub, "LOC1", seed_location(name="Utrecht Centraal"))
    pending = await failed(hub, partner_id, 1)
    assert (pending["method"], pending["fields"], pending["revision"]) == ("PATCH", ["name"], 1)

    response = await hub.api("POST", f"/partners/{partner_id}/deliveries/retry")
    assert (response.status_code, response.json()) == (200, {"count": 1})
    assert await deliveries(hub, partner_id, "dead") == []
    [merged] = await deliveries(hub, partner_id)
    assert (merged["id"], merged["method"], merged["revision"]) == (pending["id"], "PUT", 2)
    make_due(hub)
    await drained(hub, partner_id)
    assert (pushes(emsp)[-1].method, pushes(emsp)[-1].body) == ("PUT", renamed)


async def test_a_delivery_older_than_the_maximum_age_is_given_up(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_max_age=3600)
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(http_status=500), Failure(http_status=500)]
    await put_location(hub, "LOC1")
    await failed(hub, partner_id, 1)
    assert isinstance(hub.clock, MovableClock)
    hub.clock.advance(3601)  # the retry is due, and the delivery older than push_max_age
    [letter] = await listed(hub, partner_id, "dead", bool)
    assert letter["attempts"] == 2


async def test_the_worker_runs_one_step_at_a_time_on_the_clock_it_is_given(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """No sleeps and no edited rows: the test owns the worker's clock and its steps."""
    hub = await hub_factory(push_worker=False)  # queues, never sends
    await connect(hub, emsp)
    await put_location(hub, "LOC1")
    clock = MovableClock()
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock)
        emsp.failures = [Failure(http_status=503)]
        assert await worker.step() == 1  # tried, failed: waits for its retry
        assert await worker.step() == 0  # not due yet on this clock
        clock.advance(LONGEST_WAIT)
        assert await worker.step() == 1
        assert await worker.step() == 0  # nothing left
    assert [r.method for r in pushes(emsp)] == ["PUT", "PUT"]
