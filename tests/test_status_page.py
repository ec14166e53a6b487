"""The status page (docs/operations.md §5) as an operator sees it: headless Chromium (the system's, driven by
Playwright) against the hub over HTTP. A partner that starts failing turns red with its own answer, then recovers.

Set OCPI_HUB_STATUS_SCREENSHOT to a path to keep the screenshot (docs/status-page.png was made so)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.push.worker import PushWorker
from tests.conftest import Hub, HubFactory, MovableClock
from tests.fake_emsp import Failure, FakeEmsp
from tests.servers import serve
from tests.test_push_delivery import LONGEST_WAIT, connect, put_location

CHROMIUM = Path("/usr/bin/chromium")
ADMIN_TOKEN = "admin-5ecret-never-shown"
# The partner's status_message: markup that must be shown as text, never run.
HOSTILE = "<script>alert(1)</script> backend down"

playwright = pytest.importorskip("playwright.async_api", reason="playwright is in the test extras")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)"
)


@pytest.fixture
async def second_emsp() -> AsyncIterator[FakeEmsp]:
    fake = FakeEmsp()
    async with serve(fake.app):
        yield fake


async def test_a_failing_partner_turns_red_with_its_answer_and_recovers(
    hub_factory: HubFactory,
    emsp: FakeEmsp,
    second_emsp: FakeEmsp,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    hub: Hub = await hub_factory(push_worker=False, admin_token=ADMIN_TOKEN)
    hub.http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    failing_id = await connect(hub, emsp, token="token-of-the-failing-emsp-0123456789")
    healthy_id = await connect(hub, second_emsp, token="token-of-the-healthy-emsp-0123456789")
    await put_location(hub, "LOC1")
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    assert (await hub.http.get(f"{hub.url}/status", headers={"Authorization": "Bearer wrong"})).status_code == 401

    async with playwright.async_playwright() as p, PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock)
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = await browser.new_context(
            extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, viewport={"width": 1400, "height": 900}
        )
        page = await context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        failing, healthy = page.locator(f"#partner-{failing_id}"), page.locator(f"#partner-{healthy_id}")
        expect = playwright.expect

        assert (await page.goto(f"{hub.url}/status")) is not None
        await expect(failing).to_have_attribute("data-health", "ok")
        await expect(failing.locator(".backlog")).to_have_text("1")
        await expect(page.locator("#evses tbody")).to_have_text("UNKNOWN1")

        emsp.failures = [Failure(http_status=503, status_code=3000, message=HOSTILE)]
        assert await worker.step() == 2  # one delivery per partner: the healthy one arrives, the other fails
        # No reload: the page refreshes itself.
        await expect(failing).to_have_class(re.compile(r"\bhealth-failing\b"), timeout=15_000)
        color = await failing.evaluate("row => getComputedStyle(row).backgroundColor")
        assert color == "rgb(253, 226, 225)"
        assert await failing.locator(".health").evaluate("cell => getComputedStyle(cell).color") == "rgb(176, 0, 32)"
        await expect(failing.locator(".answer")).to_have_text(f"HTTP 503, OCPI 3000, “{HOSTILE}”")
        await expect(healthy).to_have_attribute("data-health", "ok")
        await expect(healthy.locator(".backlog")).to_have_text("0")
        screenshot = Path(os.environ.get("OCPI_HUB_STATUS_SCREENSHOT") or tmp_path / "status.png")
        assert len(await page.screenshot(path=str(screenshot), full_page=True)) > 10_000
        html = await page.content()
        for secret in (ADMIN_TOKEN, "token-of-the-failing-emsp", "token-of-the-healthy-emsp"):
            assert secret not in html

        clock.advance(LONGEST_WAIT)
        assert await worker.step() == 1
        await page.reload()
        await expect(failing).to_have_attribute("data-health", "ok")
        await expect(failing.locator(".backlog")).to_have_text("0")
        await expect(failing.locator(".error")).to_have_class(re.compile(r"\bpast\b"))  # kept, greyed
        assert dialogs == []  # the partner's markup was shown, never run
        await browser.close()
