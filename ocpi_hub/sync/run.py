"""One run of the location sync: a source of EvseVO location records brought into the Locations store.

Two passes over the source, so that a run that would remove too much changes nothing at all:
1. Read every record and collect only the location ids. Managed locations (those in `sync_sources`) whose id is
   missing have vanished; when they are more than `sync_max_remove_share` of the managed ones, stop here: a
   truncated export must not wipe the network. A source that cannot be read to its end stops here too.
2. A record whose hash equals the stored one is unchanged, without converting it or loading its location; any
   other is converted and saved through the store (which writes, stamps and pushes only real changes), then its
   hash is recorded. Last, every EVSE of a vanished location is set to REMOVED. Pass 1 already hashes each record
   and keeps those pass 2 must handle while they are few (_REMEMBERED): a routine run, where a few percent changed,
   then reads the source once; otherwise pass 2 reads it again.

Records are written in batches (README "The location sync", docs/ocpi.md §11, "Writes in bulk"): up to _BATCH
converted records, their Tariffs, Locations, pushes and hashes in one transaction of a few statements. A record the
store refuses is rejected and the batch is written again without it, so that it leaves nothing behind (not even a
Tariff only it named); a batch that fails otherwise (a concurrent writer, a lock) is written again record by record.

A rejected record keeps its location's old hash, so it is tried again next run; its location counts as present.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import errors
from ocpi_hub.changes import Change, Written
from ocpi_hub.db import locations as locations_db
from ocpi_hub.db import sync_sources as sync_db
from ocpi_hub.db.tariffs import Origin
from ocpi_hub.evsevo.convert import (
    ConversionError,
    Converted,
    Mode,
    decode_location_record,
    location_to_ocpi,
    said_location_id,
)
from ocpi_hub.evsevo.models import EvseVOLocation
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.push import outbox
from ocpi_hub.settings import Settings
from ocpi_hub.stores import evsevo, tariffs
from ocpi_hub.stores import locations as store
from ocpi_hub.sync.source import Source, SourceError, opened

MAX_REASONS = 100
MAX_WARNINGS = 20
# Hashes are recorded in batches: one lost in a crash only makes its record be converted again, to no change.
_HASH_BATCH = 500
# Converted records written per transaction: enough that statements and commits cost little per record, few enough
# that the write lock is held for a fraction of a second (SQLite) and memory stays flat.
_BATCH = 200
# Hash comparisons need no I/O: let the event loop serve requests now and then during a long unchanged stretch.
_YIELD_EVERY = 100
# Records to handle (changed, new, repeated or wrong) that pass 1 keeps for pass 2, rather than reading the source
# again (parsing it is most of a routine run's time); a few tens of MB at most. More: pass 2 reads the source.
_REMEMBERED = 1000

Progress = Callable[[int, int], None]  # (records done, records in the source)


@dataclass
class SyncReport:
    source: str
    records: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    removed: int = 0  # vanished locations whose EVSEs were set to REMOVED
    reasons: list[str] = field(default_factory=list)  # why records were rejected, the first MAX_REASONS
    stopped: str | None = None  # why the run stopped before its end
    warned: int = 0  # warnings of the records stored (lenient mode: what was left out), docs/operations.md §8.3
    warnings: list[str] = field(default_factory=list)  # the first MAX_WARNINGS

    def summary(self) -> str:
        counts = (
            f"{self.records} records: {self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.rejected} rejected, {self.removed} removed"
        )
        lines = [f"sync of {self.source}: {counts}"]
        if self.stopped is not None:
            lines.append(f"stopped: {self.stopped}")
        lines += [f"rejected: {reason}" for reason in self.reasons]
        if self.rejected > len(self.reasons):
            lines.append(f"... and {self.rejected - len(self.reasons)} more rejected")
        lines += [f"warning: {warning}" for warning in self.warnings]
        if self.warned > len(self.warnings):
            lines.append(f"... and {self.warned - len(self.warnings)} more warnings")
        return "\n".join(lines)

    def warn(self, location_id: str, warnings: tuple[str, ...]) -> None:
        self.warned += len(warnings)
        room = max(0, MAX_WARNINGS - len(self.warnings))
        self.warnings += [f"location {location_id}: {warning}" for warning in warnings[:room]]


async def sync(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    source: str,
    *,
    clock: Callable[[], datetime],
    progress: Progress | None = None,
) -> SyncReport:
    """One sync of `source` (a file, directory or URL). Never raises for the source: an unreadable one, or one
    that would remove too much, ends the run with `stopped` set."""
    report = SyncReport(source)
    try:
        async with opened(source, http_timeout=settings.http_timeout) as found, sessions() as session:
            await _Run(session, settings, report, clock, progress).run(found)
    except SourceError as exc:
        report.stopped = str(exc)
        if report.created or report.updated or report.unchanged or report.rejected:
            report.stopped += " (the records before it were synced; no location was removed)"
        else:
            report.stopped += " (nothing was changed)"
    return report


class _Run:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        report: SyncReport,
        clock: Callable[[], datetime],
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.report = report
        self.clock = clock
        self.progress = progress
        self.mode = Mode.LENIENT if settings.sync_lenient else Mode.STRICT
        self.parties = [p.key for p in settings.parties]
        self.default_party = settings.default_party.key
        self.max_remove_share = settings.sync_max_remove_share
        self.context = _context(self.mode, self.parties, self.default_party)
        self.first_record: dict[str, int] = {}  # location key → number of its first record, in pass 2
        self.pending: dict[str, str] = {}  # hashes to record
        self.batch: dict[str, _Entry] = {}  # converted records waiting to be written, by location key

    async def run(self, source: Source) -> None:
        known = await sync_db.hashes(self.session)
        await self.session.rollback()  # end the read: each record is written in a transaction of its own
        # Reading a whole source takes seconds: in a thread, so that a serving event loop goes on meanwhile.
        scan = await asyncio.to_thread(_scan, source, known, self.context)
        self.report.records = scan.records
        vanished = known.keys() - scan.first.keys()
        if known and len(vanished) > self.max_remove_share * len(known):
            self.report.stopped = (
                f"{len(vanished)} of the {len(known)} locations this sync manages are missing from the source, more "
                f"than the allowed share of {self.max_remove_share * 100:g}%: nothing was changed (a truncated export?)"
            )
            return
        numbered: Iterable[tuple[int, object]] = enumerate(source.records(), start=1)
        if scan.remembered is not None:  # few to handle: those pass 1 kept, without reading the source again
            numbered = scan.remembered
            self.first_record = dict(scan.first)  # so that a repeated location id is still told from its first
            self.report.unchanged += scan.records - len(scan.remembered)
        number = 0
        for done, (number, raw) in enumerate(numbered, start=1):
            await self.record(number, raw, known)
            if self.progress is not None:
                self.progress(number, self.report.records)
            if done % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if self.progress is not None and number != self.report.records:  # the unchanged records after the last
            self.progress(self.report.records, self.report.records)
        await self.flush()
        await self.record_hashes()
        # A location pass 1 missed but pass 2 found (the source changed in between) was just synced: keep it.
        for key in sorted(vanished - self.first_record.keys()):
            await self.remove(key)
        # Last, the Tariffs the sync made that no Connector names any more (their prices changed or vanished).
        now = self.clock()
        await outbox.committed(self.session, lambda: tariffs.delete_unused(self.session, origin=Origin.SYNC), now=now)

    async def record(self, number: int, raw: object, known: dict[str, str]) -> None:
        key = _location_key(raw)
        if key is not None:
            first = self.first_record.setdefault(key, number)
            if first != number:
                self.reject(number, key, f"repeats the location id of record {first}")
                return
        try:
            record = decode_location_record(raw)
        except ConversionError as exc:  # a wrong shape: msgspec's message names the path
            self.reject(number, key, exc.rule)
            return
        digest = _digest(self.context, record)
        if key is not None and known.get(key) == digest:
            self.report.unchanged += 1
            return
        try:
            converted = self.convert(record)
        except ConversionError as exc:
            self.reject(number, key, str(exc))
            return
        location_key = converted.value.id.upper()
        if location_key in self.batch:  # (a record that named no id): a batch holds distinct Locations
            await self.flush()
        self.batch[location_key] = _Entry(number, key, digest, converted, location_key)
        if len(self.batch) >= _BATCH:
            await self.flush()

    def convert(self, record: EvseVOLocation) -> Converted[ocpi.Location]:
        return location_to_ocpi(
            record,
            location_id=None,
            parties=self.parties,
            default_party=self.default_party,
            mode=self.mode,
            now=self.clock(),
        )

    async def flush(self) -> None:
        """Write the batch in one transaction; a refused record is rejected and the rest written again without
        it; on any other failure, record by record."""
        batch, self.batch = list(self.batch.values()), {}
        while batch:
            now = self.clock()
            try:
                written = await outbox.committed(self.session, functools.partial(self.write, batch, now), now=now)
            except _RefusedError as refused:
                for i, reason in refused.reasons.items():
                    self.reject(batch[i].number, batch[i].key, reason)
                batch = [entry for i, entry in enumerate(batch) if i not in refused.reasons]
                continue
            except (errors.Unavailable, SQLAlchemyError):
                for entry in batch:
                    await self.one(entry)
                return
            for entry, saved in zip(batch, written.saved, strict=True):
                self.count(entry, saved.changes, saved.created, saved.location.id)
            return

    async def write(self, batch: list[_Entry], now: datetime) -> _Written:
        """The batch's Tariffs (each distinct one once), then its Locations, then their hashes; raises _RefusedError
        (before the commit, so that nothing stays) when the store refuses any record."""
        changes: list[Change] = []
        reasons: dict[int, str] = {}
        put: dict[bytes, str | None] = {}  # a distinct Tariff → why it was refused, or None
        for i, entry in enumerate(batch):
            for tariff in entry.converted.tariffs:
                encoded = msgspec.json.encode(tariff)
                if encoded not in put:
                    try:
                        saved_tariff = await tariffs.put_tariff(self.session, tariff, now=now, origin=Origin.SYNC)
                        changes += saved_tariff.changes
                        put[encoded] = None
                    except (errors.Conflict, errors.Invalid) as exc:
                        put[encoded] = str(exc)
                if put[encoded] is not None:
                    reasons.setdefault(i, put[encoded] or "")
        if reasons:
            raise _RefusedError(reasons)
        results = await store.save_locations(self.session, [entry.converted.value for entry in batch], now=now)
        saved: list[store.Saved] = []
        for i, result in enumerate(results):
            if isinstance(result, store.Saved):
                saved.append(result)
                changes += result.changes
            else:
                reasons[i] = str(result)
        if reasons:
            raise _RefusedError(reasons)
        # In the same transaction: a crash can lose neither a change nor a hash without the other.
        await sync_db.upsert(self.session, {entry.location_key: entry.digest for entry in batch}, now=now)
        return _Written(tuple(saved), tuple(changes))

    async def one(self, entry: _Entry) -> None:
        """A record alone, in a transaction of its own (after its batch failed as a whole)."""
        try:
            saved = await self.save(entry.converted)
        except (ConversionError, errors.Conflict, errors.Invalid) as exc:
            self.reject(entry.number, entry.key, str(exc))
            return
        self.count(entry, saved.changes, saved.created, saved.location.id)
        # After the save: a crash in between costs a conversion next run, never a skipped change.
        self.pending[saved.location.id.upper()] = entry.digest
        if len(self.pending) >= _HASH_BATCH:
            await self.record_hashes()

    def count(self, entry: _Entry, changes: tuple[Change, ...], created: bool, location_id: str) -> None:
        self.report.warn(location_id, entry.converted.warnings)
        if not changes:
            self.report.unchanged += 1
        elif created:
            self.report.created += 1
        else:
            self.report.updated += 1

    async def save(self, converted: Converted[ocpi.Location]) -> evsevo.Saved:
        now = self.clock()
        return await outbox.committed(
            self.session, lambda: evsevo.save_record(self.session, converted.value, converted.tariffs, now=now), now=now
        )

    def reject(self, number: int, key: str | None, reason: str) -> None:
        self.report.rejected += 1
        if len(self.report.reasons) < MAX_REASONS:
            where = f"record {number}" if key is None else f"record {number} (location {key})"
            self.report.reasons.append(f"{where}: {reason}")

    async def record_hashes(self) -> None:
        await sync_db.upsert(self.session, self.pending, now=self.clock())
        await self.session.commit()
        self.pending.clear()

    async def remove(self, key: str) -> None:
        """Every EVSE of a vanished location REMOVED (OCPI deletes nothing), through the store so that it is
        pushed; then the sync forgets the location, and a record of it that comes back later updates it."""
        now = self.clock()

        async def write() -> Written:
            await sync_db.forget(self.session, [key])
            stored = await locations_db.load(self.session, key)
            if stored is None:
                return Written(())
            location = stored.location
            evses = [msgspec.structs.replace(e, status=ocpi.Status.REMOVED) for e in location.evses or ()]
            removed = msgspec.structs.replace(location, evses=evses or None)
            return Written((await store.save_location(self.session, removed, now=now)).changes)

        await outbox.committed(self.session, write, now=now)
        self.report.removed += 1


@dataclass(frozen=True)
class _Entry:
    """A converted record waiting in the batch."""

    number: int
    key: str | None  # as the record said it, for the reasons
    digest: str
    converted: Converted[ocpi.Location]
    location_key: str  # the converted Location's id, upper-cased


@dataclass(frozen=True)
class _Written:
    saved: tuple[store.Saved, ...]
    changes: tuple[Change, ...]


class _RefusedError(Exception):
    """The store refused records of a batch (their index → why): the batch is rolled back and written again
    without them."""

    def __init__(self, reasons: dict[int, str]) -> None:
        super().__init__(f"{len(reasons)} records refused")
        self.reasons = reasons


@dataclass
class _Scan:
    """What pass 1 found in the source."""

    records: int = 0
    first: dict[str, int] = field(default_factory=dict)  # each location key named → the number of its first record
    # The records pass 2 must handle, numbered, in order: all but those of a known location with its stored hash
    # (None: more than _REMEMBERED, pass 2 reads the source again).
    remembered: list[tuple[int, object]] | None = field(default_factory=list)


def _scan(source: Source, known: dict[str, str], context: bytes) -> _Scan:
    """Pass 1 (in a thread): the location keys, the number of records, and the records to handle while few."""
    scan = _Scan()
    for number, raw in enumerate(source.records(), start=1):
        scan.records = number
        key = _location_key(raw)
        if key is not None and scan.first.setdefault(key, number) == number and key in known:
            try:
                if _digest(context, decode_location_record(raw)) == known[key]:
                    continue  # unchanged
            except ConversionError:
                pass  # a wrong shape: pass 2 rejects it
        if scan.remembered is not None:
            scan.remembered.append((number, raw))
            if len(scan.remembered) > _REMEMBERED:
                scan.remembered = None
    return scan


def _digest(context: bytes, record: EvseVOLocation) -> str:
    """The hash a record is recognised by: the decoded record (so members the converter ignores do not count) and
    what else decides its conversion."""
    return hashlib.sha256(context + msgspec.json.encode(record)).hexdigest()


def _location_key(raw: object) -> str | None:
    """The key (upper-cased id: ids are CiStrings) of the record's location, before it is converted."""
    said = said_location_id(raw)
    return None if said is None else said.upper()


def _context(mode: Mode, parties: list[tuple[str, str]], default_party: tuple[str, str]) -> bytes:
    """What besides the record decides its conversion, hashed with it: a change of mode or parties, or a new
    release of the hub (whose conversion may differ), makes every record be converted again once."""
    version = importlib.metadata.version("ocpi-hub")
    return f"{version}|{mode}|{sorted(parties)}|{default_party}\n".encode()
