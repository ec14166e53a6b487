"""The station gateway's side of Commands (docs/cpo-modules.md §6.5): the open commands to carry out, waiting
for new ones without a tight loop, and the result of each, which the hub POSTs to the eMSP."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.changes import Written
from ocpi_hub.db import commands as commands_db
from ocpi_hub.db import sqlite_driver
from ocpi_hub.errors import seed_errors
from ocpi_hub.ocpi.commands import CommandResultType
from ocpi_hub.ocpi.common import json_encoder
from ocpi_hub.push import outbox
from ocpi_hub.stores import commands as store

CommandId = Annotated[int, PathParameter(ge=1, le=2**31 - 1)]
Wait = Annotated[float, QueryParameter(ge=0, le=30, description="seconds to wait for an open command, at most 30")]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]
# How often a long poll looks again (for commands received by another process of the hub).
_LOOK_EVERY = 0.5


class ResultReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    result: CommandResultType
    message: Annotated[str, msgspec.Meta(max_length=512)] | None = None


class CommandView(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    command: str
    state: str
    location_id: str | None = None
    evse_uid: str | None = None
    connector_id: str | None = None
    session_id: str | None = None
    reservation_id: str | None = None  # the eMSP's
    charger_reservation_id: int | None = None  # give the charger this one: unique across eMSPs
    expiry_date: datetime | None = None
    token: msgspec.Raw | None = None  # the OCPI Token the eMSP sent
    authorization_reference: str | None = None
    received_at: datetime
    expires_at: datetime
    result: str | None = None
    message: str | None = None
    result_sent: bool = False  # the eMSP accepted the CommandResult
    result_sent_at: datetime | None = None


def _view(c: commands_db.Stored) -> CommandView:
    return CommandView(
        id=c.id,
        command=c.command,
        state=c.state,
        location_id=c.location_id,
        evse_uid=c.evse_uid,
        connector_id=c.connector_id,
        session_id=c.session_id,
        reservation_id=c.reservation_id,
        charger_reservation_id=c.charger_reservation_id,
        expiry_date=c.expiry_date,
        token=msgspec.Raw(c.token) if c.token else None,
        authorization_reference=c.authorization_reference,
        received_at=c.received_at,
        expires_at=c.expires_at,
        result=c.result,
        message=c.message,
        result_sent=c.result_sent_at is not None,
        result_sent_at=c.result_sent_at,
    )


def _json(value: object) -> Response[bytes]:
    return Response(json_encoder.encode(value), media_type="application/json")


class CommandController(Controller):
    path = "/commands"

    @get("/", operation_id="listCommands", summary="Open commands, oldest first", responses=seed_errors(400))
    async def list_commands(
        self,
        sessions: deps.Sessions,
        bell: deps.Bell,
        which: Annotated[Literal["pending"], QueryParameter(name="state")] = "pending",
        wait: Wait = 0,
        limit: Limit = 100,
    ) -> Response[bytes]:
        """With `wait`, a long poll: answers as soon as a command is open, or after `wait` seconds with none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            async with sessions() as session:
                found = await commands_db.pending(session, limit=limit)
            left = deadline - loop.time()
            if found or left <= 0:
                return _json([_view(c) for c in found])
            await bell.wait(min(left, _LOOK_EVERY))

    @get("/{commandId:int}", operation_id="getCommand", summary="Get a command", responses=seed_errors(400, 404))
    async def get_command(self, commandId: CommandId, db: deps.Db) -> Response[bytes]:  # noqa: N803
        """The command, its state, its result and whether the eMSP has it."""
        found = await commands_db.load(db, commandId)
        if found is None:
            raise errors.NotFound(f"unknown command {commandId}")
        return _json(_view(found))

    @post(
        "/{commandId:int}/result",
        status_code=200,
        operation_id="reportCommandResult",
        summary="The charger's answer to a command",
        responses=seed_errors(400, 404, 409),
    )
    async def report(
        self,
        commandId: CommandId,  # noqa: N803
        data: JSONBody[ResultReport],
        db: deps.Db,
        now: deps.Clock,
    ) -> Response[bytes]:
        """200 with the command; the CommandResult is on its way to the eMSP."""
        moment = now()

        async def write() -> Written:
            return Written(await store.report(db, commandId, data.result, data.message, now=moment))

        with sqlite_driver.on_the_loop():  # one command and its result's delivery: short statements
            await outbox.committed(db, write, now=moment)
        found = await commands_db.load(db, commandId)
        assert found is not None
        return _json(_view(found))
