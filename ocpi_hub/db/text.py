"""Text a partner wrote, made fit to store (README "Security", docs/ocpi.md §11): a partner's answer may hold NUL
or other control characters, which PostgreSQL refuses in text and which would garble a log line, and may be longer
than the column. Whatever a partner answers, the outcome of our call must be recorded."""

from __future__ import annotations

import re

# C0 and C1 control characters (NUL included), DEL, and the lone surrogates that no UTF-8 column can hold.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}" if ord(match.group()) < 0x100 else f"\\u{ord(match.group()):04x}"


def storable(text: str, limit: int) -> str:
    """`text` with each control character written as an escape (`\\x00`), cut to `limit` characters (the last one
    `…` when cut)."""
    if text.isascii() and text.isprintable() and len(text) <= limit:  # most text, at a tenth of the cost
        return text
    safe = _UNSAFE.sub(_escaped, text)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"
