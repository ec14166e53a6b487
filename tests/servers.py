"""Real HTTP servers on 127.0.0.1 for the tests: the hub itself and the fake partners."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serve(make_app: Callable[[str], Any], *, http: str = "h11") -> AsyncIterator[str]:
    """Serve the app `make_app(base_url)` on a free loopback port in this event loop; yield its base URL. `http`:
    uvicorn's HTTP implementation ("auto" is httptools, as `ocpi-hub serve` runs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(make_app(base_url), lifespan="on", log_level="warning", ws="none", http=http)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # the server failed to start: raise why
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.01)
        yield base_url
    finally:
        server.should_exit = True
        await task
        sock.close()
