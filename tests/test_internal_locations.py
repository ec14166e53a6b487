"""registerLocation (seed 002, `POST /api/v0/location/{locationId}`) and the EVSE status change
(`POST /api/v0/location/{locationId}/evse/{evseUid}/status`), over real HTTP."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db.locations import LocationRow
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Party
from tests.conftest import Hub, HubFactory

# The seed's Location body, filled in as a CSMS would.
SEED_BODY: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "OHB",
    "name": "Utrecht Centraal P+R",
    "address": "Croeselaan 38",
    "city": "Utrecht",
    "postal_code": "3521 CB",
    "country": "NLD",
    "coordinates": {"latitude": "52.089386", "longitude": "5.109612"},
    "parking_type": "PARKING_GARAGE",
    "evses": [
        {
            "uid": "UTR-1",
            "evse_id": "NL*OHB*E00001",
            "connectors": [
                {
                    "id": "1",
                    "standard": "IEC_62196_T2",
                    "format": "SOCKET",
                    "power_type": "AC_3_PHASE",
                    "max_voltage": 230,
                    "max_amperage": 32,
                },
            ],
        },
        {
            "uid": "UTR-2",
            "connectors": [
                {
                    "id": "1",
                    "standard": "IEC_62196_T2_COMBO",
                    "format": "CABLE",
                    "power_type": "DC",
                    "max_voltage": 920,
                    "max_amperage": 200,
                },
            ],
        },
    ],
}


def body(**changes: Any) -> dict[str, Any]:
    return copy.deepcopy(SEED_BODY) | changes


async def register(hub: Hub, location_id: str = "UTR", **changes: Any) -> dict[str, Any]:
    response = await hub.api("POST", f"/location/{location_id}", json=body(**changes))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def revision(sessions: async_sessionmaker[AsyncSession], location_id: str = "UTR") -> int:
    async with sessions() as session:
        query = select(LocationRow.revision).where(LocationRow.key == location_id.upper())
        return (await session.execute(query)).scalar_one()


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"]
    assert isinstance(body["error"], str)
    message: str = body["error"]
    return message


async def test_register_answers_the_full_ocpi_location(hub: Hub) -> None:
    before = utc_now()
    data = await register(hub)
    after = utc_now()
    location = msgspec.convert(data, ocpi.Location)  # valid OCPI, every required field present
    assert ocpi.render(location) == msgspec.json.encode(data)  # ... and nothing else
    assert (location.id, location.country_code, location.party_id) == ("UTR", "NL", "OHB")
    assert location.time_zone == "Europe/Amsterdam"  # from the coordinates
    assert location.publish is True
    assert [e.status for e in location.evses or ()] == ["UNKNOWN", "UNKNOWN"]
    assert before <= location.last_updated <= after
    assert data["last_updated"].endswith("Z")


async def test_register_again_keeps_statuses_and_writes_only_changes(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await register(hub)
    status = await hub.api("POST", "/location/UTR/evse/UTR-1/status", json={"status": "AVAILABLE"})
    assert status.status_code == 200
    again = await register(hub)
    assert [e["status"] for e in again["evses"]] == ["AVAILABLE", "UNKNOWN"]  # the CSMS does not know statuses
    assert await revision(sessions) == 2  # the status change only
    renamed = await register(hub, name="Utrecht Jaarbeurs")
    assert renamed["name"] == "Utrecht Jaarbeurs"
    assert await revision(sessions) == 3
    assert renamed["evses"][1] == first["evses"][1]  # unchanged EVSEs keep their last_updated


async def test_register_rejects_what_is_not_ours_or_not_ocpi(hub_factory: HubFactory) -> None:
    hub = await hub_factory(parties=(Party("NL", "OHB", "Test CPO"), Party("DE", "ALL", "Test CPO Germany")))
    await register(hub)
    message = error(await hub.api("POST", "/location/UTR", json=body(country_code="DE", party_id="ALL")), 409)
    assert "belongs to NL/OHB" in message
    message = error(await hub.api("POST", "/location/X", json=body(party_id="EMP")), 400)
    assert message.startswith("$.party_id: ")
    message = error(
        await hub.api("POST", "/location/X", json=body(coordinates={"latitude": "0", "longitude": "0"})), 400
    )
    assert message.startswith("$.coordinates.latitude: ")
    unknown_standard = body()
    unknown_standard["evses"][0]["connectors"][0]["standard"] = "UNKNOWN"
    message = error(await hub.api("POST", "/location/X", json=unknown_standard), 400)
    assert message.startswith("$.evses[0].connectors[0].standard: 'UNKNOWN'")
    without_city = body()
    del without_city["city"]
    assert error(await hub.api("POST", "/location/X", json=without_city), 400) == "city: is required"
    too_long = "x" * 37
    assert "locationId" in error(await hub.api("POST", f"/location/{too_long}", json=body()), 400)
    assert error(await hub.api("POST", "/location/X", content=b"{"), 400)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("Occupied", "CHARGING"), ("unavailable", "INOPERATIVE"), ("OUTOFORDER", "OUTOFORDER"), ("removed", "REMOVED")],
)
async def test_status_accepts_ocpi_and_evsevo_values(hub: Hub, sent: str, stored: str) -> None:
    await register(hub)
    response = await hub.api("POST", "/location/utr/evse/utr-2/status", json={"status": sent})
    assert response.status_code == 200, response.text
    evse = response.json()
    assert (evse["uid"], evse["status"]) == ("UTR-2", stored)
    msgspec.convert(evse, ocpi.EVSE)


async def test_status_change_is_stamped_and_the_same_status_writes_nothing(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await register(hub)
    before = utc_now()
    changed = (await hub.api("POST", "/location/UTR/evse/UTR-1/status", json={"status": "AVAILABLE"})).json()
    assert datetime.fromisoformat(changed["last_updated"]) >= before
    same = (await hub.api("POST", "/location/UTR/evse/UTR-1/status", json={"status": "Available"})).json()
    assert same == changed
    assert await revision(sessions) == 2


async def test_status_errors(hub: Hub) -> None:
    await register(hub)
    message = error(await hub.api("POST", "/location/UTR/evse/UTR-1/status", json={"status": "BROKEN"}), 400)
    assert message.startswith("status: 'BROKEN' is not one of AVAILABLE, BLOCKED, CHARGING")
    assert "Occupied" in message
    assert error(await hub.api("POST", "/location/UTR/evse/UTR-1/status", json={}), 400) == "status: is required"
    assert "no location NOPE" in error(
        await hub.api("POST", "/location/NOPE/evse/UTR-1/status", json={"status": "AVAILABLE"}), 404
    )
    assert "has no EVSE UTR-9" in error(
        await hub.api("POST", "/location/UTR/evse/UTR-9/status", json={"status": "AVAILABLE"}), 404
    )
