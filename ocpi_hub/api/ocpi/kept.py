"""Kept answers, served before Litestar's routing (docs/ocpi.md §11, "Kept answers first").

A crawl asks the same pages again and again, and the answer cache (ocpi_hub.api.ocpi.answer_cache) keeps them; but
routing a request, building Litestar's Request and running its hooks cost more than sending a kept page
(bench/locations_bench.py). So a GET on /ocpi whose caller and answer are both kept is answered here, outside
Litestar, by the same look-ups the routes use: the caller by the Authorization header as sent, under the change
counters of this turn of the loop (ocpi_hub.api.ocpi.authentication.kept_caller), registered; the answer by the
same question (ocpi_hub.api.ocpi.answer_cache.question) in the module's kept answers. A hit is exactly what the
route would answer: only a route puts answers there, under the full path, so the path already names its module and
version. Anything else (an unknown caller, a miss, a counter that moved, an error asking the counters) goes on to
Litestar, which authenticates, reads and keeps.

It sits inside ocpi_hub.api.observe, so a kept answer is identified (its request ids put on it), logged, counted
under its route's template and told to the traffic log like any other.
"""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from ocpi_hub import traffic
from ocpi_hub.api.ocpi.answer_cache import Answer, AnswerCache, question
from ocpi_hub.api.ocpi.authentication import Access, authorization_of, kept_caller


def answering_kept(app: Any, cache: AnswerCache) -> ASGIApp:
    """`app` (Litestar's ASGI handler) behind the kept answers of the /ocpi Sender interfaces."""
    inner: ASGIApp = app

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        answer = await _kept(scope, cache) if scope["type"] == ScopeType.HTTP and scope["method"] == "GET" else None
        if answer is None:
            await inner(scope, receive, send)
            return
        scope["path_template"] = answer.template
        await answer(scope, receive, send)

    return serve


async def _kept(scope: HTTPScope, cache: AnswerCache) -> Answer | None:
    parts = scope["path"].split("/", 4)  # "", "ocpi", version, module, rest
    if len(parts) < 4 or parts[1] != "ocpi" or (answers := cache.answers_of(parts[3])) is None:
        return None
    try:
        seen = await cache.version()
    except Exception:  # the route asks again, and answers the error in our format
        return None
    found = kept_caller(cache, authorization_of(scope), seen)
    if found is None or not Access.FUNCTIONAL.allows(found[0]):
        return None
    answer = answers.kept.get(question(scope, found[0].id), seen)
    if answer is not None:
        traffic.attribute(found[0].id)  # as authentication does: the request is the partner's traffic
    return answer
