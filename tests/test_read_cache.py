"""The Locations Sender's per-process caches are exact: whatever changes, through the hub or through another
connection (another process), is in the very next answer, and a revoked token is refused at once. They are
emptied only by changes of what they were read from (docs/ocpi.md §11): the push worker's bookkeeping leaves them,
and concurrent requests for the same answer share one read."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.credentials_token import hash_token
from ocpi_hub.db.freshness import Kind, location_blocks
from ocpi_hub.db.partners import Partner
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.stores import locations as store
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import FakeEmsp
from tests.test_locations_store import T1, evse, location
from tests.test_ocpi_locations_sender import EMSP_TOKEN, LIST, ROLE, TWO_PARTIES, add, add_emsp, get, ids
from tests.test_push_delivery import TOKEN, connect, deliveries, poll, put_location, set_status
from tests.test_tariffs import put_tariff, tariff


@pytest.fixture
async def reader(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A registered eMSP presenting EMSP_TOKEN."""
    await add_emsp(sessions)


async def test_a_change_through_the_hub_is_in_the_next_answer(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add(sessions, location(evse("E1"), id="L1"))
    for _ in range(2):  # the second answer may come from the cache
        assert (await get(hub, LIST)).json()["data"][0]["evses"][0]["status"] == "AVAILABLE"
        assert (await get(hub, f"{LIST}/L1/E1")).json()["data"]["status"] == "AVAILABLE"

    response = await hub.api("POST", "/location/L1/evse/E1/status", json={"status": "CHARGING"})
    assert response.status_code == 200, response.text

    assert (await get(hub, LIST)).json()["data"][0]["evses"][0]["status"] == "CHARGING"
    assert (await get(hub, f"{LIST}/L1/E1")).json()["data"]["status"] == "CHARGING"


async def test_a_write_by_another_connection_is_in_the_next_answer(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add(sessions, location(evse("E1"), id="L1"))
    assert ids(await get(hub, LIST)) == ["L1"]
    assert ids(await get(hub, LIST)) == ["L1"]
    await add(sessions, location(evse("E2"), id="L2"))  # the tests' own engine: like an `ocpi-hub sync` process
    assert ids(await get(hub, LIST)) == ["L1", "L2"]


async def test_a_suspended_partner_is_refused_at_once(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert (await get(hub, LIST)).status_code == 200
    assert (await get(hub, LIST)).status_code == 200  # its token is now cached
    async with sessions() as session:
        await session.execute(update(Partner).values(state="suspended"))
        await session.commit()
    assert (await get(hub, LIST)).status_code == 401
    assert (await hub.ocpi("GET", f"{LIST}/L1", EMSP_TOKEN)).status_code == 401


async def test_a_kept_answer_is_only_given_to_the_same_question(
    hub_factory: HubFactory, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The list's whole answers are kept: the same page asked by another partner, with other routing headers or
    other request ids gets its own headers, and the envelope's timestamp is always the current one."""
    now = [T1]
    hub = await hub_factory(clock=lambda: now[0], parties=TWO_PARTIES)
    await add_emsp(sessions, "other-token", {**ROLE, "country_code": "FR", "party_id": "OTH"})
    await add(sessions, location(evse("E1"), id="L1"), location(id="DE1", country_code="DE", party_id="ALL"))

    for request_id in ("first", "second"):
        response = await get(hub, LIST, headers={"X-Request-ID": request_id, "X-Correlation-ID": f"c-{request_id}"})
        assert ids(response) == ["L1", "DE1"]
        assert response.headers["x-request-id"] == request_id
        assert response.headers["x-correlation-id"] == f"c-{request_id}"
        assert response.headers["ocpi-to-party-id"] == "EMP"
        assert response.json()["timestamp"] == "2026-11-21T10:00:00Z"

    other = await hub.ocpi("GET", LIST, "other-token")
    assert ids(other) == ["L1", "DE1"]
    assert (other.headers["ocpi-to-country-code"], other.headers["ocpi-to-party-id"]) == ("FR", "OTH")
    assert "x-request-id" in other.headers

    narrowed = await get(hub, LIST, headers={"OCPI-to-country-code": "DE", "OCPI-to-party-id": "ALL"})
    assert ids(narrowed) == ["DE1"]
    assert narrowed.headers["ocpi-from-party-id"] == "ALL"
    assert ids(await get(hub, LIST + "?limit=1")) == ["L1"]

    now[0] += timedelta(seconds=1)
    assert (await get(hub, LIST)).json()["timestamp"] == "2026-11-21T10:00:01Z"
    assert (await hub.ocpi("GET", LIST, "unknown-token")).status_code == 401


async def answers(hub: Hub, how: str, module: str = "locations") -> int:
    """How many answers of `module` the hub made `how` (kept, shared, read), from its metrics."""
    text = (await hub.http.get(f"{hub.url}/metrics")).text
    found = re.search(rf'^ocpi_hub_answers_total{{how="{how}",module="{module}"}} ([0-9.]+)$', text, re.MULTILINE)
    return int(float(found[1])) if found else 0


async def test_a_status_change_by_another_process_is_in_the_next_answer(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add(sessions, location(evse("E1"), id="L1"))
    for _ in range(2):
        assert (await get(hub, f"{LIST}/L1")).json()["data"]["evses"][0]["status"] == "AVAILABLE"
    assert await answers(hub, "kept") == 1
    async with sessions() as session:  # the tests' own engine: like another hub process on the database
        await store.set_evse_status(session, "L1", "E1", ocpi.Status.CHARGING, now=T1 + timedelta(minutes=1))
        await session.commit()
    assert (await get(hub, f"{LIST}/L1")).json()["data"]["evses"][0]["status"] == "CHARGING"
    assert (await get(hub, LIST)).json()["data"][0]["evses"][0]["status"] == "CHARGING"


async def test_the_push_workers_bookkeeping_leaves_the_locations_answers_kept(hub: Hub, emsp: FakeEmsp) -> None:
    """A delivery's commit (its state, the partner's health) changes nothing an answer is read from: the next
    request is answered from the cache, where it was read again after every commit before issue 15."""
    partner_id = await connect(hub, emsp)  # its token is agreed both ways: it crawls us too
    await put_location(hub, "L1")
    await poll(lambda: deliveries(hub, partner_id), lambda pending: not pending)
    await set_status(hub, "L1", "E1", "CHARGING")
    first = await hub.ocpi("GET", LIST, TOKEN)
    assert first.json()["data"][0]["evses"][0]["status"] == "CHARGING"
    read = await answers(hub, "read")
    # The status change's PATCH reaches the eMSP, and the worker commits its bookkeeping.
    await poll(lambda: deliveries(hub, partner_id), lambda pending: not pending)
    await poll(lambda: asyncio.sleep(0, [r for r in emsp.requests if r.method == "PATCH"]), bool)
    kept = await answers(hub, "kept")
    assert (await hub.ocpi("GET", LIST, TOKEN)).json()["data"] == first.json()["data"]
    assert (await answers(hub, "read"), await answers(hub, "kept")) == (read, kept + 1)


async def test_a_tariff_change_leaves_the_locations_answers_kept(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add(sessions, location(evse("E1"), id="L1"))
    await get(hub, LIST)
    read = await answers(hub, "read")
    assert (await get(hub, "/ocpi/2.2.1/tariffs")).status_code == 200
    response = await put_tariff(hub, tariff())
    assert response.status_code in (200, 201), response.text
    assert len((await get(hub, "/ocpi/2.2.1/tariffs")).json()["data"]) == 1
    await get(hub, LIST)
    assert await answers(hub, "read") == read


async def test_a_kept_answer_is_sent_as_its_route_sends_it(
    hub_factory: HubFactory, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A kept answer is sent before Litestar's routing (ocpi_hub.api.ocpi.kept), yet the partner cannot tell: the
    same bytes and headers as the routed answer, its own request ids, counted under the route's template and in the
    partner's traffic log."""
    hub = await hub_factory(clock=lambda: T1)
    await add(sessions, location(evse("E1"), id="L1"))
    path = f"{LIST}/L1/E1"
    routed = await get(hub, path, headers={"X-Request-ID": "one", "X-Correlation-ID": "first"})
    kept = await answers(hub, "kept")
    again = await get(hub, path, headers={"X-Request-ID": "two"})
    assert await answers(hub, "kept") == kept + 1

    assert again.content == routed.content
    assert shown(again) == shown(routed)
    assert shown(again)["ocpi-to-party-id"] == "EMP"
    assert (again.headers["x-request-id"], again.headers["x-correlation-id"]) == ("two", "two")
    metrics = (await hub.http.get(f"{hub.url}/metrics")).text
    template = "/ocpi/2.2.1/locations/{object_id}/{evse_uid}"
    assert f'ocpi_hub_requests_total{{method="GET",route="{template}",status="200"}} 2.0' in metrics
    [partner] = (await hub.api("GET", "/partners")).json()
    logged = await poll(
        lambda: hub.api("GET", f"/partners/{partner['id']}/traffic"), lambda r: len(r.json()["entries"]) == 2
    )
    assert [(e["path"], e["http_status"], e["request_id"]) for e in logged.json()["entries"]] == [
        (path, 200, "two"),
        (path, 200, "one"),
    ]


async def test_a_known_callers_read_is_answered_as_its_route_answers_it(
    hub_factory: HubFactory, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Once its caller is known, a GET is served without routing (ocpi_hub.api.ocpi.kept), a read from the
    database included, yet the partner cannot tell: the route's bytes and headers, counted under its template."""
    hub = await hub_factory(clock=lambda: T1)
    await add(sessions, location(evse("E1"), id="L1"), location(evse("E1"), id="L2"))
    path = f"{LIST}/L1/E1"
    routed = await get(hub, path)  # the caller is not known yet: through the route, which authenticates
    async with sessions() as session:  # L2 is in L1's block: L1's answers must be read again
        await store.set_evse_status(session, "L2", "E1", ocpi.Status.CHARGING, now=T1 + timedelta(minutes=1))
        await session.commit()
    read = await answers(hub, "read")
    again = await get(hub, path)
    assert await answers(hub, "read") == read + 1
    assert again.content == routed.content
    assert again.headers.keys() == routed.headers.keys()
    assert shown(again) == shown(routed)
    metrics = (await hub.http.get(f"{hub.url}/metrics")).text
    template = "/ocpi/2.2.1/locations/{object_id}/{evse_uid}"
    assert f'ocpi_hub_requests_total{{method="GET",route="{template}",status="200"}} 2.0' in metrics


async def test_a_known_callers_errors_are_answered_by_the_route(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """What a route refuses is refused as before for a known caller: in the envelope, with the routing headers,
    counted under the route's template."""
    await add(sessions, location(evse("E1"), id="L1"))
    assert (await get(hub, LIST)).status_code == 200  # the caller is known from here on

    for path, message in (
        (f"{LIST}/L9", "unknown location L9"),
        (f"{LIST}/L1/E9", "unknown EVSE E9 at location L1"),
        (f"{LIST}/L1/E1/9", "unknown connector 9 of EVSE E1 at location L1"),
    ):
        unknown = await get(hub, path)
        assert (unknown.status_code, unknown.json()["status_code"]) == (404, 2003), path
        assert unknown.json()["status_message"] == message
        assert unknown.headers["ocpi-to-party-id"] == "EMP"
    bad = await get(hub, f"{LIST}?offset=x")
    assert bad.json()["status_code"] == 2001
    assert "offset" in bad.json()["status_message"]
    nobody = await get(hub, LIST, headers={"OCPI-to-country-code": "XX", "OCPI-to-party-id": "NOP"})
    assert (nobody.status_code, nobody.json()["status_code"]) == (404, 2000)
    metrics = (await hub.http.get(f"{hub.url}/metrics")).text
    assert 'ocpi_hub_requests_total{method="GET",route="/ocpi/2.2.1/locations/{object_id}",status="404"} 1.0' in (
        metrics
    )


async def test_a_kept_answer_is_not_sent_to_a_caller_whose_token_changed(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The kept path asks the same change counters as the route: a token replaced in the database (here by another
    connection, as another process would) is refused at once, though the answer to that question is kept."""
    await add(sessions, location(evse("E1"), id="L1"))
    assert (await get(hub, LIST)).status_code == 200
    assert (await get(hub, LIST)).status_code == 200
    async with sessions() as session:
        await session.execute(update(Partner).values(token_hash=hash_token("a-new-token")))
        await session.commit()
    refused = await get(hub, LIST)
    assert refused.status_code == 401
    assert "data" not in refused.json()
    assert ids(await hub.ocpi("GET", LIST, "a-new-token")) == ["L1"]


async def test_a_status_change_makes_only_the_answers_holding_its_location_read_again(
    hub: Hub, reader: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """docs/ocpi.md §11: an update counts in its Location's block (64 consecutive seqs); a page without filters
    and an object GET depend on their blocks and on Locations being added; a filtered page on every change."""
    await add(sessions, *(location(evse("E1"), id=f"L{n}") for n in range(1, 66)))  # seq 1..65: blocks 0 and 1
    first, last = f"{LIST}?offset=0&limit=10", f"{LIST}?offset=60&limit=10"  # L1..L10; L61..L65
    dated = f"{LIST}?date_from=2000-01-01T00:00:00Z"

    async def statuses(path: str) -> list[str]:
        response = await get(hub, path)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        if "status" in data:  # an EVSE
            return [data["status"]]
        return [evse["status"] for loc in (data if isinstance(data, list) else [data]) for evse in loc["evses"]]

    async def reads(*paths: str) -> int:
        """How many of `paths` the hub read again (each asked twice: the second is kept)."""
        before = await answers(hub, "read")
        for path in paths:
            await statuses(path)
            await statuses(path)
        return await answers(hub, "read") - before

    everything = (first, last, dated, f"{LIST}/L1", f"{LIST}/L65", f"{LIST}/L65/E1")
    assert await reads(*everything) == 6
    assert await reads(*everything) == 0

    async with sessions() as session:  # the tests' own engine: like another hub process on the database
        await store.set_evse_status(session, "L65", "E1", ocpi.Status.CHARGING, now=T1 + timedelta(minutes=1))
        await session.commit()
    assert await statuses(f"{LIST}/L65") == ["CHARGING"]
    assert (await statuses(last))[-1] == "CHARGING"
    assert await reads(first, f"{LIST}/L1") == 0  # block 0: kept
    assert await reads(last, dated, f"{LIST}/L65/E1") == 2  # the page was read again above; the rest now

    async with sessions() as session:
        await store.set_evse_status(session, "L1", "E1", ocpi.Status.CHARGING, now=T1 + timedelta(minutes=2))
        await session.commit()
    assert (await statuses(first))[0] == "CHARGING"
    assert await statuses(f"{LIST}/L1") == ["CHARGING"]
    assert await reads(last) == 1  # L61..L64 are in block 0 too

    await add(sessions, location(evse("E1"), id="L66"))  # every unfiltered page's total moves
    assert (await get(hub, first)).headers["x-total-count"] == "66"
    assert await reads(f"{LIST}/L65") == 1  # a Location added or deleted reaches every Location answer


def shown(response: httpx.Response) -> dict[str, str]:
    """The headers of an answer that are the same for the same question (not its request ids, nor its date)."""
    return {k: v for k, v in response.headers.items() if k not in ("x-request-id", "x-correlation-id", "date")}


def test_the_blocks_of_a_range_of_locations() -> None:
    blocks = len(Kind)  # the first block's place in Versions
    assert location_blocks(1, 50) == (blocks,)
    assert location_blocks(60, 70) == (blocks, blocks + 1)
    assert location_blocks(4097, 4097) == (blocks,)  # 64 blocks of 64, then round again
    assert location_blocks(4090, 4100) == (blocks, blocks + 63)
    assert location_blocks(1, 10_000) == tuple(range(blocks, blocks + 64))
