"""OCPI transport rules on every response (spec §4): envelope, status codes, request ids, tokens, slashes."""

from __future__ import annotations

import base64
import re

from tests.conftest import Hub

UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def register_token(hub: Hub, token: str, status: str = "PENDING") -> None:
    response = await hub.api("POST", "/register", json={"token": token, "status": status})
    assert response.status_code == 201, response.text


async def test_missing_or_unknown_token_is_401_with_envelope(hub: Hub) -> None:
    for headers in ({}, {"Authorization": "Token bm9wZQ=="}, {"Authorization": "Bearer x"}):
        response = await hub.ocpi("GET", "/ocpi/versions", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["status_code"] == 2000
        assert UTC_Z.match(body["timestamp"])
        assert "token" in body["status_message"]


async def test_base64_and_raw_token_are_both_accepted(hub: Hub) -> None:
    await register_token(hub, "raw-or-base64")
    encoded = base64.b64encode(b"raw-or-base64").decode()
    for value in (encoded, "raw-or-base64"):
        response = await hub.ocpi("GET", "/ocpi/versions", headers={"Authorization": f"Token {value}"})
        assert response.status_code == 200, value
        assert response.json()["status_code"] == 1000


async def test_request_and_correlation_ids_are_echoed_or_generated(hub: Hub) -> None:
    sent = {"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}
    response = await hub.ocpi("GET", "/ocpi/versions", headers=sent)  # 401, still echoed
    assert response.headers["x-request-id"] == "req-1"
    assert response.headers["x-correlation-id"] == "corr-1"
    response = await hub.ocpi("GET", "/ocpi/no/such/path")
    assert response.status_code == 404
    assert response.json()["status_code"] == 2000
    assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-request-id"])
    assert response.headers["x-correlation-id"] == response.headers["x-request-id"]
    generated = {(await hub.ocpi("GET", "/ocpi/versions")).headers["x-request-id"] for _ in range(20)}
    assert len(generated) == 20


async def test_versions_list_and_details_with_and_without_trailing_slash(hub: Hub) -> None:
    await register_token(hub, "token-a")
    for path in ("/ocpi/versions", "/ocpi/versions/"):
        response = await hub.ocpi("GET", path, "token-a")
        assert response.status_code == 200, path
        assert response.json()["data"] == [
            {"version": "2.2.1", "url": f"{hub.url}/ocpi/2.2.1"},
            {"version": "2.2", "url": f"{hub.url}/ocpi/2.2"},
        ]
        assert "ocpi-from-party-id" not in response.headers  # configuration modules carry no routing headers
    for version in ("2.2.1", "2.2"):
        for path in (f"/ocpi/{version}", f"/ocpi/{version}/"):
            response = await hub.ocpi("GET", path, "token-a")
            assert response.status_code == 200, path
            data = response.json()["data"]
            assert data["version"] == version
            credentials = [e for e in data["endpoints"] if e["identifier"] == "credentials"]
            assert credentials == [
                {"identifier": "credentials", "role": "SENDER", "url": f"{hub.url}/ocpi/{version}/credentials"}
            ]


async def test_body_that_is_not_json_is_400_and_bad_content_is_2001(hub: Hub) -> None:
    await register_token(hub, "token-a")
    response = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", "token-a", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["status_code"] == 2000
    response = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", "token-a", json={"token": "x", "url": "http://e"})
    assert response.status_code == 200
    body = response.json()
    assert body["status_code"] == 2001
    assert "roles" in body["status_message"]
    assert "data" not in body


async def test_unknown_method_is_405_with_envelope(hub: Hub) -> None:
    response = await hub.ocpi("PATCH", "/ocpi/versions")
    assert response.status_code == 405
    assert response.json()["status_code"] == 2000


async def test_errors_on_functional_modules_answer_with_routing_headers_swapped(hub: Hub) -> None:
    await register_token(hub, "agreed", status="REGISTERED")
    routing = {
        "OCPI-from-country-code": "DE",
        "OCPI-from-party-id": "EMP",
        "OCPI-to-country-code": "NL",
        "OCPI-to-party-id": "OHB",
    }
    response = await hub.ocpi("GET", "/ocpi/2.2.1/locations/NOPE", "agreed", headers=routing)
    assert response.status_code == 404
    assert response.json()["status_code"] == 2003
    swapped = {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("ocpi-")}
    assert swapped == {
        "ocpi-from-country-code": "NL",
        "ocpi-from-party-id": "OHB",
        "ocpi-to-country-code": "DE",
        "ocpi-to-party-id": "EMP",
    }
    # Configuration modules are not routed: no routing headers, errors included.
    response = await hub.ocpi("POST", "/ocpi/2.2.1/credentials", "agreed", json={}, headers=routing)
    assert response.status_code == 405
    assert not [k for k in response.headers if k.lower().startswith("ocpi-")]
