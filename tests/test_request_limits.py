"""A request line or header fields too long (issue #13 §3, docs/ocpi.md §11): up to the server's own limits they
reach us and are answered in our format, 414 or 431 (on /ocpi the envelope with 2000); beyond them the server answers
in plain text. Served as `ocpi-hub serve` serves, by uvicorn with httptools, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ocpi_hub.api.request_limits import MAX_HEADERS, MAX_TARGET
from ocpi_hub.app import create_app
from ocpi_hub.settings import Party, Settings
from tests.conftest import MovableClock
from tests.servers import serve

# uvicorn with httptools refuses a request target longer than this itself (its URL parser counts in 16 bits).
SERVER_TARGET_LIMIT = 65535


def _make(database_url: str) -> Any:
    def make(url: str) -> Any:
        settings = Settings(database_url=database_url, public_url=url, parties=(Party("NL", "OHB", "Test CPO"),))
        return create_app(settings, clock=MovableClock())

    return make


@pytest.fixture(params=["httptools", "h11"])
async def base_url(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[str]:
    async with serve(_make(database_url), http=request.param) as url:
        yield url


@pytest.fixture
async def httptools_url(database_url: str) -> AsyncIterator[str]:
    """As `ocpi-hub serve`. (h11 may refuse a head over 16 KiB itself, depending on how it arrives: see the docs.)"""
    async with serve(_make(database_url), http="httptools") as url:
        yield url


def _query(total: int, path: str) -> str:
    """A query that makes `path`'s request target exactly `total` bytes long."""
    return "x=" + "a" * (total - len(path) - len("?x="))


async def test_a_request_target_too_long_is_414_in_our_format(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        path = "/ocpi/2.2.1/locations"
        ocpi = await http.get(f"{path}?{_query(MAX_TARGET + 1, path)}", headers={"Authorization": "Token x"})
        assert ocpi.status_code == 414
        assert ocpi.json()["status_code"] == 2000
        assert ocpi.json()["status_message"] == f"the request target is {MAX_TARGET + 1} bytes long, above {MAX_TARGET}"
        assert "timestamp" in ocpi.json()

        path = "/api/v0/token"
        api = await http.get(f"{path}?{_query(MAX_TARGET + 1, path)}")
        assert api.status_code == 414
        assert api.json() == {
            "status": "Request-URI Too Long",
            "error": f"the request target is {MAX_TARGET + 1} bytes long, above {MAX_TARGET}",
        }

        # At the limit: served as usual (here refused for its unknown token, by the app).
        path = "/ocpi/2.2.1/locations"
        at = await http.get(f"{path}?{_query(MAX_TARGET, path)}", headers={"Authorization": "Token x"})
        assert at.status_code == 401, at.text


async def test_header_fields_too_long_are_431_in_our_format(httptools_url: str) -> None:
    async with httpx.AsyncClient(base_url=httptools_url) as http:
        big = {f"X-Filler-{i}": "b" * 4000 for i in range(MAX_HEADERS // 4000 + 1)}
        ocpi = await http.get("/ocpi/2.2.1/locations", headers={"Authorization": "Token x"} | big)
        assert ocpi.status_code == 431
        assert ocpi.json()["status_code"] == 2000
        assert ocpi.json()["status_message"].startswith("the header fields are ")

        api = await http.get("/api/v0/token", headers=big)
        assert api.status_code == 431
        assert api.json()["status"] == "Request Header Fields Too Large"

        fewer = dict(list(big.items())[: MAX_HEADERS // 4000 - 1])
        assert (await http.get("/api/v0/token", headers=fewer)).status_code == 200


async def test_beyond_the_servers_limit_the_server_answers(httptools_url: str) -> None:
    async with httpx.AsyncClient(base_url=httptools_url) as http:
        path = "/ocpi/2.2.1/locations"
        beyond = await http.get(f"{path}?{_query(SERVER_TARGET_LIMIT + 1, path)}")
        # Documented rather than wanted: uvicorn's own plain-text answer (docs/ocpi.md §11).
        assert beyond.status_code == 400
        assert beyond.headers["content-type"].startswith("text/plain")
