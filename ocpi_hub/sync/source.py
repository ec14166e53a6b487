"""A sync source as a stream of raw EvseVO location records: a file (a JSON array or NDJSON), a directory of such
files, or an http(s) URL that returns one.

Records are parsed one at a time and never held together, so that memory does not grow with the source. A URL is
downloaded once to a temporary file, because a run reads its source twice and both passes must see the same data.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
import httpx
import ijson  # type: ignore[import-untyped]  # no stubs exist; only ijson.items and ijson.JSONError are used
import msgspec

# What a directory source reads, in name order.
_SUFFIXES = (".json", ".ndjson", ".jsonl")
_BLANK = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_CHUNK = 64 * 1024


class SourceError(Exception):
    """The source cannot be read (missing, unreachable, not JSON): the message names it and says why."""


@dataclass(frozen=True)
class Source:
    """The files of an opened source; `records()` reads them anew on every call."""

    files: tuple[Path, ...]

    def records(self) -> Iterator[object]:
        """Every record (parsed JSON, normally an object) of every file, in order."""
        for path in self.files:
            try:
                with path.open("rb") as file:
                    yield from _records(file, path)
            except OSError as exc:
                raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


@asynccontextmanager
async def opened(source: str, *, http_timeout: float) -> AsyncIterator[Source]:
    """The source named by `source`; a URL's download is deleted on exit. Raises SourceError."""
    if not re.match(r"(?i)https?://", source):
        yield Source(await asyncio.to_thread(_local_files, Path(source)))
        return
    with tempfile.TemporaryDirectory(prefix="ocpi-hub-sync-") as folder:
        target = Path(folder) / "source"
        await _download(source, target, http_timeout=http_timeout)
        yield Source((target,))


def _local_files(path: Path) -> tuple[Path, ...]:
    if path.is_dir():
        return tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file()))
    if path.is_file():
        return (path,)
    raise SourceError(f"{path}: no such file or directory")


async def _download(url: str, target: Path, *, http_timeout: float) -> None:
    # The URL is the operator's own setting, so redirects (e.g. to a storage bucket) are followed.
    client = httpx.AsyncClient(timeout=http_timeout, follow_redirects=True)
    try:
        async with client, client.stream("GET", url) as response:
            if not response.is_success:
                raise SourceError(f"{url}: HTTP {response.status_code}")
            async with await anyio.open_file(target, "wb") as file:
                async for chunk in response.aiter_bytes(_CHUNK):
                    await file.write(chunk)
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: {type(exc).__name__} {exc}".rstrip()) from exc


def _records(file: BinaryIO, path: Path) -> Iterator[object]:
    """A JSON array is told from NDJSON by its first non-blank character."""
    begin = len(_BOM) if file.read(len(_BOM)) == _BOM else 0
    first = _first_content(file, begin)
    if first == b"":
        return
    if first == b"[":
        try:
            # use_float: numbers as float like msgspec reads them, not Decimal, so the source hash does not depend
            # on the format of the file.
            yield from ijson.items(file, "item", use_float=True)
        except ijson.JSONError as exc:
            raise SourceError(f"{path}: not a JSON array of records ({_first_line(exc)})") from exc
        return
    file.seek(begin)  # from the top again, so that line numbers are the file's
    for number, line in enumerate(file, start=1):
        if line.strip(_BLANK):
            try:
                yield msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                # A broken line (a truncated export) makes the whole source unreadable: skipping it would make
                # its location look vanished.
                raise SourceError(f"{path}: line {number} is not JSON ({exc})") from exc


def _first_content(file: BinaryIO, begin: int) -> bytes:
    """Position `file` at its first non-blank byte from `begin` and return that byte; b"" when there is none."""
    file.seek(begin)
    while True:
        start = file.tell()
        chunk = file.read(_CHUNK)
        if not chunk:
            return b""
        content = chunk.lstrip(_BLANK)
        if content:
            file.seek(start + len(chunk) - len(content))
            return content[:1]


def _first_line(exc: Exception) -> str:
    # yajl's messages go on with a drawing of the spot over several lines.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
