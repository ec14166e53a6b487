"""The charge station operations of seed 002 (`/api/v0/cs/{csId}...`) and the gateway's view and report."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db import chargestations as tables
from tests.conftest import Hub
from tests.test_internal_certificates import self_signed, url_safe

PASSWORD_HASH = base64.b64encode(hashlib.sha256(b"secret").digest()).decode()
# The seed's example bodies; its "string" password is replaced by a real base64 SHA-256.
AUTH = {"securityProfile": 0, "base64SHA256Password": PASSWORD_HASH, "invalidUsernameAllowed": True}
SETTINGS = {"property1": "string", "property2": "string"}
TRIGGER = {"trigger": "BootNotification"}


async def rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    counts = {}
    async with sessions() as session:
        for table in (
            tables.ChargeStation,
            tables.ChargeStationSetting,
            tables.ChargeStationCertificate,
            tables.ChargeStationTrigger,
        ):
            counts[table.__tablename__] = (await session.scalar(select(func.count()).select_from(table))) or 0
    return counts


async def register(hub: Hub, cs_id: str = "cs001", body: dict[str, Any] | None = None) -> None:
    response = await hub.api("POST", f"/cs/{cs_id}", json=AUTH if body is None else body)
    assert response.status_code == 201, response.text


async def station(hub: Hub, cs_id: str = "cs001") -> dict[str, Any]:
    response = await hub.api("GET", f"/cs/{cs_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_bad_request(response: Any, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "Bad Request"
    assert body["error"].startswith(f"{field}:"), body


async def test_register_then_lookup_auth_and_station(hub: Hub) -> None:
    response = await hub.api("POST", "/cs/cs001", json=AUTH)
    assert response.status_code == 201
    assert response.content == b""
    response = await hub.api("GET", "/cs/cs001/auth")
    assert response.status_code == 200
    assert response.json() == AUTH

    await register(hub, "cs002", {"securityProfile": 2})
    assert (await hub.api("GET", "/cs/cs002/auth")).json() == {"securityProfile": 2}

    view = await station(hub)
    assert view["csId"] == "cs001"
    assert view["auth"] == AUTH
    assert view["registrationStatus"] == "Pending"
    assert view["settings"] == view["certificates"] == view["triggers"] == []
    assert view["registeredAt"] == view["updatedAt"]


async def test_register_again_replaces_the_auth_and_makes_the_station_pending(hub: Hub) -> None:
    await register(hub)
    await hub.api("POST", "/cs/cs001/reconfigure", json=SETTINGS)
    await hub.api("POST", "/cs/cs001/status", json={"registrationStatus": "Accepted"})
    await register(hub, body={"securityProfile": 1})
    view = await station(hub)
    assert view["auth"] == {"securityProfile": 1}
    assert view["registrationStatus"] == "Pending"
    assert [s["name"] for s in view["settings"]] == ["property1", "property2"]  # what was asked stays


async def test_bad_registration_is_400_naming_the_field_and_stores_nothing(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sixteen_bytes = base64.b64encode(b"x" * 16).decode()
    cases = [
        ("cs001", {"securityProfile": 3}, "securityProfile"),
        ("cs001", {"securityProfile": "high"}, "securityProfile"),
        ("cs001", {}, "securityProfile"),
        ("cs001", {"securityProfile": 0, "base64SHA256Password": "string"}, "base64SHA256Password"),  # seed example
        ("cs001", {"securityProfile": 0, "base64SHA256Password": sixteen_bytes}, "base64SHA256Password"),
        ("cs001", {"securityProfile": 0, "base64SHA256Password": url_safe(PASSWORD_HASH)}, "base64SHA256Password"),
        ("cs001", {"securityProfile": 0, "invalidUsernameAllowed": "yes"}, "invalidUsernameAllowed"),
        ("c" * 49, AUTH, "csId"),
        ("cs:001", AUTH, "csId"),
    ]
    for cs_id, body, field in cases:
        assert_bad_request(await hub.api("POST", f"/cs/{cs_id}", json=body), field)
    response = await hub.api("POST", "/cs/cs001", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status"] == "Bad Request"
    assert sum((await rows(sessions)).values()) == 0


async def test_unknown_station_is_404_everywhere(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    pem, _ = self_signed()
    requests = [
        ("GET", "/cs/nope/auth", None),
        ("GET", "/cs/nope", None),
        ("POST", "/cs/nope/reconfigure", SETTINGS),
        ("POST", "/cs/nope/certificates", {"certificates": [{"type": "V2G", "certificate": pem}]}),
        ("POST", "/cs/nope/trigger", TRIGGER),
        ("POST", "/cs/nope/status", {"registrationStatus": "Accepted"}),
    ]
    for method, path, body in requests:
        response = await hub.api(method, path, json=body)
        assert response.status_code == 404, path
        assert response.json()["status"] == "Not Found"
        assert "nope" in response.json()["error"]
    assert sum((await rows(sessions)).values()) == 0


async def test_reconfigure_records_pending_settings(hub: Hub) -> None:
    await register(hub)
    response = await hub.api("POST", "/cs/cs001/reconfigure", json=SETTINGS)
    assert response.status_code == 200
    assert response.content == b""
    name = "OCPPCommCtrlr/HeartbeatInterval"
    await hub.api("POST", "/cs/cs001/reconfigure", json={name: "300", "property1": "changed"})
    settings = (await station(hub))["settings"]
    assert [(s["name"], s["value"], s["status"]) for s in settings] == [
        (name, "300", "Pending"),
        ("property1", "changed", "Pending"),
        ("property2", "string", "Pending"),
    ]


async def test_bad_settings_are_400_naming_the_setting_and_store_nothing(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await register(hub)
    long_name = "n" * 501
    cases = [
        ({"ok": "1", long_name: "x"}, f"{long_name[:40]!r}"),
        ({"": "x"}, "''"),
        ({"ok": "1", "long": "v" * 1001}, "'long'"),
        ({"ok": 1}, "data"),
    ]
    for body, field in cases:
        assert_bad_request(await hub.api("POST", "/cs/cs001/reconfigure", json=body), field)
    assert_bad_request(await hub.api("POST", "/cs/cs001/reconfigure", json=["a"]), "data")
    assert (await hub.api("POST", "/cs/cs001/reconfigure", json={"n" * 500: "v" * 1000})).status_code == 200
    assert (await rows(sessions))["charge_station_settings"] == 1


async def test_install_certificates_records_them_by_hash_pending_by_default(hub: Hub) -> None:
    await register(hub)
    v2g, v2g_hash = self_signed("v2g")
    mo, mo_hash = self_signed("mo")
    body = {
        "certificates": [{"type": "V2G", "certificate": v2g}, {"type": "MO", "certificate": mo, "status": "Accepted"}]
    }
    response = await hub.api("POST", "/cs/cs001/certificates", json=body)
    assert response.status_code == 200, response.text
    assert response.content == b""
    installed = {c["certificateHash"]: c for c in (await station(hub))["certificates"]}
    assert installed[v2g_hash]["type"] == "V2G"
    assert installed[v2g_hash]["certificate"] == v2g
    assert installed[v2g_hash]["status"] == "Pending"
    assert installed[mo_hash]["status"] == "Accepted"


async def test_bad_certificates_are_400_naming_the_entry_and_store_nothing(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await register(hub)
    pem, _ = self_signed()
    good = {"type": "CSMS", "certificate": pem}
    cases = [
        (
            {"certificates": [{"type": "V2G", "certificate": "string", "status": "Accepted"}]},
            "certificates[0].certificate",
        ),
        ({"certificates": [good, {"type": "V2G", "certificate": pem[:-40]}]}, "certificates[1].certificate"),
        ({"certificates": [good, {"type": "TLS", "certificate": pem}]}, "certificates[1].type"),
        ({"certificates": [{"type": "MF", "certificate": pem, "status": "Installed"}]}, "certificates[0].status"),
        ({"certificates": [{"type": "MF"}]}, "certificates[0].certificate"),
        ({}, "certificates"),
    ]
    for body, field in cases:
        assert_bad_request(await hub.api("POST", "/cs/cs001/certificates", json=body), field)
    assert (await rows(sessions))["charge_station_certificates"] == 0


async def test_trigger_records_a_pending_trigger_once_per_type(hub: Hub) -> None:
    await register(hub)
    response = await hub.api("POST", "/cs/cs001/trigger", json=TRIGGER)
    assert response.status_code == 200
    assert response.content == b""
    await hub.api("POST", "/cs/cs001/trigger", json={"trigger": "SignV2GCertificate"})
    await hub.api("POST", "/cs/cs001/trigger", json=TRIGGER)
    triggers = (await station(hub))["triggers"]
    assert [(t["trigger"], t["status"]) for t in triggers] == [
        ("BootNotification", "Pending"),
        ("SignV2GCertificate", "Pending"),
    ]


async def test_bad_trigger_is_400_and_stores_nothing(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    await register(hub)
    for body in ({"trigger": "Reset"}, {"trigger": "bootnotification"}, {}):
        assert_bad_request(await hub.api("POST", "/cs/cs001/trigger", json=body), "trigger")
    assert (await rows(sessions))["charge_station_triggers"] == 0


async def test_the_gateway_reports_what_it_did(hub: Hub) -> None:
    await register(hub)
    pem, der_hash = self_signed()
    await hub.api("POST", "/cs/cs001/reconfigure", json=SETTINGS)
    await hub.api("POST", "/cs/cs001/certificates", json={"certificates": [{"type": "V2G", "certificate": pem}]})
    await hub.api("POST", "/cs/cs001/trigger", json=TRIGGER)
    report = {
        "registrationStatus": "Accepted",
        "settings": [
            {"name": "property1", "value": "string", "status": "Accepted"},
            {"name": "property2", "value": "string", "status": "RebootRequired"},
        ],
        "certificates": [{"certificateHash": url_safe(der_hash), "status": "Accepted"}],
        "triggers": [{"trigger": "BootNotification", "status": "NotImplemented"}],
    }
    response = await hub.api("POST", "/cs/cs001/status", json=report)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view == await station(hub)
    assert view["registrationStatus"] == "Accepted"
    assert [s["status"] for s in view["settings"]] == ["Accepted", "RebootRequired"]
    assert view["certificates"][0]["status"] == "Accepted"
    assert view["triggers"][0]["status"] == "NotImplemented"

    # Asked again: Pending again, for the gateway to pick up.
    await hub.api("POST", "/cs/cs001/reconfigure", json={"property1": "string"})
    await hub.api("POST", "/cs/cs001/trigger", json=TRIGGER)
    view = await station(hub)
    assert [s["status"] for s in view["settings"]] == ["Pending", "RebootRequired"]
    assert view["triggers"][0]["status"] == "Pending"


async def test_a_report_about_something_not_asked_is_409_and_records_nothing(hub: Hub) -> None:
    await register(hub)
    await hub.api("POST", "/cs/cs001/reconfigure", json=SETTINGS)
    before = await station(hub)
    _, other_hash = self_signed()
    stale = {"name": "property1", "value": "old", "status": "Accepted"}
    cases = [
        ({"settings": [stale]}, "settings[0]"),
        (
            {"settings": [{"name": "property1", "value": "string", "status": "Accepted"}, {**stale, "name": "x"}]},
            "settings[1]",
        ),
        ({"certificates": [{"certificateHash": other_hash, "status": "Accepted"}]}, "certificates[0]"),
        ({"certificates": [{"certificateHash": "string", "status": "Accepted"}]}, "certificates[0]"),
        ({"triggers": [{"trigger": "StatusNotification", "status": "Accepted"}]}, "triggers[0]"),
    ]
    for report, field in cases:
        response = await hub.api("POST", "/cs/cs001/status", json={"registrationStatus": "Accepted", **report})
        assert response.status_code == 409, report
        assert response.json()["status"] == "Conflict"
        assert response.json()["error"].startswith(f"{field}:")
    assert await station(hub) == before
    response = await hub.api(
        "POST", "/cs/cs001/status", json={"settings": [{"name": "property1", "status": "Accepted"}]}
    )
    assert_bad_request(response, "settings[0].value")
    assert await station(hub) == before
