"""Bulk loading (`PUT /api/v0/locations`, README "Internal API > Locations"): all or nothing, every wrong item named
with its field, the same stored Locations and pushes as one registerLocation per item."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db.locations import LocationRow
from ocpi_hub.settings import Party
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import FakeEmsp
from tests.test_internal_locations import body, error
from tests.test_push_delivery import connect, deliveries


@pytest.fixture
async def quiet_hub(hub_factory: HubFactory) -> Hub:
    return await hub_factory(push_worker=False)


def item(location_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": location_id, **body(**changes)}


def untimed(value: Any) -> Any:
    """`value` without its `last_updated` members, at any depth."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k != "last_updated"}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


async def stored_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(LocationRow))).scalar_one()


async def test_bulk_stores_like_register_and_answers_per_item(quiet_hub: Hub, emsp: FakeEmsp) -> None:
    hub = quiet_hub
    partner_id = await connect(hub, emsp)
    response = await hub.api("PUT", "/locations", json=[item("B1"), item("b2")])
    assert response.status_code == 200, response.text
    assert response.json() == [{"id": "B1", "outcome": "created"}, {"id": "b2", "outcome": "created"}]
    single = await hub.api("POST", "/location/S1", json=body())
    stored = (await hub.api("GET", "/location/B1")).json()
    # The same Location as registerLocation stores, but for its id (and its times: a second may pass in between).
    assert untimed({**stored, "id": "S1"}) == untimed(single.json())

    status = await hub.api("POST", "/location/B1/evse/UTR-1/status", json={"status": "AVAILABLE"})
    assert status.status_code == 200
    again = await hub.api("PUT", "/locations", json=[item("B1"), item("B2", name="Renamed")])
    assert again.json() == [{"id": "B1", "outcome": "unchanged"}, {"id": "b2", "outcome": "updated"}]
    kept = (await hub.api("GET", "/location/B1")).json()
    assert kept["evses"][0]["status"] == "AVAILABLE"  # as registerLocation: the CSMS does not know statuses
    queued = [
        (d["location_id"], d.get("evse_uid"), d["method"], d.get("fields")) for d in await deliveries(hub, partner_id)
    ]
    assert queued == [
        ("B1", None, "PUT", None),
        ("b2", None, "PUT", None),  # the rename merged into the pending PUT
        ("S1", None, "PUT", None),
        ("B1", "UTR-1", "PATCH", ["status"]),
    ]


async def test_one_wrong_item_writes_nothing_and_every_wrong_item_is_named(
    quiet_hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = quiet_hub
    no_city = item("B3")
    del no_city["city"]
    items = [
        item("B1"),
        item("B2", coordinates={"latitude": "0", "longitude": "0"}),
        no_city,
        item("b1"),
        {"name": "no id"},
        "not an object",
    ]
    message = error(await hub.api("PUT", "/locations", json=items), 400)
    assert message.startswith("items[1] (id B2): $.coordinates.latitude: ")
    assert "; items[2] (id B3): $: Object missing required field `city`" in message
    assert "; items[3] (id b1): $.id: repeats the id of items[0]" in message
    assert "; items[4]: $: Object missing required field" in message
    assert "; items[5]: $: Expected `object`, got `str`" in message
    assert not message.startswith("items[0]")  # a good item is not named
    assert await stored_count(sessions) == 0


async def test_a_refusal_of_the_store_writes_nothing(
    hub_factory: HubFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_worker=False, parties=(Party("NL", "OHB", "Test"), Party("DE", "ALL", "Test DE")))
    assert (await hub.api("PUT", "/locations", json=[item("B1")])).status_code == 200
    taken = [item("B2"), item("B1", country_code="DE", party_id="ALL")]
    message = error(await hub.api("PUT", "/locations", json=taken), 409)
    assert message.startswith("items[1] (id B1): location B1 belongs to NL/OHB")
    unknown = body()
    unknown["evses"][0]["connectors"][0]["tariff_ids"] = ["T9"]
    message = error(await hub.api("PUT", "/locations", json=[item("B3"), {"id": "B4", **unknown}]), 400)
    assert message.startswith("items[1] (id B4): EVSE UTR-1 connector 1: tariff_ids names 'T9'")
    assert await stored_count(sessions) == 1


async def test_bulk_body_limits(quiet_hub: Hub) -> None:
    assert "at most 1000 locations" in error(await quiet_hub.api("PUT", "/locations", json=[{}] * 1001), 400)
    assert error(await quiet_hub.api("PUT", "/locations", json={"id": "B1"}), 400)
    empty = await quiet_hub.api("PUT", "/locations", json=[])
    assert (empty.status_code, empty.json()) == (200, [])


@pytest.mark.skipif(
    not os.environ.get("OCPI_HUB_TEST_DATABASE_URL", "").startswith("postgresql"), reason="PostgreSQL's statistics"
)
async def test_postgres_statistics_are_renewed_when_a_bulk_load_doubles_the_locations(
    quiet_hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A bulk load (or a first sync) grows the tables faster than autovacuum renews their statistics, and plans made
    for empty tables scanned them whole: the tables are analysed when the Locations reach 1,024, 2,048, ..."""

    async def analysed() -> int:
        async with sessions() as session:
            query = text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'location_documents'")
            return int((await session.execute(query)).scalar_one())

    before = await analysed()
    for first in range(0, 1000, 500):  # 1,000 Locations: below the first mark
        response = await quiet_hub.api("PUT", "/locations", json=[item(f"A{i}") for i in range(first, first + 500)])
        assert response.status_code == 200, response.text
    assert await analysed() == before
    response = await quiet_hub.api("PUT", "/locations", json=[item(f"B{i}") for i in range(100)])  # to 1,100
    assert response.status_code == 200, response.text
    assert await analysed() == before + 1
