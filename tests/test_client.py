"""How OcpiClient reads a partner's answer: the envelope (OCPI 2.2.1 §4.1.7), and every way an answer is not one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ocpi_hub.client import OcpiClient, PartnerCallError
from ocpi_hub.ocpi.versions import Version

URL = "https://emsp.example.com/ocpi/versions"
TIMESTAMP = "2026-01-01T00:00:00Z"


def answering(status: int, content: bytes, headers: dict[str, str] | None = None) -> OcpiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers=headers)

    return OcpiClient(httpx.MockTransport(handler), timeout=5)


def envelope(status_code: int, data: str | None = None, message: str | None = None) -> bytes:
    fields = [f'"status_code": {status_code}', f'"timestamp": "{TIMESTAMP}"']
    fields += [f'"data": {data}'] if data is not None else []
    fields += [f'"status_message": "{message}"'] if message is not None else []
    return ("{" + ", ".join(fields) + "}").encode()


async def failure(client: OcpiClient) -> PartnerCallError:
    with pytest.raises(PartnerCallError) as raised:
        await client.call("GET", URL, token="t", send_base64=True)
    return raised.value


async def test_success_returns_the_data_as_sent() -> None:
    client = answering(200, envelope(1000, '[{"version": "2.2.1", "url": "https://x/2.2.1"}]'))
    assert await client.call("GET", URL, token="t", send_base64=True) == [
        {"version": "2.2.1", "url": "https://x/2.2.1"}
    ]
    assert await client.fetch(URL, list[Version], token="t", send_base64=True) == [
        Version(version="2.2.1", url="https://x/2.2.1")
    ]
    assert await answering(200, envelope(1000)).call("PUT", URL, token="t", send_base64=True, body={}) is None


@pytest.mark.parametrize(
    ("status_code", "message", "said", "transient"),
    [
        (2001, "bad field", f"GET {URL}: status_code 2001: bad field", False),
        (3000, None, f"GET {URL}: status_code 3000", True),
    ],
)
async def test_ocpi_status_codes_are_failures_with_the_partners_words(
    status_code: int, message: str | None, said: str, transient: bool
) -> None:
    error = await failure(answering(200, envelope(status_code, message=message)))
    assert str(error) == said
    assert (error.transient, error.status_code, error.http_status) == (transient, status_code, 200)


@pytest.mark.parametrize(
    ("status", "content", "headers", "said", "attributes"),
    [
        (500, envelope(3000, message="boom"), {}, "HTTP 500 (status_code 3000: boom)", (True, 3000, None)),
        (503, b"", {"Retry-After": "120"}, "HTTP 503", (True, None, "120")),
        (429, b"slow down", {"Retry-After": "5"}, "HTTP 429", (True, None, "5")),
        (404, b"<html>not here</html>", {}, "HTTP 404", (False, None, None)),
        (401, b'{"status_code": 2000}', {}, "HTTP 401", (False, None, None)),  # no timestamp: not an envelope
    ],
)
async def test_http_errors_keep_the_http_status(
    status: int, content: bytes, headers: dict[str, str], said: str, attributes: tuple[Any, ...]
) -> None:
    error = await failure(answering(status, content, headers))
    assert str(error) == f"GET {URL}: {said}"
    assert error.http_status == status
    assert (error.transient, error.status_code, error.retry_after) == attributes


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<html>ok</html>", "JSON is malformed"),
        (b"", "the body is empty"),
        (b'{"status": "ok"}', "Object missing required field `status_code`"),
        (b'{"status_code": "1000", "timestamp": "2026-01-01T00:00:00Z"}', "Expected `int`, got `str`"),
    ],
)
async def test_a_success_that_is_not_an_envelope_says_why(content: bytes, reason: str) -> None:
    error = await failure(answering(200, content))
    assert str(error).startswith(f"GET {URL}: the answer is not an OCPI envelope (")
    assert reason in str(error)
    assert (error.transient, error.status_code, error.http_status) == (False, None, 200)


async def test_data_of_the_wrong_shape_is_named() -> None:
    client = answering(200, envelope(1000, '[{"version": 2.2}]'))
    with pytest.raises(
        PartnerCallError, match=r"^GET \S+: invalid .*Expected `str`, got `float` - at `\$\[0\]\.version`$"
    ):
        await client.fetch(URL, list[Version], token="t", send_base64=True)


async def test_no_answer_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = OcpiClient(httpx.MockTransport(handler), timeout=5)
    error = await failure(client)
    assert str(error) == f"GET {URL}: no answer within the timeout"
    assert (error.transient, error.status_code, error.http_status) == (True, None, None)


async def test_a_redirect_is_not_followed_and_no_cookie_is_kept() -> None:
    """A partner's URL is checked before we call it; a redirect would lead where nothing was checked."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:5432/", "Set-Cookie": "s=1"})

    client = OcpiClient(httpx.MockTransport(handler), timeout=5)
    for _ in range(2):
        error = await failure(client)
        assert (str(error), error.transient, error.http_status) == (f"GET {URL}: HTTP 302", False, 302)
    assert [str(r.url) for r in seen] == [URL, URL]
    assert "cookie" not in seen[1].headers
