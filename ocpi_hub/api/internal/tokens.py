"""setToken, listTokens and lookupToken (seed 002, `/token`): the same tokens the eMSPs push through the OCPI
Tokens Receiver, shown in the seed's camelCase form (README: "Tokens")."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, MediaType, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.csms import token as csms
from ocpi_hub.db import tokens
from ocpi_hub.errors import seed_errors

# The bounds of the seed's own API description (offset >= 0, 1 <= limit <= 100); 20 is its default page.
Offset = Annotated[int, QueryParameter(ge=0)]
Limit = Annotated[int, QueryParameter(ge=1, le=100)]
# The seed's parameter name is kept (noqa: N803 below) because Litestar names it in its 400 messages.
TokenUid = Annotated[str, PathParameter(min_length=1, max_length=36)]


class TokenController(Controller):
    path = "/token"

    @post(
        "/",
        status_code=201,
        media_type=MediaType.TEXT,
        operation_id="setToken",
        summary="Create/update an authorization token",
        responses=seed_errors(400),
    )
    async def set_token(self, data: JSONBody[csms.Token], db: deps.Db, now: deps.Clock) -> None:
        """Creates or replaces the token with this country code, party id, uid and type; lastUpdated is ours."""
        await tokens.put(db, csms.token_to_ocpi(data, last_updated=now()), keep=csms.NOT_IN_THE_SEED)

    @get("/", operation_id="listTokens", summary="List authorization tokens", responses=seed_errors(400))
    async def list_tokens(self, db: deps.Db, offset: Offset = 0, limit: Limit = 20) -> list[csms.Token]:
        """Every token, in the order they were first stored (an update keeps a token's place)."""
        return [csms.ocpi_to_token(t) for t in await tokens.page(db, offset=offset, limit=limit)]

    @get(
        "/{tokenUid:str}",
        operation_id="lookupToken",
        summary="Lookup an authorization token",
        responses=seed_errors(400, 404),
    )
    async def lookup_token(self, tokenUid: TokenUid, db: deps.Db) -> csms.Token:  # noqa: N803
        """The token with this uid; when several eMSPs or token types share it, the most recently updated."""
        token = await tokens.latest_by_uid(db, tokenUid)
        if token is None:
            raise errors.NotFound(f"no token with uid {tokenUid}")
        return csms.ocpi_to_token(token)
