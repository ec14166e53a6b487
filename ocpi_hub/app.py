"""create_app(settings): routers, dependencies, error handlers and the lifespan of the hub."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.api.deps import ModuleList
from ocpi_hub.api.internal.certificates import CertificateController
from ocpi_hub.api.internal.chargestations import ChargeStationController
from ocpi_hub.api.internal.deliveries import DeliveriesController
from ocpi_hub.api.internal.evsevo import EvseVoController
from ocpi_hub.api.internal.guard import internal_api_guard
from ocpi_hub.api.internal.locations import LocationController
from ocpi_hub.api.internal.partners import PartnersController
from ocpi_hub.api.internal.tokens import TokenController
from ocpi_hub.api.ocpi.credentials import CredentialsController
from ocpi_hub.api.ocpi.locations import LocationsController
from ocpi_hub.api.ocpi.tokens import TokensController
from ocpi_hub.api.ocpi.transport import ReadPath, echo_request_ids
from ocpi_hub.api.ocpi.versions import version_details, versions
from ocpi_hub.client import OcpiClient
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.freshness import Freshness, ReadCache
from ocpi_hub.errors import handle_exception
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.ocpi.versions import SUPPORTED, InterfaceRole, ModuleID
from ocpi_hub.push import worker as push
from ocpi_hub.settings import Settings
from ocpi_hub.sync.schedule import scheduled_sync

# Every OCPI module the hub serves, with its interface role and controller: version details list exactly these.
OCPI_MODULES: list[tuple[ModuleID, InterfaceRole, type[Any]]] = [
    (ModuleID.CREDENTIALS, InterfaceRole.SENDER, CredentialsController),
    (ModuleID.TOKENS, InterfaceRole.RECEIVER, TokensController),
    (ModuleID.LOCATIONS, InterfaceRole.SENDER, LocationsController),
]

INTERNAL_CONTROLLERS: list[type[Any]] = [
    PartnersController,
    ChargeStationController,
    TokenController,
    CertificateController,
    LocationController,
    EvseVoController,
    DeliveriesController,
]


# Loggers that would print SQL parameters, and so the partners' tokens we store, at DEBUG.
SECRET_BEARING_LOGGERS = ("aiosqlite", "sqlalchemy.engine")


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Litestar:
    """The hub as an ASGI app. `transport` replaces the network for calls to partners (tests)."""
    for name in SECRET_BEARING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        engine = create_engine(settings.database_url)
        http = httpx.AsyncClient(timeout=settings.http_timeout, transport=transport, follow_redirects=False)
        app.state.sessions = session_factory(engine)
        app.state.client = OcpiClient(http)
        freshness = Freshness(engine)
        app.state.read_path = ReadPath(
            settings=settings,
            now=clock,
            sessions=app.state.sessions,
            freshness=freshness,
            callers=ReadCache(max_entries=1024),
            pages=ReadCache(max_entries=64),  # a page of 50 Locations is about 160 kB
            answers=ReadCache(max_entries=64),  # an answer holds a page and its envelope: up to 2 x 160 kB
        )
        try:
            async with push.running(app.state.sessions, settings, transport=transport) as app.state.push:
                yield
        finally:
            await freshness.close()
            await http.aclose()
            await engine.dispose()

    async def db(state: State) -> AsyncGenerator[AsyncSession, None]:
        async with state.sessions() as session:
            yield session

    modules: ModuleList = [(m, r, c.path) for m, r, c in OCPI_MODULES]
    version_routers = [
        Router(
            path=f"/ocpi/{version}",
            route_handlers=[version_details, *(c for _, _, c in OCPI_MODULES)],
            dependencies={"version": _constant(version)},
            opt={"ocpi_version": version},  # for the ReadPath handlers, which take no dependencies
            include_in_schema=False,  # the OpenAPI document describes the internal API; OCPI has its own spec
        )
        for version in SUPPORTED
    ]
    internal = Router(path="/api/v0", route_handlers=INTERNAL_CONTROLLERS, guards=[internal_api_guard])

    return Litestar(
        route_handlers=[versions, *version_routers, internal],
        dependencies={
            "db": Provide(db),
            "sessions": Provide(_sessions, sync_to_thread=False),
            "client": Provide(_client, sync_to_thread=False),
            "settings": _constant(settings),
            "now": _constant(clock),
            "modules": _constant(modules),
        },
        exception_handlers={Exception: handle_exception},
        before_send=[echo_request_ids],
        # After `lifespan`, which opens the database the scheduled sync writes to; closed before it.
        lifespan=[lifespan, lambda app: scheduled_sync(app.state.sessions, settings, clock=clock)],
        state=State({"settings": settings}),
        openapi_config=OpenAPIConfig(title="ocpi-hub internal API", version="0.1.0", path="/api/v0/schema"),
    )


def _sessions(state: State) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = state.sessions
    return sessions


def _client(state: State) -> OcpiClient:
    client: OcpiClient = state.client
    return client


def _constant(value: Any) -> Provide:
    def provide() -> Any:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)
