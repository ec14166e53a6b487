"""Benchmark of the Locations Sender list (the hot path: eMSPs crawl everything), against the ceiling of the server.

    python bench/locations_bench.py [--database-url URL] [--locations 10000] [--rounds 3] [--duration 8]

Loads N Locations of 4 EVSEs with 2 Connectors each through the store (ocpi_hub.stores.locations), then
serves, one after the other on the same server configuration (uvicorn, uvloop, httptools, one worker):
- the hub itself, measured on GET /ocpi/2.2.1/locations?limit=50 at offset 0 and at offset N-50, and on a single
  Location GET;
- the ceiling: a minimal ASGI app answering the very bytes and headers of the first page, precomputed;
- layers in between, each answering the saved page: a Litestar app of one handler; in the hub's own app, a handler
  without dependencies, and one with four dependencies (the Sender list takes none: it is bound in create_app).
The load generator is wrk (`apt-get install wrk`), in its own process: one thread, a few keep-alive connections,
for a fixed duration per measurement. Rounds interleave the servers, and the report gives the median per target and
the ratios of the issue's targets: first page >= 35% of the ceiling's requests per second, deep page p50 <= 1.5 x
the first page's. With --profile FILE, a last run records the hub under py-spy while wrk loads the first page, and
sums its main thread's samples by part of the request.

The database is reused when it already holds exactly N locations (loading takes a while); SQLite defaults to a
fresh file in a temporary folder. PostgreSQL: give a scratch database, e.g. postgresql+asyncpg://postgres@host/db.
"""

# ruff: noqa: T201 - a benchmark prints its figures

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from common import Measure, server, wrk
from litestar import Litestar, Response, get
from litestar.di import Provide
from sqlalchemy import func, select

from ocpi_hub import cli
from ocpi_hub.api import deps
from ocpi_hub.app import create_app
from ocpi_hub.credentials_token import hash_token
from ocpi_hub.db import partners
from ocpi_hub.db.engine import create_engine, session_factory
from ocpi_hub.db.locations import LocationRow
from ocpi_hub.db.migrate import upgrade
from ocpi_hub.db.tariffs import Origin
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi import tariffs as ocpi_tariffs
from ocpi_hub.ocpi.common import BusinessDetails
from ocpi_hub.push import outbox
from ocpi_hub.settings import Party, Settings
from ocpi_hub.stores import locations as store
from ocpi_hub.stores import tariffs

TOKEN = "bench-emsp-token"
AUTH = "Authorization: Token " + base64.b64encode(TOKEN.encode()).decode()
PAGE = 50
PARTY = Party("NL", "OHB", "Bench CPO")
SERVER = {"loop": "uvloop", "http": "httptools", "workers": 1, "log_level": "warning", "access_log": False}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# --- Data --------------------------------------------------------------------------------------------------------


def bench_location(n: int, now: datetime) -> ocpi.Location:
    """A plausible Location: 4 EVSEs (two AC, two DC) with 2 Connectors each."""

    def connector(i: int, dc: bool) -> ocpi.Connector:
        return ocpi.Connector(
            id=str(i),
            standard=ocpi.ConnectorType.IEC_62196_T2_COMBO if dc else ocpi.ConnectorType.IEC_62196_T2,
            format=ocpi.ConnectorFormat.CABLE if dc else ocpi.ConnectorFormat.SOCKET,
            power_type=ocpi.PowerType.DC if dc else ocpi.PowerType.AC_3_PHASE,
            max_voltage=920 if dc else 230,
            max_amperage=200 if dc else 32,
            max_electric_power=150000 if dc else 22000,
            tariff_ids=["DC-STANDARD" if dc else "AC-STANDARD"],
            last_updated=now,
        )

    evses = [
        ocpi.EVSE(
            uid=f"{n}-{e}",
            evse_id=f"NL*OHB*E{n:07d}*{e}",
            status=ocpi.Status.AVAILABLE,
            capabilities=[ocpi.Capability.RFID_READER, ocpi.Capability.REMOTE_START_STOP_CAPABLE],
            connectors=[connector(1, e > 2), connector(2, e > 2)],
            physical_reference=f"{e}",
            parking_restrictions=[ocpi.ParkingRestriction.EV_ONLY],
            last_updated=now,
        )
        for e in range(1, 5)
    ]
    return ocpi.Location(
        country_code=PARTY.country_code,
        party_id=PARTY.party_id,
        id=f"LOC{n:06d}",
        publish=True,
        name=f"Bench charging plaza {n}",
        address=f"Stationsplein {n % 300 + 1}",
        city="Utrecht",
        postal_code="3511 ED",
        country="NLD",
        coordinates=ocpi.GeoLocation(latitude=f"52.{n % 100000:06d}", longitude=f"5.{n % 100000:06d}"),
        parking_type=ocpi.ParkingType.PARKING_LOT,
        evses=evses,
        operator=BusinessDetails(name="Bench CPO", website="https://cpo.example.com"),
        facilities=[ocpi.Facility.CAFE, ocpi.Facility.WIFI],
        time_zone="Europe/Amsterdam",
        opening_times=ocpi.Hours(twentyfourseven=True),
        last_updated=now,
    )


async def prepare(database_url: str, count: int) -> None:
    """Migrate, add the eMSP partner, and load `count` locations unless the database already holds them."""
    upgrade_in_thread = asyncio.to_thread(upgrade, database_url)
    await upgrade_in_thread
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        present = (await session.execute(select(func.count()).select_from(LocationRow))).scalar_one()
        if present not in (0, count):
            raise SystemExit(f"the database holds {present} locations, not 0 or {count}: give a scratch database")
        # By its bare hash (no secret key in a bench): the same on every schema version of the partners table.
        crawler = select(partners.Partner.id).where(partners.Partner.token_hash == hash_token(TOKEN))
        if (await session.execute(crawler)).first() is None:
            now = datetime.now(UTC)
            session.add(
                partners.Partner(
                    state=partners.PartnerState.REGISTERED,
                    initiator=partners.Initiator.PARTNER,
                    token_hash=hash_token(TOKEN),
                    roles=[
                        {"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "B"}}
                    ],
                    endpoints=[],
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.commit()
        if present == 0:
            start = time.monotonic()
            base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=count)
            for tariff in (bench_tariff("AC-STANDARD", base), bench_tariff("DC-STANDARD", base)):
                put = partial(tariffs.put_tariff, session, tariff, now=base, origin=Origin.API)
                await outbox.committed(session, put, now=base)  # the Connectors name them
            for n in range(1, count + 1):
                moment = base + timedelta(seconds=n)
                location = bench_location(n, base)
                await outbox.committed(session, partial(store.save_location, session, location, now=moment), now=moment)
            print(f"loaded {count} locations in {time.monotonic() - start:.0f} s")
    await engine.dispose()


def bench_tariff(tariff_id: str, now: datetime) -> ocpi_tariffs.Tariff:
    energy = ocpi_tariffs.PriceComponent(type=ocpi_tariffs.TariffDimensionType.ENERGY, price=0.39, step_size=1)
    return ocpi_tariffs.Tariff(
        country_code=PARTY.country_code,
        party_id=PARTY.party_id,
        id=tariff_id,
        currency="EUR",
        elements=[ocpi_tariffs.TariffElement(price_components=[energy])],
        last_updated=now,
    )


# --- Servers -----------------------------------------------------------------------------------------------------


def _saved_page(page_file: Path) -> tuple[bytes, list[tuple[str, str]]]:
    saved = json.loads(page_file.read_text())
    return base64.b64decode(saved["body"]), [(k, v) for k, v in saved["headers"]]


def serve_hub(database_url: str, port: int, page_file: Path | None) -> None:
    """The hub. With the saved first page, three more handlers in the same app answer it from memory, each one
    layer more: no dependencies, then four dependencies (what resolving them would cost the real handler).
    They tell where the time of a request goes (the figures' "layers")."""
    settings = Settings(database_url=database_url, public_url=f"http://127.0.0.1:{port}", parties=(PARTY,))
    app = create_app(settings)
    if page_file is not None:
        body, saved = _saved_page(page_file)
        headers = {k: v for k, v in saved if k != "content-type"}
        version = {"version": Provide(lambda: "2.2.1", sync_to_thread=False)}

        @get("/bench/cached")
        async def cached() -> Response[bytes]:
            return Response(body, media_type="application/json", headers=headers)

        @get("/bench/dependencies", dependencies=version)
        async def dependencies(
            db: deps.Db, config: deps.Config, version: deps.Version, now: deps.Clock
        ) -> Response[bytes]:
            return Response(body, media_type="application/json", headers=headers)

        for handler in (cached, dependencies):
            app.register(handler)
    # As `ocpi-hub serve` does; a tree older than it (crawl_under_writes.py --baseline) has no such step.
    freeze_start = getattr(cli, "freeze_start", None)
    if freeze_start is not None:
        freeze_start()
    uvicorn.run(app, host="127.0.0.1", port=port, **SERVER)  # type: ignore[arg-type]


def serve_ceiling(page_file: Path, port: int) -> None:
    """The ceiling: a bare ASGI app answering the saved page with its headers, nothing else."""
    body, saved = _saved_page(page_file)
    headers = [(k.encode(), v.encode()) for k, v in saved] + [(b"content-length", str(len(body)).encode())]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    message = {"type": "http.response.body", "body": body}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send(start)
        await send(message)

    uvicorn.run(app, host="127.0.0.1", port=port, **SERVER)  # type: ignore[arg-type]


def serve_litestar(page_file: Path, port: int) -> None:
    """For reference: a Litestar app of one handler that answers the saved page."""
    body, saved = _saved_page(page_file)
    headers = {k: v for k, v in saved if k != "content-type"}

    @get("/ocpi/2.2.1/locations")
    async def page() -> Response[bytes]:
        return Response(body, media_type="application/json", headers=headers)

    uvicorn.run(Litestar([page]), host="127.0.0.1", port=port, **SERVER)  # type: ignore[arg-type]


def fetch_page(url: str, path: Path) -> None:
    """Save the first page (body and headers) for the ceiling servers."""
    response = httpx.get(url, headers={"Authorization": AUTH.partition(": ")[2]})
    response.raise_for_status()
    assert response.json()["status_code"] == 1000
    assert len(response.json()["data"]) == PAGE
    skip = {"date", "server", "content-length", "x-request-id", "x-correlation-id"}
    headers = [(k, v) for k, v in response.headers.items() if k not in skip]
    path.write_text(json.dumps({"body": base64.b64encode(response.content).decode(), "headers": headers}))


CEILING = "ceiling: bare ASGI app, saved page"
FIRST = "hub: first page"
DEEP = "hub: deep page"


def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="ocpi-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    asyncio.run(prepare(database_url, args.locations))
    page_file = workdir / "page.json"
    page = f"/ocpi/2.2.1/locations?offset=0&limit={PAGE}"
    # (name, server, path): the layers first, each adding one part of the real handler, then the real handler.
    targets = [
        (CEILING, "ceiling", page),
        ("Litestar app, one handler, saved page", "litestar", page),
        ("hub app, handler without dependencies", "hub", "/bench/cached"),
        ("hub app, + db, config, version, now", "hub", "/bench/dependencies"),
        (FIRST, "hub", page),
        (DEEP, "hub", f"/ocpi/2.2.1/locations?offset={args.locations - PAGE}&limit={PAGE}"),
        ("hub: one location", "hub", f"/ocpi/2.2.1/locations/LOC{args.locations // 2:06d}"),
    ]
    results: dict[str, list[Measure]] = {name: [] for name, _, _ in targets}
    with server(__file__, "serve-hub", database_url) as (hub, _):
        fetch_page(hub + page, page_file)
    for round_ in range(1, args.rounds + 1):
        for kind in ("ceiling", "litestar", "hub"):
            source = [database_url, "--page", str(page_file)] if kind == "hub" else [str(page_file)]
            with server(__file__, f"serve-{kind}", *source) as (base, _):
                for name, target, path in targets:
                    if target == kind:
                        wrk(base + path, duration=1, connections=args.connections, header=AUTH)  # warm-up
                        results[name].append(
                            wrk(base + path, duration=args.duration, connections=args.connections, header=AUTH)
                        )
        print(f"round {round_} of {args.rounds} done")
    report(results, args)
    if args.profile:
        profile(database_url, page, args)


def report(results: dict[str, list[Measure]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.locations} locations x 4 EVSEs x 2 connectors, pages of {PAGE}, wrk -t1 -c{args.connections}, "
        f"{args.rounds} rounds of {args.duration} s; medians, and throughput as a share of the ceiling"
    )
    print(f"{'target':<42} {'req/s':>8} {'share':>6} {'p50 ms':>7} {'p99 ms':>7}")
    ceiling = statistics.median(m.rps for m in results[CEILING])
    for name, measures in results.items():
        rps = statistics.median(m.rps for m in measures)
        p50 = statistics.median(m.p50_ms for m in measures)
        p99 = statistics.median(m.p99_ms for m in measures)
        print(f"{name:<42} {rps:>8.0f} {rps / ceiling:>6.0%} {p50:>7.2f} {p99:>7.2f}")
    # Ratios within each round (ceiling and hub ran minutes apart at most), then their median.
    shares = [f.rps / c.rps for f, c in zip(results[FIRST], results[CEILING], strict=True)]
    depth = [d.p50_ms / f.p50_ms for d, f in zip(results[DEEP], results[FIRST], strict=True)]
    rounds = ", ".join(f"{r:.1%}" for r in shares)
    print(f"first page / ceiling, requests per second: {statistics.median(shares):.1%} ({rounds}); target >= 35%")
    rounds = ", ".join(f"{r:.2f}" for r in depth)
    print(f"deep page / first page, p50 latency: {statistics.median(depth):.2f} ({rounds}); target <= 1.5")


# Where a sample of the hub's main thread is spent: the first part whose frame its stack contains. SQLAlchemy runs
# statements in greenlets, whose stacks py-spy shows apart from the request's; uvloop's C code shows as its caller.
_PROFILE_PARTS = [
    ("authentication (the guard)", "authenticate (ocpi_hub/api/ocpi/authentication.py"),
    ("the page query", "page (ocpi_hub/db/locations.py"),
    ("the rest of the handler", "list_objects (ocpi_hub/api/ocpi/sender.py"),
    ("dependencies (db session, config, ...)", "resolve_dependencies (litestar/"),
    ("db session cleanup (rollback)", "DependencyCleanupGroup"),
    ("sending the response", "Answer.__call__ (ocpi_hub/api/ocpi/answer_cache.py"),
    ("Litestar routing, middleware", "Litestar.__call__ (litestar/"),
    ("uvicorn (HTTP parsing)", "httptools_impl.py"),
    ("SQLAlchemy executing statements (greenlets)", "sqlalchemy/"),
    ("event loop (uvloop, in C: sockets, waiting)", ""),
]


def profile(database_url: str, page: str, args: argparse.Namespace) -> None:
    """py-spy on the hub while wrk loads the first page; the main thread's samples summed by part."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = Path(args.profile)
    with server(__file__, "serve-hub", database_url) as (base, pid):
        command = [py_spy, "record", "--pid", str(pid), "--duration", str(args.duration), "--rate", "200"]
        recording = subprocess.Popen([*command, "--threads", "--format", "raw", "--output", str(raw)])
        wrk(base + page, duration=args.duration + 2, connections=args.connections, header=AUTH)
        recording.wait()
    parts = dict.fromkeys((name for name, _ in _PROFILE_PARTS), 0)
    other_threads = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if "MainThread" not in stack.split(";")[0]:
            other_threads += int(samples)
            continue
        parts[next(name for name, frame in _PROFILE_PARTS if frame in stack)] += int(samples)
    total = sum(parts.values())
    print(f"\nprofile of the hub's main thread serving the first page ({total} samples; raw stacks in {raw}):")
    for name, part in parts.items():
        print(f"  {part / total:6.1%}  {name}")
    share = other_threads / total
    print(f"  and {other_threads} samples ({share:.0%} as many) in other threads (aiosqlite's workers, the log queue)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = ["run", "serve-hub", "serve-ceiling", "serve-litestar"]
    parser.add_argument("command", nargs="?", default="run", choices=commands)
    parser.add_argument("source", nargs="?", help="(serve-*) the database URL, or the saved page")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--page", type=Path, help="(serve-hub) the saved page, for the layer handlers")
    parser.add_argument("--database-url", help="a scratch database (default: a new SQLite file)")
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--profile", help="after the rounds, record the hub serving the first page with py-spy here")
    args = parser.parse_args()
    match args.command:
        case "serve-hub":
            serve_hub(args.source, args.port, args.page)
        case "serve-ceiling":
            serve_ceiling(Path(args.source), args.port)
        case "serve-litestar":
            serve_litestar(Path(args.source), args.port)
        case _:
            run(args)


if __name__ == "__main__":
    main()
