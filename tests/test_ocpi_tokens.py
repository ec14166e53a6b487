"""Tokens module, Receiver interface (docs/ocpi.md §6.3, docs/ocpi.md §10): GET, PUT and PATCH of
`/ocpi/{version}/tokens/{country_code}/{party_id}/{token_uid}[?type=]`, on 2.2.1 and 2.2."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.credentials_token import hash_token
from ocpi_hub.db import tokens as tables
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from tests.conftest import Hub

EMSP_TOKEN = "emsp-token-c"
ROLE = {"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "X"}}
BASE = "/ocpi/2.2.1/tokens/DE/EMP"
# The spec's token_example_2_full_rfid.json, owned by the test eMSP instead of DE/TNM.
RFID: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "EMP",
    "uid": "12345678905880",
    "type": "RFID",
    "contract_id": "DE8ACC12E46L89",
    "visual_number": "DF000-2001-8999-1",
    "issuer": "TheNewMotion",
    "group_id": "DF000-2001-8999",
    "valid": True,
    "whitelist": "ALLOWED",
    "language": "it",
    "default_profile_type": "GREEN",
    "energy_contract": {"supplier_name": "Greenpeace Energy eG", "contract_id": "0123456789"},
    "last_updated": "2018-12-10T17:25:10Z",
}
# The spec's token_example_1_app_user.json, likewise.
APP_USER: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "EMP",
    "uid": "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1",
    "type": "APP_USER",
    "contract_id": "DE8ACC12E46L89",
    "issuer": "TheNewMotion",
    "valid": True,
    "whitelist": "ALLOWED",
    "last_updated": "2018-12-10T17:16:15Z",
}
PATCH = {"valid": False, "last_updated": "2019-06-19T02:11:11Z"}  # the spec's token_patch_example.json


async def add_partner(
    sessions: async_sessionmaker[AsyncSession],
    token: str = EMSP_TOKEN,
    *,
    roles: list[dict[str, Any]] | None = None,
    state: PartnerState = PartnerState.REGISTERED,
) -> None:
    now = datetime.now(UTC)
    async with sessions() as session:
        session.add(
            Partner(
                state=state,
                initiator=Initiator.PARTNER,
                token_hash=hash_token(token),
                roles=[ROLE] if roles is None else roles,
                endpoints=[],
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()


@pytest.fixture
async def emsp_partner(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A registered eMSP with the role DE/EMP, presenting EMSP_TOKEN."""
    await add_partner(sessions)


async def count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return (await session.scalar(select(func.count()).select_from(tables.Token))) or 0


async def put(hub: Hub, body: dict[str, Any], path: str | None = None, version: str = "2.2.1") -> Any:
    path = path or f"/ocpi/{version}/tokens/DE/EMP/{body['uid']}" + (
        "" if body["type"] == "RFID" else f"?type={body['type']}"
    )
    return await hub.ocpi("PUT", path, EMSP_TOKEN, json=body)


def assert_status(response: Any, http_status: int, status_code: int, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == http_status, response.text
    body: dict[str, Any] = response.json()
    assert body["status_code"] == status_code, body
    if message is not None:
        assert message in body["status_message"], body
    return body


@pytest.mark.usefixtures("emsp_partner")
async def test_version_details_list_tokens_as_receiver(hub: Hub) -> None:
    for version in ("2.2.1", "2.2"):
        response = await hub.ocpi("GET", f"/ocpi/{version}", EMSP_TOKEN)
        endpoints = response.json()["data"]["endpoints"]
        assert {"identifier": "tokens", "role": "RECEIVER", "url": f"{hub.url}/ocpi/{version}/tokens"} in endpoints


@pytest.mark.usefixtures("emsp_partner")
@pytest.mark.parametrize("version", ["2.2.1", "2.2"])
async def test_put_creates_then_replaces_and_get_returns_it(hub: Hub, version: str) -> None:
    headers = {
        "OCPI-from-country-code": "DE",
        "OCPI-from-party-id": "EMP",
        "OCPI-to-country-code": "NL",
        "OCPI-to-party-id": "OHB",
    }
    response = await hub.ocpi(
        "PUT", f"/ocpi/{version}/tokens/DE/EMP/{RFID['uid']}", EMSP_TOKEN, json=RFID, headers=headers
    )
    body = assert_status(response, 201, 1000)
    assert "data" not in body
    assert response.headers["ocpi-from-country-code"] == "NL"
    assert response.headers["ocpi-from-party-id"] == "OHB"
    assert response.headers["ocpi-to-country-code"] == "DE"
    assert response.headers["ocpi-to-party-id"] == "EMP"

    assert_status(await put(hub, {**RFID, "valid": False}, version=version), 200, 1000)
    response = await hub.ocpi("GET", f"/ocpi/{version}/tokens/DE/EMP/{RFID['uid']}", EMSP_TOKEN)
    body = assert_status(response, 200, 1000)
    assert body["data"] == {**RFID, "valid": False}
    assert response.headers["ocpi-to-party-id"] == "EMP"


@pytest.mark.usefixtures("emsp_partner")
async def test_type_defaults_to_rfid_and_keys_the_token(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    assert_status(await put(hub, APP_USER), 201, 1000)
    same_uid_rfid = {**RFID, "uid": APP_USER["uid"]}
    assert_status(await put(hub, same_uid_rfid), 201, 1000)  # another token: same uid, other type
    assert await count(sessions) == 2

    path = f"{BASE}/{APP_USER['uid']}"
    assert assert_status(await hub.ocpi("GET", path, EMSP_TOKEN), 200, 1000)["data"]["type"] == "RFID"
    response = await hub.ocpi("GET", f"{path}?type=APP_USER", EMSP_TOKEN)
    assert assert_status(response, 200, 1000)["data"] == APP_USER
    assert_status(await hub.ocpi("GET", f"{path}?type=OTHER", EMSP_TOKEN), 404, 2004)
    assert_status(await hub.ocpi("GET", f"{path}?type=CARD", EMSP_TOKEN), 200, 2001, "type")


@pytest.mark.usefixtures("emsp_partner")
async def test_put_whose_body_disagrees_with_the_url_is_2001(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cases = [
        (f"{BASE}/other-uid", RFID, "uid"),
        (f"{BASE}/{RFID['uid']}", {**RFID, "country_code": "NL"}, "country_code"),
        (f"{BASE}/{RFID['uid']}", {**RFID, "party_id": "TNM"}, "party_id"),
        (f"{BASE}/{APP_USER['uid']}", APP_USER, "type"),  # no ?type=, so RFID
        (f"{BASE}/{RFID['uid']}?type=APP_USER", RFID, "type"),
    ]
    for path, body, field in cases:
        assert_status(await put(hub, body, path), 200, 2001, f"{field}: ")
    assert await count(sessions) == 0


@pytest.mark.usefixtures("emsp_partner")
async def test_party_in_the_url_is_compared_without_case_and_stored_upper_case(hub: Hub) -> None:
    body = {**RFID, "country_code": "de", "party_id": "emp"}
    assert_status(await put(hub, body, f"/ocpi/2.2.1/tokens/de/Emp/{RFID['uid']}"), 201, 1000)
    response = await hub.ocpi("GET", f"{BASE}/{RFID['uid']}", EMSP_TOKEN)
    assert assert_status(response, 200, 1000)["data"] == RFID


@pytest.mark.usefixtures("emsp_partner")
async def test_put_of_an_invalid_token_is_2001_naming_the_field(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    missing_whitelist = {k: v for k, v in RFID.items() if k != "whitelist"}
    cases = [
        (missing_whitelist, "whitelist"),
        ({**RFID, "whitelist": "SOMETIMES"}, "whitelist"),
        ({**RFID, "issuer": "x" * 65}, "issuer"),
        ({**RFID, "contract_id": ""}, "contract_id"),
        ({**RFID, "language": "ita"}, "language"),
        ({**RFID, "energy_contract": {"contract_id": "1"}}, "supplier_name"),
        ({**RFID, "last_updated": "yesterday"}, "last_updated"),
    ]
    for body, field in cases:
        assert_status(await put(hub, body, f"{BASE}/{RFID['uid']}"), 200, 2001, field)
    long_uid = {**RFID, "uid": "u" * 37}
    assert_status(await put(hub, long_uid), 200, 2001, "uid")
    response = await hub.ocpi("PUT", f"{BASE}/{RFID['uid']}", EMSP_TOKEN, content=b"{not json")
    assert_status(response, 400, 2000)
    assert await count(sessions) == 0


@pytest.mark.usefixtures("emsp_partner")
async def test_last_updated_is_kept_as_sent_in_utc(hub: Hub) -> None:
    assert_status(await put(hub, {**RFID, "last_updated": "2018-12-10T17:25:10.123"}), 201, 1000)
    data = (await hub.ocpi("GET", f"{BASE}/{RFID['uid']}", EMSP_TOKEN)).json()["data"]
    assert data["last_updated"] == "2018-12-10T17:25:10Z"


@pytest.mark.usefixtures("emsp_partner")
async def test_patch_changes_only_what_it_carries(hub: Hub) -> None:
    await put(hub, RFID)
    path = f"{BASE}/{RFID['uid']}"
    body = assert_status(await hub.ocpi("PATCH", path, EMSP_TOKEN, json=PATCH), 200, 1000)
    assert "data" not in body
    data = (await hub.ocpi("GET", path, EMSP_TOKEN)).json()["data"]
    assert data == {**RFID, **PATCH}

    # null clears an optional field; the identity fields may be repeated unchanged.
    patch = {
        "visual_number": None,
        "energy_contract": None,
        "uid": RFID["uid"],
        "type": "RFID",
        "last_updated": "2019-06-20T00:00:00Z",
    }
    assert_status(await hub.ocpi("PATCH", path, EMSP_TOKEN, json=patch), 200, 1000)
    data = (await hub.ocpi("GET", path, EMSP_TOKEN)).json()["data"]
    assert "visual_number" not in data
    assert "energy_contract" not in data
    assert data["last_updated"] == "2019-06-20T00:00:00Z"


@pytest.mark.usefixtures("emsp_partner")
async def test_bad_patches_are_2001_and_change_nothing(hub: Hub) -> None:
    await put(hub, RFID)
    path = f"{BASE}/{RFID['uid']}"
    cases = [
        ({"valid": False}, "last_updated"),
        ({"uid": "other", "last_updated": PATCH["last_updated"]}, "uid"),
        ({"type": "APP_USER", "last_updated": PATCH["last_updated"]}, "type"),
        ({"country_code": "NL", "last_updated": PATCH["last_updated"]}, "country_code"),
        ({"issuer": None, "last_updated": PATCH["last_updated"]}, "issuer"),
        ({"whitelist": "MAYBE", "last_updated": PATCH["last_updated"]}, "whitelist"),
    ]
    for patch, field in cases:
        assert_status(await hub.ocpi("PATCH", path, EMSP_TOKEN, json=patch), 200, 2001, field)
    assert_status(await hub.ocpi("PATCH", path, EMSP_TOKEN, content=b"{oops"), 400, 2000)
    assert (await hub.ocpi("GET", path, EMSP_TOKEN)).json()["data"] == RFID


@pytest.mark.usefixtures("emsp_partner")
async def test_unknown_token_is_404_2004(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    path = f"{BASE}/{RFID['uid']}"
    assert_status(await hub.ocpi("GET", path, EMSP_TOKEN), 404, 2004, RFID["uid"])
    assert_status(await hub.ocpi("PATCH", path, EMSP_TOKEN, json=PATCH), 404, 2004)
    assert await count(sessions) == 0


@pytest.mark.usefixtures("emsp_partner")
async def test_another_partys_tokens_are_404(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    other = {**RFID, "country_code": "NL", "party_id": "TNM"}
    path = f"/ocpi/2.2.1/tokens/NL/TNM/{RFID['uid']}"
    assert_status(await put(hub, other, path), 404, 2000, "NL/TNM")
    assert_status(await hub.ocpi("PATCH", path, EMSP_TOKEN, json=PATCH), 404, 2000)
    assert_status(await hub.ocpi("GET", path, EMSP_TOKEN), 404, 2000)
    assert await count(sessions) == 0


async def test_only_registered_partners_with_the_role_get_in(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await add_partner(sessions, "token-a", state=PartnerState.PENDING)
    await add_partner(sessions, "no-roles", roles=[])
    path = f"{BASE}/{RFID['uid']}"
    assert_status(await hub.ocpi("PUT", path, None, json=RFID), 401, 2000)
    assert_status(await hub.ocpi("PUT", path, "token-a", json=RFID), 401, 2000)
    assert_status(await hub.ocpi("PUT", path, "no-roles", json=RFID), 404, 2000)
    assert await count(sessions) == 0
