"""What every Sender list reads from its module's tables (docs/ocpi.md §1.7): a page and one object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PageQuery:
    """A page of a list: date_from inclusive, date_to exclusive, optionally of one of our parties; for the
    modules whose objects belong to one eMSP (Sessions, CDRs), only the objects of the `readers`' parties."""

    offset: int
    limit: int
    date_from: datetime | None = None
    date_to: datetime | None = None
    party: tuple[str, str] | None = None
    readers: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class Document:
    """One stored object's JSON for a version, with its owner and, for an object of one eMSP, that eMSP's party."""

    body: bytes
    country_code: str
    party_id: str
    reader: tuple[str, str] | None = None
