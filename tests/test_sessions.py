"""Charging end to end (docs/cpo-modules.md §4, §5, §4.7), over real HTTP: the station gateway reports a session on
the internal API; the eMSP that owns the token receives the Session's PUT, its PATCHes and the CDR's POST, in order
and valid; another eMSP receives nothing and cannot read them."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ocpi_hub.db.sessions import SessionRow
from ocpi_hub.ocpi.sessions import CDR, Session
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import Failure, FakeEmsp
from tests.servers import serve
from tests.test_push_delivery import connect, connector, drained, make_due, seed_location
from tests.test_push_restart import hub_process
from tests.test_tariffs import put_tariff, stepped

RECEIVES = [("sessions", "RECEIVER"), ("cdrs", "RECEIVER")]
OWNER = {"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "Owner eMSP"}}
OTHER = {"role": "EMSP", "country_code": "FR", "party_id": "OTH", "business_details": {"name": "Other eMSP"}}
SESSION_URL = "/2.2.1/sessions/NL/OHB/S1"

# FLAT 0.50 (20 % VAT), ENERGY 0.25/kWh (10 %), PARKING_TIME 2.00/h (20 %, step 900 s): W1 of the pricing
# examples (docs/cpo-modules.md §12).
TARIFF = {
    "country_code": "NL",
    "party_id": "OHB",
    "id": "T1",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.50, "vat": 20.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1},
                {"type": "PARKING_TIME", "price": 2.00, "vat": 20.0, "step_size": 900},
            ]
        }
    ],
}


def token(uid: str, party: dict[str, Any], whitelist: str = "ALLOWED") -> dict[str, Any]:
    """A setToken body (seed 002, camelCase)."""
    return {
        "countryCode": party["country_code"],
        "partyId": party["party_id"],
        "type": "RFID",
        "uid": uid,
        "contractId": f"{party['country_code']}-{party['party_id']}-{uid}",
        "issuer": party["business_details"]["name"],
        "valid": True,
        "cacheMode": whitelist,
    }


@pytest.fixture
async def emsps() -> AsyncIterator[tuple[FakeEmsp, FakeEmsp]]:
    owner = FakeEmsp(roles=[OWNER], token_c="token-c-owner")
    other = FakeEmsp(roles=[OTHER], token_c="token-c-other")
    for fake in (owner, other):
        fake.modules = [*fake.modules, *RECEIVES]
    async with serve(owner.app), serve(other.app):
        yield owner, other


async def charging_site(hub: Hub, *, tariff: bool = True) -> None:
    """LOC1 with EVSE E1 (connector 1 priced by T1 when `tariff`) and a token of each eMSP."""
    if tariff:
        assert (await put_tariff(hub, TARIFF)).status_code == 201
    priced = connector(tariff_ids=["T1"]) if tariff else connector()
    body = seed_location({"uid": "E1", "evse_id": "NL*OHB*E1", "connectors": [priced]})
    assert (await hub.api("POST", "/location/LOC1", json=body)).status_code == 201
    for uid, party in (("OWNER-RFID", OWNER), ("OTHER-RFID", OTHER)):
        assert (await hub.api("POST", "/token", json=token(uid, party))).status_code == 201


def start_body(**changes: Any) -> dict[str, Any]:
    return {
        "location_id": "LOC1",
        "evse_uid": "E1",
        "connector_id": "1",
        "token_uid": "OWNER-RFID",
        "start_date_time": "2024-06-04T12:00:00Z",
        "meter_start_wh": 1000,
    } | changes


async def charge(hub: Hub, session_id: str = "S1") -> dict[str, Any]:
    """W1: 20 kWh from 12:00Z to 14:00Z in four readings, parked until 14:40Z; returns the stop's answer."""
    started = await hub.api("POST", f"/sessions/{session_id}/start", json=start_body())
    assert started.status_code == 201, started.text
    for timestamp, wh in (("12:30", 6000), ("13:00", 11000), ("14:00", 21000), ("14:20", 21000)):
        reading = {"timestamp": f"2024-06-04T{timestamp}:00Z", "energy_wh": wh, "power_w": 10000}
        answer = await hub.api("POST", f"/sessions/{session_id}/meter", json=reading)
        assert answer.status_code == 200, answer.text
    stopped = await hub.api(
        "POST", f"/sessions/{session_id}/stop", json={"end_date_time": "2024-06-04T14:40:00Z", "meter_stop_wh": 21000}
    )
    assert stopped.status_code == 200, stopped.text
    result: dict[str, Any] = stopped.json()
    return result


def strict(body: Any, type_: type[Any]) -> Any:
    """What a receiver validating every field does: types, lengths, enums, no field it does not know."""
    decoded = msgspec.convert(body, type_, strict=True)
    assert msgspec.to_builtins(decoded) == body, "fields the spec does not define"
    return decoded


def assembled(emsp: FakeEmsp, path: str) -> dict[str, Any]:
    """The Session as a Receiver holds it after our PUT and PATCHes (a PATCH's charging_periods are appended)."""
    held: dict[str, Any] = {}
    for r in emsp.received(prefix=path):
        if r.method == "PUT":
            held = copy.deepcopy(r.body)
        elif r.method == "PATCH":
            assert "last_updated" in r.body
            for name, value in r.body.items():
                held[name] = held.get(name, []) + value if name == "charging_periods" else value
    return held


async def test_a_session_and_its_cdr_reach_the_owning_emsp_alone(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, other = emsps
    owner_id = await connect(hub, owner, "token-owner")
    other_id = await connect(hub, other, "token-other")
    await charging_site(hub)
    stopped = await charge(hub)
    await drained(hub, owner_id)
    await drained(hub, other_id)

    session, cdr = stopped["session"], stopped["cdr"]
    assert session["status"] == "COMPLETED"
    # Pushed: the Session's PUT, its PATCHes, then the CDR's POST, to the owner only.
    pushed = [(r.method, r.path) for r in owner.requests if r.path.startswith(("/2.2.1/sessions", "/2.2.1/cdrs"))]
    assert pushed[0] == ("PUT", SESSION_URL)
    assert pushed[-1] == ("POST", "/2.2.1/cdrs")
    assert {m for m, _ in pushed[1:-1]} <= {"PATCH", "PUT"}  # a PATCH merged into a PUT in flight is a PUT
    assert not [r for r in other.requests if "/sessions" in r.path or "/cdrs" in r.path]

    # What the owner holds after applying the PUT and the appended PATCHes is our Session, valid to the field.
    held = assembled(owner, SESSION_URL)
    assert held == session
    strict(held, Session)
    [posted] = owner.received("POST", "/2.2.1/cdrs")
    assert posted.body == cdr
    strict(posted.body, CDR)
    assert posted.headers["ocpi-to-party-id"] == "EMP"

    # The price: W1 of the worked examples, 7.00 / 7.90; the Session's last total_cost is the CDR's.
    assert cdr["total_cost"] == {"excl_vat": 7.0, "incl_vat": 7.9} == session["total_cost"]
    assert cdr["total_energy"] == session["kwh"] == 20.0
    assert cdr["total_parking_cost"] == {"excl_vat": 1.5, "incl_vat": 1.8}
    assert cdr["cdr_location"]["evse_id"] == "NL*OHB*E1"
    assert [t["id"] for t in cdr["tariffs"]] == ["T1"]
    volumes = [d for p in cdr["charging_periods"] for d in p["dimensions"]]
    assert sum(Decimal(str(d["volume"])) for d in volumes if d["type"] == "ENERGY") == Decimal("20")
    assert Decimal(str(cdr["total_time"])) == sum(
        Decimal(str(d["volume"])) for d in volumes if d["type"] in ("TIME", "PARKING_TIME")
    )

    # The CDR shows that the eMSP has it, and where.
    view = (await hub.api("GET", "/cdrs/S1")).json()
    assert view["sent"] is True
    assert view["location"] == f"{owner.base_url}/2.2.1/cdrs/S1"


async def test_each_update_is_a_patch_of_what_changed_and_each_period_is_sent_once(
    hub_factory: HubFactory, emsps: tuple[FakeEmsp, FakeEmsp], sessions: async_sessionmaker[AsyncSession]
) -> None:
    owner, _ = emsps
    hub = await hub_factory(push_worker=False)
    await connect(hub, owner, "token-owner")
    await charging_site(hub)

    def meter(at: str, wh: int) -> dict[str, Any]:
        return {"timestamp": f"2024-06-04T{at}:00Z", "energy_wh": wh}

    async with stepped(sessions, hub.settings) as (worker, _):
        await worker.step()  # the Tariff and the Location
        mine = len(owner.requests)
        await hub.api("POST", "/sessions/S1/start", json=start_body())
        await worker.step()
        [put] = owner.requests[mine:]
        assert (put.method, put.path, put.body["kwh"], put.body["charging_periods"]) == ("PUT", SESSION_URL, 0, [])
        sent = len(owner.requests)
        for at, wh in (("13:00", 11000), ("14:00", 21000), ("14:20", 21000)):
            answer = await hub.api("POST", "/sessions/S1/meter", json=meter(at, wh))
            assert answer.status_code == 200, answer.text
            await worker.step()
        first, second, third = (r.body for r in owner.requests[sent:])
        assert [r.method for r in owner.requests[sent:]] == ["PATCH"] * 3
        # 12:00-13:00 is still open (it grows until 14:00): only kwh and the cost so far.
        assert set(first) == {"kwh", "total_cost", "last_updated"}
        assert first["kwh"] == 10.0
        assert set(second) == {"kwh", "total_cost", "last_updated"}
        # At 14:20 the car has been parked since 14:00: the charging period is closed, and appended once.
        assert set(third) == {"total_cost", "charging_periods", "last_updated"}
        assert [p["start_date_time"] for p in third["charging_periods"]] == ["2024-06-04T12:00:00Z"]
        stop = {"end_date_time": "2024-06-04T14:40:00Z", "meter_stop_wh": 21000}
        await hub.api("POST", "/sessions/S1/stop", json=stop)
        await worker.step()
        await worker.step()
    completed, cdr = owner.requests[sent + 3 :]
    assert (completed.method, cdr.method, cdr.path) == ("PATCH", "POST", "/2.2.1/cdrs")
    assert completed.body["status"] == "COMPLETED"
    assert [p["start_date_time"] for p in completed.body["charging_periods"]] == ["2024-06-04T14:00:00Z"]
    assert assembled(owner, SESSION_URL) == (await hub.api("GET", "/sessions/S1")).json()


async def test_an_emsp_reads_only_its_own_sessions_and_cdrs(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, other = emsps
    await connect(hub, owner, "token-owner")
    await connect(hub, other, "token-other")
    await charging_site(hub)
    await charge(hub)

    for version, module in [(v, m) for v in ("2.2.1", "2.2") for m in ("sessions", "cdrs")]:
        mine = await hub.ocpi("GET", f"/ocpi/{version}/{module}", "token-owner")
        assert [o["id"] for o in mine.json()["data"]] == ["S1"]
        assert mine.headers["X-Total-Count"] == "1"
        theirs = await hub.ocpi("GET", f"/ocpi/{version}/{module}", "token-other")
        assert (theirs.json()["data"], theirs.headers["X-Total-Count"]) == ([], "0")
        assert (await hub.ocpi("GET", f"/ocpi/{version}/{module}/S1", "token-owner")).status_code == 200
        hidden = await hub.ocpi("GET", f"/ocpi/{version}/{module}/S1", "token-other")
        assert hidden.status_code == 404
        assert "data" not in hidden.json()
    details = (await hub.ocpi("GET", "/ocpi/2.2.1", "token-other")).json()["data"]["endpoints"]
    assert {("sessions", "SENDER"), ("cdrs", "SENDER")} <= {(e["identifier"], e["role"]) for e in details}

    preferences = {"profile_type": "FAST"}
    path = "/ocpi/2.2.1/sessions/S1/charging_preferences"
    answered = await hub.ocpi("PUT", path, "token-owner", json=preferences)
    assert answered.json()["data"] == "NOT_POSSIBLE"
    assert (await hub.ocpi("PUT", path, "token-other", json=preferences)).status_code == 404
    refused = await hub.ocpi("PUT", path, "token-owner", json={"profile_type": "SLOW"})
    assert refused.json()["status_code"] == 2001


async def test_the_same_start_is_one_session_and_a_different_one_a_conflict(hub: Hub) -> None:
    await charging_site(hub)
    first = await hub.api("POST", "/sessions/S1/start", json=start_body())
    again = await hub.api("POST", "/sessions/S1/start", json=start_body(start_date_time="2024-06-04T14:00:00+02:00"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = await hub.api("POST", "/sessions/S1/start", json=start_body(connector_id="2"))
    assert other.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (start_body(token_uid="NOBODY"), 400, "token_uid: no stored token 'NOBODY' of type RFID"),
        (start_body(location_id="LOC9"), 400, "location_id: unknown location 'LOC9'"),
        (start_body(evse_uid="E9"), 400, "evse_uid: unknown EVSE 'E9'"),
        (start_body(connector_id="9"), 400, "connector_id: unknown connector '9'"),
        (start_body(meter_start_wh=-1), 400, "meter_start_wh"),
        (start_body(start_date_time="yesterday"), 400, "start_date_time"),
        (start_body(colour="blue"), 400, "colour"),
        ({k: v for k, v in start_body().items() if k != "token_uid"}, 400, "token_uid"),
    ],
)
async def test_a_refused_start_names_the_field_and_writes_nothing(
    hub: Hub, sessions: async_sessionmaker[AsyncSession], body: dict[str, Any], status: int, message: str
) -> None:
    await charging_site(hub)
    answer = await hub.api("POST", "/sessions/S1/start", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(SessionRow))).scalar_one() == 0


async def test_no_session_starts_on_a_removed_evse(hub: Hub) -> None:
    await charging_site(hub)
    removed = await hub.api("POST", "/location/LOC1/evse/E1/status", json={"status": "REMOVED"})
    assert removed.status_code == 200, removed.text
    answer = await hub.api("POST", "/sessions/S1/start", json=start_body())
    assert answer.status_code == 409
    assert "REMOVED" in answer.json()["error"]


async def test_readings_only_go_forward(hub: Hub) -> None:
    await charging_site(hub)
    await hub.api("POST", "/sessions/S1/start", json=start_body())

    async def meter(at: str, wh: int) -> httpx.Response:
        return await hub.api("POST", "/sessions/S1/meter", json={"timestamp": f"2024-06-04T{at}Z", "energy_wh": wh})

    assert (await meter("12:30:00", 5000)).status_code == 200
    assert (await meter("12:30:00", 5000)).status_code == 200  # the same reading again: nothing changes
    older = await meter("12:20:00", 6000)
    assert (older.status_code, older.json()["error"]) == (
        409,
        "timestamp: 2024-06-04T12:20:00+00:00 is not after the last reading (2024-06-04T12:30:00+00:00)",
    )
    down = await meter("12:40:00", 4000)
    assert (down.status_code, down.json()["error"]) == (
        409,
        "energy_wh: the meter register went down from 5000 to 4000 Wh",
    )
    unknown = await hub.api("POST", "/sessions/S9/meter", json={"timestamp": "2024-06-04T12:00:00Z", "energy_wh": 1})
    assert unknown.status_code == 404
    stop = {"end_date_time": "2024-06-04T13:00:00Z", "meter_stop_wh": 6000}
    first = await hub.api("POST", "/sessions/S1/stop", json=stop)
    assert first.status_code == 200
    assert (await hub.api("POST", "/sessions/S1/stop", json=stop)).json() == first.json()  # the same CDR
    after = await meter("13:10:00", 7000)
    assert (after.status_code, after.json()["error"]) == (
        409,
        "session S1 is COMPLETED: a reading can no longer change it",
    )


async def test_without_a_tariff_there_is_no_cost(hub: Hub) -> None:
    await charging_site(hub, tariff=False)
    await hub.api("POST", "/sessions/S1/start", json=start_body())
    stopped = (
        await hub.api(
            "POST", "/sessions/S1/stop", json={"end_date_time": "2024-06-04T13:00:00Z", "meter_stop_wh": 8000}
        )
    ).json()
    assert "total_cost" not in stopped["session"]
    assert stopped["session"]["currency"] == "EUR"
    assert stopped["cdr"]["total_cost"] == {"excl_vat": 0.0, "incl_vat": 0.0}
    assert "tariffs" not in stopped["cdr"]
    assert stopped["cdr"]["total_energy"] == 7.0


async def test_a_credit_cdr_negates_the_costs_and_is_sent_like_any_cdr(
    hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]
) -> None:
    owner, _ = emsps
    owner_id = await connect(hub, owner, "token-owner")
    await charging_site(hub)
    cdr = (await charge(hub))["cdr"]
    credit = await hub.api("POST", "/cdrs/S1/credit")
    assert credit.status_code == 201, credit.text
    credited = credit.json()
    assert (credited["id"], credited["credit"], credited["credit_reference_id"]) == ("S1-C", True, "S1")
    assert credited["total_cost"] == {"excl_vat": -7.0, "incl_vat": -7.9}
    assert credited["total_energy_cost"] == {"excl_vat": -5.0, "incl_vat": -5.5}
    assert credited["total_energy"] == cdr["total_energy"]
    again = await hub.api("POST", "/cdrs/S1/credit")
    assert (again.status_code, again.json()) == (200, credited)
    assert (await hub.api("POST", "/cdrs/S1-C/credit")).status_code == 409
    assert (await hub.api("POST", "/cdrs/NOPE/credit")).status_code == 404
    await drained(hub, owner_id)
    assert [r.body["id"] for r in owner.received("POST", "/2.2.1/cdrs")] == ["S1", "S1-C"]
    strict(owner.received("POST", "/2.2.1/cdrs")[-1].body, CDR)
    listed = (await hub.api("GET", "/cdrs")).json()
    assert [(c["cdr"]["id"], c["sent"]) for c in listed] == [("S1", True), ("S1-C", True)]


async def test_a_failing_emsp_gets_every_update_in_order_and_the_cdr_last(
    hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]
) -> None:
    owner, _ = emsps
    owner_id = await connect(hub, owner, "token-owner")
    await charging_site(hub)
    await drained(hub, owner_id)
    owner.failures = [Failure(http_status=503)] * 3
    await charge(hub)
    for _ in range(200):  # each failure makes the worker wait for its retry: let that time pass, on the hub's clock
        if not owner.failures:
            break
        make_due(hub)
        await asyncio.sleep(0.05)
    make_due(hub)
    await drained(hub, owner_id)
    ours = [r for r in owner.requests if r.path.startswith(("/2.2.1/sessions", "/2.2.1/cdrs"))]
    arrived = [r for r in ours if r.path == "/2.2.1/cdrs" or r.path == SESSION_URL]
    assert arrived[-1].path == "/2.2.1/cdrs"
    final = (await hub.api("GET", "/sessions/S1")).json()
    assert assembled(owner, SESSION_URL) == final
    assert sum(1 for r in ours if r.method == "POST") >= 1


async def test_a_kill_of_the_hub_loses_no_session_update_and_no_cdr(
    database_url: str, engine: AsyncEngine, emsps: tuple[FakeEmsp, FakeEmsp], tmp_path: Path
) -> None:
    owner, _ = emsps
    log = tmp_path / "hub.log"
    # A delivery the killed process had claimed comes back when its claim's lease ends (README "Running at scale"):
    # a short lease, so that the wait below does not depend on whether the kill fell inside an attempt.
    async with hub_process(database_url, log, push_lease="2") as (hub, process):
        owner_id = await connect(hub, owner, "token-owner")
        await charging_site(hub)
        await drained(hub, owner_id)
        owner.failures = [Failure(http_status=500)] * 1000  # the eMSP goes down
        stopped = await charge(hub)
        process.kill()  # SIGKILL: no shutdown of any kind
        assert await process.wait() == -9

    owner.failures.clear()  # back; the first retry comes due within seconds (push/retry.py BACKOFF)
    async with hub_process(database_url, log, push_lease="2") as (hub, _):
        await drained(hub, owner_id)
    assert assembled(owner, SESSION_URL) == stopped["session"]
    arrived = [r for r in owner.requests if r.path in (SESSION_URL, "/2.2.1/cdrs") and r.method != "GET"]
    assert (arrived[-1].method, arrived[-1].body) == ("POST", stopped["cdr"])
