"""Charging sessions and their CDRs as the station gateway reports them and the operator reads them
(docs/cpo-modules.md §4.7): start, meter readings and stop of a session; the sessions and CDRs as stored; credit
CDRs. What is written here reaches the eMSP that owns the session's token through the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ocpi_hub.api import deps
from ocpi_hub.csms.session import MeterRequest, StartRequest, StopRequest
from ocpi_hub.db import sessions as sessions_db
from ocpi_hub.db import sqlite_driver
from ocpi_hub.db.sender import PageQuery
from ocpi_hub.errors import seed_errors
from ocpi_hub.ocpi.common import json_encoder
from ocpi_hub.ocpi.sessions import CDR, Session
from ocpi_hub.push import outbox
from ocpi_hub.stores import sessions as store

# Path parameters are named like the seed's (noqa: N803 below): Litestar names them in its 400s.
SessionId = Annotated[str, PathParameter(min_length=1, max_length=36, pattern=r"^[\x20-\x7e]*$")]
CdrId = Annotated[str, PathParameter(min_length=1, max_length=39, pattern=r"^[\x20-\x7e]*$")]
Offset = Annotated[int, QueryParameter(ge=0)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]


class CdrView(msgspec.Struct, kw_only=True):
    """A CDR with what became of it at the eMSP that owns it."""

    cdr: msgspec.Raw
    sent: bool  # the eMSP accepted our POST
    sent_at: datetime | None
    location: str | None  # the URL its answer named in its Location header


class Stopped(msgspec.Struct, kw_only=True):
    session: Session
    cdr: CDR | None


def _json(value: object, status_code: int = 200) -> Response[bytes]:
    return Response(json_encoder.encode(value), status_code=status_code, media_type="application/json")


def _view(stored: sessions_db.StoredCdr) -> CdrView:
    return CdrView(
        cdr=msgspec.Raw(stored.body),
        sent=stored.sent_at is not None,
        sent_at=stored.sent_at,
        location=stored.location_url,
    )


class SessionController(Controller):
    path = "/sessions"

    @post(
        "/{sessionId:str}/start",
        operation_id="startSession",
        summary="A charging session started",
        responses=seed_errors(400, 409),
    )
    async def start(
        self,
        sessionId: SessionId,  # noqa: N803
        data: JSONBody[StartRequest],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
    ) -> Response[bytes]:
        """201 with the OCPI Session; 200 when this very start was reported before (nothing written then)."""
        moment = now()
        with sqlite_driver.on_the_loop():  # a Session, its readings and one delivery: short statements
            saved = await outbox.committed(
                db, lambda: store.start(db, sessionId, data, now=moment, currency=config.currency), now=moment
            )
        return _json(saved.session, 201 if saved.created else 200)

    @post(
        "/{sessionId:str}/meter",
        status_code=200,
        operation_id="meterSession",
        summary="A meter reading of a charging session",
        responses=seed_errors(400, 404, 409),
    )
    async def meter(
        self,
        sessionId: SessionId,  # noqa: N803
        data: JSONBody[MeterRequest],
        db: deps.Db,
        now: deps.Clock,
    ) -> Response[bytes]:
        """The Session, re-priced; energy_wh is the meter register (cumulative)."""
        moment = now()
        with sqlite_driver.on_the_loop():
            saved = await outbox.committed(db, lambda: store.meter(db, sessionId, data, now=moment), now=moment)
        return _json(saved.session)

    @post(
        "/{sessionId:str}/stop",
        status_code=200,
        operation_id="stopSession",
        summary="A charging session ended",
        responses=seed_errors(400, 404, 409),
    )
    async def stop(
        self,
        sessionId: SessionId,  # noqa: N803
        data: JSONBody[StopRequest],
        db: deps.Db,
        now: deps.Clock,
    ) -> Response[bytes]:
        """The Session COMPLETED and its CDR; stopping again answers the same."""
        moment = now()
        with sqlite_driver.on_the_loop():  # and its CDR
            saved = await outbox.committed(db, lambda: store.stop(db, sessionId, data, now=moment), now=moment)
        return _json(Stopped(session=saved.session, cdr=saved.cdr))

    @get("/{sessionId:str}", operation_id="getSession", summary="Get a charging session", responses=seed_errors(404))
    async def get_session(self, sessionId: SessionId, db: deps.Db) -> Response[bytes]:  # noqa: N803
        return _json(await store.get(db, sessionId))

    @get("/", operation_id="listSessions", summary="List charging sessions", responses=seed_errors(400))
    async def list_sessions(self, db: deps.Db, offset: Offset = 0, limit: Limit = 100) -> Response[bytes]:
        """Every session, in the order they started."""
        _, bodies = await sessions_db.session_page(db, PageQuery(offset, limit), version="2.2.1")
        return Response(b"[" + b",".join(bodies) + b"]", media_type="application/json")


class CdrController(Controller):
    path = "/cdrs"

    @get("/{cdrId:str}", operation_id="getCdr", summary="Get a CDR", responses=seed_errors(404))
    async def get_cdr(self, cdrId: CdrId, db: deps.Db) -> Response[bytes]:  # noqa: N803
        return _json(_view(await store.get_cdr(db, cdrId)))

    @get("/", operation_id="listCdrs", summary="List CDRs", responses=seed_errors(400))
    async def list_cdrs(self, db: deps.Db, offset: Offset = 0, limit: Limit = 100) -> Response[bytes]:
        """Every CDR in the order they were made, each with whether the eMSP has it."""
        _, stored = await sessions_db.cdr_pages(db, offset=offset, limit=limit)
        return _json([_view(s) for s in stored])

    @post(
        "/{cdrId:str}/credit",
        operation_id="creditCdr",
        summary="Credit a CDR",
        responses=seed_errors(404, 409),
    )
    async def credit(self, cdrId: CdrId, db: deps.Db, now: deps.Clock) -> Response[bytes]:  # noqa: N803
        """201 with the credit CDR, sent to the eMSP like any CDR; 200 with the same one when asked again."""
        moment = now()
        saved = await outbox.committed(db, lambda: store.credit(db, cdrId, now=moment), now=moment)
        return _json(saved.cdr, 201 if saved.created else 200)
