"""`GET /health`, `GET /ready` and `GET /metrics` (docs/operations.md §2): whether the process answers, whether it
can serve (its database answers and has the newest schema), and the Prometheus metrics (behind the internal API's
guard)."""

from __future__ import annotations

from functools import cache

import msgspec
from alembic.script import ScriptDirectory
from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text

from ocpi_hub.api import deps
from ocpi_hub.api.internal.guard import internal_api_guard
from ocpi_hub.db import health
from ocpi_hub.db.migrate import alembic_config
from ocpi_hub.errors import SeedStatus, seed_errors
from ocpi_hub.metrics import CONTENT_TYPE, Metrics


class Health(msgspec.Struct):
    status: str


class Ready(msgspec.Struct):
    status: str
    schema: str  # the alembic revision the database is at


@cache
def _heads() -> frozenset[str]:
    """The newest revisions the installed migrations know (read from the files once)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


@get("/health", operation_id="health", include_in_schema=True, sync_to_thread=False)
def alive() -> Health:
    """The process answers. Asks nothing of the database."""
    return Health("ok")


@get("/ready", operation_id="ready", responses=seed_errors(503))
async def ready(sessions: deps.Sessions) -> Response[bytes]:
    """200 when the database answers and its schema is the newest the hub knows; 503 otherwise, saying which."""
    try:
        async with sessions() as session:
            revisions = set((await session.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    except Exception as exc:  # any failure to reach the database means "not ready", never a 500
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        return _unready(f"database: cannot be read ({type(exc).__name__}: {reason})")
    if revisions != _heads():
        found = ", ".join(sorted(revisions)) or "none"
        return _unready(f"database: schema at {found}, expected {', '.join(sorted(_heads()))}: run ocpi-hub migrate")
    return Response(msgspec.json.encode(Ready("ready", ", ".join(sorted(revisions)))), media_type="application/json")


def _unready(error: str) -> Response[bytes]:
    body = msgspec.json.encode(SeedStatus(status="Service Unavailable", error=error))
    return Response(body, status_code=503, media_type="application/json")


@get("/metrics", operation_id="metrics", guards=[internal_api_guard], responses=seed_errors(401, 403))
async def metrics(db: deps.Db, now: deps.Clock, state: State) -> Response[bytes]:
    """The Prometheus metrics: requests, deliveries per partner and module, sync runs (docs/operations.md §2)."""
    registry: Metrics = state.metrics
    queues = await health.queues(db)
    rows = await health.of_partners(db)
    return Response(registry.render(queues, rows, now()), media_type=CONTENT_TYPE)
