"""Commands end to end (docs/cpo-modules.md §6, §6.5), over real HTTP: an eMSP posts commands and receives their
results; the test plays the station gateway on the internal API. Every accepted command's CommandResult arrives:
the gateway's, or TIMEOUT, also across a kill of the hub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ocpi_hub import traffic
from ocpi_hub.db import locations as locations_db
from ocpi_hub.db.commands import CommandRow
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.ocpi.locations import Capability
from ocpi_hub.push import outbox
from ocpi_hub.stores import locations as locations_store
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import FakeEmsp
from tests.servers import serve
from tests.test_push_delivery import connect, drained, eventually, seed_location
from tests.test_push_restart import hub_process
from tests.test_sessions import OTHER, OWNER, RECEIVES, charging_site, start_body

TOKEN = {
    "country_code": "DE",
    "party_id": "EMP",
    "uid": "APP-USER-1",
    "type": "APP_USER",
    "contract_id": "DE-EMP-C1",
    "issuer": "Owner eMSP",
    "valid": True,
    "whitelist": "ALLOWED",
    "last_updated": "2026-01-01T00:00:00Z",
}


@pytest.fixture
async def emsps() -> AsyncIterator[tuple[FakeEmsp, FakeEmsp]]:
    owner = FakeEmsp(roles=[OWNER], token_c="token-c-owner")
    other = FakeEmsp(roles=[OTHER], token_c="token-c-other")
    for fake in (owner, other):
        fake.modules = [*fake.modules, *RECEIVES, ("commands", "SENDER")]
    async with serve(owner.app), serve(other.app):
        yield owner, other


async def command(hub: Hub, name: str, body: dict[str, Any], token: str = "token-owner") -> httpx.Response:
    return await hub.ocpi("POST", f"/ocpi/2.2.1/commands/{name}", token, json=body)


def start_session(emsp: FakeEmsp, reference: str = "REF-1", **changes: Any) -> dict[str, Any]:
    return {
        "response_url": f"{emsp.base_url}/2.2.1/commands/START_SESSION/{reference}",
        "token": TOKEN,
        "location_id": "LOC1",
        "evse_uid": "E1",
        "connector_id": "1",
        "authorization_reference": reference,
    } | changes


def results(emsp: FakeEmsp) -> list[tuple[str, Any]]:
    return [(r.path.rsplit("/", 1)[-1], r.body) for r in emsp.received("POST", "/2.2.1/commands/")]


async def pending(hub: Hub, **params: Any) -> list[dict[str, Any]]:
    answer = await hub.api("GET", "/commands", params={"state": "pending", **params})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


async def test_an_accepted_command_gets_the_gateways_result(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, _ = emsps
    partner_id = await connect(hub, owner, "token-owner")
    await charging_site(hub)
    answer = await command(hub, "START_SESSION", start_session(owner))
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"result": "ACCEPTED", "timeout": 60}
    assert answer.headers["OCPI-to-party-id"] == "EMP"

    [open_] = await pending(hub)
    assert (open_["command"], open_["location_id"], open_["evse_uid"], open_["connector_id"]) == (
        "START_SESSION",
        "LOC1",
        "E1",
        "1",
    )
    assert open_["token"]["uid"] == "APP-USER-1"
    assert open_["authorization_reference"] == "REF-1"
    # The eMSP's token is stored: the session that follows can use it.
    assert (await hub.api("GET", "/token/APP-USER-1")).json()["contractId"] == "DE-EMP-C1"

    reported = await hub.api("POST", f"/commands/{open_['id']}/result", json={"result": "ACCEPTED"})
    assert reported.status_code == 200, reported.text
    await drained(hub, partner_id)
    assert results(owner) == [("REF-1", {"result": "ACCEPTED"})]
    [arrived] = owner.received("POST", "/2.2.1/commands/")
    assert (arrived.headers["ocpi-from-party-id"], arrived.headers["ocpi-to-party-id"]) == ("OHB", "EMP")
    shown = (await hub.api("GET", f"/commands/{open_['id']}")).json()
    assert (shown["state"], shown["result"], shown["result_sent"]) == ("answered", "ACCEPTED", True)
    assert await pending(hub) == []

    again = await hub.api("POST", f"/commands/{open_['id']}/result", json={"result": "FAILED"})
    assert (again.status_code, again.json()["error"]) == (
        409,
        f"command {open_['id']} already has its result (ACCEPTED)",
    )
    assert (await hub.api("POST", "/commands/999/result", json={"result": "FAILED"})).status_code == 404
    bad = await hub.api("POST", f"/commands/{open_['id']}/result", json={"result": "MAYBE"})
    assert bad.status_code == 400
    assert "result" in bad.json()["error"]


async def test_no_report_before_the_expiry_is_a_timeout(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, _ = emsps
    partner_id = await connect(hub, owner, "token-owner")
    await charging_site(hub)
    await command(hub, "START_SESSION", start_session(owner))
    [open_] = await pending(hub)
    hub.clock.advance(61)  # type: ignore[attr-defined]
    await eventually(lambda: bool(results(owner)))  # the worker looks every second
    await drained(hub, partner_id)
    assert results(owner) == [("REF-1", {"result": "TIMEOUT"})]
    late = await hub.api("POST", f"/commands/{open_['id']}/result", json={"result": "ACCEPTED"})
    assert (late.status_code, late.json()["error"]) == (409, f"command {open_['id']} already has its result (TIMEOUT)")


async def test_a_result_or_a_timeout_arrives_across_a_kill_of_the_hub(
    database_url: str, engine: AsyncEngine, emsps: tuple[FakeEmsp, FakeEmsp], tmp_path: Path
) -> None:
    owner, _ = emsps
    log = tmp_path / "hub.log"
    # A short lease: a result the killed process had claimed, but not sent, comes back when its claim ends (as in
    # test_sessions.py), so that the wait below does not depend on where the kill fell.
    async with hub_process(database_url, log, command_timeout="2", push_lease="2") as (hub, process):
        partner_id = await connect(hub, owner, "token-owner")
        await charging_site(hub)
        await command(hub, "START_SESSION", start_session(owner, "REF-A"))
        await command(hub, "START_SESSION", start_session(owner, "REF-B"))
        first, _ = await pending(hub)
        await hub.api("POST", f"/commands/{first['id']}/result", json={"result": "REJECTED", "message": "busy"})
        process.kill()  # before anything could be sent, perhaps; the second has no result yet
        assert await process.wait() == -9

    async with hub_process(database_url, log, command_timeout="2", push_lease="2") as (hub, _):
        await eventually(lambda: len(results(owner)) == 2)
        await drained(hub, partner_id)
    got = dict(results(owner))
    assert got["REF-A"]["result"] == "REJECTED"
    assert got["REF-A"]["message"] == [{"language": "en", "text": "busy"}]
    assert got["REF-B"] == {"result": "TIMEOUT"}


async def test_the_answers_that_are_not_accepted(
    hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp], sessions: async_sessionmaker[AsyncSession]
) -> None:
    owner, other = emsps
    await connect(hub, owner, "token-owner")
    await connect(hub, other, "token-other")
    await charging_site(hub)
    assert (await hub.api("POST", "/sessions/S1/start", json=start_body())).status_code == 201

    stop = {"response_url": f"{other.base_url}/2.2.1/commands/STOP/1", "session_id": "S1"}
    theirs = await command(hub, "STOP_SESSION", stop, "token-other")
    assert theirs.json()["data"]["result"] == "UNKNOWN_SESSION"
    unknown = await command(hub, "STOP_SESSION", stop | {"session_id": "NOPE"}, "token-other")
    assert unknown.json()["data"]["result"] == "UNKNOWN_SESSION"
    ours = await command(hub, "STOP_SESSION", stop | {"response_url": f"{owner.base_url}/2.2.1/commands/STOP/2"})
    assert ours.json()["data"]["result"] == "ACCEPTED"
    [stopping] = await pending(hub)
    assert (stopping["session_id"], stopping["location_id"], stopping["evse_uid"]) == ("S1", "LOC1", "E1")
    await hub.api("POST", f"/commands/{stopping['id']}/result", json={"result": "ACCEPTED"})

    for body, message in (
        (start_session(owner, evse_uid="E9"), "unknown EVSE E9 at location LOC1"),
        (start_session(owner, location_id="LOC9"), "unknown location LOC9"),
        (start_session(owner, connector_id="7"), "unknown connector 7 of EVSE E1"),
    ):
        refused = await command(hub, "START_SESSION", body)
        assert (refused.status_code, refused.json()["status_code"]) == (404, 2003)
        assert refused.json()["data"]["result"] == "REJECTED"
        assert refused.json()["data"]["message"] == [{"language": "en", "text": message}]

    foreign = await command(hub, "START_SESSION", start_session(owner, token=TOKEN | {"party_id": "OTH"}))
    assert foreign.json()["data"]["result"] == "REJECTED"
    reserve = {
        "response_url": f"{owner.base_url}/2.2.1/commands/RESERVE/1",
        "token": TOKEN,
        "expiry_date": "2099-01-01T00:00:00Z",
        "reservation_id": "R1",
        "location_id": "LOC1",
        "evse_uid": "E1",
    }
    not_reservable = await command(hub, "RESERVE_NOW", reserve)
    assert not_reservable.json()["data"] == {
        "result": "REJECTED",
        "timeout": 0,
        "message": [{"language": "en", "text": "EVSE E1 cannot be reserved (not RESERVABLE)"}],
    }
    nothing = await command(hub, "FLY_AWAY", {"response_url": f"{owner.base_url}/x"})
    assert (nothing.status_code, nothing.json()["data"]["result"]) == (200, "NOT_SUPPORTED")
    async with sessions() as session:  # only the accepted STOP_SESSION was stored
        assert (await session.execute(select(func.count()).select_from(CommandRow))).scalar_one() == 1


async def test_a_bad_body_is_2001_naming_the_field(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, _ = emsps
    await connect(hub, owner, "token-owner")
    await charging_site(hub)
    missing = {k: v for k, v in start_session(owner).items() if k != "location_id"}
    answer = await command(hub, "START_SESSION", missing)
    assert (answer.status_code, answer.json()["status_code"]) == (200, 2001)
    assert "location_id" in answer.json()["status_message"]
    assert await pending(hub) == []


async def test_a_private_response_url_is_refused_unless_allowed(
    hub_factory: HubFactory, emsps: tuple[FakeEmsp, FakeEmsp]
) -> None:
    owner, _ = emsps
    lenient = await hub_factory()  # registers the eMSP, whose own URLs are on 127.0.0.1
    await connect(lenient, owner, "token-owner")
    await charging_site(lenient)
    hub = await hub_factory(allow_private_partner_urls=False)  # a hub on the same database that does not allow them
    answer = await command(hub, "START_SESSION", start_session(owner, response_url="http://10.0.0.1/results/1"))
    assert (answer.status_code, answer.json()["status_code"]) == (200, 2001)
    assert answer.json()["status_message"].startswith("response_url: 'http://10.0.0.1/results/1' points at 10.0.0.1")
    assert await pending(hub) == []


async def test_the_same_command_twice_is_one_command(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, _ = emsps
    await connect(hub, owner, "token-owner")
    await charging_site(hub)
    first = await command(hub, "START_SESSION", start_session(owner))
    second = await command(hub, "START_SESSION", start_session(owner))
    assert first.json()["data"] == second.json()["data"]
    assert len(await pending(hub)) == 1
    other_url = await command(hub, "START_SESSION", start_session(owner, "REF-2"))
    assert other_url.json()["data"]["result"] == "ACCEPTED"
    assert len(await pending(hub)) == 2


async def test_a_cancel_of_an_unknown_reservation_is_answered_without_the_gateway(
    hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]
) -> None:
    owner, _ = emsps
    partner_id = await connect(hub, owner, "token-owner")
    cancel = {"response_url": f"{owner.base_url}/2.2.1/commands/CANCEL/9", "reservation_id": "R9"}
    answer = await command(hub, "CANCEL_RESERVATION", cancel)
    assert answer.json()["data"]["result"] == "ACCEPTED"
    await drained(hub, partner_id)
    assert results(owner) == [("9", {"result": "UNKNOWN_RESERVATION"})]
    assert await pending(hub) == []


async def make_reservable(sessions: async_sessionmaker[AsyncSession], location_id: str) -> None:
    """The seed's registerLocation knows no capabilities: give every EVSE RESERVABLE through the store."""
    async with sessions() as session:
        stored = await locations_db.load(session, location_id)
        assert stored is not None
        assert stored.location.evses
        evses = [msgspec.structs.replace(e, capabilities=[Capability.RESERVABLE]) for e in stored.location.evses]
        location = msgspec.structs.replace(stored.location, evses=evses)
        now = utc_now()
        await outbox.committed(session, lambda: locations_store.save_location(session, location, now=now), now=now)


async def test_a_reservation_is_given_a_charger_id_of_ours(
    hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp], sessions: async_sessionmaker[AsyncSession]
) -> None:
    owner, _ = emsps
    await connect(hub, owner, "token-owner")
    await charging_site(hub)
    assert (await hub.api("POST", "/location/LOC2", json=seed_location())).status_code == 201
    await make_reservable(sessions, "LOC2")
    reserve = {
        "response_url": f"{owner.base_url}/2.2.1/commands/RESERVE/1",
        "token": TOKEN,
        "expiry_date": "2099-01-01T00:00:00Z",
        "reservation_id": "R1",
        "location_id": "LOC2",
    }
    assert (await command(hub, "RESERVE_NOW", reserve)).json()["data"]["result"] == "ACCEPTED"
    cancel = {"response_url": f"{owner.base_url}/2.2.1/commands/CANCEL/1", "reservation_id": "R1"}
    assert (await command(hub, "CANCEL_RESERVATION", cancel)).json()["data"]["result"] == "ACCEPTED"
    reserved, cancelled = await pending(hub)
    assert reserved["reservation_id"] == cancelled["reservation_id"] == "R1"
    assert cancelled["charger_reservation_id"] == reserved["id"]


async def test_a_long_poll_answers_when_a_command_arrives(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, _ = emsps
    await connect(hub, owner, "token-owner")
    await charging_site(hub)
    assert await pending(hub, wait=0.2) == []  # nothing: answered after the wait
    waiting = asyncio.create_task(pending(hub, wait=20))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await command(hub, "START_SESSION", start_session(owner))
    async with asyncio.timeout(5):  # far less than the 20 s asked
        [found] = await waiting
    assert found["command"] == "START_SESSION"


async def test_a_remote_start_to_its_cdr(hub: Hub, emsps: tuple[FakeEmsp, FakeEmsp]) -> None:
    owner, _ = emsps
    partner_id = await connect(hub, owner, "token-owner")
    await charging_site(hub)
    await command(hub, "START_SESSION", start_session(owner, "APP-42"))
    [open_] = await pending(hub)
    await hub.api("POST", f"/commands/{open_['id']}/result", json={"result": "ACCEPTED"})
    body = start_body(token_uid="APP-USER-1", token_type="APP_USER", command_id=open_["id"])
    started = await hub.api("POST", "/sessions/S1/start", json=body)
    assert started.status_code == 201, started.text
    assert (started.json()["auth_method"], started.json()["authorization_reference"]) == ("COMMAND", "APP-42")
    reading = {"timestamp": "2024-06-04T13:00:00Z", "energy_wh": 11000}
    assert (await hub.api("POST", "/sessions/S1/meter", json=reading)).status_code == 200
    stop = {"end_date_time": "2024-06-04T14:00:00Z", "meter_stop_wh": 21000}
    assert (await hub.api("POST", "/sessions/S1/stop", json=stop)).status_code == 200
    await drained(hub, partner_id)
    assert results(owner) == [("APP-42", {"result": "ACCEPTED"})]
    [cdr] = owner.received("POST", "/2.2.1/cdrs")
    assert (cdr.body["auth_method"], cdr.body["authorization_reference"]) == ("COMMAND", "APP-42")
    assert cdr.body["cdr_token"]["uid"] == "APP-USER-1"
    assert cdr.body["total_energy"] == 20.0
    wrong = await hub.api("POST", "/sessions/S2/start", json=start_body(command_id=99999))
    assert (wrong.status_code, wrong.json()["error"]) == (400, "command_id: 99999 is not a START_SESSION command")


async def test_the_gateways_reports_make_their_statements_on_the_event_loop_on_sqlite(
    hub_factory: HubFactory,
    emsps: tuple[FakeEmsp, FakeEmsp],
    engine: AsyncEngine,
    calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A status change, a Session's start, reading and stop, and a command's result: under a busy crawl each trip
    to aiosqlite's thread waits for a turn of the loop while the write lock is held (docs/ocpi.md §11, "Short writes
    on the event loop's thread"), so none goes there, their commits included."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: on PostgreSQL on_the_loop() changes nothing")
    # Nothing else of the hub's on the thread meanwhile: no push worker rounds, no traffic log batch written.
    monkeypatch.setattr(traffic, "FLUSH_SECONDS", 3600)
    hub = await hub_factory(push_worker=False)
    owner, _ = emsps
    await connect(hub, owner, "token-owner")
    await charging_site(hub)
    assert (await command(hub, "START_SESSION", start_session(owner))).status_code == 200
    [started] = await pending(hub)
    reports = [
        ("/location/LOC1/evse/E1/status", {"status": "CHARGING"}, 200),
        ("/sessions/S1/start", start_body(), 201),
        ("/sessions/S1/meter", {"timestamp": "2024-06-04T12:30:00Z", "energy_wh": 6000}, 200),
        ("/sessions/S1/stop", {"end_date_time": "2024-06-04T13:00:00Z", "meter_stop_wh": 11000}, 200),
        (f"/commands/{started['id']}/result", {"result": "ACCEPTED"}, 200),
    ]
    for path, body, status in reports:
        calls.clear()
        answer = await hub.api("POST", path, json=body)
        assert answer.status_code == status, answer.text
        # Nothing at all (a command's result reads its answer afterwards, once committed).
        assert calls == (["_run"] if path.startswith("/commands/") else []), (path, calls)
