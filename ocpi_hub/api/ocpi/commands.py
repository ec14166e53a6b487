"""Commands module, Receiver interface (OCPI 2.2.1 §13.2.1 and 2.2; docs/cpo-modules.md §6.5): the eMSP's
`POST {commands}/{command}`, answered at once with a CommandResponse; the CommandResult follows through the outbox.
"""

from __future__ import annotations

from litestar import post
from litestar.params import FromPath

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.api.ocpi.authentication import caller
from ocpi_hub.api.ocpi.transport import AnyRequest, decode_body, envelope, routing_headers
from ocpi_hub.ocpi import commands as ocpi
from ocpi_hub.ocpi.common import DisplayText, StatusCode
from ocpi_hub.push import outbox
from ocpi_hub.stores import commands as store
from ocpi_hub.urlcheck import UnsafeUrlError, check_partner_url


@post("/{command:str}", status_code=200)
async def receive_command(
    request: AnyRequest,
    command: FromPath[str],
    db: deps.Db,
    config: deps.Config,
    now: deps.Clock,
    bell: deps.Bell,
) -> object:
    """Mounted at /ocpi/{version}/commands."""
    who = caller(request)
    headers = routing_headers(request, config, who.party)
    try:
        kind = ocpi.CommandType(command)
    except ValueError:
        unknown = ocpi.CommandResponse(
            result=ocpi.CommandResponseType.NOT_SUPPORTED,
            timeout=0,
            message=[DisplayText(language="en", text=f"{command!r} is not a command we know")],
        )
        return envelope(unknown, now=now, headers=headers)
    body = await decode_body(request, ocpi.BODY[kind])
    try:
        await check_partner_url(body.response_url, allow_private=config.allow_private_partner_urls)
    except UnsafeUrlError as exc:
        raise errors.Invalid(f"response_url: {exc}") from None
    moment = now()
    answered = await outbox.committed(
        db, lambda: store.receive(db, who.partner, kind, body, settings=config, now=moment), now=moment
    )
    if answered.command_id is not None:
        bell.ring()  # after the commit: a gateway's long poll finds it
    if answered.status_code == StatusCode.SUCCESS:
        return envelope(answered.response, now=now, headers=headers)
    # An unknown Location, EVSE or Connector: HTTP 404 with 2003, and the CommandResponse REJECTED saying which.
    said = answered.response.message[0].text if answered.response.message else "unknown location"
    return envelope(
        answered.response,
        now=now,
        headers=headers,
        http_status=404,
        status_code=answered.status_code,
        status_message=said,
    )
