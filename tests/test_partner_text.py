"""Partners' text never breaks our bookkeeping (issue #13 §2, README "Security"): whatever a partner answers, NUL and
other control characters included, the outcome of the delivery is recorded, on SQLite and on PostgreSQL, and what
we store of it is escaped."""

from __future__ import annotations

import pytest

from ocpi_hub.db.text import storable
from tests.conftest import Hub
from tests.fake_emsp import Failure, FakeEmsp
from tests.test_push_delivery import connect, drained, failed, listed, make_due, put_location

NASTY = "bad\x00news\x1b[31m\x7f\x85 end"
ESCAPED = "bad\\x00news\\x1b[31m\\x7f\\x85 end"


@pytest.mark.parametrize(
    ("text", "limit", "stored"),
    [
        ("plain text, é 中", 100, "plain text, é 中"),
        (NASTY, 100, ESCAPED),
        ("lone \ud800 surrogate", 100, "lone \\ud800 surrogate"),
        ("tab\tand\r\nnewline", 100, "tab\\x09and\\x0d\\x0anewline"),
        ("x" * 20, 10, "x" * 9 + "…"),
        ("\x00" * 10, 10, "\\x00\\x00\\…"),
    ],
)
def test_storable(text: str, limit: int, stored: str) -> None:
    assert storable(text, limit) == stored


async def test_a_nul_in_a_transient_failure_is_recorded_and_retried_later(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(status_code=3000, message=NASTY)]
    await put_location(hub, "LOC1")
    pending = await failed(hub, partner_id, 1)  # recorded: one attempt, waiting for its retry
    assert ESCAPED in pending["last_error"]
    make_due(hub)
    await drained(hub, partner_id)


async def test_a_nul_in_a_refusal_makes_a_dead_letter(hub: Hub, emsp: FakeEmsp) -> None:
    partner_id = await connect(hub, emsp)
    emsp.failures = [Failure(http_status=400, status_code=2001, message=NASTY)]
    await put_location(hub, "LOC1")
    [dead] = await listed(hub, partner_id, "dead", lambda d: len(d) == 1)
    assert ESCAPED in dead["last_error"]
    assert dead["attempts"] == 1
