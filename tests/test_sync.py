"""The location sync (README: "The location sync") through the real database: sources, counts, hashes, removals and
their limit, the command line and the schedule of `ocpi-hub serve`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import cli
from ocpi_hub.db import locations as locations_db
from ocpi_hub.db.deliveries import Delivery
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.locations import LocationDocument, LocationRow
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.db.sync_runs import SyncRun, Trigger
from ocpi_hub.db.sync_sources import SyncSource
from ocpi_hub.db.tariffs import Origin, TariffRow
from ocpi_hub.evsevo.convert import decode_location_record, location_to_ocpi
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi import tariffs as ocpi_tariffs
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Party, Settings, SettingsError, load_settings
from ocpi_hub.stores import locations as store
from ocpi_hub.stores import tariffs as tariffs_store
from ocpi_hub.sync import history
from ocpi_hub.sync.run import SyncReport, sync
from tests.conftest import HubFactory
from tests.servers import serve

Sessions = async_sessionmaker[AsyncSession]
OUR_PARTY = Party("NL", "OHB", "Test CPO")


def evse(location: int, number: int, status: str = "Available", **changes: Any) -> dict[str, Any]:
    return {
        "uid": location * 10 + number,
        "evseId": f"NL*OHB*E{location}*{number}",
        "status": status,
        "authorizationMethods": ["RFIDToken"],
        "updated": "2024-01-01T00:00:00Z",
        "connectors": [
            {
                "uid": 1,
                "connectorType": "Type2",
                "electricalProperties": {
                    "powerType": "AC3Phase",
                    "voltage": 230,
                    "amperage": 32,
                    "maxElectricPower": 22,
                },
                "fixedCable": False,
            }
        ],
        **changes,
    }


def record(uid: int, *, status: str = "Available", **changes: Any) -> dict[str, Any]:
    """A location record of the EvseVO family with two EVSEs, both in `status`."""
    return {
        "uid": uid,
        "externalId": f"EXT-{uid}",
        "coordinates": {"latitude": 52.37, "longitude": 4.89},
        "operatorName": "TheNewMotion",
        "address": {"streetAndNumber": "Damrak 1", "postalCode": "1012 LG", "city": "Amsterdam", "country": "NLD"},
        "updated": "2024-01-01T00:00:00Z",
        "evses": [evse(uid, 1, status), evse(uid, 2, status)],
        **changes,
    }


def write_json(path: Path, records: list[Any]) -> str:
    path.write_text(json.dumps(records, indent=2))
    return str(path)


def write_ndjson(path: Path, records: list[Any]) -> str:
    path.write_text("\n\n".join(json.dumps(r) for r in records) + "\n")
    return str(path)


def ticking_clock() -> Callable[[], datetime]:
    """A second later at every call: any write would show in last_updated or updated_at."""
    moments: Iterator[datetime] = (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(10**9))
    return lambda: next(moments)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, parties=(OUR_PARTY,), http_timeout=2.0)


@pytest.fixture
def run(sessions: Sessions, settings: Settings) -> Callable[..., Awaitable[SyncReport]]:
    clock = ticking_clock()

    async def run_sync(source: str, **overrides: Any) -> SyncReport:
        changed = Settings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__}, **overrides})
        return await sync(sessions, changed, source, clock=clock)

    return run_sync


Run = Callable[..., Awaitable[SyncReport]]


def counts(report: SyncReport) -> dict[str, int]:
    fields = ("records", "created", "updated", "unchanged", "rejected", "removed")
    return {name: getattr(report, name) for name in fields}


async def snapshot(sessions: Sessions) -> list[list[tuple[Any, ...]]]:
    """Everything a sync may write: the location rows and documents, and the sync's own hashes."""
    async with sessions() as session:
        queries = [
            select(LocationRow.key, LocationRow.last_updated, LocationRow.revision).order_by(LocationRow.seq),
            select(LocationDocument.seq, LocationDocument.body_221).order_by(LocationDocument.seq),
            select(SyncSource.key, SyncSource.source_hash, SyncSource.updated_at).order_by(SyncSource.key),
        ]
        return [[tuple(row) for row in (await session.execute(query)).all()] for query in queries]


async def stored(sessions: Sessions, location_id: str) -> ocpi.Location | None:
    async with sessions() as session:
        found = await locations_db.load(session, location_id)
    return None if found is None else found.location


async def statuses(sessions: Sessions, location_id: str) -> list[ocpi.Status]:
    location = await stored(sessions, location_id)
    assert location is not None
    return [e.status for e in location.evses or ()]


# --- Sources -----------------------------------------------------------------------------------------------------


async def test_a_json_array_is_synced_and_an_identical_second_run_writes_nothing(
    tmp_path: Path, run: Run, sessions: Sessions
) -> None:
    source = write_json(tmp_path / "export.json", [record(1), record(2), record(3)])
    first = await run(source)
    assert counts(first) == {"records": 3, "created": 3, "updated": 0, "unchanged": 0, "rejected": 0, "removed": 0}
    assert first.stopped is None
    assert await statuses(sessions, "1") == [ocpi.Status.AVAILABLE, ocpi.Status.AVAILABLE]
    before = await snapshot(sessions)
    assert len(before[2]) == 3

    second = await run(source)
    assert counts(second) == {"records": 3, "created": 0, "updated": 0, "unchanged": 3, "rejected": 0, "removed": 0}
    assert await snapshot(sessions) == before


async def test_ndjson_is_read_line_by_line_and_hashes_ignore_format_key_order_and_unknown_members(
    tmp_path: Path, run: Run, sessions: Sessions
) -> None:
    records = [record(1), record(2)]
    assert counts(await run(write_ndjson(tmp_path / "export.ndjson", records)))["created"] == 2
    before = await snapshot(sessions)

    reordered = [{"roamingSource": "new", **dict(reversed(r.items()))} for r in records]
    (tmp_path / "export.json").write_text("\ufeff \n" + json.dumps(reordered))  # a BOM and blanks before the array
    report = await run(str(tmp_path / "export.json"))
    assert (report.unchanged, report.stopped) == (2, None)
    assert await snapshot(sessions) == before


async def test_a_directory_is_read_file_by_file_in_name_order(tmp_path: Path, run: Run) -> None:
    write_json(tmp_path / "a.json", [record(1)])
    write_ndjson(tmp_path / "b.ndjson", [record(2), record(1, status="Occupied")])
    write_ndjson(tmp_path / "c.jsonl", [record(3)])
    (tmp_path / "notes.txt").write_text("not a source file")
    report = await run(str(tmp_path))
    assert counts(report) == {"records": 4, "created": 3, "updated": 0, "unchanged": 0, "rejected": 1, "removed": 0}
    assert report.reasons == ["record 3 (location 1): repeats the location id of record 1"]


def exporter(body: bytes) -> Callable[[str], Litestar]:
    @get("/export", media_type="application/json")
    async def export() -> bytes:
        return body

    return lambda _base_url: Litestar([export])


async def test_an_http_source_is_downloaded_and_synced(run: Run, sessions: Sessions) -> None:
    async with serve(exporter(json.dumps([record(7)]).encode())) as base_url:
        report = await run(f"{base_url}/export")
    assert (report.created, report.stopped) == (1, None)
    assert await stored(sessions, "7") is not None


async def test_an_http_error_stops_the_run_naming_the_url_and_the_status(run: Run, sessions: Sessions) -> None:
    async with serve(exporter(b"[]")) as base_url:
        report = await run(f"{base_url}/gone")
    assert report.stopped == f"{base_url}/gone: HTTP 404 (nothing was changed)"
    assert await snapshot(sessions) == [[], [], []]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        # The first records are fine, but the export was cut off: nothing of it may be written.
        (json.dumps([record(1), record(2)])[:-200], "not a JSON array of records (parse error: premature EOF)"),
        (json.dumps(record(1)) + "\n" + json.dumps(record(2))[:-10] + "\n", "line 2 is not JSON"),
    ],
)
async def test_a_source_that_cannot_be_read_to_its_end_changes_nothing(
    tmp_path: Path, run: Run, sessions: Sessions, content: str, problem: str
) -> None:
    (tmp_path / "export.json").write_text(content)
    report = await run(str(tmp_path / "export.json"))
    assert report.stopped is not None
    assert report.stopped.startswith(f"{tmp_path / 'export.json'}: {problem}")
    assert counts(report)["created"] == 0
    assert await snapshot(sessions) == [[], [], []]


async def test_a_missing_source_stops_the_run(tmp_path: Path, run: Run) -> None:
    report = await run(str(tmp_path / "nowhere.json"))
    assert report.stopped == f"{tmp_path / 'nowhere.json'}: no such file or directory (nothing was changed)"


# --- Outcomes ----------------------------------------------------------------------------------------------------


async def test_a_run_counts_created_updated_unchanged_rejected_and_removed(
    tmp_path: Path, run: Run, sessions: Sessions
) -> None:
    source = tmp_path / "export.json"
    await run(write_json(source, [record(i) for i in range(1, 21)]))
    unsupported = {**evse(3, 1), "connectors": [{**evse(3, 1)["connectors"][0], "connectorType": "Avcon"}]}
    changed = [
        record(1, status="Occupied"),
        record(3, evses=[unsupported]),
        *(record(i) for i in range(4, 20)),
        record(21),
        "not an object",
        record(2),
    ]
    report = await run(write_json(source, changed))
    assert counts(report) == {"records": 21, "created": 1, "updated": 1, "unchanged": 17, "rejected": 2, "removed": 1}
    assert report.reasons == [
        "record 2 (location 3): $.evses[0].connectors[0].connectorType: 'Avcon' has no OCPI 2.2.1 ConnectorType",
        "record 20: Expected `object`, got `str`",
    ]
    assert report.stopped is None
    assert await statuses(sessions, "1") == [ocpi.Status.CHARGING, ocpi.Status.CHARGING]
    assert await statuses(sessions, "3") == [ocpi.Status.AVAILABLE, ocpi.Status.AVAILABLE]  # kept as it was
    assert await statuses(sessions, "20") == [ocpi.Status.REMOVED, ocpi.Status.REMOVED]

    # The rejected record kept its old hash, so it is tried again; the rest is unchanged.
    again = await run(str(source))
    assert counts(again) == {"records": 21, "created": 0, "updated": 0, "unchanged": 19, "rejected": 2, "removed": 0}


async def test_a_vanished_location_is_removed_and_comes_back_as_an_update(
    tmp_path: Path, run: Run, sessions: Sessions
) -> None:
    source = tmp_path / "export.json"
    await run(write_json(source, [record(1), record(2)]))
    report = await run(write_json(source, [record(1)]), sync_max_remove_share=0.5)
    assert (report.removed, report.stopped) == (1, None)
    assert await statuses(sessions, "2") == [ocpi.Status.REMOVED, ocpi.Status.REMOVED]
    assert [key for key, _, _ in (await snapshot(sessions))[2]] == ["1"]  # no longer managed

    back = await run(write_json(source, [record(1), record(2)]))
    assert (back.updated, back.unchanged, back.removed) == (1, 1, 0)
    assert await statuses(sessions, "2") == [ocpi.Status.AVAILABLE, ocpi.Status.AVAILABLE]


async def test_a_run_that_would_remove_too_much_stops_and_changes_nothing(
    tmp_path: Path, run: Run, sessions: Sessions
) -> None:
    source = tmp_path / "export.json"
    await run(write_json(source, [record(i) for i in range(1, 11)]))
    before = await snapshot(sessions)
    truncated = [record(1, status="Occupied"), *(record(i) for i in range(2, 9)), record(11)]
    report = await run(write_json(source, truncated))
    assert report.stopped == (
        "2 of the 10 locations this sync manages are missing from the source, more than the allowed share of 10%: "
        "nothing was changed (a truncated export?)"
    )
    assert counts(report) == {"records": 9, "created": 0, "updated": 0, "unchanged": 0, "rejected": 0, "removed": 0}
    assert await snapshot(sessions) == before  # not the update of 1 and not the creation of 11 either

    # One missing of ten is within the share.
    assert (await run(write_json(source, [record(i) for i in range(1, 10)]))).removed == 1


async def test_locations_the_sync_did_not_create_are_never_removed(
    tmp_path: Path, run: Run, sessions: Sessions, settings: Settings
) -> None:
    converted = location_to_ocpi(
        decode_location_record(record(99)),
        location_id=None,
        parties=[OUR_PARTY.key],
        default_party=OUR_PARTY.key,
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )
    async with sessions() as session:  # as the internal API would
        await store.save_location(session, converted.value, now=datetime(2025, 1, 1, tzinfo=UTC))
        await session.commit()
    await run(write_json(tmp_path / "export.json", [record(1)]))
    report = await run(write_json(tmp_path / "export.json", [record(2)]), sync_max_remove_share=1.0)
    assert (report.created, report.removed) == (1, 1)
    assert await statuses(sessions, "1") == [ocpi.Status.REMOVED, ocpi.Status.REMOVED]
    assert await statuses(sessions, "99") == [ocpi.Status.AVAILABLE, ocpi.Status.AVAILABLE]


async def test_a_record_of_a_location_owned_by_another_party_is_rejected(tmp_path: Path, run: Run) -> None:
    other = Party("DE", "ALL", "Allego")
    await run(write_json(tmp_path / "export.json", [record(1)]))
    moved = record(1, operatorId="DE-ALL", evses=[evse(1, 1, evseId="DE*ALL*E1*1")])
    report = await run(write_json(tmp_path / "export.json", [moved]), parties=(OUR_PARTY, other))
    assert report.rejected == 1
    assert report.reasons == ["record 1 (location 1): location 1 belongs to NL/OHB: a location id belongs to one party"]


async def test_lenient_mode_drops_what_strict_mode_rejects(tmp_path: Path, run: Run, sessions: Sessions) -> None:
    avcon = {**evse(1, 2)["connectors"][0], "uid": 2, "connectorType": "Avcon"}
    mixed = record(1, evses=[evse(1, 1, connectors=[*evse(1, 1)["connectors"], avcon])])
    source = write_json(tmp_path / "export.json", [mixed])
    assert (await run(source)).rejected == 1
    assert (await run(source, sync_lenient=True)).created == 1
    location = await stored(sessions, "1")
    assert location is not None
    assert [c.id for e in location.evses or () for c in e.connectors] == ["1"]


async def test_progress_is_reported_per_record(tmp_path: Path, sessions: Sessions, settings: Settings) -> None:
    calls: list[tuple[int, int]] = []
    source = write_json(tmp_path / "export.json", [record(1), record(2)])
    await sync(
        sessions, settings, source, clock=ticking_clock(), progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 2), (2, 2)]


# --- Settings, command line and schedule -------------------------------------------------------------------------


def test_sync_settings_have_defaults_and_name_the_variable_when_invalid() -> None:
    defaults = load_settings({})
    assert (defaults.sync_source, defaults.sync_interval, defaults.sync_max_remove_share) == (None, 300.0, 0.1)
    assert defaults.sync_lenient is False
    given = load_settings(
        {
            "OCPI_HUB_SYNC_SOURCE": "/data/export.json",
            "OCPI_HUB_SYNC_INTERVAL": "60",
            "OCPI_HUB_SYNC_MAX_REMOVE_SHARE": "0",
            "OCPI_HUB_SYNC_LENIENT": "true",
        }
    )
    assert (given.sync_source, given.sync_interval, given.sync_max_remove_share, given.sync_lenient) == (
        "/data/export.json",
        60.0,
        0.0,
        True,
    )
    for name, value in [("SYNC_MAX_REMOVE_SHARE", "1.5"), ("SYNC_MAX_REMOVE_SHARE", "nan"), ("SYNC_INTERVAL", "0")]:
        with pytest.raises(SettingsError, match=f"^OCPI_HUB_{name}: "):
            load_settings({f"OCPI_HUB_{name}": value})


def test_the_sync_command_prints_a_summary_and_fails_when_the_run_stops(
    tmp_path: Path,
    database_url: str,
    sessions: Sessions,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OCPI_HUB_DATABASE_URL", database_url)
    source = write_json(tmp_path / "export.json", [record(1), {"uid": 2}])
    assert cli.main(["sync", "--source", source]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"sync of {source}: 2 records: 1 created, 0 updated, 0 unchanged, 1 rejected, 0 removed",
        "rejected: record 2 (location 2): $.address: None is required",
        f"database: {cli.shown_database(database_url)}",
    ]
    assert "2/2" in err  # the progress bar

    monkeypatch.setenv("OCPI_HUB_SYNC_SOURCE", str(tmp_path / "empty.json"))
    (tmp_path / "empty.json").write_text("[]")
    assert cli.main(["sync"]) == 1  # the only managed location would vanish
    out, _ = capsys.readouterr()
    assert out.splitlines()[1].startswith("stopped: 1 of the 1 locations this sync manages are missing")

    async def still_there() -> bool:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                found = await locations_db.load(session, "1")
        finally:
            await engine.dispose()
        return found is not None and all(e.status is ocpi.Status.AVAILABLE for e in found.location.evses or ())

    assert asyncio.run(still_there())


def test_the_sync_command_needs_a_source(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OCPI_HUB_SYNC_SOURCE", raising=False)
    assert cli.main(["sync"]) == 2
    assert capsys.readouterr().err == "ocpi-hub sync: give --source or set OCPI_HUB_SYNC_SOURCE\n"


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    """Wait until `check` holds, for at most `seconds`: the schedule runs in the hub's background."""
    async with asyncio.timeout(seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def test_serve_syncs_at_start_and_then_every_interval_even_after_a_failed_run(
    tmp_path: Path, hub_factory: HubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Litestar replaces the root logger's handlers when the hub starts, caplog's among them.
    logger = logging.getLogger("ocpi_hub.sync")
    logger.addHandler(caplog.handler)
    try:
        await check_the_schedule(tmp_path / "export.json", hub_factory, caplog)
    finally:
        logger.removeHandler(caplog.handler)


async def check_the_schedule(source: Path, hub_factory: HubFactory, caplog: pytest.LogCaptureFixture) -> None:
    hub = await hub_factory(sync_source=str(source), sync_interval=0.2)
    assert (await hub.api("POST", "/register", json={"token": "emsp", "status": "REGISTERED"})).status_code == 201

    async def failed_run_logged() -> bool:
        return any("no such file or directory" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)

    await eventually(failed_run_logged)

    def location_status(expected: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            response = await hub.ocpi("GET", "/ocpi/2.2.1/locations/5", "emsp")
            data = response.json().get("data") if response.status_code == 200 else None
            return data is not None and [e["status"] for e in data["evses"]] == [expected, expected]

        return check

    write_json(source, [record(5)])
    await eventually(location_status("AVAILABLE"))
    write_json(source, [record(5, status="Unavailable")])
    await eventually(location_status("INOPERATIVE"))


def priced(uid: int, **prices: Any) -> dict[str, Any]:
    """A location record whose connectors carry these prices (TariffVO)."""
    found = record(uid)
    for e in found["evses"]:
        for c in e["connectors"]:
            c["tariff"] = {"currency": "EUR", **prices}
    return found


async def tariff_ids(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        return list((await session.execute(select(TariffRow.id).order_by(TariffRow.seq))).scalars())


async def test_the_sync_keeps_the_tariffs_its_connectors_name_and_deletes_the_rest(
    tmp_path: Path, run: Callable[..., Awaitable[SyncReport]], sessions: Sessions
) -> None:
    source = tmp_path / "export.json"
    await run(write_json(source, [priced(1, perKWh=0.30), priced(2, perKWh=0.30)]))
    [shared] = await tariff_ids(sessions)  # the same prices: one Tariff
    async with sessions() as session:  # one the operator put: the sync never deletes it
        operator = msgspec.convert(
            {
                "country_code": "NL",
                "party_id": "OHB",
                "id": "OPERATOR-1",
                "currency": "EUR",
                "elements": [{"price_components": [{"type": "FLAT", "price": 0, "step_size": 1}]}],
                "last_updated": "2025-01-01T00:00:00Z",
            },
            ocpi_tariffs.Tariff,
        )
        await tariffs_store.put_tariff(session, operator, now=datetime(2025, 1, 1, tzinfo=UTC), origin=Origin.API)
        await session.commit()

    report = await run(write_json(source, [priced(1, perKWh=0.30), priced(2, perKWh=0.40)]))
    assert report.updated == 1
    assert len(await tariff_ids(sessions)) == 3  # both prices are named
    await run(write_json(source, [priced(1, perKWh=0.40), priced(2, perKWh=0.40)]))
    [left_operator, left_sync] = await tariff_ids(sessions)
    assert left_operator == "OPERATOR-1"
    assert left_sync != shared  # 0.30 is no longer named by any connector: deleted by the sync
    assert (await stored(sessions, "1")) is not None


# --- The runs' history and warnings (docs/operations.md §8.2, §8.3) ---------------------------------------------


def with_avcon(uid: int) -> dict[str, Any]:
    """A record with a connector OCPI cannot show: rejected in strict mode, one warning in lenient mode."""
    avcon = {**evse(uid, 2)["connectors"][0], "uid": 2, "connectorType": "Avcon"}
    return record(uid, evses=[evse(uid, 1, connectors=[*evse(uid, 1)["connectors"], avcon])])


async def recorded_runs(sessions: Sessions) -> list[SyncRun]:
    async with sessions() as session:
        return list((await session.execute(select(SyncRun).order_by(SyncRun.id))).scalars())


def test_the_sync_command_prints_the_first_warnings_and_records_its_run(
    tmp_path: Path,
    database_url: str,
    sessions: Sessions,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OCPI_HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("OCPI_HUB_SYNC_LENIENT", "true")
    source = write_json(tmp_path / "export.json", [with_avcon(n) for n in range(1, 26)])
    assert cli.main(["sync", "--source", source]) == 0
    lines = capsys.readouterr().out.splitlines()
    warning = "$.evses[0].connectors[1].connectorType: 'Avcon' has no OCPI 2.2.1 ConnectorType; connector left out"
    assert lines[1:] == [
        *(f"warning: location {n}: {warning}" for n in range(1, 21)),
        "... and 5 more warnings",
        f"database: {cli.shown_database(database_url)}",
    ]

    [run] = asyncio.run(_runs(database_url))
    assert (run.trigger, run.source, run.outcome, run.created, run.warnings) == ("command", source, "completed", 25, 25)
    assert run.messages["warnings"] == [f"location {n}: {warning}" for n in range(1, 21)]
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at


async def _runs(database_url: str) -> list[SyncRun]:
    """The runs recorded, read on an engine of this event loop (the command ran its own)."""
    engine = create_engine(database_url)
    try:
        return await recorded_runs(session_factory(engine))
    finally:
        await engine.dispose()


async def test_the_schedule_records_every_run_with_its_outcome(
    tmp_path: Path, hub_factory: HubFactory, sessions: Sessions
) -> None:
    source = tmp_path / "export.json"
    await hub_factory(sync_source=str(source), sync_interval=0.2, push_worker=False)

    async def stopped_then_completed() -> bool:
        runs = await recorded_runs(sessions)
        # The first run cannot read the source: it stops; then the source appears. A run is recorded when it starts
        # (`running`), before it reads the source: only its end says the source was missing when it looked.
        if not source.exists() and any(r.outcome == "stopped" for r in runs):
            write_json(source, [record(1), {"uid": 2}])
        return any(r.outcome == "completed" for r in runs)

    await eventually(stopped_then_completed)
    runs = await recorded_runs(sessions)
    assert {r.trigger for r in runs} == {"schedule"}
    assert runs[0].outcome == "stopped"
    assert runs[0].reason is not None
    assert "no such file or directory" in runs[0].reason
    completed = next(r for r in runs if r.outcome == "completed")
    assert (completed.created, completed.rejected, completed.warnings) == (1, 1, 0)
    assert completed.messages["rejected"] == ["record 2 (location 2): $.address: None is required"]


async def test_a_run_that_fails_is_recorded_as_failed_and_raises(
    tmp_path: Path, sessions: Sessions, settings: Settings
) -> None:
    source = write_json(tmp_path / "export.json", [record(1)])

    def broken(done: int, total: int) -> None:  # anything that escapes a run: a bug, the database away
        raise RuntimeError("went away\n[SQL: SELECT what the statement held]")

    with pytest.raises(RuntimeError, match="went away"):
        await history.recorded(
            sessions, settings, source, trigger=Trigger.API, holder="h:1:a", clock=utc_now, progress=broken
        )
    [run] = await recorded_runs(sessions)
    assert (run.trigger, run.outcome, run.reason) == ("api", "failed", "RuntimeError: went away")
    assert run.finished_at is not None


# --- Batched writes (README "The location sync", docs/ocpi.md §11, "Writes in bulk") -----------------------------


async def _receiving_partner(sessions: Sessions) -> int:
    """A registered eMSP with Locations and Tariffs receivers, so that what the sync queues can be looked at."""
    async with sessions() as session:
        partner = Partner(
            state=PartnerState.REGISTERED,
            initiator=Initiator.HUB,
            versions_url="http://emsp.invalid/versions",
            version="2.2.1",
            roles=[],
            endpoints=[
                {"identifier": module, "role": "RECEIVER", "url": f"http://emsp.invalid/{module}"}
                for module in ("locations", "tariffs")
            ],
            created_at=utc_now(),
            updated_at=utc_now(),
        )
        session.add(partner)
        await session.commit()
        return partner.id


async def _queued(sessions: Sessions, *, clear: bool = False) -> list[tuple[str, str, str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(Delivery.module, Delivery.object_id, Delivery.evse_uid, Delivery.method).order_by(Delivery.id)
        )
        found = [tuple(row) for row in rows]
        if clear:
            await session.execute(delete(Delivery))
            await session.commit()
    return found  # type: ignore[return-value]


async def test_a_refused_record_of_a_batch_is_rejected_and_leaves_nothing_while_the_rest_land(
    tmp_path: Path, run: Run, sessions: Sessions
) -> None:
    await _receiving_partner(sessions)
    other = Party("DE", "ALL", "Allego")
    owned = location_to_ocpi(  # location 3 is another party's already
        decode_location_record(record(3, operatorId="DE-ALL", evses=[evse(3, 1, evseId="DE*ALL*E3*1")])),
        location_id=None,
        parties=[OUR_PARTY.key, other.key],
        default_party=OUR_PARTY.key,
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )
    async with sessions() as session:
        await store.save_location(session, owned.value, now=datetime(2025, 1, 1, tzinfo=UTC))
        await session.commit()
    # One batch: 1, 2 and 4 with a shared price, 3 with a price of its own that nothing else names.
    records = [priced(1, perKWh=0.30), priced(2, perKWh=0.30), priced(3, perKWh=0.99), priced(4, perKWh=0.30)]
    report = await run(write_json(tmp_path / "export.json", records), parties=(OUR_PARTY, other))
    assert counts(report) == {"records": 4, "created": 3, "updated": 0, "unchanged": 0, "rejected": 1, "removed": 0}
    assert report.reasons == ["record 3 (location 3): location 3 belongs to DE/ALL: a location id belongs to one party"]
    [shared] = await tariff_ids(sessions)  # the price only the refused record named was not stored
    queued = await _queued(sessions)
    assert queued == [("tariffs", shared, "", "PUT")] + [("locations", i, "", "PUT") for i in ("1", "2", "4")]
    assert [key for key, _, _ in (await snapshot(sessions))[2]] == ["1", "2", "4"]  # 3 is tried again next run


async def test_a_re_run_queues_pushes_only_for_what_changed(tmp_path: Path, run: Run, sessions: Sessions) -> None:
    await _receiving_partner(sessions)
    source = tmp_path / "export.json"
    first = await run(write_json(source, [record(i) for i in range(1, 451)]))  # more than two batches
    assert first.created == 450
    assert len(await _queued(sessions, clear=True)) == 450
    changed = [record(i, status="Occupied" if i in (7, 301) else "Available") for i in range(1, 451)]
    again = await run(write_json(source, changed))
    assert (again.updated, again.unchanged) == (2, 448)
    assert await _queued(sessions) == [
        ("locations", str(i), f"{i * 10 + n}", "PATCH") for i in (7, 301) for n in (1, 2)
    ]
    assert await statuses(sessions, "301") == [ocpi.Status.CHARGING, ocpi.Status.CHARGING]


@pytest.mark.parametrize("remembered", [1000, 1], ids=["read-once", "read-twice"])
async def test_a_routine_run_reads_the_source_once_and_judges_every_record_as_reading_it_twice_would(
    tmp_path: Path, run: Run, sessions: Sessions, monkeypatch: pytest.MonkeyPatch, remembered: int
) -> None:
    """Pass 1 keeps the records to handle while they are few, and pass 2 takes them from there (read-once); past
    the limit pass 2 reads the source again (read-twice). The outcome is the same record for record: a repeated id
    is refused even when its first record is unchanged, and a record with a wrong shape is rejected in its turn."""
    monkeypatch.setattr("ocpi_hub.sync.run._REMEMBERED", remembered)
    source = tmp_path / "export.json"
    write_json(source, [record(1), record(2), record(3)])
    assert counts(await run(str(source)))["created"] == 3
    write_json(
        source,
        [record(1), record(2, status="Occupied"), record(1, status="Occupied"), record(4), {"uid": 5, "evses": 7}],
    )
    report = await run(str(source), sync_max_remove_share=0.5)
    assert counts(report) == {"records": 5, "created": 1, "updated": 1, "unchanged": 1, "rejected": 2, "removed": 1}
    assert report.reasons[0] == "record 3 (location 1): repeats the location id of record 1"
    assert report.reasons[1].startswith("record 5 (location 5): ")
    async with sessions() as session:
        statuses = {
            key: [e.status for e in (await locations_db.load(session, key)).location.evses or ()]  # type: ignore[union-attr]
            for key in ("1", "2", "3", "4")
        }
    assert statuses == {
        "1": [ocpi.Status.AVAILABLE] * 2,
        "2": [ocpi.Status.CHARGING] * 2,
        "3": [ocpi.Status.REMOVED] * 2,
        "4": [ocpi.Status.AVAILABLE] * 2,
    }
