"""Locations module, Sender interface (OCPI 2.2.1 §8.2.1 and 2.2; digest §5.2): the paginated list and one
Location, EVSE or Connector, for registered partners only.

The list is the hot path (eMSPs crawl everything): a page is the envelope around the stored JSON of its
Locations, joined as bytes, without decoding or encoding an object (see ocpi_hub.db.locations), and a whole answer
is kept for the next request asking the same question until anything is committed (see answers).

Routing headers (§4.1.5): the request's OCPI-to narrows the answer to that one of our parties; OCPI-to naming a
party we do not run is HTTP 404 (the addressee is unknown here, like a URL's party in §4.1.9); only one of the two
OCPI-to headers is status 2001. Answers carry the headers from/to swapped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec
from litestar import Controller, Response, get
from litestar.params import FromPath
from litestar.types import ASGIApp

from ocpi_hub import locations as store
from ocpi_hub.api.ocpi import answers, paging
from ocpi_hub.api.ocpi.transport import Access, AnyRequest, Caller, ReadPath, routing_headers
from ocpi_hub.db import locations as stored
from ocpi_hub.errors import OcpiError
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import StatusCode, json_encoder
from ocpi_hub.settings import Settings

_decode_location = msgspec.json.Decoder(ocpi.Location).decode


def _enveloped(data: bytes, now: Callable[[], datetime], headers: dict[str, str]) -> Response[bytes]:
    return Response(answers.envelope(data, json_encoder.encode(now())), media_type="application/json", headers=headers)


def _addressed_party(request: AnyRequest, settings: Settings) -> tuple[str, str] | None:
    """The one of our parties the request's OCPI-to headers name, or None when they name none."""
    sent = request.headers
    country_code, party_id = sent.get("ocpi-to-country-code"), sent.get("ocpi-to-party-id")
    if country_code is None and party_id is None:
        return None
    if country_code is None or party_id is None:
        missing = "OCPI-to-country-code" if country_code is None else "OCPI-to-party-id"
        raise OcpiError(StatusCode.INVALID_PARAMETERS, f"{missing}: required with the other OCPI-to header")
    party = settings.party(country_code, party_id)
    if party is None:
        message = f"OCPI-to {country_code}/{party_id} is not a party here"
        raise OcpiError(StatusCode.CLIENT_ERROR, message, http_status=404)
    return party.key


def _unknown(what: str) -> OcpiError:
    return OcpiError(StatusCode.UNKNOWN_LOCATION, f"unknown {what}", http_status=404)


def _version(request: AnyRequest) -> str:
    # Set on each version's router (app.create_app): a router option, not a dependency (see ReadPath).
    version: str = request.route_handler.opt["ocpi_version"]
    return version


async def _reader(request: AnyRequest) -> tuple[ReadPath, str, int | None, Caller]:
    """How every handler here starts: the read path, the OCPI version, the database version (asked once, before
    any read, for the caches) and the authenticated caller."""
    path = ReadPath.of(request)
    seen = await path.version()
    return path, _version(request), seen, await path.authenticate(request, Access.functional, seen)


class LocationsController(Controller):
    path = "/locations"

    @get("/")
    async def list_locations(self, request: AnyRequest) -> ASGIApp:
        path = ReadPath.of(request)
        seen = await path.version()
        question = answers.question(request.scope)
        answer = path.answers.get(question, seen)
        if answer is None:
            answer = await _list(request, path, seen)
            path.answers.put(question, answer, seen=seen)
        return answer

    @get("/{location_id:str}")
    async def get_location(self, request: AnyRequest, location_id: FromPath[str]) -> Response[bytes]:
        path, version, seen, caller = await _reader(request)
        document = await _document(request, path, version, location_id, seen)
        return _enveloped(document.body, path.now, routing_headers(request, caller, path.settings))

    @get("/{location_id:str}/{evse_uid:str}")
    async def get_evse(
        self, request: AnyRequest, location_id: FromPath[str], evse_uid: FromPath[str]
    ) -> Response[bytes]:
        path, version, seen, caller = await _reader(request)
        evse = await _evse(request, path, version, location_id, evse_uid, seen)
        return _enveloped(ocpi.render(evse), path.now, routing_headers(request, caller, path.settings))

    @get("/{location_id:str}/{evse_uid:str}/{connector_id:str}")
    async def get_connector(
        self, request: AnyRequest, location_id: FromPath[str], evse_uid: FromPath[str], connector_id: FromPath[str]
    ) -> Response[bytes]:
        path, version, seen, caller = await _reader(request)
        evse = await _evse(request, path, version, location_id, evse_uid, seen)
        connector = store.find(evse.connectors, connector_id, lambda c: c.id)
        if connector is None:
            raise _unknown(f"connector {connector_id} of EVSE {evse_uid}")
        return _enveloped(ocpi.render(connector), path.now, routing_headers(request, caller, path.settings))


async def _list(request: AnyRequest, path: ReadPath, seen: int | None) -> answers.Answer:
    """The list's answer when none is kept: the caller, the addressed party, the page and its headers."""
    version = _version(request)
    caller = await path.authenticate(request, Access.functional, seen)
    party = _addressed_party(request, path.settings)
    params = request.query_params
    page = paging.page_request(params, cap=path.settings.page_limit)
    query = stored.PageQuery(page.offset, page.limit, page.date_from, page.date_to, party)
    data = path.pages.get(("page", version, query), seen)
    if data is None:
        async with path.sessions() as session:
            data = answers.Page(*await stored.page(session, query, version=version))
        path.pages.put(("page", version, query), data, seen=seen)
    url = f"{path.settings.public_url}/ocpi/{version}/locations"
    headers = paging.page_headers(
        params, page, total=data.total, returned=data.returned, cap=path.settings.page_limit, url=url
    )
    headers |= routing_headers(request, caller, path.settings)
    return answers.Answer(data, headers, path.now)


async def _document(
    request: AnyRequest, path: ReadPath, version: str, location_id: str, seen: int | None
) -> stored.Document:
    """The Location as served in `version`; 404 when unknown, or not of the party OCPI-to names."""
    party = _addressed_party(request, path.settings)
    key = ("document", version, location_id.upper())
    document = path.pages.get(key, seen)
    if document is None:
        async with path.sessions() as session:
            document = await stored.document(session, location_id, version=version)
        if document is not None:
            path.pages.put(key, document, seen=seen)
    if document is None or party not in (None, (document.country_code, document.party_id)):
        raise _unknown(f"location {location_id}")
    assert isinstance(document, stored.Document)
    return document


async def _evse(
    request: AnyRequest, path: ReadPath, version: str, location_id: str, evse_uid: str, seen: int | None
) -> ocpi.EVSE:
    # Read from the version's own document: an EVSE that 2.2 cannot show is unknown to a 2.2 peer.
    location = _decode_location((await _document(request, path, version, location_id, seen)).body)
    evse = store.find(location.evses or (), evse_uid, lambda e: e.uid)
    if evse is None:
        raise _unknown(f"EVSE {evse_uid} at location {location_id}")
    return evse
