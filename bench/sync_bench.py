"""Benchmark of the location sync (README: "Benchmarks"): 25,000 locations with 4 EVSEs each (100,000 EVSEs) from one
file.

Runs a first sync into an empty database with one registered eMSP that receives Locations, then a second one over
the same file with 1% of the locations changed (one EVSE status each), and prints the time of each run, their ratio
(target < 0.25), the locations the second run wrote and the pushes it queued (target: the changed objects only),
and the peak memory of the process (target < 300 MB). No push worker runs: the queued deliveries are counted.

    python bench/sync_bench.py [--locations 25000] [--database-url URL]

Without --database-url a fresh SQLite file in a temporary folder is used; a given URL must name an empty database.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import delete, func, select

from ocpi_hub.db.deliveries import Delivery
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.locations import LocationRow
from ocpi_hub.db.migrate import upgrade
from ocpi_hub.db.partners import Initiator, Partner, PartnerState
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Party, Settings
from ocpi_hub.sync.run import SyncReport, sync

EVSES_PER_LOCATION = 4
CHANGED_SHARE = 0.01
PARTIES = (Party("NL", "OHB", "Bench CPO NL"), Party("DE", "ALL", "Bench CPO DE"))
STATUSES = ("Available", "Available", "Available", "Occupied", "Unavailable", "Unknown")


def connectors(rng: random.Random, fast: bool, updated: str) -> list[dict[str, Any]]:
    """One or two connectors, as the public feed sends them (with members the converter ignores)."""
    if fast:
        kinds = [("Type2Combo", "DC", 400, 125, 50)] + (
            [("TepcoCHAdeMO", "DC", 400, 125, 50)] if rng.random() < 0.5 else []
        )
    else:
        amperage = rng.choice((16, 32))
        kinds = [("Type2", "AC3Phase", 230, amperage, 11 if amperage == 16 else 22)] * rng.choice((1, 2))
    return [
        {
            "uid": 10 * n + 1,
            "externalId": str(n + 1),
            "connectorType": kind,
            "electricalProperties": {"powerType": power, "voltage": volts, "amperage": amps, "maxElectricPower": kw},
            "fixedCable": fast,
            "tariff": {"perKWh": 0.39, "perMinute": 0.0, "startFee": 0.0, "currency": "EUR", "updatedBy": "Default"},
            "updated": updated,
            "updatedBy": "Feed",
        }
        for n, (kind, power, volts, amps, kw) in enumerate(kinds)
    ]


def location(i: int, *, changed: bool) -> dict[str, Any]:
    """Location i, the same at every call; `changed` gives its first EVSE another status and a newer `updated`."""
    rng = random.Random(i)
    german = i % 2 == 1
    updated = (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(500_000))).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    country, party = ("DE", "ALL") if german else ("NL", "OHB")
    evses = []
    for n in range(EVSES_PER_LOCATION):
        status = rng.choice(STATUSES)
        evse_updated = updated
        if changed and n == 0:
            status = "Occupied" if status == "Available" else "Available"
            evse_updated = "2025-06-01T12:00:00Z"
        evses.append(
            {
                "uid": i * 10 + n,
                "externalId": f"{i:06d}_{n}",
                "evseId": f"{country}*{party}*E{i:06d}*{n}",
                "status": status,
                "authorizationMethods": ["RFIDToken", "NewMotionApp"],
                "updated": evse_updated,
                "physicalReference": f"P{n + 1}",
                "connectors": connectors(rng, fast=n >= 2, updated=updated),
            }
        )
    latitude, longitude = (
        (rng.uniform(48.2, 53.8), rng.uniform(7.0, 13.5))
        if german
        else (
            rng.uniform(51.6, 52.5),
            rng.uniform(4.7, 6.5),
        )
    )
    return {
        "uid": 1_000_000 + i,
        "externalId": f"LOC{i:06d}",
        "coordinates": {"latitude": round(latitude, 6), "longitude": round(longitude, 6)},
        "operatorName": "Allego" if german else "TheNewMotion",
        "operatorId": f"{country}-{party}",
        "address": {
            "streetAndNumber": f"{'Hauptstraße' if german else 'Dorpsstraat'} {i % 300 + 1}",
            "postalCode": f"{10000 + i % 89999}" if german else f"{1000 + i % 8999} AB",
            "city": "Berlin" if german else "Utrecht",
            "country": "DEU" if german else "NLD",
        },
        "accessibility": {"status": "FreePublic", "remark": ""},
        "openTwentyFourSeven": i % 3 != 0,
        "openingHours": []
        if i % 3
        else [{"weekDay": d, "startTime": "07:00", "endTime": "22:00"} for d in ("Mon", "Tue")],
        "locationType": "Unknown",
        "operatorComment": "",
        "updated": updated,
        "evses": evses,
    }


def records(count: int, changed: set[int]) -> Iterator[bytes]:
    for i in range(count):
        yield msgspec.json.encode(location(i, changed=i in changed))


def write_source(path: Path, count: int, changed: set[int]) -> None:
    """A JSON array, written one record at a time."""
    with path.open("wb") as file:
        file.write(b"[\n")
        for n, body in enumerate(records(count, changed)):
            file.write(b",\n" if n else b"")
            file.write(body)
        file.write(b"\n]\n")


async def add_receiving_emsp(database_url: str) -> None:
    """A registered eMSP with a Locations Receiver endpoint: every change of the store queues a push for it."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with session_factory(engine)() as session:
            session.add(
                Partner(
                    state=PartnerState.REGISTERED,
                    initiator=Initiator.PARTNER,
                    token_hash="0" * 64,
                    version="2.2.1",
                    roles=[
                        {"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "B"}}
                    ],
                    endpoints=[{"identifier": "locations", "role": "RECEIVER", "url": "http://127.0.0.1:9/locations"}],
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.commit()
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Measured:
    seconds: float
    cpu: float  # CPU seconds of the process (every thread) during the run: wall time on a busy machine misleads
    report: SyncReport
    writes: int  # location rows written (inserts and updates) by the run
    pushes: int  # deliveries queued by the run


async def timed_sync(settings: Settings, source: Path) -> Measured:
    """One sync; `revision` counts the writes of each location row. The deliveries it queued are then dropped,
    as if delivered, so that the next run's count is its own."""
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    written = select(func.coalesce(func.sum(LocationRow.revision), 0))
    try:
        async with sessions() as session:
            before = (await session.execute(written)).scalar_one()
        started, cpu = time.perf_counter(), time.process_time()
        report = await sync(sessions, settings, str(source), clock=utc_now)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        async with sessions() as session:
            writes = (await session.execute(written)).scalar_one() - before
            pushes = (await session.execute(select(func.count()).select_from(Delivery))).scalar_one()
            await session.execute(delete(Delivery))
            await session.commit()
    finally:
        await engine.dispose()
    return Measured(seconds, cpu, report, int(writes), int(pushes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--locations", type=int, default=25_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ocpi-hub-bench-") as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        settings = Settings(database_url=url, parties=PARTIES)
        upgrade(url)
        asyncio.run(add_receiving_emsp(url))
        source = Path(folder) / "locations.json"
        write_source(source, args.locations, set())
        size = source.stat().st_size
        first = asyncio.run(timed_sync(settings, source))

        changed = set(random.Random(0).sample(range(args.locations), round(args.locations * CHANGED_SHARE)))
        write_source(source, args.locations, changed)
        second = asyncio.run(timed_sync(settings, source))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    evses = args.locations * EVSES_PER_LOCATION
    lines = [
        f"database: {url.split(':', 1)[0]}; source: {args.locations} locations, {evses} EVSEs, {size / 1e6:.1f} MB"
    ]
    for name, run in (("first", first), ("second", second)):
        lines += [
            f"{name} sync: {run.seconds:.1f} s ({run.cpu:.1f} s of CPU), {run.writes} locations written, "
            f"{run.pushes} pushes queued",
            f"  {run.report.summary().splitlines()[0]}",
        ]
    lines += [
        f"ratio second / first: {second.seconds / first.seconds:.3f} (target < 0.25)",
        f"changed in the source for the second sync: {len(changed)} locations, one EVSE status each",
        f"peak memory (ru_maxrss): {peak_mb:.0f} MB (target < 300 MB)",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if first.report.stopped is None and second.report.stopped is None else 1


if __name__ == "__main__":
    sys.exit(main())
