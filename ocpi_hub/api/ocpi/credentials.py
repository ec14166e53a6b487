"""Credentials module, our side (OCPI 2.2.1 §7.2): GET, POST (register), PUT (update), DELETE (unregister).

Authentication has already found the caller (token A, or the token of a registered partner). No database
transaction is open while registration.accept calls the partner back (docs/ocpi.md §7)."""

from __future__ import annotations

import logging

from litestar import Controller, delete, get, post, put

from ocpi_hub import errors, registration
from ocpi_hub.api import deps
from ocpi_hub.api.ocpi.authentication import Access, Caller, caller
from ocpi_hub.api.ocpi.transport import AnyRequest, decode_body, envelope
from ocpi_hub.ocpi.credentials import Credentials

_OPT = {"access": Access.CREDENTIALS}
log = logging.getLogger(__name__)


def _registered(request: AnyRequest) -> Caller:
    # The spec demands HTTP 405 for these (not 401): the caller is known, the method does not apply.
    who = caller(request)
    if not who.registered:
        raise errors.NotAllowed("not registered yet: POST your credentials first")
    return who


class CredentialsController(Controller):
    path = "/credentials"

    @get("/", opt=_OPT)
    async def get_credentials(self, request: AnyRequest, config: deps.Config, now: deps.Clock) -> object:
        return envelope(registration.our_credentials(config, _registered(request).token), now=now)

    @post("/", opt=_OPT)
    async def register(
        self,
        request: AnyRequest,
        sessions: deps.Sessions,
        config: deps.Config,
        client: deps.Client,
        now: deps.Clock,
        version: deps.Version,
    ) -> object:
        who = caller(request)
        if who.registered:
            raise errors.NotAllowed("already registered: use PUT to update or DELETE to unregister")
        return await _accept(request, who, sessions, config, client, now, version)

    @put("/", opt=_OPT)
    async def update(
        self,
        request: AnyRequest,
        sessions: deps.Sessions,
        config: deps.Config,
        client: deps.Client,
        now: deps.Clock,
        version: deps.Version,
    ) -> object:
        who = _registered(request)
        return await _accept(request, who, sessions, config, client, now, version)

    @delete("/", status_code=200, opt=_OPT)
    async def unregister(self, request: AnyRequest, sessions: deps.Sessions, now: deps.Clock) -> object:
        who = caller(request)
        if not who.registered:
            raise errors.NotAllowed("not registered: nothing to delete")
        await registration.unregister(sessions, who.partner.id, now=now())
        log.info("partner %s unregistered itself (credentials DELETE)", who.partner.id)
        return envelope(None, now=now)


async def _accept(
    request: AnyRequest,
    who: Caller,
    sessions: deps.Sessions,
    config: deps.Config,
    client: deps.Client,
    now: deps.Clock,
    version: deps.Version,
) -> object:
    """POST and PUT alike: their credentials read, their endpoints fetched, a new token for them."""
    what = f"credentials {request.method} of partner {who.partner.id} on {version}"
    try:
        credentials = await decode_body(request, Credentials)
        ours = await registration.accept(
            sessions,
            client,
            config,
            who.partner.id,
            credentials,
            presented_token=who.token,
            version=version,
            now=now(),
        )
    except errors.HubError as exc:
        log.info("%s refused: %s", what, exc.message)  # docs/operations.md §1.3
        raise
    parties = ", ".join(f"{r.role} {r.country_code}/{r.party_id}" for r in credentials.roles)
    log.info("%s accepted: %s", what, parties)
    return envelope(ours, now=now)
