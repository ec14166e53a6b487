"""The Sender GETs of a known caller, served before Litestar's routing (docs/ocpi.md §11, "Known callers first").

A crawl asks page after page with the same token. Routing a request, building its Litestar Request and running
Litestar's hooks and dependency resolution cost more than sending a kept page, and a good part of reading one from
the database (bench/locations_bench.py, bench/crawl_under_writes.py). So a GET on a Sender interface (a list, an
object, a Location's EVSE or Connector) from a caller already authenticated under this turn's change counters
(ocpi_hub.api.ocpi.authentication.kept_caller) and registered is answered here:
- its kept answer, looked up by the same question as the routes ask (ocpi_hub.api.ocpi.answer_cache.question);
- else its route's own function, called as Litestar would call it (the same Caller left on the request, the same
  path parameters and template), which reads, keeps and answers.
Only a success is answered here. Anything else goes on to Litestar: an unknown caller or a revoked one, a path no
Sender GET has, a counter that cannot be asked, and every error the route raises (a bad page parameter, an unknown
object), which the route then raises again and the boundary answers in our format. An error costs a second try;
errors are rare in a crawl, and one place renders them.

It sits inside ocpi_hub.api.observe, so what it answers is identified (its request ids put on it), logged, counted
under its route's template and told to the traffic log like any other answer.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from ocpi_hub import traffic
from ocpi_hub.api.ocpi.answer_cache import AnswerCache, question
from ocpi_hub.api.ocpi.authentication import Access, Caller, authorization_of, kept_caller, leave_caller
from ocpi_hub.api.ocpi.sender import PATH_PARAMETERS, Routes


def answering_kept(app: Any, cache: AnswerCache, routes: Routes) -> ASGIApp:
    """`app` (Litestar's ASGI handler) behind the Sender GETs of known callers."""
    inner: ASGIApp = app

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        answer = None
        if scope["type"] == ScopeType.HTTP and scope["method"] == "GET":
            answer = await _answer(scope, receive, cache, routes)
        if answer is None:
            await inner(scope, receive, send)
            return
        await answer(scope, receive, send)

    return serve


async def _answer(scope: HTTPScope, receive: Receive, cache: AnswerCache, routes: Routes) -> ASGIApp | None:
    parts = scope["path"].split("/")  # "", "ocpi", version, module, path parameters...
    if len(parts) < 4 or parts[1] != "ocpi" or "" in parts[2:]:
        return None  # an empty part (a trailing or doubled slash) is left to Litestar's normalising
    route = routes.get((parts[2], parts[3], len(parts) - 4))
    if route is None:
        return None
    try:
        seen = await cache.version()
    except Exception:  # the route asks again, and answers the error in our format
        return None
    found = kept_caller(cache, authorization_of(scope), seen)
    if found is None or not Access.FUNCTIONAL.allows(found[0]):
        return None
    partner, token = found
    traffic.attribute(partner.id)  # as authentication does: the request is the partner's traffic
    scope["path_template"] = route.template
    answer = route.answers.kept.get(question(scope, partner.id), seen)
    if answer is not None:
        return answer
    scope["path_params"] = dict(zip(PATH_PARAMETERS, parts[4:], strict=False))
    leave_caller(scope, Caller(partner, token, seen))
    try:
        return await route.read(Request(scope, receive))
    except Exception:  # raised again by the route, where the boundary answers it
        return None
