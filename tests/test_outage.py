"""The database out of reach for a while (issue #13 §3, docs/ocpi.md §11): /ocpi answers HTTP 503 with the envelope
(status 3000), /api/v0 answers 503, both with Retry-After; the log has one WARNING when it starts and one INFO when
it ends, no traceback per request; the hub recovers without a restart.

PostgreSQL only: the hub reaches it through a TCP proxy of this test, which then refuses connections for a while."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import HubFactory, token_header
from tests.test_ocpi_tokens import EMSP_TOKEN, add_partner


class Proxy:
    """A TCP proxy on 127.0.0.1 to the database; `down()` closes every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()
        await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            their_reader, their_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, their_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(copy(reader, their_writer), copy(their_reader, writer))


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[Proxy]:
    if not database_url.startswith("postgresql"):
        pytest.skip("the outage is played with PostgreSQL (OCPI_HUB_TEST_DATABASE_URL)")
    parts = urlsplit(database_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.up()
    yield proxy
    if proxy._server is not None and proxy._server.is_serving():
        await proxy.down()


def _through(database_url: str, proxy: Proxy) -> str:
    parts = urlsplit(database_url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


async def test_an_outage_is_answered_503_logged_once_and_recovered_from(
    hub_factory: HubFactory,
    proxy: Proxy,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add_partner(sessions)
    hub = await hub_factory(database_url=_through(database_url, proxy))
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/locations", EMSP_TOKEN)).status_code == 200

    await proxy.down()
    caplog.clear()
    caplog.set_level(logging.INFO)
    for i in range(20):
        # A token never seen, so that no cache can answer: the database must be asked.
        ocpi = await hub.ocpi("GET", "/ocpi/2.2.1/locations", headers=token_header(f"unseen-{i}"))
        assert ocpi.status_code == 503, ocpi.text
        assert ocpi.json()["status_code"] == 3000
        assert "timestamp" in ocpi.json()
        assert ocpi.headers["Retry-After"] == "5"
        api = await hub.api("GET", "/token")
        assert api.status_code == 503, api.text
        assert api.json() == {
            "status": "Service Unavailable",
            "error": "the database cannot be reached: try again shortly",
        }
        assert api.headers["Retry-After"] == "5"
    # What serving requests logged (the push worker and the sync log their own rounds): once, not per request.
    served = [r for r in caplog.records if r.name.startswith(("ocpi_hub", "litestar", "uvicorn"))]
    served = [r for r in served if not r.name.startswith(("ocpi_hub.push", "ocpi_hub.sync"))]
    assert sorted((r.levelname, r.name) for r in served) == [
        ("WARNING", "ocpi_hub.db.freshness"),  # the read caches are bypassed meanwhile
        ("WARNING", "ocpi_hub.db.outage"),
    ], served
    assert not any(r.exc_info for r in served)

    caplog.clear()
    await proxy.up()
    assert (await hub.api("GET", "/token")).status_code == 200
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/locations", EMSP_TOKEN)).status_code == 200
    ended = [r for r in caplog.records if r.name == "ocpi_hub.db.outage"]
    assert [r.levelname for r in ended] == ["INFO"]
    assert "reached again" in ended[0].getMessage()
