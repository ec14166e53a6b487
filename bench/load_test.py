"""The standing load test (issue #13 §5, README "Benchmarks"): a mixed load held for a set time against a real
`ocpi-hub serve` process, with 3 fake eMSPs receiving its pushes.

    python bench/load_test.py [--duration 600] [--database-url URL] [--locations 1000]

1. Starts 3 fake eMSPs (this script again, each a minimal ASGI app in its own process: uvicorn, uvloop,
   httptools) that answer the registration handshake and every push with a success envelope, and keep the last
   status they were told of every EVSE.
2. Starts `ocpi-hub serve` (its push worker on) on a fresh database: a SQLite file in a temporary folder, or the
   given PostgreSQL database with its public schema dropped and made again. Through the internal API: a Tariff,
   `--locations` Locations of 4 EVSEs, 200 tokens of eMSP 0 (DE/EMP), and the 3 eMSPs registered (POST
   /register, the handshake over HTTP). Waits until the Locations' first pushes are delivered.
3. Holds for `--duration` seconds, each kind at a fixed rate (paced, not flat-out; a kind that falls behind shows as
   a lower throughput than its target):
   - crawls: 4 crawlers paging through /ocpi/2.2.1/locations as eMSP 0 (limit 50, following Link), 2 pages/s each;
   - Location GETs: /ocpi/2.2.1/locations/{id} of a random Location, 20/s;
   - status changes: POST /api/v0/location/{id}/evse/{uid}/status with a random status, 20/s, each pushed to the
     3 eMSPs;
   - sessions: 2 starts/s on the EVSEs of the first Locations, then a meter reading every 5 s, 4 in all, then the
     stop (each Session change and the CDR pushed to eMSP 0).
   Every request's latency is recorded per kind; an error is any answer other than 2xx, or a transport error. The
   hub's RSS (/proc/<pid>/status VmRSS, or psutil when installed) is sampled every 5 s.
4. Stops the load, waits until no delivery is pending, then compares the last status each eMSP received for every
   EVSE with the hub's (read by a crawl): every difference is a lost push.
5. Prints per kind: requests, throughput, target rate, p50 and p99 latency, errors; the RSS at the end of the
   warm-up (`--warmup`, 60 s) and at the end, and the growth between them in %; dead letters and lost pushes; the
   hub log's lines at WARNING and above. Targets: zero errors, zero lost, memory growth under 10%.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import uvloop
from common import SUCCESS, TARIFF, free_port, location, wait_for
from sqlalchemy import text

from ocpi_hub.db.engine import create_engine

EVSES = 4
EMSPS = 3
TOKENS = 200
PAGE = 50
STATUSES = ("AVAILABLE", "CHARGING", "INOPERATIVE", "BLOCKED")
SAMPLE_SECONDS = 5.0

# The rates of the mixed load (per second) and the workers that hold them.
CRAWLERS, CRAWL_RATE = 4, 2.0  # each crawler
GET_WORKERS, GET_RATE = 4, 5.0  # each worker: 20/s in all
STATUS_WORKERS, STATUS_RATE = 4, 5.0  # each worker: 20/s in all
SESSION_RATE = 2.0  # starts
READINGS, READING_SECONDS = 4, 5.0
SESSION_SECONDS = (READINGS + 1) * READING_SECONDS  # from the start to the stop
SESSION_LOCATIONS = 100  # sessions charge at the EVSEs of these; 400 EVSEs for about 40 sessions at a time

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# --- The fake eMSPs (each in its own process) --------------------------------------------------------------------


def serve_emsp(port: int, index: int) -> None:
    """eMSP `index`: DE/EMP for 0, DE/EM1 and DE/EM2 for the others. Answers the handshake (versions, version
    details, credentials), every push with success (a CDR POST with 201 and a Location), and GET /state with what
    it counted and the last status of every EVSE."""
    base = f"http://127.0.0.1:{port}"
    party = "EMP" if index == 0 else f"EM{index}"
    counts: dict[str, int] = {}
    last: dict[str, str] = {}  # "location/evse" -> status

    def envelope(data: Any) -> bytes:
        return json.dumps(
            {"status_code": 1000, "status_message": "Success", "timestamp": "2026-01-01T00:00:00Z", "data": data}
        ).encode()

    def remember(parts: list[str], body: Any) -> None:
        # parts: ["2.2.1", "locations", "NL", "OHB", location, evse?, connector?]
        if not isinstance(body, dict) or len(parts) < 5:
            return
        location = parts[4]
        if len(parts) == 5:
            for evse in body.get("evses") or []:
                if "status" in evse:
                    last[f"{location}/{evse['uid']}"] = evse["status"]
        elif len(parts) == 6 and "status" in body:
            last[f"{location}/{parts[5]}"] = body["status"]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"].rstrip("/")
        parts = path.strip("/").split("/")
        status, headers, body = 200, [(b"content-type", b"application/json")], SUCCESS
        if path == "/state":
            body = json.dumps({"counts": counts, "last": last}).encode()
        elif path == "/versions":
            body = envelope([{"version": "2.2.1", "url": f"{base}/2.2.1"}])
        elif path == "/2.2.1":
            modules = [("credentials", "SENDER"), ("locations", "RECEIVER"), ("sessions", "RECEIVER")]
            modules.append(("cdrs", "RECEIVER"))
            endpoints = [{"identifier": m, "role": r, "url": f"{base}/2.2.1/{m}"} for m, r in modules]
            body = envelope({"version": "2.2.1", "endpoints": endpoints})
        elif path == "/2.2.1/credentials":
            role = {"role": "EMSP", "country_code": "DE", "party_id": party, "business_details": {"name": party}}
            body = envelope({"token": _token(index), "url": f"{base}/versions", "roles": [role]})
        else:
            module = parts[1] if len(parts) > 1 else "?"
            counts[f"{method} {module}"] = counts.get(f"{method} {module}", 0) + 1
            if module == "locations":
                remember(parts, json.loads(raw) if raw else None)
            elif module == "cdrs" and method == "POST":
                status = 201
                headers.append((b"location", f"{base}/2.2.1/cdrs/{json.loads(raw)['id']}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


def _token(index: int) -> str:
    return f"load-test-token-of-emsp-{index}"


def start_emsps() -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    ports = [free_port() for _ in range(EMSPS)]
    processes = [
        subprocess.Popen([sys.executable, __file__, "--emsp", str(port), str(i)]) for i, port in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url, process in zip(urls, processes, strict=True):
        wait_for(f"{url}/state", process)
    return processes, urls


# --- The hub -----------------------------------------------------------------------------------------------------


def start_hub(database_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_HUB_")} | {
        "OCPI_HUB_DATABASE_URL": database_url,
        "OCPI_HUB_PUBLIC_URL": url,
        "OCPI_HUB_LOG_LEVEL": "WARNING",
        "OCPI_HUB_ALLOW_PRIVATE_PARTNER_URLS": "true",  # the fake eMSPs are on loopback
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ocpi_hub.cli", "serve", "--port", str(port)], env=env, stdout=output, stderr=output
        )
    wait_for(f"{url}/ocpi/versions", process)
    return process, url


def rss_mb(pid: int) -> float:
    try:
        import psutil  # type: ignore[import-untyped, import-not-found, unused-ignore]

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no RSS for process {pid}")


async def _empty(database_url: str) -> None:
    """The given PostgreSQL database starts empty: its public schema dropped and made again."""
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


# --- Setup -------------------------------------------------------------------------------------------------------


async def prepare(hub: str, emsps: list[str], locations: int) -> list[int]:
    """The Tariff, the Locations, the tokens and the registered eMSPs; returns the partner ids."""
    async with httpx.AsyncClient(base_url=f"{hub}/api/v0", timeout=60) as api:

        async def ok(response: Awaitable[httpx.Response]) -> dict[str, Any]:
            answer = await response
            if not answer.is_success:
                raise SystemExit(
                    f"setup: {answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
                )
            return dict(answer.json()) if answer.content else {}

        await ok(api.put("/tariffs/T1", json=TARIFF))
        partners = []
        for i, emsp in enumerate(emsps):
            body = {"token": _token(i), "url": f"{emsp}/versions", "status": "REGISTERED"}
            partners.append(int((await ok(api.post("/register", json=body)))["id"]))
        gate = asyncio.Semaphore(8)

        async def add(path: str, body: dict[str, Any]) -> None:
            async with gate:
                await ok(api.post(path, json=body))

        await asyncio.gather(*(add(f"/location/L{n:05}", location(f"Load site {n}", EVSES)) for n in range(locations)))
        tokens = [
            {
                "countryCode": "DE",
                "partyId": "EMP",
                "type": "RFID",
                "uid": f"CARD{t:04}",
                "contractId": f"DE-EMP-{t:06}",
                "issuer": "Load eMSP",
                "valid": True,
                "cacheMode": "ALLOWED",
            }
            for t in range(TOKENS)
        ]
        await asyncio.gather(*(add("/token", token) for token in tokens))
    return partners


async def backlog(api: httpx.AsyncClient, partners: list[int], state: str = "pending") -> int:
    total = 0
    for partner in partners:
        answer = await api.get(f"/partners/{partner}/deliveries", params={"state": state, "limit": 1})
        answer.raise_for_status()
        total += int(answer.json()["total"])
    return total


async def drained(hub: str, partners: list[int], seconds: float = 300.0) -> float:
    """Wait until no delivery is pending; returns how long that took."""
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=f"{hub}/api/v0", timeout=60) as api:
        while await backlog(api, partners):
            if time.monotonic() - began > seconds:
                raise SystemExit(f"deliveries still pending after {seconds:.0f} s")
            await asyncio.sleep(0.5)
    return time.monotonic() - began


# --- The load ----------------------------------------------------------------------------------------------------


@dataclass
class Kind:
    name: str
    target: float  # requests per second
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    examples: list[str] = field(default_factory=list)

    async def call(self, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = await request
        except httpx.HTTPError as exc:
            self._error(f"{type(exc).__name__}: {exc}")
            return None
        self.latencies.append(time.perf_counter() - began)
        if not response.is_success:
            self._error(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:200]}"
            )
            return None
        return response

    def _error(self, what: str) -> None:
        self.errors += 1
        if len(self.examples) < 5:
            self.examples.append(what)


def ocpi_headers(index: int) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(_token(index).encode()).decode()}


async def paced(rate: float, until: float, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` `rate` times a second until `until` (loop time); a slow step delays the next, never doubles up."""
    loop = asyncio.get_running_loop()
    period = 1 / rate
    due = loop.time() + random.uniform(0, period)  # workers of one kind spread over the period
    while due < until:
        await asyncio.sleep(max(0.0, due - loop.time()))
        await step()
        due = max(due + period, loop.time() - period)  # fallen behind: catch up by at most one period


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def hold(hub: str, locations: int, duration: float) -> dict[str, Kind]:
    # Sessions start until the last whole session fits in the duration: their target is over that share of it.
    session_share = max(0.0, duration - SESSION_SECONDS) / duration
    kinds = {
        k.name: k
        for k in (
            Kind("crawl page", CRAWLERS * CRAWL_RATE),
            Kind("Location GET", GET_WORKERS * GET_RATE),
            Kind("status change", STATUS_WORKERS * STATUS_RATE),
            Kind("session start", SESSION_RATE * session_share),
            Kind("meter reading", SESSION_RATE * READINGS * session_share),
            Kind("session stop", SESSION_RATE * session_share),
        )
    }
    loop = asyncio.get_running_loop()
    until = loop.time() + duration
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(base_url=hub, timeout=30, limits=limits, headers=ocpi_headers(0)) as ocpi,
        httpx.AsyncClient(base_url=f"{hub}/api/v0", timeout=30, limits=limits) as api,
    ):

        def crawler() -> Callable[[], Awaitable[None]]:
            following: list[str] = []

            async def page() -> None:
                url = following.pop() if following else f"/ocpi/2.2.1/locations?offset=0&limit={PAGE}"
                response = await kinds["crawl page"].call(ocpi.get(url))
                if response is not None and (link := response.links.get("next", {}).get("url")):
                    following.append(link)

            return page

        async def get_location() -> None:
            await kinds["Location GET"].call(ocpi.get(f"/ocpi/2.2.1/locations/L{random.randrange(locations):05}"))

        async def change_status() -> None:
            path = f"/location/L{random.randrange(locations):05}/evse/E{random.randint(1, EVSES)}/status"
            await kinds["status change"].call(api.post(path, json={"status": random.choice(STATUSES)}))

        sessions: set[asyncio.Task[None]] = set()
        started = 0

        async def charge(n: int) -> None:
            location_n, evse = divmod(n % (SESSION_LOCATIONS * EVSES), EVSES)
            session = f"/sessions/S{n:06}"
            start = {
                "location_id": f"L{location_n:05}",
                "evse_uid": f"E{evse + 1}",
                "connector_id": "1",
                "token_uid": f"CARD{n % TOKENS:04}",
                "start_date_time": now_iso(),
            }
            if await kinds["session start"].call(api.post(f"{session}/start", json=start)) is None:
                return
            for r in range(1, READINGS + 1):
                await asyncio.sleep(READING_SECONDS)
                reading = {"timestamp": now_iso(), "energy_wh": 900 * r, "power_w": 11000}
                await kinds["meter reading"].call(api.post(f"{session}/meter", json=reading))
            await asyncio.sleep(READING_SECONDS)
            stop = {"end_date_time": now_iso(), "meter_stop_wh": 900 * READINGS}
            await kinds["session stop"].call(api.post(f"{session}/stop", json=stop))

        async def start_session() -> None:
            nonlocal started
            task = asyncio.create_task(charge(started))
            started += 1
            sessions.add(task)
            task.add_done_callback(sessions.discard)

        workers = [paced(CRAWL_RATE, until, crawler()) for _ in range(CRAWLERS)]
        workers += [paced(GET_RATE, until, get_location) for _ in range(GET_WORKERS)]
        workers += [paced(STATUS_RATE, until, change_status) for _ in range(STATUS_WORKERS)]
        workers.append(paced(SESSION_RATE, until - SESSION_SECONDS, start_session))
        await asyncio.gather(*workers)
        while sessions:
            await asyncio.gather(*list(sessions))
    return kinds


async def sample_memory(pid: int, samples: list[tuple[float, float]]) -> None:
    began = time.monotonic()
    while True:
        samples.append((time.monotonic() - began, rss_mb(pid)))
        await asyncio.sleep(SAMPLE_SECONDS)


# --- The check ---------------------------------------------------------------------------------------------------


async def hub_statuses(hub: str) -> dict[str, str]:
    """Every EVSE's status as the hub has it, read by a crawl as eMSP 0."""
    found: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=hub, timeout=60, headers=ocpi_headers(0)) as ocpi:
        url: str | None = "/ocpi/2.2.1/locations?offset=0&limit=200"
        while url:
            response = await ocpi.get(url)
            response.raise_for_status()
            for loc in response.json()["data"]:
                for evse in loc.get("evses") or []:
                    found[f"{loc['id']}/{evse['uid']}"] = evse["status"]
            url = response.links.get("next", {}).get("url")
    return found


def emsp_state(url: str) -> dict[str, Any]:
    state: dict[str, Any] = httpx.get(f"{url}/state", timeout=30).json()
    return state


# --- The run -----------------------------------------------------------------------------------------------------


async def run(database_url: str | None, duration: float, warmup: float, locations: int, keep_log: Path | None) -> int:
    emsp_processes, emsps = start_emsps()
    try:
        with tempfile.TemporaryDirectory() as folder:
            url = database_url or f"sqlite+aiosqlite:///{Path(folder) / 'load.db'}"
            if database_url:
                await _empty(database_url)
            log = keep_log or Path(folder) / "hub.log"
            hub_process, hub = start_hub(url, log)
            try:
                return await measure(hub, hub_process.pid, emsps, url, duration, warmup, locations, log)
            finally:
                hub_process.terminate()
                hub_process.wait()
    finally:
        for process in emsp_processes:
            process.terminate()
            process.wait()


async def measure(
    hub: str, pid: int, emsps: list[str], url: str, duration: float, warmup: float, locations: int, log: Path
) -> int:
    print(f"database {url.split('@')[-1]}; setting up {locations} Locations of {EVSES} EVSEs, {EMSPS} eMSPs ...")
    began = time.monotonic()
    partners = await prepare(hub, emsps, locations)
    waited = await drained(hub, partners)
    print(f"  set up in {time.monotonic() - began:.0f} s (first pushes drained in {waited:.0f} s)")
    print(f"holding the load for {duration:.0f} s (warm-up {warmup:.0f} s) ...")
    load_before = os.getloadavg()[0]
    samples: list[tuple[float, float]] = []
    sampler = asyncio.create_task(sample_memory(pid, samples))
    began = time.monotonic()
    kinds = await hold(hub, locations, duration)
    held = time.monotonic() - began
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    samples.append((held, rss_mb(pid)))
    waited = await drained(hub, partners)
    async with httpx.AsyncClient(base_url=f"{hub}/api/v0", timeout=60) as api:
        dead = await backlog(api, partners, "dead")
    statuses = await hub_statuses(hub)
    lost = []
    for emsp in emsps:
        last = emsp_state(emsp)["last"]
        lost.append(sum(1 for evse, status in statuses.items() if last.get(evse) != status))
    counts = [emsp_state(emsp)["counts"] for emsp in emsps]

    print(
        f"\nheld {held:.0f} s; the outbox drained {waited:.1f} s after the load stopped; machine load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)\n"
    )
    print(f"{'kind':<15} {'requests':>9} {'per s':>7} {'target':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    errors = 0
    for kind in kinds.values():
        done = len(kind.latencies)
        p50, p99 = _percentiles(kind.latencies)
        errors += kind.errors
        print(
            f"{kind.name:<15} {done + kind.errors:>9} {done / held:>7.1f} {kind.target:>7.1f} "
            f"{p50 * 1000:>8.1f} {p99 * 1000:>8.1f} {kind.errors:>7}"
        )
    for kind in kinds.values():
        for example in kind.examples:
            print(f"  error ({kind.name}): {example}")
    at_warmup = next((rss for t, rss in samples if t >= warmup), samples[0][1])
    end = samples[-1][1]
    growth = (end - at_warmup) / at_warmup * 100
    print(
        f"\nhub RSS: {samples[0][1]:.0f} MB at the start, {at_warmup:.0f} MB after the warm-up, {end:.0f} MB at the "
        f"end, peak {max(rss for _, rss in samples):.0f} MB: growth {growth:+.1f}% after the warm-up"
    )
    print(f"pushes received per eMSP: {counts}")
    print(f"EVSEs whose last status an eMSP lacks (lost): {lost} of {len(statuses)} each; dead letters: {dead}")
    lines = (await asyncio.to_thread(log.read_text, errors="replace")).splitlines()
    warnings = [line for line in lines if _serious(line)]
    print(f"hub log lines at WARNING or above: {len(warnings)} ({log})")
    for line in warnings[:5]:
        print(f"  {line[:300]}")
    ok = errors == 0 and not any(lost) and dead == 0 and growth < 10
    verdict = "PASS" if ok else "FAIL"
    print(f"\n{verdict}: errors {errors} (target 0), lost {sum(lost)} (0), memory growth {growth:+.1f}% (< 10%)")
    return 0 if ok else 1


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        return (latencies[0], latencies[0]) if latencies else (0.0, 0.0)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[98]


def _serious(line: str) -> bool:
    return any(level in line for level in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds the load is held")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the memory baseline")
    parser.add_argument("--database-url", help="a scratch PostgreSQL database: its public schema is dropped first")
    parser.add_argument("--locations", type=int, default=1000)
    parser.add_argument("--log", type=Path, help="keep the hub's log in this file")
    parser.add_argument("--emsp", nargs=2, type=int, help=argparse.SUPPRESS)  # internal: serve fake eMSP (port, i)
    args = parser.parse_args()
    if args.emsp:
        serve_emsp(*args.emsp)
        return
    sys.exit(uvloop.run(run(args.database_url, args.duration, args.warmup, args.locations, args.log)))


if __name__ == "__main__":
    main()
