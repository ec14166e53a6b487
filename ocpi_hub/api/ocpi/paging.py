"""Pagination of OCPI list GETs (OCPI 2.2.1 §4.1.6, docs/ocpi.md §1.7): the query parameters and the response headers.

Choices where the spec is silent:
- A bad parameter (not a non-negative integer, an offset above 10^9, a DateTime that does not parse) is HTTP 200
  with status 2001 naming the parameter. Repeated parameters: the first counts.
- DateTimes without a designator are UTC (the spec's own examples omit the `Z`); offsets are converted.
- `limit` above our cap is capped (X-Limit says the cap); absent means the cap.
- `limit=0` asks for no objects: the answer is an empty page with X-Total-Count, and no Link, which would not move on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import msgspec

from ocpi_hub import errors
from ocpi_hub.ocpi.common import outside_utc

MAX_OFFSET = 10**9  # keeps offset + limit inside a 32-bit integer, the type of the positions it is compared with
_DIGITS = re.compile(r"[0-9]+")
_LONGEST = 18  # digits of a count read as a number; a longer one is larger than any page or offset
_HUGE: int = 10**_LONGEST  # stands for such a count (a `limit`, which is capped anyway)


@dataclass(frozen=True)
class PageRequest:
    """date_from inclusive, date_to exclusive (docs/ocpi.md §1.7); limit already capped."""

    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None


def _invalid(name: str, value: str, rule: str) -> errors.Invalid:
    return errors.Invalid(f"{name}: {value!r} {rule}")


def _count(params: Mapping[str, str], name: str, maximum: int | None = None) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value):
        raise _invalid(name, value[:40], "is not a non-negative integer")
    # Thousands of digits are still a number (docs/ocpi.md §11): judged by their length, since Python refuses to
    # convert more than 4300 digits, and never repeated whole in the answer.
    significant = value.lstrip("0") or "0"
    if len(significant) > _LONGEST:
        if maximum is not None:
            raise _invalid(name, significant[:20] + "…", f"is above {maximum}")
        return _HUGE
    if maximum is not None and int(significant) > maximum:
        raise _invalid(name, value, f"is above {maximum}")
    return int(significant)


def _datetime(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise _invalid(name, value, "is not a DateTime (such as 2019-01-28T12:00:00Z)") from None
    if (rule := outside_utc(parsed)) is not None:
        raise _invalid(name, value, rule)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def page_request(params: Mapping[str, str], *, cap: int) -> PageRequest:
    """The page asked for by the query parameters; raises errors.Invalid (2001) naming a bad one."""
    limit = _count(params, "limit")
    return PageRequest(
        offset=_count(params, "offset", MAX_OFFSET) or 0,
        limit=cap if limit is None else min(limit, cap),
        date_from=_datetime(params, "date_from"),
        date_to=_datetime(params, "date_to"),
    )


def page_headers(
    params: Mapping[str, str], page: PageRequest, *, total: int, returned: int, cap: int, url: str
) -> dict[str, str]:
    """X-Total-Count, X-Limit, and Link to the next page unless this is the last one. The Link repeats the
    request's filters as they were sent (docs/ocpi.md §1.7), and starts from `url`, which comes from our public URL."""
    headers = {"X-Total-Count": str(total), "X-Limit": str(cap)}
    following = page.offset + returned
    if returned and following < total:
        # offset and limit are integers we made; only the filters, as sent, need quoting (a `+` of an offset).
        filters = "".join(
            f"{name}={quote(params[name], safe='')}&" for name in ("date_from", "date_to") if name in params
        )
        headers["Link"] = f'<{url}?{filters}offset={following}&limit={page.limit}>; rel="next"'
    return headers
