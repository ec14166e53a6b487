"""The Locations store (ocpi_hub.stores.locations): what really changed, last_updated propagation (OCPI 2.2.1 §8.2.1,
docs/ocpi.md §1.12), EVSE removal as REMOVED, one owner per id, and the change records a push will consume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ocpi_hub import errors
from ocpi_hub.changes import Change, Method, ObjectKey
from ocpi_hub.db import locations as tables
from ocpi_hub.db import transaction
from ocpi_hub.db.engine import session_factory
from ocpi_hub.db.freshness import Freshness
from ocpi_hub.db.sender import READ_NOW
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.versions import ModuleID
from ocpi_hub.stores import locations as store

SOURCE = datetime(2024, 5, 14, 9, 21, 33, tzinfo=UTC)  # what a source says, long ago
T1 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)  # when we first learned of the location
T2 = T1 + timedelta(minutes=5)  # when we learned of a change


def connector(id: str = "1", **changes: Any) -> ocpi.Connector:
    values: dict[str, Any] = {
        "id": id,
        "standard": ocpi.ConnectorType.IEC_62196_T2,
        "format": ocpi.ConnectorFormat.SOCKET,
        "power_type": ocpi.PowerType.AC_3_PHASE,
        "max_voltage": 230,
        "max_amperage": 32,
        "last_updated": SOURCE,
    }
    return ocpi.Connector(**(values | changes))


def evse(uid: str, *connectors: ocpi.Connector, **changes: Any) -> ocpi.EVSE:
    values: dict[str, Any] = {
        "uid": uid,
        "status": ocpi.Status.AVAILABLE,
        "connectors": list(connectors) or [connector()],
        "last_updated": SOURCE,
    }
    return ocpi.EVSE(**(values | changes))


def location(*evses: ocpi.EVSE, **changes: Any) -> ocpi.Location:
    values: dict[str, Any] = {
        "country_code": "NL",
        "party_id": "OHB",
        "id": "LOC1",
        "publish": True,
        "address": "Croeselaan 38",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": ocpi.GeoLocation(latitude="52.089386", longitude="5.109612"),
        "evses": list(evses) or None,
        "time_zone": "Europe/Amsterdam",
        "last_updated": SOURCE,
    }
    return ocpi.Location(**(values | changes))


TWO_EVSES = location(evse("E1", connector("1"), connector("2")), evse("E2"))


async def save(sessions: async_sessionmaker[AsyncSession], loc: ocpi.Location, now: datetime) -> store.Saved:
    """A store call as its callers make it: committed (and retried on a concurrent writer) by db.transaction."""
    async with sessions() as session:
        return await transaction.committed(session, lambda: store.save_location(session, loc, now=now))


async def revision(sessions: async_sessionmaker[AsyncSession], location_id: str = "LOC1") -> int:
    async with sessions() as session:
        query = select(tables.LocationRow.revision).where(tables.LocationRow.key == location_id.upper())
        return (await session.execute(query)).scalar_one()


async def stored(sessions: async_sessionmaker[AsyncSession], location_id: str = "LOC1") -> ocpi.Location:
    async with sessions() as session:
        found = await tables.load(session, location_id)
    assert found is not None
    return found.location


def stamps(loc: ocpi.Location) -> dict[str, datetime]:
    """Every last_updated of the location, by path."""
    found = {"location": loc.last_updated}
    for e in loc.evses or ():
        found[e.uid] = e.last_updated
        found |= {f"{e.uid}/{c.id}": c.last_updated for c in e.connectors}
    return found


async def test_a_new_location_is_stamped_now_everywhere(sessions: async_sessionmaker[AsyncSession]) -> None:
    saved = await save(sessions, TWO_EVSES, T1)
    assert set(stamps(saved.location).values()) == {T1}
    assert saved.created
    assert saved.changes == (Change(ModuleID.LOCATIONS, ObjectKey("NL", "OHB", "LOC1"), Method.PUT),)
    assert await stored(sessions) == saved.location


async def test_a_source_time_later_than_now_is_kept_and_parents_cover_children(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    later = T1 + timedelta(hours=1)
    saved = await save(sessions, location(evse("E1", connector(last_updated=later)), evse("E2")), T1)
    assert stamps(saved.location) == {"location": later, "E1": later, "E1/1": later, "E2": T1, "E2/1": T1}


async def test_storing_the_same_location_again_changes_and_writes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await save(sessions, TWO_EVSES, T1)
    # Another source time and EVSEs in another order are no change either.
    reordered = location(*reversed(TWO_EVSES.evses or ()), last_updated=SOURCE + timedelta(days=1))
    again = await save(sessions, reordered, T2)
    assert again.changes == ()
    assert again.location == first.location
    assert await revision(sessions) == 1


async def test_a_changed_connector_bumps_its_evse_and_location_only(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save(sessions, TWO_EVSES, T1)
    changed = location(evse("E1", connector("1"), connector("2", max_amperage=16)), evse("E2"))
    saved = await save(sessions, changed, T2)
    assert stamps(saved.location) == {"location": T2, "E1": T2, "E1/1": T1, "E1/2": T2, "E2": T1, "E2/1": T1}
    [change] = saved.changes
    assert (change.method, change.key.evse_uid, change.key.connector_id) == (Method.PUT, "E1", "2")
    assert await stored(sessions) == saved.location
    assert await revision(sessions) == 2


async def test_a_status_alone_is_an_evse_status_change(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save(sessions, TWO_EVSES, T1)
    saved = await save(
        sessions, location(evse("E1", connector("1"), connector("2")), evse("E2", status="CHARGING")), T2
    )
    [change] = saved.changes
    assert (change.method, change.key.evse_uid, change.fields) == (Method.PATCH, "E2", ("status",))
    assert stamps(saved.location)["E2"] == stamps(saved.location)["location"] == T2


async def test_other_evse_fields_and_connector_lists_are_evse_updates(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await save(sessions, TWO_EVSES, T1)
    renamed = location(evse("E1", connector("1"), connector("2"), physical_reference="A1"), evse("E2", connector("9")))
    saved = await save(sessions, renamed, T2)
    assert [(c.method, c.key.evse_uid, c.key.connector_id) for c in saved.changes] == [
        (Method.PUT, "E1", ""),
        (Method.PUT, "E2", ""),  # connector 1 replaced by 9: the EVSE is put again
    ]
    e2 = saved.location.evses[1] if saved.location.evses else None
    assert e2 is not None
    assert [c.id for c in e2.connectors] == ["9"]
    assert stamps(saved.location)["E1/1"] == T1  # unchanged connectors keep their time


async def test_an_evse_missing_from_the_source_becomes_removed_and_stays(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await save(sessions, TWO_EVSES, T1)
    saved = await save(sessions, location(evse("E1", connector("1"), connector("2"))), T2)
    [change] = saved.changes
    assert (change.method, change.key.evse_uid, change.fields) == (Method.PATCH, "E2", ("status",))
    assert [(e.uid, e.status) for e in saved.location.evses or ()] == [("E1", "AVAILABLE"), ("E2", "REMOVED")]
    again = await save(sessions, location(evse("E1", connector("1"), connector("2"))), T2 + timedelta(hours=1))
    assert again.changes == ()


async def test_new_evses_are_appended_and_location_fields_are_named(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await save(sessions, TWO_EVSES, T1)
    grown = location(*(TWO_EVSES.evses or ()), evse("E3"), name="Utrecht Centraal", postal_code="3521 CB")
    saved = await save(sessions, grown, T2)
    assert [(c.method, c.key.evse_uid, c.fields) for c in saved.changes] == [
        (Method.PATCH, "", ("name", "postal_code")),
        (Method.PUT, "E3", ()),
    ]
    assert [e.uid for e in saved.location.evses or ()] == ["E1", "E2", "E3"]
    assert stamps(saved.location) == {
        "location": T2,
        "E1": T1,
        "E1/1": T1,
        "E1/2": T1,
        "E2": T1,
        "E2/1": T1,
        "E3": T2,
        "E3/1": T2,
    }


async def test_ids_are_case_insensitive_and_keep_their_first_spelling(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await save(sessions, location(evse("evse-a", connector("c1")), id="loc-a"), T1)
    saved = await save(sessions, location(evse("EVSE-A", connector("C1", max_voltage=400)), id="LOC-A"), T2)
    assert saved.location.id == "loc-a"
    [change] = saved.changes
    assert (change.key.id, change.key.evse_uid, change.key.connector_id) == ("loc-a", "evse-a", "c1")


async def test_a_location_id_belongs_to_one_party(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save(sessions, TWO_EVSES, T1)
    with pytest.raises(errors.Conflict, match="belongs to NL/OHB"):
        await save(sessions, location(country_code="DE", party_id="ALL", name="taken"), T2)
    assert (await stored(sessions)).name is None


async def test_last_updated_never_goes_back(sessions: async_sessionmaker[AsyncSession]) -> None:
    future = T2 + timedelta(days=1)
    await save(sessions, location(evse("E1", connector(last_updated=future))), T1)
    saved = await save(sessions, location(evse("E1", connector(max_amperage=16))), T2)
    assert set(stamps(saved.location).values()) == {future}


async def test_keep_status_keeps_stored_statuses_but_revives_removed_evses(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await save(sessions, location(evse("E1", status="CHARGING"), evse("E2", status="REMOVED")), T1)
    async with sessions() as session:
        unknown = location(evse("E1", status="UNKNOWN"), evse("E2", status="UNKNOWN"))
        saved = await store.save_location(session, unknown, now=T2, keep_status=True)
    assert [(e.uid, e.status) for e in saved.location.evses or ()] == [("E1", "CHARGING"), ("E2", "UNKNOWN")]
    assert [c.key.evse_uid for c in saved.changes] == ["E2"]


async def test_set_evse_status(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save(sessions, TWO_EVSES, T1)
    async with sessions() as session:
        saved = await store.set_evse_status(session, "loc1", "e2", ocpi.Status.CHARGING, now=T2)
        [change] = saved.changes
        assert (change.method, change.key.evse_uid, change.fields) == (Method.PATCH, "E2", ("status",))
        assert stamps(saved.location) == {"location": T2, "E1": T1, "E1/1": T1, "E1/2": T1, "E2": T2, "E2/1": T1}
        same = await store.set_evse_status(session, "LOC1", "E2", ocpi.Status.CHARGING, now=T2 + timedelta(hours=1))
        assert same.changes == ()
        with pytest.raises(errors.NotFound, match="no location nope"):
            await store.set_evse_status(session, "nope", "E2", ocpi.Status.CHARGING, now=T2)
        with pytest.raises(errors.NotFound, match="has no EVSE E9"):
            await store.set_evse_status(session, "LOC1", "E9", ocpi.Status.CHARGING, now=T2)
        await session.commit()
    assert await revision(sessions) == 2


@pytest.fixture
async def app_sessions(engine: AsyncEngine) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], list[str]]]:
    """Sessions as the app makes them on SQLite, with the event loop's reader (db/sender.py), and the reads made on
    that reader."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL reads through the session")
    freshness = Freshness(engine)
    freshness.open()
    reader, made = freshness.read_now, []
    assert reader is not None

    def read(statement: Any, parameters: Any) -> Any:
        made.append(str(parameters))
        return reader(statement, parameters)

    sessions = session_factory(engine)
    sessions.configure(info={READ_NOW: read})
    try:
        yield sessions, made
    finally:
        await freshness.close()


async def test_a_location_is_read_at_once_until_its_transaction_has_written(
    app_sessions: tuple[async_sessionmaker[AsyncSession], list[str]],
) -> None:
    """On the loop's own connection before the first write, which sees what the session would; after it, through
    the session, which alone sees what it wrote."""
    sessions, read_at_once = app_sessions
    await save(sessions, TWO_EVSES, T1)
    read_at_once.clear()
    async with sessions() as session:
        await store.set_evse_status(session, "LOC1", "E2", ocpi.Status.CHARGING, now=T2)
        assert read_at_once == ["{'key': 'LOC1'}"]
        both = await store.set_evse_status(session, "LOC1", "E1", ocpi.Status.CHARGING, now=T2)
        assert read_at_once == ["{'key': 'LOC1'}"]  # the second read saw the first change: no stale revision
        await session.commit()
    assert [e.status for e in both.location.evses or ()] == ["CHARGING", "CHARGING"]
    assert await revision(sessions) == 3


async def test_a_write_based_on_a_stale_read_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save(sessions, TWO_EVSES, T1)
    renamed = location(*(TWO_EVSES.evses or ()), name="renamed")
    bodies = tables.Bodies(v221=ocpi.render(renamed), v22=ocpi.render(renamed))
    async with sessions() as first, sessions() as second:
        read_first = await tables.load(first, "LOC1")
        read_second = await tables.load(second, "LOC1")
        assert read_first is not None
        assert read_second is not None
        await tables.update_location(first, read_first, renamed, bodies)
        await first.commit()
        with pytest.raises(transaction.ConcurrentWriteError):
            await tables.update_location(second, read_second, renamed, bodies)


async def test_concurrent_status_changes_of_one_location_are_both_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """None is lost: on PostgreSQL the second writer waits for the first one's row lock, and a writer that read
    before the other one wrote (SQLite) fails the revision check and retries on the new state."""
    await save(sessions, TWO_EVSES, T1)

    async def set_status(uid: str) -> None:
        async with sessions() as session:
            await transaction.committed(
                session, lambda: store.set_evse_status(session, "LOC1", uid, ocpi.Status.CHARGING, now=T2)
            )

    await asyncio.gather(set_status("E1"), set_status("E2"))
    assert [e.status for e in (await stored(sessions)).evses or ()] == ["CHARGING", "CHARGING"]
    assert await revision(sessions) == 3


async def test_concurrent_creations_get_dense_positions(sessions: async_sessionmaker[AsyncSession]) -> None:
    await asyncio.gather(*(save(sessions, location(id=f"L{n}"), T1) for n in range(6)))
    async with sessions() as session:
        rows = (await session.execute(select(tables.LocationRow.seq, tables.LocationRow.party_seq))).all()
    assert sorted(seq for seq, _ in rows) == sorted(party_seq for _, party_seq in rows) == [1, 2, 3, 4, 5, 6]


async def test_the_2_2_document_leaves_out_what_2_2_does_not_define(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A NEMA connector is 2.2.1-only: 2.2 peers see E1 without it and no E2 at all (EVSE.connectors is `+`)."""
    nema = connector("2", standard=ocpi.ConnectorType.NEMA_14_50, power_type=ocpi.PowerType.AC_2_PHASE_SPLIT)
    await save(sessions, location(evse("E1", connector("1"), nema), evse("E2", nema)), T1)
    async with sessions() as session:
        v22 = await tables.document(session, "LOC1", version="2.2")
        v221 = await tables.document(session, "LOC1", version="2.2.1")
    assert v22 is not None
    assert v221 is not None
    seen_by_2_2 = msgspec.json.decode(v22.body, type=ocpi.Location)
    assert [(e.uid, [c.id for c in e.connectors]) for e in seen_by_2_2.evses or ()] == [("E1", ["1"])]
    assert len(msgspec.json.decode(v221.body, type=ocpi.Location).evses or ()) == 2
