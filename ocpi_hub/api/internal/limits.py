"""Integer parameters of the internal API must fit the database's integer columns, 32 bits (row ids are
`Integer`, which PostgreSQL keeps in 32 bits): checked once for every operation, from its signature, so that a new
operation is covered too (docs/ocpi.md §11)."""

from __future__ import annotations

import re
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.typing import FieldDefinition

from ocpi_hub import errors

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_RULE = "must be an integer from -2^31 to 2^31-1"


def _is_int(field: FieldDefinition) -> bool:
    return field.annotation is not bool and (
        field.annotation is int or any(inner.annotation is int for inner in field.inner_types)
    )


def _fits(raw: str) -> bool:
    """Whether an integer, as written, is within our range; thousands of digits are judged by their length (Python
    refuses to convert more than 4300)."""
    digits = raw.strip().lstrip("+-").lstrip("0")
    return len(digits) <= 10 and INT_MIN <= int(raw) <= INT_MAX


# Called by the internal API's before_request hook (ocpi_hub.api.internal.guard.admitted).
async def integer_parameters(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """A path or query parameter typed `int` outside the 32-bit range is a 400 naming it."""
    for name, field in handler.parsed_fn_signature.parameters.items():
        if not _is_int(field):
            continue
        if name in connection.path_params:
            value = connection.path_params[name]
            if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
                raise errors.Invalid(f"{name}: {_RULE}")
            continue
        key = getattr(field.kwarg_definition, "query", None) or name
        for raw in connection.query_params.getall(key, ()):
            if _INTEGER.fullmatch(raw) and not _fits(raw):
                raise errors.Invalid(f"{key}: {_RULE}")
