"""Our Tariffs (OCPI 2.2.1 §11, docs/cpo-modules.md §3), as the operator's systems manage them: `PUT`, `GET` and
`DELETE /tariffs/{tariffId}` and the list `GET /tariffs`. What is stored is served to the eMSPs by the Tariffs
Sender and pushed to their Tariffs Receivers (PUT on create and change, DELETE on delete)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import Body, PathParameter, QueryParameter

from ocpi_hub import errors
from ocpi_hub.api import deps
from ocpi_hub.db import tariffs as tariffs_db
from ocpi_hub.db.sender import PageQuery
from ocpi_hub.db.tariffs import Origin
from ocpi_hub.errors import seed_errors
from ocpi_hub.ocpi import tariffs as ocpi
from ocpi_hub.push import outbox
from ocpi_hub.stores import tariffs as store

# The path parameter is named like the seed's others (noqa: N803 below), because Litestar names it in its 400s.
TariffId = Annotated[str, PathParameter(min_length=1, max_length=36)]
Offset = Annotated[int, QueryParameter(ge=0)]
Limit = Annotated[int, QueryParameter(ge=1, le=1000)]

_AT = re.compile(r"(?P<rule>.*?) - at `\$\.?(?P<path>[^`]*)`", re.DOTALL)


def _tariff(body: dict[str, Any], tariff_id: str, now: datetime) -> ocpi.Tariff:
    """The body as a Tariff of the path's id; last_updated may be left out (we set it). Errors name the field."""
    body.setdefault("last_updated", now.isoformat())
    try:
        tariff = msgspec.convert(body, ocpi.Tariff)
    except msgspec.ValidationError as exc:
        found = _AT.fullmatch(str(exc))
        raise errors.Invalid(f"{found['path']}: {found['rule']}" if found else str(exc)) from None
    if tariff.id.upper() != tariff_id.upper():
        raise errors.Invalid(f"id: {tariff.id!r} must be the path's tariffId {tariff_id!r}")
    return tariff


class TariffController(Controller):
    path = "/tariffs"

    @put(
        "/{tariffId:str}",
        operation_id="putTariff",
        summary="Create or replace a tariff",
        responses=seed_errors(400, 409),
    )
    async def put_tariff(
        self,
        tariffId: TariffId,  # noqa: N803
        data: Annotated[dict[str, Any], Body(description="an OCPI 2.2.1 Tariff; last_updated optional")],
        db: deps.Db,
        config: deps.Config,
        now: deps.Clock,
    ) -> Response[bytes]:
        """201 with the Tariff as stored when new, 200 when replaced or unchanged (nothing written then). Its
        country_code and party_id must be one of our parties; its id must be the path's."""
        moment = now()
        tariff = _tariff(data, tariffId, moment)
        if config.party(tariff.country_code, tariff.party_id) is None:
            raise errors.Invalid(f"country_code/party_id: {tariff.country_code}/{tariff.party_id} is not our party")
        saved = await outbox.committed(
            db, lambda: store.put_tariff(db, tariff, now=moment, origin=Origin.API), now=moment
        )
        return Response(
            ocpi.render(saved.tariff), status_code=201 if saved.created else 200, media_type="application/json"
        )

    @get("/", operation_id="listTariffs", summary="List tariffs", responses=seed_errors(400))
    async def list_tariffs(self, db: deps.Db, offset: Offset = 0, limit: Limit = 100) -> Response[bytes]:
        """Our Tariffs in the order they were created."""
        _, bodies = await tariffs_db.page(db, PageQuery(offset, limit), version="2.2.1")
        return Response(b"[" + b",".join(bodies) + b"]", media_type="application/json")

    @get("/{tariffId:str}", operation_id="getTariff", summary="Get a tariff", responses=seed_errors(404))
    async def get_tariff(self, tariffId: TariffId, db: deps.Db) -> Response[bytes]:  # noqa: N803
        return Response(ocpi.render(await store.get(db, tariffId)), media_type="application/json")

    @delete("/{tariffId:str}", operation_id="deleteTariff", summary="Delete a tariff", responses=seed_errors(404, 409))
    async def delete_tariff(self, tariffId: TariffId, db: deps.Db, now: deps.Clock) -> None:  # noqa: N803
        """204; 409 naming the Connectors that still name the Tariff (remove it from their tariff_ids first)."""
        moment = now()
        await outbox.committed(db, lambda: store.delete_tariff(db, tariffId), now=moment)
