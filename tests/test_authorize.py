"""authorizeToken (`POST /api/v0/token/{tokenUid}/authorize`, docs/cpo-modules.md §7): the stored token or its eMSP
decides, as the token's whitelist says; over real HTTP, with a fake eMSP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient
from ocpi_hub.db import tokens
from ocpi_hub.ocpi.tokens import TokenKey, TokenType
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import Failure, FakeEmsp, Recorded
from tests.servers import serve
from tests.test_push_delivery import TOKEN, connect, poll
from tests.test_traffic import traffic

UID = "04A1B2C3D4E5F6"


def seed_token(uid: str = UID, *, cache_mode: str = "ALLOWED", valid: bool = True, **changes: Any) -> dict[str, Any]:
    """A setToken body of the fake eMSP's party DE/EMP."""
    return {
        "countryCode": "DE",
        "partyId": "EMP",
        "type": "RFID",
        "uid": uid,
        "contractId": "DE8ACC12E46L89",
        "issuer": "Fake eMSP",
        "valid": valid,
        "cacheMode": cache_mode,
    } | changes


def emsp_token(uid: str = UID, **changes: Any) -> dict[str, Any]:
    """The eMSP's own, complete copy of the token, as its AuthorizationInfo carries it."""
    return {
        "country_code": "DE",
        "party_id": "EMP",
        "uid": uid,
        "type": "RFID",
        "contract_id": "DE8ACC12E46L89",
        "visual_number": "DF000-2001-8999-1",
        "issuer": "Fake eMSP",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": "2026-01-02T03:04:05Z",
    } | changes


def info(allowed: str, uid: str = UID, **changes: Any) -> dict[str, Any]:
    return {"allowed": allowed, "token": emsp_token(uid)} | changes


async def set_token(hub: Hub, body: dict[str, Any]) -> None:
    response = await hub.api("POST", "/token", json=body)
    assert response.status_code == 201, response.text


async def authorize(hub: Hub, uid: str = UID, status: int = 200, query: str = "", **kwargs: Any) -> dict[str, Any]:
    response = await hub.api("POST", f"/token/{uid}/authorize{query}", **kwargs)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def asked(emsp: FakeEmsp) -> list[Recorded]:
    return [r for r in emsp.received("POST") if r.path.endswith("/authorize")]


@pytest.fixture
async def connected(hub: Hub, emsp: FakeEmsp) -> FakeEmsp:
    """The fake eMSP (DE/EMP) registered with the hub: we know its Tokens Sender endpoint from its version details."""
    await connect(hub, emsp)
    return emsp


@pytest.fixture
async def quick_hub(hub_factory: HubFactory, emsp: FakeEmsp) -> Hub:
    """A hub that waits 0.3 s for an eMSP's answer, registered with the fake eMSP."""
    hub = await hub_factory(authorization_timeout=0.3)
    await connect(hub, emsp)
    return hub


@pytest.fixture
async def hanging(emsp: FakeEmsp) -> AsyncIterator[asyncio.Event]:
    """The fake eMSP's authorize for UID answers only once the test is over."""
    done = asyncio.Event()
    emsp.authorizations[UID] = Failure(until=done)
    yield done
    done.set()


# --- the stored token alone ---


@pytest.mark.parametrize(("valid", "allowed"), [(True, "ALLOWED"), (False, "BLOCKED")])
async def test_always_is_the_stored_token_alone(hub: Hub, connected: FakeEmsp, valid: bool, allowed: str) -> None:
    connected.authorizations[UID] = info("NO_CREDIT")
    await set_token(hub, seed_token(cache_mode="ALWAYS", valid=valid))
    answer = await authorize(hub, json={"location_id": "LOC1"})
    assert (answer["allowed"], answer["source"]) == (allowed, "local")
    assert answer["token"]["uid"] == UID
    assert answer["token"]["cacheMode"] == "ALWAYS"
    assert "authorization_reference" not in answer
    assert asked(connected) == []


async def test_allowed_and_valid_is_the_stored_token(hub: Hub, connected: FakeEmsp) -> None:
    connected.authorizations[UID] = info("BLOCKED")
    await set_token(hub, seed_token(cache_mode="ALLOWED", valid=True))
    answer = await authorize(hub)
    assert (answer["allowed"], answer["source"]) == ("ALLOWED", "local")
    assert asked(connected) == []


async def test_of_several_emsps_tokens_with_the_uid_the_latest_counts(hub: Hub) -> None:
    await set_token(hub, seed_token(cache_mode="ALWAYS", valid=True))
    await set_token(hub, seed_token(cache_mode="ALWAYS", valid=False, partyId="XYZ"))
    answer = await authorize(hub)
    assert (answer["allowed"], answer["token"]["partyId"]) == ("BLOCKED", "XYZ")


# --- the eMSP's answer ---


ASKING = [("ALLOWED", False), ("ALLOWED_OFFLINE", True), ("ALLOWED_OFFLINE", False), ("NEVER", True)]


@pytest.mark.parametrize(
    ("cache_mode", "valid", "allowed"),
    [(*asking, allowed) for asking in ASKING for allowed in ("ALLOWED", "BLOCKED")]
    + [("NEVER", True, allowed) for allowed in ("EXPIRED", "NO_CREDIT", "NOT_ALLOWED")],
)
async def test_the_emsp_decides_when_the_whitelist_asks(
    hub: Hub, connected: FakeEmsp, cache_mode: str, valid: bool, allowed: str
) -> None:
    connected.authorizations[UID] = info(
        allowed, authorization_reference="REF-1", token=emsp_token(whitelist=cache_mode)
    )
    await set_token(hub, seed_token(cache_mode=cache_mode, valid=valid))
    answer = await authorize(hub, json={"location_id": "LOC1"})
    assert answer["allowed"] == allowed
    assert answer["source"] == "realtime"
    assert answer["authorization_reference"] == "REF-1"
    assert len(asked(connected)) == 1


async def test_the_emsp_gets_its_url_type_location_and_routing(hub: Hub, connected: FakeEmsp) -> None:
    connected.authorizations[UID] = info("ALLOWED", token=emsp_token(type="APP_USER"))
    await set_token(hub, seed_token(cache_mode="NEVER", type="APP_USER"))
    body = {"location_id": "LOC1", "evse_uids": ["E1", "E2"], "connector_ids": ["1"]}
    answer = await authorize(hub, query="?type=APP_USER", json=body)
    assert answer["allowed"] == "ALLOWED"
    [request] = asked(connected)
    assert request.path == f"/2.2.1/tokens/{UID}/authorize"
    assert request.query == "type=APP_USER"
    assert request.body == {"location_id": "LOC1", "evse_uids": ["E1", "E2"]}  # LocationReferences: no connectors
    assert request.token == TOKEN
    assert request.headers["content-type"] == "application/json"
    assert {k: v for k, v in request.headers.items() if k.startswith("ocpi-")} == {
        "ocpi-from-country-code": "NL",
        "ocpi-from-party-id": "OHB",
        "ocpi-to-country-code": "DE",
        "ocpi-to-party-id": "EMP",
    }


@pytest.mark.parametrize("body", [None, {}, {"location_id": None}])
async def test_without_a_location_nothing_is_sent(hub: Hub, connected: FakeEmsp, body: dict[str, Any] | None) -> None:
    connected.authorizations[UID] = info("ALLOWED")
    await set_token(hub, seed_token(cache_mode="NEVER"))
    answer = await authorize(hub, json=body) if body is not None else await authorize(hub)
    assert answer["allowed"] == "ALLOWED"
    [request] = asked(connected)
    assert request.query == "type=RFID"
    assert request.body is None


async def test_the_emsps_token_replaces_the_stored_one(
    hub: Hub, connected: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    theirs = emsp_token(valid=False, whitelist="NEVER", contract_id="DE8ACC12E46L90", group_id="G1", language="de")
    connected.authorizations[UID] = info("BLOCKED", token=theirs)
    await set_token(hub, seed_token(cache_mode="ALLOWED_OFFLINE"))
    answer = await authorize(hub)
    assert answer["allowed"] == "BLOCKED"
    expected = {
        "countryCode": "DE",
        "partyId": "EMP",
        "type": "RFID",
        "uid": UID,
        "contractId": "DE8ACC12E46L90",
        "visualNumber": "DF000-2001-8999-1",
        "issuer": "Fake eMSP",
        "groupId": "G1",
        "valid": False,
        "languageCode": "de",
        "cacheMode": "NEVER",
        "lastUpdated": "2026-01-02T03:04:05Z",
    }
    assert answer["token"] == expected
    assert (await hub.api("GET", f"/token/{UID}")).json() == expected
    async with sessions() as session:
        stored = await tokens.get(session, TokenKey("DE", "EMP", UID, TokenType.RFID))
    assert stored is not None
    assert (stored.valid, stored.whitelist, stored.contract_id) == (False, "NEVER", "DE8ACC12E46L90")


@pytest.mark.parametrize(
    ("evses", "answered", "allowed"),
    [
        (["E1"], ["E1", "E2"], "ALLOWED"),
        (["e2"], ["E1", "E2"], "ALLOWED"),  # CiStrings: compared without case
        (["E1", "E3"], ["E1", "E2"], "NOT_ALLOWED"),
        (["E1"], [], "NOT_ALLOWED"),
        (["E1"], None, "ALLOWED"),  # no evse_uids: the whole location
        ([], ["E2"], "ALLOWED"),  # no EVSE asked about
    ],
)
async def test_the_emsps_evse_restriction_applies(
    hub: Hub, connected: FakeEmsp, evses: list[str], answered: list[str] | None, allowed: str
) -> None:
    location: dict[str, Any] = {"location_id": "LOC1"} | ({"evse_uids": answered} if answered is not None else {})
    connected.authorizations[UID] = info("ALLOWED", location=location, authorization_reference="REF-2")
    await set_token(hub, seed_token(cache_mode="NEVER"))
    answer = await authorize(hub, json={"location_id": "LOC1", "evse_uids": evses})
    assert (answer["allowed"], answer["source"], answer["authorization_reference"]) == (allowed, "realtime", "REF-2")


async def test_a_refusal_is_not_widened_by_the_evse_list(hub: Hub, connected: FakeEmsp) -> None:
    connected.authorizations[UID] = info("NO_CREDIT", location={"location_id": "LOC1", "evse_uids": ["E2"]})
    await set_token(hub, seed_token(cache_mode="NEVER"))
    answer = await authorize(hub, json={"location_id": "LOC1", "evse_uids": ["E1"]})
    assert answer["allowed"] == "NO_CREDIT"


@pytest.mark.parametrize(
    "failure",
    [Failure(http_status=404, status_code=2004), Failure(http_status=404, status_code=2000), Failure(status_code=2002)],
)
@pytest.mark.parametrize(("cache_mode", "valid"), [("ALLOWED_OFFLINE", True), ("NEVER", True), ("ALLOWED", False)])
async def test_unknown_at_the_emsp_or_needing_a_location_is_not_allowed(
    hub: Hub, connected: FakeEmsp, failure: Failure, cache_mode: str, valid: bool
) -> None:
    connected.authorizations[UID] = failure
    await set_token(hub, seed_token(cache_mode=cache_mode, valid=valid))
    answer = await authorize(hub)
    assert (answer["allowed"], answer["source"]) == ("NOT_ALLOWED", "realtime")
    assert answer["token"]["contractId"] == "DE8ACC12E46L89"  # ours, unchanged


# --- when the eMSP cannot answer: ALLOWED_OFFLINE and ALLOWED fall back on the stored token, NEVER refuses ---

OFFLINE = [
    ("ALLOWED_OFFLINE", True, "ALLOWED"),
    ("ALLOWED_OFFLINE", False, "BLOCKED"),
    ("ALLOWED", False, "BLOCKED"),
    ("NEVER", True, "NOT_ALLOWED"),
]


@pytest.mark.usefixtures("hanging")
@pytest.mark.parametrize(("cache_mode", "valid", "allowed"), OFFLINE)
async def test_a_slow_emsp_is_not_waited_for(
    quick_hub: Hub, emsp: FakeEmsp, cache_mode: str, valid: bool, allowed: str
) -> None:
    await set_token(quick_hub, seed_token(cache_mode=cache_mode, valid=valid))
    started = time.monotonic()
    answer = await authorize(quick_hub, json={"location_id": "LOC1"})
    assert time.monotonic() - started < 2.0  # the 0.3 s of OCPI_HUB_AUTHORIZATION_TIMEOUT, not the 2 s http_timeout
    assert (answer["allowed"], answer["source"]) == (allowed, "local")
    assert len(asked(emsp)) == 1


async def authorize_calls(hub: Hub, partner_id: int) -> list[tuple[Any, ...]]:
    """The calls to the eMSP's authorize in its traffic log (direction, method, HTTP and OCPI status, error)."""
    entries = await poll(
        lambda: traffic(hub, partner_id, direction="outbound"),
        lambda found: any("/authorize" in e["path"] for e in found),
    )
    fields = ("direction", "method", "path", "http_status", "ocpi_status", "error")
    return [tuple(e.get(f) for f in fields) for e in entries if "/authorize" in e["path"]]


async def test_the_call_to_the_emsp_is_its_traffic(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    emsp.authorizations[UID] = info("ALLOWED")
    await set_token(hub, seed_token(cache_mode="NEVER"))
    await authorize(hub, json={"location_id": "LOC1"})
    path = f"/2.2.1/tokens/{UID}/authorize?type=RFID"
    assert await authorize_calls(hub, partner_id) == [("outbound", "POST", path, 200, 1000, None)]


@pytest.mark.usefixtures("hanging")
async def test_a_call_cut_off_at_the_authorization_timeout_is_its_traffic_too(
    hub_factory: HubFactory, emsp: FakeEmsp
) -> None:
    hub = await hub_factory(authorization_timeout=0.3)
    partner_id = await connect(hub, emsp)
    await set_token(hub, seed_token(cache_mode="NEVER"))
    await authorize(hub, json={"location_id": "LOC1"})
    [(direction, method, _, http_status, _, error)] = await authorize_calls(hub, partner_id)
    assert (direction, method, http_status) == ("outbound", "POST", None)
    assert error == "cancelled before the answer came"  # our deadline came before httpx's read timeout


@pytest.mark.parametrize(("cache_mode", "valid", "allowed"), OFFLINE)
async def test_an_emsp_that_is_down_is_not_waited_for(hub: Hub, cache_mode: str, valid: bool, allowed: str) -> None:
    down = FakeEmsp()
    async with serve(down.app):
        await connect(hub, down)
    # The fake's server is gone: its port refuses connections.
    await set_token(hub, seed_token(cache_mode=cache_mode, valid=valid))
    answer = await authorize(hub, json={"location_id": "LOC1"})
    assert (answer["allowed"], answer["source"]) == (allowed, "local")


@pytest.mark.parametrize(
    "failure",
    [
        Failure(http_status=503, status_code=3000),
        Failure(http_status=500, status_code=1000),
        Failure(http_status=401, status_code=2000),
        Failure(status_code=2001),
        Failure(status_code=3001),
        Failure(drop=True),
        Failure(),  # 1000 without an AuthorizationInfo
    ],
)
@pytest.mark.parametrize(
    ("cache_mode", "valid", "allowed"), [("ALLOWED_OFFLINE", True, "ALLOWED"), ("NEVER", True, "NOT_ALLOWED")]
)
async def test_any_other_answer_is_no_answer(
    hub: Hub, connected: FakeEmsp, failure: Failure, cache_mode: str, valid: bool, allowed: str
) -> None:
    connected.authorizations[UID] = failure
    await set_token(hub, seed_token(cache_mode=cache_mode, valid=valid))
    answer = await authorize(hub)
    assert (answer["allowed"], answer["source"]) == (allowed, "local")


@pytest.mark.parametrize(
    "answered",
    [
        info("ALLOWED", token=emsp_token(uid="ANOTHER")),
        info("ALLOWED", token=emsp_token(party_id="XYZ")),
        info("ALLOWED", token=emsp_token(type="APP_USER")),
        info("MAYBE"),
        {"allowed": "ALLOWED"},
    ],
)
async def test_an_answer_about_another_token_or_misshaped_is_no_answer(
    hub: Hub, connected: FakeEmsp, answered: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    connected.authorizations[UID] = answered
    await set_token(hub, seed_token(cache_mode="NEVER"))
    answer = await authorize(hub)
    assert (answer["allowed"], answer["source"]) == ("NOT_ALLOWED", "local")
    listed = (await hub.api("GET", "/token")).json()
    assert [(t["partyId"], t["uid"], t["type"]) for t in listed] == [("EMP", UID, "RFID")]  # nothing stored


@pytest.mark.parametrize(("cache_mode", "valid", "allowed"), OFFLINE)
async def test_without_a_registered_emsp_of_the_token_the_offline_rule_decides(
    hub: Hub, cache_mode: str, valid: bool, allowed: str
) -> None:
    await set_token(hub, seed_token(cache_mode=cache_mode, valid=valid, partyId="XYZ"))
    answer = await authorize(hub)
    assert (answer["allowed"], answer["source"]) == (allowed, "local")


async def test_an_emsp_without_a_tokens_sender_is_not_asked(hub: Hub, emsp: FakeEmsp) -> None:
    emsp.modules = [("credentials", "SENDER"), ("locations", "RECEIVER"), ("tokens", "RECEIVER")]
    emsp.authorizations[UID] = info("ALLOWED")
    await connect(hub, emsp)
    await set_token(hub, seed_token(cache_mode="NEVER"))
    answer = await authorize(hub)
    assert (answer["allowed"], answer["source"]) == ("NOT_ALLOWED", "local")
    assert asked(emsp) == []


# --- what is refused ---


async def test_a_token_we_have_not_stored_is_404(hub: Hub, connected: FakeEmsp) -> None:
    connected.authorizations[UID] = info("ALLOWED")
    answer = await authorize(hub, status=404)
    assert answer == {"status": "Not Found", "error": f"no RFID token with uid {UID}"}
    await set_token(hub, seed_token(cache_mode="NEVER"))  # an RFID token: not the APP_USER one asked about
    answer = await authorize(hub, status=404, query="?type=APP_USER")
    assert answer["error"] == f"no APP_USER token with uid {UID}"
    assert asked(connected) == []


@pytest.mark.parametrize(
    ("query", "body", "message"),
    [
        ("?type=CARD", {}, "type: Invalid enum value 'CARD'"),
        ("", {"location_id": "L" * 37}, "location_id: Expected `str` of length <= 36"),
        ("", {"location_id": "LOC1", "evse_uids": ["E1", 2]}, "evse_uids[1]: Expected `str`, got `int`"),
        ("", {"location_id": "LOC1", "evse_uids": "E1"}, "evse_uids: Expected `array | null`, got `str`"),
        ("", {"evse_uids": ["E1"]}, "evse_uids: needs a location_id"),
        ("", {"location_id": "LOC1", "connector_ids": ["1"]}, "connector_ids: needs evse_uids"),
        ("", {"location": "LOC1"}, "unknown field `location`"),
        ("", [], "Expected `object | null`, got `array`"),
    ],
)
async def test_a_bad_type_or_body_is_400_naming_the_field(
    hub: Hub,
    connected: FakeEmsp,
    sessions: async_sessionmaker[AsyncSession],
    query: str,
    body: Any,
    message: str,
) -> None:
    connected.authorizations[UID] = info("ALLOWED", token=emsp_token(contract_id="CHANGED"))
    await set_token(hub, seed_token(cache_mode="NEVER"))
    answer = await authorize(hub, status=400, query=query, json=body)
    assert answer["status"] == "Bad Request"
    assert message in answer["error"]
    assert asked(connected) == []
    async with sessions() as session:
        stored = await tokens.get(session, TokenKey("DE", "EMP", UID, TokenType.RFID))
    assert stored is not None
    assert stored.contract_id == "DE8ACC12E46L89"


async def test_a_path_uid_longer_than_a_token_uid_is_400(hub: Hub) -> None:
    answer = await authorize(hub, "U" * 37, status=400)
    assert "tokenUid" in answer["error"]


# --- the client's timeout of its own ---


async def test_a_call_may_have_a_timeout_of_its_own() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"})

    client = OcpiClient(httpx.MockTransport(handler), timeout=7.0)
    await client.call("POST", "https://emsp.example.com/tokens/X/authorize", token="t", send_base64=True)
    await client.call("POST", "https://emsp.example.com/tokens/X/authorize", token="t", send_base64=True, timeout=0.3)
    assert [set(s.values()) for s in seen] == [{7.0}, {0.3}]
