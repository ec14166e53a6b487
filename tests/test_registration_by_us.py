"""We register with an eMSP (POST /api/v0/register with a url), and the register endpoint's other forms."""

from __future__ import annotations

from typing import Any, cast

import httpx
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import errors, registration
from ocpi_hub.app import create_app
from ocpi_hub.client import OcpiClient
from ocpi_hub.db import partners
from ocpi_hub.ocpi.common import StatusCode
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import ROLE, Failure, FakeEmsp

THEIR_TOKEN_A = "token-a-of-emsp"


async def register(hub: Hub, emsp: FakeEmsp, **body: str) -> httpx.Response:
    return await hub.api("POST", "/register", json={"token": THEIR_TOKEN_A, "url": f"{emsp.base_url}/versions"} | body)


async def test_handshake_stores_token_c_and_hands_out_token_b(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await register(hub, emsp)
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "registered"

    calls = [(r.method, r.path, r.token) for r in emsp.requests]
    assert calls == [
        ("GET", "/versions", THEIR_TOKEN_A),
        ("GET", "/2.2.1", THEIR_TOKEN_A),
        ("POST", "/2.2.1/credentials", THEIR_TOKEN_A),
    ]
    posted = emsp.requests[-1].body
    token_b = emsp.received_token_b
    assert token_b is not None
    assert len(token_b) >= 43
    assert posted["url"] == f"{hub.url}/ocpi/versions"
    assert posted["roles"][0]["role"] == "CPO"
    # The eMSP called our versions with token B before answering (the fake checks that it got HTTP 200).
    assert (await hub.ocpi("GET", "/ocpi/versions", token_b)).status_code == 200
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_b)).json()["data"]["token"] == token_b

    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert partner.token == emsp.token_c  # from now on we call them with C
    assert msgspec.to_builtins(partner.roles) == [ROLE]
    assert partner.version == "2.2.1"
    assert partner.initiator == "hub"


async def test_failed_post_leaves_nothing_that_grants_access_and_can_be_retried(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    emsp.failures = [Failure(), Failure(), Failure(http_status=200, status_code=2001)]
    response = await register(hub, emsp)
    assert response.status_code == 502
    error = response.json()
    assert error["status"] == "Bad Gateway"
    assert error["error"].startswith("registration failed at POST credentials")
    assert "status_code 2001" in error["error"]
    async with sessions() as session:
        assert await partners.all_partners(session) == []

    emsp.requests.clear()
    response = await register(hub, emsp)
    assert response.status_code == 201, response.text
    assert emsp.received_token_b is not None


async def test_token_b_in_flight_reaches_only_versions(hub: Hub, emsp: FakeEmsp) -> None:
    seen: dict[str, int] = {}

    async def probe(token_b: str) -> None:
        # While our POST waits for the eMSP's answer, token B must open the versions module and nothing else.
        seen["versions"] = (await hub.ocpi("GET", "/ocpi/versions", token_b)).status_code
        seen["credentials"] = (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", token_b)).status_code

    emsp.on_token_b = probe
    response = await register(hub, emsp)
    assert response.status_code == 201
    assert seen == {"versions": 200, "credentials": 401}


@pytest.mark.parametrize(
    ("failure", "step"),
    [
        (Failure(http_status=500), "GET versions"),
        (Failure(drop=True), "GET versions"),
    ],
)
async def test_discovery_failures_name_the_step(hub: Hub, emsp: FakeEmsp, failure: Failure, step: str) -> None:
    emsp.failures = [failure]
    response = await register(hub, emsp)
    assert response.status_code == 502
    assert response.json()["error"].startswith(f"registration failed at {step}")


async def test_unreachable_partner(hub: Hub) -> None:
    response = await hub.api("POST", "/register", json={"token": "t", "url": "http://127.0.0.1:9/versions"})
    assert response.status_code == 502
    assert "GET versions" in response.json()["error"]


async def test_registered_token_discovers_without_credentials_post(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await register(hub, emsp, status="REGISTERED")
    assert response.status_code == 201, response.text
    assert [r.method for r in emsp.requests] == ["GET", "GET", "GET"]
    assert emsp.requests[-1].path == "/2.2.1/credentials"
    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert (partner.state, partner.token, msgspec.to_builtins(partner.roles)) == ("registered", THEIR_TOKEN_A, [ROLE])
    # The agreed token works both ways: they may call every endpoint with it at once.
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", THEIR_TOKEN_A)).status_code == 200


async def test_registered_token_without_url_is_accepted_everywhere(hub: Hub) -> None:
    response = await hub.api("POST", "/register", json={"token": "agreed", "status": "REGISTERED"})
    assert response.status_code == 201
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/credentials", "agreed")).status_code == 200


async def test_a_token_can_be_registered_only_once(hub: Hub) -> None:
    assert (await hub.api("POST", "/register", json={"token": "same"})).status_code == 201
    response = await hub.api("POST", "/register", json={"token": "same", "status": "REGISTERED"})
    assert response.status_code == 409
    assert response.json() == {"status": "Conflict", "error": "this token is already registered for a partner"}


async def test_registering_a_registered_partner_again_is_a_conflict(hub: Hub, emsp: FakeEmsp) -> None:
    assert (await register(hub, emsp)).status_code == 201
    emsp.accepted_tokens.add(THEIR_TOKEN_A)
    response = await register(hub, emsp)
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "token"),
        ({"token": 5}, "token"),
        ({"token": "t", "status": "DONE"}, "status"),
        ({"token": "t", "url": "not a url"}, "url"),
        ({"token": "with space"}, "token"),
    ],
)
async def test_bad_registration_bodies_are_400_naming_the_field(
    hub: Hub, body: dict[str, object], named: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await hub.api("POST", "/register", json=body)
    assert response.status_code == 400
    assert response.json()["status"] == "Bad Request"
    assert response.json()["error"].startswith(named)
    async with sessions() as session:
        assert await partners.all_partners(session) == []


async def test_internal_api_requires_the_admin_token_when_set(hub_factory: HubFactory) -> None:
    hub = await hub_factory(admin_token="s3cret")
    assert (await hub.api("GET", "/partners")).status_code == 401
    wrong = await hub.api("GET", "/partners", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["status"] == "Unauthorized"
    assert (await hub.api("GET", "/partners", headers={"Authorization": "Bearer s3cret"})).status_code == 200


async def test_internal_api_is_closed_to_remote_clients_without_admin_token(hub: Hub) -> None:
    app = create_app(hub.settings)
    async with app.lifespan():
        for client_host, expected in (("203.0.113.7", 403), ("127.0.0.1", 200)):
            transport = httpx.ASGITransport(app=cast(Any, app), client=(client_host, 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
                assert (await http.get("/api/v0/partners")).status_code == expected, client_host


async def test_our_handshake_checks_the_urls_the_partner_answers_with(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The versions URL comes from the operator and is trusted; the fake's version details URL and endpoints it
    # answers with are on 127.0.0.1, and we would call them with their token.
    strict = await hub_factory(allow_private_partner_urls=False)
    response = await register(strict, emsp)
    assert response.status_code == 502
    assert response.json()["error"].startswith(f"registration failed at check partner URL: '{emsp.base_url}/2.2.1'")
    assert [(r.method, r.path) for r in emsp.requests] == [("GET", "/versions")]
    async with sessions() as session:
        assert await partners.all_partners(session) == []

    lenient = await hub_factory(allow_private_partner_urls=True)
    assert (await register(lenient, emsp)).status_code == 201


async def test_discovery_checks_every_endpoint_url() -> None:
    public = "https://93.184.216.34/ocpi"  # an address literal: checked without resolving anything

    def partner(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/versions"):
            data: Any = [{"version": "2.2.1", "url": f"{public}/2.2.1"}]
        else:
            endpoints = [("credentials", f"{public}/2.2.1/credentials"), ("locations", "http://127.0.0.1:5432/x")]
            data = {
                "version": "2.2.1",
                "endpoints": [{"identifier": i, "role": "RECEIVER", "url": u} for i, u in endpoints],
            }
        return httpx.Response(200, json={"data": data, "status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"})

    client = OcpiClient(httpx.MockTransport(partner), timeout=5)
    with pytest.raises(errors.PartnerFailed) as failed:
        await registration.discover(client, f"{public}/versions", token="t", allow_private=False)
    assert "check partner URL: 'http://127.0.0.1:5432/x'" in failed.value.message
    assert failed.value.ocpi_status == StatusCode.UNABLE_TO_USE_CLIENT_API
    found = await registration.discover(client, f"{public}/versions", token="t", allow_private=True)
    assert found.endpoints[1].url == "http://127.0.0.1:5432/x"


async def test_repeated_roles_in_the_partners_answer_are_its_failure(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    emsp.roles = [ROLE, ROLE]
    response = await register(hub, emsp)
    assert response.status_code == 502
    assert response.json()["error"].startswith("registration failed at POST credentials: roles: (EMSP, DE, EMP)")
    async with sessions() as session:
        assert await partners.all_partners(session) == []
