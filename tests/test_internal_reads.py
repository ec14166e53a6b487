"""What we publish and the location sync, read and started through the internal API (docs/operations.md §8):
`GET /locations`, `GET /location/{locationId}`, `GET /sync` and `POST /sync`, over real HTTP on a real database."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import leases, sync_runs
from ocpi_hub.db.locations import LocationDocument, LocationRow
from ocpi_hub.db.sync_runs import SyncRun, Trigger
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.sync.schedule import SYNC_RUNNING_LEASE
from tests.conftest import Hub, HubFactory
from tests.servers import serve
from tests.test_sync import eventually, evse, record, write_json

Sessions = async_sessionmaker[AsyncSession]
EXAMPLES = Path(__file__).parent.parent / "examples" / "evsevo-locations.json"


async def load_examples(hub: Hub) -> list[str]:
    """The four example locations, through the internal API; their ids in the order they were stored."""
    response = await hub.api("POST", "/evsevo/locations", content=EXAMPLES.read_bytes())
    assert response.status_code == 200
    assert [r["outcome"] for r in response.json()] == ["created"] * 4
    return [r["id"] for r in response.json()]


async def stored_bodies(sessions: Sessions) -> list[bytes]:
    async with sessions() as session:
        query = select(LocationDocument.body_221).join(LocationRow, LocationRow.seq == LocationDocument.seq)
        return list((await session.execute(query.order_by(LocationRow.seq))).scalars())


# --- Locations ---------------------------------------------------------------------------------------------------


async def test_the_list_pages_in_creation_order_and_shows_the_locations_as_stored(hub: Hub, sessions: Sessions) -> None:
    ids = await load_examples(hub)
    stored = await stored_bodies(sessions)
    whole = await hub.api("GET", "/locations")
    assert whole.status_code == 200
    assert whole.json() == {"total": 4, "offset": 0, "limit": 100, "locations": [json.loads(b) for b in stored]}
    assert [location["id"] for location in whole.json()["locations"]] == ids

    pages = [(await hub.api("GET", "/locations", params={"offset": o, "limit": 3})).json() for o in (0, 3, 6)]
    assert [p["total"] for p in pages] == [4, 4, 4]
    assert [[loc["id"] for loc in p["locations"]] for p in pages] == [ids[:3], ids[3:], []]


async def test_an_empty_store_is_an_empty_list(hub: Hub) -> None:
    assert (await hub.api("GET", "/locations")).json() == {"total": 0, "offset": 0, "limit": 100, "locations": []}


async def test_one_location_is_its_stored_json_whatever_the_letter_case_of_its_id(hub: Hub, sessions: Sessions) -> None:
    ids = await load_examples(hub)
    stored = await stored_bodies(sessions)
    for location_id, body in zip(ids, stored, strict=True):
        for asked in (location_id, location_id.lower()):
            response = await hub.api("GET", f"/location/{asked}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/json")
            assert response.content == body


async def test_an_unknown_location_is_404_with_the_internal_apis_error_body(hub: Hub) -> None:
    await load_examples(hub)
    response = await hub.api("GET", "/location/NO-SUCH-LOCATION")
    assert response.status_code == 404
    assert response.json() == {"status": "Not Found", "error": "locationId: no location 'NO-SUCH-LOCATION'"}
    too_long = await hub.api("GET", f"/location/{'x' * 37}")
    assert too_long.status_code == 400
    assert too_long.json()["error"].startswith("locationId:")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": -1}, "offset"),
        ({"offset": "first"}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "all"}, "limit"),
        ({"limit": 2**40}, "limit"),
    ],
)
async def test_bad_paging_is_400_naming_the_field(hub: Hub, params: dict[str, Any], field: str) -> None:
    response = await hub.api("GET", "/locations", params=params)
    assert response.status_code == 400
    assert response.json()["status"] == "Bad Request"
    assert response.json()["error"].startswith(f"{field}:")


# --- The sync ----------------------------------------------------------------------------------------------------


def lenient_export(path: Path) -> str:
    """Two records: one with a connector OCPI cannot show (a warning in lenient mode), one without an address."""
    avcon = {**evse(1, 2)["connectors"][0], "uid": 2, "connectorType": "Avcon"}
    mixed = record(1, evses=[evse(1, 1, connectors=[*evse(1, 1)["connectors"], avcon])])
    return write_json(path, [mixed, {"uid": 2}, record(3)])


async def finished_runs(hub: Hub) -> list[dict[str, Any]]:
    view = (await hub.api("GET", "/sync")).json()
    return [run for run in view["runs"] if run["outcome"] != "running"]


async def test_post_starts_a_run_and_get_shows_its_summary(tmp_path: Path, hub_factory: HubFactory) -> None:
    source = lenient_export(tmp_path / "export.json")
    hub = await hub_factory(sync_source=source, sync_interval=3600, sync_lenient=True)
    # The schedule's first run, at start, is one of the runs shown: wait for it, so that ours is the second.
    await eventually(lambda: _count_finished(hub, 1))

    started = await hub.api("POST", "/sync")
    assert started.status_code == 202
    run = started.json()
    assert (run["trigger"], run["source"]) == ("api", source)
    assert run["outcome"] in ("running", "completed")
    await eventually(lambda: _count_finished(hub, 2))

    view = (await hub.api("GET", "/sync")).json()
    assert (view["source"], view["interval"], view["lenient"], view["running"]) == (source, 3600, True, False)
    ours, scheduled = view["runs"]
    assert (ours["id"], ours["trigger"], scheduled["trigger"]) == (run["id"], "api", "schedule")
    assert scheduled["counts"] == {
        "records": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "removed": 0,
        "warnings": 1,
    }
    assert scheduled["outcome"] == "completed"
    assert scheduled["rejected"] == ["record 2 (location 2): $.address: None is required"]
    assert scheduled["warnings"] == [
        "location 1: $.evses[0].connectors[1].connectorType: 'Avcon' has no OCPI 2.2.1 ConnectorType; "
        "connector left out"
    ]
    # The second run found both stored records unchanged (their hashes): it converted nothing, so warned nothing.
    assert ours["counts"]["unchanged"] == 2
    assert ours["counts"]["warnings"] == 0
    assert ours["finished_at"] >= ours["started_at"] >= scheduled["finished_at"]
    assert ours["reason"] is None


async def _count_finished(hub: Hub, count: int) -> bool:
    return len(await finished_runs(hub)) >= count


async def test_post_syncs_a_source_served_over_http(hub_factory: HubFactory, sessions: Sessions) -> None:
    @get("/export.json", media_type="application/json")
    async def export() -> list[dict[str, Any]]:
        return [record(7), record(8)]

    async with serve(lambda _: Litestar([export])) as source_url:
        hub = await hub_factory(sync_source=f"{source_url}/export.json?key=secret", sync_interval=3600)
        await eventually(lambda: _count_finished(hub, 1))
        assert (await hub.api("POST", "/sync")).status_code == 202
        await eventually(lambda: _count_finished(hub, 2))
    view = (await hub.api("GET", "/sync")).json()
    assert view["source"] == f"{source_url}/export.json"  # the query may hold a secret: not shown
    assert [run["source"] for run in view["runs"]] == [f"{source_url}/export.json"] * 2
    assert [run["counts"]["created"] for run in view["runs"]] == [0, 2]
    assert len(await stored_bodies(sessions)) == 2


async def test_post_while_another_process_syncs_is_409_and_starts_nothing(
    tmp_path: Path, hub_factory: HubFactory, sessions: Sessions
) -> None:
    async with sessions() as session:  # another process holds the lease: it is syncing
        assert await leases.take(session, SYNC_RUNNING_LEASE, "elsewhere:1:a", now=utc_now(), ttl=timedelta(hours=1))
        await session.commit()
    hub = await hub_factory(sync_source=write_json(tmp_path / "export.json", [record(1)]), sync_interval=3600)
    response = await hub.api("POST", "/sync")
    assert response.status_code == 409
    assert response.json() == {
        "status": "Conflict",
        "error": "sync: a sync is running right now: try again when it has finished",
    }
    view = (await hub.api("GET", "/sync")).json()
    assert (view["running"], view["runs"]) == (True, [])  # the scheduled run at start was refused too
    assert await stored_bodies(sessions) == []


async def test_a_second_post_while_the_first_run_goes_on_is_409(hub_factory: HubFactory) -> None:
    release = asyncio.Event()

    @get("/export.json", media_type="application/json")
    async def slow_export() -> list[dict[str, Any]]:
        await release.wait()  # the run goes on until the test lets the source answer
        return [record(1)]

    async with serve(lambda _: Litestar([slow_export])) as source_url:
        hub = await hub_factory(sync_source=f"{source_url}/export.json", sync_interval=3600, push_worker=False)
        await eventually(lambda: _running(hub))  # the schedule's run at start, waiting for the source
        refused = await hub.api("POST", "/sync")
        assert refused.status_code == 409
        view = (await hub.api("GET", "/sync")).json()
        assert view["running"] is True
        assert [(run["trigger"], run["outcome"], run["finished_at"]) for run in view["runs"]] == [
            ("schedule", "running", None)
        ]
        release.set()
        await eventually(lambda: _count_finished(hub, 1))
        assert (await hub.api("POST", "/sync")).status_code == 202  # free again
        await eventually(lambda: _count_finished(hub, 2))
    runs = (await hub.api("GET", "/sync")).json()["runs"]
    assert [(run["trigger"], run["outcome"]) for run in runs] == [("api", "completed"), ("schedule", "completed")]


async def _running(hub: Hub) -> bool:
    view = (await hub.api("GET", "/sync")).json()
    return bool(view["running"]) and len(view["runs"]) == 1


async def test_post_without_a_sync_source_is_409_saying_so(hub: Hub, sessions: Sessions) -> None:
    response = await hub.api("POST", "/sync")
    assert response.status_code == 409
    assert response.json() == {
        "status": "Conflict",
        "error": "sync: no sync source is configured: set OCPI_HUB_SYNC_SOURCE",
    }
    assert (await hub.api("GET", "/sync")).json() == {
        "source": None,
        "interval": 300,
        "lenient": False,
        "running": False,
        "runs": [],
    }
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SyncRun)) == 0


async def test_the_history_keeps_the_last_20_runs_and_a_run_whose_process_died_shows_interrupted(
    hub: Hub, sessions: Sessions
) -> None:
    async with sessions() as session:
        for n in range(25):
            await sync_runs.begin(session, trigger=Trigger.COMMAND, source=f"s{n}", holder="gone:1:a", now=utc_now())
        await session.commit()
    runs = (await hub.api("GET", "/sync")).json()["runs"]
    assert [run["source"] for run in runs] == [f"s{n}" for n in range(24, 4, -1)]
    assert {run["outcome"] for run in runs} == {"interrupted"}  # "running", but no process holds the lease
    assert runs[0]["reason"] == "its process stopped before the run ended"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SyncRun)) == 20


# --- The guard ---------------------------------------------------------------------------------------------------


async def test_the_reads_and_the_sync_are_behind_the_guard(
    tmp_path: Path, hub_factory: HubFactory, sessions: Sessions
) -> None:
    source = write_json(tmp_path / "export.json", [record(1)])
    hub = await hub_factory(admin_token="s3cret", sync_source=source, sync_interval=3600, push_worker=False)
    await eventually(lambda: _runs_in_database(sessions, 1))
    for method, path in [("GET", "/locations"), ("GET", "/location/1"), ("GET", "/sync"), ("POST", "/sync")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = await hub.api(method, path, headers=headers)
            assert refused.status_code == 401, (method, path)
            assert refused.json()["status"] == "Unauthorized"
    assert await _runs_in_database(sessions, 1)  # the refused POST started nothing
    bearer = {"Authorization": "Bearer s3cret"}
    assert (await hub.api("GET", "/location/1", headers=bearer)).status_code == 200


async def _runs_in_database(sessions: Sessions, count: int) -> bool:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(SyncRun)) == count
