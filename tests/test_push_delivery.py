"""What reaches an eMSP's Locations Receiver for each kind of change (README: "Pushing to the eMSPs"), over real HTTP:
the hub and a fake eMSP on 127.0.0.1. The helpers here serve the other test_push_* modules too."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.conftest import Hub, MovableClock
from tests.fake_emsp import FakeEmsp, Recorded

TOKEN = "token-a-of-emsp"  # the fake eMSP's own token, agreed for both directions
LOCATIONS = "/2.2.1/locations/NL/OHB"


def connector(connector_id: str = "1", standard: str = "IEC_62196_T2", **changes: Any) -> dict[str, Any]:
    return {
        "id": connector_id,
        "standard": standard,
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 32,
    } | changes


def seed_location(*evses: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A registerLocation body of our party NL/OHB."""
    return {
        "country_code": "NL",
        "party_id": "OHB",
        "name": "Utrecht Centraal P+R",
        "address": "Croeselaan 38",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": {"latitude": "52.089386", "longitude": "5.109612"},
        "evses": [copy.deepcopy(e) for e in evses] or [{"uid": "E1", "connectors": [connector()]}],
    } | changes


async def put_location(hub: Hub, location_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await hub.api("POST", f"/location/{location_id}", json=body or seed_location())
    assert response.status_code == 201, response.text
    stored: dict[str, Any] = response.json()
    return stored


async def set_status(hub: Hub, location_id: str, evse_uid: str, status: str) -> dict[str, Any]:
    response = await hub.api("POST", f"/location/{location_id}/evse/{evse_uid}/status", json={"status": status})
    assert response.status_code == 200, response.text
    evse: dict[str, Any] = response.json()
    return evse


async def connect(hub: Hub, emsp: FakeEmsp, token: str = TOKEN) -> int:
    """Register the fake eMSP with a token agreed for both directions; returns the partner id."""
    emsp.accepted_tokens.add(token)
    response = await hub.api(
        "POST", "/register", json={"token": token, "url": f"{emsp.base_url}/versions", "status": "REGISTERED"}
    )
    assert response.status_code == 201, response.text
    partner_id: int = response.json()["id"]
    return partner_id


T = TypeVar("T")


async def poll(get: Callable[[], Awaitable[T]], ok: Callable[[T], bool], seconds: float = 15.0) -> T:
    """Poll (bounded) until what `get()` returns is `ok`; returns it."""
    for _ in range(int(seconds / 0.02)):
        value = await get()
        if ok(value):
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds} s: {value!r}")


async def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Poll (bounded) until `check()` holds."""

    async def get() -> bool:
        return check()

    await poll(get, bool, seconds)


def pushes(emsp: FakeEmsp, path: str = "") -> list[Recorded]:
    """What the fake received below our locations (or at exactly LOCATIONS + path), in order."""
    return [
        r
        for r in emsp.requests
        if r.path.startswith(f"/{emsp.versions[0]}/locations/") and (not path or r.path.endswith(path))
    ]


async def deliveries(hub: Hub, partner_id: int, state: str = "pending") -> list[dict[str, Any]]:
    response = await hub.api("GET", f"/partners/{partner_id}/deliveries", params={"state": state})
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["deliveries"]
    return listed


async def listed(
    hub: Hub, partner_id: int, state: str, ok: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The partner's deliveries in `state`, once they are `ok` (bounded polling)."""
    return await poll(lambda: deliveries(hub, partner_id, state), ok)


async def drained(hub: Hub, partner_id: int) -> None:
    """Wait until nothing is pending for the partner."""
    await listed(hub, partner_id, "pending", lambda pending: not pending)


async def failed(hub: Hub, partner_id: int, attempts: int) -> dict[str, Any]:
    """The partner's one pending delivery, once it has failed `attempts` times."""
    [pending] = await listed(hub, partner_id, "pending", lambda p: len(p) == 1 and p[0]["attempts"] == attempts)
    return pending


# Longer than any wait for a retry: the backoff's cap (an hour, plus its jitter) or a Retry-After of our tests.
LONGEST_WAIT = 3700.0


def make_due(hub: Hub) -> None:
    """Let time pass for the retries, on the hub's clock: every pending delivery is due now."""
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    clock.advance(LONGEST_WAIT)


# --- The tests of this module --------------------------------------------------------------------------------------


async def test_every_kind_of_change_is_the_smallest_push(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)

    stored = await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    [put] = pushes(emsp)
    assert (put.method, put.path, put.body) == ("PUT", f"{LOCATIONS}/LOC1", stored)

    evse = await set_status(hub, "LOC1", "E1", "CHARGING")
    await eventually(lambda: len(pushes(emsp)) == 2)
    patch = pushes(emsp)[-1]
    assert (patch.method, patch.path) == ("PATCH", f"{LOCATIONS}/LOC1/E1")
    assert patch.body == {"status": "CHARGING", "last_updated": evse["last_updated"]}

    renamed = await put_location(hub, "LOC1", seed_location(name="Utrecht Centraal"))
    await eventually(lambda: len(pushes(emsp)) == 3)
    patch = pushes(emsp)[-1]
    assert (patch.method, patch.path) == ("PATCH", f"{LOCATIONS}/LOC1")
    assert patch.body == {"name": "Utrecht Centraal", "last_updated": renamed["last_updated"]}

    stronger = {"uid": "E1", "connectors": [connector(max_amperage=63)]}
    changed = await put_location(hub, "LOC1", seed_location(stronger, name="Utrecht Centraal"))
    await eventually(lambda: len(pushes(emsp)) == 4)
    put = pushes(emsp)[-1]
    assert (put.method, put.path) == ("PUT", f"{LOCATIONS}/LOC1/E1/1")
    assert put.body == changed["evses"][0]["connectors"][0]

    added = {"uid": "E2", "connectors": [connector(standard="IEC_62196_T2_COMBO")]}
    changed = await put_location(hub, "LOC1", seed_location(stronger, added, name="Utrecht Centraal"))
    await eventually(lambda: len(pushes(emsp)) == 5)
    put = pushes(emsp)[-1]
    assert (put.method, put.path, put.body) == ("PUT", f"{LOCATIONS}/LOC1/E2", changed["evses"][1])

    # An EVSE the CSMS no longer lists becomes REMOVED: a status-only change.
    changed = await put_location(hub, "LOC1", seed_location(added, name="Utrecht Centraal"))
    await eventually(lambda: len(pushes(emsp)) == 6)
    patch = pushes(emsp)[-1]
    assert (patch.method, patch.path) == ("PATCH", f"{LOCATIONS}/LOC1/E1")
    assert patch.body == {"status": "REMOVED", "last_updated": changed["evses"][0]["last_updated"]}
    await drained(hub, partner_id)


async def test_push_headers(hub: Hub, emsp: FakeEmsp) -> None:
    await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    [put] = pushes(emsp)
    assert put.headers["authorization"] == "Token " + base64.b64encode(TOKEN.encode()).decode()
    assert put.headers["x-request-id"]
    assert put.headers["x-correlation-id"]
    assert put.headers["content-type"] == "application/json"
    assert put.headers["user-agent"] == "ocpi-hub"
    # From the Location's owner (one of our parties) to the partner's eMSP role.
    routing = {k: v for k, v in put.headers.items() if k.startswith("ocpi-")}
    assert routing == {
        "ocpi-from-country-code": "NL",
        "ocpi-from-party-id": "OHB",
        "ocpi-to-country-code": "DE",
        "ocpi-to-party-id": "EMP",
    }


async def test_a_new_partner_gets_every_location_once_and_a_resync_again(hub: Hub, emsp: FakeEmsp) -> None:
    first = await put_location(hub, "LOC1")
    second = await put_location(hub, "LOC2")
    partner_id = await connect(hub, emsp)
    await eventually(lambda: len(pushes(emsp)) == 2)
    await drained(hub, partner_id)
    assert [(r.method, r.path, r.body) for r in pushes(emsp)] == [
        ("PUT", f"{LOCATIONS}/LOC1", first),
        ("PUT", f"{LOCATIONS}/LOC2", second),
    ]

    response = await hub.api("POST", f"/partners/{partner_id}/resync")
    assert (response.status_code, response.json()) == (200, {"count": 2})
    await eventually(lambda: len(pushes(emsp)) == 4)
    assert [r.path for r in pushes(emsp)[2:]] == [f"{LOCATIONS}/LOC1", f"{LOCATIONS}/LOC2"]


async def test_a_partner_registering_itself_gets_every_location(hub: Hub, emsp: FakeEmsp) -> None:
    stored = await put_location(hub, "LOC1")
    assert (await hub.api("POST", "/register", json={"token": "token-a-for-the-emsp"})).status_code == 201
    emsp.accepted_tokens.add("token-b-of-emsp")
    credentials = {"token": "token-b-of-emsp", "url": f"{emsp.base_url}/versions", "roles": [emsp_role()]}
    response = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", "token-a-for-the-emsp", json=credentials)
    assert response.status_code == 200, response.text
    await eventually(lambda: len(pushes(emsp)) == 1)
    [put] = pushes(emsp)
    assert (put.method, put.path, put.body, put.token) == ("PUT", f"{LOCATIONS}/LOC1", stored, "token-b-of-emsp")


def emsp_role() -> dict[str, Any]:
    return {"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "Fake eMSP"}}


async def test_resync_needs_a_partner_that_receives_locations(hub: Hub, emsp: FakeEmsp) -> None:
    assert (await hub.api("POST", "/partners/99/resync")).status_code == 404
    pending = (await hub.api("POST", "/register", json={"token": "token-a-for-the-emsp"})).json()["id"]
    response = await hub.api("POST", f"/partners/{pending}/resync")
    assert (response.status_code, response.json()["error"]) == (409, f"partner {pending} is pending")
    emsp.modules = [("credentials", "SENDER")]
    partner_id = await connect(hub, emsp)
    response = await hub.api("POST", f"/partners/{partner_id}/resync")
    assert response.status_code == 409
    assert response.json()["error"] == f"partner {partner_id} has no locations or tariffs RECEIVER endpoint"


async def test_a_2_2_partner_gets_the_2_2_view(hub: Hub, emsp: FakeEmsp) -> None:
    emsp.versions = ["2.2"]
    partner_id = await connect(hub, emsp)
    gbt_only = {"uid": "E2", "connectors": [connector(standard="GBT_AC")]}  # a 2.2.1 standard: 2.2 cannot show it
    stored = await put_location(hub, "LOC1", seed_location({"uid": "E1", "connectors": [connector()]}, gbt_only))
    await eventually(lambda: len(pushes(emsp)) == 1)
    [put] = pushes(emsp)
    assert put.path == "/2.2/locations/NL/OHB/LOC1"
    assert put.body == stored | {"evses": stored["evses"][:1]}

    await set_status(hub, "LOC1", "E2", "CHARGING")  # invisible in 2.2: delivered as nothing
    await set_status(hub, "LOC1", "E1", "CHARGING")
    await eventually(lambda: len(pushes(emsp)) == 2)
    await drained(hub, partner_id)
    assert [(r.method, r.path) for r in pushes(emsp)] == [
        ("PUT", "/2.2/locations/NL/OHB/LOC1"),
        ("PATCH", "/2.2/locations/NL/OHB/LOC1/E1"),
    ]


async def test_raw_token_for_peers_that_need_it_and_a_401_is_given_up_at_once(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    response = await hub.api("POST", f"/partners/{partner_id}/settings", json={"send_base64": False})
    assert response.status_code == 200
    await put_location(hub, "LOC1")
    await eventually(lambda: len(pushes(emsp)) == 1)
    [put] = pushes(emsp)
    assert put.headers["authorization"] == f"Token {TOKEN}"

    # This fake reads tokens base64-encoded only, so it answers 401: their credentials differ, no blind retry.
    [letter] = await listed(hub, partner_id, "dead", bool)
    assert (letter["location_id"], letter["method"], letter["attempts"]) == ("LOC1", "PUT", 1)
    assert letter["last_error"].startswith(f"PUT {emsp.base_url}{LOCATIONS}/LOC1: HTTP 401")
    assert await deliveries(hub, partner_id) == []
    assert len(pushes(emsp)) == 1
