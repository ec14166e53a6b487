"""What the benchmarks share: ports, servers in subprocesses, wrk and its figures, the success envelope the fake
partners answer, and the Tariff and Locations they store through the internal API."""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

SUCCESS = b'{"status_code":1000,"status_message":"Success","timestamp":"2026-01-01T00:00:00Z"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until `url` answers (30 s at most); stops at once when `process`, the server, has ended."""
    for _ in range(1500):
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{url}: the process ended ({process.returncode})")
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.02)
    raise SystemExit(f"{url} does not answer")


def _pinned(cpu: int, pin: bool) -> list[str]:
    # Server and load generator on separate cores, where taskset exists: they do not compete for one.
    return ["taskset", "-c", str(cpu)] if pin and shutil.which("taskset") else []


@contextmanager
def server(script: str, *args: str, pin: bool = False, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """`script` serving `args` in a subprocess (on CPU 0 when `pin`, with `env` added to the environment); yields
    its base URL and process id."""
    port = free_port()
    command = [*_pinned(0, pin), sys.executable, script, *args, "--port", str(port)]
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise SystemExit(f"server {args[0]} stopped") from None
                time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(10)


@dataclass(frozen=True)
class Measure:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None  # the server's CPU (user + system) per request, when measured


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (no profiler)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    header: str,
    threads: int = 1,
    script: Path | None = None,
    pin: bool = False,
) -> Measure:
    """wrk's requests per second and latency percentiles for `url` (on CPU 1 when `pin`), sending `header`."""
    # A 10 s timeout: a hub that falls far behind still has its latency measured rather than its requests dropped.
    command = [*_pinned(1, pin), "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    command += ["--latency", "-H", header]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or re.search(r"Socket errors: connect [1-9]|read [1-9]|write [1-9]", out):
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    if timeouts := re.search(r"timeout ([0-9]+)", out):
        print(f"  {timeouts[1]} requests timed out (10 s) on {url}", flush=True)

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert match is not None, out
        return float(match[1]) * _UNIT_MS[match[2]]

    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    assert rps is not None, out
    return Measure(float(rps[1]), latency("50"), latency("99"))


# The Tariff every benchmark Location names, as PUT /api/v0/tariffs/T1 takes it.
TARIFF = {
    "country_code": "NL",
    "party_id": "OHB",
    "id": "T1",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.50, "vat": 21.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.35, "vat": 21.0, "step_size": 1},
                {"type": "PARKING_TIME", "price": 3.00, "vat": 21.0, "step_size": 60},
            ]
        }
    ],
}


def location(name: str, evses: int) -> dict[str, Any]:
    """A Location for POST /api/v0/location/{id}: `evses` EVSEs (E1, E2, ...) of one connector naming T1."""
    connector = {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 32,
        "tariff_ids": ["T1"],
    }
    return {
        "country_code": "NL",
        "party_id": "OHB",
        "name": name,
        "address": "Croeselaan 38",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": {"latitude": "52.089386", "longitude": "5.109612"},
        "evses": [{"uid": f"E{e}", "connectors": [connector]} for e in range(1, evses + 1)],
    }


@contextmanager
def fresh_copy(database_url: str, workdir: Path, name: str = "copy") -> Iterator[str]:
    """A copy of the prepared database named `name`, for one hub process, dropped after it: every process starts
    from the same state, not from what the process before it left (its WAL, traffic log and deliveries, their
    checkpoints and vacuums). Without it, crawl_under_writes.py --baseline measured a label that often followed the
    other's busiest window lower."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        copy = workdir / f"{name}.db"
        with sqlite3.connect(str(url.database)) as source, sqlite3.connect(copy) as target:
            source.backup(target)  # what the WAL holds too
        try:
            yield url.set(database=str(copy)).render_as_string(hide_password=False)
        finally:
            for path in workdir.glob(f"{name}.db*"):
                path.unlink()
        return
    database = f"{url.database}_{name}"

    async def admin(statement: str) -> None:  # CREATE and DROP DATABASE run outside a transaction
        engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
        await engine.dispose()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}"'))
    asyncio.run(admin(f'CREATE DATABASE "{database}" TEMPLATE "{url.database}"'))
    try:
        yield url.set(database=database).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE "{database}"'))


_TIMEOUT = httpx.Timeout(10).as_dict()


async def send_plain(
    transport: httpx.AsyncBaseTransport, method: str, url: str, body: bytes, headers: dict[str, str]
) -> bytes:
    """A ceiling's request: straight to an httpx transport, as ocpi_hub.client sends ours (no AsyncClient layer),
    with the same 10 s timeout; the answer's body."""
    request = httpx.Request(method, url, content=body, headers=headers, extensions={"timeout": _TIMEOUT})
    response = await transport.handle_async_request(request)
    try:
        return await response.aread()
    finally:
        await response.aclose()
