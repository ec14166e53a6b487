"""Shared fixtures: a real database (a SQLite file, or PostgreSQL from OCPI_HUB_TEST_DATABASE_URL), the hub
served over real HTTP on 127.0.0.1, and a fake eMSP served the same way."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ocpi_hub.app import create_app
from ocpi_hub.db import Base, sqlite_driver
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.migrate import upgrade
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Party, Settings
from tests.fake_emsp import FakeEmsp
from tests.servers import serve

DATA = Path(__file__).parent / "data"


def _reset_postgres(url: str) -> None:
    async def reset() -> None:
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated database for the session; every test starts from empty tables."""
    url = os.environ.get("OCPI_HUB_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'hub.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The tests' own view of the hub's database, for asserting what was (not) written."""
    return session_factory(engine)


class MovableClock:
    """The hub's one clock in tests: real time plus an offset that a test moves forward, instead of editing rows,
    to make retries come due or deliveries age (create_app hands it to everything that reads the time)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


@dataclass
class Hub:
    url: str
    settings: Settings
    http: httpx.AsyncClient
    clock: Callable[[], datetime]

    async def ocpi(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = token_header(token) if token else {}
        headers |= kwargs.pop("headers", {})
        return await self.http.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, f"{self.url}/api/v0{path}", **kwargs)


HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def hub_factory(database_url: str, engine: AsyncEngine) -> AsyncIterator[HubFactory]:
    """Start hubs on the test database, over real HTTP; settings can be overridden per test."""
    stack: list[Any] = []

    async def start(clock: Callable[[], datetime] | None = None, **overrides: Any) -> Hub:
        hub_clock = clock or MovableClock()
        captured: dict[str, Settings] = {}

        def make(base_url: str) -> Any:
            values: dict[str, Any] = {
                "database_url": database_url,
                "public_url": base_url,
                "parties": (Party("NL", "OHB", "Test CPO"),),
                "allow_private_partner_urls": True,
                "http_timeout": 2.0,
            } | overrides
            captured["settings"] = Settings(**values)
            return create_app(captured["settings"], clock=hub_clock)

        server = serve(make)
        url = await server.__aenter__()
        stack.append(server)
        http = httpx.AsyncClient(timeout=10)
        stack.append(http)
        return Hub(url=url, settings=captured["settings"], http=http, clock=hub_clock)

    yield start
    for item in reversed(stack):
        await item.__aexit__(None, None, None)


@pytest.fixture
async def hub(hub_factory: HubFactory) -> Hub:
    return await hub_factory()


@pytest.fixture
async def emsp() -> AsyncIterator[FakeEmsp]:
    fake = FakeEmsp()
    async with serve(fake.app):
        yield fake


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls made on aiosqlite's threads from now on (SQLite): what went to its thread rather than running on
    the event loop's (ocpi_hub/db/sqlite_driver.py). The count of commits made on the loop starts afresh, so that
    the one in LOOP_COMMITS_PER_CHECKPOINT that goes to the thread is the 100th from now, not one by chance."""
    monkeypatch.setattr(sqlite_driver, "_loop_commits", itertools.count(1))
    made: list[str] = []
    execute: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made
