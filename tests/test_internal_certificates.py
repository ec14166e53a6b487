"""uploadCertificate, lookupCertificate, deleteCertificate (seed 002, `/api/v0/certificate`)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ocpi_hub.db.certificates import Certificate
from tests.conftest import Hub


def self_signed(name: str = "cs001") -> tuple[str, str]:
    """A fresh self-signed certificate: its PEM and the seed's key for it (base64 SHA-256 of the DER bytes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der_hash = base64.b64encode(hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()).decode()
    return certificate.public_bytes(Encoding.PEM).decode(), der_hash


def url_safe(der_hash: str) -> str:
    return der_hash.replace("+", "-").replace("/", "_").rstrip("=")


async def count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return (await session.scalar(select(func.count()).select_from(Certificate))) or 0


async def test_upload_lookup_and_delete_by_the_hash_of_the_der_bytes(hub: Hub) -> None:
    pem, der_hash = self_signed()
    response = await hub.api("POST", "/certificate", json={"certificate": pem})
    assert response.status_code == 201, response.text
    assert response.content == b""

    for form in (url_safe(der_hash), url_safe(der_hash) + "=", der_hash.replace("/", "_")):
        response = await hub.api("GET", f"/certificate/{form}")
        assert response.status_code == 200, form
        assert response.json() == {"certificate": pem}

    response = await hub.api("DELETE", f"/certificate/{url_safe(der_hash)}")
    assert response.status_code == 204
    assert response.content == b""
    for method in ("GET", "DELETE"):
        response = await hub.api(method, f"/certificate/{url_safe(der_hash)}")
        assert response.status_code == 404
        assert response.json()["status"] == "Not Found"
        assert url_safe(der_hash) in response.json()["error"]


async def test_the_hash_in_standard_base64_is_accepted_when_it_has_no_slash(hub: Hub) -> None:
    pem, der_hash = self_signed()
    while "/" in der_hash:  # about one hash in two has none
        pem, der_hash = self_signed()
    await hub.api("POST", "/certificate", json={"certificate": pem})
    response = await hub.api("GET", f"/certificate/{der_hash}")
    assert response.status_code == 200
    assert response.json() == {"certificate": pem}


async def test_pem_with_doubly_escaped_newlines_and_surrounding_text_is_stored_canonically(hub: Hub) -> None:
    pem, der_hash = self_signed()
    # A client that replaced the newlines by a backslash and an n before JSON-encoding, with text around it.
    body = json.dumps({"certificate": "subject=CN = cs001\\n" + pem.replace("\n", "\\n")})
    response = await hub.api("POST", "/certificate", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    response = await hub.api("GET", f"/certificate/{url_safe(der_hash)}")
    assert response.json() == {"certificate": pem}


async def test_uploading_the_same_certificate_twice_keeps_one(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    pem, _ = self_signed()
    for _ in range(2):
        assert (await hub.api("POST", "/certificate", json={"certificate": pem})).status_code == 201
    assert await count(sessions) == 1


async def test_a_body_that_is_not_one_certificate_is_400_and_nothing_is_stored(
    hub: Hub, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, _ = self_signed("a")
    second, _ = self_signed("b")
    broken = first.replace(first.splitlines()[3], "A" * 64)
    cases = [
        ({"certificate": "string"}, "certificate: not a PEM-encoded X.509 certificate"),  # the seed's example
        ({"certificate": broken}, "certificate: not a PEM-encoded X.509 certificate"),
        ({"certificate": first + second}, "certificate: expected one PEM certificate, found 2"),
        ({"certificate": 42}, "certificate: Expected `str`, got `int`"),
        ({}, "certificate"),
    ]
    for body, message in cases:
        response = await hub.api("POST", "/certificate", json=body)
        assert response.status_code == 400, body
        assert response.json()["status"] == "Bad Request"
        assert response.json()["error"].startswith(message), response.json()
    response = await hub.api("POST", "/certificate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert await count(sessions) == 0


async def test_a_path_that_is_not_a_hash_is_400(hub: Hub) -> None:
    too_short = base64.urlsafe_b64encode(b"x" * 31).decode()
    for method in ("GET", "DELETE"):
        for value in ("string", too_short, "a" * 65):
            response = await hub.api(method, f"/certificate/{value}")
            assert response.status_code == 400, value
            assert response.json()["error"].startswith("certificateHash:")
