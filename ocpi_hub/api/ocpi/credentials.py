"""Credentials module, our side (OCPI 2.2.1 §7.2): GET, POST (register), PUT (update), DELETE (unregister)."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put

from ocpi_hub import registration
from ocpi_hub.api import deps
from ocpi_hub.api.ocpi.transport import Access, AnyRequest, Caller, authenticate, decode_body, envelope
from ocpi_hub.errors import OcpiError
from ocpi_hub.ocpi.common import StatusCode
from ocpi_hub.ocpi.credentials import Credentials


def _not_allowed(message: str) -> OcpiError:
    # The spec demands HTTP 405 for these (not 401): the caller is known, the method does not apply.
    return OcpiError(StatusCode.CLIENT_ERROR, message, http_status=405)


class CredentialsController(Controller):
    path = "/credentials"

    @get("/")
    async def get_credentials(self, request: AnyRequest, db: deps.Db, settings: deps.Config, now: deps.Clock) -> object:
        caller = await authenticate(request, db, Access.credentials)
        if not caller.registered:
            raise _not_allowed("not registered yet: POST your credentials first")
        return envelope(registration.our_credentials(settings, caller.token), now=now)

    @post("/")
    async def register(
        self,
        request: AnyRequest,
        db: deps.Db,
        settings: deps.Config,
        client: deps.Client,
        now: deps.Clock,
        version: deps.Version,
    ) -> object:
        caller = await authenticate(request, db, Access.credentials)
        if caller.registered:
            raise _not_allowed("already registered: use PUT to update or DELETE to unregister")
        return await _accept(request, db, settings, client, now, version, caller)

    @put("/")
    async def update(
        self,
        request: AnyRequest,
        db: deps.Db,
        settings: deps.Config,
        client: deps.Client,
        now: deps.Clock,
        version: deps.Version,
    ) -> object:
        caller = await authenticate(request, db, Access.credentials)
        if not caller.registered:
            raise _not_allowed("not registered yet: POST your credentials first")
        return await _accept(request, db, settings, client, now, version, caller)

    @delete("/", status_code=200)
    async def unregister(self, request: AnyRequest, db: deps.Db, now: deps.Clock) -> object:
        caller = await authenticate(request, db, Access.credentials)
        if not caller.registered:
            raise _not_allowed("not registered: nothing to delete")
        await registration.unregister(db, caller.partner, now=now())
        return envelope(None, now=now)


async def _accept(
    request: AnyRequest,
    db: deps.Db,
    settings: deps.Config,
    client: deps.Client,
    now: deps.Clock,
    version: deps.Version,
    caller: Caller,
) -> object:
    credentials = await decode_body(request, Credentials)
    try:
        ours = await registration.accept(db, client, settings, caller.partner, credentials, version=version, now=now())
    except registration.RegistrationError as exc:
        raise OcpiError(StatusCode(exc.status_code), str(exc)) from None
    return envelope(ours, now=now)
