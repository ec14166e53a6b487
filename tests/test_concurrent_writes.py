"""Concurrent writes. First writes of one key: every one succeeds (last writer wins), none is a 500 from the unique
key, and one object is stored with the values of one of the writes; fired at once over real HTTP, so that the hub
runs them interleaved the way concurrent clients would. Writes of different fields of one token: neither undoes the
other."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import certificates, chargestations, locations, tokens, transaction
from tests.conftest import Hub
from tests.test_internal_certificates import self_signed
from tests.test_internal_chargestations import PASSWORD_HASH, register
from tests.test_internal_tokens import SEED_TOKEN
from tests.test_ocpi_tokens import EMSP_TOKEN, RFID, add_partner, put
from tests.test_push_delivery import put_location

WRITERS = 16


async def at_once(calls: list[Awaitable[httpx.Response]], *statuses: int) -> list[httpx.Response]:
    responses = await asyncio.gather(*calls)
    for response in responses:
        assert response.status_code in statuses, response.text
    return list(responses)


async def stored(sessions: async_sessionmaker[AsyncSession], model: Any) -> list[Any]:
    async with sessions() as session:
        return list(await session.scalars(select(model)))


async def test_ocpi_put_of_a_new_token(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_partner(sessions)  # the eMSP DE/EMP
    contracts = [f"DE8ACC12E46L{i:02}" for i in range(WRITERS)]
    responses = await at_once([put(hub, {**RFID, "contract_id": c}) for c in contracts], 200, 201)
    # The token is new to exactly one of them; the others replaced it.
    assert sorted(r.status_code for r in responses) == [200] * (WRITERS - 1) + [201]
    assert all(r.json()["status_code"] == 1000 for r in responses)
    [row] = await stored(sessions, tokens.Token)
    assert row.contract_id in contracts


async def test_set_token_of_a_new_token(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    contracts = [f"contract-{i}" for i in range(WRITERS)]
    await at_once([hub.api("POST", "/token", json={**SEED_TOKEN, "contractId": c}) for c in contracts], 201)
    [row] = await stored(sessions, tokens.Token)
    assert row.contract_id in contracts


async def test_register_a_new_charge_station(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    bodies = [{"securityProfile": i % 3, "base64SHA256Password": PASSWORD_HASH} for i in range(WRITERS)]
    await at_once([hub.api("POST", "/cs/cs001", json=body) for body in bodies], 201)
    [row] = await stored(sessions, chargestations.ChargeStation)
    assert row.security_profile in {0, 1, 2}
    assert row.registration_status == "Pending"


async def test_reconfigure_new_settings(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    await register(hub)
    writes = [{"a/x": f"v{i}", "b/y": f"v{i}", "c/z": f"v{i}"} for i in range(WRITERS)]
    await at_once([hub.api("POST", "/cs/cs001/reconfigure", json=settings) for settings in writes], 200)
    rows = await stored(sessions, chargestations.ChargeStationSetting)
    assert sorted(r.name for r in rows) == ["a/x", "b/y", "c/z"]
    # Each request is one transaction: the settings are those of one of them, not a mix.
    assert len({r.value for r in rows}) == 1
    assert rows[0].value in {f"v{i}" for i in range(WRITERS)}
    assert {r.status for r in rows} == {"Pending"}


async def test_install_a_new_certificate(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    await register(hub)
    pem, der_hash = self_signed()
    types = ["V2G", "MO", "MF", "CSMS"]
    bodies = [{"certificates": [{"type": types[i % 4], "certificate": pem}]} for i in range(WRITERS)]
    await at_once([hub.api("POST", "/cs/cs001/certificates", json=body) for body in bodies], 200)
    [row] = await stored(sessions, chargestations.ChargeStationCertificate)
    assert (row.certificate_hash, row.status) == (der_hash, "Pending")
    assert row.type in types


async def test_trigger_a_new_trigger(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    await register(hub)
    body = {"trigger": "BootNotification"}
    await at_once([hub.api("POST", "/cs/cs001/trigger", json=body) for _ in range(WRITERS)], 200)
    [row] = await stored(sessions, chargestations.ChargeStationTrigger)
    assert (row.trigger, row.status) == ("BootNotification", "Pending")


async def test_upload_a_new_certificate(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    pem, der_hash = self_signed()
    await at_once([hub.api("POST", "/certificate", json={"certificate": pem}) for _ in range(WRITERS)], 201)
    [row] = await stored(sessions, certificates.Certificate)
    assert row.certificate_hash == der_hash
    assert (await hub.api("GET", f"/certificate/{der_hash.replace('/', '_')}")).json() == {"certificate": pem}


CHANGES = 200
STATUSES = ["AVAILABLE", "CHARGING", "BLOCKED", "OUTOFORDER"]


async def test_many_status_changes_of_one_evse(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Issue #13 §3 (docs/ocpi.md §11): every change is applied (200, answering its own status) or refused cleanly
    (503 with Retry-After, nothing written); never a 500. The EVSE ends with the status of an applied change."""
    await put_location(hub, "LOC1")
    wanted = [STATUSES[i % len(STATUSES)] for i in range(CHANGES)]
    path = "/location/LOC1/evse/E1/status"
    responses = await at_once([hub.api("POST", path, json={"status": s}) for s in wanted], 200, 503)
    applied = {s for s, r in zip(wanted, responses, strict=True) if r.status_code == 200}
    for status, response in zip(wanted, responses, strict=True):
        if response.status_code == 200:
            assert response.json()["status"] == status
        else:
            assert response.headers["Retry-After"].isdigit(), response.headers
            assert response.json()["status"] == "Service Unavailable"
    async with sessions() as session:
        location = await locations.load(session, "LOC1")
    assert location is not None
    assert location.location.evses is not None
    assert location.location.evses[0].status in applied


@pytest.mark.skipif(
    not os.environ.get("OCPI_HUB_TEST_DATABASE_URL", "").startswith("postgresql"), reason="PostgreSQL's deadlocks"
)
async def test_two_writers_that_deadlock_both_commit(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Two transactions that lock two rows in opposite orders (as two writers of two kinds can on the change
    counters): PostgreSQL aborts one, and `transaction.committed` runs it again instead of failing the write."""
    async with sessions() as session:
        rows = "INSERT INTO change_counters (kind, shard, version) VALUES ('a', 0, 0), ('b', 0, 0)"
        await session.execute(text(rows))
        await session.commit()
    first_locks = {"a": asyncio.Event(), "b": asyncio.Event()}
    tries = {"a": 0, "b": 0}

    async def bump(session: AsyncSession, first: str, then: str) -> str:
        tries[first] += 1
        update = "UPDATE change_counters SET version = version + 1 WHERE kind = :kind"
        await session.execute(text(update), {"kind": first})
        if tries[first] == 1:  # the first time, wait until each holds its first row: then each waits for the other
            first_locks[first].set()
            await asyncio.wait_for(first_locks[then].wait(), 10)
        await session.execute(text(update), {"kind": then})
        return first

    async def writer(first: str, then: str) -> str:
        async with sessions() as session:
            return await transaction.committed(session, lambda: bump(session, first, then))

    assert sorted(await asyncio.gather(writer("a", "b"), writer("b", "a"))) == ["a", "b"]
    assert sorted(tries.values()) == [1, 2]  # one of them was aborted once and run again
    async with sessions() as session:
        versions = (await session.execute(text("SELECT version FROM change_counters WHERE kind IN ('a', 'b')"))).all()
    assert [v for (v,) in versions] == [2, 2]


async def test_a_writer_cancelled_during_a_statement_leaves_no_lock_behind(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A task cancelled inside a write transaction (a stopping sync, a request whose client left): SQLAlchemy closes
    its connection. On SQLite that connection lingered with its transaction while the cancellation's traceback kept
    the statement alive, and the process's next writer waited for its lock (the hub never finished stopping)."""
    postgres = sessions.kw["bind"].dialect.name == "postgresql"
    bump = text("UPDATE change_counters SET version = version + 1 WHERE kind = 'a'")
    slow = "SELECT pg_sleep(0.5)" if postgres else _SQLITE_HALF_SECOND
    async with sessions() as session:
        await session.execute(text("INSERT INTO change_counters (kind, shard, version) VALUES ('a', 0, 0)"))
        await session.commit()
    written = asyncio.Event()

    async def cancelled_writer() -> None:
        async with sessions() as session:
            await session.execute(bump)  # the write lock (SQLite) or the row's lock (PostgreSQL) is held from here
            written.set()
            await session.execute(text(slow))

    task = asyncio.create_task(cancelled_writer())
    await written.wait()
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as cancellation:
        await task
    # `cancellation` keeps the traceback alive, as a cancelled task's clean-up has it while it runs.
    async with sessions() as session:
        wait_briefly = "SET lock_timeout = '3s'" if postgres else "PRAGMA busy_timeout = 3000"
        await session.execute(text(wait_briefly))
        await session.execute(bump)
        await session.commit()
        version = await session.scalar(text("SELECT version FROM change_counters WHERE kind = 'a'"))
    assert version == 1  # the cancelled write was rolled back; the second one went through
    del cancellation  # alive until here


# About half a second of SQLite's CPU, in one statement.
_SQLITE_HALF_SECOND = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n"
)


# PostgreSQL sessions of this database waiting for a lock (a row's shows as its writer's transaction id, of no
# database in pg_locks).
_WAITING_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def _waits_for_a_lock(sessions: async_sessionmaker[AsyncSession], request: asyncio.Task[Any]) -> None:
    """Until `request` waits for the lock the test holds. SQLite shows no waiting lock: there, a pause in which the
    request reaches its write (the test can then only pass, never fail, where the machine is slower than that)."""
    async with sessions() as probe:
        if probe.get_bind().dialect.name != "postgresql":
            await asyncio.sleep(0.3)
            return
        for _ in range(500):
            if request.done() or (await probe.execute(_WAITING_LOCK)).scalar_one():
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the request never waited for the lock")


@pytest.mark.parametrize(
    ("write", "other_field", "other_value"),
    [
        # An eMSP revokes the token while the operator's gateway changes whether it may be cached.
        ("ocpi PATCH", "whitelist", "NEVER"),
        # The operator changes the token (setToken) while the eMSP changes a field the seed cannot express.
        ("setToken", "default_profile_type", "CHEAP"),
    ],
)
async def test_a_token_write_keeps_another_writers_field_committed_while_it_ran(
    hub: Hub, sessions: async_sessionmaker[AsyncSession], write: str, other_field: str, other_value: str
) -> None:
    """Each write changes only its own fields, without reading the token first: a write of the whole token as read
    before the other writer committed would undo that writer's change (a revocation, here)."""
    await add_partner(sessions)
    await put(hub, RFID)  # valid, whitelist ALLOWED, default_profile_type GREEN
    async with sessions() as other:
        key = (tokens.Token.uid == RFID["uid"],)
        await other.execute(update(tokens.Token).where(*key).values({other_field: other_value}))  # not committed
        if write == "setToken":
            seed = {"countryCode": "DE", "partyId": "EMP", "type": "RFID", "uid": RFID["uid"]}
            body = {**seed, "contractId": RFID["contract_id"], "issuer": "X", "valid": False, "cacheMode": "ALLOWED"}
            request = asyncio.create_task(hub.api("POST", "/token", json=body))
        else:
            patch = {"valid": False, "last_updated": "2019-06-19T02:11:11Z"}
            request = asyncio.create_task(
                hub.ocpi("PATCH", f"/ocpi/2.2.1/tokens/DE/EMP/{RFID['uid']}", EMSP_TOKEN, json=patch)
            )
        await _waits_for_a_lock(sessions, request)
        await other.commit()
    assert (await request).status_code in (200, 201)
    [row] = await stored(sessions, tokens.Token)
    assert (row.valid, getattr(row, other_field)) == (False, other_value)
