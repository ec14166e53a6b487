"""No partner call inside a database transaction, in both directions of the credentials handshake, and what a
registration that changed while we were calling the partner does (nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub import errors, registration
from ocpi_hub.client import OcpiClient
from ocpi_hub.db import partners
from ocpi_hub.db.partners import PartnerState
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.ocpi.credentials import Credentials, CredentialsRole
from ocpi_hub.settings import Settings
from tests.conftest import Hub, HubFactory
from tests.fake_emsp import ROLE, Failure, FakeEmsp
from tests.test_registration_by_partner import TOKEN_A, give_token_a, their_credentials


class Transactions:
    """The transactions open on every engine of this process, the hub's included (created inside the app)."""

    def __init__(self) -> None:
        self.open: set[Connection] = set()

    def begin(self, connection: Connection) -> None:
        self.open.add(connection)

    def end(self, connection: Connection) -> None:
        self.open.discard(connection)

    def count(self) -> int:
        return len(self.open)


@pytest.fixture
def transactions() -> Iterator[Transactions]:
    counter = Transactions()
    # On the Engine class, so that engines created later (the hub's, in its lifespan) are covered too.
    hooks = [("begin", counter.begin), ("commit", counter.end), ("rollback", counter.end)]
    for name, hook in hooks:
        event.listen(Engine, name, hook)
    try:
        yield counter
    finally:
        for name, hook in hooks:
            event.remove(Engine, name, hook)


@pytest.fixture
async def quiet_hub(hub_factory: HubFactory) -> Hub:
    """A hub without the push worker, whose own transactions would be counted alongside the handshake's."""
    return await hub_factory(push_worker=False)


def seen(emsp: FakeEmsp) -> list[tuple[str, str, int | None]]:
    return [(r.method, r.path, r.open_transactions) for r in emsp.requests]


async def test_credentials_post_and_put_call_the_partner_outside_transactions(
    quiet_hub: Hub, emsp: FakeEmsp, transactions: Transactions
) -> None:
    emsp.open_transactions = transactions.count
    await give_token_a(quiet_hub)
    response = await quiet_hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A, json=their_credentials(emsp))
    assert response.json()["status_code"] == 1000, response.text
    assert seen(emsp) == [("GET", "/versions", 0), ("GET", "/2.2.1", 0)]

    emsp.requests.clear()
    token_c = response.json()["data"]["token"]
    response = await quiet_hub.ocpi("PUT", "/ocpi/2.2.1/credentials", token_c, json=their_credentials(emsp, "b2"))
    assert response.json()["status_code"] == 1000, response.text
    assert seen(emsp) == [("GET", "/versions", 0), ("GET", "/2.2.1", 0)]


@pytest.mark.parametrize(
    ("status", "last_call"),
    [("PENDING", ("POST", "/2.2.1/credentials", 0)), ("REGISTERED", ("GET", "/2.2.1/credentials", 0))],
)
async def test_our_handshake_calls_the_partner_outside_transactions(
    quiet_hub: Hub, emsp: FakeEmsp, transactions: Transactions, status: str, last_call: tuple[str, str, int]
) -> None:
    emsp.open_transactions = transactions.count
    body = {"token": "token-a-of-emsp", "url": f"{emsp.base_url}/versions", "status": status}
    response = await quiet_hub.api("POST", "/register", json=body)
    assert response.status_code == 201, response.text
    assert seen(emsp) == [("GET", "/versions", 0), ("GET", "/2.2.1", 0), last_call]


async def held(
    emsp: FakeEmsp, request: Coroutine[Any, Any, httpx.Response]
) -> tuple[Awaitable[httpx.Response], asyncio.Event]:
    """Start `request`; once its first call reached the fake, return its answer and the event that lets that call
    go on."""
    reached, release = asyncio.Event(), asyncio.Event()
    emsp.failures.append(Failure(reached=reached, until=release))
    task = asyncio.create_task(request)
    async with asyncio.timeout(5):
        await reached.wait()
    return asyncio.wait_for(task, 10), release


async def test_put_that_meets_a_concurrent_delete_changes_nothing(
    quiet_hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await give_token_a(quiet_hub)
    posted = await quiet_hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A, json=their_credentials(emsp))
    token_c = posted.json()["data"]["token"]
    emsp.requests.clear()

    put = quiet_hub.ocpi("PUT", "/ocpi/2.2.1/credentials", token_c, json=their_credentials(emsp, "token-b2"))
    answer, release = await held(emsp, put)
    assert (await quiet_hub.ocpi("DELETE", "/ocpi/2.2.1/credentials", token_c)).json()["status_code"] == 1000
    release.set()
    response = await answer

    assert response.status_code == 409
    assert "while we called you back (it is now unregistered)" in response.json()["status_message"]
    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert (partner.state, partner.token, partner.token_hash) == ("unregistered", None, None)


async def test_second_post_with_the_same_token_a_issues_no_second_token(
    quiet_hub: Hub, emsp: FakeEmsp, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await give_token_a(quiet_hub)
    first = quiet_hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A, json=their_credentials(emsp, "token-b1"))
    answer, release = await held(emsp, first)
    second = await quiet_hub.ocpi("POST", "/ocpi/2.2.1/credentials", TOKEN_A, json=their_credentials(emsp))
    token_c = second.json()["data"]["token"]
    release.set()
    response = await answer

    assert response.status_code == 409
    assert "while we called you back (it is now registered)" in response.json()["status_message"]
    assert (await quiet_hub.ocpi("GET", "/ocpi/versions", token_c)).status_code == 200
    async with sessions() as session:
        [partner] = await partners.all_partners(session)
    assert partner.token == "token-b-of-emsp"  # the second POST's


@pytest.mark.parametrize(
    ("presented", "state", "now"),
    [
        ("token-a", PartnerState.SUSPENDED, "suspended"),  # suspended since the guard read it
        ("token-c", PartnerState.REGISTERED, "registered"),  # token replaced since the guard read it
    ],
)
async def test_accept_refuses_a_caller_that_changed_since_it_was_authenticated(
    sessions: async_sessionmaker[AsyncSession], presented: str, state: PartnerState, now: str
) -> None:
    async with sessions() as session:
        partner = await registration.add_pending(session, "token-a", registered=True, now=utc_now())
        partner.state = state
        await session.commit()

    def nobody(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"{request.url} was called")

    credentials = Credentials(
        token="b", url="http://127.0.0.1:9/versions", roles=[msgspec.convert(ROLE, CredentialsRole)]
    )
    with pytest.raises(errors.Conflict) as refused:
        await registration.accept(
            sessions,
            OcpiClient(httpx.MockTransport(nobody), timeout=5),
            Settings(),
            partner.id,
            credentials,
            presented_token=presented,
            version="2.2.1",
            now=utc_now(),
        )
    assert f"(it is now {now}): nothing was changed" in refused.value.message
