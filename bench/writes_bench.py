"""Benchmark of the write side (issue 15, README "Benchmarks > Writes"): what an EVSE status change through the
internal API costs the hub, whether it sustains 200 changes per second with their pushes delivered, and how fast
Locations load through the internal API.

    python bench/writes_bench.py [--database-url URL] [--changes 2000] [--rate 200] [--seconds 15] [--profile FILE]

1. Starts 3 receivers (the fake eMSPs of bench/push_bench.py: real HTTP servers, each its own process), loads 500
   Locations of 4 EVSEs through the store and registers the 3 receivers as eMSPs with a Locations RECEIVER.
2. **CPU per status change**: starts the hub (`create_app`, uvicorn with uvloop and httptools, pinned to one core)
   without its push worker, sends `--changes` status changes (`POST /api/v0/location/{id}/evse/{uid}/status`), one
   at a time, each to another EVSE, and reads the hub's process CPU time (user + system, /proc) before and after: the
   CPU per change, from request to its 3 deliveries queued and committed. No profiler runs during this.
3. **Sustained rate**: the hub again, with its push worker, pinned to one core; a writer sends `--rate` changes per
   second for `--seconds` seconds (each at its scheduled time, whatever the answers before it), then waits until the
   deliveries table is empty. Prints the achieved rate, the answers' p50 and p99, the hub's CPU share of its core,
   the PATCHes the receivers got against the changes times 3, and the hub's CPU per change with its pushes (until
   the last was delivered): 1 s over it is the most one core can sustain.
4. **Bulk load**: 5,000 new Locations through `PUT /api/v0/locations` in bodies of 500 (the worker off): Locations
   per second; and, for comparison, 500 through `POST /api/v0/location/{id}` (registerLocation) with 16 in flight.

`--profile FILE`: py-spy records the hub (speedscope JSON) during step 2, in a separate repetition of it that is not
timed.

`--baseline DIR` (another source tree, e.g. `git archive <commit> | tar -x -C /tmp/old` with a link
`/tmp/old/ocpi_hub/migrations -> /tmp/old/migrations`): step 2 side by side instead, then nothing else. Both hubs
run at once, pinned to the same core, each on a fresh copy of the prepared database, and get the same `--changes`
in alternating blocks of 50 (the order of the two flipped every block): the CPU per change of each and their ratio.
On a machine whose speed drifts, one after the other says little; in turn, both see the same drift.

Without --database-url a fresh SQLite file in a temporary folder is used; a given URL must name an empty database.
"""

# ruff: noqa: T201, ASYNC110, ASYNC220, ASYNC251, E501 - a benchmark prints its figures and waits as it likes

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
import uvloop
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))
import push_bench  # the receivers and data of the push benchmark
from common import cpu_seconds, free_port, fresh_copy

from ocpi_hub.app import create_app
from ocpi_hub.db.deliveries import Delivery
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.settings import Settings

LOCATIONS = 500
ADMIN = "bench-admin-token"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
HUB_CORE, CLIENT_CORE = 0, 1


def serve_hub(port: int, database_url: str, worker: bool) -> None:
    settings = Settings(database_url=database_url, admin_token=ADMIN, push_worker=worker, parties=(push_bench.PARTY,))
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def start_hub(database_url: str, worker: bool, tree: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The hub in a process of its own, pinned to HUB_CORE; `tree`: another source tree's (its code, this script)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--hub", str(port), "--hub-database-url", database_url, "--hub-worker", str(worker)],
        env={**os.environ, "PYTHONPATH": str(tree)} if tree is not None else None,
    )
    os.sched_setaffinity(process.pid, {HUB_CORE})
    url = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            httpx.get(f"{url}/health")
            break
        except httpx.TransportError:
            time.sleep(0.02)
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:  # a shutdown that hangs is not what is measured here
        process.kill()
        process.wait()


def evse(i: int) -> tuple[str, str]:
    n, e = i // push_bench.EVSES % LOCATIONS + 1, i % push_bench.EVSES + 1
    return f"LOC{n:06d}", f"{n}-{e}"


STATUS = ("CHARGING", "AVAILABLE")
_sent: dict[int, int] = {}  # EVSE → how many changes it got: each change toggles its status (a real change)


async def deliveries(database_url: str) -> int:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        count = (await session.execute(select(func.count()).select_from(Delivery))).scalar_one()
    await engine.dispose()
    return int(count)


async def change(http: httpx.AsyncClient, url: str, i: int, sent: dict[int, int] = _sent) -> float:
    """A status change of EVSE `i` that changes it (`sent`: the changes each EVSE of the hub's database got)."""
    location_id, evse_uid = evse(i)
    which = i % (LOCATIONS * push_bench.EVSES)
    sent[which] = sent.get(which, 0) + 1
    start = time.perf_counter()
    response = await http.post(
        f"{url}/api/v0/location/{location_id}/evse/{evse_uid}/status",
        json={"status": STATUS[(sent[which] + 1) % 2]},  # loaded AVAILABLE: first CHARGING, then back, ...
        headers=HEADERS,
    )
    assert response.status_code == 200, response.text
    return time.perf_counter() - start


async def cpu_per_change(database_url: str, changes: int, profile: str | None = None) -> float:
    hub, url = start_hub(database_url, worker=False)
    spy = None
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for i in range(50):  # warm up: imports, caches, connections
                await change(http, url, i)
            queued = await deliveries(database_url)
            if profile:
                spy = subprocess.Popen(
                    ["py-spy", "record", "-p", str(hub.pid), "-o", profile, "-f", "speedscope", "-r", "200"]
                )
                time.sleep(1)
            before = cpu_seconds(hub.pid)
            for i in range(50, 50 + changes):
                await change(http, url, i)
            used = cpu_seconds(hub.pid) - before
        added = await deliveries(database_url) - queued
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait()
        stop(hub)
    per_change = used / changes * 1000
    print(
        f"  {changes} status changes: hub CPU {used:.2f} s = {per_change:.3f} ms per change; {added} deliveries queued"
    )
    return per_change


async def side_by_side(database_url: str, changes: int, baseline: Path, workdir: Path) -> None:
    hubs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    with contextlib.ExitStack() as copies:
        try:
            for label, tree in (("hub", None), ("baseline", baseline)):
                copy = await asyncio.to_thread(copies.enter_context, fresh_copy(database_url, workdir, label))
                hubs[label] = start_hub(copy, worker=False, tree=tree)
            sent: dict[str, dict[int, int]] = {label: {} for label in hubs}
            used = dict.fromkeys(hubs, 0.0)
            async with httpx.AsyncClient(timeout=30) as http:
                for label, (_, url) in hubs.items():
                    for i in range(50):  # warm up: imports, caches, connections
                        await change(http, url, i, sent[label])
                blocks = max(changes // 50, 1)
                for block in range(blocks):
                    for label in sorted(hubs, reverse=block % 2 == 1):
                        process, url = hubs[label]
                        before = cpu_seconds(process.pid)
                        for i in range(50 + block * 50, 100 + block * 50):
                            await change(http, url, i, sent[label])
                        used[label] += cpu_seconds(process.pid) - before
        finally:
            for process, _ in hubs.values():
                stop(process)
            await asyncio.to_thread(copies.close)
    per_change = {label: seconds / (blocks * 50) * 1000 for label, seconds in used.items()}
    print(
        f"  {blocks * 50} status changes each, side by side: hub {per_change['hub']:.3f} ms, baseline "
        f"{per_change['baseline']:.3f} ms of CPU per change; hub / baseline {used['hub'] / used['baseline']:.3f}"
    )


async def sustained(database_url: str, receivers: list[str], rate: int, seconds: int) -> None:
    hub, url = start_hub(database_url, worker=True)
    try:
        while await deliveries(database_url):  # what step 2 queued goes out first
            await asyncio.sleep(0.2)
        before_patches = push_bench.patches_received(receivers)
        latencies: list[float] = []
        failures: list[str] = []
        total = rate * seconds
        # No pool timeout: a writer that falls behind queues its requests, and the figures say so.
        timeout = httpx.Timeout(60, pool=None)
        async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=64)) as http:
            cpu_before, start = cpu_seconds(hub.pid), time.perf_counter()

            async def one(i: int) -> None:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                try:
                    latencies.append(await change(http, url, i))
                except (httpx.HTTPError, AssertionError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])

            await asyncio.gather(*(one(i) for i in range(total)))
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(hub.pid) - cpu_before
            while await deliveries(database_url):
                await asyncio.sleep(0.05)
            drained = time.perf_counter() - start
            # Until the last push: what a change and its pushes cost together, which bounds the rate one core
            # sustains (1 s / this), and which a slower machine or an overloaded writer moves less than the rate.
            cpu_drained = cpu_seconds(hub.pid) - cpu_before
        got = push_bench.patches_received(receivers) - before_patches
    finally:
        stop(hub)
    latencies = sorted(latencies) or [float("nan")]
    if failures:
        print(f"  sustained: {len(failures)} changes failed, the first: {failures[0]}")
    print(
        f"  sustained: {total} changes in {elapsed:.2f} s = {total / elapsed:.0f}/s (asked {rate}/s); "
        f"answer p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms; "
        f"hub CPU {cpu / elapsed * 100:.0f}% of its core while writing; "
        f"{got} PATCHes received of {total * push_bench.RECEIVERS}, all delivered {drained:.2f} s after the start; "
        f"hub CPU per change with its pushes {cpu_drained / total * 1000:.2f} ms"
    )


def seed_location(n: int) -> dict[str, object]:
    return {
        "country_code": "NL",
        "party_id": "OHB",
        "name": f"Bulk plaza {n}",
        "address": f"Stationsplein {n % 300 + 1}",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": {"latitude": f"52.{n:06d}", "longitude": f"5.{n:06d}"},
        "evses": [
            {
                "uid": f"B{n}-{e}",
                "evse_id": f"NL*OHB*B{n:07d}*{e}",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 32,
                    }
                ],
            }
            for e in range(1, push_bench.EVSES + 1)
        ],
    }


async def bulk_load(database_url: str, count: int, per_body: int, profile: str | None = None) -> None:
    hub, url = start_hub(database_url, worker=False)
    spy = None
    if profile:
        spy = subprocess.Popen(["py-spy", "record", "-p", str(hub.pid), "-o", profile, "-f", "speedscope", "-r", "200"])
        time.sleep(1)
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            start = time.perf_counter()
            for first in range(0, count, per_body):
                items = [{"id": f"BULK{n:06d}", **seed_location(n)} for n in range(first, first + per_body)]
                response = await http.put(f"{url}/api/v0/locations", json=items, headers=HEADERS)
                assert response.status_code == 200, response.text[:500]
            elapsed = time.perf_counter() - start
            if spy is not None:
                spy.send_signal(2)
                spy.wait()
                spy = None
            print(f"  bulk: {count} new Locations in bodies of {per_body}: {count / elapsed:,.0f} Locations/s")

            single = 500
            queue = list(range(100_000, 100_000 + single))

            async def lane() -> None:
                while queue:
                    n = queue.pop()
                    response = await http.post(f"{url}/api/v0/location/ONE{n}", json=seed_location(n), headers=HEADERS)
                    assert response.status_code == 201, response.text[:500]

            start = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(16)))
            elapsed = time.perf_counter() - start
            print(
                f"  one PUT per Location, 16 in flight: {single} in {elapsed:.2f} s = {single / elapsed:,.0f} Locations/s"
            )
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait()
        stop(hub)


async def bench(args: argparse.Namespace, database_url: str, workdir: Path) -> None:
    os.sched_setaffinity(0, {CLIENT_CORE})
    processes, receivers = push_bench.start_receivers()
    try:
        await push_bench.prepare(database_url, LOCATIONS, receivers)
        print(f"started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        if args.only_bulk:
            await bulk_load(database_url, 5000, 500, args.profile)
            return
        if args.baseline:
            await side_by_side(database_url, args.changes, args.baseline, workdir)
            return
        figures = [await cpu_per_change(database_url, args.changes) for _ in range(args.rounds)]
        print(f"CPU per status change, median of {args.rounds}: {statistics.median(figures):.3f} ms (target <= 1 ms)")
        if args.profile:
            await cpu_per_change(database_url, args.changes, profile=args.profile)
        await sustained(database_url, receivers, args.rate, args.seconds)
        if not args.no_bulk:
            await bulk_load(database_url, 5000, 500)
    finally:
        for process in processes:
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--profile")
    parser.add_argument("--baseline", type=Path, help="another source tree: CPU per change side by side with it")
    parser.add_argument("--no-bulk", action="store_true")
    parser.add_argument("--only-bulk", action="store_true", help="step 4 alone (with --profile: py-spy records it)")
    parser.add_argument("--hub", type=int, help=argparse.SUPPRESS)  # internal: serve the hub on this port
    parser.add_argument("--hub-database-url", help=argparse.SUPPRESS)
    parser.add_argument("--hub-worker", help=argparse.SUPPRESS)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hub:
        serve_hub(args.hub, args.hub_database_url, args.hub_worker == "True")
        return
    if args.receiver:
        push_bench.serve_receiver(args.receiver)
        return
    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'writes-bench.db'}"
        uvloop.run(bench(args, database_url, Path(folder)))


if __name__ == "__main__":
    main()
