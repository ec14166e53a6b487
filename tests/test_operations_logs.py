"""The log (docs/operations.md §1): request ids on every line written while serving, one WARNING when a partner
starts failing and one INFO when it recovers, and no token anywhere, at DEBUG, in both formats."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import logs
from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.credentials_token import hash_token
from ocpi_hub.push.worker import PushWorker
from ocpi_hub.settings import SettingsError, load_settings
from ocpi_hub.sync.run import SyncReport
from ocpi_hub.sync.schedule import _Rejections
from tests.conftest import HubFactory, MovableClock
from tests.fake_emsp import ROLE, Failure, FakeEmsp
from tests.servers import serve
from tests.test_ocpi_tokens import RFID
from tests.test_push_delivery import LONGEST_WAIT, connect, eventually, pushes, put_location, seed_location
from tests.test_sync import record, write_json

Capture = Callable[[str, str], io.StringIO]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """The hub's log handler (ocpi_hub.logs) writing to a string; the logging setup as it was afterwards."""
    root = logging.getLogger()
    names = (*logs.SECRET_BEARING_LOGGERS, *logs.CHATTY_LOGGERS, "alembic")
    saved = root.level, list(root.handlers), {name: logging.getLogger(name).level for name in names}

    def start(level: str, log_format: str) -> io.StringIO:
        out = io.StringIO()
        logs.configure(level, "json" if log_format == "json" else "text", out)
        return out

    yield start
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def entries(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def worker_lines(out: io.StringIO, level: str) -> list[str]:
    return [e["message"] for e in entries(out) if e["logger"] == "ocpi_hub.push.worker" and e["level"] == level]


async def test_a_failing_partner_is_one_warning_and_its_recovery_one_info(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession], capture: Capture
) -> None:
    out = capture("DEBUG", "json")
    hub = await hub_factory(push_worker=False)  # the test drives the worker, step by step
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock)
        emsp.failures = [Failure(http_status=503, status_code=3000) for _ in range(3)]
        for _ in range(3):
            assert await worker.step() == 1
            clock.advance(LONGEST_WAIT)
        [warning] = worker_lines(out, "WARNING")
        assert warning.startswith(f"pushes to partner {partner_id} (DE/EMP) failing (locations): PUT ")
        assert warning.endswith("/LOC1: HTTP 503 (status_code 3000: told to fail)")
        assert worker_lines(out, "INFO") == []

        assert await worker.step() == 1  # delivered
        assert await worker.step() == 0
    assert worker_lines(out, "INFO") == [f"pushes to partner {partner_id} (DE/EMP) recovered (locations)"]
    assert len(worker_lines(out, "WARNING")) == 1
    assert len(pushes(emsp)) == 4


async def test_a_delivery_given_up_on_is_a_warning(hub_factory: HubFactory, emsp: FakeEmsp, capture: Capture) -> None:
    out = capture("INFO", "json")
    hub = await hub_factory(push_max_attempts=1)
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(http_status=400, status_code=2001)]
    await put_location(hub, "LOC1")
    await eventually(lambda: len(worker_lines(out, "WARNING")) == 2)
    failing, dead = worker_lines(out, "WARNING")
    assert failing.startswith(f"pushes to partner {partner_id} (DE/EMP) failing (locations)")
    assert dead.startswith(f"gave up on 1 locations delivery to partner {partner_id} (DE/EMP): PUT ")
    assert dead.endswith(": HTTP 400 (status_code 2001: told to fail)")


async def test_every_line_written_while_serving_carries_the_request_ids(
    hub_factory: HubFactory, capture: Capture
) -> None:
    out = capture("DEBUG", "text")
    hub = await hub_factory()
    ids = {"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}
    await hub.http.get(f"{hub.url}/ocpi/versions", headers=ids)
    await hub.http.get(f"{hub.url}/no/such/path", headers={"X-Request-ID": "req-2"})
    fresh = await hub.http.get(f"{hub.url}/health")
    lines = [line for line in out.getvalue().splitlines() if " ocpi_hub.requests: " in line]
    assert " DEBUG ocpi_hub.requests: GET /ocpi/versions (/ocpi/versions) 401 in " in lines[0]
    assert "[request_id=req-1 correlation_id=corr-1]" in lines[0]
    assert "(unmatched) 404" in lines[1]
    assert "[request_id=req-2 correlation_id=req-2]" in lines[1]
    generated = fresh.headers["x-request-id"]
    assert f"[request_id={generated} correlation_id={generated}]" in lines[2]


async def test_json_lines_carry_the_request_ids(hub_factory: HubFactory, capture: Capture) -> None:
    out = capture("DEBUG", "json")
    hub = await hub_factory()
    await hub.http.get(f"{hub.url}/health", headers={"X-Request-ID": "r", "X-Correlation-ID": "c"})
    [line] = [e for e in entries(out) if e["logger"] == "ocpi_hub.requests"]
    assert (line["level"], line["request_id"], line["correlation_id"]) == ("DEBUG", "r", "c")
    assert line["message"].startswith("GET /health (/health) 200 in ")


def test_a_schedule_names_a_rejected_record_only_when_it_is_new() -> None:
    told = _Rejections()

    def report(*reasons: str) -> SyncReport:
        return SyncReport("s.json", records=3, rejected=len(reasons), reasons=list(reasons))

    first = told.summary(report("record 1 (location 1): $.address: None is required"))
    assert first.splitlines()[1] == "rejected: record 1 (location 1): $.address: None is required"
    again = told.summary(report("record 2 (location 1): $.address: None is required", "record 3 (location 3): x"))
    assert again.splitlines()[1:] == [
        "rejected: record 3 (location 3): x",
        "... and 1 more rejected, named by an earlier run or beyond the first 100",
    ]


ADMIN = "admin-secret-token-0123456789"
TOKEN_A2 = "token-a-for-the-second-emsp"
TOKEN_B2 = "token-b-of-the-second-emsp"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_token_is_ever_logged(
    log_format: str,
    tmp_path: Path,
    database_url: str,
    hub_factory: HubFactory,
    emsp: FakeEmsp,
    capture: Capture,
) -> None:
    out = capture("DEBUG", log_format)
    source = write_json(tmp_path / "export.json", [record(7), {"uid": 8}])  # one rejected record
    hub = await hub_factory(admin_token=ADMIN, sync_source=source, sync_interval=3600)
    admin = {"Authorization": f"Bearer {ADMIN}"}

    # We register with the first eMSP.
    answer = await hub.api(
        "POST", "/register", headers=admin, json={"token": "token-a-of-emsp", "url": emsp.base_url + "/versions"}
    )
    assert answer.status_code == 201, answer.text
    # The second registers with us.
    second = FakeEmsp(roles=[ROLE | {"party_id": "EM2"}], accepted_tokens={TOKEN_B2})
    async with serve(second.app):
        assert (await hub.api("POST", "/register", headers=admin, json={"token": TOKEN_A2})).status_code == 201
        body = {"token": TOKEN_B2, "url": f"{second.base_url}/versions", "roles": second.roles}
        answer = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A2, json=body)
        assert answer.json()["status_code"] == 1000, answer.text
        token_c2 = answer.json()["data"]["token"]
        # Token PUTs.
        token = RFID | {"party_id": "EM2"}
        answer = await hub.ocpi("PUT", f"/ocpi/2.2.1/tokens/DE/EM2/{token['uid']}", token_c2, json=token)
        assert answer.status_code in (200, 201), answer.text
        # Pushes, and a partner that fails.
        location = await hub.api("POST", "/location/LOC1", headers=admin, json=seed_location())
        assert location.status_code == 201
        await eventually(lambda: len(pushes(emsp)) >= 1)
        emsp.failures = [Failure(http_status=500) for _ in range(3)]
        status = {"status": "CHARGING"}
        assert (await hub.api("POST", "/location/LOC1/evse/E1/status", headers=admin, json=status)).status_code == 200
        await eventually(lambda: "failing (locations)" in out.getvalue())
    await eventually(lambda: "sync of " in out.getvalue())  # the scheduled sync at start

    # And `ocpi-hub sync`, at DEBUG, in this format.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_HUB_")}
    environ |= {"OCPI_HUB_DATABASE_URL": database_url, "OCPI_HUB_LOG_LEVEL": "DEBUG", "OCPI_HUB_LOG_FORMAT": log_format}
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ocpi_hub.cli", "sync", "--source", source, env=environ, stdout=PIPE, stderr=PIPE
    )
    async with asyncio.timeout(120):
        stdout, stderr = await command.communicate()
    assert command.returncode == 0, stderr.decode()

    written = out.getvalue() + stdout.decode() + stderr.decode()
    assert "DEBUG" in written
    assert emsp.received_token_b is not None
    secrets = [ADMIN, "token-a-of-emsp", emsp.received_token_b, emsp.token_c, TOKEN_A2, TOKEN_B2, token_c2]
    for secret in secrets:
        for form in (secret, base64.b64encode(secret.encode()).decode(), hash_token(secret)):
            assert form not in written, secret


async def test_a_registration_accepted_or_refused_is_one_info_line(
    hub_factory: HubFactory, emsp: FakeEmsp, capture: Capture
) -> None:
    out = capture("INFO", "json")
    hub = await hub_factory()
    url = f"{emsp.base_url}/versions"
    emsp.failures = [Failure(http_status=500)]
    assert (await hub.api("POST", "/register", json={"token": "token-a-of-emsp", "url": url})).status_code == 502
    assert (await hub.api("POST", "/register", json={"token": "token-a-of-emsp", "url": url})).status_code == 201
    second = FakeEmsp(roles=[ROLE | {"party_id": "EM2"}], accepted_tokens={TOKEN_B2})
    async with serve(second.app):
        assert (await hub.api("POST", "/register", json={"token": TOKEN_A2})).status_code == 201
        body = {"token": TOKEN_B2, "url": f"{second.base_url}/versions", "roles": second.roles}
        await hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A2, json=body | {"roles": []})  # refused
        await hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A2, json=body)
    said = [(e["level"], e["message"]) for e in entries(out) if e["logger"].startswith("ocpi_hub.api.")]
    assert [level for level, _ in said] == ["INFO"] * 5
    assert said[0][1].startswith(f"registration with {url} refused: ")
    assert said[1][1] == f"registered with {url} as partner 1 (2.2.1)"
    assert said[2][1] == "partner 2 added (pending, token handed out of band)"
    assert said[3][1].startswith("credentials POST of partner 2 on 2.2.1 refused: ")
    assert said[4][1] == "credentials POST of partner 2 on 2.2.1 accepted: EMSP DE/EM2"


def test_the_log_format_is_text_or_json() -> None:
    assert load_settings({}).log_format == "text"
    assert load_settings({"OCPI_HUB_LOG_FORMAT": " JSON "}).log_format == "json"
    with pytest.raises(SettingsError, match=r"^OCPI_HUB_LOG_FORMAT: 'xml' must be one of json, text$"):
        load_settings({"OCPI_HUB_LOG_FORMAT": "xml"})


def test_anything_shaped_like_an_authorization_header_is_redacted() -> None:
    assert logs.redact("headers {'Authorization': 'Token c2VjcmV0'}") == "headers {'Authorization': '<redacted>'}"
    assert logs.redact("sent Bearer abcdefghijklmnopqrstuvwxyz") == "sent Bearer <redacted>"
    assert logs.redact("Token 1234 unknown") == "Token 1234 unknown"  # a token uid in words stays
