"""The hub's CPU per /ocpi request without a server (issue 15): the app called directly as an ASGI app in one
process, its lifespan run by hand, on locations_bench.py's data (10,000 Locations; a database already holding them
is reused). No sockets, no uvicorn, no load generator sharing the core: much steadier than wrk through HTTP on a
noisy machine, and it measures what our code and its libraries cost, the database's thread and the traffic log's
writer included (time.process_time counts every thread).

    python bench/inprocess_bench.py [--database-url URL] [--requests 20000] [--rounds 3]
    python bench/inprocess_bench.py --baseline /tmp/old      # side by side with an older tree, in turn first

Targets: a kept first page, a kept Location, and pages read from the database (200 distinct offsets, more than
the 64 answers kept, so every request misses). One request per turn of the event loop, as under a server at low
load. Each round runs every hub in its own process, on a fresh copy of the prepared database; it prints the median
of the rounds' CPU per request, and with --baseline the median of the per-round ratios.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import locations_bench as lb
import uvloop
from common import fresh_copy

from ocpi_hub.app import create_app
from ocpi_hub.settings import Settings

TARGETS = {
    "kept first page": ("/ocpi/2.2.1/locations", b"offset=0&limit=50"),
    "kept location": ("/ocpi/2.2.1/locations/LOC005000", b""),
    "read page": ("/ocpi/2.2.1/locations", None),  # None: offsets 0 to 9,950 in turn
}
MISSED_PAGES = 200


async def measure(database_url: str, requests: int) -> dict[str, float]:
    """CPU µs per request of each target, in this process (the tree on PYTHONPATH)."""
    settings = Settings(database_url=database_url, public_url="http://127.0.0.1:9", parties=(lb.PARTY,))
    app = create_app(settings)
    started, stopping = asyncio.Event(), asyncio.Event()

    async def lifespan_receive() -> dict[str, Any]:
        if not started.is_set():
            return {"type": "lifespan.startup"}
        await stopping.wait()
        return {"type": "lifespan.shutdown"}

    async def lifespan_send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    lifespan = asyncio.create_task(app(scope, lifespan_receive, lifespan_send))  # type: ignore[arg-type]
    await started.wait()
    authorization = lb.AUTH.partition(": ")[2].encode()
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def ask(path: str, query: bytes) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:9"), (b"authorization", authorization)],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 9),
            "state": {},
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        await asyncio.sleep(0)  # a turn of the loop per request, as a server gives it

    def query_of(fixed: bytes | None, n: int) -> bytes:
        return fixed if fixed is not None else f"limit=50&offset={(n % MISSED_PAGES) * lb.PAGE}".encode()

    figures = {}
    for name, (path, fixed) in TARGETS.items():
        for n in range(min(requests, 2000)):  # warm-up: callers and answers kept, code paths run
            await ask(path, query_of(fixed, n))
        statuses.clear()
        cpu = time.process_time()
        for n in range(requests):
            await ask(path, query_of(fixed, n))
        figures[name] = (time.process_time() - cpu) / requests * 1e6
        if set(statuses) != {200}:
            raise SystemExit(f"{name}: answered {sorted(set(statuses))}, not only 200")
    stopping.set()
    await lifespan
    return figures


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-inprocess-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    asyncio.run(lb.prepare(database_url, 10_000))
    trees = {"hub": os.environ.get("PYTHONPATH", "")}
    if args.baseline:
        trees["baseline"] = str(args.baseline)
    results: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    for round_ in range(1, args.rounds + 1):
        for label in sorted(trees, reverse=round_ % 2 == 0):  # in turn first
            with fresh_copy(database_url, workdir) as copy:
                command = [sys.executable, __file__, "measure", copy, "--requests", str(args.requests)]
                env = {**os.environ, "PYTHONPATH": trees[label]}
                output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            results[label].append(json.loads(output.splitlines()[-1]))
        print(f"round {round_} of {args.rounds} done", flush=True)
    print(f"\nCPU per request in µs, in-process, medians of {args.rounds} rounds of {args.requests} requests")
    for label, rounds in results.items():
        for name in TARGETS:
            print(f"{label:>9} {name:<16} {statistics.median(r[name] for r in rounds):8.1f}")
    if args.baseline:
        print("hub / baseline, medians of the per-round ratios")
        for name in TARGETS:
            pairs = zip(results["hub"], results["baseline"], strict=True)
            print(f"{'':>9} {name:<16} {statistics.median(h[name] / b[name] for h, b in pairs):8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "measure"])
    parser.add_argument("source", nargs="?", help="(measure) the database URL")
    parser.add_argument("--database-url", help="a scratch database (default: a new SQLite file)")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another source tree (e.g. an older commit) measured alike")
    args = parser.parse_args()
    if args.command == "measure":
        print(json.dumps(uvloop.run(measure(args.source, args.requests))))  # the loop `ocpi-hub serve` runs
    else:
        run(args)


if __name__ == "__main__":
    main()
