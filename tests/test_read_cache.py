"""The Locations Sender's per-process caches are exact: whatever changes, through the hub or through another
connection (another process), is in the very next answer, and a revoked token is refused at once."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db.partners import Partner
from tests.conftest import Hub
from tests.test_locations_store import evse, location
from tests.test_ocpi_locations_sender import EMSP_TOKEN, LIST, add, add_emsp, get, ids


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
