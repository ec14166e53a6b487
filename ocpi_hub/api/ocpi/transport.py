"""OCPI transport rules shared by every module (OCPI 2.2.1 §4, docs/ocpi.md §1): the envelope, request ids, request
bodies and routing headers, each built in this one place."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response

from ocpi_hub import errors
from ocpi_hub.ocpi.common import Envelope, StatusCode, json_encoder
from ocpi_hub.settings import Settings

T = TypeVar("T")

AnyRequest = Request[Any, Any, Any]


def enveloped(data: bytes, timestamp: bytes) -> bytes:
    """The success envelope (§4.1.7) around JSON that is already encoded, in the field order of `Envelope`."""
    return b"".join(
        (b'{"data":', data, b',"status_code":1000,"status_message":"Success","timestamp":', timestamp, b"}")
    )


def envelope(
    data: Any,
    *,
    now: Callable[[], datetime],
    http_status: int = 200,
    headers: dict[str, str] | None = None,
    status_code: StatusCode = StatusCode.SUCCESS,
    status_message: str = "Success",
) -> Response[bytes]:
    """An answer with `data` (an OCPI object, a list of them, or None: then `data` is left out); a success unless
    told otherwise (a command REJECTED with 2003 carries its CommandResponse too, docs/cpo-modules.md §6.5)."""
    body = Envelope[Any](data=data, status_code=status_code, status_message=status_message, timestamp=now())
    return Response(json_encoder.encode(body), status_code=http_status, media_type="application/json", headers=headers)


def error_body(status_code: int, message: str, now: datetime) -> bytes:
    return json_encoder.encode(Envelope[None](status_code=status_code, status_message=message, timestamp=now))


class _RequestIds:
    """Fresh request ids shaped like UUIDs: a random prefix per process and a counter. They need to be unique, not
    secret, and a uuid4 per request cost 4% of the Locations list's time."""

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]  # 8-4-4-4 hex digits and their dashes
        self._counter = itertools.count()

    def next(self) -> bytes:
        return f"{self._prefix}{next(self._counter) % 2**48:012x}".encode()


_request_ids = _RequestIds()
new_request_id = _request_ids.next


async def decode_body(request: AnyRequest, type_: type[T]) -> T:
    """Not JSON: HTTP 400. JSON of the wrong shape: HTTP 200 with 2001 naming the field and the rule (§4.1.7)."""
    raw = await request.body()
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise errors.Invalid(f"invalid {type_.__name__}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise errors.Malformed(f"the body is not valid JSON: {exc}") from None


# Configuration modules are not routed (§4.1.5): their answers carry no routing headers, errors included.
_CONFIGURATION_MODULES = frozenset({"versions", "credentials", "hubclientinfo"})


def routing_headers(request: AnyRequest, settings: Settings, caller_party: tuple[str, str] | None) -> dict[str, str]:
    """The routing headers of our answer, success or error (§4.1.5): on a functional module
    (/ocpi/{version}/{module}/...), the request's, from and to swapped; absent ones are filled in from what we know
    (our default party; the caller's first role once it is known)."""
    # The scope's path, not request.url: building the URL object cost a tenth of a page read from the database.
    parts = request.scope["path"].strip("/").split("/")
    if len(parts) < 3 or parts[2] in _CONFIGURATION_MODULES:
        return {}
    sent = request.headers  # parsed from the scope on every access: read once
    ours = settings.default_party
    theirs = caller_party or ("", "")
    headers = {
        "OCPI-from-country-code": sent.get("ocpi-to-country-code") or ours.country_code,
        "OCPI-from-party-id": sent.get("ocpi-to-party-id") or ours.party_id,
        "OCPI-to-country-code": sent.get("ocpi-from-country-code") or theirs[0],
        "OCPI-to-party-id": sent.get("ocpi-from-party-id") or theirs[1],
    }
    return {k: v for k, v in headers.items() if v}


def addressed_party(request: AnyRequest, settings: Settings) -> tuple[str, str] | None:
    """The one of our parties the request's OCPI-to headers name, or None when they name none (§4.1.5: OCPI-to
    naming a party we do not run is a 404, the addressee being unknown here; one header without the other 2001)."""
    sent = request.headers
    country_code, party_id = sent.get("ocpi-to-country-code"), sent.get("ocpi-to-party-id")
    if country_code is None and party_id is None:
        return None
    if country_code is None or party_id is None:
        missing = "OCPI-to-country-code" if country_code is None else "OCPI-to-party-id"
        raise errors.Invalid(f"{missing}: required with the other OCPI-to header")
    party = settings.party(country_code, party_id)
    if party is None:
        raise errors.NotFound(f"OCPI-to {country_code}/{party_id} is not a party here")
    return party.key
