"""The hub's Prometheus metrics (docs/operations.md §2), in a registry of the app's own (never the global one), so
that several apps in one process keep theirs apart.

Counters count what this process did (requests served, deliveries tried, sync runs). What must be right across
processes (backlogs, the age of the oldest waiting delivery, failing partners, the last success) is read from the
database when /metrics is scraped and handed to `Scraped` just before the registry is rendered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ocpi_hub.db.health import PartnerHealth, Queue

if TYPE_CHECKING:
    from ocpi_hub.sync.run import SyncReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PARTNER_MODULE = ("partner", "module")


class Scraped(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self) -> None:
        self.queues: Sequence[Queue] = ()
        self.health: Sequence[PartnerHealth] = ()
        self.now: datetime | None = None

    def collect(self) -> Iterable[Metric]:
        backlog = GaugeMetricFamily(
            "ocpi_hub_delivery_backlog", "Deliveries waiting to reach the partner", labels=PARTNER_MODULE
        )
        oldest = GaugeMetricFamily(
            "ocpi_hub_delivery_oldest_waiting_seconds",
            "Age of the partner's oldest waiting delivery (0 when none waits)",
            labels=PARTNER_MODULE,
        )
        dead = GaugeMetricFamily(
            "ocpi_hub_delivery_dead_letters", "Deliveries given up on and kept for a retry", labels=PARTNER_MODULE
        )
        queues = {(q.partner_id, q.module): q for q in self.queues}
        # A partner and module with a health row and nothing queued: 0, rather than no sample.
        for key in sorted({*queues, *((h.partner_id, h.module) for h in self.health)}):
            labels = [str(key[0]), key[1]]
            q = queues.get(key) or Queue(key[0], key[1], 0, None, 0)
            backlog.add_metric(labels, q.waiting)
            age = 0.0
            if q.oldest_waiting_since is not None and self.now is not None:
                age = max((self.now - q.oldest_waiting_since).total_seconds(), 0.0)
            oldest.add_metric(labels, age)
            dead.add_metric(labels, q.dead)
        failing = GaugeMetricFamily(
            "ocpi_hub_partner_failing", "1 while pushes to the partner fail, else 0", labels=PARTNER_MODULE
        )
        success = GaugeMetricFamily(
            "ocpi_hub_delivery_last_success_timestamp_seconds",
            "When a delivery last reached the partner (Unix time)",
            labels=PARTNER_MODULE,
        )
        for h in self.health:
            labels = [str(h.partner_id), h.module]
            failing.add_metric(labels, 0 if h.failing_since is None else 1)
            if h.last_success_at is not None:
                success.add_metric(labels, h.last_success_at.timestamp())
        return [backlog, oldest, dead, failing, success]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ocpi_hub_requests", "Requests served, by route template", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "ocpi_hub_request_duration_seconds", "Time to answer, by route template", ["method", "route"], registry=r
        )
        self.sent = Counter(
            "ocpi_hub_deliveries_sent", "Deliveries that reached the partner", PARTNER_MODULE, registry=r
        )
        self.failed = Counter(
            "ocpi_hub_deliveries_failed",
            "Delivery attempts that failed (those given up on included)",
            PARTNER_MODULE,
            registry=r,
        )
        self.dead = Counter("ocpi_hub_deliveries_dead", "Deliveries given up on", PARTNER_MODULE, registry=r)
        self.sync_runs = Counter(
            "ocpi_hub_sync_runs", "Location sync runs by outcome (completed, stopped, failed)", ["outcome"], registry=r
        )
        self.sync_records = Counter(
            "ocpi_hub_sync_records",
            "Records of the location sync runs by outcome (created, updated, unchanged, rejected, removed)",
            ["outcome"],
            registry=r,
        )
        self.scraped = Scraped()
        r.register(self.scraped)
        # (method, route, status) -> the children of `requests` and `latency` it counts in: found through
        # `labels()` on every request, they cost as much as the rest of observing it.
        self._served: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def served(self, method: str, route: str, status: int, elapsed: float) -> None:
        """One HTTP request answered (ocpi_hub.api.observe)."""
        children = self._served.get((method, route, status))
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._served[method, route, status] = children
        children[0].inc()
        children[1].observe(elapsed)

    def sync_done(self, report: SyncReport | None) -> None:
        """A scheduled sync run ended (None: it failed)."""
        if report is None:
            self.sync_runs.labels("failed").inc()
            return
        self.sync_runs.labels("stopped" if report.stopped else "completed").inc()
        for outcome in ("created", "updated", "unchanged", "rejected", "removed"):
            self.sync_records.labels(outcome).inc(getattr(report, outcome))

    def render(self, queues: Sequence[Queue], health: Sequence[PartnerHealth], now: datetime) -> bytes:
        """The exposition text, with the database's view as of `now` (no await in between: nothing interleaves)."""
        self.scraped.queues, self.scraped.health, self.scraped.now = queues, health, now
        return generate_latest(self.registry)
