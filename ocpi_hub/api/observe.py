"""What every HTTP request passes through first (docs/operations.md §1.2, §2.2): its X-Request-ID and
X-Correlation-ID are chosen (the caller's, else fresh ones), set for every log line written while it is served and
put on its answer, whichever part of the hub answers (OCPI 2.2.1 §4.1.4: errors and 404s too), and it is counted
and timed by route template. A DEBUG line per request replaces uvicorn's access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ocpi_hub import logs
from ocpi_hub.api.ocpi.transport import new_request_id
from ocpi_hub.metrics import Metrics
from ocpi_hub.traffic import TrafficLog

log = logging.getLogger("ocpi_hub.requests")

# Plain ASGI: the wrapper sits outside Litestar's typed scopes.
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"  # the route label of a request that matched no route (404, 405); templates start with /


def observed(app: Any, metrics: Metrics, traffic: TrafficLog | None = None) -> ASGIApp:
    """`app` (Litestar's ASGI handler) wrapped so that every HTTP request is identified, logged and measured, and
    a partner's /ocpi requests told to the traffic log (docs/operations.md §7.2)."""
    inner: ASGIApp = app

    async def observe(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        # A caller that sent none gets fresh ones rather than an error: those its log lines carry.
        request_id = headers.get(b"x-request-id") or new_request_id()
        correlation_id = headers.get(b"x-correlation-id") or request_id
        ids = [(b"x-request-id", request_id), (b"x-correlation-id", correlation_id)]
        texts = request_id.decode("latin-1"), correlation_id.decode("latin-1")
        serving = logs.request_ids.set(texts)
        status = 500  # an answer never started is a failure of ours
        started = time.perf_counter()
        watch = None
        if traffic is not None:
            watch, receive = traffic.watch(scope, receive)

        async def measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *ids]
            elif watch is not None:
                watch.sent(message)
            await send(message)

        try:
            await inner(scope, receive, measured)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or UNMATCHED
            method = scope["method"]
            try:
                metrics.served(method, route, status, elapsed)
                log.debug("%s %s (%s) %s in %.1f ms", method, scope["path"], route, status, elapsed * 1000)
                if watch is not None:
                    watch.done(status, elapsed, *texts)
            finally:  # the context this request set is left as it was found, whatever failed
                if watch is not None:
                    watch.close()
                logs.request_ids.reset(serving)

    return observe
