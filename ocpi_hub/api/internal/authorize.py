"""authorizeToken (`POST /token/{tokenUid}/authorize[?type=]`): may this token charge here? Answered from the stored
token or by its eMSP, as the token's whitelist says (ocpi_hub.authorization; docs/cpo-modules.md §7)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ocpi_hub import authorization, errors
from ocpi_hub.api import deps
from ocpi_hub.csms import token as csms
from ocpi_hub.errors import seed_errors
from ocpi_hub.ocpi.common import CiString36
from ocpi_hub.ocpi.tokens import TokenType

# Named like the seed's other token operations (noqa: N803 below), because Litestar names it in its 400 messages.
TokenUid = Annotated[str, PathParameter(min_length=1, max_length=36)]
TypeParam = Annotated[TokenType, QueryParameter(description="the token's type; RFID when absent")]


class AuthorizationRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the driver wants to charge; all optional. `connector_ids` is accepted but not sent: OCPI 2.2.1's
    LocationReferences has no connectors (the eMSP decides per location and EVSE)."""

    location_id: CiString36 | None = None
    evse_uids: list[CiString36] | None = None
    connector_ids: list[CiString36] | None = None


class TokenAuthorization(msgspec.Struct, kw_only=True, omit_defaults=True):
    allowed: authorization.AllowedType
    token: csms.Token
    authorization_reference: str | None = None
    source: authorization.Source


def _location(request: AuthorizationRequest | None) -> authorization.LocationReferences | None:
    """The LocationReferences to send the eMSP: none without a location_id."""
    if request is None:
        return None
    if request.connector_ids and not request.evse_uids:
        raise errors.Invalid("connector_ids: needs evse_uids (connector ids are per EVSE)")
    if request.location_id is None:
        if request.evse_uids:
            raise errors.Invalid("evse_uids: needs a location_id")
        return None
    return authorization.LocationReferences(location_id=request.location_id, evse_uids=request.evse_uids or None)


class AuthorizeController(Controller):
    path = "/token"

    @post(
        "/{tokenUid:str}/authorize",
        status_code=200,
        operation_id="authorizeToken",
        summary="Authorize a token, asking its eMSP when its whitelist says so",
        responses=seed_errors(400, 404),
    )
    async def authorize_token(
        self,
        tokenUid: TokenUid,  # noqa: N803
        sessions: deps.Sessions,
        client: deps.Client,
        config: deps.Config,
        data: JSONBody[AuthorizationRequest | None] = None,
        type: TypeParam = TokenType.RFID,
    ) -> TokenAuthorization:
        """404 when no token with this uid and type is stored (we know no eMSP to ask)."""
        location = _location(data)
        answer = await authorization.authorize(sessions, client, config, uid=tokenUid, type_=type, location=location)
        if answer is None:
            raise errors.NotFound(f"no {type} token with uid {tokenUid}")
        return TokenAuthorization(
            allowed=answer.allowed,
            token=csms.ocpi_to_token(answer.token),
            authorization_reference=answer.authorization_reference,
            source=answer.source,
        )
