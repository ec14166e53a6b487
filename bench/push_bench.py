"""Benchmark of the push worker (README: "Benchmarks"): 10,000 EVSE status changes delivered to 3 fake eMSPs on
loopback, against the ceiling, plain httpx sending the same 30,000 PATCH requests with the same concurrency, in the same
run.

    python bench/push_bench.py [--database-url URL] [--locations 2500] [--rounds 3]

1. Starts 3 receivers, each a minimal ASGI app in its own process (uvicorn, uvloop, httptools, one worker) that
   answers every request with a success envelope and counts the PATCHes it got.
2. Loads the Locations (4 EVSEs each) through the store (ocpi_hub.stores.locations), then registers the 3
   receivers as eMSP partners with a locations RECEIVER endpoint.
3. Per round: sets the status of every EVSE through the store (stores.locations.set_evse_status; the outbox queues a
   PATCH per partner in the same transaction), with no worker running; then starts the push worker and times it
   until the deliveries table is empty: deliveries per second. Then the ceiling: one httpx.AsyncClient with the
   worker's limits, the worker's concurrency (LANES requests in flight per receiver), sending the same PATCH
   requests (same URLs, bodies and headers) from memory. Both run in this process, on uvloop.
4. Prints per round and the median: worker deliveries/s, ceiling requests/s, their ratio (target at least 0.5).

Without --database-url a fresh SQLite file in a temporary folder is used; a given URL must name an empty database.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvicorn
import uvloop
from common import SUCCESS, free_port, send_plain
from sqlalchemy import func, select

from ocpi_hub.client import UNBOUNDED, OcpiClient, PoolPerOrigin
from ocpi_hub.credentials_token import authorization_header
from ocpi_hub.db.deliveries import Delivery
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.migrate import upgrade
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.push import outbox
from ocpi_hub.push.worker import LANES, PushWorker
from ocpi_hub.settings import Party, Settings
from ocpi_hub.stores import locations as store

RECEIVERS = 3
EVSES = 4
PARTY = Party("NL", "OHB", "Bench CPO")
TOKEN = "bench-token-of-emsp-{}"
STATUSES = (ocpi.Status.CHARGING, ocpi.Status.AVAILABLE)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# --- The receivers (each in its own process) ---------------------------------------------------------------------


def serve_receiver(port: int) -> None:
    patches = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal patches
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["method"] == "PATCH":
            patches += 1
        body = str(patches).encode() if scope["path"] == "/count" else SUCCESS
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


def start_receivers() -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    ports = [free_port() for _ in range(RECEIVERS)]
    processes = [subprocess.Popen([sys.executable, __file__, "--receiver", str(port)]) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url in urls:
        for _ in range(500):
            try:
                httpx.get(f"{url}/count")
                break
            except httpx.TransportError:
                time.sleep(0.02)
    return processes, urls


# --- Data --------------------------------------------------------------------------------------------------------


def bench_location(n: int, now: datetime) -> ocpi.Location:
    def evse(e: int) -> ocpi.EVSE:
        connector = ocpi.Connector(
            id="1",
            standard=ocpi.ConnectorType.IEC_62196_T2,
            format=ocpi.ConnectorFormat.SOCKET,
            power_type=ocpi.PowerType.AC_3_PHASE,
            max_voltage=230,
            max_amperage=32,
            last_updated=now,
        )
        return ocpi.EVSE(
            uid=f"{n}-{e}", evse_id=f"NL*OHB*E{n:07d}*{e}", status=ocpi.Status.AVAILABLE, connectors=[connector],
            last_updated=now,
        )  # fmt: skip

    return ocpi.Location(
        country_code=PARTY.country_code,
        party_id=PARTY.party_id,
        id=f"LOC{n:06d}",
        publish=True,
        name=f"Bench charging plaza {n}",
        address=f"Stationsplein {n % 300 + 1}",
        city="Utrecht",
        country="NLD",
        coordinates=ocpi.GeoLocation(latitude=f"52.{n:06d}", longitude=f"5.{n:06d}"),
        evses=[evse(e) for e in range(1, EVSES + 1)],
        time_zone="Europe/Amsterdam",
        last_updated=now,
    )


async def prepare(database_url: str, locations: int, receivers: list[str]) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        if (await session.execute(select(func.count()).select_from(Partner))).scalar_one():
            raise SystemExit("give an empty database")
        start = time.monotonic()
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        for n in range(1, locations + 1):
            location = bench_location(n, now)
            await outbox.committed(session, partial(store.save_location, session, location, now=now), now=now)
        print(f"loaded {locations} locations of {EVSES} EVSEs in {time.monotonic() - start:.1f} s")
        for i, url in enumerate(receivers):
            session.add(
                Partner(
                    state=PartnerState.REGISTERED,
                    initiator=Initiator.HUB,
                    token_hash=None,
                    token=TOKEN.format(i),
                    send_base64=True,
                    versions_url=f"{url}/versions",
                    version="2.2.1",
                    roles=[
                        {
                            "role": "EMSP",
                            "country_code": "DE",
                            "party_id": f"EM{i}",
                            "business_details": {"name": "Bench eMSP"},
                        }
                    ],
                    endpoints=[{"identifier": "locations", "role": "RECEIVER", "url": f"{url}/2.2.1/locations"}],
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.commit()
    await engine.dispose()


# --- One round ---------------------------------------------------------------------------------------------------


async def change_statuses(database_url: str, locations: int, status: ocpi.Status) -> list[tuple[str, str, datetime]]:
    """Every EVSE's status set through the store (each queues 3 PATCHes); returns (location, evse, last_updated)."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    changed = []
    start = time.monotonic()
    async with sessions() as session:
        for n in range(1, locations + 1):
            for e in range(1, EVSES + 1):
                location_id, evse_uid, moment = f"LOC{n:06d}", f"{n}-{e}", utc_now()
                saved = await outbox.committed(
                    session,
                    partial(store.set_evse_status, session, location_id, evse_uid, status, now=moment),
                    now=moment,
                )
                evse = store.find(saved.location.evses or (), evse_uid, lambda e: e.uid)
                assert evse is not None
                changed.append((location_id, evse_uid, evse.last_updated))
        queued = (await session.execute(select(func.count()).select_from(Delivery))).scalar_one()
    await engine.dispose()
    elapsed = time.monotonic() - start
    print(f"  {len(changed)} status changes through the store in {elapsed:.1f} s, {queued} deliveries queued")
    return changed


async def run_worker(database_url: str, expected: int) -> float:
    """Seconds for the worker to empty the deliveries table."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    settings = Settings(database_url=database_url, parties=(PARTY,))
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=10), settings, clock=utc_now)
        start = time.monotonic()
        worker.start()
        while True:
            async with sessions() as session:
                left = (await session.execute(select(func.count()).select_from(Delivery))).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - start
        await worker.stop()
    await engine.dispose()
    print(f"  worker:  {expected} deliveries in {elapsed:.2f} s = {expected / elapsed:,.0f}/s")
    return expected / elapsed


async def run_ceiling(receivers: list[str], changed: list[tuple[str, str, datetime]], status: ocpi.Status) -> float:
    """Seconds for plain httpx to send the same PATCHes, LANES in flight per receiver, one transport each (as the
    worker's pool per partner)."""
    transports = [httpx.AsyncHTTPTransport(limits=UNBOUNDED) for _ in receivers]
    try:

        async def lane(i: int, url: str, work: list[tuple[str, str, datetime]]) -> None:
            while work:
                location_id, evse_uid, last_updated = work.pop()
                request_id = str(uuid.uuid4())
                headers = {
                    "Authorization": authorization_header(TOKEN.format(i), send_base64=True),
                    "X-Request-ID": request_id,
                    "X-Correlation-ID": request_id,
                    "OCPI-from-country-code": "NL",
                    "OCPI-from-party-id": "OHB",
                    "OCPI-to-country-code": "DE",
                    "OCPI-to-party-id": f"EM{i}",
                    "Content-Type": "application/json",
                }
                body = msgspec.json.encode({"status": status, "last_updated": last_updated})
                target = f"{url}/2.2.1/locations/NL/OHB/{location_id}/{evse_uid}"
                msgspec.json.decode(await send_plain(transports[i], "PATCH", target, body, headers))

        start = time.monotonic()
        queues = [list(reversed(changed)) for _ in receivers]
        await asyncio.gather(*(lane(i, url, queues[i]) for i, url in enumerate(receivers) for _ in range(LANES)))
        elapsed = time.monotonic() - start
    finally:
        for transport in transports:
            await transport.aclose()
    count = len(changed) * len(receivers)
    print(f"  ceiling: {count} requests in {elapsed:.2f} s = {count / elapsed:,.0f}/s")
    return count / elapsed


def patches_received(receivers: list[str]) -> int:
    return sum(int(httpx.get(f"{url}/count").text) for url in receivers)


async def bench(database_url: str, locations: int, rounds: int) -> None:
    processes, receivers = start_receivers()
    try:
        await prepare(database_url, locations, receivers)
        ratios, worker_rates, ceiling_rates = [], [], []
        for r in range(rounds):
            status = STATUSES[r % 2]
            print(f"round {r + 1}:")
            changed = await change_statuses(database_url, locations, status)
            before = patches_received(receivers)
            worker_rates.append(await run_worker(database_url, len(changed) * RECEIVERS))
            assert patches_received(receivers) - before == len(changed) * RECEIVERS, "not every PATCH arrived"
            ceiling_rates.append(await run_ceiling(receivers, changed, status))
            ratios.append(worker_rates[-1] / ceiling_rates[-1])
            print(f"  ratio:   {ratios[-1]:.2f}")
        print(
            f"median of {rounds}: worker {statistics.median(worker_rates):,.0f} deliveries/s, "
            f"ceiling {statistics.median(ceiling_rates):,.0f} requests/s, "
            f"ratio {statistics.median(ratios):.2f} (target >= 0.5)"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--locations", type=int, default=2500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)  # internal: serve a receiver on this port
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
        return
    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'push-bench.db'}"
        uvloop.run(bench(database_url, args.locations, args.rounds))


if __name__ == "__main__":
    main()
