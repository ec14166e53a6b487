"""create_app(settings): the database, the partners' HTTP client, the clock and the caches made once and handed to
the routes, the push worker and the scheduled sync; the routers; the one exception handler; the lifespan."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

import httpx
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import logs
from ocpi_hub.api import boundary, health, request_limits, schema, status
from ocpi_hub.api.deps import Clock, ModuleList
from ocpi_hub.api.internal.authorize import AuthorizeController
from ocpi_hub.api.internal.bulk import BulkController
from ocpi_hub.api.internal.certificates import CertificateController
from ocpi_hub.api.internal.chargestations import ChargeStationController
from ocpi_hub.api.internal.commands import CommandController
from ocpi_hub.api.internal.deliveries import DeliveriesController
from ocpi_hub.api.internal.evsevo import EvseVoController
from ocpi_hub.api.internal.guard import admitted
from ocpi_hub.api.internal.locations import LocationController, LocationsController
from ocpi_hub.api.internal.partners import PartnersController
from ocpi_hub.api.internal.sessions import CdrController, SessionController
from ocpi_hub.api.internal.sync import SyncController
from ocpi_hub.api.internal.tariffs import TariffController
from ocpi_hub.api.internal.tokens import TokenController
from ocpi_hub.api.internal.traffic import TrafficController
from ocpi_hub.api.observe import observed
from ocpi_hub.api.ocpi import authentication, kept, sender
from ocpi_hub.api.ocpi import commands as ocpi_commands
from ocpi_hub.api.ocpi import sessions as ocpi_sessions
from ocpi_hub.api.ocpi.answer_cache import AnswerCache
from ocpi_hub.api.ocpi.credentials import CredentialsController
from ocpi_hub.api.ocpi.tokens import TokensController
from ocpi_hub.api.ocpi.versions import version_details, versions
from ocpi_hub.bell import Bell
from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.db import locations, sessions, tariffs
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.freshness import Freshness
from ocpi_hub.db.outage import Outage
from ocpi_hub.db.sender import READ_NOW
from ocpi_hub.metrics import Metrics
from ocpi_hub.ocpi.common import StatusCode, utc_now
from ocpi_hub.ocpi.versions import SUPPORTED, InterfaceRole, ModuleID
from ocpi_hub.push import worker as push
from ocpi_hub.secret_key import keyring_of
from ocpi_hub.settings import Settings
from ocpi_hub.sync.manual import ManualSyncs
from ocpi_hub.sync.schedule import scheduled_sync
from ocpi_hub.traffic import TrafficLog

# The Sender interfaces: every module whose objects we own and partners crawl.
SENDERS = [
    sender.SenderModule(
        ModuleID.LOCATIONS,
        "location",
        locations.page,
        locations.document,
        unknown=StatusCode.UNKNOWN_LOCATION,
        nested=True,
        page_now=locations.page_now,
        document_now=locations.document_now,
        page_depends=locations.page_depends,
    ),
    sender.SenderModule(ModuleID.TARIFFS, "tariff", tariffs.page, tariffs.document),
    sender.SenderModule(ModuleID.SESSIONS, "session", sessions.session_page, sessions.session_document, private=True),
    sender.SenderModule(ModuleID.CDRS, "CDR", sessions.cdr_page, sessions.cdr_document, private=True),
]

# Every OCPI module the hub serves and our role in it: version details list exactly these.
OCPI_MODULES: ModuleList = [
    (ModuleID.CREDENTIALS, InterfaceRole.SENDER),
    (ModuleID.TOKENS, InterfaceRole.RECEIVER),
    (ModuleID.COMMANDS, InterfaceRole.RECEIVER),
    *((s.module, InterfaceRole.SENDER) for s in SENDERS),
]
# Routes of a Sender module besides its list and object GETs.
_EXTRA: dict[ModuleID, list[Any]] = {ModuleID.SESSIONS: [ocpi_sessions.charging_preferences]}
_CONTROLLERS: dict[ModuleID, type[Any]] = {
    ModuleID.CREDENTIALS: CredentialsController,
    ModuleID.TOKENS: TokensController,
}

INTERNAL_CONTROLLERS: list[type[Any]] = [
    PartnersController,
    ChargeStationController,
    TokenController,
    CertificateController,
    LocationController,
    LocationsController,
    BulkController,
    TariffController,
    SessionController,
    CdrController,
    CommandController,
    EvseVoController,
    DeliveriesController,
    TrafficController,
    AuthorizeController,
    SyncController,
]


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Litestar:
    """The hub as an ASGI app. `transport` replaces the network for calls to partners (tests); `clock` is the one
    clock of the hub: every timestamp it writes or sends, and every wait of the push worker, reads it."""
    logs.quiet_secret_loggers()  # they would print SQL parameters, and so the partners' tokens we store
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    freshness = Freshness(engine)
    cache = AnswerCache(freshness)
    calls = transport or PoolPerOrigin()  # the request path's calls to partners (a registration's, a command's)
    metrics = Metrics()  # the app's own registry (docs/operations.md §2)
    metrics.registry.register(cache)  # how answers were made (docs/operations.md §2.2)
    manual_syncs = ManualSyncs(sessions, settings, clock=clock, on_report=metrics.sync_done)
    context = sender.SenderContext(settings, clock, sessions, cache)
    authenticate = authentication.authenticator(sessions, cache, keyring_of(settings))
    outage = Outage(engine)  # one per process: the requests, the push worker and the sync tell it
    # Both directions of every partner's OCPI traffic (docs/operations.md §7.2), written off the request path.
    traffic_log = TrafficLog(
        sessions, bodies=settings.traffic_bodies, clock=clock, outage=outage, registry=metrics.registry
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        freshness.open()
        if freshness.read_now is not None:  # SQLite: writes read at once what they are about to change (db/sender.py)
            sessions.configure(info={**sessions.kw.get("info", {}), READ_NOW: freshness.read_now})
        traffic_log.start()
        try:
            async with push.running(
                sessions,
                settings,
                clock=clock,
                transport=transport,
                metrics=metrics,
                outage=outage,
                traffic_log=traffic_log,
            ) as app.state.push:
                yield
        finally:
            await traffic_log.stop()  # after the worker's last calls: what waits is written
            await freshness.close()
            await calls.aclose()
            await engine.dispose()

    async def db(now: Clock) -> AsyncGenerator[AsyncSession, None]:
        """A session per request; the request's writes are committed when its handler succeeds.

        It names the clock, unused, so that Litestar resolves the two, which most writes ask for, one after the
        other: dependencies of one level are resolved in an anyio task group, a task each, and a status change
        cost about 5% more CPU that way (bench/writes_bench.py --baseline: 0.91 to 1.00 of before)."""
        async with sessions() as session:
            try:
                yield session
            except Exception:
                await session.rollback()
                raise
            await session.commit()

    def module_routes(version: str) -> list[Any]:
        senders = [
            Router(
                path=f"/{s.module}", route_handlers=[*sender.handlers(s, version, context), *_EXTRA.get(s.module, [])]
            )
            for s in SENDERS
        ]
        commands = Router(path=f"/{ModuleID.COMMANDS}", route_handlers=[ocpi_commands.receive_command])
        return [*_CONTROLLERS.values(), commands, *senders]

    version_routers = [
        Router(
            path=f"/ocpi/{version}",
            route_handlers=[version_details, *module_routes(version)],
            dependencies={"version": _constant(version)},
            before_request=authenticate,
            include_in_schema=False,  # the OpenAPI document describes the internal API; OCPI has its own spec
        )
        for version in SUPPORTED
    ]
    versions_router = Router(path="/", route_handlers=[versions], before_request=authenticate, include_in_schema=False)
    internal = Router(path="/api/v0", route_handlers=INTERNAL_CONTROLLERS, before_request=admitted)

    app = Litestar(
        route_handlers=[
            versions_router,
            *version_routers,
            internal,
            health.alive,
            health.ready,
            health.metrics,
            status.status_page,
        ],
        dependencies={
            "db": Provide(db),
            "sessions": _constant(sessions),
            "client": _constant(OcpiClient(calls, timeout=settings.http_timeout, traffic=traffic_log)),
            "config": _constant(settings),
            "now": _constant(clock),
            "modules": _constant(OCPI_MODULES),
            "bell": _constant(Bell()),
            "traffic_log": _constant(traffic_log),
            "syncs": _constant(manual_syncs),
        },
        exception_handlers={Exception: boundary.handler(settings, clock, outage)},
        # After `lifespan`, which starts the database's users; the sync is stopped before it.
        lifespan=[
            lifespan,
            lambda app: scheduled_sync(sessions, settings, clock=clock, on_report=metrics.sync_done, outage=outage),
            lambda app: manual_syncs.running(),  # POST /api/v0/sync's runs, stopped with the app
        ],
        state=State({"settings": settings, "metrics": metrics}),
        logging_config=None,  # the command configures logging (ocpi_hub.logs); the app leaves it alone
        openapi_config=schema.openapi_config(),  # offline, behind the guard (docs/operations.md §6)
    )
    schema.document_guard(app)
    # Outside Litestar's routing, so that 404s and 405s are identified, logged and counted too.
    # Inside it, over-long request lines and headers are refused in our format (docs/ocpi.md §11), then the Sender
    # GETs of known callers are answered without routing (ocpi_hub.api.ocpi.kept).
    answered = kept.answering_kept(app.asgi_handler, cache, context.routes)
    app.asgi_handler = cast(Any, observed(request_limits.bounded(answered, clock), metrics, traffic_log))
    return app


def _constant(value: Any) -> Provide:
    def provide() -> Any:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)
