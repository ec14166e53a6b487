"""One error vocabulary, translated once at each boundary.

Domain code says what kind of failure happened; it never picks an HTTP status:

    HubError(message, ocpi_status=None)
     ├── Invalid          bad input: a field breaks a rule (the message names the field and the rule)
     ├── Malformed        the body is not JSON at all
     ├── NotFound         the object (or the addressee) is not here
     ├── Conflict         the request contradicts what is stored
     ├── PartnerFailed    a partner we called did not do its part (the message carries its answer)
     ├── Unauthorized     no valid credentials
     ├── Forbidden        valid caller, not allowed here
     ├── NotAllowed       the method does not apply in the caller's state
     └── Unavailable      not now: the database cannot be reached, or too many write the same object (Retry-After)

`/ocpi` answers a kind with the HTTP status and OCPI status_code of `OCPI_ANSWERS` (an `ocpi_status` given with
the error, such as 2003 unknown location, refines the code); `/api/v0` with the HTTP status of `API_ANSWERS` and the
seed's `{status, error}` body. ocpi_hub.api.boundary renders both, and anything else that escapes a handler.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from ocpi_hub.ocpi.common import StatusCode


class HubError(Exception):
    def __init__(self, message: str, *, ocpi_status: StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ocpi_status = ocpi_status


class Invalid(HubError):
    pass


class Malformed(HubError):
    pass


class NotFound(HubError):
    pass


class Conflict(HubError):
    pass


class PartnerFailed(HubError):
    pass


class Unauthorized(HubError):
    pass


class Forbidden(HubError):
    pass


class NotAllowed(HubError):
    pass


class Unavailable(HubError):
    """Try again in `retry_after` seconds (docs/ocpi.md §11): answered 503 with Retry-After on both interfaces."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# (HTTP status, OCPI status_code) per kind on /ocpi (OCPI 2.2.1 §4.1.7 and docs/ocpi.md §1.4): invalid content is
# HTTP 200 with 2001; a body that is not JSON is HTTP 400; a partner's failure during our call is 3001.
OCPI_ANSWERS: dict[type[HubError], tuple[int, StatusCode]] = {
    Invalid: (200, StatusCode.INVALID_PARAMETERS),
    Malformed: (400, StatusCode.CLIENT_ERROR),
    NotFound: (404, StatusCode.CLIENT_ERROR),
    Conflict: (409, StatusCode.CLIENT_ERROR),
    PartnerFailed: (200, StatusCode.UNABLE_TO_USE_CLIENT_API),
    Unauthorized: (401, StatusCode.CLIENT_ERROR),
    Forbidden: (403, StatusCode.CLIENT_ERROR),
    NotAllowed: (405, StatusCode.CLIENT_ERROR),
    Unavailable: (503, StatusCode.SERVER_ERROR),
}

# HTTP status per kind on /api/v0 (the seed's Status body).
API_ANSWERS: dict[type[HubError], int] = {
    Invalid: 400,
    Malformed: 400,
    NotFound: 404,
    Conflict: 409,
    PartnerFailed: 502,
    Unauthorized: 401,
    Forbidden: 403,
    NotAllowed: 405,
    Unavailable: 503,
}


class SeedStatus(msgspec.Struct, omit_defaults=True):
    """The seed's `Status` schema: the HTTP status description and the error details."""

    status: str
    error: str | None = None


def seed_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI: the seed's Status body on these error statuses (what handle_exception renders)."""
    return {
        status: ResponseSpec(SeedStatus, description=HTTPStatus(status).phrase, generate_examples=False)
        for status in statuses
    }
