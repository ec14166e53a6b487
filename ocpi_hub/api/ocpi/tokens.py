"""Tokens module, Receiver interface (OCPI 2.2.1 §12.2.2 and 2.2; docs/ocpi.md §6.3): the eMSPs' GET, PUT and PATCH of
`/tokens/{country_code}/{party_id}/{token_uid}[?type=]`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, patch, put
from litestar.params import FromPath, QueryParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.api.ocpi.authentication import caller
from ocpi_hub.api.ocpi.transport import AnyRequest, decode_body, envelope, routing_headers
from ocpi_hub.db import tokens
from ocpi_hub.ocpi import tokens as ocpi
from ocpi_hub.ocpi.common import StatusCode, to_utc
from ocpi_hub.settings import Settings

# `?type=` is optional, RFID when absent (docs/ocpi.md §6.3). Parsed by us, so that a bad value is status 2001.
TypeParam = Annotated[str | None, QueryParameter(name="type")]


def _owned(request: AnyRequest, settings: Settings, country_code: str, party_id: str) -> dict[str, str]:
    """The routing headers of the answer, if the caller owns the URL's party: another party's tokens are a 404
    (docs/ocpi.md §1.8)."""
    who = caller(request)
    if not who.partner.has_party(country_code, party_id):
        raise errors.NotFound(f"{country_code}/{party_id} is not one of your credentials roles")
    return routing_headers(request, settings, who.party)


def _key(country_code: str, party_id: str, token_uid: str, token_type: str | None) -> ocpi.TokenKey:
    try:
        type_ = msgspec.convert(token_type or ocpi.TokenType.RFID, ocpi.TokenType)
    except msgspec.ValidationError:
        raise errors.Invalid(f"type: {token_type!r} is not a TokenType") from None
    return ocpi.TokenKey(country_code, party_id, token_uid, type_)


def _unknown(key: ocpi.TokenKey) -> errors.NotFound:
    return errors.NotFound(
        f"no {key.type} token {key.uid} of {key.country_code}/{key.party_id}", ocpi_status=StatusCode.UNKNOWN_TOKEN
    )


def _conflict(key: ocpi.TokenKey, body: ocpi.Token | ocpi.TokenPatch) -> None:
    if problem := ocpi.key_conflict(key, body):
        raise errors.Invalid(problem)


class TokensController(Controller):
    path = "/tokens"

    @get("/{country_code:str}/{party_id:str}/{token_uid:str}")
    async def get_token(
        self,
        request: AnyRequest,
        country_code: FromPath[str],
        party_id: FromPath[str],
        token_uid: FromPath[str],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
        token_type: TypeParam = None,
    ) -> object:
        routing = _owned(request, config, country_code, party_id)
        key = _key(country_code, party_id, token_uid, token_type)
        token = await tokens.get(db, key)
        if token is None:
            raise _unknown(key)
        return envelope(token, now=now, headers=routing)

    @put("/{country_code:str}/{party_id:str}/{token_uid:str}")
    async def put_token(
        self,
        request: AnyRequest,
        country_code: FromPath[str],
        party_id: FromPath[str],
        token_uid: FromPath[str],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
        token_type: TypeParam = None,
    ) -> object:
        """Create or replace: 201 for a new token, 200 for a replaced one; no data (docs/ocpi.md §1.4, §1.3 d2 note)."""
        routing = _owned(request, config, country_code, party_id)
        key = _key(country_code, party_id, token_uid, token_type)
        token = await decode_body(request, ocpi.Token)
        _conflict(key, token)
        created = await tokens.put(db, msgspec.structs.replace(token, last_updated=to_utc(token.last_updated)))
        return envelope(None, now=now, http_status=201 if created else 200, headers=routing)

    @patch("/{country_code:str}/{party_id:str}/{token_uid:str}")
    async def patch_token(
        self,
        request: AnyRequest,
        country_code: FromPath[str],
        party_id: FromPath[str],
        token_uid: FromPath[str],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
        token_type: TypeParam = None,
    ) -> object:
        """Change the fields sent (last_updated required); the identity fields may be sent but not changed."""
        routing = _owned(request, config, country_code, party_id)
        key = _key(country_code, party_id, token_uid, token_type)
        changes = await decode_body(request, ocpi.TokenPatch)
        _conflict(key, changes)
        if not await tokens.patch(db, key, ocpi.patched_fields(changes)):
            raise _unknown(key)
        return envelope(None, now=now, headers=routing)
