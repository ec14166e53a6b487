"""The Sender interface of every module whose objects we own (OCPI 2.2.1 §8.2.1 Locations, §11.2.1 Tariffs): the
paginated list and the object GETs, for registered partners only (authentication runs first).

A module is described by a `SenderModule`: how its table reads a page and one object. Everything else is the same
for every module and lives here: pagination (api/ocpi/paging.py), narrowing by the OCPI-to headers (the list, its
X-Total-Count, and the object GETs: another party's object is a 404), the routing headers of the answer, and the
answer cache (api/ocpi/answer_cache.py). The list is the hot path (eMSPs crawl everything): a page is the envelope
around the stored JSON of its objects, joined as bytes, without decoding or encoding an object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import errors
from ocpi_hub.api.ocpi import paging
from ocpi_hub.api.ocpi.answer_cache import Answer, AnswerCache, Answers, question
from ocpi_hub.api.ocpi.authentication import caller
from ocpi_hub.api.ocpi.transport import AnyRequest, addressed_party, routing_headers
from ocpi_hub.db.freshness import Kind
from ocpi_hub.db.sender import Document, PageQuery
from ocpi_hub.ocpi import locations
from ocpi_hub.ocpi.common import StatusCode, json_encoder
from ocpi_hub.ocpi.versions import ModuleID
from ocpi_hub.settings import Settings

_decode = msgspec.json.Decoder().decode

# What each module's answers are read from: a change of that kind empties its kept answers, and no other does.
_KINDS = {
    ModuleID.LOCATIONS: Kind.LOCATIONS,
    ModuleID.TARIFFS: Kind.TARIFFS,
    ModuleID.SESSIONS: Kind.SESSIONS,
    ModuleID.CDRS: Kind.CDRS,
}


# What a handler makes of a request: the answer's data, its headers besides the routing headers, and the change
# counters it depends on when fewer than its module's kind (None: the kind).
Made = tuple[bytes, dict[str, str], tuple[int, ...] | None]


@dataclass(frozen=True)
class SenderModule:
    module: ModuleID
    what: str  # the object's name in messages: "location", "tariff"
    page: Callable[..., Awaitable[tuple[int, list[bytes]]]]  # (session, PageQuery, *, version)
    document: Callable[..., Awaitable[Document | None]]  # (session, object id, *, version)
    unknown: StatusCode = StatusCode.CLIENT_ERROR  # the status_code of an unknown object
    nested: bool = False  # Locations: EVSEs and Connectors have object GETs of their own
    # Sessions, CDRs: each object is the token owner's, and only that eMSP sees it (docs/cpo-modules.md §1).
    private: bool = False
    # The same reads at once on SQLite (ocpi_hub.db.sender.LoopReader), where the module has them; None from them
    # means "not read": read through a session.
    page_now: Callable[..., tuple[int, list[bytes]] | None] | None = None  # (read, PageQuery, *, version)
    document_now: Callable[..., list[Document] | None] | None = None  # (read, object id, *, version)
    # The change counters a page's answer depends on, when fewer than the module's kind (Locations: a page without
    # filters, on its blocks); None from it, or no function, means the kind. An object's are in its Document.
    page_depends: Callable[[PageQuery], tuple[int, ...] | None] | None = None


@dataclass(frozen=True)
class Route:
    """A Sender GET as ocpi_hub.api.ocpi.kept calls it without routing."""

    template: str  # its route's path template, the label of its request metrics
    read: Callable[[AnyRequest], Awaitable[ASGIApp]]  # its function
    answers: Answers  # its module's kept answers


# Every Sender GET by (version, module, the number of path parameters); their names, in the order of the path.
Routes = dict[tuple[str, str, int], Route]
PATH_PARAMETERS = ("object_id", "evse_uid", "connector_id")


@dataclass(frozen=True)
class SenderContext:
    settings: Settings
    clock: Callable[[], datetime]
    sessions: async_sessionmaker[AsyncSession]
    cache: AnswerCache
    routes: Routes = field(default_factory=dict)  # filled by `handlers`


def handlers(spec: SenderModule, version: str, context: SenderContext) -> list[HTTPRouteHandler]:
    """The route handlers of `spec`'s Sender interface in `version`, mounted under /ocpi/{version}/{module}.

    They take no dependencies but the request: resolving dependencies per request cost half of the list's
    throughput (bench/locations_bench.py); what they need is bound here. They are put in `context.routes` too,
    for ocpi_hub.api.ocpi.kept."""
    settings, sessions = context.settings, context.sessions
    answers = context.cache.module(spec.module, _KINDS[spec.module])
    url = f"{settings.public_url}/ocpi/{version}/{spec.module}"

    async def cached(request: AnyRequest, make: Callable[[], Awaitable[Made]]) -> Answer:
        """The kept answer to the request, or the one `make` (data, headers besides the routing headers, and the
        counters it depends on if fewer than the module's kind) makes. Errors are raised, never kept."""
        who = caller(request)

        async def answer() -> Answer:
            data, headers, depends = await make()
            headers |= routing_headers(request, settings, who.party)
            # Every answer depends on the partners too (their roles shape it).
            depends = None if depends is None else (Kind.PARTNERS, *depends)
            return Answer(data, headers, context.clock, depends=depends)

        return await answers.answer(question(request.scope, who.partner.id), who.seen, answer)

    async def read_page(query: PageQuery) -> tuple[int, list[bytes]]:
        read = context.cache.freshness.read_now
        if read is not None and spec.page_now is not None:
            page = spec.page_now(read, query, version=version)
            if page is not None:
                return page
        async with sessions() as session:
            return await spec.page(session, query, version=version)

    async def read_document(object_id: str) -> Document | None:
        read = context.cache.freshness.read_now
        if read is not None and spec.document_now is not None:
            documents = spec.document_now(read, object_id, version=version)
            if documents is not None:
                return documents[0] if documents else None
        async with sessions() as session:
            return await spec.document(session, object_id, version=version)

    async def document(request: AnyRequest, object_id: str) -> Document:
        party = addressed_party(request, settings)
        found = await read_document(object_id)
        hidden = spec.private and found is not None and found.reader not in caller(request).parties
        if found is None or hidden or party not in (None, (found.country_code, found.party_id)):
            raise errors.NotFound(f"unknown {spec.what} {object_id}", ocpi_status=spec.unknown)
        return found

    async def child(request: AnyRequest, evse_uid: str, connector_id: str = "") -> Made:
        object_id = request.path_params["object_id"]
        # Read from the version's own document: an EVSE that 2.2 cannot show is unknown to a 2.2 peer.
        parent = await document(request, object_id)
        found = locations.child(_decode(parent.body), evse_uid, connector_id)
        if found is None:
            what = f"connector {connector_id} of EVSE {evse_uid}" if connector_id else f"EVSE {evse_uid}"
            raise errors.NotFound(f"unknown {what} at {spec.what} {object_id}", ocpi_status=spec.unknown)
        return json_encoder.encode(found), {}, parent.depends

    @get("/")
    async def list_objects(request: AnyRequest) -> ASGIApp:
        async def page() -> Made:
            params = request.query_params
            asked = paging.page_request(params, cap=settings.page_limit)
            party = addressed_party(request, settings)
            readers = caller(request).parties if spec.private else None
            query = PageQuery(asked.offset, asked.limit, asked.date_from, asked.date_to, party, readers)
            total, bodies = await read_page(query)
            headers = paging.page_headers(
                params, asked, total=total, returned=len(bodies), cap=settings.page_limit, url=url
            )
            depends = spec.page_depends(query) if spec.page_depends is not None else None
            return b"[" + b",".join(bodies) + b"]", headers, depends

        return await cached(request, page)

    @get("/{object_id:str}")
    async def get_object(request: AnyRequest) -> ASGIApp:
        async def body() -> Made:
            found = await document(request, request.path_params["object_id"])
            return found.body, {}, found.depends

        return await cached(request, body)

    routes = [list_objects, get_object]
    if spec.nested:

        @get("/{object_id:str}/{evse_uid:str}")
        async def get_evse(request: AnyRequest) -> ASGIApp:
            return await cached(request, lambda: child(request, request.path_params["evse_uid"]))

        @get("/{object_id:str}/{evse_uid:str}/{connector_id:str}")
        async def get_connector(request: AnyRequest) -> ASGIApp:
            params = request.path_params
            return await cached(request, lambda: child(request, params["evse_uid"], params["connector_id"]))

        routes += [get_evse, get_connector]
    prefix = f"/ocpi/{version}/{spec.module}"
    for count, route in enumerate(routes):  # the list, then one more path parameter each
        template = prefix + "".join(f"/{{{name}}}" for name in PATH_PARAMETERS[:count])
        context.routes[(version, spec.module, count)] = Route(template, route.fn, answers)
    return routes
