"""The location sync in the internal API (docs/operations.md §8.2): `GET /sync`, its last runs and their summaries,
whoever started them; `POST /sync`, a run of OCPI_HUB_SYNC_SOURCE now."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency

from ocpi_hub.api import deps
from ocpi_hub.db import leases, sync_runs
from ocpi_hub.db.sync_runs import Outcome, SyncRun
from ocpi_hub.errors import seed_errors
from ocpi_hub.sync.history import shown_source
from ocpi_hub.sync.manual import ManualSyncs
from ocpi_hub.sync.schedule import SYNC_RUNNING_LEASE

Syncs = NamedDependency[ManualSyncs]


class Counts(msgspec.Struct):
    records: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    removed: int
    warnings: int


class RunView(msgspec.Struct):
    id: int
    trigger: str  # schedule, command (ocpi-hub sync) or api (POST /api/v0/sync)
    source: str  # a URL without user, password or query
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # running, completed, stopped, failed or interrupted
    counts: Counts
    reason: str | None  # why it stopped, failed or was interrupted
    rejected: list[str]  # the first rejections, each naming the record, its location and the rule
    warnings: list[str]  # the first warnings of the records stored


class SyncView(msgspec.Struct):
    source: str | None  # OCPI_HUB_SYNC_SOURCE as shown; null: no scheduled sync, and POST answers 409
    interval: float  # seconds between scheduled runs
    lenient: bool
    running: bool  # a run goes on in some process of the cluster
    runs: list[RunView]  # the last runs, newest first


def _view(run: SyncRun, running_holder: str | None) -> RunView:
    outcome = run.outcome
    if outcome == Outcome.RUNNING and run.holder != running_holder:
        outcome = Outcome.INTERRUPTED  # its process no longer holds the lease: it died before recording its end
    return RunView(
        id=run.id,
        trigger=run.trigger,
        source=run.source,
        started_at=run.started_at,
        finished_at=run.finished_at,
        outcome=outcome,
        counts=Counts(**{name: getattr(run, name) for name in sync_runs.COUNTS}),
        reason=run.reason
        if outcome != Outcome.INTERRUPTED or run.reason
        else "its process stopped before the run ended",
        rejected=list(run.messages.get("rejected", [])),
        warnings=list(run.messages.get("warnings", [])),
    )


class SyncController(Controller):
    path = "/sync"

    @get("/", operation_id="listSyncRuns", summary="The last location sync runs")
    async def list_runs(self, db: deps.Db, config: deps.Config, now: deps.Clock) -> SyncView:
        """The configured source and the last 20 runs, newest first, with their counts, the first rejections and
        warnings, and why a run stopped or failed."""
        holder = await leases.holder_of(db, SYNC_RUNNING_LEASE, now=now())
        return SyncView(
            source=None if config.sync_source is None else shown_source(config.sync_source),
            interval=config.sync_interval,
            lenient=config.sync_lenient,
            running=holder is not None,
            runs=[_view(run, holder) for run in await sync_runs.recent(db)],
        )

    @post(
        "/",
        status_code=202,
        operation_id="startSync",
        summary="Start a location sync now",
        responses=seed_errors(409),
    )
    async def start(self, db: deps.Db, syncs: Syncs, now: deps.Clock) -> RunView:
        """Starts a run of OCPI_HUB_SYNC_SOURCE in the background and answers 202 with it as recorded (normally
        still `running`: follow it with GET /sync). 409 while a run goes on anywhere in the cluster, or when no
        source is configured."""
        run_id = await syncs.start()
        holder = await leases.holder_of(db, SYNC_RUNNING_LEASE, now=now())
        run = await sync_runs.one(db, run_id)
        assert run is not None  # recorded and committed before start() returned
        return _view(run, holder)
