"""EvseVO ingestion (`PUT /api/v0/evsevo/locations/{locationId}`, `POST /api/v0/evsevo/locations`): per-record
reports, rejected records change nothing, and the sample file of examples/ loads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db.locations import LocationRow
from ocpi_hub.settings import Party
from tests.conftest import Hub, HubFactory

SAMPLE = Path(__file__).parent.parent / "examples" / "evsevo-locations.json"

# A location record of the EvseVO family, as real data has it.
RECORD: dict[str, Any] = {
    "uid": 7001,
    "externalId": "OHB-UTR-7001",
    "coordinates": {"latitude": 52.089386, "longitude": 5.109612},
    "operatorName": "ocpi-hub CPO",
    "address": {"streetAndNumber": "Croeselaan 38", "postalCode": "3521 CB", "city": "Utrecht", "country": "NLD"},
    "updated": "2024-03-30T06:40:00Z",
    "locationType": "Unknown",  # not mapped: never validated
    "somethingNew": {"the": "source may add members"},
    "evses": [
        {
            "uid": 8001,
            "evseId": "NL*OHB*E8001",
            "status": "Occupied",
            "authorizationMethods": ["RFIDToken"],
            "updated": "2024-03-30T06:40:00Z",
            "connectors": [
                {
                    "uid": 9001,
                    "connectorType": "Type2",
                    "electricalProperties": {"powerType": "AC3Phase", "voltage": 230, "amperage": 32},
                }
            ],
        }
    ],
}


def record(**changes: Any) -> dict[str, Any]:
    return copy.deepcopy(RECORD) | changes


def with_connector_type(value: str) -> dict[str, Any]:
    changed = record()
    changed["evses"][0]["connectors"][0]["connectorType"] = value
    return changed


async def count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(LocationRow))).scalar_one()


async def stored_location(hub: Hub, location_id: str) -> dict[str, Any]:
    """The Location as the OCPI Sender serves it to a registered partner (registered on first use)."""
    await hub.api("POST", "/register", json={"token": "reader", "status": "REGISTERED"})  # 409 after the first
    response = await hub.ocpi("GET", f"/ocpi/2.2.1/locations/{location_id}", "reader")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_put_creates_then_updates_then_finds_nothing_to_change(hub: Hub) -> None:
    created = await hub.api("PUT", "/evsevo/locations/7001", json=record())
    assert created.status_code == 201, created.text
    assert created.json() == {"id": "7001", "outcome": "created", "errors": [], "warnings": []}
    location = await stored_location(hub, "7001")
    assert (location["country_code"], location["party_id"]) == ("NL", "OHB")  # our default party
    assert location["time_zone"] == "Europe/Amsterdam"
    assert [(e["uid"], e["status"]) for e in location["evses"]] == [("8001", "CHARGING")]

    unchanged = await hub.api("PUT", "/evsevo/locations/7001", json=record(somethingNew=None))
    assert (unchanged.status_code, unchanged.json()["outcome"]) == (200, "unchanged")
    assert await stored_location(hub, "7001") == location

    moved = await hub.api("PUT", "/evsevo/locations/7001", json=record(operatorName="Rheinparken GmbH"))
    assert (moved.status_code, moved.json()["outcome"]) == (200, "updated")
    assert (await stored_location(hub, "7001"))["operator"] == {"name": "Rheinparken GmbH"}


async def test_a_rejected_record_names_path_value_and_rule_and_changes_nothing(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await hub.api("PUT", "/evsevo/locations/7001", json=with_connector_type("Avcon"))
    assert response.status_code == 400
    assert response.json() == {
        "id": "7001",
        "outcome": "rejected",
        "errors": [
            {
                "path": "$.evses[0].connectors[0].connectorType",
                "value": "Avcon",
                "rule": "has no OCPI 2.2.1 ConnectorType",
            }
        ],
        "warnings": [],
    }
    assert await count(sessions) == 0
    assert (await hub.api("PUT", "/evsevo/locations/7001", json=record())).status_code == 201
    assert (await hub.api("PUT", "/evsevo/locations/7001", json=with_connector_type("Avcon"))).status_code == 400
    assert (await stored_location(hub, "7001"))["evses"][0]["connectors"][0]["standard"] == "IEC_62196_T2"


async def test_a_record_of_the_wrong_shape_is_rejected_where_it_is_wrong(hub: Hub) -> None:
    wrong = record()
    wrong["evses"][0]["connectors"] = "Type2"
    response = await hub.api("PUT", "/evsevo/locations/7001", json=wrong)
    assert response.status_code == 400
    [problem] = response.json()["errors"]
    assert problem == {
        "path": "$.evses[0].connectors",
        "value": "Type2",
        "rule": "Expected `array | null`, got `str`",
    }
    response = await hub.api("PUT", "/evsevo/locations/7001", json=[1])
    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "$", "value": [1], "rule": "Expected `object`, got `array`"}]
    assert response.json()["id"] == "7001"


async def test_the_record_must_be_the_location_of_the_url(hub: Hub) -> None:
    response = await hub.api("PUT", "/evsevo/locations/7002", json=record())
    assert response.status_code == 400
    [problem] = response.json()["errors"]
    assert (problem["path"], problem["value"]) == ("$.uid", "7001")
    assert "7002" in problem["rule"]


async def test_lenient_mode_leaves_out_what_cannot_be_converted_with_a_warning(hub: Hub) -> None:
    lenient = with_connector_type("Avcon")
    lenient["evses"].append(copy.deepcopy(RECORD["evses"][0]) | {"uid": 8002})
    response = await hub.api("PUT", "/evsevo/locations/7001", params={"mode": "lenient"}, json=lenient)
    assert response.status_code == 201, response.text
    assert [w.split(":")[0] for w in response.json()["warnings"]] == [
        "$.evses[0].connectors[0].connectorType",  # the connector is left out ...
        "$.evses[0].connectors",  # ... and so is its EVSE, left without any
    ]
    assert [e["uid"] for e in (await stored_location(hub, "7001"))["evses"]] == ["8002"]
    assert (await hub.api("PUT", "/evsevo/locations/7001", params={"mode": "sloppy"}, json=lenient)).status_code == 400


async def test_the_owner_comes_from_the_record_and_must_be_ours(hub_factory: HubFactory) -> None:
    hub = await hub_factory(parties=(Party("NL", "OHB", "Test CPO"), Party("DE", "ALL", "Test CPO Germany")))
    german = record(countryCode="de", partyId="all")
    assert (await hub.api("PUT", "/evsevo/locations/7001", json=german)).status_code == 201
    location = await stored_location(hub, "7001")
    assert (location["country_code"], location["party_id"]) == ("DE", "ALL")

    response = await hub.api("PUT", "/evsevo/locations/7002", json=record(uid=7002, countryCode="BE", partyId="BEC"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "$.partyId"
    assert response.json()["errors"][0]["rule"] == "is not one of our CPO parties"

    # The id is DE/ALL's: the same location under our default party (named by its EVSE id) is refused.
    response = await hub.api("PUT", "/evsevo/locations/7001", json=record())
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "$", "value": "NL/OHB", "rule": "location 7001 belongs to DE/ALL: a location id belongs to one party"}
    ]


async def test_post_reports_each_record_and_a_bad_one_does_not_stop_the_others(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    records = [record(), with_connector_type("Unspecified") | {"uid": 7002}, "not a record", record(uid=7003)]
    response = await hub.api("POST", "/evsevo/locations", json=records)
    assert response.status_code == 200, response.text
    assert [(r["id"], r["outcome"], [e["path"] for e in r["errors"]]) for r in response.json()] == [
        ("7001", "created", []),
        ("7002", "rejected", ["$.evses[0].connectors[0].connectorType"]),
        (None, "rejected", ["$"]),
        ("7003", "created", []),
    ]
    assert await count(sessions) == 2
    again = await hub.api("POST", "/evsevo/locations", json=[record()])
    assert [r["outcome"] for r in again.json()] == ["unchanged"]


async def test_post_needs_a_json_array(hub: Hub) -> None:
    for body in (record(), "[1,"):
        response = await hub.api("POST", "/evsevo/locations", json=body)
        assert response.status_code == 400
        assert response.json()["status"] == "Bad Request"


async def test_the_sample_file_loads_with_one_command(hub: Hub) -> None:
    """examples/evsevo-locations.json, as the README's curl command sends it."""
    response = await hub.api("POST", "/evsevo/locations", content=SAMPLE.read_bytes())
    assert response.status_code == 200, response.text
    reports = response.json()
    assert len(reports) == len(json.loads(SAMPLE.read_bytes())) >= 3
    assert {r["outcome"] for r in reports} == {"created"}
    assert all(r["errors"] == [] for r in reports)
    cologne = await stored_location(hub, "100234")
    standards = {c["standard"] for e in cologne["evses"] for c in e["connectors"]}
    assert standards == {"IEC_62196_T2", "DOMESTIC_F", "IEC_62196_T2_COMBO"}
    rotterdam = await stored_location(hub, "100233")
    assert [e["status"] for e in rotterdam["evses"]] == ["AVAILABLE", "REMOVED"]


def with_tariff(**prices: Any) -> dict[str, Any]:
    changed = record()
    changed["evses"][0]["connectors"][0]["tariff"] = {"currency": "EUR", "updatedBy": "Feed"} | prices
    return changed


async def test_a_connector_with_prices_gets_a_stored_tariff(hub: Hub) -> None:
    created = await hub.api("PUT", "/evsevo/locations/7001", json=with_tariff(startFee=1.0, perKWh=0.35))
    assert created.status_code == 201, created.text
    [tariff] = (await hub.api("GET", "/tariffs")).json()
    assert tariff["id"].startswith("EVSEVO-")
    assert (tariff["country_code"], tariff["party_id"], tariff["currency"]) == ("NL", "OHB", "EUR")
    components = [(c["type"], c["price"]) for c in tariff["elements"][0]["price_components"]]
    assert sorted(components) == [("ENERGY", 0.35), ("FLAT", 1.0)]
    location = await stored_location(hub, "7001")
    assert location["evses"][0]["connectors"][0]["tariff_ids"] == [tariff["id"]]
    again = await hub.api("PUT", "/evsevo/locations/7001", json=with_tariff(startFee=1.0, perKWh=0.35))
    assert again.json()["outcome"] == "unchanged"
    assert len((await hub.api("GET", "/tariffs")).json()) == 1


async def test_bad_prices_reject_the_record_or_are_left_out_when_lenient(hub: Hub) -> None:
    rejected = await hub.api("PUT", "/evsevo/locations/7001", json=with_tariff(currency="EURO", perKWh=0.35))
    assert rejected.status_code == 400
    [problem] = rejected.json()["errors"]
    assert problem["path"] == "$.evses[0].connectors[0].tariff.currency"
    lenient = await hub.api(
        "PUT", "/evsevo/locations/7001", params={"mode": "lenient"}, json=with_tariff(currency="EURO", perKWh=0.35)
    )
    assert lenient.status_code == 201, lenient.text
    assert "tariff left out" in lenient.json()["warnings"][0]
    assert (await hub.api("GET", "/tariffs")).json() == []
    assert "tariff_ids" not in (await stored_location(hub, "7001"))["evses"][0]["connectors"][0]
