"""Our HTTP client towards partners: the outbound headers in one place, the envelope read in one place.

Every call has the timeout of the httpx client it is given (`OCPI_HUB_HTTP_TIMEOUT`), so a partner that hangs
cannot hang a request of ours.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx
import msgspec

from ocpi_hub.credentials_token import authorization_header
from ocpi_hub.ocpi.common import Envelope, StatusCode

T = TypeVar("T")

# `data` stays builtins here: `call` hands it on as such, `fetch` converts it to the type it was asked for.
_envelope_decoder = msgspec.json.Decoder(Envelope[Any])


class PartnerCallError(Exception):
    """A call to a partner failed; the message says which call and what the partner answered."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status_code: int | None = None,
        http_status: int | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status_code = status_code
        self.http_status = http_status  # None when no answer came (connection error, timeout)
        self.retry_after = retry_after  # the Retry-After header of a 429 or 503, as sent (seconds or HTTP date)


class Routing(msgspec.Struct, frozen=True):
    """OCPI-from/OCPI-to of a functional-module request (never sent on configuration modules, spec §4.1.5)."""

    from_country_code: str
    from_party_id: str
    to_country_code: str
    to_party_id: str


def _colon(status_message: str | None) -> str:
    return f": {status_message}" if status_message else ""


def join_url(base: str, *segments: str) -> str:
    """`base` + `/seg/seg`, whether or not the partner's base URL ends with a slash."""
    return urljoin(base.rstrip("/") + "/", "/".join(segments))


class OcpiClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    def headers(self, token: str, *, send_base64: bool, routing: Routing | None = None) -> dict[str, str]:
        request_id = str(uuid.uuid4())
        headers = {
            "Authorization": authorization_header(token, send_base64=send_base64),
            "X-Request-ID": request_id,
            "X-Correlation-ID": request_id,
        }
        if routing is not None:
            headers |= {
                "OCPI-from-country-code": routing.from_country_code,
                "OCPI-from-party-id": routing.from_party_id,
                "OCPI-to-country-code": routing.to_country_code,
                "OCPI-to-party-id": routing.to_party_id,
            }
        return headers

    async def call(
        self,
        method: str,
        url: str,
        *,
        token: str,
        send_base64: bool,
        body: Any = None,
        routing: Routing | None = None,
    ) -> Any:
        """One OCPI request; returns the envelope's `data` on HTTP 2xx with status_code 1000, else raises."""
        what = f"{method} {url}"
        content = None if body is None else msgspec.json.encode(body)
        headers = self.headers(token, send_base64=send_base64, routing=routing)
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self.http.request(method, url, content=content, headers=headers)
        except httpx.TimeoutException:
            raise PartnerCallError(f"{what}: no answer within the timeout", transient=True) from None
        except httpx.HTTPError as exc:
            raise PartnerCallError(f"{what}: {type(exc).__name__}: {exc}", transient=True) from None
        try:
            envelope: Envelope[Any] | None = _envelope_decoder.decode(response.content)
            not_an_envelope = ""
        except msgspec.DecodeError as exc:  # ValidationError included: JSON, but not shaped like an envelope
            envelope, not_an_envelope = None, str(exc) if response.content else "the body is empty"
        if not response.is_success:
            said = f" (status_code {envelope.status_code}{_colon(envelope.status_message)})" if envelope else ""
            transient = response.status_code >= 500 or response.status_code in (408, 429)
            retry_after = response.headers.get("Retry-After") if response.status_code in (429, 503) else None
            raise PartnerCallError(
                f"{what}: HTTP {response.status_code}{said}",
                transient=transient,
                status_code=envelope.status_code if envelope else None,
                http_status=response.status_code,
                retry_after=retry_after,
            )
        if envelope is None:
            raise PartnerCallError(
                f"{what}: the answer is not an OCPI envelope ({not_an_envelope})",
                transient=False,
                http_status=response.status_code,
            )
        if envelope.status_code != StatusCode.SUCCESS:
            raise PartnerCallError(
                f"{what}: status_code {envelope.status_code}{_colon(envelope.status_message)}",
                transient=3000 <= envelope.status_code < 4000,
                status_code=envelope.status_code,
                http_status=response.status_code,
            )
        return envelope.data

    async def fetch(self, url: str, type_: type[T], *, token: str, send_base64: bool) -> T:
        """GET a configuration object (versions, version details, credentials) and validate its shape."""
        data = await self.call("GET", url, token=token, send_base64=send_base64)
        try:
            return msgspec.convert(data, type_)
        except msgspec.ValidationError as exc:
            raise PartnerCallError(f"GET {url}: invalid {type_.__name__}: {exc}", transient=False) from None
