"""setToken, listTokens and lookupToken (seed 002, `/api/v0/token`), and their sharing of the store with the OCPI
Tokens Receiver."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Hub
from tests.test_ocpi_tokens import APP_USER, BASE, EMSP_TOKEN, RFID, add_partner, count, put
from tests.test_transport import UTC_Z

# The seed's example body.
SEED_TOKEN: dict[str, Any] = {
    "countryCode": "st",
    "partyId": "str",
    "type": "AD_HOC_USER",
    "uid": "string",
    "contractId": "string",
    "visualNumber": "string",
    "issuer": "string",
    "groupId": "string",
    "valid": True,
    "languageCode": "st",
    "cacheMode": "ALWAYS",
    "lastUpdated": "2019-08-24T14:15:22Z",
}


def token(uid: str, **changes: Any) -> dict[str, Any]:
    return {**SEED_TOKEN, "uid": uid, **changes}


@pytest.fixture
async def emsp_partner(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A registered eMSP with the role DE/EMP, presenting EMSP_TOKEN."""
    await add_partner(sessions)


async def set_token(hub: Hub, body: dict[str, Any]) -> None:
    response = await hub.api("POST", "/token", json=body)
    assert response.status_code == 201, response.text


async def test_set_token_then_lookup_it(hub: Hub) -> None:
    response = await hub.api("POST", "/token", json=SEED_TOKEN)
    assert response.status_code == 201
    assert response.content == b""
    response = await hub.api("GET", "/token/string")
    assert response.status_code == 200
    body = response.json()
    # Country code and party id are stored upper-case; lastUpdated is ours, not the one sent.
    assert body == {**SEED_TOKEN, "countryCode": "ST", "partyId": "STR", "lastUpdated": body["lastUpdated"]}
    assert UTC_Z.match(body["lastUpdated"])
    assert body["lastUpdated"] != SEED_TOKEN["lastUpdated"]


async def test_optional_fields_may_be_left_out_and_last_updated_is_always_there(hub: Hub) -> None:
    minimal = {
        k: v for k, v in SEED_TOKEN.items() if k not in ("visualNumber", "groupId", "languageCode", "lastUpdated")
    }
    await set_token(hub, minimal)
    body = (await hub.api("GET", "/token/string")).json()
    assert set(body) == {*minimal, "lastUpdated"}


async def test_set_token_again_updates_it_in_place(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    await set_token(hub, token("a"))
    await set_token(hub, token("b"))
    await set_token(hub, token("a", countryCode="ST", valid=False, cacheMode="NEVER"))
    assert await count(sessions) == 2
    listed = (await hub.api("GET", "/token")).json()
    assert [(t["uid"], t["valid"], t["cacheMode"]) for t in listed] == [("a", False, "NEVER"), ("b", True, "ALWAYS")]


async def test_list_pages_in_a_stable_order(hub: Hub) -> None:
    uids = [f"uid-{n}" for n in (3, 1, 2, 10)]
    for uid in uids:
        await set_token(hub, token(uid))
    assert [t["uid"] for t in (await hub.api("GET", "/token")).json()] == uids
    response = await hub.api("GET", "/token", params={"offset": 1, "limit": 2})
    assert [t["uid"] for t in response.json()] == uids[1:3]
    assert (await hub.api("GET", "/token", params={"offset": 4})).json() == []
    assert len((await hub.api("GET", "/token", params={"limit": 100})).json()) == 4


async def test_list_default_page_is_20(hub: Hub) -> None:
    for n in range(21):
        await set_token(hub, token(f"uid-{n:02}"))
    assert len((await hub.api("GET", "/token")).json()) == 20


async def test_bad_paging_is_400_naming_the_parameter(hub: Hub) -> None:
    for params, field in [
        ({"offset": -1}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "x"}, "limit"),
    ]:
        response = await hub.api("GET", "/token", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"].startswith(f"{field}:")


async def test_lookup_of_an_unknown_uid_is_404(hub: Hub) -> None:
    await set_token(hub, token("known"))
    for uid in ("unknown", "KNOWN"):
        response = await hub.api("GET", f"/token/{uid}")
        assert response.status_code == 404
        assert response.json() == {"status": "Not Found", "error": f"no token with uid {uid}"}
    response = await hub.api("GET", f"/token/{'u' * 37}")
    assert response.status_code == 400
    assert response.json()["error"].startswith("tokenUid:")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"countryCode": "DEU"}, "countryCode"),
        ({"countryCode": "D1"}, "countryCode"),
        ({"partyId": "AB"}, "partyId"),
        ({"type": "CARD"}, "type"),
        ({"cacheMode": "SOMETIMES"}, "cacheMode"),
        ({"uid": "u" * 37}, "uid"),
        ({"uid": ""}, "uid"),
        ({"contractId": "c" * 37}, "contractId"),
        ({"visualNumber": "v" * 65}, "visualNumber"),
        ({"issuer": "i" * 65}, "issuer"),
        ({"groupId": "g" * 37}, "groupId"),
        ({"languageCode": "eng"}, "languageCode"),
        ({"valid": "maybe"}, "valid"),
        ({"issuer": None}, "issuer"),
        ({"lastUpdated": "yesterday"}, "lastUpdated"),
    ],
)
async def test_bad_token_is_400_naming_the_field_and_stores_nothing(
    hub: Hub, sessions: async_sessionmaker[AsyncSession], changes: dict[str, Any], field: str
) -> None:
    response = await hub.api("POST", "/token", json={**SEED_TOKEN, **changes})
    assert response.status_code == 400
    assert response.json()["status"] == "Bad Request"
    assert response.json()["error"].startswith(f"{field}:"), response.json()
    assert await count(sessions) == 0


async def test_missing_fields_and_non_json_are_400(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    for field in ("countryCode", "partyId", "type", "uid", "contractId", "issuer", "valid", "cacheMode"):
        body = {k: v for k, v in SEED_TOKEN.items() if k != field}
        response = await hub.api("POST", "/token", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == f"{field}: is required"
    response = await hub.api("POST", "/token", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert await count(sessions) == 0


@pytest.mark.usefixtures("emsp_partner")
async def test_tokens_pushed_by_an_emsp_are_seen_internally(hub: Hub) -> None:
    await put(hub, RFID)
    await put(hub, APP_USER)
    expected = {
        "countryCode": "DE",
        "partyId": "EMP",
        "type": "RFID",
        "uid": RFID["uid"],
        "contractId": RFID["contract_id"],
        "visualNumber": RFID["visual_number"],
        "issuer": RFID["issuer"],
        "groupId": RFID["group_id"],
        "valid": True,
        "languageCode": "it",
        "cacheMode": "ALLOWED",
        "lastUpdated": RFID["last_updated"],
    }
    assert (await hub.api("GET", f"/token/{RFID['uid']}")).json() == expected
    assert [t["uid"] for t in (await hub.api("GET", "/token")).json()] == [RFID["uid"], APP_USER["uid"]]


@pytest.mark.usefixtures("emsp_partner")
async def test_set_token_replaces_an_emsp_token_keeping_what_the_seed_cannot_say(hub: Hub) -> None:
    await put(hub, RFID)
    internal = token(RFID["uid"], countryCode="de", partyId="emp", type="RFID", valid=False, cacheMode="NEVER")
    await set_token(hub, internal)
    data = (await hub.ocpi("GET", f"{BASE}/{RFID['uid']}", EMSP_TOKEN)).json()["data"]
    assert data["valid"] is False
    assert data["whitelist"] == "NEVER"
    assert data["language"] == "st"
    assert data["default_profile_type"] == RFID["default_profile_type"]
    assert data["energy_contract"] == RFID["energy_contract"]
    assert data["last_updated"] != RFID["last_updated"]


@pytest.mark.usefixtures("emsp_partner")
async def test_lookup_of_a_shared_uid_returns_the_most_recently_updated(hub: Hub) -> None:
    uid = "shared-uid"
    await put(hub, {**RFID, "uid": uid, "last_updated": "2020-01-01T00:00:00Z"})
    await put(hub, {**APP_USER, "uid": uid, "last_updated": "2021-01-01T00:00:00Z"})
    await put(
        hub, {**RFID, "uid": uid, "type": "OTHER", "last_updated": "2019-01-01T00:00:00Z"}, f"{BASE}/{uid}?type=OTHER"
    )
    assert (await hub.api("GET", f"/token/{uid}")).json()["type"] == "APP_USER"
    await set_token(hub, token(uid))  # updated now, by another party
    assert (await hub.api("GET", f"/token/{uid}")).json()["countryCode"] == "ST"
