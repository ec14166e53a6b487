"""The database out of reach for a while (issue #13 §3, docs/ocpi.md §11): /ocpi answers HTTP 503 with the envelope
(status 3000), /api/v0 answers 503, both with Retry-After; the log has one WARNING when it starts and one INFO when
it ends, no traceback per request; the hub recovers without a restart. The push worker and the scheduled sync wait
it out the same way: no traceback per round, the one WARNING and the one INFO, and they work again afterwards.

PostgreSQL only: the hub reaches it through a TCP proxy of this test, which then refuses connections for a while (or
resets each one, counted, where the test must know that the hub kept trying)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import HubFactory, token_header
from tests.fake_emsp import FakeEmsp
from tests.test_ocpi_tokens import EMSP_TOKEN, add_partner
from tests.test_push_delivery import connect, drained, eventually, poll, pushes, put_location, set_status
from tests.test_sync import record, write_json


class Proxy:
    """A TCP proxy on 127.0.0.1 to the database; `down()` closes every connection and refuses new ones, or with
    `refuse=False` accepts each new one only to reset it, counting them in `turned_away`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.turned_away = 0
        self._resetting = False
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._resetting = False
        if self._server is None or not self._server.is_serving():
            self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def down(self, *, refuse: bool = True) -> None:
        assert self._server is not None
        self._resetting = not refuse
        if refuse:
            self._server.close()
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()
        if refuse:
            await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._resetting:
            self.turned_away += 1
            # SO_LINGER 0: the close is a reset, as from a host whose database is not listening.
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
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

    caplog.set_level(logging.INFO)
    caplog.clear()  # before the outage: whoever notices it first (a request, the push worker) logs its one WARNING
    await proxy.down()
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


def _told(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """What the hub logged, (level, logger), and that none of it carries a traceback."""
    records = [r for r in caplog.records if r.name.startswith(("ocpi_hub", "litestar", "uvicorn"))]
    assert not any(r.exc_info for r in records), [r.getMessage() for r in records if r.exc_info]
    return [(r.levelname, r.name) for r in records]


# Connections the hub tried while the database was away: the push worker's loop and its partner's task each try once
# a poll (a second), the scheduled sync once a run; this many mean several rounds of each.
_TRIES = 8


async def test_the_push_worker_waits_out_an_outage_with_one_warning(
    hub_factory: HubFactory,
    proxy: Proxy,
    database_url: str,
    emsp: FakeEmsp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = await hub_factory(database_url=_through(database_url, proxy))
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await drained(hub, partner_id)  # its outcome recorded: otherwise its claim holds the object until it expires

    caplog.set_level(logging.INFO)
    caplog.clear()
    await proxy.down(refuse=False)
    await eventually(lambda: proxy.turned_away >= _TRIES)
    assert _told(caplog) == [("WARNING", "ocpi_hub.db.outage")]  # today: a traceback per round

    caplog.clear()
    await proxy.up()
    evse = await set_status(hub, "LOC1", "E1", "CHARGING")
    # Delivered by the same worker, never restarted.
    await eventually(
        lambda: any(r.body == {"status": "CHARGING", "last_updated": evse["last_updated"]} for r in pushes(emsp))
    )
    assert _told(caplog) == [("INFO", "ocpi_hub.db.outage")]


async def test_the_scheduled_sync_waits_out_an_outage_with_one_warning(
    tmp_path: Path,
    hub_factory: HubFactory,
    proxy: Proxy,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add_partner(sessions)
    source = tmp_path / "export.json"
    write_json(source, [record(5)])
    hub = await hub_factory(
        database_url=_through(database_url, proxy), sync_source=str(source), sync_interval=0.2, push_worker=False
    )

    async def status_of_location_5() -> list[str]:
        response = await hub.ocpi("GET", "/ocpi/2.2.1/locations/5", EMSP_TOKEN)
        return [e["status"] for e in response.json()["data"]["evses"]] if response.status_code == 200 else []

    await poll(status_of_location_5, lambda found: found == ["AVAILABLE", "AVAILABLE"])

    # The sync logs through handlers of its own module: caplog listens there too (as tests/test_sync.py does).
    logger = logging.getLogger("ocpi_hub.sync")
    logger.addHandler(caplog.handler)
    try:
        caplog.set_level(logging.INFO)
        caplog.clear()
        await proxy.down(refuse=False)
        await eventually(lambda: proxy.turned_away >= _TRIES)
        # A run that finished as the database went away still logs its summary (INFO); a failed run logs nothing.
        told = [t for t in _told(caplog) if t != ("INFO", "ocpi_hub.sync.schedule")]
        assert told == [("WARNING", "ocpi_hub.db.outage")]  # today: a traceback per run

        caplog.clear()
        await proxy.up()
        write_json(source, [record(5, status="Unavailable")])
        await poll(status_of_location_5, lambda found: found == ["INOPERATIVE", "INOPERATIVE"])
    finally:
        logger.removeHandler(caplog.handler)
    # The read caches' own note (the connection they held died meanwhile; seen by the first request after the
    # outage, as in the test above) aside.
    told = [t for t in _told(caplog) if t[1] != "ocpi_hub.db.freshness"]
    assert told.count(("INFO", "ocpi_hub.db.outage")) == 1
    assert not [t for t in told if t[0] != "INFO"], told  # the sync's own summaries are INFO
