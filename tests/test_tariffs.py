"""Tariffs end to end (OCPI 2.2.1 §11, docs/cpo-modules.md §3), over real HTTP: the internal API that manages them,
the Sender interface on 2.2.1 and 2.2, the pushes to an eMSP's Tariffs Receiver and their order against the
Locations that name them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.db.tariffs import TariffRow
from ocpi_hub.push.worker import PushWorker
from ocpi_hub.settings import Settings
from tests.conftest import Hub, HubFactory, MovableClock
from tests.fake_emsp import Failure, FakeEmsp
from tests.test_ocpi_locations_sender import EMSP_TOKEN, TWO_PARTIES, add_emsp
from tests.test_push_delivery import LONGEST_WAIT, connect, connector, drained, seed_location

EXAMPLES = Path(__file__).parent / "data" / "ocpi-examples" / "2.2.1"
# The official tariff examples, but the one NOTICE.md lists as defective (it lacks last_updated).
TARIFF_EXAMPLES = sorted(p for p in EXAMPLES.glob("tariff_*.json") if p.name != "tariff_put_example.json")


def tariff(tariff_id: str = "T1", price: float = 0.25, **changes: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "OHB",
        "id": tariff_id,
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}],
    } | changes


async def put_tariff(hub: Hub, body: dict[str, Any], tariff_id: str | None = None) -> httpx.Response:
    return await hub.api("PUT", f"/tariffs/{tariff_id or body['id']}", json=body)


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    return message


def tariff_pushes(emsp: FakeEmsp) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emsp.requests if "/tariffs/" in r.path]


# --- The internal API ----------------------------------------------------------------------------------------------


async def test_put_get_list_and_delete(hub: Hub) -> None:
    created = await put_tariff(hub, tariff())
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["last_updated"].endswith("Z")
    assert (await hub.api("GET", "/tariffs/T1")).json() == stored

    unchanged = await put_tariff(hub, tariff(last_updated="2030-01-01T00:00:00Z"))
    assert (unchanged.status_code, unchanged.json()) == (200, stored)  # only last_updated differs: nothing written

    changed = await put_tariff(hub, tariff(price=0.30))
    assert changed.status_code == 200
    assert changed.json()["elements"][0]["price_components"][0]["price"] == 0.30

    await put_tariff(hub, tariff("T2"))
    listed = await hub.api("GET", "/tariffs", params={"offset": 1, "limit": 5})
    assert [t["id"] for t in listed.json()] == ["T2"]

    assert (await hub.api("DELETE", "/tariffs/T1")).status_code == 204
    assert error(await hub.api("GET", "/tariffs/T1"), 404) == "no tariff T1"
    assert error(await hub.api("DELETE", "/tariffs/T1"), 404) == "no tariff T1"


@pytest.mark.parametrize(
    ("body", "path_id", "message"),
    [
        (tariff(), "T9", "id: 'T1' must be the path's tariffId 'T9'"),
        (tariff(country_code="FR", party_id="XYZ"), None, "country_code/party_id: FR/XYZ is not our party"),
        (tariff(currency="XXY"), None, "currency: "),
        (tariff(elements=[]), None, "elements: Expected `array` of length >= 1"),
        (tariff(id="T" * 37), "T" * 36, "id: Expected `str` of length <= 36"),
        ({k: v for k, v in tariff().items() if k != "currency"}, None, "Object missing required field `currency`"),
    ],
)
async def test_invalid_tariffs_are_refused_naming_the_field(
    hub: Hub, sessions: async_sessionmaker[AsyncSession], body: dict[str, Any], path_id: str | None, message: str
) -> None:
    assert message in error(await put_tariff(hub, body, path_id), 400)
    async with sessions() as session:
        assert (await session.execute(select(TariffRow))).first() is None


async def test_a_tariff_id_belongs_to_one_party(hub_factory: HubFactory) -> None:
    hub = await hub_factory(parties=TWO_PARTIES)
    assert (await put_tariff(hub, tariff())).status_code == 201
    taken = await put_tariff(hub, tariff(country_code="DE", party_id="ALL"))
    assert error(taken, 409) == "tariff T1 belongs to NL/OHB: a tariff id belongs to one party"


async def test_connectors_name_only_stored_tariffs_of_their_party(hub_factory: HubFactory) -> None:
    hub = await hub_factory(parties=TWO_PARTIES)
    naming = seed_location({"uid": "E1", "connectors": [connector(tariff_ids=["T1"])]})
    refused = await hub.api("POST", "/location/LOC1", json=naming)
    assert error(refused, 400) == (
        "EVSE E1 connector 1: tariff_ids names 'T1', which is not a stored Tariff of NL/OHB "
        "(PUT it to /api/v0/tariffs/T1 first)"
    )
    assert (await hub.api("GET", "/tariffs/T1")).status_code == 404
    await put_tariff(hub, tariff(country_code="DE", party_id="ALL"))  # another party's
    assert error(await hub.api("POST", "/location/LOC1", json=naming), 400).startswith("EVSE E1 connector 1")

    await hub.api("DELETE", "/tariffs/T1")
    await put_tariff(hub, tariff())
    assert (await hub.api("POST", "/location/LOC1", json=naming)).status_code == 201
    assert error(await hub.api("DELETE", "/tariffs/t1"), 409) == (
        "tariff T1 is named by connectors LOC1/E1/1: remove it from their tariff_ids first"
    )
    freed = seed_location({"uid": "E1", "connectors": [connector()]})
    assert (await hub.api("POST", "/location/LOC1", json=freed)).status_code == 201
    assert (await hub.api("DELETE", "/tariffs/T1")).status_code == 204


# --- The Sender interface ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.2.1", "2.2"])
async def test_the_official_examples_are_served_exactly_as_stored(
    hub_factory: HubFactory, sessions: async_sessionmaker[AsyncSession], version: str
) -> None:
    # A clock before every example's last_updated: theirs is kept (we only ever move it forward).
    hub = await hub_factory(clock=lambda: datetime(2010, 1, 1, tzinfo=UTC), parties=TWO_PARTIES)
    await add_emsp(sessions)
    for path in TARIFF_EXAMPLES:
        example = json.loads(path.read_text())
        put = await put_tariff(hub, example)
        assert put.status_code == 201, (path.name, put.text)
        listed = await hub.ocpi("GET", f"/ocpi/{version}/tariffs", EMSP_TOKEN)
        assert listed.json()["data"] == [example], path.name
        one = await hub.ocpi("GET", f"/ocpi/{version}/tariffs/{example['id']}", EMSP_TOKEN)
        assert one.json()["data"] == example, path.name
        assert (await hub.api("DELETE", f"/tariffs/{example['id']}")).status_code == 204  # ids repeat


async def test_the_list_pages_narrows_and_refuses_strangers(
    hub_factory: HubFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(parties=TWO_PARTIES, page_limit=2)
    await add_emsp(sessions)
    for n in range(3):
        await put_tariff(hub, tariff(f"T{n}"))
    await put_tariff(hub, tariff("D1", country_code="DE", party_id="ALL"))

    first = await hub.ocpi("GET", "/ocpi/2.2.1/tariffs", EMSP_TOKEN)
    assert [t["id"] for t in first.json()["data"]] == ["T0", "T1"]
    assert (first.headers["x-total-count"], first.headers["x-limit"]) == ("4", "2")
    assert first.headers["link"] == f'<{hub.url}/ocpi/2.2.1/tariffs?offset=2&limit=2>; rel="next"'
    assert (first.headers["ocpi-to-country-code"], first.headers["ocpi-to-party-id"]) == ("DE", "EMP")

    narrowed = await hub.ocpi(
        "GET", "/ocpi/2.2/tariffs", EMSP_TOKEN, headers={"OCPI-to-country-code": "DE", "OCPI-to-party-id": "ALL"}
    )
    assert [t["id"] for t in narrowed.json()["data"]] == ["D1"]
    assert narrowed.headers["x-total-count"] == "1"
    hidden = await hub.ocpi(
        "GET", "/ocpi/2.2.1/tariffs/T0", EMSP_TOKEN, headers={"OCPI-to-country-code": "DE", "OCPI-to-party-id": "ALL"}
    )
    assert (hidden.status_code, hidden.json()["status_code"]) == (404, 2000)

    unknown = await hub.ocpi("GET", "/ocpi/2.2.1/tariffs/NOPE", EMSP_TOKEN)
    assert (unknown.status_code, unknown.json()["status_message"]) == (404, "unknown tariff NOPE")
    stranger = await hub.ocpi("GET", "/ocpi/2.2.1/tariffs", "who-knows")
    assert (stranger.status_code, stranger.json()["status_code"]) == (401, 2000)
    bad = await hub.ocpi("GET", "/ocpi/2.2.1/tariffs?limit=-1", EMSP_TOKEN)
    assert (bad.status_code, bad.json()["status_code"]) == (200, 2001)


async def test_version_details_list_tariffs_as_sender(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_emsp(sessions)
    for version in ("2.2.1", "2.2"):
        details = (await hub.ocpi("GET", f"/ocpi/{version}", EMSP_TOKEN)).json()["data"]
        endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["endpoints"]}
        assert endpoints[("tariffs", "SENDER")] == f"{hub.url}/ocpi/{version}/tariffs"


# --- Pushes --------------------------------------------------------------------------------------------------------


@pytest.fixture
def tariff_emsp(emsp: FakeEmsp) -> FakeEmsp:
    emsp.modules = [*emsp.modules, ("tariffs", "RECEIVER")]
    return emsp


@pytest.mark.parametrize("version", ["2.2.1", "2.2"])
async def test_create_change_and_delete_are_pushed(hub: Hub, tariff_emsp: FakeEmsp, version: str) -> None:
    emsp = tariff_emsp
    emsp.versions = [version]
    partner_id = await connect(hub, emsp)
    stored = (await put_tariff(hub, tariff())).json()
    changed = (await put_tariff(hub, tariff(price=0.5))).json()
    await drained(hub, partner_id)
    url = f"/{version}/tariffs/NL/OHB/T1"
    puts = [r for r in emsp.requests if r.path == url]
    assert [(r.method, r.body) for r in puts] in (
        [("PUT", stored), ("PUT", changed)],
        [("PUT", changed)],  # the second change merged into the first while it waited: latest wins
    )
    assert puts[0].headers["ocpi-from-party-id"] == "OHB"
    assert (await hub.api("DELETE", "/tariffs/T1")).status_code == 204
    await drained(hub, partner_id)
    assert tariff_pushes(emsp)[-1] == ("DELETE", url)


@asynccontextmanager
async def stepped(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[tuple[PushWorker, MovableClock]]:
    """A push worker the test runs one step at a time, on a clock it moves (the hub's own worker is off)."""
    clock = MovableClock()
    async with PoolPerOrigin() as pools:
        yield PushWorker(sessions, OcpiClient(pools, timeout=2), settings, clock=clock), clock


def sent(emsp: FakeEmsp) -> list[str]:
    return [r.path.removeprefix("/2.2.1/") for r in emsp.requests if r.method == "PUT"]


# An OCPI server error in an HTTP 200: a failure of this object, not of the partner, so the worker goes on with
# the partner's other objects; only the ordering rule holds the Location back.
OBJECT_FAILURE = Failure(status_code=3000)


async def test_a_connector_naming_a_tariff_reaches_the_partner_after_that_tariff(
    hub_factory: HubFactory, tariff_emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_worker=False)
    await connect(hub, tariff_emsp)
    await put_tariff(hub, tariff())
    naming = seed_location({"uid": "E1", "connectors": [connector(tariff_ids=["T1"])]})
    assert (await hub.api("POST", "/location/LOC1", json=naming)).status_code == 201
    async with stepped(sessions, hub.settings) as (worker, clock):
        tariff_emsp.failures = [OBJECT_FAILURE]
        assert await worker.step() == 1  # the Tariff failed; the Location, due too, waits behind it
        assert await worker.step() == 0
        clock.advance(LONGEST_WAIT)
        await worker.step()
        await worker.step()
    assert sent(tariff_emsp) == ["tariffs/NL/OHB/T1", "tariffs/NL/OHB/T1", "locations/NL/OHB/LOC1"]


async def test_a_tariff_is_deleted_at_the_partner_after_the_connectors_stop_naming_it(
    hub_factory: HubFactory, tariff_emsp: FakeEmsp
) -> None:
    hub = await hub_factory(push_worker=False)
    await connect(hub, tariff_emsp)
    await put_tariff(hub, tariff())
    await hub.api(
        "POST", "/location/LOC1", json=seed_location({"uid": "E1", "connectors": [connector(tariff_ids=["T1"])]})
    )
    await hub.api("POST", "/location/LOC1", json=seed_location({"uid": "E1", "connectors": [connector()]}))
    await hub.api("DELETE", "/tariffs/T1")
    partner_id = (await hub.api("GET", "/partners")).json()[0]["id"]
    listed = (await hub.api("GET", f"/partners/{partner_id}/deliveries")).json()["deliveries"]
    # The Tariff's pending PUT was replaced by the DELETE, which took the last place.
    assert [(d["module"], d["object_id"], d.get("connector_id"), d["method"]) for d in listed] == [
        ("locations", "LOC1", None, "PUT"),
        ("locations", "LOC1", "1", "PUT"),  # the Connector that stopped naming it
        ("tariffs", "T1", None, "DELETE"),
    ]


async def test_a_new_partner_gets_every_tariff_before_any_location(
    hub_factory: HubFactory, tariff_emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_worker=False)
    await put_tariff(hub, tariff("T1"))
    await hub.api(
        "POST", "/location/LOC1", json=seed_location({"uid": "E1", "connectors": [connector(tariff_ids=["T1"])]})
    )
    await put_tariff(hub, tariff("T2"))  # created after the Location, still sent before it
    await connect(hub, tariff_emsp)
    async with stepped(sessions, hub.settings) as (worker, clock):
        tariff_emsp.failures = [OBJECT_FAILURE]  # T1's first PUT
        assert await worker.step() == 2  # T1 (failed) and T2; the Location waits for T1
        assert await worker.step() == 0
        clock.advance(LONGEST_WAIT)
        await worker.step()
        await worker.step()
    assert sent(tariff_emsp) == [
        "tariffs/NL/OHB/T1",
        "tariffs/NL/OHB/T2",
        "tariffs/NL/OHB/T1",
        "locations/NL/OHB/LOC1",
    ]


async def test_a_partner_without_a_tariffs_receiver_gets_no_tariffs(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    await put_tariff(hub, tariff())
    await hub.api(
        "POST", "/location/LOC1", json=seed_location({"uid": "E1", "connectors": [connector(tariff_ids=["T1"])]})
    )
    await drained(hub, partner_id)
    assert tariff_pushes(emsp) == []
    assert [r.path for r in emsp.requests if r.method == "PUT"] == ["/2.2.1/locations/NL/OHB/LOC1"]
