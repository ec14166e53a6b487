"""The hub's log (docs/operations.md §1): plain text or one JSON object per line, every line written while serving a
request carrying its X-Request-ID and X-Correlation-ID, and never a secret."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Literal

# The ids of the request being served (set by ocpi_hub.api.observe), read by every line written meanwhile.
request_ids: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("request_ids", default=None)

# Loggers that would print SQL parameters or result rows, and so the partners' tokens we store, at DEBUG.
SECRET_BEARING_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg")
# One line per call to a partner at INFO (httpx) is noise: they log at DEBUG only (docs/operations.md §1.3).
CHATTY_LOGGERS = ("httpx", "httpcore", "uvicorn.access")

# A safety net behind the rule that no token is ever written: anything shaped like an Authorization header value.
_SECRETS = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:token|bearer|basic)?\s*[^\s\"',}]+"
    r"|\b(Token|Bearer) [A-Za-z0-9+/=._~-]{16,}"
)


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) + " ") + "<redacted>", text)


class _Ids(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ids = request_ids.get()
        if ids is not None and not hasattr(record, "request_id"):
            record.request_id, record.correlation_id = ids
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id=… correlation_id=…]`, tracebacks on the following lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            first, newline, rest = line.partition("\n")
            ids = f" [request_id={request_id} correlation_id={getattr(record, 'correlation_id', request_id)}]"
            line = first + ids + newline + rest
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the request's ids when serving one,
    and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := getattr(record, "request_id", None)) is not None:
            entry["request_id"] = request_id
            entry["correlation_id"] = getattr(record, "correlation_id", request_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class _HubHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler `configure` installs on the root logger (recognised to be replaced, never doubled). Without a
    stream of its own it writes to whatever `sys.stderr` is at the time (pytest swaps it per test)."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream or sys.stderr)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        super().emit(record)


def quiet_secret_loggers() -> None:
    for name in SECRET_BEARING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure(level: str, log_format: Literal["text", "json"], stream: IO[str] | None = None) -> logging.Handler:
    """Send every log line to `stream` (stderr) in `log_format`, at `level`; returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _HubHandler)]:
        root.removeHandler(old)
    handler = _HubHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_Ids())
    root.addHandler(handler)
    root.setLevel(level)
    quiet_secret_loggers()
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler
