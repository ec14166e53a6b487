"""The OpenAPI document Litestar serves at /api/v0/schema describes the seed's internal operations as the seed does:
same paths, operation ids, success codes and bodies, and the seed's Status body on errors."""

from __future__ import annotations

import re
from typing import Any

from ocpi_hub.app import create_app
from tests.conftest import Hub, HubFactory

# (method, path, operationId, success status, request body schema, error statuses) of seed 002, plus the two
# operations of the station gateway.
OPERATIONS = [
    ("post", "/api/v0/cs/{csId}", "registerChargeStation", "201", "ChargeStationAuth", {"400"}),
    ("post", "/api/v0/cs/{csId}/reconfigure", "reconfigureChargeStation", "200", None, {"400", "404"}),
    (
        "post",
        "/api/v0/cs/{csId}/certificates",
        "installChargeStationCertificates",
        "200",
        "ChargeStationInstallCertificates",
        {"400", "404"},
    ),
    ("get", "/api/v0/cs/{csId}/auth", "lookupChargeStationAuth", "200", None, {"400", "404"}),
    ("post", "/api/v0/cs/{csId}/trigger", "triggerChargeStation", "200", "ChargeStationTrigger", {"400", "404"}),
    ("post", "/api/v0/token", "setToken", "201", "Token", {"400"}),
    ("get", "/api/v0/token", "listTokens", "200", None, {"400"}),
    ("get", "/api/v0/token/{tokenUid}", "lookupToken", "200", None, {"400", "404"}),
    ("post", "/api/v0/certificate", "uploadCertificate", "201", "Certificate", {"400"}),
    ("get", "/api/v0/certificate/{certificateHash}", "lookupCertificate", "200", None, {"400", "404"}),
    ("delete", "/api/v0/certificate/{certificateHash}", "deleteCertificate", "204", None, {"400", "404"}),
    ("get", "/api/v0/cs/{csId}", "lookupChargeStation", "200", None, {"400", "404"}),
    (
        "post",
        "/api/v0/cs/{csId}/status",
        "reportChargeStationStatus",
        "200",
        "ChargeStationReport",
        {"400", "404", "409"},
    ),
]

# What the guard of /api/v0 answers, on every guarded operation.
GUARD = {"401", "403"}
METHODS = {"get", "put", "post", "delete", "patch"}


async def schema(hub: Hub) -> dict[str, Any]:
    response = await hub.http.get(f"{hub.url}/api/v0/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_every_operation_is_described_with_the_seeds_codes_and_bodies(hub: Hub) -> None:
    paths = (await schema(hub))["paths"]
    for method, path, operation_id, success, body, errors in OPERATIONS:
        operation = paths[path][method]
        assert operation["operationId"] == operation_id
        assert set(operation["responses"]) == {success, *errors, *GUARD}, operation_id
        for status in {*errors, *GUARD}:
            error = operation["responses"][status]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/SeedStatus"}, (operation_id, status)
        if body is not None:
            request = operation["requestBody"]["content"]["application/json"]["schema"]
            assert request == {"$ref": f"#/components/schemas/{body}"}, operation_id


async def test_bodies_are_the_seeds_schemas(hub: Hub) -> None:
    document = await schema(hub)
    schemas = document["components"]["schemas"]
    token = schemas["Token"]
    assert set(token["properties"]) == {
        "countryCode",
        "partyId",
        "type",
        "uid",
        "contractId",
        "visualNumber",
        "issuer",
        "groupId",
        "valid",
        "languageCode",
        "cacheMode",
        "lastUpdated",
    }
    assert set(token["required"]) == {
        "countryCode",
        "partyId",
        "type",
        "uid",
        "contractId",
        "issuer",
        "valid",
        "cacheMode",
    }
    assert schemas["TokenType"]["enum"] == ["AD_HOC_USER", "APP_USER", "OTHER", "RFID"]
    assert schemas["WhitelistType"]["enum"] == ["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"]
    assert set(schemas["ChargeStationAuth"]["properties"]) == {
        "securityProfile",
        "base64SHA256Password",
        "invalidUsernameAllowed",
    }
    assert schemas["ChargeStationAuth"]["required"] == ["securityProfile"]
    assert schemas["SecurityProfile"]["enum"] == [0, 1, 2]
    assert schemas["TriggerType"]["enum"] == [
        "BootNotification",
        "StatusNotification",
        "SignV2GCertificate",
        "SignChargingStationCertificate",
        "SignCombinedCertificate",
    ]
    assert schemas["CertificateType"]["enum"] == ["V2G", "MO", "MF", "CSMS"]
    assert schemas["Certificate"]["required"] == ["certificate"]
    assert set(schemas["SeedStatus"]["properties"]) == {"status", "error"}

    settings = document["paths"]["/api/v0/cs/{csId}/reconfigure"]["post"]["requestBody"]["content"]["application/json"]
    assert settings["schema"]["title"] == "ChargeStationSettings"
    assert settings["schema"]["propertyNames"]["maxLength"] == 500
    listed = document["paths"]["/api/v0/token"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"items": {"$ref": "#/components/schemas/Token"}, "type": "array"}
    limit = next(p for p in document["paths"]["/api/v0/token"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 100


async def test_every_internal_route_and_no_ocpi_route_is_described(hub: Hub) -> None:
    described = {(method, path) for path, item in (await schema(hub))["paths"].items() for method in item}
    app = create_app(hub.settings)
    routed = {
        (method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in app.routes
        if route.path.startswith("/api/v0/") and not route.path.startswith("/api/v0/schema")
        for method in set(getattr(route, "methods", ())) - {"HEAD", "OPTIONS"}
    }
    assert len(routed) > 20
    assert routed <= described
    assert not [path for _, path in described if path.startswith("/ocpi")]


async def test_every_operation_has_an_explicit_id_its_errors_and_the_bearer_scheme(hub: Hub) -> None:
    document = await schema(hub)
    assert document["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "OCPI_HUB_ADMIN_TOKEN; while it is unset, only loopback clients are served",
    }
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids))
    # Litestar's generated ids are PascalCase route names (ApiV0PartnersListPartners): ours are camelCase.
    assert [i for i in ids if not re.fullmatch(r"[a-z][A-Za-z0-9]+", i)] == []
    for method, path, operation in operations:
        if path in ("/health", "/ready"):  # for load balancers: no guard, nothing to refuse
            assert "security" not in operation, path
            continue
        assert operation["security"] == [{"adminToken": []}], (method, path)
        errors = {status for status in operation["responses"] if status.startswith(("4", "5"))}
        assert errors >= GUARD, (method, path)
        for status in errors:
            body = operation["responses"][status]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/SeedStatus"}, (method, path, status)


async def test_the_document_and_its_viewer_are_offline_and_behind_the_guard(hub_factory: HubFactory) -> None:
    hub = await hub_factory(admin_token="s3cret", push_worker=False)
    for path in ("/api/v0/schema", "/api/v0/schema/openapi.json", "/api/v0/schema/swagger", "/status"):
        refused = await hub.http.get(f"{hub.url}{path}")
        assert refused.status_code == 401, path
        assert refused.json()["status"] == "Unauthorized"
    bearer = {"Authorization": "Bearer s3cret"}
    document = await hub.http.get(f"{hub.url}/api/v0/schema/openapi.json", headers=bearer)
    assert document.status_code == 200
    assert document.json()["paths"]["/api/v0/partners"]["get"]["operationId"] == "listPartners"
    viewer = await hub.http.get(f"{hub.url}/api/v0/schema", headers=bearer)
    assert viewer.status_code == 200
    assert viewer.headers["content-type"].startswith("text/html")
    assert "<td>listPartners</td>" in viewer.text
    assert "/api/v0/schema/openapi.json" in viewer.text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", viewer.text)  # nothing fetched from elsewhere
    page = await hub.http.get(f"{hub.url}/status", headers=bearer)
    assert page.status_code == 200
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page.text)
    assert "<script" not in page.text
    assert "s3cret" not in page.text
