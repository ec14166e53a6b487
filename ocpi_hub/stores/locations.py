"""The Locations store: every write of a Location, EVSE or Connector, what really changed, and last_updated.

Rules (OCPI 2.2.1 §8.2, docs/ocpi.md §1.12, §5.1):
- Objects are compared ignoring last_updated; storing what is already stored changes and writes nothing.
- A changed object and its parents get last_updated = max(now, the source's value, the stored value): the time we
  learned of the change, so that an eMSP crawling with date_from = its last crawl never misses a change whose
  source timestamp is old, and never earlier than before. A parent also covers its children (§8.2.1: a changed
  Connector bumps its EVSE and Location, a changed EVSE its Location). Unchanged objects keep their last_updated.
- A new Location gets now everywhere, unless the source says later.
- EVSEs are never deleted: one missing from a new version of its Location is kept with status REMOVED.
- The stored order of EVSEs and Connectors is kept; new ones are appended. Reordering alone is no change.
- A location id belongs to one party for good.
- A Connector's tariff_ids name stored Tariffs of the Location's party (docs/cpo-modules.md §3.6).

Each write returns the changes as the smallest push that carries each (OCPI 2.2.1 §8.3, Receiver interface), and
writes nothing else: the caller queues them in the outbox and commits.

    new Location                       PUT Location
    Location fields changed            PATCH Location {those fields, last_updated}
    new EVSE, EVSE changed otherwise   PUT EVSE
    EVSE status alone changed          PATCH EVSE {status, last_updated}   (REMOVED included)
    Connector changed                  PUT Connector
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from ocpi_hub import errors
from ocpi_hub.changes import Change, Method, ObjectKey
from ocpi_hub.db import locations as db
from ocpi_hub.db import tariffs as tariffs_db
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import StatusCode, to_utc
from ocpi_hub.ocpi.versions import ModuleID, VersionNumber


class ChangeKind(enum.StrEnum):
    LOCATION_CREATED = "location_created"  # PUT Location
    LOCATION_UPDATED = "location_updated"  # the Location's own fields (not its EVSEs) changed: PATCH Location
    EVSE_CREATED = "evse_created"  # PUT EVSE
    EVSE_UPDATED = "evse_updated"  # fields other than status changed, or connectors added/removed: PUT EVSE
    EVSE_STATUS = "evse_status"  # only the status changed, REMOVED included: PATCH EVSE {status}
    CONNECTOR_UPDATED = "connector_updated"  # a Connector's fields changed: PUT Connector


_PATCHES = (ChangeKind.LOCATION_UPDATED, ChangeKind.EVSE_STATUS)


@dataclass(frozen=True)
class Saved:
    location: ocpi.Location  # as stored after the call
    changes: tuple[Change, ...]  # empty: nothing changed and nothing was written
    created: bool = False


# --- Public API --------------------------------------------------------------------------------------------------

_Item = TypeVar("_Item", ocpi.EVSE, ocpi.Connector)


def find(items: Iterable[_Item], wanted: str, id_of: Callable[[_Item], str]) -> _Item | None:
    """The EVSE or Connector whose id is `wanted`, compared case-insensitively (ids are CiStrings)."""
    return next((item for item in items if id_of(item).upper() == wanted.upper()), None)


async def save_location(
    session: AsyncSession, location: ocpi.Location, *, now: datetime, keep_status: bool = False
) -> Saved:
    """Store a new or new version of a Location (not committed; nothing written when unchanged).

    `keep_status`: the source does not know EVSE statuses (registerLocation): EVSEs already stored keep theirs.
    Raises errors.Conflict when the id is stored under another party, errors.Invalid when a Connector names a
    Tariff that is not stored for the party, db.transaction.ConcurrentWriteError when another writer was first.
    """
    stored = await db.load(session, location.id, for_update=True)
    if stored is None:
        await _check_tariffs(session, location)
        created = _stamp_new(location, to_utc(now))
        await db.insert_location(session, created, _bodies(created))
        await tariffs_db.set_connector_tariffs(session, created.id, _tariff_uses(created))
        return Saved(created, (_change(created, ChangeKind.LOCATION_CREATED),), created=True)
    old = stored.location
    if (old.country_code, old.party_id) != (location.country_code.upper(), location.party_id.upper()):
        raise errors.Conflict(
            f"location {old.id} belongs to {old.country_code}/{old.party_id}: a location id belongs to one party"
        )
    await _check_tariffs(session, location)
    merged, changes = _merge(old, location, now=to_utc(now), keep_status=keep_status)
    if changes:
        await db.update_location(session, stored, merged, _bodies(merged))
        if _tariff_uses(merged) != _tariff_uses(old):
            await tariffs_db.set_connector_tariffs(session, merged.id, _tariff_uses(merged))
    return Saved(merged, tuple(changes))


async def set_evse_status(
    session: AsyncSession, location_id: str, evse_uid: str, status: ocpi.Status, *, now: datetime
) -> Saved:
    """Change one EVSE's status (the most frequent event; not committed); the same status again changes nothing."""
    stored = await db.load(session, location_id, for_update=True)
    if stored is None:
        raise errors.NotFound(f"no location {location_id}", ocpi_status=StatusCode.UNKNOWN_LOCATION)
    old = stored.location
    evses = list(old.evses or ())
    i = next((i for i, e in enumerate(evses) if e.uid.upper() == evse_uid.upper()), None)
    if i is None:
        raise errors.NotFound(f"location {old.id} has no EVSE {evse_uid}", ocpi_status=StatusCode.UNKNOWN_LOCATION)
    if evses[i].status == status:
        return Saved(old, ())
    evses[i] = evse = _bumped(msgspec.structs.replace(evses[i], status=status), to_utc(now), evses[i])
    location = _bumped(msgspec.structs.replace(old, evses=evses), to_utc(now), old)
    await db.update_location(session, stored, location, _bodies(location))
    return Saved(location, (_change(location, ChangeKind.EVSE_STATUS, ("status",), evse.uid),))


Refusal = errors.Conflict | errors.Invalid


async def save_locations(
    session: AsyncSession, locations: Sequence[ocpi.Location], *, now: datetime, keep_status: bool = False
) -> list[Saved | Refusal]:
    """`save_location` for many Locations of distinct ids (the sync's batches, the bulk load), in the caller's
    transaction and a few statements whatever their number (docs/ocpi.md §11, "Writes in bulk"). Each is judged
    alone: one that `save_location` would refuse comes back as that error (errors.Conflict, errors.Invalid) and
    writes nothing; every other is written, stamped and described exactly as `save_location` does it. The answers
    are in the order of `locations`. Raises db.transaction.ConcurrentWriteError when another writer was first (run
    it all again)."""
    keys = [location.id.upper() for location in locations]
    if len(set(keys)) != len(keys):
        raise ValueError("save_locations: the ids must be distinct")
    stored = await db.load_many(session, keys, for_update=True)
    known = await _known_tariffs(session, locations)
    results: list[Saved | Refusal] = []
    new: list[tuple[ocpi.Location, db.Bodies]] = []
    changed: list[tuple[db.Stored, ocpi.Location, db.Bodies]] = []
    moment = to_utc(now)
    for location, key in zip(locations, keys, strict=True):
        try:
            names_known = known[location.country_code, location.party_id]
            before = stored.get(key)
            if before is None:
                _check_known(location, names_known)
                created = _stamp_new(location, moment)
                new.append((created, _bodies(created)))
                results.append(Saved(created, (_change(created, ChangeKind.LOCATION_CREATED),), created=True))
                continue
            old = before.location
            if (old.country_code, old.party_id) != (location.country_code.upper(), location.party_id.upper()):
                raise errors.Conflict(
                    f"location {old.id} belongs to {old.country_code}/{old.party_id}: a location id belongs to one "
                    "party"
                )
            _check_known(location, names_known)
            merged, changes = _merge(old, location, now=moment, keep_status=keep_status)
            if changes:
                changed.append((before, merged, _bodies(merged)))
            results.append(Saved(merged, tuple(changes)))
        except (errors.Conflict, errors.Invalid) as refused:
            results.append(refused)
    seqs = await db.insert_locations(session, new)
    await db.update_locations(session, changed)
    uses = {seq: _tariff_uses(created) for (created, _), seq in zip(new, seqs, strict=True) if _tariff_uses(created)}
    for before, merged, _ in changed:
        if _tariff_uses(merged) != _tariff_uses(before.location):
            uses[before.seq] = _tariff_uses(merged)
    await tariffs_db.set_connector_tariffs_of(session, uses)
    return results


# --- Tariffs named by Connectors ---------------------------------------------------------------------------------


def _tariff_uses(location: ocpi.Location) -> list[tuple[str, str, str]]:
    return [
        (evse.uid, connector.id, tariff_id)
        for evse in location.evses or ()
        for connector in evse.connectors
        for tariff_id in connector.tariff_ids or ()
    ]


async def _check_tariffs(session: AsyncSession, location: ocpi.Location) -> None:
    """What the source names must exist (what a REMOVED EVSE named before is not asked again)."""
    party = (location.country_code, location.party_id)
    known = await tariffs_db.keys_of_party(session, party, [t for _, _, t in _tariff_uses(location)])
    _check_known(location, known)


async def _known_tariffs(session: AsyncSession, locations: Sequence[ocpi.Location]) -> dict[tuple[str, str], set[str]]:
    """Per party, which of the Tariffs these Locations name are stored (one query per party)."""
    named: dict[tuple[str, str], list[str]] = {}
    for location in locations:
        party = (location.country_code, location.party_id)
        named.setdefault(party, []).extend(t for _, _, t in _tariff_uses(location))
    return {party: await tariffs_db.keys_of_party(session, party, ids) for party, ids in named.items()}


def _check_known(location: ocpi.Location, known: set[str]) -> None:
    party = (location.country_code, location.party_id)
    for evse_uid, connector_id, tariff_id in _tariff_uses(location):
        if tariff_id.upper() not in known:
            raise errors.Invalid(
                f"EVSE {evse_uid} connector {connector_id}: tariff_ids names {tariff_id!r}, which is not a stored "
                f"Tariff of {party[0]}/{party[1]} (PUT it to /api/v0/tariffs/{tariff_id} first)"
            )


def _bodies(location: ocpi.Location) -> db.Bodies:
    return db.Bodies(
        v221=ocpi.render(location),
        # 2.2 peers never see what 2.2 does not define (for_version: such connectors, and EVSEs left without any).
        v22=ocpi.render(ocpi.for_version(location, VersionNumber.V2_2)),
    )


# --- Comparison and last_updated ---------------------------------------------------------------------------------

_Obj = TypeVar("_Obj", ocpi.Location, ocpi.EVSE, ocpi.Connector)


@dataclass(frozen=True)
class _Delta:
    """A change below the Location, before the Location itself is final."""

    kind: ChangeKind
    value: ocpi.EVSE | ocpi.Connector
    fields: tuple[str, ...]
    evse_uid: str
    connector_id: str | None = None


def _bumped(obj: _Obj, now: datetime, old: _Obj | None = None, children: Sequence[datetime] = ()) -> _Obj:
    """`obj` changed: it is stamped max(now, its source value, its stored value, its children's)."""
    stamps = [now, to_utc(obj.last_updated), *children]
    if old is not None:
        stamps.append(old.last_updated)
    return msgspec.structs.replace(obj, last_updated=max(stamps))


def _changed_fields(old: msgspec.Struct, new: msgspec.Struct, ignore: frozenset[str]) -> tuple[str, ...]:
    return tuple(
        name for name in old.__struct_fields__ if name not in ignore and getattr(old, name) != getattr(new, name)
    )


_LOCATION_OWN = frozenset({"evses", "last_updated"})
_EVSE_OWN = frozenset({"connectors", "last_updated"})
_CONNECTOR_OWN = frozenset({"last_updated"})


def _stamp_new(location: ocpi.Location, now: datetime) -> ocpi.Location:
    # As _bumped with children, in one replace per object: a bulk load stamps every object of every Location.
    evses = [_stamp_new_evse(e, now) for e in location.evses or ()]
    stamp = max(now, to_utc(location.last_updated), *(e.last_updated for e in evses))
    return msgspec.structs.replace(location, evses=evses or None, last_updated=stamp)


def _stamp_new_evse(evse: ocpi.EVSE, now: datetime) -> ocpi.EVSE:
    connectors = [msgspec.structs.replace(c, last_updated=max(now, to_utc(c.last_updated))) for c in evse.connectors]
    stamp = max(now, to_utc(evse.last_updated), *(c.last_updated for c in connectors))
    return msgspec.structs.replace(evse, connectors=connectors, last_updated=stamp)


def _by_key(items: Sequence[_Item], key: Callable[[_Item], str]) -> dict[str, _Item]:
    """Items by their id upper-cased (ids are CiStrings), in their order."""
    return {key(item).upper(): item for item in items}


def _merge(
    old: ocpi.Location, new: ocpi.Location, *, now: datetime, keep_status: bool
) -> tuple[ocpi.Location, list[Change]]:
    """The stored Location `old` brought to the source's `new`, and what changed; `old` itself when nothing did."""
    new = msgspec.structs.replace(new, id=old.id, country_code=old.country_code, party_id=old.party_id)
    incoming = _by_key(new.evses or (), lambda e: e.uid)
    evses: list[ocpi.EVSE] = []
    deltas: list[_Delta] = []
    for before in old.evses or ():
        after = incoming.pop(before.uid.upper(), None)
        if after is None:
            # Gone from the source: an EVSE is never deleted, it becomes REMOVED (§8.1, docs/ocpi.md §5.1).
            after = msgspec.structs.replace(before, status=ocpi.Status.REMOVED)
        elif keep_status and before.status != ocpi.Status.REMOVED:
            after = msgspec.structs.replace(after, status=before.status)
        evse, evse_deltas = _merge_evse(before, msgspec.structs.replace(after, uid=before.uid), now)
        evses.append(evse)
        deltas += evse_deltas
    for after in incoming.values():
        evse = _stamp_new_evse(after, now)
        evses.append(evse)
        deltas.append(_Delta(ChangeKind.EVSE_CREATED, evse, (), evse.uid))

    own = _changed_fields(old, new, _LOCATION_OWN)
    if not own and not deltas:
        return old, []
    stamps = [e.last_updated for e in evses]
    location = _bumped(msgspec.structs.replace(new, evses=evses or None), now, old, stamps)
    changes = [_change(location, ChangeKind.LOCATION_UPDATED, own)] if own else []
    changes += [_change(location, d.kind, d.fields, d.evse_uid, d.connector_id) for d in deltas]
    return location, changes


def _merge_evse(old: ocpi.EVSE, new: ocpi.EVSE, now: datetime) -> tuple[ocpi.EVSE, list[_Delta]]:
    """The stored EVSE `old` brought to `new`: one EVSE_UPDATED when more than its status and its connectors'
    fields changed, else EVSE_STATUS and CONNECTOR_UPDATED for what did."""
    incoming = _by_key(new.connectors, lambda c: c.id)
    connectors: list[ocpi.Connector] = []
    updated: list[tuple[ocpi.Connector, tuple[str, ...]]] = []
    for before in old.connectors:
        after = incoming.pop(before.id.upper(), None)
        if after is None:
            continue  # OCPI has no connector status: a removed connector leaves the EVSE's list
        after = msgspec.structs.replace(after, id=before.id)
        fields = _changed_fields(before, after, _CONNECTOR_OWN)
        if fields:
            after = _bumped(after, now, before)
            updated.append((after, fields))
        connectors.append(after if fields else before)
    added = [_bumped(c, now) for c in incoming.values()]
    membership_changed = bool(added) or len(connectors) != len(old.connectors)
    connectors += added

    own = _changed_fields(old, new, _EVSE_OWN)
    if not own and not updated and not membership_changed:
        return old, []
    stamps = [c.last_updated for c in connectors]
    evse = _bumped(msgspec.structs.replace(new, connectors=connectors), now, old, stamps)
    if membership_changed or set(own) - {"status"}:
        fields = own + (("connectors",) if membership_changed or updated else ())
        return evse, [_Delta(ChangeKind.EVSE_UPDATED, evse, fields, evse.uid)]
    status = [_Delta(ChangeKind.EVSE_STATUS, evse, own, evse.uid)] if own else []
    return evse, [*status, *(_Delta(ChangeKind.CONNECTOR_UPDATED, c, f, evse.uid, c.id) for c, f in updated)]


def _change(
    location: ocpi.Location,
    kind: ChangeKind,
    fields: tuple[str, ...] = (),
    evse_uid: str | None = None,
    connector_id: str | None = None,
) -> Change:
    key = ObjectKey(location.country_code, location.party_id, location.id, evse_uid or "", connector_id or "")
    method = Method.PATCH if kind in _PATCHES else Method.PUT
    return Change(ModuleID.LOCATIONS, key, method, fields if method is Method.PATCH else ())
