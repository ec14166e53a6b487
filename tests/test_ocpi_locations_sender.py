"""Locations module, Sender interface (OCPI 2.2.1 §8.2.1, docs/ocpi.md §5.2, §1.7, docs/ocpi.md §10): the paginated list
and the object GETs, on 2.2.1 and 2.2, over real HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.credentials_token import hash_token
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.db.tariffs import Origin
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi import tariffs as ocpi_tariffs
from ocpi_hub.settings import Party
from ocpi_hub.stores import locations as store
from ocpi_hub.stores import tariffs
from tests.conftest import Hub, HubFactory
from tests.test_locations_store import T1, connector, evse, location

EMSP_TOKEN = "emsp-token-c"
ROLE = {"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "X"}}
LIST = "/ocpi/2.2.1/locations"
EXAMPLES = Path(__file__).parent / "data" / "ocpi-examples" / "2.2.1"
TWO_PARTIES = (Party("NL", "OHB", "Test CPO"), Party("DE", "ALL", "Test CPO Germany"))


async def add_emsp(
    sessions: async_sessionmaker[AsyncSession], token: str = EMSP_TOKEN, role: dict[str, Any] = ROLE
) -> None:
    now = datetime.now(UTC)
    async with sessions() as session:
        session.add(
            Partner(
                state=PartnerState.REGISTERED,
                initiator=Initiator.PARTNER,
                token_hash=hash_token(token),
                roles=[role],
                endpoints=[],
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()


@pytest.fixture
async def emsp(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A registered eMSP DE/EMP presenting EMSP_TOKEN."""
    await add_emsp(sessions)


async def add(sessions: async_sessionmaker[AsyncSession], *locations: ocpi.Location, now: datetime = T1) -> None:
    async with sessions() as session:
        for loc in locations:
            await store.save_location(session, loc, now=now)
        await session.commit()


async def add_tariffs(sessions: async_sessionmaker[AsyncSession], location: ocpi.Location) -> None:
    """A Tariff of the Location's party for every id its Connectors name."""
    named = {t for e in location.evses or () for c in e.connectors for t in c.tariff_ids or ()}
    async with sessions() as session:
        for tariff_id in sorted(named):
            tariff = ocpi_tariffs.Tariff(
                country_code=location.country_code,
                party_id=location.party_id,
                id=tariff_id,
                currency="EUR",
                elements=[ocpi_tariffs.TariffElement(price_components=[FREE])],
                last_updated=T1,
            )
            await tariffs.put_tariff(session, tariff, now=T1, origin=Origin.API)
        await session.commit()


FREE = ocpi_tariffs.PriceComponent(type=ocpi_tariffs.TariffDimensionType.FLAT, price=0, step_size=1)


async def get(hub: Hub, path: str, **kwargs: Any) -> httpx.Response:
    return await hub.ocpi("GET", path, EMSP_TOKEN, **kwargs)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.json()["status_code"] == 1000, response.text
    return [loc["id"] for loc in response.json()["data"]]


def invalid(response: httpx.Response, name: str) -> None:
    assert response.status_code == 200
    body = response.json()
    assert body["status_code"] == 2001
    assert body["status_message"].startswith(f"{name}: ")


async def test_only_registered_partners_get_locations(
    hub: Hub, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add(sessions, location(evse("E1")))
    assert (await hub.api("POST", "/register", json={"token": "token-a"})).status_code == 201
    for path in (LIST, f"{LIST}/LOC1", f"{LIST}/LOC1/E1", f"{LIST}/LOC1/E1/1"):
        for token in (None, "token-a", "unknown"):
            response = await hub.ocpi("GET", path, token)
            assert response.status_code == 401, (path, token)
            assert response.json()["status_code"] == 2000
        assert (await get(hub, path)).status_code == 200, path


async def test_the_list_in_creation_order_with_headers(
    hub: Hub, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add(sessions, location(id="B"), location(id="A"), location(id="C"))
    await add(sessions, location(id="A", name="changed later"), now=T1 + timedelta(hours=1))
    response = await get(hub, LIST)
    assert ids(response) == ["B", "A", "C"]  # creation order: an update does not move a location
    assert response.headers["x-total-count"] == "3"
    assert response.headers["x-limit"] == "100"
    assert "link" not in response.headers
    # No routing headers in the request: from us (our default party) to the caller's role.
    assert response.headers["ocpi-from-country-code"] == "NL"
    assert response.headers["ocpi-from-party-id"] == "OHB"
    assert response.headers["ocpi-to-country-code"] == "DE"
    assert response.headers["ocpi-to-party-id"] == "EMP"


async def test_pages_are_capped_and_linked_from_the_public_url_with_the_filters(
    hub_factory: HubFactory, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(page_limit=2, public_url="https://ocpi.example.com")
    await add(sessions, *(location(id=f"L{n}") for n in range(5)))
    query = {"date_from": "2026-01-01T00:00:00", "date_to": "2027-01-01T00:00:00Z", "limit": "10"}
    response = await get(hub, LIST, params=query)
    assert ids(response) == ["L0", "L1"]
    assert response.headers["x-limit"] == "2"
    assert response.headers["x-total-count"] == "5"
    assert response.headers["link"] == (
        "<https://ocpi.example.com/ocpi/2.2.1/locations?date_from=2026-01-01T00%3A00%3A00"
        '&date_to=2027-01-01T00%3A00%3A00Z&offset=2&limit=2>; rel="next"'
    )
    crawled = ids(response)
    while "link" in response.headers:
        url = httpx.URL(response.headers["link"].removeprefix("<").split(">")[0])
        response = await get(hub, LIST, params=url.params)
        crawled += ids(response)
    assert crawled == ["L0", "L1", "L2", "L3", "L4"]
    assert response.headers["x-total-count"] == "5"


async def test_deep_pages_of_all_and_of_one_party(
    hub_factory: HubFactory, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(parties=TWO_PARTIES)
    germans = [location(id=f"DE{n}", country_code="DE", party_id="ALL") for n in range(30)]
    dutch = [location(id=f"NL{n}") for n in range(30)]
    await add(sessions, *(loc for pair in zip(dutch, germans, strict=True) for loc in pair))
    expected = ["NL27", "DE27", "NL28", "DE28", "NL29", "DE29"]
    assert ids(await get(hub, LIST, params={"offset": 54, "limit": 10})) == expected
    to_germany = {"OCPI-to-country-code": "DE", "OCPI-to-party-id": "ALL"}
    response = await get(hub, LIST, params={"offset": 27, "limit": 10}, headers=to_germany)
    assert ids(response) == ["DE27", "DE28", "DE29"]
    assert response.headers["x-total-count"] == "30"
    # The same narrowing through the date-filtered query.
    response = await get(hub, LIST, params={"offset": 27, "date_from": "2000-01-01T00:00:00Z"}, headers=to_germany)
    assert ids(response) == ["DE27", "DE28", "DE29"]
    assert response.headers["x-total-count"] == "30"


async def test_date_from_is_inclusive_and_date_to_exclusive(
    hub: Hub, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for n in range(4):
        await add(sessions, location(id=f"L{n}"), now=T1 + timedelta(minutes=n))
    at = [(T1 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S") for n in range(4)]
    assert ids(await get(hub, LIST, params={"date_from": at[1]})) == ["L1", "L2", "L3"]
    assert ids(await get(hub, LIST, params={"date_to": at[2] + "Z"})) == ["L0", "L1"]
    response = await get(hub, LIST, params={"date_from": at[1] + ".5Z", "date_to": at[3]})
    assert ids(response) == ["L2"]
    assert response.headers["x-total-count"] == "1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("offset", "-1"),
        ("offset", "abc"),
        ("offset", "1000000001"),
        ("limit", "1.5"),
        ("limit", " 5"),
        ("date_from", "yesterday"),
        ("date_to", "2019-01-28"),
    ],
)
async def test_bad_parameters_are_2001_naming_them(hub: Hub, emsp: None, name: str, value: str) -> None:
    invalid(await get(hub, LIST, params={name: value}), name)


async def test_limit_zero_counts_and_an_offset_past_the_end_is_empty(
    hub: Hub, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add(sessions, location(id="A"), location(id="B"))
    for params in ({"limit": "0"}, {"offset": "2"}, {"offset": "7", "date_from": "2000-01-01T00:00:00Z"}):
        response = await get(hub, LIST, params=params)
        assert ids(response) == []
        assert response.headers["x-total-count"] == "2"
        assert "link" not in response.headers


async def test_a_crawl_while_locations_change_neither_skips_nor_repeats(
    hub_factory: HubFactory, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(page_limit=2)
    await add(sessions, *(location(evse("E1"), id=f"L{n}") for n in range(5)))
    first = await get(hub, LIST)
    # Between two pages: an early location changes, a new one appears, and the change is seen at once.
    status = await hub.api("POST", "/location/L0/evse/E1/status", json={"status": "CHARGING"})
    assert status.status_code == 200, status.text
    await add(sessions, location(id="L5"))
    crawled = ids(first)
    response = first
    while "link" in response.headers:
        url = httpx.URL(response.headers["link"].removeprefix("<").split(">")[0])
        response = await get(hub, LIST, params=url.params)
        crawled += ids(response)
    assert crawled == ["L0", "L1", "L2", "L3", "L4", "L5"]
    assert (await get(hub, f"{LIST}/L0/E1")).json()["data"]["status"] == "CHARGING"


async def test_one_location_evse_or_connector(hub: Hub, emsp: None, sessions: async_sessionmaker[AsyncSession]) -> None:
    await add(sessions, location(evse("E1", connector("1"), connector("2", max_amperage=16)), id="Loc-1"))
    for path in ("/loc-1", "/LOC-1"):
        data = (await get(hub, LIST + path)).json()["data"]
        assert data["id"] == "Loc-1"
        assert [e["uid"] for e in data["evses"]] == ["E1"]
    data = (await get(hub, f"{LIST}/loc-1/e1")).json()["data"]
    assert (data["uid"], len(data["connectors"])) == ("E1", 2)
    data = (await get(hub, f"{LIST}/loc-1/e1/2")).json()["data"]
    assert data == {
        "id": "2",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "last_updated": "2026-11-21T10:00:00Z",
    }
    for path in ("/nope", "/Loc-1/E9", "/Loc-1/E1/9"):
        response = await get(hub, LIST + path)
        assert response.status_code == 404, path
        assert response.json()["status_code"] == 2003
        assert "unknown" in response.json()["status_message"]


async def test_ocpi_to_narrows_to_one_of_our_parties(
    hub_factory: HubFactory, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(parties=TWO_PARTIES)
    await add(sessions, location(id="NL1"), location(id="DE1", country_code="DE", party_id="ALL"))
    routing = {
        "OCPI-from-country-code": "DE",
        "OCPI-from-party-id": "EMP",
        "OCPI-to-country-code": "de",  # CiString
        "OCPI-to-party-id": "all",
    }
    response = await get(hub, LIST, headers=routing)
    assert ids(response) == ["DE1"]
    assert response.headers["x-total-count"] == "1"
    assert response.headers["ocpi-from-country-code"] == "de"  # the request's, swapped
    assert response.headers["ocpi-from-party-id"] == "all"
    assert response.headers["ocpi-to-party-id"] == "EMP"
    assert (await get(hub, f"{LIST}/DE1", headers=routing)).status_code == 200
    assert (await get(hub, f"{LIST}/NL1", headers=routing)).status_code == 404
    assert ids(await get(hub, LIST)) == ["NL1", "DE1"]

    response = await get(hub, LIST, headers={"OCPI-to-country-code": "BE", "OCPI-to-party-id": "BEC"})
    assert response.status_code == 404
    assert response.json()["status_code"] == 2000
    assert "BE/BEC" in response.json()["status_message"]
    invalid(await get(hub, LIST, headers={"OCPI-to-party-id": "ALL"}), "OCPI-to-country-code")


async def test_2_2_peers_never_see_what_2_2_does_not_define(
    hub: Hub, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    nema = connector("2", standard=ocpi.ConnectorType.NEMA_5_20, power_type=ocpi.PowerType.AC_1_PHASE)
    await add(sessions, location(evse("E1", connector("1"), nema), evse("E2", nema)))
    [seen_by_2_2] = (await get(hub, "/ocpi/2.2/locations")).json()["data"]
    assert [(e["uid"], [c["id"] for c in e["connectors"]]) for e in seen_by_2_2["evses"]] == [("E1", ["1"])]
    assert (await get(hub, "/ocpi/2.2/locations/LOC1/E1/2")).status_code == 404
    assert (await get(hub, "/ocpi/2.2/locations/LOC1/E2")).status_code == 404
    [seen_by_2_2_1] = (await get(hub, LIST)).json()["data"]
    assert [e["uid"] for e in seen_by_2_2_1["evses"]] == ["E1", "E2"]
    assert (await get(hub, f"{LIST}/LOC1/E2/2")).json()["data"]["standard"] == "NEMA_5_20"


FULL_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("location_example*.json"))


async def test_the_official_examples_are_served_as_valid_ocpi(
    hub: Hub, emsp: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Every example stored and served back: the same object but for last_updated (ours), and each served object
    decodes against the spec's rules and re-encodes to exactly what was served."""
    originals = []
    for n, name in enumerate(FULL_EXAMPLES):
        example = json.loads((EXAMPLES / name).read_bytes()) | {"id": f"EX{n}"}  # two examples share an id
        originals.append(example)
        location = msgspec.convert(example, ocpi.Location)
        await add_tariffs(sessions, location)  # the Tariffs its Connectors name must be stored first
        await add(sessions, location)
    for version in ("2.2.1", "2.2"):
        served = (await get(hub, f"/ocpi/{version}/locations")).json()["data"]
        assert len(served) == len(FULL_EXAMPLES)
        singles = [(await get(hub, f"/ocpi/{version}/locations/{s['id']}")).json()["data"] for s in served]
        assert singles == served
        for obj, original in zip(served, originals, strict=True):
            decoded = msgspec.convert(obj, ocpi.Location)
            assert json.loads(ocpi.render(decoded)) == obj
            assert without_times(obj) == without_times(original)


def without_times(value: Any) -> Any:
    """The JSON without last_updated members (we stamp them) and with unset members removed."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k != "last_updated" and v not in (None, [])}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value
