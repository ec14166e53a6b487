"""Benchmark of charging sessions (README: "Benchmarks"): 1,000 concurrent sessions with 20 meter readings each,
reported by a station gateway on the internal API of a real `ocpi-hub serve` process, and pushed to one fake eMSP;
against the ceiling, plain httpx sending the same requests to the same eMSP with the worker's concurrency, in the
same run.

    python bench/sessions_bench.py [--database-url URL] [--sessions 1000] [--readings 20] [--rounds 2]

1. Starts the fake eMSP (a minimal ASGI app in its own process: uvicorn, uvloop, httptools) that answers every
   request with a success envelope (a CDR POST with 201 and a Location header) and counts what it got.
2. Per round, on a fresh database: starts `ocpi-hub serve` (its push worker on), stores through its internal API a
   Tariff, 250 Locations of 4 EVSEs naming it and a token per session, and registers the eMSP as a partner with
   sessions and cdrs RECEIVER endpoints (a row, as the registration handshake would leave it).
3. The gateway: every session starts, sends its readings one after the other and stops, all sessions at once
   (64 requests in flight). Readings per second: readings / the time from the first start to the last stop.
   Deliveries per second: what the eMSP received / the time from the first start until the outbox is empty.
4. The ceiling: plain httpx sends as many requests as the eMSP received (Session PATCHes of the same size, with
   the same headers) with LANES in flight, the worker's concurrency towards one partner.
5. Prints per round and the median: readings/s, deliveries/s, ceiling requests/s and deliveries/ceiling.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvicorn
import uvloop
from common import SUCCESS, TARIFF, free_port, location, send_plain, wait_for
from sqlalchemy import func, select, text

from ocpi_hub.client import UNBOUNDED
from ocpi_hub.credentials_token import authorization_header
from ocpi_hub.db.deliveries import Delivery
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.migrate import upgrade
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.push.worker import LANES

EVSES = 4
TOKEN = "bench-token-of-emsp"
GATEWAY_IN_FLIGHT = 64

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# --- The fake eMSP (its own process) -----------------------------------------------------------------------------


def serve_emsp(port: int) -> None:
    received = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal received
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/count":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(received).encode()})
            return
        received += 1
        headers = [(b"content-type", b"application/json")]
        status = 200
        if scope["method"] == "POST":  # a CDR: the Receiver says where it keeps it
            status = 201
            headers.append((b"location", f"http://127.0.0.1:{port}/cdrs/{received}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": SUCCESS})

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


def start_emsp() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--emsp", str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/count")
    return process, url


def received(emsp: str) -> int:
    return int(httpx.get(f"{emsp}/count").text)


# --- The hub -----------------------------------------------------------------------------------------------------


def start_hub(database_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_HUB_")} | {
        "OCPI_HUB_DATABASE_URL": database_url,
        "OCPI_HUB_PUBLIC_URL": url,
        "OCPI_HUB_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ocpi_hub.cli", "serve", "--port", str(port)], env=env, stdout=output, stderr=output
        )
    wait_for(f"{url}/ocpi/versions")
    return process, url


async def prepare(database_url: str, hub: str, emsp: str, sessions: int) -> None:
    async with httpx.AsyncClient(base_url=f"{hub}/api/v0", timeout=30) as api:
        assert (await api.put("/tariffs/T1", json=TARIFF)).status_code == 201
        for n in range(-(-sessions // EVSES)):  # rounded up: every session has its EVSE
            assert (await api.post(f"/location/L{n}", json=location(f"Bench site {n}", EVSES))).status_code == 201
        for s in range(sessions):
            token = {
                "countryCode": "DE",
                "partyId": "EMP",
                "type": "RFID",
                "uid": f"CARD{s}",
                "contractId": f"DE-EMP-{s}",
                "issuer": "Bench eMSP",
                "valid": True,
                "cacheMode": "ALLOWED",
            }
            assert (await api.post("/token", json=token)).status_code == 201
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    async with session_factory(engine)() as session:
        session.add(
            Partner(
                state=PartnerState.REGISTERED,
                initiator=Initiator.HUB,
                token_hash=None,
                token=TOKEN,
                send_base64=True,
                versions_url=f"{emsp}/versions",
                version="2.2.1",
                roles=[{"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "B"}}],
                endpoints=[
                    {"identifier": "sessions", "role": "RECEIVER", "url": f"{emsp}/2.2.1/sessions"},
                    {"identifier": "cdrs", "role": "RECEIVER", "url": f"{emsp}/2.2.1/cdrs"},
                ],
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    await engine.dispose()


# --- One round ---------------------------------------------------------------------------------------------------


async def gateway(hub: str, sessions: int, readings: int) -> float:
    """Every session at once; returns the seconds from the first start to the last stop."""
    gate = asyncio.Semaphore(GATEWAY_IN_FLIGHT)
    start_at = datetime(2026, 6, 4, 8, 0, tzinfo=UTC)
    limits = httpx.Limits(max_connections=GATEWAY_IN_FLIGHT, max_keepalive_connections=GATEWAY_IN_FLIGHT)

    async with httpx.AsyncClient(base_url=f"{hub}/api/v0", timeout=60, limits=limits) as api:

        async def call(path: str, body: dict[str, Any]) -> None:
            async with gate:
                response = await api.post(path, json=body)
            if response.status_code not in (200, 201):
                raise SystemExit(f"{path}: {response.status_code} {response.text}")

        async def charge(s: int) -> None:
            n, e = divmod(s, EVSES)
            start = {
                "location_id": f"L{n}",
                "evse_uid": f"E{e + 1}",
                "connector_id": "1",
                "token_uid": f"CARD{s}",
                "start_date_time": start_at.isoformat(),
            }
            await call(f"/sessions/S{s}/start", start)
            for r in range(1, readings + 1):
                at = start_at + timedelta(minutes=3 * r)
                charging = r < readings  # the last reading: the car is full, parking begins
                reading = {"timestamp": at.isoformat(), "energy_wh": 550 * min(r, readings - 1), "power_w": 11000}
                await call(f"/sessions/S{s}/meter", reading if charging else reading | {"power_w": 0})
            end = start_at + timedelta(minutes=3 * readings + 5)
            await call(
                f"/sessions/S{s}/stop", {"end_date_time": end.isoformat(), "meter_stop_wh": 550 * (readings - 1)}
            )

        began = time.monotonic()
        await asyncio.gather(*(charge(s) for s in range(sessions)))
        return time.monotonic() - began


async def drained(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    while True:
        async with sessions() as session:
            if not (await session.execute(select(func.count()).select_from(Delivery))).scalar_one():
                break
        await asyncio.sleep(0.05)
    await engine.dispose()


async def ceiling(emsp: str, count: int) -> float:
    """Requests per second of plain httpx sending `count` Session PATCHes, LANES in flight."""
    body = msgspec.json.encode(
        {
            "kwh": 5.5,
            "total_cost": {"excl_vat": 2.43, "incl_vat": 2.94},
            "charging_periods": [
                {
                    "start_date_time": "2026-06-04T08:00:00Z",
                    "dimensions": [{"type": "ENERGY", "volume": 5.5}, {"type": "TIME", "volume": 0.5}],
                    "tariff_id": "T1",
                }
            ],
            "last_updated": "2026-06-04T08:30:00Z",
        }
    )
    async with httpx.AsyncHTTPTransport(limits=UNBOUNDED) as transport:  # the worker's limits
        left = count

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                request_id = str(uuid.uuid4())
                headers = {
                    "Authorization": authorization_header(TOKEN, send_base64=True),
                    "X-Request-ID": request_id,
                    "X-Correlation-ID": request_id,
                    "OCPI-from-country-code": "NL",
                    "OCPI-from-party-id": "OHB",
                    "OCPI-to-country-code": "DE",
                    "OCPI-to-party-id": "EMP",
                    "Content-Type": "application/json",
                }
                url = f"{emsp}/2.2.1/sessions/NL/OHB/S{left}"
                msgspec.json.decode(await send_plain(transport, "PATCH", url, body, headers))

        began = time.monotonic()
        await asyncio.gather(*(lane() for _ in range(LANES)))
        return count / (time.monotonic() - began)


async def one_round(database_url: str, emsp: str, sessions: int, readings: int, log: Path) -> tuple[float, ...]:
    await asyncio.to_thread(upgrade, database_url)
    hub_process, hub = start_hub(database_url, log)
    try:
        await prepare(database_url, hub, emsp, sessions)
        before = received(emsp)
        began = time.monotonic()
        load = await gateway(hub, sessions, readings)
        await drained(database_url)
        delivered = received(emsp) - before
        elapsed = time.monotonic() - began
    finally:
        hub_process.terminate()
        hub_process.wait()
    readings_rate = sessions * readings / load
    deliveries_rate = delivered / elapsed
    top = await ceiling(emsp, delivered)
    changes = sessions * (readings + 3)  # a PUT, a PATCH per reading, the stop's PATCH and the CDR
    print(
        f"  {sessions * readings} readings in {load:.1f} s = {readings_rate:,.0f}/s; "
        f"{delivered} deliveries for {changes} changes (merged while waiting) in {elapsed:.1f} s = "
        f"{deliveries_rate:,.0f}/s; ceiling {top:,.0f} requests/s; deliveries/ceiling {deliveries_rate / top:.2f}"
    )
    return readings_rate, deliveries_rate, top


async def bench(database_url: str | None, sessions: int, readings: int, rounds: int) -> None:
    emsp_process, emsp = start_emsp()
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for r in range(rounds):
                print(f"round {r + 1}:")
                url = database_url or f"sqlite+aiosqlite:///{Path(folder) / f'sessions-{r}.db'}"
                if database_url:
                    await _empty(database_url)
                results.append(await one_round(url, emsp, sessions, readings, Path(folder) / "hub.log"))
    finally:
        emsp_process.terminate()
        emsp_process.wait()
    medians = [statistics.median(column) for column in zip(*results, strict=True)]
    print(
        f"median of {rounds}: {medians[0]:,.0f} readings/s, {medians[1]:,.0f} deliveries/s, "
        f"ceiling {medians[2]:,.0f} requests/s, deliveries/ceiling {medians[1] / medians[2]:.2f}"
    )


async def _empty(database_url: str) -> None:
    """A PostgreSQL database given on the command line starts every round empty."""
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a scratch PostgreSQL database: it is emptied every round")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--emsp", type=int, help=argparse.SUPPRESS)  # internal: serve the fake eMSP on this port
    args = parser.parse_args()
    if args.emsp:
        serve_emsp(args.emsp)
        return
    uvloop.run(bench(args.database_url, args.sessions, args.readings, args.rounds))


if __name__ == "__main__":
    main()
