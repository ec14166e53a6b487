"""The standing fuzz suite (issue #13 §1, docs/ocpi.md §11 "No input gives a 500"): schemathesis against every
operation of the internal API's OpenAPI document, and hypothesis-generated requests against every /ocpi route,
over real HTTP. For every request: no 5xx; an error is in the documented format (/api/v0: the seed's
{"status", "error"}; /ocpi: the envelope with status_code and timestamp); a refused request stores nothing.

The explicit cases at the top are the members of each class found so far: each failed before its fix.

CI runs a short run (a few examples per route). The long run by hand (README "Testing"):
    OCPI_HUB_FUZZ_EXAMPLES=200 pytest tests/test_fuzz.py -s
`-s` shows the request count and the count of 5xx answers at the end.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.routes import HTTPRoute
from schemathesis import GenerationMode
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ocpi_hub.app import create_app
from ocpi_hub.credentials_token import hash_token
from ocpi_hub.db import Base
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.settings import Party, Settings
from tests.servers import serve
from tests.test_ocpi_tokens import RFID, ROLE

T = TypeVar("T")

EXAMPLES = int(os.environ.get("OCPI_HUB_FUZZ_EXAMPLES", "0")) or None  # None: the short CI run
TOKEN_C = "fuzz-emsp-token-c"  # a registered eMSP, DE/EMP
TOKEN_A = "fuzz-emsp-token-a"  # a partner that may POST its credentials
PARTY = Party("NL", "OHB", "Fuzz CPO")
# Written by the hub's background work whatever the requests: leases renewed on a timer; the traffic log, which
# records every exchange with a partner, a refused one too (docs/operations.md §7.2), written within a second; the
# sent deliveries and their pruning (§7.1, §7.3).
BACKGROUND = frozenset({"leases", "traffic", "sent_deliveries"})


def _settings(database_url: str, public_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        public_url=public_url,
        parties=(PARTY,),
        allow_private_partner_urls=True,  # URLs we generate name loopback, so that no name is looked up
        http_timeout=2.0,
    )


class FuzzedHub:
    """The hub served over HTTP from a thread of its own, so that schemathesis' blocking calls can reach it; its
    database is read from that thread's event loop."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.url = ""
        self.requests = 0
        self.server_errors: list[str] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._engine: AsyncEngine | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._engine = create_engine(self.database_url)
        try:
            async with serve(lambda base_url: create_app(_settings(self.database_url, base_url))) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        finally:
            await self._engine.dispose()
            self._ready.set()

    def __enter__(self) -> FuzzedHub:
        self._thread.start()
        self._ready.wait(30)
        assert self.url, "the hub did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def run(self, work: Callable[[AsyncEngine], Coroutine[Any, Any, T]]) -> T:
        assert self._loop is not None
        assert self._engine is not None
        return asyncio.run_coroutine_threadsafe(work(self._engine), self._loop).result(30)

    def digest(self) -> dict[str, str]:
        """Everything stored, as a hash per table: equal before and after a refused request."""

        async def read(engine: AsyncEngine) -> dict[str, str]:
            hashes = {}
            async with engine.connect() as connection:
                for table in Base.metadata.sorted_tables:
                    if table.name in BACKGROUND:
                        continue
                    rows = (await connection.execute(select(table))).all()
                    hashes[table.name] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
            return hashes

        return self.run(read)

    def answered(self, where: str, status: int) -> None:
        self.requests += 1
        if status >= 500 and status != 502:
            self.server_errors.append(f"{status} {where}")


async def _prepare(engine: AsyncEngine) -> None:
    """Empty tables, then a registered eMSP (TOKEN_C) and a partner that is to register (TOKEN_A)."""
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())
    now = datetime.now(UTC)
    async with session_factory(engine)() as session:
        for token, state in ((TOKEN_C, PartnerState.REGISTERED), (TOKEN_A, PartnerState.PENDING)):
            session.add(
                Partner(
                    state=state,
                    initiator=Initiator.PARTNER,
                    token_hash=hash_token(token),
                    roles=[ROLE] if state == PartnerState.REGISTERED else [],
                    endpoints=[],
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.commit()
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint"))


@pytest.fixture(scope="module")
def fuzzed(database_url: str) -> Iterator[FuzzedHub]:
    with FuzzedHub(database_url) as hub:
        hub.run(_prepare)
        yield hub
        print(f"\nfuzz: {hub.requests} requests, {len(hub.server_errors)} answered 500 (or 5xx other than 502)")  # noqa: T201


def _settings_for_run(default: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default,
        deadline=None,
        database=None,  # nothing written to the working tree
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


# ---------------------------------------------------------------------------------------------------------------
# The classes found so far, one request each (issue #13 §1).

HUGE = "9" * 5000
EDGES = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")
BAD_URLS = ("http://127.0.0.1:99999/versions", "http://[::1/versions", "http://127.0.0.1:port/", "http://ex\u00e4mple/")


def _basic(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


KNOWN: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/ocpi/2.2.1/locations", {"headers": {"Authorization": "Token \xe9\xff".encode("latin-1")}}),
    ("GET", "/ocpi/2.2.1/locations", {"headers": {"Authorization": b"Token " + "\u00e9t\u00e9".encode()}}),
    *(
        ("GET", "/ocpi/2.2.1/locations", {"params": {name: edge}})
        for edge in EDGES
        for name in ("date_from", "date_to")
    ),
    *(("GET", "/ocpi/2.2/tariffs", {"params": {name: HUGE}}) for name in ("offset", "limit")),
    *(("PUT", f"/ocpi/2.2.1/tokens/DE/EMP/{RFID['uid']}", {"json": {**RFID, "last_updated": edge}}) for edge in EDGES),
    ("PATCH", f"/ocpi/2.2.1/tokens/DE/EMP/{RFID['uid']}", {"json": {"valid": False, "last_updated": EDGES[0]}}),
    ("PUT", f"/ocpi/2.2.1/tokens/DE/EMP/{RFID['uid']}", {"content": b"[" * 100_000 + b"]" * 100_000}),
    ("PUT", "/ocpi/2.2.1/tokens/DE/EMP/%C3%A9%E4%B8%AD", {"json": {**RFID, "uid": "\u00e9\u4e2d"}}),
    ("GET", "/ocpi/2.2.1/locations/%C3%A9%E4%B8%AD/%F0%9F%94%8C", {}),
    *(
        ("POST", "/ocpi/2.2.1/credentials", {"token": TOKEN_A, "json": {"token": "x", "url": url, "roles": [ROLE]}})
        for url in BAD_URLS
    ),
]
KNOWN_API: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", f"/api/v0/partners/{2**63}", {}),
    ("GET", f"/api/v0/partners/{2**31}/deliveries", {}),  # PostgreSQL's Integer is 32 bits
    ("POST", f"/api/v0/partners/{2**63}/suspend", {}),
    ("GET", f"/api/v0/partners/{2**63}/deliveries", {}),
    ("GET", "/api/v0/token", {"params": {"offset": str(2**63)}}),
    ("GET", "/api/v0/tariffs", {"params": {"offset": HUGE}}),
    ("GET", "/api/v0/certificate/%C3%A9%E4%B8%AD", {}),
    ("POST", "/api/v0/token", {"content": b"[" * 100_000 + b"]" * 100_000}),
    *(("POST", "/api/v0/register", {"json": {"url": url, "token": f"token-{i}"}}) for i, url in enumerate(BAD_URLS)),
    # A body member named like a dependency of the handler: Litestar took its error for the dependency's, a 500.
    ("POST", "/api/v0/cs/CS1/status", {"json": {"settings": False}}),
]


def _is_envelope(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, dict), response.text
    assert isinstance(body.get("status_code"), int), response.text
    assert isinstance(body.get("timestamp"), str), response.text
    assert body["timestamp"].endswith("Z"), response.text
    return body


def _is_seed_error(response: httpx.Response) -> None:
    body = response.json()
    assert isinstance(body, dict), response.text
    assert isinstance(body.get("status"), str), response.text
    assert isinstance(body.get("error"), str), response.text
    assert body["error"], response.text


def _ocpi_request(fuzzed: FuzzedHub, method: str, path: str, token: str | None = TOKEN_C, **kwargs: Any) -> None:
    headers = (_basic(token) if token else {}) | kwargs.pop("headers", {})
    before = fuzzed.digest()
    response = httpx.request(method, fuzzed.url + path, headers=headers, timeout=10, **kwargs)
    fuzzed.answered(f"{method} {path}", response.status_code)
    assert response.status_code < 500, response.text
    body = _is_envelope(response)
    if response.status_code >= 400:
        assert body["status_code"] != 1000, response.text
    if body["status_code"] != 1000:
        assert fuzzed.digest() == before, f"a refused {method} {path} stored something: {response.text}"


def _api_request(fuzzed: FuzzedHub, method: str, path: str, **kwargs: Any) -> None:
    before = fuzzed.digest()
    response = httpx.request(method, fuzzed.url + path, timeout=10, **kwargs)
    fuzzed.answered(f"{method} {path}", response.status_code)
    assert response.status_code < 500 or response.status_code == 502, response.text  # 502: the partner failed
    if response.status_code >= 400:
        _is_seed_error(response)
        assert fuzzed.digest() == before, f"a refused {method} {path} stored something: {response.text}"


@pytest.mark.parametrize(("method", "path", "kwargs"), KNOWN)
def test_known_ocpi_input(fuzzed: FuzzedHub, method: str, path: str, kwargs: dict[str, Any]) -> None:
    _ocpi_request(fuzzed, method, path, **kwargs)


@pytest.mark.parametrize(("method", "path", "kwargs"), KNOWN_API)
def test_known_internal_input(fuzzed: FuzzedHub, method: str, path: str, kwargs: dict[str, Any]) -> None:
    _api_request(fuzzed, method, path, **kwargs)


def test_no_body_member_is_named_like_a_dependency() -> None:
    """Litestar reports a body member that fails validation under the member's name, and answers 500 when that name
    is also one of the handler's dependencies (it takes it for a server-side failure). So no dependency may share a
    name with a top-level member of any body the app decodes."""
    app = create_app(_settings("sqlite+aiosqlite://", "http://127.0.0.1"))
    clashes = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            body = handler.parsed_fn_signature.parameters.get("data")
            if body is None or not (isinstance(body.annotation, type) and issubclass(body.annotation, msgspec.Struct)):
                continue
            members = {f.encode_name for f in msgspec.structs.fields(body.annotation)}
            if shared := members & set(handler.resolve_dependencies()):
                clashes.append((route.path, sorted(shared)))
    assert clashes == []


def test_the_known_errors_name_the_field_and_the_rule(fuzzed: FuzzedHub) -> None:
    def message(path: str, **kwargs: Any) -> str:
        response = httpx.get(fuzzed.url + path, headers=_basic(TOKEN_C), timeout=10, **kwargs)
        body: dict[str, Any] = response.json()
        return str(body.get("status_message") or body.get("error"))

    assert message("/ocpi/2.2.1/locations", params={"date_from": EDGES[0]}).startswith("date_from: ")
    assert "years 1 to 9999" in message("/ocpi/2.2.1/locations", params={"date_from": EDGES[1]})
    assert message("/ocpi/2.2.1/locations", params={"offset": HUGE}).startswith("offset: '9999")
    assert message(f"/api/v0/partners/{2**63}") == "partner_id: must be an integer from -2^31 to 2^31-1"
    assert message("/api/v0/token", params={"offset": str(2**63)}).startswith("offset: must be an integer")


# ---------------------------------------------------------------------------------------------------------------
# The internal API: schemathesis, every operation of its OpenAPI document.


def _openapi() -> dict[str, Any]:
    app = create_app(_settings("sqlite+aiosqlite://", "http://127.0.0.1"))
    return app.openapi_schema.to_schema()


SCHEMA = schemathesis.openapi.from_dict(_openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]  # an Err raises


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: f"{o.method.upper()} {o.path}")
def test_internal_api_operation(fuzzed: FuzzedHub, operation: Any) -> None:
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @_settings_for_run(6)
    @given(case=cases)
    def run(case: Any) -> None:
        if isinstance(case.query, dict) and "wait" in case.query:
            case.query["wait"] = 0  # a long poll (up to 30 s) would only wait, not test more
        before = fuzzed.digest()
        response = case.call(base_url=fuzzed.url, timeout=10)
        fuzzed.answered(f"{case.method} {case.formatted_path}", response.status_code)
        # 502: a partner we called failed (POST /register), documented; never a 500 of ours.
        assert response.status_code < 500 or response.status_code == 502, response.text
        if response.status_code >= 400 and operation.path.startswith("/api/v0"):
            body = json.loads(response.content)
            assert isinstance(body, dict), response.text
            if not (operation.path.startswith("/api/v0/evsevo/") and body.get("outcome") == "rejected"):
                # The EvseVO ingestion answers its report, naming each record's errors, instead.
                assert isinstance(body.get("status"), str), response.text
                assert isinstance(body.get("error"), str), response.text
            assert fuzzed.digest() == before, f"a refused {case.method} {case.formatted_path} stored something"

    run()


# ---------------------------------------------------------------------------------------------------------------
# /ocpi: hypothesis, every route the app serves there.


def _ocpi_routes() -> list[tuple[str, str]]:
    app = create_app(_settings("sqlite+aiosqlite://", "http://127.0.0.1"))
    routes = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/ocpi")
        for method in route.methods
        if method not in ("HEAD", "OPTIONS")
    }
    return sorted(routes)


OCPI_ROUTES = _ocpi_routes()

_offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
datetimes = st.one_of(
    st.sampled_from(EDGES),
    st.datetimes(timezones=st.one_of(st.none(), _offsets)).map(lambda d: d.isoformat()),
    st.datetimes(timezones=_offsets).map(lambda d: d.isoformat()),
)
numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**62, max_value=2**70).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
)
words = st.one_of(st.text(max_size=40), st.sampled_from(["DE", "EMP", "NL", "OHB", RFID["uid"], "RFID", "LOC1"]))
scalars = st.one_of(words, numbers, datetimes, st.booleans(), st.none(), st.floats(), st.integers())
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
urls = st.one_of(
    st.sampled_from(BAD_URLS),
    st.builds(lambda port, path: f"http://127.0.0.1:{port}/{path}", numbers, st.text(max_size=10)),
    st.text(max_size=40),
)


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any]) -> dict[str, Any]:
    """A valid body with some fields dropped or replaced by anything."""
    body: dict[str, Any] = {}
    for key, value in template.items():
        match draw(st.integers(0, 9)):
            case 0:
                continue
            case 1:
                body[key] = draw(json_values)
            case 2:
                body[key] = draw(datetimes)
            case 3:
                body[key] = draw(urls)
            case _:
                body[key] = value
    return body


CREDENTIALS = {"token": "fuzz-token-b", "url": "http://127.0.0.1:9/versions", "roles": [ROLE]}
TEMPLATES = [RFID, {"valid": False, "last_updated": "2019-06-19T02:11:11Z"}, CREDENTIALS]
bodies = st.one_of(
    st.none(),
    st.sampled_from(TEMPLATES).flatmap(mutated).map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda b: json.dumps(b).encode()),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.binary(max_size=64),
)


def _header_value(value: bytes) -> bytes:
    """Any bytes HTTP lets a header carry: no control character but TAB, and no whitespace around them."""
    return value.translate(None, bytes([*range(9), *range(10, 32), 127])).strip(b" \t")


authorizations = st.one_of(
    st.sampled_from([TOKEN_C, TOKEN_A]).map(lambda t: b"Token " + base64.b64encode(t.encode())),
    st.just(f"Token {TOKEN_C}".encode()),
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda t: ("Token " + t).encode()),
).map(_header_value)
headers = st.fixed_dictionaries(
    {"Authorization": authorizations},
    optional={
        "OCPI-to-country-code": st.sampled_from(["NL", "DE", "\u00e9"]).map(str.encode),
        "OCPI-to-party-id": st.sampled_from(["OHB", "EMP", "X"]).map(str.encode),
        "X-Request-ID": st.binary(max_size=20).map(_header_value),
    },
)
queries = st.dictionaries(
    st.sampled_from(["offset", "limit", "date_from", "date_to", "type", "x"]),
    st.one_of(numbers, datetimes, words),
    max_size=4,
)
segments = st.one_of(words, numbers, st.text(min_size=1, max_size=40)).map(lambda s: quote(s, safe="") or "x")


@pytest.mark.parametrize(("method", "template"), OCPI_ROUTES, ids=lambda v: str(v))
def test_ocpi_route(fuzzed: FuzzedHub, method: str, template: str) -> None:
    names = [part.split(":")[0].strip("{") for part in template.split("/") if part.startswith("{")]

    @_settings_for_run(8)
    @given(
        values=st.fixed_dictionaries(dict.fromkeys(names, segments)),
        query=queries,
        sent=headers,
        body=bodies,
    )
    def run(values: dict[str, str], query: dict[str, str], sent: dict[str, bytes], body: bytes | None) -> None:
        path = "/".join(
            values[part.split(":")[0].strip("{")] if part.startswith("{") else part for part in template.split("/")
        )
        _ocpi_request(fuzzed, method, path, token=None, headers=sent, params=query, content=body)

    run()
