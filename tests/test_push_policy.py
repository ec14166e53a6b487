"""When a failed push is tried again (README: "Retries and dead letters"): the tenacity schedule evaluated on the stored
attempt count and age, the transient/permanent split, and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ocpi_hub.client import PartnerCallError
from ocpi_hub.push import retry
from ocpi_hub.settings import SettingsError, load_settings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
POLICY = retry.policy(max_attempts=10, max_age=86400)
TRANSIENT = PartnerCallError("PUT x: HTTP 500", transient=True, http_status=500)


def wait_after(attempts: int, error: PartnerCallError = TRANSIENT, age: float = 0.0) -> float | None:
    first = NOW - timedelta(seconds=age)
    when = retry.next_attempt_at(POLICY, error, attempts=attempts, first_enqueued_at=first, now=NOW)
    return None if when is None else (when - NOW).total_seconds()


def test_the_backoff_grows_with_jitter_up_to_an_hour() -> None:
    for attempts, base in [(1, 1), (2, 4), (3, 16), (4, 64), (7, 3600), (9, 3600)]:
        waits = {wait_after(attempts) for _ in range(20)}
        assert all(w is not None and base <= w <= min(base + 1, 3600) for w in waits), (attempts, waits)
    assert len({wait_after(1) for _ in range(20)}) > 1  # jitter


def test_given_up_after_the_attempts_or_the_age() -> None:
    assert wait_after(10) is None
    assert wait_after(3, age=86400) is None
    assert wait_after(3, age=86399) is not None


@pytest.mark.parametrize(
    "error",
    [
        PartnerCallError("HTTP 401", transient=False, http_status=401),
        PartnerCallError("status_code 2001", transient=False, status_code=2001, http_status=200),
    ],
)
def test_permanent_failures_are_given_up_at_once(error: PartnerCallError) -> None:
    assert wait_after(1, error) is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Sat, 21 Nov 2026 12:05:00 GMT", 300.0),
        ("Sat, 21 Nov 2026 11:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after(header: str, seconds: float | None) -> None:
    assert retry.retry_after_seconds(header, now=NOW) == seconds


def test_retry_after_raises_the_wait_but_never_lowers_it() -> None:
    limited = PartnerCallError("HTTP 429", transient=True, http_status=429, retry_after="600")
    assert wait_after(1, limited) == 600.0
    quick = PartnerCallError("HTTP 503", transient=True, http_status=503, retry_after="0")
    wait = wait_after(4, quick)
    assert wait is not None
    assert wait >= 64


def test_settings() -> None:
    defaults = load_settings({})
    assert (defaults.push_max_attempts, defaults.push_max_age, defaults.push_worker) == (10, 86400.0, True)
    environ = {"OCPI_HUB_PUSH_MAX_ATTEMPTS": "3", "OCPI_HUB_PUSH_MAX_AGE": "600", "OCPI_HUB_PUSH_WORKER": "false"}
    settings = load_settings(environ)
    assert (settings.push_max_attempts, settings.push_max_age, settings.push_worker) == (3, 600.0, False)
    with pytest.raises(SettingsError, match="OCPI_HUB_PUSH_MAX_ATTEMPTS"):
        load_settings({"OCPI_HUB_PUSH_MAX_ATTEMPTS": "0"})
    with pytest.raises(SettingsError, match="OCPI_HUB_PUSH_WORKER"):
        load_settings({"OCPI_HUB_PUSH_WORKER": "sometimes"})
