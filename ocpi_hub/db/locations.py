"""Locations as stored: a narrow crawl table and the rendered OCPI documents (OCPI 2.2.1 §8.2.1, docs/ocpi.md §1.7).

`locations` holds one small row per Location, in creation order: `seq` over the whole platform and `party_seq`
within the owning party. Both are dense (1, 2, 3, ... without gaps), because each is assigned as max + 1 inside
the inserting statement and Locations are never deleted (OCPI has no deletion; this module has no delete).
Density is what makes a page without date filters O(log n) at any depth: offset k is the row with seq k + 1, and
the total is max(seq). Pages with date filters count and skip over the narrow table and its last_updated index.

`location_documents` holds, per Location, its OCPI JSON as served to 2.2.1 and to 2.2 peers, written in the same
transaction as the row, so that a page is assembled from 50 bodies without decoding or encoding one object.
The 2.2.1 body is the source of truth for modifications (see ocpi_hub.locations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

import msgspec
from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ocpi_hub.db import sqlite_driver
from ocpi_hub.db.base import AdvisoryLock, Base, UtcDateTime, advisory_lock
from ocpi_hub.db.freshness import Kind, location_blocks
from ocpi_hub.db.sender import Document, PageQuery, ReadNow, read_now
from ocpi_hub.db.transaction import ConcurrentWriteError
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.versions import VersionNumber


class LocationRow(Base):
    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("country_code", "party_id", "party_seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    party_seq: Mapped[int] = mapped_column(Integer)
    id: Mapped[str] = mapped_column(String(36))  # as first given
    key: Mapped[str] = mapped_column(String(36), unique=True)  # id upper-cased: ids are CiStrings
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revision: Mapped[int] = mapped_column(Integer)  # optimistic concurrency: every update checks and bumps it


class LocationDocument(Base):
    __tablename__ = "location_documents"

    seq: Mapped[int] = mapped_column(Integer, ForeignKey("locations.seq"), primary_key=True, autoincrement=False)
    body_221: Mapped[bytes] = mapped_column(LargeBinary)
    body_22: Mapped[bytes] = mapped_column(LargeBinary)


# Core tables: the hot paths skip the ORM.
_rows = cast(Table, LocationRow.__table__)
_docs = cast(Table, LocationDocument.__table__)
_decode = msgspec.json.Decoder(ocpi.Location).decode


def _body(version: str) -> ColumnElement[bytes]:
    return _docs.c.body_22 if version == VersionNumber.V2_2 else _docs.c.body_221


@dataclass(frozen=True)
class Stored:
    """A stored Location as read for a modification: `revision` guards the write."""

    seq: int
    revision: int
    location: ocpi.Location


@dataclass(frozen=True)
class Bodies:
    """The rendered OCPI JSON of one Location, per version."""

    v221: bytes
    v22: bytes


async def load(session: AsyncSession, location_id: str, *, for_update: bool = False) -> Stored | None:
    """The stored Location. `for_update`: PostgreSQL locks its row until the transaction ends, so that concurrent
    writers of one Location queue instead of retrying (SQLite has one writer at a time anyway)."""
    # Core on the connection, not the ORM's execute path: Locations are no ORM objects, so there is nothing to
    # flush first, and a status change runs this and the two updates below on every call.
    connection = await session.connection()
    parameters = {"key": location_id.upper()}
    # SQLite, before the transaction's first write: read at once on the loop's own connection (db/sender.py), which
    # sees what the session would, all that is committed. A writer that commits after the read fails the revision
    # check of update_location, which reads again. After a write, the session alone sees what it wrote.
    read = read_now(session)
    if read is not None and not sqlite_driver.has_written(connection):
        rows = read(_load_statement(for_update), parameters)
        if rows is not None:
            return Stored(seq=rows[0][0], revision=rows[0][1], location=_decode(rows[0][2])) if rows else None
    row = (await connection.execute(_load_statement(for_update), parameters)).first()
    return None if row is None else Stored(seq=row.seq, revision=row.revision, location=_decode(row.body_221))


@cache
def _load_statement(for_update: bool) -> Select[tuple[int, int, bytes]]:
    # Built once: building a statement costs more than running it, and a status change runs this every time.
    query = (
        select(_rows.c.seq, _rows.c.revision, _docs.c.body_221)
        .join_from(_rows, _docs, _docs.c.seq == _rows.c.seq)
        .where(_rows.c.key == bindparam("key"))
    )
    return query.with_for_update() if for_update else query  # both rows: so that a waiter reads the latest of each


async def insert_location(session: AsyncSession, location: ocpi.Location, bodies: Bodies) -> None:
    """Add a new Location at the end of both orders. New positions are max + 1: on PostgreSQL, inserts take turns
    (a transaction lock) so that two never pick the same one; SQLite has one writer at a time. An id taken
    meanwhile is an IntegrityError, on which the caller reads again and retries."""
    await advisory_lock(session, AdvisoryLock.LOCATION_INSERTS)
    country_code, party_id = location.country_code.upper(), location.party_id.upper()
    party = and_(_rows.c.country_code == country_code, _rows.c.party_id == party_id)
    seq = (
        await session.execute(
            insert(_rows)
            .values(
                seq=select(func.coalesce(func.max(_rows.c.seq), 0) + 1).scalar_subquery(),
                party_seq=select(func.coalesce(func.max(_rows.c.party_seq), 0) + 1).where(party).scalar_subquery(),
                id=location.id,
                key=location.id.upper(),
                country_code=country_code,
                party_id=party_id,
                last_updated=location.last_updated,
                revision=1,
            )
            .returning(_rows.c.seq)
        )
    ).scalar_one()
    await session.execute(insert(_docs).values(seq=seq, body_221=bodies.v221, body_22=bodies.v22))


async def update_location(session: AsyncSession, stored: Stored, location: ocpi.Location, bodies: Bodies) -> None:
    values = {"s": stored.seq, "r": stored.revision, "last_updated": location.last_updated}
    connection = await session.connection()
    changed = await connection.execute(_UPDATE_ROW, values)
    if changed.rowcount != 1:
        raise ConcurrentWriteError(location.id)
    await connection.execute(_UPDATE_DOCUMENT, {"s": stored.seq, "body_221": bodies.v221, "body_22": bodies.v22})


# Built once, as _load_statement. The revision check guards against a writer that came first (SQLite has no row
# lock; PostgreSQL's FOR UPDATE makes it a formality there).
_UPDATE_ROW = (
    update(_rows)
    .where(_rows.c.seq == bindparam("s"), _rows.c.revision == bindparam("r"))
    .values(last_updated=bindparam("last_updated"), revision=_rows.c.revision + 1)
)
_UPDATE_DOCUMENT = update(_docs).where(_docs.c.seq == bindparam("s"))


# --- Many at once (the sync and the bulk load): the same rows as above, in a few statements --------------------


async def load_many(session: AsyncSession, keys: Sequence[str], *, for_update: bool = False) -> dict[str, Stored]:
    """The stored Locations among `keys` (upper-cased ids), by key; locked as `load` locks one."""
    found: dict[str, Stored] = {}
    for first in range(0, len(keys), _CHUNK):
        query = (
            select(_rows.c.key, _rows.c.seq, _rows.c.revision, _docs.c.body_221)
            .join_from(_rows, _docs, _docs.c.seq == _rows.c.seq)
            .where(_rows.c.key.in_(keys[first : first + _CHUNK]))
        )
        for row in await session.execute(query.with_for_update() if for_update else query):
            found[row.key] = Stored(seq=row.seq, revision=row.revision, location=_decode(row.body_221))
    return found


# Bound parameters per statement stay well below SQLite's limit (32,766) and PostgreSQL's (32,767).
_CHUNK = 500


async def insert_locations(session: AsyncSession, new: Sequence[tuple[ocpi.Location, Bodies]]) -> list[int]:
    """Add new Locations at the end of both orders, in the given order, as `insert_location` adds one (positions
    max + 1, taken in turns on PostgreSQL); returns their seq. Plain INSERTs of many rows at once."""
    if not new:
        return []
    await advisory_lock(session, AdvisoryLock.LOCATION_INSERTS)
    seq = (await session.execute(select(func.coalesce(func.max(_rows.c.seq), 0)))).scalar_one()
    parties = {(loc.country_code.upper(), loc.party_id.upper()) for loc, _ in new}
    party_seq: dict[tuple[str, str], int] = {}
    for country_code, party_id in parties:
        party = and_(_rows.c.country_code == country_code, _rows.c.party_id == party_id)
        query = select(func.coalesce(func.max(_rows.c.party_seq), 0)).where(party)
        party_seq[country_code, party_id] = (await session.execute(query)).scalar_one()
    rows, documents, seqs = [], [], []
    for location, bodies in new:
        seq += 1
        owner = (location.country_code.upper(), location.party_id.upper())
        party_seq[owner] += 1
        rows.append(
            {
                "seq": seq,
                "party_seq": party_seq[owner],
                "id": location.id,
                "key": location.id.upper(),
                "country_code": owner[0],
                "party_id": owner[1],
                "last_updated": location.last_updated,
                "revision": 1,
            }
        )
        documents.append({"seq": seq, "body_221": bodies.v221, "body_22": bodies.v22})
        seqs.append(seq)
    await session.execute(insert(_rows), rows)
    await session.execute(insert(_docs), documents)
    if session.get_bind().dialect.name == "postgresql" and _doubled(seqs[0], seqs[-1]):
        await session.execute(text("ANALYZE locations, location_documents, connector_tariffs"))
    return seqs


# PostgreSQL plans statements from the tables' statistics, which autovacuum renews about once a minute; a first sync
# or bulk load that grows the tables from nothing within seconds kept plans made for empty tables (sequential scans
# of the Locations and their Tariff names, 28 s of a 25,000-Location first sync's 41 s, bench/sync_bench.py). So the
# tables are analysed whenever the Locations double in number, from 1,024 on: a dozen times up to millions, each
# reading a bounded sample. (SQLite plans without statistics.)
_ANALYSED_FROM = 1024


def _doubled(first: int, last: int) -> bool:
    """Whether the new positions first..last hold a power of two of at least _ANALYSED_FROM."""
    power = 1 << (last.bit_length() - 1)  # the largest power of two ≤ last
    return power >= max(first, _ANALYSED_FROM)


async def update_locations(session: AsyncSession, changed: Sequence[tuple[Stored, ocpi.Location, Bodies]]) -> None:
    """`update_location` for many: the same revision check, over all of them (ConcurrentWriteError when any row
    changed since it was read)."""
    if not changed:
        return
    rows = [{"s": s.seq, "r": s.revision, "last_updated": loc.last_updated} for s, loc, _ in changed]
    result = cast("CursorResult[Any]", await session.execute(_UPDATE_ROW, rows))
    # executemany reports the sum of the rows matched on SQLite; asyncpg reports none (-1), and there the rows
    # were read FOR UPDATE, so that none can have changed.
    if result.rowcount not in (-1, len(rows)):
        raise ConcurrentWriteError(", ".join(loc.id for _, loc, _ in changed))
    documents = [{"s": s.seq, "body_221": b.v221, "body_22": b.v22} for s, _, b in changed]
    await session.execute(_UPDATE_DOCUMENT, documents)


async def document(session: AsyncSession, location_id: str, *, version: str) -> Document | None:
    """One Location's JSON for `version`, with its owner."""
    connection = await session.connection()
    result = await connection.execute(_document_statement(version), {"key": location_id.upper()})
    row = result.first()
    return None if row is None else _document(row.body, row.country_code, row.party_id, row.seq)


async def page(session: AsyncSession, query: PageQuery, *, version: str) -> tuple[int, list[bytes]]:
    """(total matching, the bodies of the page in creation order), in one statement: the total comes out on
    every row, and on a single row with no body when the page is empty."""
    statement = _page_statement(
        version, query.date_from is not None, query.date_to is not None, query.party is not None
    )
    # Core on the connection, with a statement built once: the ORM's execute path and building a statement cost
    # more than the query itself.
    connection = await session.connection()
    rows = (await connection.execute(statement, _page_parameters(query))).all()
    return (rows[0].total if rows else 0), [row.body for row in rows if row.body is not None]


def _page_parameters(query: PageQuery) -> dict[str, Any]:
    country_code, party_id = query.party or ("", "")
    return {
        "offset": query.offset,
        "limit": query.limit,
        "last": query.offset + query.limit,
        "date_from": query.date_from,
        "date_to": query.date_to,
        "country_code": country_code,
        "party_id": party_id,
    }


def page_now(read: ReadNow, query: PageQuery, *, version: str) -> tuple[int, list[bytes]] | None:
    """page(), read at once by `read` (ocpi_hub.db.sender.LoopReader); None when it was not: pages with date
    filters (their DateTimes need the column type's conversion) are left to page()."""
    if query.date_from is not None or query.date_to is not None:
        return None
    rows = read(_page_statement(version, False, False, query.party is not None), _page_parameters(query))
    if rows is None:
        return None
    return (rows[0][0] if rows else 0), [row[1] for row in rows if row[1] is not None]


def document_now(read: ReadNow, location_id: str, *, version: str) -> list[Document] | None:
    """document(), read at once by `read`: a list of the one document, or empty; None when it was not read."""
    rows = read(_document_statement(version), {"key": location_id.upper()})
    return None if rows is None else [_document(*row) for row in rows]


def _document(body: bytes, country_code: str, party_id: str, seq: int) -> Document:
    # Its answers change with it (its block's counter) and with Locations added or removed (docs/ocpi.md §11).
    depends = (Kind.LOCATIONS_ADDED, *location_blocks(seq, seq))
    return Document(body=body, country_code=country_code, party_id=party_id, depends=depends)


def page_depends(query: PageQuery) -> tuple[int, ...] | None:
    """The change counters a page's answer depends on, when fewer than every Location's: a page without filters
    holds the Locations of seq offset + 1 to offset + limit (dense seq), and its total changes only when Locations
    are added or removed. Filtered pages depend on every change (None)."""
    if query.date_from is not None or query.date_to is not None or query.party is not None:
        return None
    blocks = location_blocks(query.offset + 1, query.offset + query.limit) if query.limit > 0 else ()
    return (Kind.LOCATIONS_ADDED, *blocks)


@cache
def _document_statement(version: str) -> Select[tuple[bytes, str, str, int]]:
    return (
        select(_body(version).label("body"), _rows.c.country_code, _rows.c.party_id, _rows.c.seq)
        .join_from(_rows, _docs, _docs.c.seq == _rows.c.seq)
        .where(_rows.c.key == bindparam("key"))
    )


@cache
def _page_statement(version: str, dated_from: bool, dated_to: bool, of_party: bool) -> Select[tuple[int, bytes]]:
    body = _body(version).label("body")
    party = and_(_rows.c.country_code == bindparam("country_code"), _rows.c.party_id == bindparam("party_id"))
    if not dated_from and not dated_to:
        if not of_party:
            # Dense seq: max(seq) is the total and offset k starts after seq k. Two index look-ups at any depth.
            total = select(func.coalesce(func.max(_rows.c.seq), 0).label("total")).subquery()
            in_page = and_(_docs.c.seq > bindparam("offset"), _docs.c.seq <= bindparam("last"))
            return select(total.c.total, body).select_from(total.outerjoin(_docs, in_page)).order_by(_docs.c.seq)
        # The same within one party, on the (country_code, party_id, party_seq) index.
        total = select(func.coalesce(func.max(_rows.c.party_seq), 0).label("total")).where(party).subquery()
        window = and_(party, _rows.c.party_seq > bindparam("offset"), _rows.c.party_seq <= bindparam("last"))
        chosen = select(_rows.c.seq).where(window).subquery()
    else:
        # Filtered by last_updated: count and skip over the narrow table (its last_updated index narrows the scan).
        conditions = []
        if dated_from:
            conditions.append(_rows.c.last_updated >= bindparam("date_from"))
        if dated_to:
            conditions.append(_rows.c.last_updated < bindparam("date_to"))
        if of_party:
            conditions.append(party)
        matching = select(_rows.c.seq).where(*conditions)
        total = select(func.count().label("total")).select_from(matching.subquery()).subquery()
        window_rows = matching.order_by(_rows.c.seq).offset(bindparam("offset")).limit(bindparam("limit"))
        chosen = window_rows.subquery()
    return (
        select(total.c.total, body)
        .select_from(total.outerjoin(chosen, true()).outerjoin(_docs, _docs.c.seq == chosen.c.seq))
        .order_by(chosen.c.seq)
    )


# Every Location, oldest first, as the outbox's initial push selects them.
EVERY: Select[Any] = select(_rows.c.country_code, _rows.c.party_id, _rows.c.id).order_by(_rows.c.seq)


# Built once per version: the push worker asks it every round (docs/ocpi.md §11, "The push worker's rounds").
@cache
def _bodies_statement(version: str) -> Select[tuple[str, bytes]]:
    return (
        select(_rows.c.key, _body(version).label("body"))
        .join_from(_rows, _docs, _docs.c.seq == _rows.c.seq)
        .where(_rows.c.key.in_(bindparam("keys", expanding=True)))
    )


async def bodies(session: AsyncSession, location_ids: Sequence[str], version: str) -> dict[str, bytes]:
    """The JSON of these Locations for `version` (by upper-cased id), as the push worker sends them."""
    keys = sorted({i.upper() for i in location_ids})
    return {row.key: row.body for row in await session.execute(_bodies_statement(version), {"keys": keys})}
