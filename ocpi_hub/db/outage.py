"""While the database cannot be reached (docs/ocpi.md §11, README "Operating it"): every request that needs it is
answered 503 with Retry-After (on /ocpi the envelope with status 3000), the push worker and the scheduled sync wait
for it, and the log says so once when it starts (WARNING) and once when it ends (INFO), rather than a traceback per
request or per round. One Outage per engine, shared by the requests, the push worker and the sync of a process, so that
one outage is one WARNING. Nothing needs a restart: the pool checks a connection before handing it out
(pool_pre_ping) and opens new ones once the database answers again."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says that the database cannot be reached, rather than that a statement was wrong: no connection
    could be made (refused, reset, timed out, name not found), or the one in use was lost."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc.orig, OSError)
    return isinstance(exc, OSError)


class Outage:
    """Whether the database is out of reach now, as seen by the requests and the background tasks; logs its start
    and its end."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.since: float | None = None
        # A connection made means the database answers again (after an outage, the pool makes new ones).
        event.listen(engine.sync_engine, "connect", self._connected)

    def begun(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "the database cannot be reached (%s): requests are answered 503, pushes and syncs wait until it can",
                _why(exc),
            )

    def noticed(self, exc: BaseException) -> bool:
        """For a background task's failed round: whether `exc` says that the database cannot be reached (the outage
        is then told, once); False for any other failure, which the caller logs with its traceback."""
        if not unreachable(exc):
            return False
        self.begun(exc)
        return True

    def _connected(self, *_: Any) -> None:
        if self.since is not None:
            log.info("the database can be reached again, after %.0f s", time.monotonic() - self.since)
            self.since = None


def _why(exc: BaseException) -> str:
    """The error in one line, without the statement or its parameters (which may carry a token)."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"[:200]
