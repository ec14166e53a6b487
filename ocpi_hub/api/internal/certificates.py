"""uploadCertificate, lookupCertificate and deleteCertificate (seed 002, `/certificate`): the client certificates
the station gateway accepts for mutual TLS, by the base64 SHA-256 hash of their DER bytes."""

from __future__ import annotations

from typing import Annotated

from cryptography import x509
from litestar import Controller, MediaType, delete, get, post
from litestar.params import JSONBody, PathParameter

from ocpi_hub import certificates, errors
from ocpi_hub.api import deps
from ocpi_hub.csms import certificate as csms
from ocpi_hub.db import certificates as stored
from ocpi_hub.errors import seed_errors

# Standard base64 (44 characters) or its URL-safe form, with or without padding: a `/` cannot be in a path segment.
CertificateHash = Annotated[str, PathParameter(max_length=64, description="base64 SHA-256 of the DER bytes")]


def load_certificate(pem: str, field: str) -> x509.Certificate:
    """The certificate in `pem`, or a 400 naming `field` and what is wrong."""
    try:
        return certificates.load_pem(pem)
    except certificates.NotACertificateError as exc:
        raise errors.Invalid(f"{field}: {exc}") from None


def _key(certificate_hash: str) -> str:
    key = certificates.normalise_hash(certificate_hash)
    if key is None:
        raise errors.Invalid("certificateHash: must be the base64 (standard or URL-safe) of a SHA-256 hash")
    return key


class CertificateController(Controller):
    path = "/certificate"

    @post(
        "/",
        status_code=201,
        media_type=MediaType.TEXT,
        operation_id="uploadCertificate",
        summary="Upload a certificate",
        responses=seed_errors(400),
    )
    async def upload(self, data: JSONBody[csms.Certificate], db: deps.Db, now: deps.Clock) -> None:
        """Stores the certificate under the base64 SHA-256 hash of its DER bytes, which we compute; the stored
        PEM is the canonical encoding of those bytes."""
        certificate = load_certificate(data.certificate, "certificate")
        await stored.put(db, certificates.der_hash(certificate), certificates.to_pem(certificate), now=now())

    @get(
        "/{certificateHash:str}",
        operation_id="lookupCertificate",
        summary="Lookup a certificate",
        responses=seed_errors(400, 404),
    )
    async def lookup(self, certificateHash: CertificateHash, db: deps.Db) -> csms.Certificate:  # noqa: N803
        """The certificate with this hash, given in standard or URL-safe base64."""
        pem = await stored.get(db, _key(certificateHash))
        if pem is None:
            raise errors.NotFound(f"no certificate with hash {certificateHash}")
        return csms.Certificate(certificate=pem)

    @delete(
        "/{certificateHash:str}",
        operation_id="deleteCertificate",
        summary="Delete a certificate",
        responses=seed_errors(400, 404),
    )
    async def remove(self, certificateHash: CertificateHash, db: deps.Db) -> None:  # noqa: N803
        """Deletes the certificate with this hash, given in standard or URL-safe base64."""
        if not await stored.remove(db, _key(certificateHash)):
            raise errors.NotFound(f"no certificate with hash {certificateHash}")
