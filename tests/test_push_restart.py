"""Nothing is lost when the hub process is killed (kill -9) with deliveries waiting (README: "Durability, order, latest
wins"): the next process delivers them. The hub runs as a real `ocpi-hub serve` process on the test database."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ocpi_hub.db.deliveries import Delivery
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Settings
from tests.conftest import Hub
from tests.fake_emsp import Failure, FakeEmsp
from tests.test_push_delivery import LOCATIONS, connect, drained, failed, put_location, set_status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def hub_process(
    database_url: str, log: Path, **more: str
) -> AsyncIterator[tuple[Hub, asyncio.subprocess.Process]]:
    """`ocpi-hub serve` in a process of its own, with `more` settings (name: value); killed (SIGKILL) on the way out
    if it still runs."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("OCPI_HUB_")}
        | {
            "OCPI_HUB_DATABASE_URL": database_url,
            "OCPI_HUB_PUBLIC_URL": url,
            "OCPI_HUB_ALLOW_PRIVATE_PARTNER_URLS": "true",
            "OCPI_HUB_HTTP_TIMEOUT": "2",
            "OCPI_HUB_LOG_LEVEL": "WARNING",
        }
        | {f"OCPI_HUB_{name.upper()}": value for name, value in more.items()}
    )
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ocpi_hub.cli", "serve", "--port", str(port), env=env, stdout=output, stderr=output
        )
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            for _ in range(1000):  # bounded: until it answers
                if process.returncode is not None:
                    raise AssertionError(f"the hub exited, see {log}")
                try:
                    await http.get(f"{url}/ocpi/versions")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
            settings = Settings(database_url=database_url, public_url=url)
            yield Hub(url=url, settings=settings, http=http, clock=utc_now), process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_deliveries_waiting_at_a_kill_are_delivered_by_the_next_process(
    database_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], emsp: FakeEmsp, tmp_path: Path
) -> None:
    log = tmp_path / "hub.log"
    async with hub_process(database_url, log) as (hub, process):
        partner_id = await connect(hub, emsp)
        emsp.failures = [Failure(http_status=500)] * 1000  # the eMSP goes down
        stored = await put_location(hub, "LOC1")
        await failed(hub, partner_id, 1)
        evse = await set_status(hub, "LOC1", "E1", "CHARGING")
        process.kill()  # SIGKILL: no shutdown of any kind
        assert await process.wait() == -9

    async with sessions() as session:
        waiting = (await session.execute(select(Delivery.evse_uid, Delivery.method).order_by(Delivery.id))).all()
    assert [tuple(row) for row in waiting] == [("", "PUT"), ("E1", "PATCH")]

    emsp.failures.clear()  # the eMSP is back; the first retry comes due within seconds (push/retry.py BACKOFF)
    arrived = len(emsp.requests)
    async with hub_process(database_url, log) as (hub, _):
        await drained(hub, partner_id)
    assert [(r.method, r.path, r.body) for r in emsp.requests[arrived:]] == [
        ("PUT", f"{LOCATIONS}/LOC1", stored | {"evses": [evse], "last_updated": evse["last_updated"]}),
        ("PATCH", f"{LOCATIONS}/LOC1/E1", {"status": "CHARGING", "last_updated": evse["last_updated"]}),
    ]
