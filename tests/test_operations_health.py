"""Health checks, metrics and each partner's health in the internal API (docs/operations.md §2, §3)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.db.migrate import alembic_config
from ocpi_hub.push.worker import PushWorker
from tests.conftest import Hub, HubFactory, MovableClock
from tests.fake_emsp import Failure, FakeEmsp
from tests.test_push_delivery import LONGEST_WAIT, connect, drained, put_location
from tests.test_registration_by_partner import give_token_a


async def scrape(hub: Hub) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = await hub.http.get(f"{hub.url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def labels(partner_id: int, module: str = "locations") -> tuple[tuple[str, str], ...]:
    return (("module", module), ("partner", str(partner_id)))


async def partner(hub: Hub, partner_id: int) -> dict[str, object]:
    response = await hub.api("GET", f"/partners/{partner_id}")
    assert response.status_code == 200, response.text
    found: dict[str, object] = response.json()
    return found


async def test_health_and_ready(hub: Hub) -> None:
    assert (await hub.http.get(f"{hub.url}/health")).json() == {"status": "ok"}
    ready = await hub.http.get(f"{hub.url}/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_not_ready_while_the_schema_is_old_or_the_database_away(hub_factory: HubFactory, tmp_path: Path) -> None:
    old = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    config = alembic_config()
    config.attributes["url"] = old
    await asyncio.to_thread(command.upgrade, config, "0008")
    hub = await hub_factory(database_url=old, push_worker=False)
    answer = await hub.http.get(f"{hub.url}/ready")
    assert answer.status_code == 503
    assert answer.json()["status"] == "Service Unavailable"
    assert answer.json()["error"].startswith("database: schema at 0008, expected 0")
    assert answer.json()["error"].endswith(": run ocpi-hub migrate")
    away = await hub_factory(database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none", push_worker=False)
    answer = await away.http.get(f"{away.url}/ready")
    assert answer.status_code == 503
    assert answer.json()["error"].startswith("database: cannot be read (")
    assert (await away.http.get(f"{away.url}/health")).status_code == 200


async def test_metrics_are_behind_the_guard_and_count_requests_by_route(hub_factory: HubFactory) -> None:
    hub = await hub_factory(admin_token="s3cret")
    assert (await hub.http.get(f"{hub.url}/metrics")).status_code == 401
    await hub.http.get(f"{hub.url}/api/v0/partners/17", headers={"Authorization": "Bearer s3cret"})
    await hub.http.get(f"{hub.url}/nothing/here")
    answer = await hub.http.get(f"{hub.url}/metrics", headers={"Authorization": "Bearer s3cret"})
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    route = (("method", "GET"), ("route", "/api/v0/partners/{partner_id}"), ("status", "404"))
    assert samples[("ocpi_hub_requests_total", route)] == 1
    assert samples[("ocpi_hub_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert samples[("ocpi_hub_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "401")))] == 1
    timed = (("le", "+Inf"), ("method", "GET"), ("route", "/api/v0/partners/{partner_id}"))
    assert samples[("ocpi_hub_request_duration_seconds_bucket", timed)] == 1


async def test_backlog_and_the_age_of_the_oldest_waiting_delivery(hub_factory: HubFactory, emsp: FakeEmsp) -> None:
    hub = await hub_factory(push_worker=False)  # queues, never sends
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await put_location(hub, "LOC2")
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    clock.advance(90)
    samples = await scrape(hub)
    assert samples[("ocpi_hub_delivery_backlog", labels(partner_id))] == 2
    assert 90 <= samples[("ocpi_hub_delivery_oldest_waiting_seconds", labels(partner_id))] < 120
    shown = await partner(hub, partner_id)
    assert (shown["health"], shown["backlog"], shown["last_success_at"], shown["last_error"]) == ("ok", 2, None, None)
    assert 90 <= float(str(shown["oldest_waiting_seconds"])) < 120


async def test_a_failing_partner_shows_in_the_api_and_the_metrics_until_it_recovers(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_worker=False)
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock)
        emsp.failures = [Failure(http_status=503, status_code=3000)]
        assert await worker.step() == 1

        shown = await partner(hub, partner_id)
        assert (shown["health"], shown["backlog"], shown["last_success_at"]) == ("failing", 1, None)
        error = shown["last_error"]
        assert isinstance(error, dict)
        assert (error["module"], error["http_status"], error["ocpi_status"], error["ocpi_message"]) == (
            "locations",
            503,
            3000,
            "told to fail",
        )
        assert error["error"].endswith("/LOC1: HTTP 503 (status_code 3000: told to fail)")
        samples = await scrape(hub)
        assert samples[("ocpi_hub_partner_failing", labels(partner_id))] == 1
        [listed] = (await hub.api("GET", "/partners")).json()
        assert (listed["health"], listed["last_error"]) == (shown["health"], shown["last_error"])

        clock.advance(LONGEST_WAIT)
        assert await worker.step() == 1
    shown = await partner(hub, partner_id)
    assert (shown["health"], shown["backlog"]) == ("ok", 0)
    assert shown["last_success_at"] is not None
    assert shown["last_error"] == error  # kept, for the operator who asks what happened
    samples = await scrape(hub)
    assert samples[("ocpi_hub_partner_failing", labels(partner_id))] == 0
    assert samples[("ocpi_hub_delivery_last_success_timestamp_seconds", labels(partner_id))] > 0


async def test_every_round_that_delivers_moves_last_success_at_and_logs_nothing(
    hub_factory: HubFactory,
    emsp: FakeEmsp,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = await hub_factory(push_worker=False)
    partner_id = await connect(hub, emsp)
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock)
        for name in ("LOC1", "LOC2", "LOC3"):
            await put_location(hub, name)
            before = clock()
            with caplog.at_level(logging.INFO, logger="ocpi_hub.push.worker"):
                assert await worker.step() == 1
            after = clock()
            shown = await partner(hub, partner_id)
            assert (shown["health"], shown["backlog"], shown["last_error"]) == ("ok", 0, None)
            assert before <= datetime.fromisoformat(str(shown["last_success_at"])) <= after  # this round's time
            clock.advance(60)
    assert not [r for r in caplog.records if r.name == "ocpi_hub.push.worker"]  # no state changed


async def test_the_worker_counts_what_it_sent(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    await drained(hub, partner_id)
    samples = await scrape(hub)
    assert samples[("ocpi_hub_deliveries_sent_total", labels(partner_id))] == 1
    assert samples[("ocpi_hub_delivery_backlog", labels(partner_id))] == 0


async def test_deleting_a_pending_partner_removes_it_and_its_token_a(hub: Hub) -> None:
    await give_token_a(hub, "token-a-to-forget")
    [pending] = (await hub.api("GET", "/partners")).json()
    assert (await hub.ocpi("GET", "/ocpi/versions", "token-a-to-forget")).status_code == 200
    assert (await hub.api("DELETE", f"/partners/{pending['id']}")).status_code == 204
    assert (await hub.api("GET", "/partners")).json() == []
    assert (await hub.ocpi("GET", "/ocpi/versions", "token-a-to-forget")).status_code == 401
    assert (await hub.api("GET", f"/partners/{pending['id']}")).status_code == 404
    assert (await hub.api("DELETE", f"/partners/{pending['id']}")).status_code == 404


async def test_deleting_a_registered_partner_unregisters_it_and_drops_its_deliveries(
    hub_factory: HubFactory, emsp: FakeEmsp
) -> None:
    hub = await hub_factory(push_worker=False)
    partner_id = await connect(hub, emsp)  # the token is agreed for both directions
    await put_location(hub, "LOC1")
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/locations", "token-a-of-emsp")).status_code == 200
    assert (await hub.api("DELETE", f"/partners/{partner_id}")).status_code == 204
    shown = await partner(hub, partner_id)
    assert (shown["state"], shown["backlog"]) == ("unregistered", 0)
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/locations", "token-a-of-emsp")).status_code == 401
    again = await hub.api("DELETE", f"/partners/{partner_id}")
    assert again.status_code == 409
    assert again.json() == {"status": "Conflict", "error": f"partner {partner_id} is already unregistered"}
