"""A partner's OCPI traffic log, newest first (docs/operations.md §7.2): what an operator reads when a partner says
"we never got it"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.db import partners, traffic
from ocpi_hub.errors import seed_errors
from ocpi_hub.traffic import Direction, TrafficLog

TrafficLogDep = NamedDependency[TrafficLog]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
Before = Annotated[int | None, QueryParameter(ge=1, description="only entries older than the entry with this id")]
DirectionParam = Annotated[str | None, QueryParameter(description="inbound (the partner called us) or outbound")]


class TrafficView(msgspec.Struct, omit_defaults=True):
    id: int  # the order entries were recorded in; `before` pages with it
    at: datetime  # when the request started (UTC)
    direction: str
    method: str
    path: str
    duration_ms: float
    http_status: int | None = None  # absent: no answer came
    ocpi_status: int | None = None  # absent: the body had no status_code
    request_id: str | None = None
    correlation_id: str | None = None
    error: str | None = None  # outbound: why no answer came
    request_body: str | None = None  # only with OCPI_HUB_TRAFFIC_BODIES
    response_body: str | None = None


class TrafficPage(msgspec.Struct):
    entries: list[TrafficView]
    next_before: int | None  # the `before` of the next page; null on the last one


class TrafficController(Controller):
    path = "/partners/{partner_id:int}"

    @get("/traffic", operation_id="listPartnerTraffic", responses=seed_errors(400, 404))
    async def list_traffic(
        self,
        partner_id: FromPath[int],
        db: deps.Db,
        traffic_log: TrafficLogDep,
        direction: DirectionParam = None,
        before: Before = None,
        limit: Limit = 100,
    ) -> TrafficPage:
        """The partner's OCPI requests to us and our calls to it, newest first: method, path, HTTP and OCPI status,
        duration, request and correlation ids; never the Authorization header."""
        if direction is not None and direction not in set(Direction):
            raise errors.Invalid(f"direction: {direction!r} is not one of {', '.join(Direction)}")
        # What this process still holds, so that a request just made is listed; before this session reads (a
        # SQLite read transaction would not see what is written after its first read).
        await traffic_log.flush()
        if await partners.by_id(db, partner_id) is None:
            raise errors.NotFound(f"no partner with id {partner_id}")
        found = await traffic.entries(db, partner_id, direction=direction, before=before, limit=limit)
        return TrafficPage(
            entries=[
                TrafficView(
                    id=e.id,
                    at=e.at,
                    direction=e.direction,
                    method=e.method,
                    path=e.path,
                    duration_ms=e.duration_ms,
                    http_status=e.http_status,
                    ocpi_status=e.ocpi_status,
                    request_id=e.request_id,
                    correlation_id=e.correlation_id,
                    error=e.error,
                    request_body=e.request_body,
                    response_body=e.response_body,
                )
                for e in found
            ],
            next_before=found[-1].id if len(found) == limit else None,
        )
