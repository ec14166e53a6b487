"""The Locations Sender's per-process caches are exact: whatever changes, through the hub or through another
connection (another process), is in the very next answer, and a revoked token is refused at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db.partners import Partner
from tests.conftest import Hub, HubFactory
from tests.test_locations_store import T1, evse, location
from tests.test_ocpi_locations_sender import EMSP_TOKEN, LIST, ROLE, TWO_PARTIES, add, add_emsp, get, ids


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
