"""Benchmark of the station gateway's meter readings while an eMSP crawls the Locations (issue 15, README
"Benchmarks > Charging sessions").

    python bench/sessions_under_crawl.py [--database-url URL] [--rates 20,50] [--rounds 2] [--seconds 12]
    python bench/sessions_under_crawl.py --baseline /tmp/old          # side by side with an older tree

In one run, on one machine: locations_bench's 10,000 Locations (a database already holding them is reused). Per
round and hub (with --baseline, both, the two in turn first), per rate, on a fresh copy of that database: the hub
(uvicorn, uvloop, httptools, its push worker on) pinned to CPU 0; a token and `--sessions` Sessions started through
the internal API (`POST /api/v0/sessions/{id}/start`, one per Location, no eMSP owns the token: nothing is pushed,
so the readings alone are measured); then wrk (-t2 -c32, CPU 1) crawls the first page while this process sends
`POST /api/v0/sessions/{id}/meter` at the rate asked (open loop, the Sessions in turn, each reading after the
last of its Session). It prints per hub and rate the readings answered 200, those refused (a reading that overtook
the one before it of its Session, which was still waiting, is a 409), their p50 and p99, and the crawl's
requests per second.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import locations_bench as lb
from common import fresh_copy, server, wrk

TOKEN = {
    "countryCode": "NL",
    "partyId": "XYZ",
    "uid": "BENCH-RFID",
    "type": "RFID",
    "contractId": "NL-XYZ-C00001",
    "issuer": "Bench eMSP",
    "valid": True,
    "cacheMode": "ALWAYS",
}


async def readings(base: str, sessions: int, rate: float, seconds: int) -> tuple[list[float], Counter[int], float]:
    """Start the Sessions, then send readings at `rate` for `seconds` while wrk crawls: the answers' times (ms), the
    refusals by status, and the crawl's requests per second."""
    latencies: list[float] = []
    refused: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.post("/api/v0/token", json=TOKEN)).status_code == 201
        for n in range(1, sessions + 1):
            start = {
                "location_id": f"LOC{n:06d}",
                "evse_uid": f"{n}-1",
                "connector_id": "1",
                "token_uid": TOKEN["uid"],
                "start_date_time": "2026-12-03T10:00:00Z",
            }
            answer = await http.post(f"/api/v0/sessions/S{n}/start", json=start)
            assert answer.status_code == 201, answer.text
        crawl = asyncio.create_task(asyncio.to_thread(_crawl, base, seconds + 3))
        await asyncio.sleep(1.5)
        sent = [0] * (sessions + 1)

        async def meter(n: int) -> None:
            sent[n] += 1
            k, began = sent[n], time.monotonic()
            reading = {"timestamp": f"2026-12-03T10:{k // 60:02d}:{k % 60:02d}Z", "energy_wh": 100 * k}
            answer = await http.post(f"/api/v0/sessions/S{n}/meter", json=reading)
            if answer.status_code == 200:
                latencies.append((time.monotonic() - began) * 1000)
            else:
                refused[answer.status_code] += 1

        began, tasks = time.monotonic(), []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(meter(i % sessions + 1)))
        await asyncio.gather(*tasks)
        crawled = await crawl
    return latencies, refused, crawled


def _crawl(base: str, seconds: int) -> float:
    page = f"{base}/ocpi/2.2.1/locations?offset=0&limit={lb.PAGE}"
    return wrk(page, duration=seconds, threads=2, connections=32, header=lb.AUTH, pin=True).rps


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-sessions-crawl-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    asyncio.run(lb.prepare(database_url, 10_000))
    hubs: dict[str, dict[str, str]] = {"hub": {}}
    if args.baseline:
        hubs["baseline"] = {"PYTHONPATH": str(args.baseline)}
    rates = [float(r) for r in args.rates.split(",")]
    for round_ in range(1, args.rounds + 1):
        for label in sorted(hubs, reverse=round_ % 2 == 0):  # in turn first
            for rate in rates:
                with (
                    fresh_copy(database_url, workdir) as copy,
                    server(lb.__file__, "serve-hub", copy, pin=True, env=hubs[label]) as (base, _),
                ):
                    latencies, refused, crawl = asyncio.run(readings(base, args.sessions, rate, args.seconds))
                q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
                print(
                    f"round {round_} {label:>8} {rate:>4.0f} readings/s: {len(latencies)} answered, refused "
                    f"{dict(refused) or 'none'}; p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms; crawl {crawl:.0f} requests/s",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a scratch database (default: a new SQLite file)")
    parser.add_argument("--rates", default="20,50", help="meter readings per second, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--baseline", type=Path, help="another source tree (e.g. an older commit) served alike")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
