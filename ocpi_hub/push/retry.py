"""When a failed push is tried again (README: "Retries and dead letters"): tenacity configured once, evaluated against
the attempt count and the age kept in the deliveries table, so that the schedule survives a restart.

Transient (retried with exponential backoff and jitter): connection errors, timeouts, HTTP 5xx, 408, 429 and OCPI
3xxx, as `PartnerCallError.transient` says. Everything else (other 4xx, OCPI 2xxx, a 401 because the partner
changed its credentials) is permanent: no blind retry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from ocpi_hub.client import PartnerCallError

# 1 s, 4 s, 16 s, ... capped at one hour: the first retries are quick (eMSPs expect statuses within seconds),
# and the defaults (10 attempts, one day) spread the last ones over hours. Jitter keeps lanes from retrying in step.
BACKOFF = wait_exponential_jitter(multiplier=1, exp_base=4, max=3600, jitter=1)


def _transient(error: BaseException) -> bool:
    return isinstance(error, PartnerCallError) and error.transient


def policy(*, max_attempts: int, max_age: float) -> AsyncRetrying:
    """The retry policy of pushes; only its `retry`, `stop` and `wait` are used (the worker does the waiting)."""
    return AsyncRetrying(
        retry=retry_if_exception(_transient),
        stop=stop_after_attempt(max_attempts) | stop_after_delay(max_age),
        wait=BACKOFF,
    )


def next_attempt_at(
    retrying: AsyncRetrying, error: PartnerCallError, *, attempts: int, first_enqueued_at: datetime, now: datetime
) -> datetime | None:
    """When to try again after the `attempts`-th failed attempt, or None: give up (dead letter)."""
    state = RetryCallState(retrying, None, (), {})
    state.attempt_number = attempts
    state.set_exception((type(error), error, None))
    # stop_after_delay measures from the first attempt; ours is the first enqueue, kept in the table.
    state.start_time = 0.0
    state.outcome_timestamp = (now - first_enqueued_at).total_seconds()
    if not retrying.retry(state) or retrying.stop(state):
        return None
    wait = retrying.wait(state)
    asked = retry_after_seconds(error.retry_after, now=now)
    return now + timedelta(seconds=max(wait, asked or 0.0))


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """A Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP date) as seconds from `now`."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: the backoff alone decides
    if when.tzinfo is None:  # an HTTP date is always GMT; parsedate leaves "-0000" naive
        return None
    return max((when - now).total_seconds(), 0.0)
