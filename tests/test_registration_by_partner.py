"""The eMSP registers with us (OCPI 2.2.1 §7.1): token A, POST, PUT, DELETE, GET, and every error path."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import partners
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import ROLE, Failure, FakeEmsp

TOKEN_A = "token-a-for-the-emsp"
TOKEN_B = "token-b-of-emsp"


async def give_token_a(hub: Hub, token: str = TOKEN_A) -> None:
    response = await hub.api("POST", "/register", json={"token": token})
    assert response.status_code == 201, response.text


def their_credentials(emsp: FakeEmsp, token: str = TOKEN_B, **changes: Any) -> dict[str, Any]:
    emsp.accepted_tokens.add(token)
    return {"token": token, "url": f"{emsp.base_url}/versions", "roles": [ROLE]} | changes


async def post_credentials(hub: Hub, emsp: FakeEmsp, version: str = "2.2.1", **changes: Any) -> dict[str, Any]:
    response = await hub.ocpi("POST", f"/ocpi/{version}/credentials", TOKEN_A, json=their_credentials(emsp, **changes))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_registration_issues_token_c_and_revokes_token_a(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await give_token_a(hub)
    body = await post_credentials(hub, emsp)

    assert body["status_code"] == 1000
    ours = body["data"]
    token_c = ours["token"]
    assert len(token_c) >= 43
    assert token_c.isascii()
    assert " " not in token_c
    assert ours["url"] == f"{hub.url}/ocpi/versions"
    assert ours["roles"] == [
        {"role": "CPO", "business_details": {"name": "Test CPO"}, "party_id": "OHB", "country_code": "NL"}
    ]
    # Before answering, we fetched their versions and details with their token B.
    fetched = emsp.received("GET")
    assert [r.path for r in fetched] == ["/versions", "/2.2.1"]
    assert {r.token for r in fetched} == {TOKEN_B}
    assert all("ocpi-from-party-id" not in r.headers for r in fetched)  # configuration modules: no routing

    assert (await hub.ocpi("GET", "/ocpi/versions", TOKEN_A)).status_code == 401
    assert (await hub.ocpi("GET", "/ocpi/versions", token_c)).status_code == 200
    got = await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_c)
    assert got.json()["data"] == ours

    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert partner.state == "registered"
    assert partner.version == "2.2.1"
    assert partner.token == TOKEN_B
    assert partner.token_hash is not None
    assert TOKEN_A not in partner.token_hash
    assert msgspec.to_builtins(partner.roles) == [ROLE]
    assert partner.endpoint("locations", "RECEIVER") == f"{emsp.base_url}/2.2.1/locations"


async def test_token_a_only_reaches_versions_and_credentials_post(hub: Hub) -> None:
    await give_token_a(hub)
    assert (await hub.ocpi("GET", "/ocpi/versions", TOKEN_A)).status_code == 200
    assert (await hub.ocpi("GET", "/ocpi/2.2.1", TOKEN_A)).status_code == 200
    for method in ("GET", "PUT", "DELETE"):
        response = await hub.ocpi(method, "/ocpi/2.2.1/credentials", TOKEN_A, json={})
        assert response.status_code == 405, method
        assert response.json()["status_code"] == 2000


async def test_post_when_registered_is_405_and_changes_nothing(hub: Hub, emsp: FakeEmsp) -> None:
    await give_token_a(hub)
    token_c = (await post_credentials(hub, emsp))["data"]["token"]
    response = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", token_c, json=their_credentials(emsp))
    assert response.status_code == 405
    assert (await hub.ocpi("GET", "/ocpi/versions", token_c)).status_code == 200


async def test_unreachable_partner_is_3001_and_token_a_keeps_working(hub: Hub) -> None:
    await give_token_a(hub)
    body = {"token": TOKEN_B, "url": "http://127.0.0.1:9/versions", "roles": [ROLE]}
    response = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A, json=body)
    assert response.status_code == 200
    assert response.json()["status_code"] == 3001
    assert "GET versions" in response.json()["status_message"]
    assert (await hub.ocpi("GET", "/ocpi/versions", TOKEN_A)).status_code == 200


async def test_partner_that_hangs_cannot_hang_us(hub_factory: HubFactory, emsp: FakeEmsp) -> None:
    hub = await hub_factory(http_timeout=0.3)
    await give_token_a(hub)
    emsp.failures.append(Failure(delay=3))
    body = await post_credentials(hub, emsp)
    assert body["status_code"] == 3001
    assert "timeout" in body["status_message"]


@pytest.mark.parametrize(
    ("offered", "version", "modules", "status_code"),
    [
        (["2.1.1"], "2.2.1", None, 3002),  # no common version
        (["2.2.1"], "2.2", None, 3002),  # they called our 2.2 endpoint but do not speak 2.2
        (["2.2.1"], "2.2.1", [("locations", "RECEIVER")], 3003),  # no credentials endpoint
    ],
)
async def test_version_and_endpoint_mismatches(
    hub: Hub, emsp: FakeEmsp, offered: list[str], version: str, modules: Any, status_code: int
) -> None:
    emsp.versions = offered
    if modules:
        emsp.modules = modules
    await give_token_a(hub)
    body = await post_credentials(hub, emsp, version=version)
    assert body["status_code"] == status_code
    assert (await hub.ocpi("GET", "/ocpi/versions", TOKEN_A)).status_code == 200


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"roles": []}, "roles"),
        ({"token": "has space"}, "token"),
        ({"token": "x" * 65}, "token"),
        ({"roles": [ROLE | {"country_code": "DEU"}]}, "country_code"),
        ({"roles": [ROLE, ROLE]}, "roles"),
        ({"url": "ftp://example.com/versions"}, "ftp://"),
    ],
)
async def test_invalid_credentials_are_2001_naming_the_field(
    hub: Hub, emsp: FakeEmsp, changes: dict[str, Any], named: str
) -> None:
    await give_token_a(hub)
    body = await post_credentials(hub, emsp, **changes)
    assert body["status_code"] == 2001
    assert named in body["status_message"]
    assert emsp.requests == []  # nothing was called
    assert (await hub.ocpi("GET", "/ocpi/versions", TOKEN_A)).status_code == 200


async def test_private_partner_urls_are_refused_unless_allowed(hub_factory: HubFactory, emsp: FakeEmsp) -> None:
    hub = await hub_factory(allow_private_partner_urls=False)
    await give_token_a(hub)
    body = await post_credentials(hub, emsp)  # the fake eMSP listens on 127.0.0.1
    assert body["status_code"] == 2001
    assert "loopback, private or link-local" in body["status_message"]
    assert emsp.requests == []


async def test_put_refetches_endpoints_and_rotates_the_token(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await give_token_a(hub)
    old_c = (await post_credentials(hub, emsp))["data"]["token"]
    emsp.requests.clear()
    emsp.modules = [("credentials", "SENDER"), ("locations", "RECEIVER"), ("tariffs", "RECEIVER")]

    response = await hub.ocpi("PUT", "/ocpi/2.2.1/credentials", old_c, json=their_credentials(emsp, "token-b2"))
    assert response.status_code == 200
    new_c = response.json()["data"]["token"]
    assert new_c != old_c
    assert [(r.path, r.token) for r in emsp.received("GET")] == [("/versions", "token-b2"), ("/2.2.1", "token-b2")]
    assert (await hub.ocpi("GET", "/ocpi/versions", old_c)).status_code == 401
    assert (await hub.ocpi("GET", "/ocpi/versions", new_c)).status_code == 200
    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert partner.token == "token-b2"
    assert partner.endpoint("tariffs", "RECEIVER") == f"{emsp.base_url}/2.2.1/tariffs"


async def test_put_on_another_version_switches_version(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    emsp.versions = ["2.2.1", "2.2"]
    await give_token_a(hub)
    token_c = (await post_credentials(hub, emsp))["data"]["token"]
    response = await hub.ocpi("PUT", "/ocpi/2.2/credentials", token_c, json=their_credentials(emsp))
    assert response.json()["status_code"] == 1000
    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert partner.version == "2.2"


async def test_failed_put_keeps_the_old_token(hub: Hub, emsp: FakeEmsp) -> None:
    await give_token_a(hub)
    token_c = (await post_credentials(hub, emsp))["data"]["token"]
    emsp.failures.append(Failure(http_status=500))
    response = await hub.ocpi("PUT", "/ocpi/2.2.1/credentials", token_c, json=their_credentials(emsp))
    assert response.json()["status_code"] == 3001
    assert "HTTP 500" in response.json()["status_message"]
    assert (await hub.ocpi("GET", "/ocpi/versions", token_c)).status_code == 200


async def test_delete_unregisters_and_the_token_stops_working(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await give_token_a(hub)
    token_c = (await post_credentials(hub, emsp))["data"]["token"]
    response = await hub.ocpi("DELETE", "/ocpi/2.2.1/credentials", token_c)
    assert response.status_code == 200
    assert response.json()["status_code"] == 1000
    assert (await hub.ocpi("GET", "/ocpi/versions", token_c)).status_code == 401
    assert (await hub.ocpi("DELETE", "/ocpi/2.2.1/credentials", token_c)).status_code == 401
    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert (partner.state, partner.token, partner.token_hash) == ("unregistered", None, None)


async def test_suspended_partner_is_refused_until_resumed(hub: Hub, emsp: FakeEmsp) -> None:
    await give_token_a(hub)
    token_c = (await post_credentials(hub, emsp))["data"]["token"]
    [partner] = (await hub.api("GET", "/partners")).json()
    assert (await hub.api("POST", f"/partners/{partner['id']}/suspend")).json()["state"] == "suspended"
    assert (await hub.ocpi("GET", "/ocpi/versions", token_c)).status_code == 401
    assert (await hub.api("POST", f"/partners/{partner['id']}/suspend")).status_code == 409
    assert (await hub.api("POST", f"/partners/{partner['id']}/resume")).json()["state"] == "registered"
    assert (await hub.ocpi("GET", "/ocpi/versions", token_c)).status_code == 200
    assert (await hub.api("POST", "/partners/999/resume")).status_code == 404


async def test_tokens_never_appear_in_logs_or_partner_list(
    hub: Hub, emsp: FakeEmsp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await give_token_a(hub)
    token_c = (await post_credentials(hub, emsp))["data"]["token"]
    listing = (await hub.api("GET", "/partners")).text
    for token in (TOKEN_A, TOKEN_B, token_c):
        assert token not in caplog.text
        assert token not in listing
    [partner] = (await hub.api("GET", "/partners")).json()
    assert partner["state"] == "registered"
    assert partner["roles"] == [ROLE]
    assert partner["version"] == "2.2.1"
    assert {e["identifier"] for e in partner["endpoints"]} == {"credentials", "locations", "tokens"}
