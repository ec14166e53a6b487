"""Benchmark of the Locations crawl while EVSE statuses change and are pushed (issue 15, README "Benchmarks").

    python bench/crawl_under_writes.py [--database-url URL] [--rates 0,5,50] [--rounds 3] [--duration 6]

In one run, on one machine:
1. Starts 3 fake eMSPs (push_bench's receivers: minimal ASGI apps under uvicorn, each in its own process, counting
   the PATCHes they get), loads 10,000 Locations of 4 EVSEs with 2 Connectors each (locations_bench.prepare; a
   database already holding them is reused) and registers the 3 eMSPs as partners with a locations RECEIVER
   endpoint (their URLs are rewritten on every run), besides the crawling eMSP of locations_bench.
2. Saves the hub's answers to the first page (offset 0), the deep page (offset N-50) and one Location, and serves
   them from a bare ASGI app: the ceiling.
3. Per round: the ceiling under wrk (-t2 -c32 by default), then the hub (uvicorn, uvloop, httptools, one worker,
   its push worker running in the same process, on a fresh copy of the prepared database) for each rate of status
   changes: a writer in this process sends `POST /api/v0/location/{id}/evse/{uid}/status` at that fixed rate (open
   loop, to random EVSEs, alternating CHARGING and AVAILABLE) for as long as wrk loads each target. The server is
   pinned to CPU 0 and wrk to CPU 1 when `taskset` exists; the writer and the receivers share the machine.
4. Prints per rate and target the medians of requests/s, p50, p99 and the server's CPU per request (/proc), the
   medians of the per-round shares of the ceiling, the writer's achieved rate and latency (p50/p99), the pushes
   delivered and the deliveries still waiting 3 s after the window (the hub's backlog metric). A change to the
   status an EVSE already has pushes nothing, so about half of the changes make 3 pushes.
5. One request at a time (wrk -t1 -c1), the hub idle: a cached page, and pages that must be read from the database
   (a Lua script walks 200 distinct offsets, more than the answer cache keeps, so every request misses).
With `--baseline DIR` (another source tree, e.g. an older commit), each round also serves that tree's hub the same
way, the two in turn first, and the report adds its rows and the ratios of the two hubs' requests per second and
CPU per request.

Targets (issue 15): first and deep page >= 60% of the ceiling at every rate, deep p50 <= 1.1 x the first's, the
single GET >= 50% of its ceiling, a page read from the database <= 0.5 ms p50 on SQLite.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
import locations_bench as lb
import push_bench
from common import Measure, cpu_seconds, fresh_copy, server
from common import wrk as run_wrk

from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.ocpi.versions import Endpoint

RECEIVER_TOKEN = "crawl-bench-receiver-{}"


# --- Setup -------------------------------------------------------------------------------------------------------


async def register_receivers(database_url: str, urls: list[str]) -> None:
    """The 3 pushed-to eMSPs, added once and pointed at this run's receivers."""
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        now = datetime.now(UTC)
        for i, url in enumerate(urls):
            token = RECEIVER_TOKEN.format(i)
            partner = (await session.execute(select(Partner).where(Partner.token == token))).scalar_one_or_none()
            if partner is None:
                partner = Partner(
                    state=PartnerState.REGISTERED,
                    initiator=Initiator.HUB,
                    token_hash=None,
                    token=token,
                    send_base64=True,
                    version="2.2.1",
                    roles=[
                        {"role": "EMSP", "country_code": "DE", "party_id": f"RC{i}", "business_details": {"name": "R"}}
                    ],
                    created_at=now,
                )
                session.add(partner)
            partner.versions_url = f"{url}/versions"
            partner.endpoints = [Endpoint(identifier="locations", role="RECEIVER", url=f"{url}/2.2.1/locations")]
            partner.updated_at = now
        await session.commit()
    await engine.dispose()


@contextmanager
def receivers() -> Iterator[list[str]]:
    processes, urls = push_bench.start_receivers()
    try:
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait()


def serve_saved(saved_file: Path, port: int) -> None:
    """The ceiling: a bare ASGI app answering each saved answer, by path and query string, with its headers."""
    answers = {}
    for target, saved in json.loads(saved_file.read_text()).items():
        body = base64.b64decode(saved["body"])
        headers = [(k.encode(), v.encode()) for k, v in saved["headers"]]
        headers.append((b"content-length", str(len(body)).encode()))
        answers[target] = (
            {"type": "http.response.start", "status": 200, "headers": headers},
            {"type": "http.response.body", "body": body},
        )

    first = next(iter(answers.values()))  # for any other question (the readiness probe)

    async def app(scope: lb.Scope, receive: lb.Receive, send: lb.Send) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode()
        start, body = answers.get(scope["path"] + ("?" + query if query else ""), first)
        await send(start)
        await send(body)

    uvicorn.run(app, host="127.0.0.1", port=port, **lb.SERVER)  # type: ignore[arg-type]


def save_answers(base: str, targets: dict[str, str], path: Path) -> None:
    saved = {}
    skip = {"date", "server", "content-length", "x-request-id", "x-correlation-id"}
    for target in targets.values():
        response = httpx.get(base + target, headers={"Authorization": lb.AUTH.partition(": ")[2]})
        response.raise_for_status()
        saved[target] = {
            "body": base64.b64encode(response.content).decode(),
            "headers": [(k, v) for k, v in response.headers.items() if k not in skip],
        }
    path.write_text(json.dumps(saved))


def wrk(
    url: str, *, duration: int, threads: int, connections: int, script: Path | None = None, pid: int | None = None
) -> Measure:
    """wrk on `url`; with the server's `pid`, its CPU per request too."""
    before = cpu_seconds(pid) if pid else 0.0
    measure = run_wrk(
        url, duration=duration, threads=threads, connections=connections, header=lb.AUTH, script=script, pin=True
    )
    if not pid or not measure.rps:
        return measure
    return dataclasses.replace(measure, cpu_us=(cpu_seconds(pid) - before) / (measure.rps * duration) * 1e6)


# --- Load --------------------------------------------------------------------------------------------------------


@dataclass
class Writer:
    """Status changes through the internal API at a fixed rate (open loop: late requests do not lower the rate
    asked, they pile up), on a thread of its own with its own event loop."""

    base: str
    rate: float
    locations: int
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    elapsed: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.rate > 0:
            self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    async def _run(self) -> None:
        statuses = ("CHARGING", "AVAILABLE")
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as http:

            async def change(i: int) -> None:
                n, e = random.randint(1, self.locations), random.randint(1, 4)
                began = time.monotonic()
                try:
                    response = await http.post(
                        f"/api/v0/location/LOC{n:06d}/evse/{n}-{e}/status", json={"status": statuses[i % 2]}
                    )
                except httpx.TransportError:  # a timeout (30 s) or the server went away: a failure
                    self.failures += 1
                    return
                if response.status_code == 200:
                    self.latencies_ms.append((time.monotonic() - began) * 1000)
                else:
                    self.failures += 1

            start = time.monotonic()
            i = 0
            while not self._stop.is_set():
                due = start + i / self.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(change(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
            self.elapsed = time.monotonic() - start
            await asyncio.gather(*pending)

    @property
    def achieved(self) -> float:
        return len(self.latencies_ms) / self.elapsed if self.elapsed else 0.0


def backlog(base: str) -> int:
    """The deliveries waiting, every partner's together, from the hub's `ocpi_hub_delivery_backlog` metric."""
    lines = httpx.get(f"{base}/metrics").text.splitlines()
    return sum(int(float(line.split()[-1])) for line in lines if line.startswith("ocpi_hub_delivery_backlog{"))


def pushes_received(urls: list[str]) -> int:
    return sum(int(httpx.get(f"{url}/count").text) for url in urls)


MISS_SCRIPT = """
counter = 0
request = function()
  local path = "/ocpi/2.2.1/locations?limit=50&offset=" .. (counter % 200) * 50
  counter = counter + 1
  return wrk.format(nil, path)
end
"""


def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-crawl-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    rates = [float(r) for r in args.rates.split(",")]
    targets = {
        "first page": f"/ocpi/2.2.1/locations?offset=0&limit={lb.PAGE}",
        "deep page": f"/ocpi/2.2.1/locations?offset={args.locations - lb.PAGE}&limit={lb.PAGE}",
        "one location": f"/ocpi/2.2.1/locations/LOC{args.locations // 2:06d}",
    }
    load = {"duration": args.duration, "threads": args.threads, "connections": args.connections}
    # The hub of this tree, and with --baseline the one of another, each served with its own code.
    hubs: dict[str, dict[str, str]] = {"hub": {}}
    if args.baseline:
        hubs["baseline"] = {"PYTHONPATH": str(args.baseline)}
    ceiling: dict[str, list[Measure]] = {t: [] for t in targets}
    hub: dict[tuple[str, float, str], list[Measure]] = {(h, r, t): [] for h in hubs for r in rates for t in targets}
    writers: dict[tuple[str, float], list[Writer]] = {(h, r): [] for h in hubs for r in rates}
    # (delivered in the window, expected)
    pushes: dict[tuple[str, float], list[tuple[int, int]]] = {(h, r): [] for h in hubs for r in rates}
    saved = workdir / "saved.json"
    script = workdir / "miss.lua"
    script.write_text(MISS_SCRIPT)
    one = {"duration": args.duration, "threads": 1, "connections": 1}
    idle: dict[tuple[str, str], list[Measure]] = {(h, how): [] for h in hubs for how in ("kept", "read")}
    with receivers() as urls:
        asyncio.run(lb.prepare(database_url, args.locations))
        asyncio.run(register_receivers(database_url, urls))
        with server(__file__, "serve-hub", database_url, pin=True) as (base, _):
            save_answers(base, targets, saved)
        for round_ in range(1, args.rounds + 1):
            with server(__file__, "serve-saved", str(saved), pin=True) as (base, pid):
                for name, path in targets.items():
                    wrk(base + path, **{**load, "duration": 1})  # warm-up
                    ceiling[name].append(wrk(base + path, **load, pid=pid))
            for label in sorted(hubs, reverse=round_ % 2 == 0):  # in turn first, for fairness
                with (
                    fresh_copy(database_url, workdir) as copy,
                    server(__file__, "serve-hub", copy, pin=True, env=hubs[label]) as (base, pid),
                ):
                    for rate in rates:
                        writer = Writer(base, rate, args.locations)
                        before = pushes_received(urls)
                        writer.start()
                        try:
                            for name, path in targets.items():
                                wrk(base + path, **{**load, "duration": 1})
                                hub[label, rate, name].append(wrk(base + path, **load, pid=pid))
                        finally:
                            writer.stop()
                        time.sleep(3)  # the last pushes of the window
                        pushes[label, rate].append((pushes_received(urls) - before, backlog(base)))
                        writers[label, rate].append(writer)
            # One request at a time, idle: a kept page, and pages read from the database.
            for label in sorted(hubs, reverse=round_ % 2 == 0):
                with server(__file__, "serve-hub", database_url, pin=True, env=hubs[label]) as (base, _):
                    wrk(base + targets["first page"], **{**one, "duration": 1})
                    idle[label, "kept"].append(wrk(base + targets["first page"], **one))
                    wrk(base + "/", **{**one, "duration": 1}, script=script)
                    idle[label, "read"].append(wrk(base + "/", **one, script=script))
            print(f"round {round_} of {args.rounds} done", flush=True)
    for label in hubs:
        report(args, label, rates, targets, ceiling, hub, writers, pushes)
    if args.baseline:
        print("\nhub / baseline, medians of the per-round ratios: requests per second, and CPU per request")
        for rate in rates:
            for name in targets:
                pairs = list(zip(hub["hub", rate, name], hub["baseline", rate, name], strict=True))
                rps = statistics.median([h.rps / b.rps for h, b in pairs])
                cpu = statistics.median([(h.cpu_us or 0.0) / (b.cpu_us or 1.0) for h, b in pairs])
                print(f"{rate:>9g} {name:<13} {rps:.2f} {cpu:.2f}")
    print("\none request at a time, idle, medians: a kept first page; pages read from the database (target <= 0.5 ms)")
    for label in hubs:
        kept, read = idle[label, "kept"], idle[label, "read"]
        print(
            f"{label:>9} kept p50 {statistics.median(m.p50_ms for m in kept):.2f} ms; "
            f"read p50 {statistics.median(m.p50_ms for m in read):.2f} ms, "
            f"p99 {statistics.median(m.p99_ms for m in read):.2f} ms"
        )
    if args.baseline:
        ratios = [h.p50_ms / b.p50_ms for h, b in zip(idle["hub", "read"], idle["baseline", "read"], strict=True)]
        print(f"read p50 hub / baseline, median of the per-round ratios: {statistics.median(ratios):.2f}")


def report(
    args: argparse.Namespace,
    label: str,
    rates: list[float],
    targets: dict[str, str],
    ceiling: dict[str, list[Measure]],
    hub: dict[tuple[str, float, str], list[Measure]],
    writers: dict[tuple[str, float], list[Writer]],
    pushes: dict[tuple[str, float], list[tuple[int, int]]],
) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    def times(measures: list[Measure]) -> str:  # p50, p99, and the server's CPU per request in µs
        cpu = med([m.cpu_us or 0.0 for m in measures])
        return f"{med([m.p50_ms for m in measures]):>7.2f} {med([m.p99_ms for m in measures]):>7.2f} {cpu:>7.0f}"

    print(
        f"\n{label}: {args.locations} locations x 4 EVSEs x 2 connectors, pages of {lb.PAGE}, wrk -t{args.threads} "
        f"-c{args.connections}, {args.rounds} rounds of {args.duration} s, 3 receiving eMSPs; medians "
        "(share: median of the per-round ratios to the ceiling)"
    )
    print(f"{'changes/s':>9} {'target':<13} {'req/s':>8} {'share':>6} {'p50 ms':>7} {'p99 ms':>7} {'CPU us':>7}")
    for name in targets:
        measures = ceiling[name]
        print(f"{'ceiling':>9} {name:<13} {med([m.rps for m in measures]):>8.0f} {'':>6} " + times(measures))
    for rate in rates:
        for name in targets:
            measures = hub[label, rate, name]
            share = med([m.rps / c.rps for m, c in zip(measures, ceiling[name], strict=True)])
            print(f"{rate:>9g} {name:<13} {med([m.rps for m in measures]):>8.0f} {share:>6.1%} " + times(measures))
        deep, first = hub[label, rate, "deep page"], hub[label, rate, "first page"]
        depth = med([d.p50_ms / f.p50_ms for d, f in zip(deep, first, strict=True)])
        line = f"{'':>9} deep p50 / first p50: {depth:.2f}"
        if rate > 0:
            latencies = [ms for w in writers[label, rate] for ms in w.latencies_ms]
            q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
            delivered = sum(d for d, _ in pushes[label, rate])
            waiting = max(w for _, w in pushes[label, rate])
            failures = sum(w.failures for w in writers[label, rate])
            line += (
                f"; writer {med([w.achieved for w in writers[label, rate]]):.1f}/s achieved, p50 {q[49]:.1f} ms, "
                f"p99 {q[98]:.1f} ms, {failures} failed; pushes delivered {delivered}, "
                f"waiting 3 s after: at most {waiting}"
            )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "serve-hub", "serve-saved"])
    parser.add_argument("source", nargs="?", help="(serve-*) the database URL, or the saved answers")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database-url", help="a scratch database (default: a new SQLite file)")
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--rates", default="0,5,50", help="status changes per second, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--baseline", type=Path, help="another source tree (e.g. an older commit) served alike")
    args = parser.parse_args()
    match args.command:
        case "serve-hub":
            lb.serve_hub(args.source, args.port, None)
        case "serve-saved":
            serve_saved(Path(args.source), args.port)
        case _:
            run(args)


if __name__ == "__main__":
    main()
