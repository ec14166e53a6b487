"""What happened with a partner (docs/operations.md §7): sent deliveries kept a while, and the OCPI traffic log in
both directions, with no token anywhere."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.client import OcpiClient, PoolPerOrigin
from ocpi_hub.db import traffic as db_traffic
from ocpi_hub.db.traffic import SentDelivery, TrafficEntry
from ocpi_hub.push.worker import PushWorker
from ocpi_hub.traffic import Direction, TrafficLog, attribute, safe_body, safe_path, talking_to
from tests.conftest import Hub, HubFactory, MovableClock
from tests.fake_emsp import Failure, FakeEmsp
from tests.test_push_delivery import LOCATIONS, connect, poll, put_location, set_status
from tests.test_registration_by_partner import TOKEN_A, TOKEN_B, give_token_a, their_credentials


async def traffic(hub: Hub, partner_id: int, **params: Any) -> list[dict[str, Any]]:
    response = await hub.api("GET", f"/partners/{partner_id}/traffic", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def sent(hub: Hub, partner_id: int) -> list[dict[str, Any]]:
    response = await hub.api("GET", f"/partners/{partner_id}/deliveries", params={"state": "sent"})
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["deliveries"]
    return listed


async def partner_id_of(hub: Hub) -> int:
    [partner] = (await hub.api("GET", "/partners")).json()
    found: int = partner["id"]
    return found


def secrets_of(*tokens: str) -> list[str]:
    """Each token as it may appear: in clear and in Base64."""
    return [form for token in tokens for form in (token, base64.b64encode(token.encode()).decode())]


async def stored_text(sessions: async_sessionmaker[AsyncSession]) -> str:
    """Every value of the traffic and sent deliveries tables, as one text."""
    async with sessions() as session:
        rows = [
            *(await session.execute(text("SELECT * FROM traffic"))).all(),
            *(await session.execute(text("SELECT * FROM sent_deliveries"))).all(),
        ]
    return "\n".join(repr(tuple(row)) for row in rows)


async def register_crawl_and_receive(hub: Hub, emsp: FakeEmsp) -> tuple[int, str]:
    """A partner registers with token A (we call it back), crawls our Locations, and receives our push; returns its
    id and the token C it was given."""
    stored = await put_location(hub, "LOC1")
    await give_token_a(hub)
    partner_id = await partner_id_of(hub)
    answer = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A, json=their_credentials(emsp))
    assert answer.status_code == 200, answer.text
    token_c: str = answer.json()["data"]["token"]
    ids = {"X-Request-ID": "crawl-1", "X-Correlation-ID": "corr-1"}
    crawled = await hub.ocpi("GET", "/ocpi/2.2.1/locations?limit=10", token_c, headers=ids)
    assert crawled.status_code == 200, crawled.text
    unknown = await hub.ocpi("GET", "/ocpi/2.2.1/locations/NL/OHB/NOPE", token_c)
    assert unknown.status_code == 404
    await poll(lambda: sent(hub, partner_id), lambda s: len(s) == 1)
    [put] = emsp.received("PUT", LOCATIONS)
    assert put.body == stored
    return partner_id, token_c


@pytest.mark.parametrize("bodies", [False, True])
async def test_both_directions_are_logged_with_statuses_ids_and_durations_and_never_a_token(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession], bodies: bool
) -> None:
    hub = await hub_factory(traffic_bodies=bodies)
    partner_id, token_c = await register_crawl_and_receive(hub, emsp)
    [put] = emsp.received("PUT", LOCATIONS)

    def shown(entry: dict[str, Any]) -> tuple[Any, ...]:
        return entry["direction"], entry["method"], entry["path"], entry.get("http_status"), entry.get("ocpi_status")

    entries = await poll(
        lambda: traffic(hub, partner_id), lambda found: any(e["path"] == f"{LOCATIONS}/LOC1" for e in found)
    )
    # The push runs alongside the crawl: the order of the rest is checked below, by id.
    assert sorted(map(shown, entries)) == sorted(
        [
            ("outbound", "GET", "/versions", 200, 1000),  # the call back during its registration: its traffic too
            ("outbound", "GET", "/2.2.1", 200, 1000),
            ("inbound", "POST", "/ocpi/2.2.1/credentials", 200, 1000),
            ("inbound", "GET", "/ocpi/2.2.1/locations?limit=10", 200, 1000),
            ("inbound", "GET", "/ocpi/2.2.1/locations/NL/OHB/NOPE", 404, 2003),
            ("outbound", "PUT", f"{LOCATIONS}/LOC1", 200, 1000),
        ]
    )
    inbound = [e["path"] for e in reversed(entries) if e["direction"] == "inbound"]
    assert inbound == ["/ocpi/2.2.1/credentials", "/ocpi/2.2.1/locations?limit=10", "/ocpi/2.2.1/locations/NL/OHB/NOPE"]
    by_path = {e["path"]: e for e in entries}
    crawl = by_path["/ocpi/2.2.1/locations?limit=10"]
    assert (crawl["request_id"], crawl["correlation_id"]) == ("crawl-1", "corr-1")
    pushed = by_path[f"{LOCATIONS}/LOC1"]
    assert pushed["request_id"] == put.headers["x-request-id"]
    assert pushed["correlation_id"] == put.headers["x-correlation-id"]
    assert all(e["duration_ms"] >= 0 and e["at"].endswith(("Z", "+00:00")) for e in entries)
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)  # newest first

    # The sent delivery names the same call.
    [delivery] = await sent(hub, partner_id)
    assert (delivery["state"], delivery["method"], delivery["object_id"]) == ("sent", "PUT", "LOC1")
    assert (delivery["http_status"], delivery["ocpi_status"], delivery["attempts"]) == (200, 1000, 1)
    assert delivery["request_id"] == put.headers["x-request-id"]

    # Bodies only when asked for; tokens never, in the answer or in the tables.
    if bodies:
        assert pushed["request_body"].startswith("{")
        assert '"LOC1"' in pushed["request_body"]
        assert '"data":' in by_path["/ocpi/2.2.1/locations?limit=10"]["response_body"]
        credentials = by_path["/ocpi/2.2.1/credentials"]
        assert '"token":"<redacted>"' in credentials["request_body"].replace(" ", "")
        assert '"token":"<redacted>"' in credentials["response_body"].replace(" ", "")
    else:
        assert not any("request_body" in e or "response_body" in e for e in entries)
    everything = (await hub.api("GET", f"/partners/{partner_id}/traffic")).text + await stored_text(sessions)
    for secret in secrets_of(TOKEN_A, TOKEN_B, token_c):
        assert secret not in everything
    assert "authorization" not in everything.lower()


async def test_a_call_that_got_no_answer_is_logged_with_why(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_worker=False)
    partner_id = await connect(hub, emsp)
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    await put_location(hub, "LOC1")
    log = TrafficLog(sessions, bodies=False, clock=clock)
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2, traffic=log), hub.settings, clock=clock)
        emsp.failures = [Failure(drop=True)]
        assert await worker.step() == 1
    await log.flush()
    [entry] = await traffic(hub, partner_id)
    assert (entry["direction"], entry["method"], entry["path"]) == ("outbound", "PUT", f"{LOCATIONS}/LOC1")
    assert "http_status" not in entry
    assert "ocpi_status" not in entry
    assert entry["error"].startswith("RemoteProtocolError")
    assert await sent(hub, partner_id) == []


async def test_sent_deliveries_and_traffic_go_after_their_retention(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_worker=False, sent_retention=3600, traffic_retention=7200)
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock)
        assert await worker.step() == 1
        assert [d["object_id"] for d in await sent(hub, partner_id)] == ["LOC1"]
        assert (await hub.ocpi("GET", "/ocpi/2.2.1/locations", "token-a-of-emsp")).status_code == 200
        assert len(await traffic(hub, partner_id, direction="inbound")) == 1

        async def counts() -> tuple[int, int]:
            async with sessions() as session:
                kept = await session.scalar(select(func.count()).select_from(SentDelivery))
                logged = await session.scalar(select(func.count()).select_from(TrafficEntry))
            return kept or 0, logged or 0

        clock.advance(3601)
        assert await sent(hub, partner_id) == []  # past its retention: no longer shown
        assert await counts() == (1, 1)  # and gone at the next housekeeping
        await worker.step()
        assert await counts() == (0, 1)
        clock.advance(3600)
        await worker.step()
        assert await counts() == (0, 0)
        assert await traffic(hub, partner_id) == []


async def test_one_partners_traffic_is_not_shown_under_anothers(hub: Hub, emsp: FakeEmsp) -> None:
    first = await connect(hub, emsp)
    await give_token_a(hub)
    second = max(p["id"] for p in (await hub.api("GET", "/partners")).json())
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/locations", "token-a-of-emsp")).status_code == 200
    assert (await hub.ocpi("GET", "/ocpi/versions", TOKEN_A)).status_code == 200
    # Token A opens only versions and credentials: refused, yet the partner is known, so it is its traffic.
    assert (await hub.ocpi("GET", "/ocpi/2.2.1/locations", TOKEN_A)).status_code == 401
    # A token nobody has: nobody's traffic.
    assert (await hub.ocpi("GET", "/ocpi/versions", "no-such-token")).status_code == 401
    mine = [(e["method"], e["path"], e["http_status"]) for e in await traffic(hub, first, direction="inbound")]
    theirs = [(e["method"], e["path"], e["http_status"]) for e in await traffic(hub, second)]
    assert mine == [("GET", "/ocpi/2.2.1/locations", 200)]
    assert theirs == [("GET", "/ocpi/2.2.1/locations", 401), ("GET", "/ocpi/versions", 200)]
    assert await traffic(hub, second, direction="outbound") == []
    missing = await hub.api("GET", "/partners/999/traffic")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no partner with id 999"


async def test_pages_newest_first(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    for i in range(5):
        await hub.ocpi("GET", f"/ocpi/2.2.1/locations?offset={i}", "token-a-of-emsp")
    response = await hub.api("GET", f"/partners/{partner_id}/traffic", params={"limit": 2, "direction": "inbound"})
    page = response.json()
    assert [e["path"] for e in page["entries"]] == ["/ocpi/2.2.1/locations?offset=4", "/ocpi/2.2.1/locations?offset=3"]
    seen = [e["path"] for e in page["entries"]]
    while page["next_before"] is not None:
        params = {"limit": 2, "direction": "inbound", "before": page["next_before"]}
        page = (await hub.api("GET", f"/partners/{partner_id}/traffic", params=params)).json()
        seen += [e["path"] for e in page["entries"]]
    assert seen == [f"/ocpi/2.2.1/locations?offset={i}" for i in reversed(range(5))]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("traffic", {"direction": "sideways"}, "direction"),
        ("traffic", {"limit": "0"}, "limit"),
        ("traffic", {"limit": "1001"}, "limit"),
        ("traffic", {"limit": "many"}, "limit"),
        ("traffic", {"before": "0"}, "before"),
        ("traffic", {"before": "yesterday"}, "before"),
        ("traffic", {"before": "99999999999"}, "before"),
        ("deliveries", {"state": "arrived"}, "state"),
    ],
)
async def test_bad_query_values_are_400_naming_the_field(
    hub: Hub, emsp: FakeEmsp, path: str, params: dict[str, str], field: str
) -> None:
    partner_id = await connect(hub, emsp)
    response = await hub.api("GET", f"/partners/{partner_id}/{path}", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}:"), response.text


async def test_written_at_shutdown_and_bounded_while_waiting(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    partner_id = await connect(hub, emsp)
    registry = CollectorRegistry()
    log = TrafficLog(sessions, bodies=False, clock=hub.clock, registry=registry, capacity=2)
    log.start()
    with talking_to(partner_id):
        for _ in range(3):
            log.outbound("GET", "https://emsp.example.com/x", headers={}, elapsed=0.01, http_status=200, ocpi_status=1)
    assert registry.get_sample_value("ocpi_hub_traffic_dropped_total") == 1  # the third did not fit
    await log.stop()  # written before the writer's second was up
    outbound = await traffic(hub, partner_id, direction=Direction.OUTBOUND)
    assert [e["path"] for e in outbound] == ["/x", "/x"]


async def test_an_inbound_answers_ocpi_status_is_read_whole_or_in_parts(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The status_code is read from the end of the answer when its last part goes out, also when an answer sent in
    parts splits it; an answer that is no envelope has none."""
    partner_id = await connect(hub, emsp)
    log = TrafficLog(sessions, bodies=False, clock=hub.clock)
    envelope = b'{"data":[' + b"1," * 3000 + b'1],"status_code":2001,"status_message":"x","timestamp":"t"}'
    split = envelope.index(b"code") + 2
    answers = {
        "/ocpi/whole": [envelope],
        "/ocpi/in-parts": [envelope[:split], envelope[split:], b""],
        "/ocpi/no-envelope": [b"<html>status_code</html>"],
    }
    for path, parts in answers.items():
        watch, _ = log.watch({"path": path, "method": "GET", "query_string": b""}, receive_nothing)
        assert watch is not None
        try:
            attribute(partner_id)  # as authentication does
            watch.sent({"type": "http.response.start", "status": 200, "headers": []})
            for n, part in enumerate(parts, start=1):
                watch.sent({"type": "http.response.body", "body": part, "more_body": n < len(parts)})
            watch.done(200, 0.001, "r", "c")
        finally:
            watch.close()
    assert await log.flush() == 3
    inbound = await traffic(hub, partner_id, direction=Direction.INBOUND)
    assert {e["path"]: e.get("ocpi_status") for e in inbound if e["path"] in answers} == {
        "/ocpi/whole": 2001,
        "/ocpi/in-parts": 2001,
        "/ocpi/no-envelope": None,
    }


async def receive_nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def test_what_is_kept_of_paths_and_bodies() -> None:
    assert (
        safe_path("/v/locations", "api_key=s3cr3t&limit=5&Token=x")
        == "/v/locations?api_key=<redacted>&limit=5&Token=<redacted>"
    )
    assert safe_path("/v/locations", "offset=5") == "/v/locations?offset=5"
    # Matched as (?i) matches, beyond ASCII too: U+017F (long s) is an "s" to it, though its lowercase is not "s".
    # A matrix parameter of the path counts as well.
    assert safe_path("/v", "a=1&\u017fig=x") == "/v?a=1&\u017fig=<redacted>"
    assert safe_path("/ocpi/tokens;apikey=k", "offset=5") == "/ocpi/tokens;apikey=<redacted>"
    cut = safe_body(b'{"token": "abc\\"def", "url": "u", "roles": []}')
    assert cut == '{"token": "<redacted>", "url": "u", "roles": []}'
    assert safe_body(b'{"token":"never-seen-in-ful') == '{"token":"<redacted>"'
    assert safe_body(b'{"a":"\x00"}') == '{"a":"\\x00"}'
    assert safe_body(b"x" * 10_000) == "x" * 3999 + "…"
    assert safe_body(b"") is None


async def test_a_sent_delivery_keeps_what_was_sent(
    hub_factory: HubFactory, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    hub = await hub_factory(push_worker=False)
    clock = hub.clock
    assert isinstance(clock, MovableClock)
    partner_id = await connect(hub, emsp)
    await put_location(hub, "LOC1")
    async with PoolPerOrigin() as pools:
        worker = PushWorker(sessions, OcpiClient(pools, timeout=2), hub.settings, clock=clock)
        await worker.step()
        await set_status(hub, "LOC1", "E1", "CHARGING")
        clock.advance(1)
        await worker.step()
    newest, first = await sent(hub, partner_id)
    assert (first["method"], first.get("evse_uid"), first.get("fields")) == ("PUT", None, None)
    assert (newest["method"], newest["evse_uid"], newest["fields"]) == ("PATCH", "E1", ["status"])
    assert newest["sent_at"] > first["sent_at"]


async def test_entries_of_a_partner_removed_meanwhile_are_left_out_and_the_rest_written(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An entry waits up to a second: its partner (a pending registration) may be deleted meanwhile. The batch is
    written without it, on both databases' foreign keys."""
    partner_id = await connect(hub, emsp)
    log = TrafficLog(sessions, bodies=False, clock=hub.clock)
    for who, path in ((partner_id, "/kept-1"), (partner_id + 1000, "/gone"), (partner_id, "/kept-2")):
        with talking_to(who):
            log.outbound(
                "GET", f"https://emsp.example.com{path}", headers={}, elapsed=0.01, http_status=200, ocpi_status=1
            )
    assert await log.flush() == 2
    outbound = await traffic(hub, partner_id, direction=Direction.OUTBOUND)
    assert sorted(e["path"] for e in outbound) == ["/kept-1", "/kept-2"]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TrafficEntry)) == 2


async def test_a_batch_longer_than_one_statement_is_written_whole_and_in_order(
    hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """On SQLite a batch is inserted as one statement of many rows, 1,000 at most (db/traffic.py): a longer one
    is cut, and every entry arrives with its own values, in order."""
    partner_id = await connect(hub, emsp)
    at = hub.clock()
    no_error_nor_bodies = (None, None, None)
    rows = [
        (
            partner_id,
            at,
            "inbound",
            "GET",
            f"/locations?offset={n}",
            200,
            1000,
            n / 100,
            f"r{n}",
            None,
            *no_error_nor_bodies,
        )
        for n in range(1001)
    ]
    async with sessions() as session:
        assert await db_traffic.add_entries(session, rows) == 1001
    async with sessions() as session:
        stored = (await session.execute(select(TrafficEntry).order_by(TrafficEntry.id))).scalars().all()
    assert [(e.path, e.duration_ms, e.request_id, e.correlation_id) for e in stored] == [
        (f"/locations?offset={n}", n / 100, f"r{n}", None) for n in range(1001)
    ]
    assert {e.at for e in stored} == {at}
